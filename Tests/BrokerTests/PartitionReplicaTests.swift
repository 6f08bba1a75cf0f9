@testable import Broker
import Controller
import KafkaProtocol
import LogStorage
import SimWorld
import Simulator
import TernCore
import Testing

// Scenario tests of `PartitionReplica`: three brokers (1, 2, 3), each with its own PartitionLog on
// its own SimDisk, driven by calling the state machines directly. The "controller" is the test.

private let startTime = Instant(nanoseconds: 1_700_000_000_000 * 1_000_000)
private let logDirectory = "/data/topic-0"

private func clientBatch(records: Int, seed: UInt64) -> [UInt8] {
    var random = DeterministicRandom(seed: seed)
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    for index in 0..<records {
        var value = [UInt8](repeating: 0, count: 16)
        random.fill(&value)
        builder.append(key: Array("key-\(index)".utf8), value: value)
    }
    return builder.build()
}

/// One broker's replica of the partition.
private final class ReplicaNode {
    let id: NodeID
    let disk: SimDisk
    let configuration: ReplicationConfiguration
    var log: PartitionLog
    var replica: PartitionReplica

    init(id: Int32, configuration: ReplicationConfiguration) throws {
        self.id = NodeID(id)
        self.configuration = configuration
        var diskConfiguration = SimDisk.Configuration.benignCrashes
        diskConfiguration.directoryCreationIsDurable = true
        disk = SimDisk(random: DeterministicRandom(seed: UInt64(100 + id)), configuration: diskConfiguration)
        try disk.makeDirectory("/data")
        log = try PartitionLog.open(directory: logDirectory, disk: disk, wallClock: startTime)
        replica = PartitionReplica(localID: self.id, log: log, configuration: configuration)
    }

    /// Power loss: unsynced writes are gone; the broker restarts with a fresh state machine.
    func crashAndRestart(now: Instant) throws {
        disk.crash()
        log = try PartitionLog.open(directory: logDirectory, disk: disk, wallClock: now)
        replica = PartitionReplica(localID: id, log: log, configuration: configuration)
    }

    func contents() throws -> [UInt8] { try log.read(from: log.logStartOffset, maxBytes: 1 << 24).bytes }
}

/// Three replicas and the test acting as controller and network.
private final class ReplicaCluster {
    var now = startTime
    let nodes: [ReplicaNode]
    /// Every `acks=all` answer delivered so far, and every ISR change proposed.
    var completions: [AppendCompletion] = []
    var proposals: [AlterPartitionProposal] = []
    var highWatermarkChanges = 0

    init(_ configuration: ReplicationConfiguration = ReplicationConfiguration(minInSyncReplicas: 2)) throws {
        nodes = try (1...3).map { try ReplicaNode(id: Int32($0), configuration: configuration) }
        for id in 1...3 { sync(id) }
    }

    func node(_ id: Int) -> ReplicaNode { nodes[id - 1] }
    func replica(_ id: Int) -> PartitionReplica { node(id).replica }
    func hw(_ id: Int) -> Offset { replica(id).highWatermark }
    func leo(_ id: Int) -> Offset { replica(id).logEndOffset }
    var ids: [NodeID] { nodes.map(\.id) }

    func record(_ update: ReplicaUpdate) {
        completions += update.completions
        if let proposal = update.proposal { proposals.append(proposal) }
        if update.highWatermarkChanged { highWatermarkChanges += 1 }
        #expect(update.logError == nil)
    }

    /// The controller's decision: `leader` leads `epoch`, the other live brokers follow.
    func elect(leader: Int, epoch: Int32, partitionEpoch: Int32, isr: [Int], followers: [Int]? = nil) {
        record(replica(leader).becomeLeader(leaderEpoch: LeaderEpoch(epoch), partitionEpoch: PartitionEpoch(partitionEpoch),
                                            replicas: ids, isr: isr.map { NodeID(Int32($0)) }, now: now))
        for id in followers ?? (1...3).filter({ $0 != leader }) {
            record(replica(id).becomeFollower(leader: NodeID(Int32(leader)), leaderEpoch: LeaderEpoch(epoch), now: now))
        }
    }

    /// The controller commits the leader's pending ISR change.
    func commitProposal(leader: Int) {
        guard let proposal = replica(leader).pendingProposal else {
            Issue.record("no pending proposal")
            return
        }
        record(replica(leader).applyCommittedPartitionState(isr: proposal.newISR, leaderEpoch: proposal.leaderEpoch,
                                                           partitionEpoch: proposal.partitionEpoch.next, now: now))
    }

    func produce(_ leader: Int, records: Int = 5, acks: Acks = .all, seed: UInt64 = 1) -> AppendOutcome {
        var bytes = clientBatch(records: records, seed: seed)
        return replica(leader).appendClientBatch(&bytes, acks: acks, now: now, wallClock: now)
    }

    /// One fetch round trip from follower `id` to its leader: the fetch it would send now, or
    /// `request` (one it made earlier and that was delayed).
    @discardableResult
    func fetch(_ id: Int, brokerEpoch: Int64 = -1, request delayed: FetchRequestParameters? = nil) -> FollowerFetchResult? {
        let follower = node(id)
        guard let request = delayed ?? follower.replica.nextFetch(now: now) else { return nil }
        let leader = node(Int(request.leader.rawValue))
        let outcome = leader.replica.handleFollowerFetch(
            follower: follower.id, fetchOffset: request.fetchOffset, lastFetchedEpoch: request.lastFetchedEpoch,
            followerDurableOffset: request.durableOffset, followerBrokerEpoch: BrokerEpoch(brokerEpoch),
            followerAcknowledgedLoss: request.acknowledgedLoss, currentLeaderEpoch: request.currentLeaderEpoch, now: now)
        record(outcome.update)
        record(follower.replica.handleFetchResponse(FollowerFetchResponse(request: request, result: outcome.result), wallClock: now))
        return outcome.result
    }

