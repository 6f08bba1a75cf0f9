@testable import Controller
import TernCore
import Testing

/// How the controller records replicas that lost data, elects around them, and lets their leader
/// clear the record (issue 10: acknowledged records lost in 4 of 10,000 simulated seeds).
@Suite struct DataLossTests {
    static let minInSyncTwo = [ConfigEntry(name: "min.insync.replicas", value: "2")]

    static func loss(_ topicID: TopicID, from offset: Int64, acknowledged: Int32 = -1) -> ReplicaDataLossReport {
        ReplicaDataLossReport(replica: ReplicaReference(topicID: topicID, partition: 0), firstLostOffset: Offset(offset),
                              acknowledgedLoss: PartitionEpoch(acknowledged))
    }

    @Test func aReportedLossIsRecordedWhereItStartsAndTheReplicaLeavesTheISRAndLeadership() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        let topicID = harness.createTopic("t", assignments: [[1, 2, 3]], configs: Self.minInSyncTwo)
        harness.heartbeat(1, dataLosses: [Self.loss(topicID, from: 40)])
        let after = harness.partition("t", 0)
        #expect(after.leader == NodeID(2), "leadership moves to an intact ISR member")
        #expect(after.isr == nodes([2, 3]), "two intact members remain: the one that lost data leaves the ISR")
        #expect(after.leaderEpoch == LeaderEpoch(1))
        #expect(after.dataLoss == [ReplicaDataLoss(broker: NodeID(1), firstLostOffset: Offset(40), markedAt: PartitionEpoch(1))])

        // Reported again (every heartbeat does until the broker discards): nothing new.
        let (_, records) = harness.runWithRecords { [epoch = harness.epoch(of: 1), offset = harness.nextOffset - 1, now = harness.now] in
            $0.heartbeat(BrokerHeartbeatRequest(brokerID: NodeID(1), brokerEpoch: epoch, metadataOffset: offset,
                                                dataLosses: [Self.loss(topicID, from: 40)]), now: now)
        }
        #expect(records.isEmpty)
        // A loss lower down replaces the record.
        harness.heartbeat(1, dataLosses: [Self.loss(topicID, from: 7)])
        #expect(harness.partition("t", 0).dataLoss(of: NodeID(1))?.firstLostOffset == Offset(7))

