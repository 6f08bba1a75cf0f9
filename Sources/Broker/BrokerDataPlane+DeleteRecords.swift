import KafkaProtocol
import LogStorage
import TernCore

// DeleteRecords (API 21), as Kafka answers it: the leader moves its log start offset to the
// requested offset (-1: the high watermark; past the high watermark: OFFSET_OUT_OF_RANGE), its
// followers learn the new log start from their next fetch answers and delete the same, and the
// answer waits until the low watermark — the smallest log start among the in-sync copies — has
// reached the requested offset, or the request's timeout passes (REQUEST_TIMED_OUT).

struct ParkedDeleteRecords {
    struct Wait {
        let topicPartition: TopicPartition
        let topicIndex: Int
        let partitionIndex: Int
        let requiredOffset: Offset
    }

    let requester: DataPlaneRequester
    let deadline: Instant
    var response: KafkaWire.DeleteRecordsResponse
    var waits: [Wait]
}

extension BrokerDataPlane {
    /// The `offset` of a DeleteRecords partition meaning "up to the high watermark".
    static let deleteRecordsToHighWatermark: Int64 = -1

    func handleDeleteRecords(_ request: KafkaWire.DeleteRecordsRequest, from requester: DataPlaneRequester, now: Instant) {
        typealias TopicResult = KafkaWire.DeleteRecordsResponse.DeleteRecordsTopicResult
        var response = KafkaWire.DeleteRecordsResponse(topics: [])
        var waits: [ParkedDeleteRecords.Wait] = []
        let parkable = parkedDeleteRecords.count < configuration.maximumParkedDeleteRecordsRequests
        for (topicIndex, topic) in request.topics.enumerated() {
            var result = TopicResult(name: topic.name, partitions: [])
            for (partitionIndex, partition) in topic.partitions.enumerated() {
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                let (answer, required) = deleteRecords(in: topicPartition, before: partition.offset)
                result.partitions.append(answer)
                guard let required else { continue }
                if parkable {
                    waits.append(.init(topicPartition: topicPartition, topicIndex: topicIndex, partitionIndex: partitionIndex,
                                       requiredOffset: required))
                } else {
                    result.partitions[partitionIndex].errorCode = KafkaErrorCode.requestTimedOut.rawValue
                }
            }
            response.topics.append(result)
        }
        var parked = ParkedDeleteRecords(requester: requester, deadline: now + .milliseconds(Int64(max(0, request.timeoutMs))),
                                         response: response, waits: waits)
        if settleDeleteRecords(&parked, now: now) {
            answer(.deleteRecords(parked.response), to: requester)
        } else {
            parkedDeleteRecords.append(parked)
        }
    }

    /// Moves one partition's log start; returns the answer so far and, when the leader moved (or
    /// already had) its log start there, the offset the low watermark must reach.
    private func deleteRecords(in topicPartition: TopicPartition, before requested: Int64)
        -> (KafkaWire.DeleteRecordsResponse.DeleteRecordsPartitionResult, Offset?) {
        typealias PartitionResult = KafkaWire.DeleteRecordsResponse.DeleteRecordsPartitionResult
        func refused(_ code: KafkaErrorCode) -> (PartitionResult, Offset?) {
            (PartitionResult(partitionIndex: topicPartition.partition, lowWatermark: -1, errorCode: code.rawValue), nil)
        }
        let hosted: HostedPartition
        switch ledPartition(topicPartition, currentLeaderEpoch: .none) {
        case let .led(found): hosted = found
        case let .refused(code): return refused(code)
        }
        let log = hosted.log
        if log.failure != nil || log.corruption != nil { return refused(.kafkaStorageError) }
        let target = requested == Self.deleteRecordsToHighWatermark ? log.highWatermark : Offset(requested)
        guard target.rawValue >= 0, target <= log.highWatermark else { return refused(.offsetOutOfRange) }
        if target > log.logStartOffset {
            log.advanceLogStartOffset(to: target)
            syncProducerState(hosted)
        }
        return (PartitionResult(partitionIndex: topicPartition.partition, lowWatermark: -1), target)
    }

    /// Fills in the partitions whose low watermark has reached the target, and fails those no
    /// longer led here. True when nothing is left to wait for.
    private func settleDeleteRecords(_ parked: inout ParkedDeleteRecords, now: Instant) -> Bool {
        var stillWaiting: [ParkedDeleteRecords.Wait] = []
        for wait in parked.waits {
            var result = parked.response.topics[wait.topicIndex].partitions[wait.partitionIndex]
            if let hosted = partitions[wait.topicPartition], hosted.replica.isLeader {
                let low = hosted.replica.lowWatermark
                if low != .unknown, low >= wait.requiredOffset {
                    result.lowWatermark = low.rawValue
                } else if now >= parked.deadline {
                    result.errorCode = KafkaErrorCode.requestTimedOut.rawValue
                } else {
                    stillWaiting.append(wait)
                }
            } else {
                result.errorCode = KafkaErrorCode.notLeaderOrFollower.rawValue
            }
            parked.response.topics[wait.topicIndex].partitions[wait.partitionIndex] = result
        }
        parked.waits = stillWaiting
        return stillWaiting.isEmpty
    }

    /// Answers the parked DeleteRecords that are done or past their deadline. Called at the end of
    /// every event that may have moved a follower's log start, and on every tick.
    func settleParkedDeleteRecords(now: Instant) {
        guard !parkedDeleteRecords.isEmpty else { return }
        var stillWaiting: [ParkedDeleteRecords] = []
        for var parked in parkedDeleteRecords {
            if settleDeleteRecords(&parked, now: now) {
                answer(.deleteRecords(parked.response), to: parked.requester)
            } else {
                stillWaiting.append(parked)
            }
        }
        parkedDeleteRecords = stillWaiting
    }
}
