@testable import Client
import KafkaProtocol
import TernCore

// Scripted brokers for the client tests: helpers that build the answers a broker would give.

let topicPartition0 = TopicPartition(topic: "events", partition: 0)
let startTime = Instant(nanoseconds: 1_700_000_000_000 * 1_000_000)
let brokerIDs = [NodeID(1), NodeID(2), NodeID(3)]

func metadataAnswer(leader: NodeID?, epoch: Int32, topicPartition: TopicPartition = topicPartition0) -> KafkaWire.MetadataResponse {
    KafkaWire.MetadataResponse(
        brokers: brokerIDs.map { .init(nodeId: $0.rawValue, host: "broker-\($0)", port: 9092) },
        clusterId: "tern", controllerId: 1,
        topics: [.init(name: topicPartition.topic, partitions: [
            .init(partitionIndex: topicPartition.partition, leaderId: leader?.rawValue ?? -1, leaderEpoch: epoch, replicaNodes: brokerIDs.map(\.rawValue),
                  isrNodes: brokerIDs.map(\.rawValue)),
        ])])
}

/// The single batch a Produce request carries for `topicPartition`.
func producedBatch(_ request: ClientRequest, _ topicPartition: TopicPartition = topicPartition0) -> [UInt8]? {
    guard case let .produce(produce) = request.request else { return nil }
    return produce.topicData.first { $0.name == topicPartition.topic }?
        .partitionData.first { $0.index == topicPartition.partition }?.records
}

func baseSequence(_ batch: [UInt8]) -> Int32 { try! RecordBatchHeader.read(batch).baseSequence }

func produceAnswer(_ error: KafkaErrorCode, baseOffset: Int64 = -1, logStartOffset: Int64 = -1,
                   topicPartition: TopicPartition = topicPartition0) -> KafkaResponse {
    .produce(KafkaWire.ProduceResponse(responses: [.init(name: topicPartition.topic, partitionResponses: [
        .init(index: topicPartition.partition, errorCode: error.rawValue, baseOffset: baseOffset, logStartOffset: logStartOffset),
    ])]))
}

/// A stored batch as a leader would serve it: offsets and epoch assigned.
func storedBatch(baseOffset: Int64, epoch: Int32, values: [String], control: Bool = false) -> [UInt8] {
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    builder.baseOffset = baseOffset
    builder.partitionLeaderEpoch = epoch
    if control {
        builder.attributes = RecordBatchAttributes(isTransactional: true, isControl: true)
        builder.producerID = 7
        builder.producerEpoch = 0
        let marker = TransactionMarker(type: .commit, coordinatorEpoch: 0)
        builder.append(key: marker.keyBytes, value: marker.valueBytes)
    } else {
        for value in values { builder.append(key: Array("k-\(value)".utf8), value: Array(value.utf8)) }
    }
    return builder.build()
}

func fetchAnswer(records: [UInt8], highWatermark: Int64, error: KafkaErrorCode = .none,
                 topicPartition: TopicPartition = topicPartition0) -> KafkaResponse {
    .fetch(KafkaWire.FetchResponse(responses: [.init(topic: topicPartition.topic, partitions: [
        .init(partitionIndex: topicPartition.partition, errorCode: error.rawValue, highWatermark: highWatermark,
              lastStableOffset: highWatermark, logStartOffset: 0, records: records),
    ])]))
}