        // 1 is outside the ISR; the other two die: nobody clean can lead, 1 may not.
        harness.expireSessions(except: [1])
        #expect(harness.partition("t", 0).leader == nil)
        #expect(harness.controller.tick(now: harness.now).isEmpty)
    }

    /// Seed 1656's and 1901's first step: the member that lost data is needed to keep the ISR at
    /// min.insync.replicas, so it stays (the high watermark stands still meanwhile) — but an intact
    /// member always leads before it.
    @Test func atMinInSyncTheMemberThatLostDataStaysInTheISRButNeverLeadsBeforeAnIntactOne() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        let topicID = harness.createTopic("t", assignments: [[1, 2, 3]], configs: Self.minInSyncTwo)
        harness.expireSessions(except: [1, 2])
        #expect(harness.partition("t", 0).isr == nodes([1, 2]))
        harness.heartbeat(1, dataLosses: [Self.loss(topicID, from: 0)])
        let afterReport = harness.partition("t", 0)
        #expect(afterReport.leader == NodeID(2))
        #expect(afterReport.isr == nodes([1, 2]), "the ISR does not shrink below min.insync.replicas")
        #expect(afterReport.dataLoss(of: NodeID(1)) != nil)

        // The intact member dies: the one that lost data must not lead, since 2 may hold records it lacks.
        harness.expireSessions(except: [1])
        #expect(harness.partition("t", 0).leader == nil, "offline rather than led by a copy that lost committed data")
        // The intact member comes back: it leads.
        harness.startBroker(2)
        #expect(harness.partition("t", 0).leader == NodeID(2))
    }

    /// Seeds 1901 and 1685: both ISR members report an invalid log from some offset — one a torn
    /// tail above the high watermark, the other real corruption below it. The furthest surviving
    /// copy leads; removing the first reporter and letting the last member lead lost records.
    @Test func whenEveryISRMemberLostDataTheFurthestSurvivingCopyLeadsOnceAllCanBeCompared() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        let topicID = harness.createTopic("t", assignments: [[1, 2, 3]], configs: Self.minInSyncTwo)
        harness.expireSessions(except: [1, 2])
        harness.expireSessions(except: [])
        #expect(harness.partition("t", 0).leader == nil && harness.partition("t", 0).isr == nodes([1, 2]))

        // Both restart; 2 comes back first and reports a loss from 0 (its committed data rotted).
        harness.startBroker(2)
        #expect(harness.partition("t", 0).leader == NodeID(2), "nothing known against 2 yet")
        harness.heartbeat(2, dataLosses: [Self.loss(topicID, from: 0)])
        #expect(harness.partition("t", 0).leader == nil, "1 is not back: it may hold more than 2")
        harness.register(1)
        harness.heartbeat(1, dataLosses: [Self.loss(topicID, from: 28)])
        let elected = harness.partition("t", 0)
        #expect(elected.leader == NodeID(1), "every member compared: 1's copy survives furthest (28 > 0)")
        #expect(elected.isr == nodes([1, 2]))
        #expect(elected.dataLoss.map(\.broker) == nodes([1, 2]))
    }

    @Test func aLeaderWhoseLossIsRecordedStartsANewEpochEvenWhenItStaysLeader() {
        var harness = ControllerHarness(brokers: [1, 2])
        let topicID = harness.createTopic("t", assignments: [[1, 2]], configs: Self.minInSyncTwo)
        harness.heartbeat(2, dataLosses: [Self.loss(topicID, from: 3)])
        let before = harness.partition("t", 0)
        #expect(before.leader == NodeID(1))
        harness.heartbeat(1, dataLosses: [Self.loss(topicID, from: 9)])
        let after = harness.partition("t", 0)
        #expect(after.leader == NodeID(1), "1's copy survives furthest")
        #expect(after.leaderEpoch == before.leaderEpoch.next, "it discards data it may have served in the old epoch")
    }

    @Test func aLossFoundAfterTheBrokerDiscardedForTheRecordedOneGetsARecordOfItsOwn() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        let topicID = harness.createTopic("t", assignments: [[1, 2, 3]], configs: Self.minInSyncTwo)
        harness.heartbeat(3, dataLosses: [Self.loss(topicID, from: 10)])
        let first = harness.partition("t", 0).dataLoss(of: NodeID(3))!
        harness.heartbeat(3, dataLosses: [Self.loss(topicID, from: 50, acknowledged: first.markedAt.rawValue)])
        let second = harness.partition("t", 0).dataLoss(of: NodeID(3))!
        #expect(second.firstLostOffset == Offset(50))
        #expect(second.markedAt > first.markedAt, "fetches from before the second discard must be told apart")
    }

    /// Seed 2230: a fetch the follower sent before it found the loss reached the leader afterwards
    /// and made it propose adding the follower back; the controller accepted.
    @Test func aReplicaWithARecordedLossJoinsOnlyOnFetchesMadeAfterItsDiscard() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        let topicID = harness.createTopic("t", assignments: [[1, 2, 3]], configs: Self.minInSyncTwo)
        harness.heartbeat(3, dataLosses: [Self.loss(topicID, from: 0)])
        let lost = harness.partition("t", 0)
        #expect(lost.isr == nodes([1, 2]))
        let markedAt = lost.dataLoss(of: NodeID(3))!.markedAt
        func addThree(acknowledging acknowledged: PartitionEpoch) -> AlterPartitionResponse {
            let current = harness.partition("t", 0)
            let request = AlterPartitionRequest(brokerID: NodeID(1), brokerEpoch: harness.epoch(of: 1), partitions: [
                .init(topicID: topicID, partition: 0, leaderEpoch: current.leaderEpoch, partitionEpoch: current.partitionEpoch,
                      newISR: [.init(brokerID: NodeID(1)), .init(brokerID: NodeID(2)),
                               .init(brokerID: NodeID(3), brokerEpoch: harness.epoch(of: 3), acknowledgedLoss: acknowledged)]),
            ])
            return harness.run { $0.alterPartition(request) }
        }
        #expect(addThree(acknowledging: PartitionEpoch(-1)).partitions.first?.error == .ineligibleReplica)
        #expect(harness.partition("t", 0).isr == nodes([1, 2]))
        let accepted = addThree(acknowledging: markedAt).partitions.first!
        #expect(accepted.error == .none)
        #expect(accepted.isr == nodes([1, 2, 3]) && accepted.dataLoss.isEmpty, "the record goes when the replica rejoins")
    }

    @Test func theLeaderClearsAMembersLossWithoutChangingTheISR() {
        var harness = ControllerHarness(brokers: [1, 2])
        let topicID = harness.createTopic("t", assignments: [[1, 2]], configs: Self.minInSyncTwo)
        harness.heartbeat(2, dataLosses: [Self.loss(topicID, from: 5)])
        let marked = harness.partition("t", 0)
        #expect(marked.isr == nodes([1, 2]) && marked.dataLoss(of: NodeID(2)) != nil)
        let request = AlterPartitionRequest(brokerID: NodeID(1), brokerEpoch: harness.epoch(of: 1), partitions: [
            .init(topicID: topicID, partition: 0, leaderEpoch: marked.leaderEpoch, partitionEpoch: marked.partitionEpoch,
                  newISR: [.init(brokerID: NodeID(1)),
                           .init(brokerID: NodeID(2), acknowledgedLoss: marked.dataLoss(of: NodeID(2))!.markedAt)]),
        ])
        let reply = harness.run { $0.alterPartition(request) }
        #expect(reply.partitions.first?.error == ControllerErrorCode.none)
        let cleared = harness.partition("t", 0)
        #expect(cleared.dataLoss.isEmpty && cleared.isr == nodes([1, 2]) && cleared.partitionEpoch == marked.partitionEpoch.next)
    }

    @Test func aPreferredElectionDoesNotPickACopyThatLostData() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        let topicID = harness.createTopic("t", assignments: [[1, 2, 3]])
        harness.heartbeat(1, dataLosses: [Self.loss(topicID, from: 0)])
        #expect(harness.partition("t", 0).leader == NodeID(2))
        let reply = harness.run { $0.electLeaders(ElectLeadersRequest(electionType: .preferred,
                                                                      partitions: [TopicPartition(topic: "t", partition: 0)])) }
        #expect(reply.partitions.first?.error == .preferredLeaderNotAvailable || harness.partition("t", 0).leader == NodeID(2))
        #expect(harness.partition("t", 0).leader == NodeID(2))
    }

    @Test func recordsWithDataLossesRoundTripAndImagesRefuseInconsistentOnes() throws {
        let losses = [ReplicaDataLoss(broker: NodeID(1), firstLostOffset: Offset(4), markedAt: PartitionEpoch(2)),
                      ReplicaDataLoss(broker: NodeID(3), firstLostOffset: .zero, markedAt: PartitionEpoch(3))]
        let record = MetadataRecord.partitionChange(PartitionChangeRecord(
            topicID: TopicID(high: 1, low: 2), partition: 0, leaderEpoch: LeaderEpoch(1), partitionEpoch: PartitionEpoch(3),
            dataLoss: losses))
        #expect(try MetadataRecord(decoding: record.encoded()) == record)
        #expect(TopicRules.dataLossProblem(losses, replicas: nodes([1, 2, 3]), partitionEpoch: PartitionEpoch(3)) == nil)
        #expect(TopicRules.dataLossProblem(losses.reversed(), replicas: nodes([1, 2, 3]), partitionEpoch: PartitionEpoch(3)) != nil)
        #expect(TopicRules.dataLossProblem(losses, replicas: nodes([1, 2]), partitionEpoch: PartitionEpoch(3)) != nil)
        #expect(TopicRules.dataLossProblem(losses, replicas: nodes([1, 2, 3]), partitionEpoch: PartitionEpoch(2)) != nil)
    }
}
