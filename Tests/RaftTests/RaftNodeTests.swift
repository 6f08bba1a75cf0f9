import LogStorage
import NodeKit
import Raft
import SimWorld
import Testing
import TernCore

/// `RaftNode` on simulated disks: replication through real segment files, restart recovery, and
/// the order persist → send.
struct RaftNodeTests {
    @Test func electsALeaderAndCommitsThroughTheDisks() {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 11)
        cluster.startAll()
        let leader = cluster.awaitLeader()
        #expect(leader != nil)
        for number in 0..<20 { cluster.proposeOnLeader("record-\(number)") }
        cluster.run(for: .seconds(1))
        let last = leader?.core?.lastIndex ?? .zero
        #expect(last == LogIndex(21))
        for node in cluster.runningNodes {
            #expect(node.commitIndex == last, "node \(node.nodeID) commit \(node.commitIndex)")
            #expect(node.core?.appliedIndex == last)
        }
        #expect(cluster.committedPayloads == Set((0..<20).map { "record-\($0)" }))
        cluster.checkLogs()
        #expect(cluster.checker.failures == [])
        #expect(cluster.checker.votesChecked >= 1)
        // Every follower acknowledged (the leader's appends often carry several entries).
        #expect(cluster.checker.acknowledgementsChecked >= 2)
        #expect(cluster.checker.termsChecked > cluster.checker.acknowledgementsChecked)
    }

    @Test func restartRecoversTermVoteAndLogFromDisk() throws {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 12)
        cluster.startAll()
        let firstLeader = try #require(cluster.awaitLeader())
        for number in 0..<10 { cluster.proposeOnLeader("before-\(number)") }
        cluster.run(for: .seconds(1))
        let before = cluster.voters.map { id in (cluster.node(id)!.core!.hardState, cluster.node(id)!.core!.entries) }
        let committedBefore = firstLeader.commitIndex
        #expect(committedBefore == LogIndex(11))

        // Power loss on every machine at once, everything synced by now.
        for id in cluster.voters { cluster.crash(id, powerLoss: true) }
        cluster.run(for: .milliseconds(100))
        cluster.startAll()
        for (position, id) in cluster.voters.enumerated() {
            let core = try #require(cluster.node(id)?.core)
            #expect(core.hardState == before[position].0, "node \(id) recovered \(core.hardState)")
            #expect(core.entries == before[position].1, "node \(id) recovered \(core.entries.count) entries")
            #expect(core.commitIndex == .zero, "the commit index is learned again from the leader")
        }

        let secondLeader = try #require(cluster.awaitLeader())
        #expect(secondLeader.term > firstLeader.term)
        cluster.proposeOnLeader("after")
        cluster.run(for: .seconds(1))
        // Every node re-applied the old entries from index 1, identical (the checker compares
        // them with what was committed before the crash), then the new one.
        #expect(cluster.committedPayloads.contains("after"))
        for node in cluster.runningNodes { #expect(node.commitIndex == LogIndex(13)) }
        cluster.checkLogs()
        #expect(cluster.checker.failures == [])
    }

    @Test func aFollowerThatLostItsUnsyncedTailCatchesUp() throws {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 13)
        cluster.startAll()
        let leader = try #require(cluster.awaitLeader())
        let follower = cluster.voters.first { $0 != leader.nodeID }!
        cluster.crash(follower, powerLoss: true)
        for number in 0..<30 { cluster.proposeOnLeader("while-down-\(number)") }
        cluster.run(for: .milliseconds(500))
        cluster.start(follower)
        cluster.run(for: .seconds(2))
        #expect(cluster.node(follower)?.commitIndex == leader.core?.lastIndex)
        cluster.checkLogs()
        #expect(cluster.checker.failures == [])
    }

    /// A vote request reaches node 2; the vote is decided at once, but the response may leave only
    /// once term and vote are durable. Crash before that: no vote was given, none is remembered.
    @Test func aVoteIsNeverSentBeforeItIsDurable() throws {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 14, diskConfiguration: .benignCrashes)
        cluster.startAll()
        let voter = NodeID(2)
        let disk = cluster.hosts[1].disk
        let request = RaftMessageCodec.encode(RaftMessage(from: NodeID(1), to: voter, term: Term(1),
            body: .voteRequest(RaftVoteRequest(isPreVote: false, lastLogIndex: .zero, lastLogTerm: .zero))))

        var effects: [NodeEffect] = []
        cluster.node(voter)!.handle(.message(from: NodeID(1), bytes: request), now: cluster.now, effects: &effects)
        #expect(effects.isEmpty, "nothing leaves before the vote is durable")
        #expect(cluster.node(voter)!.core!.votedFor == NodeID(1), "the vote is decided in memory")
        cluster.crash(voter, powerLoss: true)
        cluster.start(voter)
        #expect(cluster.node(voter)!.core!.hardState == .initial, "the undurable vote is gone after the crash")

        // Again, this time letting the disk finish: the response leaves exactly when the vote is durable.
        effects = []
        cluster.node(voter)!.handle(.message(from: NodeID(1), bytes: request), now: cluster.now, effects: &effects)
        var sentVote = false
        for _ in 0..<100 where !sentVote {
            #expect(effects.isEmpty)
            let durableBefore = disk.durableContents(of: SimulatedCluster.hardStatePath(voter)).flatMap { try? HardStateDecoding.decode($0) }
            guard let due = disk.nextCompletionTime else { break }
            disk.advance(to: due)
            cluster.now = due
            var completions: [SyncCompletion] = []
            disk.pollCompletions(into: &completions)
            for completion in completions {
                cluster.node(voter)!.handle(.syncCompleted(completion), now: due, effects: &effects)
            }
            if let send = effects.first, case let .send(to, bytes) = send {
                let response = try RaftMessageCodec.decode(bytes)
                #expect(to == NodeID(1))
                #expect(response.body == .voteResponse(isPreVote: false, granted: true))
                let durable = disk.durableContents(of: SimulatedCluster.hardStatePath(voter)).flatMap { try? HardStateDecoding.decode($0) }
                #expect(durable == RaftHardState(term: Term(1), votedFor: NodeID(1)))
                #expect(durableBefore != durable, "the vote became durable with the last completion")
                sentVote = true
            }
        }
        #expect(sentVote)
    }

    /// Entries a follower acknowledges are durable on its disk; crash before the sync completes
    /// and they are gone, and no acknowledgement was sent.
    @Test func anAppendIsAcknowledgedOnlyOnceDurable() throws {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 15, diskConfiguration: .benignCrashes)
        cluster.startAll()
        cluster.run(for: .milliseconds(100))
        let follower = NodeID(3)
        let term = Term(1)
        // Node 1 plays leader of term 1 by hand.
        let entries = [RaftLogEntry(index: LogIndex(1), term: term, kind: .leaderChange, payload: []),
                       RaftLogEntry(index: LogIndex(2), term: term, payload: Array("x".utf8))]
        let append = RaftMessageCodec.encode(RaftMessage(from: NodeID(1), to: follower, term: term,
            body: .appendEntries(RaftAppendEntries(previousIndex: .zero, previousTerm: .zero, entries: entries, leaderCommit: .zero))))
        var effects: [NodeEffect] = []
        cluster.node(follower)!.handle(.message(from: NodeID(1), bytes: append), now: cluster.now, effects: &effects)
        #expect(effects.isEmpty)
        #expect(cluster.node(follower)!.core!.lastIndex == LogIndex(2))
        cluster.crash(follower, powerLoss: true)
        cluster.start(follower)
        #expect(cluster.node(follower)!.core!.lastIndex == .zero)
        #expect(cluster.node(follower)!.term == .zero)

        cluster.node(follower)!.handle(.message(from: NodeID(1), bytes: append), now: cluster.now, effects: &effects)
        let disk = cluster.hosts[2].disk
        while effects.isEmpty, let due = disk.nextCompletionTime {
            disk.advance(to: due)
            cluster.now = due
            var completions: [SyncCompletion] = []
            disk.pollCompletions(into: &completions)
            for completion in completions { cluster.node(follower)!.handle(.syncCompleted(completion), now: due, effects: &effects) }
        }
        guard case let .send(_, bytes)? = effects.first else {
            Issue.record("no acknowledgement after the disk settled")
            return
        }
        #expect(try RaftMessageCodec.decode(bytes).body == .appendAccepted(matchIndex: LogIndex(2)))
        cluster.crash(follower, powerLoss: true)
        cluster.start(follower)
        #expect(cluster.node(follower)!.core!.entries == entries)
        #expect(cluster.node(follower)!.term == term)
    }

    /// A follower on a slow disk answers heartbeats while its newest entry is still being
    /// synced (a late answer would cost the leader its quorum); the acknowledgement of that
    /// entry leaves only with the sync.
    @Test func heartbeatsAreAnsweredWhileASyncIsInFlight() throws {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 19, diskConfiguration: .benignCrashes)
        cluster.startAll()
        cluster.run(for: .milliseconds(100))
        let follower = NodeID(3)
        let node = try #require(cluster.node(follower))
        let disk = cluster.hosts[2].disk
        let term = Term(1)
        func fromLeader(_ body: RaftMessageBody) -> NodeEvent {
            .message(from: NodeID(1), bytes: RaftMessageCodec.encode(RaftMessage(from: NodeID(1), to: follower, term: term, body: body)))
        }
        func sent(_ effects: [NodeEffect]) -> [RaftMessageBody] {
            effects.compactMap { effect in
                guard case let .send(_, bytes) = effect else { return nil }
                cluster.checker.observeSend(bytes, from: follower, disk: disk, directory: SimulatedCluster.directory(follower))
                return try? RaftMessageCodec.decode(bytes).body
            }
        }
        func handle(_ event: NodeEvent) -> [RaftMessageBody] {
            var effects: [NodeEffect] = []
            node.handle(event, now: cluster.now, effects: &effects)
            return sent(effects)
        }
        /// Completes the disk's writes one at a time until a message leaves.
        func syncUntilSomethingLeaves() -> [RaftMessageBody] {
            while let due = disk.nextCompletionTime {
                disk.advance(to: due)
                cluster.now = due
                var completions: [SyncCompletion] = []
                disk.pollCompletions(into: &completions)
                let bodies = completions.flatMap { handle(.syncCompleted($0)) }
                if !bodies.isEmpty { return bodies }
            }
            return []
        }
        func append(_ index: Int64) -> RaftMessageBody {
            .appendEntries(RaftAppendEntries(previousIndex: LogIndex(index - 1), previousTerm: index == 1 ? .zero : term,
                                             entries: [RaftLogEntry(index: LogIndex(index), term: term, payload: [UInt8(index)])],
                                             leaderCommit: .zero))
        }

        // Node 1 plays leader of term 1 by hand; term 1 and entry 1 become durable on node 3.
        #expect(handle(fromLeader(append(1))) == [])
        #expect(syncUntilSomethingLeaves() == [.appendAccepted(matchIndex: LogIndex(1))])

        #expect(handle(fromLeader(append(2))) == [], "entry 2 is being written")
        #expect(disk.nextCompletionTime != nil)
        #expect(handle(fromLeader(.heartbeat(commitIndex: LogIndex(1)))) == [.heartbeatResponse])
        #expect(disk.nextCompletionTime != nil, "answered while the sync is in flight")
        #expect(node.core?.durableIndex == LogIndex(1))
        #expect(node.statistics.messagesSentAheadOfPersistence == 1)

        #expect(syncUntilSomethingLeaves() == [.appendAccepted(matchIndex: LogIndex(2))])
        #expect(node.core?.durableIndex == LogIndex(2))
        #expect(cluster.checker.acknowledgementsChecked == 2)
        #expect(cluster.checker.termsChecked == 3)
        #expect(cluster.checker.failures == [])
    }

    @Test func aSingleVoterCommitsAlone() throws {
        let cluster = SimulatedCluster(nodeCount: 1, seed: 16)
        cluster.startAll()
        let leader = try #require(cluster.awaitLeader())
        cluster.proposeOnLeader("solo")
        cluster.run(for: .milliseconds(200))
        #expect(leader.commitIndex == LogIndex(2))
        #expect(cluster.committedPayloads == ["solo"])
    }

    @Test func undecodableBytesAreCountedAndIgnored() throws {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 17)
        cluster.startAll()
        var effects: [NodeEffect] = []
        let node = cluster.node(NodeID(1))!
        node.handle(.message(from: NodeID(2), bytes: [0x52, 1, 99]), now: cluster.now, effects: &effects)
        node.handle(.message(from: NodeID(2), bytes: []), now: cluster.now, effects: &effects)
        // A well-formed message whose sender field lies about the connection.
        let forged = RaftMessageCodec.encode(RaftMessage(from: NodeID(3), to: NodeID(1), term: Term(5), body: .heartbeatResponse))
        node.handle(.message(from: NodeID(2), bytes: forged), now: cluster.now, effects: &effects)
        #expect(node.statistics.undecodableMessages == 2)
        #expect(node.statistics.misattributedMessages == 1)
        #expect(node.term == .zero)
        #expect(node.stopReason == nil)
    }
}

extension RaftNodeTests {
    /// A new leader's own entry may be committed before the entries committed in earlier terms
    /// have reached the application; `hasAppliedEntryOfCurrentTerm` waits for both.
    @Test func aLeaderIsReadyOnlyOnceItsTermIsApplied() throws {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 18)
        cluster.startAll()
        var readyLeaders: [NodeID] = []
        cluster.run(for: .seconds(4)) { cluster in
            for node in cluster.runningNodes where node.hasAppliedEntryOfCurrentTerm {
                let core = node.core!
                #expect(core.isLeader)
                #expect(core.entry(at: core.appliedIndex)?.term == core.term)
                #expect(core.appliedIndex <= core.commitIndex)
                if !readyLeaders.contains(node.nodeID) { readyLeaders.append(node.nodeID) }
            }
        }
        #expect(readyLeaders.count == 1)
    }
}
