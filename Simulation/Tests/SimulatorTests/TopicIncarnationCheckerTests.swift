import KafkaProtocol
import LogStorage
@testable import SimWorld
@testable import Simulator
import TernCore
import Testing

/// The topic-incarnation checker's rules, fed histories where a deleted incarnation's records
/// reach a later one, which they must reject, and legitimate ones, which they must pass.
@Suite struct TopicIncarnationCheckerTests {
    private func tagged(_ sequence: UInt64, incarnation: UInt32) -> [UInt8] {
        IncarnationTaggedValue(sequence: sequence, incarnation: incarnation).bytes
    }

    @Test func taggedValuesRoundTripAndNeverDecodeAsWorkloadValues() {
        let value = IncarnationTaggedValue(sequence: 0x0102_0304_0506_0708, incarnation: 0x0A0B_0C0D)
        #expect(value.bytes.count == 12)
        #expect(IncarnationTaggedValue(decoding: value.bytes) == value)
        #expect(ProducerClientNode.sequenceNumber(of: value.bytes) == nil)
        #expect(IncarnationTaggedValue(decoding: [UInt8](repeating: 1, count: 8)) == nil)
        #expect(IncarnationTaggedValue(decoding: nil) == nil)
    }

    @Test func aReplicaHoldingAnEarlierIncarnationsRecordIsCaught() {
        let stale: [(offset: Offset, value: [UInt8]?)] = [(Offset(0), tagged(0, incarnation: 1)), (Offset(1), tagged(5, incarnation: 2))]
        let result = TopicIncarnationChecker.checkStored(stale, hostedIncarnation: 2, where: "recycled-0 on n101")
        #expect(result == .violation("recycled-0 on n101: the replica of incarnation 2 holds value 0 of incarnation 1 at offset 0 (a deleted incarnation's record)"))
    }

    @Test func aReplicaHoldingItsOwnOrALaterIncarnationsRecordsPasses() {
        // A later incarnation's record in an earlier one's log: a produce by name reached a broker
        // that had not yet learned of the re-creation (its log is deleted with that incarnation).
        let records: [(offset: Offset, value: [UInt8]?)] = [(Offset(0), tagged(0, incarnation: 2)), (Offset(1), tagged(9, incarnation: 3)),
                                                            (Offset(2), Array("not tagged".utf8)), (Offset(3), nil)]
        #expect(TopicIncarnationChecker.checkStored(records, hostedIncarnation: 2, where: "p") == .ok)
    }

