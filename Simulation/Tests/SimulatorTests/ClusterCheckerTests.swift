import Controller
import Raft
import SimWorld
import Simulator
import TernCore
import Testing

/// Every cluster checker must be able to fail: each test feeds it a bad history and expects the
/// violation, next to a good history it accepts.
@Suite struct RaftSafetyCheckerTests {
    func entries(_ terms: [Int64]) -> [RaftLogEntry] {
        terms.enumerated().map { RaftLogEntry(index: LogIndex(Int64($0.offset + 1)), term: Term($0.element), payload: [UInt8($0.offset)]) }
    }

    func observation(_ node: Int32, term: Int64, leader: Bool, commit: Int64, log: [RaftLogEntry], incarnation: Int = 1)
        -> RaftSafetyChecker.Observation {
        .init(node: NodeID(node), incarnation: incarnation, term: Term(term), isLeader: leader, commitIndex: LogIndex(commit), entries: log)
    }

    @Test func twoLeadersInOneTermAreCaught() {
        let checker = RaftSafetyChecker()
        #expect(checker.check(observation(1, term: 3, leader: true, commit: 0, log: [])) == .ok)
        #expect(checker.check(observation(1, term: 3, leader: true, commit: 0, log: [])) == .ok, "the same leader again is fine")
        guard case .violation = checker.check(observation(2, term: 3, leader: true, commit: 0, log: [])) else {
            Issue.record("a second leader in term 3 was not reported")
            return
        }
    }

    @Test func aCommittedEntryThatChangesIsCaught() {
        let checker = RaftSafetyChecker()
        #expect(checker.check(observation(1, term: 2, leader: false, commit: 2, log: entries([1, 2]))) == .ok)
        #expect(checker.check(observation(2, term: 2, leader: false, commit: 2, log: entries([1, 2]))) == .ok)
        // Node 3 claims index 2 committed with another term: the committed log changed.
        guard case .violation = checker.check(observation(3, term: 3, leader: false, commit: 2, log: entries([1, 3]))) else {
            Issue.record("a changed committed entry was not reported")
            return
        }
    }

    @Test func aCommittedEntryLostAcrossARestartIsCaught() {
        let checker = RaftSafetyChecker()
        #expect(checker.check(observation(1, term: 2, leader: false, commit: 3, log: entries([1, 2, 2]))) == .ok)
        // After a restart node 1 becomes leader without entry 3, which had committed.
        guard case .violation = checker.check(observation(1, term: 4, leader: true, commit: 0, log: entries([1, 2]), incarnation: 2)) else {
            Issue.record("a leader missing a committed entry was not reported")
            return
        }
    }

    @Test func aLeaderOfALaterTermMissingACommittedEntryIsCaught() {
        let checker = RaftSafetyChecker()
        #expect(checker.check(observation(1, term: 5, leader: true, commit: 0, log: entries([5, 5]))) == .ok)
        #expect(checker.check(observation(1, term: 5, leader: true, commit: 2, log: entries([5, 5]))) == .ok)
        // Node 2 wins term 6 with only the first entry: entry 2, committed in term 5, is gone.
        guard case .violation = checker.check(observation(2, term: 6, leader: true, commit: 0, log: entries([5]))) else {
            Issue.record("a leader of term 6 without an entry committed in term 5 was not reported")
            return
        }
    }