    /// Group commit on broker `id`: flush, then deliver syncs until its log has nothing in flight.
    func sync(_ id: Int) {
        let node = node(id)
        node.replica.flush()
        var ready: [SyncCompletion] = []
        for _ in 0..<10_000 {
            node.disk.pollCompletions(into: &ready)
            for completion in ready { record(node.replica.handleSyncCompletion(completion, now: now).update) }
            ready.removeAll()
            if node.log.isIdle { return }
            guard let next = node.disk.nextCompletionTime else { break }
            node.disk.advance(to: next)
        }
        Issue.record("broker \(id)'s log did not settle")
    }

    /// Fetch, sync, fetch again for each follower: the leader learns the durable offsets.
    func replicateFully(followers: [Int]) {
        for id in followers { fetch(id); sync(id) }
        for id in followers { fetch(id) }
    }

    func advance(_ duration: Duration) { now += duration }

    func tick(_ leader: Int) { record(replica(leader).tick(now: now)) }
}

private func ticket(of outcome: AppendOutcome) -> AppendTicket? {
    if case let .pending(_, ticket) = outcome { return ticket }
    return nil
}

@Suite struct PartitionReplicaTests {
    @Test func highWatermarkIsMinimumDurableOffsetOverISRAndNeverGoesBackwards() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        _ = cluster.produce(1, records: 5)
        cluster.sync(1)
        #expect(cluster.hw(1) == Offset(0), "followers have not fetched")

        cluster.fetch(2)
        cluster.fetch(3)
        #expect(cluster.leo(2) == Offset(5) && cluster.leo(3) == Offset(5))
        cluster.fetch(2)
        cluster.fetch(3)
        #expect(cluster.hw(1) == Offset(0), "in the followers' page caches only: nothing counts under .synced")

        cluster.sync(2)
        cluster.fetch(2)
        #expect(cluster.hw(1) == Offset(0), "broker 3 has not synced")

        cluster.sync(3)
        cluster.fetch(3)
        #expect(cluster.hw(1) == Offset(5))
        cluster.fetch(2)
        #expect(cluster.hw(2) == Offset(5), "the high watermark reaches followers through fetch responses")

