import Raft
import Testing
import TernCore

/// Single-node properties of `RaftCore` that transcripts do not show well: limits, bounds, the
/// Ready contract, determinism of the election jitter.
struct RaftCoreTests {
    static let voters = [NodeID(1), NodeID(2), NodeID(3)]

    static func core(_ id: Int32 = 1, voters: [NodeID] = voters, seed: UInt64 = 1,
                     configure: (inout RaftConfiguration) -> Void = { _ in }) -> RaftCore {
        var configuration = RaftConfiguration(nodeID: NodeID(id), voters: voters)
        configure(&configuration)
        return RaftCore(configuration: configuration, random: DeterministicRandom(seed: seed), now: .zero)
    }

    /// Runs readies with instant storage until none is left.
    static func drain(_ core: inout RaftCore) -> [RaftReady] {
        var readies: [RaftReady] = []
        for _ in 0..<100 where core.hasReady() {
            let ready = core.ready()
            readies.append(ready)
            core.advance(ready, now: .zero)
        }
        return readies
    }

    static func singleNodeLeader(configure: (inout RaftConfiguration) -> Void = { _ in }) throws -> RaftCore {
        var core = core(voters: [NodeID(1)], configure: configure)
        try core.step(.campaign, now: .zero)
        #expect(core.isLeader)
        _ = drain(&core)
        #expect(core.commitIndex == LogIndex(1))
        return core
    }

    @Test func theLeaderCountsItsOwnEntryOnlyOnceDurable() throws {
        var core = try Self.singleNodeLeader()
        let index = try core.propose(Array("x".utf8), now: .zero)
        #expect(index == LogIndex(2))
        let ready = core.ready()
        #expect(ready.entries.map(\.index) == [LogIndex(2)])
        #expect(core.commitIndex == LogIndex(1), "not committed before storage says it is durable")
        #expect(!core.hasReady(), "one Ready at a time")
        core.advance(ready, now: .zero)
        #expect(core.commitIndex == LogIndex(2))
        let next = core.ready()
        #expect(next.committedEntries.map(\.payload) == [Array("x".utf8)])
        core.advance(next, now: .zero)
        #expect(core.appliedIndex == LogIndex(2))
    }