    /// Seeds 2571 (crash), 2005 and 339 (all): node 3, a candidate in term 13, is paused with
    /// its vote grants in flight; term 14 elects node 2 and commits an entry; node 3 resumes,
    /// counts the old grant and leads term 13 without that entry. Raft allows it: only leaders of
    /// terms after the commit must hold the entry, and a leader of term 13 can commit nothing.
    @Test func aLeaderOfAnOlderTermElectedLateMayLackALaterCommit() {
        let checker = RaftSafetyChecker()
        let prefix: [Int64] = [11, 12, 12]
        #expect(checker.check(observation(3, term: 12, leader: true, commit: 3, log: entries(prefix))) == .ok)
        #expect(checker.check(observation(3, term: 13, leader: false, commit: 3, log: entries(prefix))) == .ok, "candidate of term 13")
        #expect(checker.check(observation(2, term: 14, leader: true, commit: 3, log: entries(prefix + [14]))) == .ok)
        #expect(checker.check(observation(2, term: 14, leader: true, commit: 4, log: entries(prefix + [14]))) == .ok)
        #expect(checker.check(observation(1, term: 14, leader: false, commit: 4, log: entries(prefix + [14]))) == .ok)
        #expect(checker.check(observation(3, term: 13, leader: true, commit: 3, log: entries(prefix + [13]))) == .ok,
                "a leader of term 13 need not hold an entry committed in term 14")
        #expect(checker.check(observation(3, term: 14, leader: false, commit: 4, log: entries(prefix + [14]))) == .ok, "node 3 steps down")
        // The entries committed before term 13 still bind its leader, and entry 4 binds term 15.
        guard case .violation = checker.check(observation(1, term: 15, leader: true, commit: 0, log: entries(prefix))) else {
            Issue.record("a leader of term 15 without the entry committed in term 14 was not reported")
            return
        }
    }

    /// Figure 8 of the Raft paper: an entry of term 2 is committed only in term 4 (under the
    /// leader's own entry). What binds a leader is the term of the commit, not the entry's: a
    /// leader of term 3 elected late may lack it, a leader of term 5 may not.
    @Test func theCommitTermNotTheEntryTermDecidesWhoMustHoldIt() {
        let checker = RaftSafetyChecker()
        #expect(checker.check(observation(1, term: 1, leader: true, commit: 1, log: entries([1]))) == .ok)
        #expect(checker.check(observation(1, term: 4, leader: true, commit: 3, log: entries([1, 2, 4]))) == .ok)
        #expect(checker.check(observation(5, term: 3, leader: true, commit: 0, log: entries([1, 3]))) == .ok,
                "a leader of term 3 need not hold entries committed in term 4")
        guard case .violation = checker.check(observation(5, term: 5, leader: true, commit: 0, log: entries([1, 3]))) else {
            Issue.record("a leader of term 5 without the entries committed in term 4 was not reported")
            return
        }
    }

    /// A node may first be seen with an entry committed after it already moved to a later term
    /// (it learned the commit, then campaigned); the earliest term anyone held it committed in
    /// is the one that binds later leaders.
    @Test func theEarliestTermAnEntryWasSeenCommittedInBindsLaterLeaders() {
        let checker = RaftSafetyChecker()
        #expect(checker.check(observation(3, term: 9, leader: false, commit: 2, log: entries([7, 7]))) == .ok)
        #expect(checker.check(observation(1, term: 7, leader: false, commit: 2, log: entries([7, 7]))) == .ok)
        guard case .violation = checker.check(observation(2, term: 8, leader: true, commit: 0, log: entries([7]))) else {
            Issue.record("a leader of term 8 without an entry committed by term 7 was not reported")
            return
        }
    }

    @Test func logMatchingViolationIsCaught() {
        let checker = RaftSafetyChecker()
        var divergent = entries([1, 1, 2])
        divergent[0].payload = [99]
        let good = [observation(1, term: 2, leader: false, commit: 0, log: entries([1, 1, 2])),
                    observation(2, term: 2, leader: false, commit: 0, log: entries([1, 1, 3]))]
        #expect(checker.checkLogMatching(good) == .ok, "logs may differ after their last matching entry")
        let bad = [observation(1, term: 2, leader: false, commit: 0, log: entries([1, 1, 2])),
                   observation(2, term: 2, leader: false, commit: 0, log: divergent)]
        guard case .violation = checker.checkLogMatching(bad) else {
            Issue.record("entries that differ below a matching entry were not reported")
            return
        }
    }
}