    /// A produce request meant for incarnation 1 but delivered once incarnation 2 existed (held in a
    /// connection through a partition) is rightly written to 2: its records are allowed there, and
    /// only there; any other record of incarnation 1 still is not.
    @Test func aRecordDeliveredLateIsAllowedOnlyInTheIncarnationItReached() {
        let late: [UInt64: UInt32] = [7: 2]
        let records: [(offset: Offset, value: [UInt8]?)] = [(Offset(0), tagged(7, incarnation: 1))]
        #expect(TopicIncarnationChecker.checkStored(records, hostedIncarnation: 2, deliveredLate: late, where: "p") == .ok)
        #expect(TopicIncarnationChecker.checkStored(records, hostedIncarnation: 3, deliveredLate: late, where: "p") != .ok)
        let other: [(offset: Offset, value: [UInt8]?)] = [(Offset(0), tagged(8, incarnation: 1))]
        #expect(TopicIncarnationChecker.checkStored(other, hostedIncarnation: 2, deliveredLate: late, where: "p") != .ok)
        #expect(TopicIncarnationChecker.checkServed(answer([tagged(7, incarnation: 1)]), servedIncarnation: 2, deliveredLate: late,
                                                    requestedIncarnation: nil, where: "p") == .ok)
        #expect(TopicIncarnationChecker.checkServed(answer([tagged(7, incarnation: 1)]), servedIncarnation: 3, deliveredLate: late,
                                                    requestedIncarnation: nil, where: "p") != .ok)
    }

    private func answer(_ values: [[UInt8]], error: KafkaErrorCode = .none) -> KafkaWire.FetchResponse.PartitionData {
        var builder = RecordBatchBuilder(baseTimestamp: 0)
        for value in values { builder.append(key: nil, value: value) }
        return KafkaWire.FetchResponse.PartitionData(partitionIndex: 0, errorCode: error.rawValue, highWatermark: Int64(values.count),
                                                     records: values.isEmpty ? [] : builder.build())
    }

    @Test func servingAnEarlierIncarnationsRecordIsCaught() {
        let result = TopicIncarnationChecker.checkServed(answer([tagged(3, incarnation: 2), tagged(4, incarnation: 1)]),
                                                         servedIncarnation: 2, requestedIncarnation: nil, where: "recycled-0: n101 answered n1002")
        #expect(result == .violation("recycled-0: n101 answered n1002 with value 4 of incarnation 1 at offset 1, hosting incarnation 2 (a deleted incarnation's record served)"))
    }

    @Test func answeringAFollowerOfAnotherIncarnationWithoutAnErrorIsCaught() {
        // Its offsets would count toward the leader's incarnation, even with no records to carry.
        for (served, requested) in [(UInt32(3), UInt32(2)), (UInt32(2), UInt32(3))] {
            let result = TopicIncarnationChecker.checkServed(answer([]), servedIncarnation: served, requestedIncarnation: requested,
                                                             where: "recycled-1: n102 answered n103")
            #expect(result == .violation("recycled-1: n102 answered n103's fetch for incarnation \(requested) without an error, hosting incarnation \(served): the follower's position counts toward the wrong incarnation"))
        }
    }

    @Test func refusingAFollowerOfAnotherIncarnationAndServingTheSameOnePass() {
        #expect(TopicIncarnationChecker.checkServed(answer([], error: .unknownTopicID), servedIncarnation: 3, requestedIncarnation: 2,
                                                    where: "p") == .ok)
        #expect(TopicIncarnationChecker.checkServed(answer([tagged(1, incarnation: 3)]), servedIncarnation: 3, requestedIncarnation: 3,
                                                    where: "p") == .ok)
    }

    @Test func anAnswerSentBeforeTheLeaderMovedOnInTheSameEventPasses() {
        // The leader answered while hosting incarnation 1, then applied the re-creation.
        #expect(TopicIncarnationChecker.checkServed(answer([tagged(1, incarnation: 1)]), servedIncarnation: 2, servedAtEventStart: 1,
                                                    requestedIncarnation: 1, where: "p") == .ok)
        let result = TopicIncarnationChecker.checkServed(answer([]), servedIncarnation: 3, servedAtEventStart: 2, requestedIncarnation: 1,
                                                         where: "recycled-1: n102 answered n103")
        #expect(result == .violation("recycled-1: n102 answered n103's fetch for incarnation 1 without an error, hosting incarnation 3: the follower's position counts toward the wrong incarnation"))
    }

    @Test func anAcknowledgedRecordOfTheCurrentIncarnationMustBeInItsLeadersLog() {
        let partition = TopicPartition(topic: "recycled", partition: 0)
        let write = RecycledTopicWrite(topicPartition: partition, offset: Offset(1), value: IncarnationTaggedValue(sequence: 7, incarnation: 4))
        func log(_ entries: [(Int64, [UInt8])], highWatermark: Int64) -> [TopicPartition: LeaderLogSnapshot] {
            [partition: LeaderLogSnapshot(leader: NodeID(101), highWatermark: Offset(highWatermark),
                                          entries: entries.map { .init(offset: Offset($0.0), key: nil, value: $0.1) })]
        }
        let intact = log([(0, tagged(6, incarnation: 4)), (1, tagged(7, incarnation: 4))], highWatermark: 2)
        #expect(TopicIncarnationChecker.check(acknowledged: [write], leaderLogs: intact, requireBelowHighWatermark: true) == .ok)
        let lost = log([(0, tagged(6, incarnation: 4))], highWatermark: 1)
        #expect(TopicIncarnationChecker.check(acknowledged: [write], leaderLogs: lost, requireBelowHighWatermark: true)
                == .violation("recycled-0: value 7 of incarnation 4 acknowledged at offset 1: lost write, leader n101 has no record at that offset"))
        let replaced = log([(0, tagged(6, incarnation: 4)), (1, tagged(7, incarnation: 3))], highWatermark: 2)
        #expect(TopicIncarnationChecker.check(acknowledged: [write], leaderLogs: replaced, requireBelowHighWatermark: true)
                == .violation("recycled-0: value 7 of incarnation 4 acknowledged at offset 1: leader n101 has value 7 of incarnation 3 there"))
        let uncommitted = log([(0, tagged(6, incarnation: 4)), (1, tagged(7, incarnation: 4))], highWatermark: 1)
        #expect(TopicIncarnationChecker.check(acknowledged: [write], leaderLogs: uncommitted, requireBelowHighWatermark: true)
                == .violation("recycled-0: value 7 of incarnation 4 acknowledged at offset 1, but leader n101's high watermark is 1"))
    }
}
