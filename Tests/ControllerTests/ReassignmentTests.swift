@testable import Controller
import TernCore
import Testing

@Suite struct ReassignmentTests {
    static let t0 = TopicPartition(topic: "t", partition: 0)

    func reassign(_ harness: inout ControllerHarness, to target: [Int32]?) -> ElectLeadersResponse.PartitionResult? {
        let request = AlterPartitionReassignmentsRequest(reassignments: [.init(topicPartition: Self.t0, targetReplicas: target.map(nodes))])
        return harness.run { $0.alterPartitionReassignments(request) }.partitions.first
    }

    /// The leader (1) adds `member` to the ISR, as it does once the follower has caught up.
    func leaderAdds(_ member: Int32, _ harness: inout ControllerHarness, topicID: TopicID) -> AlterPartitionResponse {
        let current = harness.partition("t", 0)
        let leader = current.leader!
        let request = AlterPartitionRequest(brokerID: leader, brokerEpoch: harness.epoch(of: leader.rawValue), partitions: [
            .init(topicID: topicID, partition: 0, leaderEpoch: current.leaderEpoch, partitionEpoch: current.partitionEpoch,
                  newISR: (current.isr + [NodeID(member)]).map { .init(brokerID: $0) }),
        ])
        return harness.run { $0.alterPartition(request) }
    }

    @Test func newReplicasJoinFirstAndTheOldOnesLeaveOnceTheyAreInSync() {
        var harness = ControllerHarness(brokers: [1, 2, 3, 4])
        let topicID = harness.createTopic("t", assignments: [[1, 2, 3]])
        #expect(reassign(&harness, to: [4, 2, 3])?.error == ControllerErrorCode.none)
        let moving = harness.partition("t", 0)
        #expect(moving.replicas == nodes([4, 2, 3, 1]), "target first, then the leaving replica")
        #expect(moving.addingReplicas == nodes([4]) && moving.removingReplicas == nodes([1]))
        #expect(moving.leader == NodeID(1) && moving.isr == nodes([1, 2, 3]), "nothing moves before 4 is in sync")

        let answer = leaderAdds(4, &harness, topicID: topicID)
        #expect(answer.partitions.first?.error == ControllerErrorCode.none)
        let done = harness.partition("t", 0)
        #expect(done.replicas == nodes([4, 2, 3]))
        #expect(!done.isReassigning)
        #expect(done.isr == nodes([2, 3, 4]))
        #expect(done.leader == NodeID(4), "the removed leader hands over to the first target replica in sync")
        #expect(done.leaderEpoch == moving.leaderEpoch.next)
    }

    @Test func removingOnlyCompletesAtOnceAndKeepsAnUnaffectedLeader() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        harness.createTopic("t", assignments: [[1, 2, 3]])
        #expect(reassign(&harness, to: [1, 2])?.error == ControllerErrorCode.none)
        let done = harness.partition("t", 0)
        #expect(done.replicas == nodes([1, 2]) && done.isr == nodes([1, 2]) && !done.isReassigning)
        #expect(done.leader == NodeID(1) && done.leaderEpoch == LeaderEpoch(0))
    }

    @Test func cancellingRestoresTheOriginalReplicas() {
        var harness = ControllerHarness(brokers: [1, 2, 3, 4])
        harness.createTopic("t", assignments: [[1, 2, 3]])
        #expect(reassign(&harness, to: [4, 2, 3])?.error == ControllerErrorCode.none)
        #expect(reassign(&harness, to: nil)?.error == ControllerErrorCode.none)
        let back = harness.partition("t", 0)
        // As in Kafka, the original replicas come back in the order the reassignment kept them.
        #expect(back.replicas == nodes([2, 3, 1]) && !back.isReassigning && back.isr == nodes([1, 2, 3]))
        #expect(back.leader == NodeID(1))
        #expect(reassign(&harness, to: nil)?.error == .noReassignmentInProgress)
    }

    @Test func badTargetsAreRefusedAndChangeNothing() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        harness.createTopic("t", assignments: [[1, 2, 3]])
        let before = harness.partition("t", 0)
        #expect(reassign(&harness, to: [1, 1])?.error == .invalidReplicaAssignment)
        #expect(reassign(&harness, to: [1, 9])?.error == .invalidReplicaAssignment)
        #expect(reassign(&harness, to: [])?.error == .invalidReplicaAssignment)
        #expect(harness.partition("t", 0) == before)
        let unknown = AlterPartitionReassignmentsRequest(reassignments: [
            .init(topicPartition: TopicPartition(topic: "nope", partition: 0), targetReplicas: nodes([1])),
        ])
        #expect(harness.run { $0.alterPartitionReassignments(unknown) }.partitions.first?.error == .unknownTopicOrPartition)
    }
}