@Suite struct MetadataCheckerTests {
    let topicID = TopicID(bytes: Array(repeating: 7, count: 16))

    func register(_ broker: Int32, epoch: Int64) -> MetadataRecord {
        .registerBroker(BrokerRegistrationRecord(brokerID: NodeID(broker), brokerEpoch: BrokerEpoch(epoch),
                                                 incarnationID: IncarnationID(high: 1, low: UInt64(broker)), endpoints: [], rack: nil))
    }

    func unfence(_ broker: Int32, epoch: Int64) -> MetadataRecord {
        .unfenceBroker(BrokerAndEpoch(brokerID: NodeID(broker), brokerEpoch: BrokerEpoch(epoch)))
    }

    /// Two unfenced brokers and a topic whose partition 0 is led by broker 1.
    func goodHistory() -> [PeerMessage.MetadataEntry] {
        [
            .init(offset: Offset(0), records: [register(1, epoch: 1), register(2, epoch: 2)]),
            .init(offset: Offset(2), records: [unfence(1, epoch: 1), unfence(2, epoch: 2)]),
            .init(offset: Offset(4), records: [
                .topic(TopicRecord(name: "t", topicID: topicID, configs: [])),
                .partition(PartitionRecord(topicID: topicID, partition: 0, replicas: [NodeID(1), NodeID(2)],
                                           isr: [NodeID(1), NodeID(2)], leader: NodeID(1),
                                           leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))),
            ]),
        ]
    }

    @Test func aGoodHistoryPasses() {
        let checker = MetadataChecker()
        for entry in goodHistory() { #expect(checker.extendReference(with: entry) == .ok) }
        #expect(checker.checkImage(checker.referenceImage, of: "broker") == .ok)
    }

    @Test func aLeaderOutsideItsISRIsCaught() {
        let checker = MetadataChecker()
        for entry in goodHistory() { _ = checker.extendReference(with: entry) }
        let bad = PeerMessage.MetadataEntry(offset: Offset(6), records: [
            .partitionChange(PartitionChangeRecord(topicID: topicID, partition: 0, leader: .elected(NodeID(2)), isr: [NodeID(1)],
                                                   leaderEpoch: LeaderEpoch(1), partitionEpoch: PartitionEpoch(1))),
        ])
        guard case .violation = checker.extendReference(with: bad) else {
            Issue.record("a leader outside its ISR was not reported")
            return
        }
    }

    /// Seeds 1656, 1901 and 1685 ended with a copy that had lost committed records elected while
    /// an intact one (or one surviving further) existed; the checker holds every election to the
    /// rule directly.
    @Test func electingACopyThatLostDataOverABetterOneIsCaught() {
        func loss(_ broker: Int32, from offset: Int64, at epoch: Int32) -> ReplicaDataLoss {
            ReplicaDataLoss(broker: NodeID(broker), firstLostOffset: Offset(offset), markedAt: PartitionEpoch(epoch))
        }
        func elects(_ leader: Int32, losses: [ReplicaDataLoss]) -> CheckResult {
            let checker = MetadataChecker()
            for entry in goodHistory() { _ = checker.extendReference(with: entry) }
            _ = checker.extendReference(with: PeerMessage.MetadataEntry(offset: Offset(6), records: [
                .partitionChange(PartitionChangeRecord(topicID: topicID, partition: 0, leader: .none, leaderEpoch: LeaderEpoch(1),
                                                       partitionEpoch: PartitionEpoch(1), dataLoss: losses)),
            ]))
            return checker.extendReference(with: PeerMessage.MetadataEntry(offset: Offset(7), records: [
                .partitionChange(PartitionChangeRecord(topicID: topicID, partition: 0, leader: .elected(NodeID(leader)),
                                                       leaderEpoch: LeaderEpoch(2), partitionEpoch: PartitionEpoch(2))),
            ]))
        }
        #expect(elects(2, losses: []) == .ok)
        #expect(elects(2, losses: [loss(1, from: 3, at: 1)]) == .ok, "2 is intact")
        #expect(elects(1, losses: [loss(1, from: 28, at: 1), loss(2, from: 0, at: 1)]) == .ok, "1 survives furthest")
        for bad in [elects(1, losses: [loss(1, from: 3, at: 1)]),
                    elects(2, losses: [loss(1, from: 28, at: 1), loss(2, from: 0, at: 1)])] {
            guard case .violation = bad else {
                Issue.record("an election that could lose committed records was not reported")
                return
            }
        }
    }

    @Test func epochsGoingBackwardsAreCaught() {
        let checker = MetadataChecker()
        for entry in goodHistory() { _ = checker.extendReference(with: entry) }
        let bump = PeerMessage.MetadataEntry(offset: Offset(6), records: [
            .partitionChange(PartitionChangeRecord(topicID: topicID, partition: 0, leader: .elected(NodeID(2)),
                                                   leaderEpoch: LeaderEpoch(5), partitionEpoch: PartitionEpoch(1))),
        ])
        #expect(checker.extendReference(with: bump) == .ok)
        let back = PeerMessage.MetadataEntry(offset: Offset(7), records: [
            .partitionChange(PartitionChangeRecord(topicID: topicID, partition: 0, leader: .elected(NodeID(1)),
                                                   leaderEpoch: LeaderEpoch(3), partitionEpoch: PartitionEpoch(2))),
        ])
        guard case .violation = checker.extendReference(with: back) else {
            Issue.record("a leader epoch going backwards was not reported")
            return
        }
    }

    @Test func aBrokerImageThatDiffersFromTheLogIsCaught() {
        let checker = MetadataChecker()
        let history = goodHistory()
        for entry in history { _ = checker.extendReference(with: entry) }
        // The broker applied the first two entries but lost the second broker's unfencing.
        var image = MetadataImage.empty
        try! image.apply(register(1, epoch: 1), at: Offset(0))
        try! image.apply(register(2, epoch: 2), at: Offset(1))
        try! image.apply(unfence(1, epoch: 1), at: Offset(2))
        try! image.apply(.fenceBroker(BrokerAndEpoch(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(1))), at: Offset(3))
        guard case .violation = checker.checkImage(image, of: "broker n7") else {
            Issue.record("an image that is not the committed log applied was not reported")
            return
        }
    }

    @Test func aControllerThatCommittedSomethingElseIsCaught() {
        let checker = MetadataChecker()
        let history = goodHistory()
        #expect(checker.observeController(NodeID(1), incarnation: 1, entries: Array(history.prefix(2)), image: .empty) == .ok)
        var other = Array(history.prefix(2))
        other[1] = .init(offset: Offset(2), records: [unfence(2, epoch: 2), unfence(1, epoch: 1)])
        guard case .violation = checker.observeController(NodeID(2), incarnation: 1, entries: other, image: .empty) else {
            Issue.record("two controllers with different committed entries were not reported")
            return
        }
    }
}

@Suite struct ClusterLivenessTests {
    @Test func aClusterGivenNoTimeToConvergeFailsLiveness() {
        let simulation = ClusterSimulation(seed: 1, profile: .none, safetyPhase: .milliseconds(100), livenessPhase: .milliseconds(100))
        let outcome = simulation.run()
        #expect(outcome.report.violation?.kind == .liveness)
    }

    @Test func aHealthyClusterConverges() {
        let simulation = ClusterSimulation(seed: 1, profile: .none, safetyPhase: .seconds(5), livenessPhase: .seconds(20))
        let outcome = simulation.run()
        #expect(outcome.report.passed, "\(String(describing: outcome.report.violation))")
        #expect(outcome.elections >= 1 && outcome.committedMetadataRecords > 0)
    }
}