    @Test func proposalsAreRefusedWithReasons() throws {
        var follower = Self.core()
        #expect(throws: RaftRequestError.notLeader(leaderID: nil)) { try follower.propose([], now: .zero) }

        var leader = try Self.singleNodeLeader { configuration in
            configuration.maximumPayloadBytes = 8
            configuration.maximumUncommittedEntries = 2
            configuration.maximumLogEntries = 4
        }
        #expect(throws: RaftRequestError.payloadTooLarge(bytes: 9, limit: 8)) {
            try leader.propose([UInt8](repeating: 0, count: 9), now: .zero)
        }
        _ = try leader.propose([1], now: .zero)
        _ = try leader.propose([2], now: .zero)
        #expect(throws: RaftRequestError.tooManyUncommittedEntries(limit: 2)) { try leader.propose([3], now: .zero) }
        _ = Self.drain(&leader)
        _ = try leader.propose([3], now: .zero)
        _ = Self.drain(&leader)
        #expect(throws: RaftRequestError.logFull(limit: 4)) { try leader.propose([4], now: .zero) }
        #expect(throws: RaftRequestError.invalidTransferTarget(NodeID(9))) {
            try leader.step(.transferLeadership(to: NodeID(9)), now: .zero)
        }
    }

    @Test func messagesThatMakeNoSenseAreIgnored() {
        var core = Self.core()
        let from2 = NodeID(2)
        let bad = [
            RaftMessage(from: from2, to: NodeID(3), term: Term(9), body: .heartbeat(commitIndex: .zero)),  // not for us
            RaftMessage(from: NodeID(7), to: NodeID(1), term: Term(9), body: .heartbeat(commitIndex: .zero)),  // not a voter
            RaftMessage(from: NodeID(1), to: NodeID(1), term: Term(9), body: .heartbeat(commitIndex: .zero)),  // from ourselves
            RaftMessage(from: from2, to: NodeID(1), term: Term(9), body: .appendEntries(RaftAppendEntries(
                previousIndex: .zero, previousTerm: .zero,
                entries: [RaftLogEntry(index: LogIndex(2), term: Term(1), payload: [])], leaderCommit: .zero))),  // gap
        ]
        for message in bad { try? core.step(.receive(message), now: .zero) }
        #expect(core.statistics.messagesIgnored == bad.count)
        #expect(core.term == .zero)
        #expect(!core.hasReady())
    }

    @Test func electionTimeoutsAreJitteredFromTheInjectedGenerator() {
        var deadlines: Set<Int64> = []
        for seed in 1...50 as ClosedRange<UInt64> {
            let first = Self.core(seed: seed).nextDeadline
            #expect(first == Self.core(seed: seed).nextDeadline, "same seed, same timeout")
            #expect(first >= Instant.zero + .seconds(1) && first < Instant.zero + .seconds(2))
            deadlines.insert(first.nanoseconds)
        }
        #expect(deadlines.count > 40, "timeouts spread over the range")
    }

    /// On a disk slower than the election timeout, a node whose term and vote are still being
    /// persisted does not campaign again, and the election clock starts when its vote leaves:
    /// otherwise every campaign is abandoned before the voters could answer (seed 1260 of crash,
    /// `--combined 3`, never elected a leader in its liveness phase).
    @Test func theElectionClockWaitsForTheVoteToBeDurable() throws {
        let at = { (milliseconds: Int64) in Instant.zero + .milliseconds(milliseconds) }
        var candidate = Self.core()
        try candidate.step(.campaign, now: .zero)
        try candidate.step(.receive(RaftMessage(from: NodeID(2), to: NodeID(1), term: Term(1),
                                                body: .voteResponse(isPreVote: true, granted: true))), now: .zero)
        #expect(candidate.role == .candidate && candidate.term == Term(1))
        let campaign = candidate.ready()
        candidate.tick(now: at(5_000))
        #expect(candidate.role == .candidate && candidate.term == Term(1), "its own vote is not durable yet")
        candidate.advance(campaign, now: at(5_000))
        candidate.tick(now: at(5_999))
        #expect(candidate.role == .candidate, "the requests left at 5 s: the voters get a whole timeout")
        candidate.tick(now: at(7_000))
        #expect(candidate.role == .preCandidate, "and no more")

        var voter = Self.core(3)
        try voter.step(.receive(RaftMessage(from: NodeID(1), to: NodeID(3), term: Term(1), body: .voteRequest(RaftVoteRequest(
            isPreVote: false, lastLogIndex: .zero, lastLogTerm: .zero, isLeadershipTransfer: false)))), now: .zero)
        let vote = voter.ready()
        #expect(vote.messages.map(\.body) == [.voteResponse(isPreVote: false, granted: true)])
        voter.tick(now: at(5_000))
        #expect(voter.role == .follower, "the vote it granted is not durable yet")
        voter.advance(vote, now: at(5_000))
        voter.tick(now: at(5_999))
        #expect(voter.role == .follower, "the candidate gets a whole timeout to win from when the vote left")
        voter.tick(now: at(7_000))
        #expect(voter.role == .preCandidate)
    }

    @Test func theOutboxIsBounded() throws {
        var core = Self.core { configuration in configuration.maximumPendingMessages = 4 }
        for round in 1...10 {
            let heartbeat = RaftMessage(from: NodeID(2), to: NodeID(1), term: Term(1), body: .heartbeat(commitIndex: .zero))
            try core.step(.receive(heartbeat), now: Instant(nanoseconds: Int64(round)))
        }
        let ready = core.ready()
        #expect(ready.messages.count == 4)
        #expect(core.statistics.messagesDropped == 6)
    }

    @Test func anUnfinishedTransferEndsAfterAnElectionTimeout() throws {
        var leader = Self.core()
        try leader.step(.campaign, now: .zero)
        for voter in [NodeID(2), NodeID(3)] {
            try leader.step(.receive(RaftMessage(from: voter, to: NodeID(1), term: Term(1),
                                                 body: .voteResponse(isPreVote: true, granted: true))), now: .zero)
            try leader.step(.receive(RaftMessage(from: voter, to: NodeID(1), term: Term(1),
                                                 body: .voteResponse(isPreVote: false, granted: true))), now: .zero)
        }
        #expect(leader.isLeader)
        try leader.step(.transferLeadership(to: NodeID(2)), now: .zero)
        #expect(throws: RaftRequestError.leadershipTransferInProgress) { try leader.propose([], now: .zero) }
        // Followers keep answering heartbeats, so check-quorum keeps the leader in place.
        var now = Instant.zero
        for _ in 0..<11 {
            now += .milliseconds(100)
            leader.tick(now: now)
            for voter in [NodeID(2), NodeID(3)] {
                try leader.step(.receive(RaftMessage(from: voter, to: NodeID(1), term: Term(1), body: .heartbeatResponse)), now: now)
            }
        }
        #expect(leader.isLeader)
        #expect(leader.leadershipTransferTarget == nil)
        #expect(try leader.propose([], now: now) == LogIndex(2))
    }

    /// Leader of term 1 of three voters whose followers hold its first entry, its Readies
    /// drained (term and vote durable).
    static func threeVoterLeader() throws -> RaftCore {
        var leader = core()
        try leader.step(.campaign, now: .zero)
        for voter in [NodeID(2), NodeID(3)] {
            for isPreVote in [true, false] {
                try leader.step(.receive(RaftMessage(from: voter, to: NodeID(1), term: Term(1),
                                                     body: .voteResponse(isPreVote: isPreVote, granted: true))), now: .zero)
            }
        }
        #expect(leader.isLeader)
        _ = drain(&leader)
        for voter in [NodeID(2), NodeID(3)] {
            try leader.step(.receive(RaftMessage(from: voter, to: NodeID(1), term: Term(1),
                                                 body: .appendAccepted(matchIndex: LogIndex(1)))), now: .zero)
        }
        _ = drain(&leader)
        #expect(leader.commitIndex == LogIndex(1))
        return leader
    }

    /// Raft thesis §10.2.1: the leader sends its appends while its own copy is still being
    /// written, and counts that copy toward commitment only once storage says it is durable.
    @Test func theLeaderAppendsAheadOfItsOwnSyncAndCountsItselfOnceDurable() throws {
        var leader = try Self.threeVoterLeader()
        let index = try leader.propose(Array("x".utf8), now: .zero)
        #expect(leader.takeMessagesSendableNow().count == 2, "an append to each follower")
        let ready = leader.ready()
        #expect(ready.entries.map(\.index) == [index])
        #expect(ready.messages.isEmpty, "the appends did not wait for the Ready")
        _ = try leader.propose(Array("y".utf8), now: .zero)  // while the first Ready persists
        let sent = leader.takeMessagesSendableNow()
        #expect(sent.map(\.to) == [NodeID(2), NodeID(3)])
        for message in sent {
            guard case let .appendEntries(append) = message.body else {
                Issue.record("expected an append, got \(message)")
                continue
            }
            #expect(append.entries.last?.index == index.next)
        }
        try leader.step(.receive(RaftMessage(from: NodeID(2), to: NodeID(1), term: Term(1),
                                             body: .appendAccepted(matchIndex: index.next))), now: .zero)
        #expect(leader.commitIndex == index.previous, "one follower and a copy not yet durable are not a quorum")
        leader.advance(ready, now: .zero)
        #expect(leader.commitIndex == index, "its own durable copy and the follower's make a quorum")
    }

    /// Messages leave ahead of a Ready only while the term and vote are durable, and never a
    /// vote or an acknowledgement of entries.
    @Test func onlyMessagesVouchingForADurableTermLeaveAheadOfTheReady() throws {
        var follower = Self.core(2)
        let heartbeat = { (term: Int64) in
            RaftMessage(from: NodeID(1), to: NodeID(2), term: Term(term), body: .heartbeat(commitIndex: .zero))
        }
        try follower.step(.receive(heartbeat(1)), now: .zero)
        #expect(follower.takeMessagesSendableNow() == [], "term 1 is not durable yet")
        let ready = follower.ready()
        #expect(ready.hardState?.term == Term(1))
        #expect(ready.messages.map(\.body) == [.heartbeatResponse])
        try follower.step(.receive(heartbeat(1)), now: .zero)
        #expect(follower.takeMessagesSendableNow() == [], "term 1 is durable only once its Ready is")
        follower.advance(ready, now: .zero)
        let answer = follower.takeMessagesSendableNow()
        #expect(answer.map(\.body) == [.heartbeatResponse])
        #expect(!follower.hasReady())

        let append = RaftMessage(from: NodeID(1), to: NodeID(2), term: Term(1), body: .appendEntries(RaftAppendEntries(
            previousIndex: .zero, previousTerm: .zero, entries: [RaftLogEntry(index: LogIndex(1), term: Term(1), payload: [])],
            leaderCommit: .zero)))
        try follower.step(.receive(append), now: .zero)
        try follower.step(.receive(heartbeat(1)), now: .zero)
        #expect(follower.takeMessagesSendableNow().map(\.body) == [.heartbeatResponse])
        let withEntries = follower.ready()
        #expect(withEntries.messages.map(\.body) == [.appendAccepted(matchIndex: LogIndex(1))], "the acknowledgement waits for its entries")

        // A vote for a candidate of a later term: nothing leaves before the Ready, not even the
        // answer to a heartbeat of the old term queued with it.
        follower.advance(withEntries, now: .zero)
        try follower.step(.receive(heartbeat(1)), now: .zero)
        try follower.step(.receive(RaftMessage(from: NodeID(3), to: NodeID(2), term: Term(2), body: .voteRequest(
            RaftVoteRequest(isPreVote: false, lastLogIndex: LogIndex(1), lastLogTerm: Term(1), isLeadershipTransfer: true)))), now: .zero)
        #expect(follower.votedFor == NodeID(3))
        #expect(follower.takeMessagesSendableNow() == [])
        #expect(follower.ready().messages.map(\.body) == [.heartbeatResponse, .voteResponse(isPreVote: false, granted: true)])
    }
}