        // A follower reporting less (say it lost its page cache) never moves the HW back.
        _ = cluster.replica(1).handleFollowerFetch(follower: NodeID(3), fetchOffset: Offset(5), lastFetchedEpoch: LeaderEpoch(1),
                                                   followerDurableOffset: Offset(0), now: cluster.now)
        #expect(cluster.hw(1) == Offset(5))
    }

    @Test func acksAllCompletesOnlyOnceTheHighWatermarkCoversTheBatch() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        let first = cluster.produce(1, records: 3, seed: 1)
        let second = cluster.produce(1, records: 4, seed: 2)
        guard case let .pending(firstInfo, firstTicket) = first, case let .pending(_, secondTicket) = second else {
            Issue.record("acks=all appends wait for the high watermark: \(first), \(second)")
            return
        }
        #expect(firstInfo.firstOffset == Offset(0) && firstInfo.lastOffset == Offset(2))
        cluster.sync(1)
        cluster.fetch(2)
        cluster.fetch(3)
        #expect(cluster.completions.isEmpty, "replicated but not yet durable on the followers")

        cluster.sync(2)
        cluster.sync(3)
        cluster.fetch(2)
        #expect(cluster.completions.isEmpty, "broker 3 has not reported its durable offset yet")
        cluster.fetch(3)
        #expect(cluster.hw(1) == Offset(7))
        #expect(cluster.completions.map(\.ticket) == [firstTicket, secondTicket])
        #expect(cluster.completions.allSatisfy { $0.error == .none })

        // acks=1 answers at once.
        if case .completed(_, .none) = cluster.produce(1, acks: .leader) {} else { Issue.record("acks=1 answers at once") }
    }

    @Test func notEnoughReplicasIsRefusedBeforeAppending() throws {
        let cluster = try ReplicaCluster(ReplicationConfiguration(minInSyncReplicas: 3))
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2])
        #expect(cluster.produce(1, acks: .all) == .rejected(.notEnoughReplicas, logError: nil))
        #expect(cluster.leo(1) == Offset(0), "nothing appended")
        if case .completed = cluster.produce(1, acks: .leader) {} else { Issue.record("acks=1 does not need the ISR") }
        #expect(cluster.leo(1) == Offset(5))
        // A follower is not a leader.
        #expect(cluster.produce(2, acks: .leader) == .rejected(.notLeaderOrFollower, logError: nil))
    }

    @Test func isrShrinkAfterTheLagTimeStopsAtMinInSyncReplicas() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        let pending = cluster.produce(1)
        #expect(ticket(of: pending) != nil)
        cluster.sync(1)

        // Neither follower fetches for longer than replica.lag.time.max.ms: only one may leave,
        // so the ISR keeps min.insync.replicas (2) members, each holding every committed record.
        cluster.advance(.seconds(31))
        cluster.tick(1)
        let proposal = try #require(cluster.proposals.last)
        #expect(proposal.newISR == [NodeID(1), NodeID(3)])
        #expect(proposal.partitionEpoch == PartitionEpoch(1))
        #expect(cluster.replica(1).isr == [NodeID(1), NodeID(2), NodeID(3)], "only proposed")
        cluster.commitProposal(leader: 1)
        #expect(cluster.replica(1).isr == [NodeID(1), NodeID(3)])
        cluster.tick(1)
        #expect(cluster.proposals.count == 1, "no shrink below min.insync.replicas")
        #expect(cluster.completions.isEmpty, "the append waits for broker 3")
        #expect(cluster.produce(1, acks: .all) == .rejected(.notEnoughReplicas, logError: nil),
                "new acks=all appends are refused while too few ISR members keep up")

        // Broker 3 comes back: the waiting append completes.
        cluster.fetch(3)
        cluster.sync(3)
        cluster.fetch(3)
        #expect(cluster.completions.map(\.error) == [.none])
        #expect(cluster.completions.first?.ticket == ticket(of: pending))
    }

    @Test func committedISRBelowMinInSyncFailsPendingAppendsWithNotEnoughReplicasAfterAppend() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        let pending = cluster.produce(1)
        cluster.sync(1)
        // The controller took members out for lost data (the only way below the floor).
        cluster.record(cluster.replica(1).applyCommittedPartitionState(isr: [NodeID(1)], leaderEpoch: LeaderEpoch(1),
                                                                       partitionEpoch: PartitionEpoch(2), now: cluster.now))
        #expect(cluster.replica(1).isr == [NodeID(1)])
        #expect(cluster.completions.map(\.error) == [.notEnoughReplicasAfterAppend])
        #expect(cluster.completions.first?.ticket == ticket(of: pending))
    }

    @Test func aCommittedISRBelowMinInSyncHoldsTheHighWatermark() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        cluster.record(cluster.replica(1).applyCommittedPartitionState(isr: [NodeID(1)], leaderEpoch: LeaderEpoch(1),
                                                                       partitionEpoch: PartitionEpoch(2), now: cluster.now))
        _ = cluster.produce(1, records: 5, acks: .leader)
        cluster.sync(1)
        #expect(cluster.hw(1) == Offset(0), "one ISR member of the two min.insync.replicas asks for")
        cluster.replicateFully(followers: [2, 3])
        #expect(cluster.hw(1) == Offset(0), "followers outside the ISR hold the data, but the committed ISR is still too small")
        #expect(cluster.replica(1).pendingProposal?.newISR == [NodeID(1), NodeID(2)])
        cluster.commitProposal(leader: 1)
        #expect(cluster.hw(1) == Offset(5), "two members now")
    }

    @Test func isrShrinksAndExpandsOnlyOnceTheControllerCommits() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        _ = cluster.produce(1, seed: 1)
        cluster.sync(1)
        cluster.replicateFully(followers: [2, 3])
        #expect(cluster.hw(1) == Offset(5))

        // Broker 3 stalls; broker 2 keeps fetching.
        for round in 0..<8 {
            cluster.advance(.seconds(5))
            _ = cluster.produce(1, seed: UInt64(10 + round))
            cluster.sync(1)
            cluster.fetch(2)
            cluster.sync(2)
            cluster.fetch(2)
            cluster.tick(1)
        }
        #expect(cluster.hw(1) == Offset(5), "broker 3 still holds the HW back")
        let shrink = try #require(cluster.proposals.last)
        #expect(shrink.newISR == [NodeID(1), NodeID(2)])
        #expect(cluster.replica(1).isr.count == 3, "a proposal does not change the ISR")

        cluster.commitProposal(leader: 1)
        #expect(cluster.replica(1).isr == [NodeID(1), NodeID(2)])
        #expect(cluster.replica(1).partitionEpoch == PartitionEpoch(2))
        #expect(cluster.hw(1) == cluster.leo(1), "without broker 3 the HW advances")

        // Broker 3 resumes and catches up: the leader proposes adding it back.
        let before = cluster.proposals.count
        cluster.fetch(3)
        cluster.sync(3)
        cluster.fetch(3)
        #expect(cluster.proposals.count == before + 1)
        let expand = try #require(cluster.proposals.last)
        #expect(expand.newISR == [NodeID(1), NodeID(2), NodeID(3)])
        #expect(expand.partitionEpoch == PartitionEpoch(2))
        #expect(cluster.replica(1).isr == [NodeID(1), NodeID(2)])
        #expect(cluster.replica(1).maximalISR == [NodeID(1), NodeID(2), NodeID(3)], "the HW already waits for broker 3")

        // A stale committed state (older partition epoch) changes nothing.
        cluster.record(cluster.replica(1).applyCommittedPartitionState(isr: [NodeID(1)], leaderEpoch: LeaderEpoch(1),
                                                                       partitionEpoch: PartitionEpoch(1), now: cluster.now))
        #expect(cluster.replica(1).isr == [NodeID(1), NodeID(2)])

        cluster.commitProposal(leader: 1)
        #expect(cluster.replica(1).isr == [NodeID(1), NodeID(2), NodeID(3)])
        #expect(cluster.replica(1).pendingProposal == nil)
    }

    /// Found by the simulator (`tern simulate --seed 56 --profile crash`, slow disks and election
    /// churn): a broker restarted with its high watermark checkpoint behind, became leader, and
    /// let a new replica join the ISR as soon as it had fetched the inherited records, before it
    /// had synced them. A preferred election made that replica leader, it crashed, came back
    /// empty, still in the ISR, and was elected again: the committed records were gone.
    @Test func underSyncedAFollowerJoinsOnlyOnceItHoldsTheInheritedRecordsDurably() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2], followers: [2])
        _ = cluster.produce(1, seed: 1)
        cluster.sync(1)
        cluster.replicateFully(followers: [2])
        #expect(cluster.hw(1) == Offset(5))
        try cluster.node(2).crashAndRestart(now: cluster.now)
        cluster.elect(leader: 2, epoch: 2, partitionEpoch: 2, isr: [1, 2], followers: [1, 3])
        #expect(cluster.hw(2) == Offset(0), "the new leader's checkpointed high watermark is behind what was committed")

        cluster.fetch(3)  // copies offsets 0..<5, not yet synced
        cluster.fetch(3)
        #expect(cluster.leo(3) == Offset(5))
        #expect(cluster.proposals.isEmpty, "broker 3 holds the committed records only in its page cache")
        cluster.sync(3)
        cluster.fetch(3)
        let expand = try #require(cluster.proposals.last)
        #expect(expand.newISR.contains(NodeID(3)))
    }

    @Test func followersNotKeepingUpBlockAcksAll() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        cluster.advance(.seconds(31))
        cluster.tick(1)
        cluster.commitProposal(leader: 1)
        #expect(cluster.replica(1).isr == [NodeID(1), NodeID(3)])

        #expect(cluster.produce(1, acks: .all) == .rejected(.notEnoughReplicas, logError: nil))
        if case .completed = cluster.produce(1, acks: .leader) {} else { Issue.record("acks=1 is still accepted") }
        cluster.sync(1)
        cluster.tick(1)
        #expect(cluster.hw(1) == Offset(0), "the HW does not advance while ISR < min.insync.replicas, even durable on the leader")
    }

    @Test func leaderCrashBeforeReplicatingIsTruncatedByEpochWhenItReturns() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        _ = cluster.produce(1, records: 5, seed: 1)
        cluster.sync(1)
        cluster.replicateFully(followers: [2, 3])
        #expect(cluster.hw(1) == Offset(5))

        // Appended and synced on the leader, never replicated; then the leader crashes.
        let unreplicated = cluster.produce(1, records: 3, seed: 2)
        #expect(ticket(of: unreplicated) != nil)
        cluster.sync(1)
        try cluster.node(1).crashAndRestart(now: cluster.now)
        cluster.sync(1)  // recovery's own durability barrier
        #expect(cluster.leo(1) == Offset(8), "the unreplicated tail survived the crash")

        // The controller elects broker 2 from the ISR; it writes in epoch 2.
        cluster.elect(leader: 2, epoch: 2, partitionEpoch: 2, isr: [2, 3], followers: [3])
        _ = cluster.produce(2, records: 4, seed: 3)
        cluster.sync(2)
        cluster.replicateFully(followers: [3])
        #expect(cluster.hw(2) == Offset(9))

        // Broker 1 returns as a follower: the leader says its epoch 1 ended at 5.
        cluster.record(cluster.replica(1).becomeFollower(leader: NodeID(2), leaderEpoch: LeaderEpoch(2), now: cluster.now))
        let answer = cluster.fetch(1)
        #expect(answer == .divergingEpoch(epoch: LeaderEpoch(1), endOffset: Offset(5), highWatermark: Offset(9)))
        #expect(cluster.leo(1) == Offset(5))
        #expect(cluster.replica(1).nextFetch(now: cluster.now) == nil, "waits for the truncation to be durable")
        cluster.sync(1)
        cluster.fetch(1)
        cluster.sync(1)
        cluster.fetch(1)
        #expect(try cluster.node(1).contents() == cluster.node(2).contents())
        #expect(cluster.hw(1) == Offset(9))
    }

    @Test func divergentTailAfterDoubleFailoverIsTruncatedByEpochNotHighWatermark() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        _ = cluster.produce(1, records: 10, seed: 1)
        cluster.sync(1)
        cluster.fetch(2)
        cluster.fetch(3)
        cluster.sync(2)
        cluster.sync(3)
        // Broker 1 writes 10..<15 in epoch 1; only broker 3 gets it.
        _ = cluster.produce(1, records: 5, seed: 2)
        cluster.fetch(3)
        #expect(cluster.leo(3) == Offset(15))

        // Broker 1 fails; broker 2 leads epoch 2 and writes 10..<13 that nobody fetches.
        cluster.elect(leader: 2, epoch: 2, partitionEpoch: 2, isr: [2, 3], followers: [])
        _ = cluster.produce(2, records: 3, acks: .leader, seed: 3)
        cluster.sync(2)
        #expect(cluster.leo(2) == Offset(13))

        // Broker 2 fails too; broker 3 (in the ISR) leads epoch 3 and writes 15..<20.
        cluster.elect(leader: 3, epoch: 3, partitionEpoch: 3, isr: [2, 3], followers: [])
        _ = cluster.produce(3, records: 5, acks: .leader, seed: 4)
        cluster.sync(3)

        // Broker 2 returns and follows broker 3. Its high watermark is below 10, but only its
        // epoch-2 tail diverges: it is cut at 10 (the end of epoch 1 in its own log), not at its HW.
        cluster.record(cluster.replica(2).becomeFollower(leader: NodeID(3), leaderEpoch: LeaderEpoch(3), now: cluster.now))
        #expect(cluster.hw(2) < Offset(10))
        let answer = cluster.fetch(2)
        #expect(answer == .divergingEpoch(epoch: LeaderEpoch(1), endOffset: Offset(15), highWatermark: cluster.hw(3)))
        #expect(cluster.leo(2) == Offset(10))
        cluster.sync(2)
        cluster.fetch(2)
        #expect(try cluster.node(2).contents() == cluster.node(3).contents())
        #expect(cluster.node(2).log.leaderEpochs.entries.map(\.epoch) == [LeaderEpoch(1), LeaderEpoch(3)])

        // Broker 1 returns too: its epoch-1 log is a prefix of broker 3's, nothing to cut.
        cluster.record(cluster.replica(1).becomeFollower(leader: NodeID(3), leaderEpoch: LeaderEpoch(3), now: cluster.now))
        let first = cluster.fetch(1)
        if case .records = first {} else { Issue.record("no divergence expected: \(String(describing: first))") }
        #expect(try cluster.node(1).contents() == cluster.node(3).contents())
    }

    @Test func aFollowerWhoseLastEpochTheNewLeaderNeverHadIsTruncatedBeforeAnyWrite() throws {
        let cluster = try ReplicaCluster()
        // Broker 1 writes 0..<5 in epoch 1; nobody fetches, nothing is committed.
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3], followers: [])
        _ = cluster.produce(1, records: 5, acks: .leader, seed: 1)
        cluster.sync(1)
        // Broker 2 leads epoch 3 with an empty log and writes 0..<5 of its own; nobody fetches.
        cluster.elect(leader: 2, epoch: 3, partitionEpoch: 2, isr: [1, 2, 3], followers: [])
        _ = cluster.produce(2, records: 5, acks: .leader, seed: 2)
        cluster.sync(2)
        // Broker 1 leads epoch 5 and has written nothing yet; its log only knows epoch 1.
        cluster.elect(leader: 1, epoch: 5, partitionEpoch: 3, isr: [1, 2, 3], followers: [])
        #expect(cluster.node(1).log.leaderEpochs.entries.map(\.epoch) == [LeaderEpoch(1)])
        cluster.record(cluster.replica(2).becomeFollower(leader: NodeID(1), leaderEpoch: LeaderEpoch(5), now: cluster.now))
        // Broker 2's last epoch (3) is newer than any in broker 1's log but older than broker 1's
        // own: its records are not broker 1's, although both logs end at offset 5.
        let answer = cluster.fetch(2)
        #expect(answer == .divergingEpoch(epoch: LeaderEpoch(1), endOffset: Offset(5), highWatermark: cluster.hw(1)))
        #expect(cluster.leo(2) == Offset(0), "epoch 3 starts at 0 in its own log: everything goes")
        cluster.sync(2)
        cluster.fetch(2)
        #expect(try cluster.node(2).contents() == cluster.node(1).contents())
        #expect(cluster.replica(1).endOffset(forEpoch: LeaderEpoch(3)) == (LeaderEpoch(1), Offset(5)))
        #expect(cluster.replica(1).endOffset(forEpoch: LeaderEpoch(5)) == (LeaderEpoch(5), Offset(5)))
    }

    @Test func aFollowerWithANewBrokerEpochStartsAfreshAtTheLeader() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        _ = cluster.produce(1, records: 5, seed: 1)
        cluster.sync(1)
        for id in [2, 3] {
            cluster.fetch(id, brokerEpoch: 10)
            cluster.sync(id)
            cluster.fetch(id, brokerEpoch: 10)
        }
        #expect(cluster.hw(1) == Offset(5))
        #expect(cluster.replica(1).brokerEpoch(of: NodeID(2)) == BrokerEpoch(10))

        // Broker 2 restarts (epoch 11) and fetches from behind the leader's end.
        cluster.advance(.seconds(20))
        _ = cluster.produce(1, records: 2, acks: .leader, seed: 2)
        cluster.sync(1)
        cluster.fetch(3, brokerEpoch: 10)
        cluster.sync(3)
        cluster.fetch(3, brokerEpoch: 10)
        try cluster.node(2).crashAndRestart(now: cluster.now)
        cluster.record(cluster.replica(2).becomeFollower(leader: NodeID(1), leaderEpoch: LeaderEpoch(1), now: cluster.now))
        #expect(cluster.replica(1).brokerEpoch(of: NodeID(2)) == BrokerEpoch(10))
        cluster.sync(2)
        #expect(cluster.fetch(2, brokerEpoch: 11) != nil)
        #expect(cluster.replica(1).brokerEpoch(of: NodeID(2)) == BrokerEpoch(11))
        // The old process caught up 20 s ago (within replica.lag.time.max.ms); that does not count
        // for the new one, which is behind: the leader drops it.
        #expect(!cluster.replica(1).isCaughtUp(NodeID(2), now: cluster.now))
        #expect(cluster.replica(1).isCaughtUp(NodeID(3), now: cluster.now))
        cluster.tick(1)
        #expect(cluster.proposals.last?.newISR == [NodeID(1), NodeID(3)])
    }

    /// The controller fences a dead follower and takes it out of the ISR (one commit): from then
    /// on the high watermark, and every acks=all answer, stops waiting for it, although it was
    /// caught up less than replica.lag.time.max.ms ago. (Before, the leader kept counting it as
    /// "about to join" for 30 s.)
    @Test func aFencedFollowerOutOfTheISRNoLongerHoldsTheHighWatermark() throws {
        let cluster = try ReplicaCluster()
        let epochs = [NodeID(1): BrokerEpoch(10), NodeID(2): BrokerEpoch(11), NodeID(3): BrokerEpoch(12)]
        cluster.record(cluster.replica(1).updateEligibleBrokers(epochs, now: cluster.now))
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
        _ = cluster.produce(1, records: 5, seed: 1)
        cluster.sync(1)
        for id in [2, 3] {
            cluster.fetch(id, brokerEpoch: 10 + Int64(id) - 1)
            cluster.sync(id)
            cluster.fetch(id, brokerEpoch: 10 + Int64(id) - 1)
        }
        #expect(cluster.hw(1) == Offset(5))
        cluster.completions = []

        // Broker 3 dies; broker 2 keeps replicating. The append waits for broker 3 (ISR member).
        cluster.advance(.seconds(1))
        let pending = cluster.produce(1, records: 3, seed: 2)
        cluster.sync(1)
        cluster.fetch(2, brokerEpoch: 11)
        cluster.sync(2)
        cluster.fetch(2, brokerEpoch: 11)
        #expect(cluster.hw(1) == Offset(5), "broker 3 is in the ISR: the HW waits for it")
        #expect(cluster.completions.isEmpty)

        // 9 s later the controller fences broker 3 and removes it from the ISR.
        cluster.advance(.seconds(9))
        #expect(cluster.replica(1).isCaughtUp(NodeID(3), now: cluster.now), "within replica.lag.time.max.ms")
        cluster.record(cluster.replica(1).updateEligibleBrokers([NodeID(1): BrokerEpoch(10), NodeID(2): BrokerEpoch(11)],
                                                               now: cluster.now))
        cluster.record(cluster.replica(1).applyCommittedPartitionState(isr: [NodeID(1), NodeID(2)], leaderEpoch: LeaderEpoch(1),
                                                                       partitionEpoch: PartitionEpoch(2), now: cluster.now))
        #expect(cluster.hw(1) == Offset(8))
        #expect(cluster.completions.map(\.ticket) == [ticket(of: pending)].compactMap { $0 })
        #expect(cluster.completions.map(\.error) == [.none])
    }

    /// Kafka's rule is kept for eligible replicas: a caught-up follower outside the ISR holds the
    /// high watermark while it is about to join, so it can join.
    @Test func anEligibleCaughtUpFollowerOutsideTheISRStillHoldsTheHighWatermark() throws {
        let cluster = try ReplicaCluster()
        cluster.record(cluster.replica(1).updateEligibleBrokers([NodeID(1): BrokerEpoch(10), NodeID(2): BrokerEpoch(11),
                                                                NodeID(3): BrokerEpoch(12)], now: cluster.now))
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2])
        _ = cluster.produce(1, records: 5, seed: 1)
        cluster.sync(1)
        cluster.replicateFully(followers: [2])
        #expect(cluster.hw(1) == Offset(5))

        // Broker 3 fetches everything (caught up) but has synced nothing yet, so it cannot join.
        _ = cluster.produce(1, records: 3, acks: .leader, seed: 2)
        cluster.sync(1)
        cluster.fetch(3, brokerEpoch: 12)
        cluster.fetch(3, brokerEpoch: 12)
        cluster.fetch(2, brokerEpoch: 11)
        cluster.sync(2)
        cluster.fetch(2, brokerEpoch: 11)
        #expect(cluster.replica(1).isCaughtUp(NodeID(3), now: cluster.now))
        #expect(cluster.replica(1).pendingProposal == nil)
        #expect(cluster.hw(1) == Offset(5), "broker 3 is about to join: the HW waits for it")

        // The image now knows another process of broker 3 than the one that fetched.
        cluster.record(cluster.replica(1).updateEligibleBrokers([NodeID(1): BrokerEpoch(10), NodeID(2): BrokerEpoch(11),
                                                                NodeID(3): BrokerEpoch(13)], now: cluster.now))
        #expect(cluster.hw(1) == Offset(8), "what an older process of broker 3 fetched holds nothing back")
    }

    /// Fenced members the controller keeps in the ISR (at the min.insync.replicas floor) are
    /// still waited for — they may be elected later and must hold every committed record — and
    /// new acks=all appends are refused while too few eligible members keep up.
    @Test func aFencedISRMemberAtTheFloorStillHoldsTheHighWatermark() throws {
        let cluster = try ReplicaCluster()
        cluster.record(cluster.replica(1).updateEligibleBrokers([NodeID(1): BrokerEpoch(10), NodeID(2): BrokerEpoch(11),
                                                                NodeID(3): BrokerEpoch(12)], now: cluster.now))
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 3])
        let pending = cluster.produce(1, records: 5, seed: 1)
        #expect(ticket(of: pending) != nil)
        cluster.sync(1)
        cluster.fetch(2, brokerEpoch: 11)
        cluster.sync(2)
        cluster.fetch(2, brokerEpoch: 11)
        cluster.record(cluster.replica(1).updateEligibleBrokers([NodeID(1): BrokerEpoch(10), NodeID(2): BrokerEpoch(11)],
                                                               now: cluster.now))
        #expect(cluster.hw(1) == Offset(0), "broker 3 is fenced but in the ISR: the HW waits for it")
        #expect(cluster.completions.isEmpty)
        #expect(cluster.produce(1, acks: .all) == .rejected(.notEnoughReplicas, logError: nil),
                "the only other ISR member is fenced")
    }

    @Test func pageCachePolicyAdvancesBeforeSyncWhileSyncedDoesNot() throws {
        func run(_ policy: DurabilityPolicy) throws -> (hw: Offset, completed: Int) {
            let cluster = try ReplicaCluster(ReplicationConfiguration(minInSyncReplicas: 2, durabilityPolicy: policy))
            cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3])
            _ = cluster.produce(1, records: 5)
            // No sync anywhere: followers fetch the data, then report their log end offsets.
            for id in [2, 3] { cluster.fetch(id) }
            for id in [2, 3] { cluster.fetch(id) }
            return (cluster.hw(1), cluster.completions.count)
        }
        let pageCache = try run(.pageCache)
        let synced = try run(.synced)
        #expect(pageCache.hw == Offset(5) && pageCache.completed == 1,
                "acknowledged while only in page caches: lost if every replica loses power")
        #expect(synced.hw == Offset(0) && synced.completed == 0)
    }

    @Test func staleEpochsAreIgnoredAndANewLeaderCountsOnlyFetchesOfItsEpoch() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 2, partitionEpoch: 2, isr: [1, 2, 3])
        cluster.record(cluster.replica(1).becomeFollower(leader: NodeID(2), leaderEpoch: LeaderEpoch(1), now: cluster.now))
        #expect(cluster.replica(1).isLeader)
        cluster.record(cluster.replica(2).becomeLeader(leaderEpoch: LeaderEpoch(1), partitionEpoch: PartitionEpoch(1),
                                                       replicas: cluster.ids, isr: cluster.ids, now: cluster.now))
        #expect(cluster.replica(2).role == .follower(leader: NodeID(1)))

        // A fetch in an old epoch is fenced.
        let fenced = cluster.replica(1).handleFollowerFetch(follower: NodeID(2), fetchOffset: .zero, lastFetchedEpoch: .none,
                                                            followerDurableOffset: .zero, currentLeaderEpoch: LeaderEpoch(1),
                                                            now: cluster.now)
        #expect(fenced.result == .error(.fencedLeaderEpoch))

        // A new leader counts only positions reported in its own epoch: inherited data is
        // committed once the ISR has fetched it again, not before.
        _ = cluster.produce(1, records: 5, seed: 1)
        cluster.sync(1)
        cluster.replicateFully(followers: [2, 3])
        #expect(cluster.hw(1) == Offset(5))
        cluster.elect(leader: 2, epoch: 3, partitionEpoch: 3, isr: [1, 2, 3])
        let inherited = cluster.hw(2)
        #expect(inherited < Offset(5), "broker 2 had not yet learned the old leader's HW")
        #expect(cluster.replica(2).highWatermark == inherited, "no follower has fetched in epoch 3 yet")
        cluster.replicateFully(followers: [1, 3])
        #expect(cluster.hw(2) == Offset(5), "the ISR fetched in epoch 3: the inherited offsets are committed")
        _ = cluster.produce(2, records: 2, seed: 2)
        cluster.sync(2)
        cluster.replicateFully(followers: [1, 3])
        #expect(cluster.hw(2) == Offset(7))
    }

    @Test func uncleanLeaderWithAShortLogStillLeadsAndFollowersRestartBelowIt() throws {
        let cluster = try ReplicaCluster(ReplicationConfiguration(minInSyncReplicas: 1))
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 1, isr: [1, 2, 3], followers: [2])
        _ = cluster.produce(1, records: 6, seed: 1)
        cluster.sync(1)
        cluster.replicateFully(followers: [2])
        // Broker 3 was out of the ISR with an empty log; both others die; unclean election of 3.
        cluster.elect(leader: 3, epoch: 2, partitionEpoch: 2, isr: [3], followers: [2])
        let outcome = cluster.produce(3, records: 2, acks: .all, seed: 2)
        cluster.sync(3)
        if case .completed(_, .none) = outcome {} else if ticket(of: outcome) != nil {} else {
            Issue.record("an unclean leader accepts writes: \(outcome)")
        }
        cluster.fetch(2)
        #expect(cluster.leo(2) == Offset(0), "broker 2's epoch-1 data is not in the new leader's log")
        cluster.sync(2)
        cluster.fetch(2)
        cluster.sync(2)
        cluster.fetch(2)
        #expect(try cluster.node(2).contents() == cluster.node(3).contents())
        #expect(cluster.hw(3) == Offset(2))
    }

    /// Seed 2230: a follower's fetch from before it found (and discarded) lost data — a long poll
    /// the leader parked and re-read after an image change, or one delayed in the network — made
    /// the leader count the follower at its old position and propose adding it back to the ISR.
    @Test func fetchesFromBeforeAFollowerDiscardedALossCountForNothing() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 0, isr: [1, 2, 3])
        _ = cluster.produce(1, records: 5)
        cluster.sync(1)
        cluster.replicateFully(followers: [2, 3])
        #expect(cluster.hw(1) == Offset(5))
        let stale = try #require(cluster.replica(3).nextFetch(now: cluster.now), "3's fetch at 5, still in flight")

        // 3's copy rotted; the controller records the loss and takes 3 out of the ISR.
        let loss = ReplicaDataLoss(broker: NodeID(3), firstLostOffset: .zero, markedAt: PartitionEpoch(1))
        cluster.record(cluster.replica(1).applyCommittedPartitionState(isr: [NodeID(1), NodeID(2)], leaderEpoch: LeaderEpoch(1),
                                                                       partitionEpoch: PartitionEpoch(1), dataLoss: [loss], now: cluster.now))
        try cluster.replica(3).truncate(to: .zero, wallClock: cluster.now)
        cluster.replica(3).acknowledgedLoss = loss.markedAt
        cluster.sync(3)

        cluster.fetch(3, request: stale)
        #expect(cluster.replica(1).pendingProposal == nil, "an old fetch cannot bring 3 back")
        #expect(cluster.replica(1).countedOffset(of: NodeID(3)) == nil, "nor count 3 at its old position")

        // 3 fetches what it lost, naming the loss; once caught up durably it is proposed back.
        // Until then no AlterPartition may name its loss (naming it clears the record: seed 1312).
        cluster.fetch(3)
        #expect(cluster.replica(1).acknowledgedLoss(of: NodeID(3)) == loss.markedAt)
        #expect(cluster.replica(1).vouchedAcknowledgedLoss(of: NodeID(3)) == PartitionEpoch(-1))
        for _ in 0..<4 { cluster.fetch(3); cluster.sync(3) }
        cluster.fetch(3)
        #expect(cluster.leo(3) == Offset(5))
        #expect(cluster.replica(1).pendingProposal?.newISR == cluster.ids)
        #expect(cluster.replica(1).vouchedAcknowledgedLoss(of: NodeID(3)) == loss.markedAt)
        cluster.commitProposal(leader: 1)

        // The old fetch, arriving once more, is answered but changes nothing the leader knows of 3.
        _ = cluster.produce(1, records: 2, seed: 9)
        cluster.sync(1)
        cluster.fetch(2); cluster.sync(2); cluster.fetch(2)
        #expect(cluster.hw(1) == Offset(5), "3 has not fetched the new records")
        cluster.fetch(3, request: stale)
        #expect(cluster.replica(1).followers[NodeID(3)]?.logEndOffset == Offset(5))
        #expect(cluster.hw(1) == Offset(5))
    }

    @Test func aFetchFromBeforeADiscardCountsForNothingEvenOnceTheLossIsCleared() throws {
        // One batch per fetch, so 3 can rejoin before it has fetched everything back.
        let cluster = try ReplicaCluster(ReplicationConfiguration(minInSyncReplicas: 2, maximumFetchBytes: 1))
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 0, isr: [1, 2, 3])
        _ = cluster.produce(1, records: 5, seed: 1)
        cluster.sync(1)
        cluster.replicateFully(followers: [2, 3])
        _ = cluster.produce(1, records: 2, seed: 2)
        cluster.sync(1)
        cluster.fetch(3)
        cluster.sync(3)
        let stale = try #require(cluster.replica(3).nextFetch(now: cluster.now), "3's fetch at 7, still in flight")
        #expect(stale.fetchOffset == Offset(7) && stale.durableOffset == Offset(7))

        // 3's copy rotted from offset 0: recorded, then discarded; 3 fetches the first batch back
        // and, holding the high watermark durably, rejoins (which clears its loss).
        let loss = ReplicaDataLoss(broker: NodeID(3), firstLostOffset: .zero, markedAt: PartitionEpoch(1))
        cluster.record(cluster.replica(1).applyCommittedPartitionState(isr: [NodeID(1), NodeID(2)], leaderEpoch: LeaderEpoch(1),
                                                                       partitionEpoch: PartitionEpoch(1), dataLoss: [loss], now: cluster.now))
        try cluster.replica(3).truncate(to: .zero, wallClock: cluster.now)
        cluster.replica(3).acknowledgedLoss = loss.markedAt
        cluster.sync(3)
        cluster.fetch(3)
        cluster.sync(3)
        cluster.fetch(3)
        #expect(cluster.leo(3) == Offset(7) && cluster.node(3).log.durableOffset == Offset(5), "5..<7 in 3's page cache only")
        #expect(cluster.replica(1).pendingProposal?.newISR == cluster.ids)
        cluster.commitProposal(leader: 1)
        #expect(cluster.replica(1).dataLoss.isEmpty)
        cluster.fetch(2)
        cluster.sync(2)
        cluster.fetch(2)
        #expect(cluster.hw(1) == Offset(5), "3 has not synced 5..<7 again")

        // The old fetch, arriving once more (a duplicate), must not vouch for what 3 discarded.
        cluster.fetch(3, request: stale)
        #expect(cluster.hw(1) == Offset(5))
        #expect(cluster.replica(1).acknowledgedLoss(of: NodeID(3)) == loss.markedAt)
        cluster.sync(3)
        cluster.fetch(3)
        #expect(cluster.hw(1) == Offset(7))
    }

    @Test func aFollowerWithALossTheLeaderDoesNotYetSeeAcknowledgedKeepsTheHighWatermarkStill() throws {
        let cluster = try ReplicaCluster()
        let loss = ReplicaDataLoss(broker: NodeID(2), firstLostOffset: .zero, markedAt: PartitionEpoch(3))
        cluster.record(cluster.replica(1).becomeLeader(leaderEpoch: LeaderEpoch(1), partitionEpoch: PartitionEpoch(3), replicas: cluster.ids,
                                                       isr: [NodeID(1), NodeID(2)], dataLoss: [loss], now: cluster.now))
        cluster.record(cluster.replica(2).becomeFollower(leader: NodeID(1), leaderEpoch: LeaderEpoch(1), now: cluster.now))
        cluster.record(cluster.replica(3).becomeFollower(leader: NodeID(1), leaderEpoch: LeaderEpoch(1), now: cluster.now))
        #expect(cluster.produce(1, records: 5, acks: .leader) != .rejected(.notEnoughReplicas, logError: nil))
        cluster.sync(1)
        cluster.replicateFully(followers: [2])
        #expect(cluster.leo(2) == Offset(5))
        #expect(cluster.hw(1) == Offset(0), "2 is in the ISR but has not discarded its loss: it counts for nothing")
        #expect(cluster.produce(1, records: 1, seed: 4) == .rejected(.notEnoughReplicas, logError: nil),
                "acks=all: only the leader counts as in sync")
        cluster.replica(2).acknowledgedLoss = loss.markedAt
        cluster.fetch(2)
        #expect(cluster.hw(1) == Offset(5))
        #expect(cluster.replica(1).pendingProposal?.newISR == [NodeID(1), NodeID(2)], "the leader asks to clear 2's loss")
    }

    /// Seed 1110 of `network`: the answer to an expansion the controller committed was lost; the
    /// leader went back to counting its smaller ISR, advanced the high watermark without the
    /// member the controller had added, and that member was later elected without the records.
    @Test func membersOfAnExpansionWhoseAnswerWasLostCountUntilTheCommittedStateIsKnown() throws {
        let cluster = try ReplicaCluster()
        cluster.elect(leader: 1, epoch: 1, partitionEpoch: 0, isr: [1, 2])
        _ = cluster.produce(1, records: 5)
        cluster.sync(1)
        cluster.replicateFully(followers: [2, 3])
        #expect(cluster.hw(1) == Offset(5))
        let proposal = try #require(cluster.replica(1).pendingProposal, "3 caught up: the leader proposes it")
        #expect(proposal.newISR == cluster.ids)
        cluster.replica(1).proposalFailed()  // the answer never came

        // 3 stops fetching for longer than replica.lag.time.max.ms: only ISR membership counts it now.
        cluster.advance(cluster.replica(1).configuration.replicaLagTimeMax + .seconds(1))
        _ = cluster.produce(1, records: 5, acks: .leader, seed: 2)
        cluster.sync(1)
        cluster.replicateFully(followers: [2])
        #expect(cluster.hw(1) == Offset(5), "3 may be in the ISR: the high watermark waits for it")

        // The committed state of the next partition epoch says whether 3 got in.
        cluster.record(cluster.replica(1).applyCommittedPartitionState(isr: [NodeID(1), NodeID(2)], leaderEpoch: LeaderEpoch(1),
                                                                       partitionEpoch: PartitionEpoch(1), now: cluster.now))
        #expect(cluster.replica(1).unresolvedAdditions == nil)
        #expect(cluster.hw(1) == Offset(10), "it did not: 1 and 2 hold the records")
    }
}

