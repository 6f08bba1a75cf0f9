import Broker
import Client
import Controller
import KafkaProtocol
import NodeKit
import SimWorld
import TernCore

/// What the consumer client reads is committed data, in order, and all of it:
/// - after every broker event: each fetch answer the broker sends the consumer holds only whole
///   batches below the answer's high watermark, and that high watermark is not above the broker's
///   own (consumers never see data above the HW);
/// - after every consumer event, over the records and events new since the last look: per
///   partition the consumed offsets strictly increase (no offset twice, none going back) and the
///   producer's values strictly increase; the consumer never reports a truncation under its
///   position, a reset of its position, or a stopped partition (each means data it had been
///   allowed to read is gone, or data it cannot read);
/// - at the end: every consumed record is in its partition's current leader's log at the same
///   offset with the same value (a record a consumer saw never disappears); once converged, also
///   below that leader's high watermark, and every record the producer had acknowledged was
///   consumed at its offset with its value. (Convergence includes the consumer having reached
///   every leader's high watermark; without it the completeness part is left to the liveness
///   check.)
public final class ConsumedRecordsChecker: SimulationChecker {
    public let name = "consumed-records"
    private let layout: ClusterLayout
    private var order: ConsumedOrder
    private var recordsSeen = 0
    private var eventsSeen = 0
    /// The consumer's fetches reach brokers through their front doors.
    private var traffic = ClientTraffic(apis: [.fetch])
    /// Per consumer fetch a broker has not answered yet, the highest high watermark the broker
    /// had for each partition asked for, after any event since the request arrived. The answer
    /// was built at one of those events, but may leave later (held behind an earlier request of
    /// its connection), when the broker may host the partition no more.
    private var unansweredFetches: [ClientExchange: [TopicPartition: Offset?]] = [:]

    static let maximumUnansweredFetches = 10_000
    public private(set) var consumedCount = 0
    /// Fetch answers with records that brokers sent the consumer, each checked against the HW.
    public private(set) var checkedAnswers = 0

    private let retainedTopics: Set<String>
    /// Where retention moved each retained partition's log start (nil without retained topics).
    private let retention: RetentionChecker?

    public init(layout: ClusterLayout, retention: RetentionChecker? = nil) {
        self.layout = layout
        self.retention = retention
        retainedTopics = Set(layout.retainedTopics.keys)
        order = ConsumedOrder(atLeastOnceTopics: retainedTopics)
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        if delivered.nodeID == ClusterLayout.consumerClientID {
            return checkNewHistory(simulation)
        }
        guard simulation.roles(of: delivered.nodeID).contains(.broker) else { return .ok }
        forgetUnanswerable(delivered)
        if case let (exchange, .fetch(request))? = traffic.request(in: delivered, simulation: simulation),
           exchange.client == ClusterLayout.consumerClientID {
            precondition(unansweredFetches.count < Self.maximumUnansweredFetches, "consumer fetches pile up unanswered")
            var asked: [TopicPartition: Offset?] = [:]
            for topic in request.topics {
                for partition in topic.partitions { asked[TopicPartition(topic: topic.topic, partition: partition.partition)] = .some(nil) }
            }
            unansweredFetches[exchange] = asked
        }
        noteHighWatermarks(of: delivered.nodeID, in: simulation)
        // A process that ended with the event (an exit after a failed read) shows nothing to
        // hold its last answers against.
        let processRuns = brokerPart(of: simulation.node(delivered.nodeID)) != nil
        for (exchange, answer) in traffic.answers(in: delivered) where exchange.client == ClusterLayout.consumerClientID {
            guard case let .fetch(response) = answer else { continue }
            let seen = unansweredFetches.removeValue(forKey: exchange) ?? [:]
            guard processRuns else { continue }
            let result = checkAnswer(response, from: delivered.nodeID, highWatermarksSeen: seen)
            if result != .ok { return result }
        }
        return .ok
    }

    /// A closed connection's or a dead process's fetches will never be answered.
    private func forgetUnanswerable(_ delivered: DeliveredEvent) {
        switch delivered.event {
        case let .clientDisconnected(connection):
            unansweredFetches = unansweredFetches.filter {
                $0.key.broker != delivered.nodeID || $0.key.correlation >> 32 != connection.rawValue
            }
        case .start:
            unansweredFetches = unansweredFetches.filter { $0.key.broker != delivered.nodeID }
        default:
            break
        }
    }

    private func noteHighWatermarks(of broker: NodeID, in simulation: SimulationView) {
        guard let dataPlane = brokerPart(of: simulation.node(broker))?.dataPlane else { return }
        for exchange in unansweredFetches.keys where exchange.broker == broker {
            // Updated aside and stored once: writing into the entry while iterating it would copy
            // the whole map for every partition.
            var updated = unansweredFetches[exchange]!
            var changed = false
            for (topicPartition, seen) in updated {
                guard let current = dataPlane.replica(for: topicPartition)?.log.highWatermark, seen.map({ current > $0 }) ?? true else { continue }
                updated[topicPartition] = current
                changed = true
            }
            if changed { unansweredFetches[exchange] = updated }
        }
    }

    public func atEnd(of simulation: SimulationView) -> CheckResult {
        guard let consumer = simulation.node(ClusterLayout.consumerClientID, as: ConsumerClientNode.self) else {
            return .violation("the consumer client is not running at the end of the run")
        }
        guard let producer = simulation.node(ClusterLayout.producerClientID, as: ProducerClientNode.self) else {
            return .violation("the producer client is not running at the end of the run")
        }
        let history = checkNewHistory(simulation)
        guard history == .ok else { return history }
        consumedCount = consumer.consumed.count
        let leaderLogs: [TopicPartition: LeaderLogSnapshot]
        switch LeaderLogSnapshot.currentLeaders(in: simulation, layout: layout) {
        case let .success(found): leaderLogs = found
        case let .failure(failure): return .violation(failure.description)
        }
        let converged = ClusterSimulation.isConverged(simulation, layout: layout)
        var skippable: [TopicPartition: Offset] = [:]
        for topicPartition in leaderLogs.keys where retainedTopics.contains(topicPartition.topic) {
            skippable[topicPartition] = retention?.furthestLeaderLogStart(of: topicPartition)
        }
        return Self.check(consumed: consumer.consumed, acknowledged: producer.acknowledged, leaderLogs: leaderLogs,
                          converged: converged, retainedTopics: retainedTopics, skippedBelow: skippable)
    }

    // MARK: Online parts

    private func checkNewHistory(_ simulation: SimulationView) -> CheckResult {
        guard let consumer = simulation.node(ClusterLayout.consumerClientID, as: ConsumerClientNode.self) else { return .ok }
        let events = consumer.events
        while eventsSeen < events.count {
            let result = Self.check(event: events[eventsSeen], retainedTopics: retainedTopics)
            // A reset consumer starts again wherever the leader's log now starts, which may lie
            // below where it was (a new leader that had not deleted as far).
            if result == .ok, case let .positionReset(topicPartition, _, _) = events[eventsSeen] { order.restart(topicPartition) }
            eventsSeen += 1
            if result != .ok { return result }
        }
        let records = consumer.consumed
        while recordsSeen < records.count {
            let result = order.observe(records[recordsSeen])
            recordsSeen += 1
            if result != .ok { return result }
        }
        return .ok
    }

    /// A broker's fetch answer to the consumer, held against the highest HW the broker had for
    /// each partition while the request waited: the high watermark never goes back within a
    /// process, so that bounds the one it answered with.
    private func checkAnswer(_ response: KafkaWire.FetchResponse, from broker: NodeID,
                             highWatermarksSeen: [TopicPartition: Offset?]) -> CheckResult {
        for topic in response.responses {
            for answer in topic.partitions where answer.errorCode == KafkaErrorCode.none.rawValue && !answer.records.isEmpty {
                let topicPartition = TopicPartition(topic: topic.topic, partition: answer.partitionIndex)
                let highWatermark = highWatermarksSeen[topicPartition] ?? nil
                checkedAnswers += 1
                let result = Self.checkServed(answer, of: topicPartition, by: broker, brokerHighWatermark: highWatermark)
                if result != .ok { return result }
            }
        }
        return .ok
    }

    // MARK: Pure cores

    /// A fetch answer `broker` sent the consumer: whole batches below the answer's high watermark,
    /// which is not above the broker's (`brokerHighWatermark`, nil when it did not host the
    /// partition while the request waited: a broker that answered with records hosted it).
    public static func checkServed(_ answer: KafkaWire.FetchResponse.PartitionData, of topicPartition: TopicPartition, by broker: NodeID,
                                   brokerHighWatermark: Offset?) -> CheckResult {
        let where_ = "\(topicPartition): n\(broker) answered the consumer"
        guard let brokerHighWatermark else {
            return .violation("\(where_) with records for a partition it does not host")
        }
        let highWatermark = Offset(answer.highWatermark)
        guard highWatermark != .unknown, highWatermark <= brokerHighWatermark else {
            return .violation("\(where_) with high watermark \(answer.highWatermark), above its own \(brokerHighWatermark)")
        }
        var cursor = 0
        let bytes = answer.records
        while bytes.count - cursor >= RecordBatchLayout.headerSize {
            guard let header = try? RecordBatchHeader.read(bytes, at: cursor), header.totalSize > 0 else {
                return .violation("\(where_) with an unreadable batch header at byte \(cursor)")
            }
            guard Offset(header.nextOffset) <= highWatermark else {
                return .violation("\(where_) with the batch \(header.baseOffset)...\(header.lastOffset), at or above its high watermark \(answer.highWatermark)")
            }
            cursor += header.totalSize
        }
        return .ok
    }

    /// Every event the consumer reports is a violation in this workload (no compression), except
    /// a position reset because retention deleted records of a retained topic before the
    /// consumer read them: a correct cluster never truncates, moves the log start over a
    /// position otherwise, or serves unreadable data under the consumer's position, which only
    /// ever covers committed records.
    public static func check(event: ConsumerEvent, retainedTopics: Set<String> = []) -> CheckResult {
        switch event {
        case let .positionReset(topicPartition, _, .offsetOutOfRange) where retainedTopics.contains(topicPartition.topic):
            return .ok
        case let .truncationDetected(topicPartition, position, resetTo):
            return .violation("\(topicPartition): the consumer detected a truncation: records it had read at offsets \(resetTo)..<\(position) are no longer in the leader's log")
        case let .positionReset(topicPartition, from, reason):
            return .violation("\(topicPartition): the consumer's position \(from) was reset (\(reason)): the leader's log no longer covers it")
        case let .partitionStopped(topicPartition, reason):
            return .violation("\(topicPartition): the consumer stopped reading: \(reason)")
        }
    }

    /// The end of the run: consumed records against the leaders' logs and the producer's
    /// acknowledgements. With `converged` false (the liveness check fails the run anyway), only
    /// what the logs hold is checked: partitions without a readable leader, the HW bound and
    /// completeness are skipped.
    /// Records of `retainedTopics` below the leader's log start may be gone, read or not: the
    /// retention checker judges their deletion. A consumer reset by OFFSET_OUT_OF_RANGE may have
    /// skipped what lay below the furthest log start a leader had (`skippedBelow`): a later leader
    /// whose own log start is lower may still hold it.
    public static func check(consumed: [ObservedRecord], acknowledged: [AcknowledgedWrite],
                             leaderLogs: [TopicPartition: LeaderLogSnapshot], converged: Bool = true,
                             retainedTopics: Set<String> = [], skippedBelow: [TopicPartition: Offset] = [:]) -> CheckResult {
        func deleted(_ topicPartition: TopicPartition, _ offset: Offset) -> Bool {
            guard retainedTopics.contains(topicPartition.topic), let snapshot = leaderLogs[topicPartition] else { return false }
            return offset == .unknown || offset < snapshot.logStartOffset
        }
        func skipped(_ topicPartition: TopicPartition, _ offset: Offset) -> Bool {
            deleted(topicPartition, offset) || skippedBelow[topicPartition].map { offset < $0 } == true
        }
        var logByOffset: [TopicPartition: [Offset: LeaderLogSnapshot.Entry]] = [:]
        for (topicPartition, snapshot) in leaderLogs {
            var entries: [Offset: LeaderLogSnapshot.Entry] = [:]
            for entry in snapshot.entries { entries[entry.offset] = entry }
            logByOffset[topicPartition] = entries
        }
        var consumedByOffset: [TopicPartition: [Offset: [UInt8]?]] = [:]
        for record in consumed {
            let where_ = "\(record.topicPartition): the consumer read \(describe(record.value)) at offset \(record.offset)"
            consumedByOffset[record.topicPartition, default: [:]][record.offset] = record.value
            guard let snapshot = leaderLogs[record.topicPartition] else {
                if converged { return .violation("\(where_), but the partition has no readable leader at the end of the run") }
                continue
            }
            if deleted(record.topicPartition, record.offset) { continue }
            guard let entry = logByOffset[record.topicPartition]?[record.offset] else {
                return .violation("\(where_): leader n\(snapshot.leader) has no record at that offset (a consumed record disappeared; its log holds \(snapshot.logStartOffset)..<\((snapshot.entries.last?.offset).map { $0 + 1 } ?? snapshot.logStartOffset), HW \(snapshot.highWatermark))")
            }
            guard entry.value == record.value else {
                return .violation("\(where_): leader n\(snapshot.leader) has \(describe(entry.value)) there (the consumer read data that was later replaced)")
            }
            if converged, record.offset >= snapshot.highWatermark {
                return .violation("\(where_), at or above leader n\(snapshot.leader)'s high watermark \(snapshot.highWatermark)")
            }
        }
        guard converged else { return .ok }
        for write in acknowledged where !skipped(write.topicPartition, write.offset) {
            let where_ = "\(write.topicPartition): value \(write.value) acknowledged at offset \(write.offset)"
            let read = consumedByOffset[write.topicPartition] ?? [:]
            if write.offset == .unknown {
                // Acknowledged as a duplicate without an offset: the value must have been read somewhere.
                guard consumed.contains(where: {
                    $0.topicPartition == write.topicPartition && ProducerClientNode.sequenceNumber(of: $0.value) == write.value
                }) else {
                    return .violation("\(where_): the consumer never read that value")
                }
                continue
            }
            guard let value = read[write.offset] else {
                return .violation("\(where_) was never read by the consumer")
            }
            guard ProducerClientNode.sequenceNumber(of: value) == write.value else {
                return .violation("\(where_): the consumer read \(describe(value)) there")
            }
        }
        return .ok
    }

    static func describe(_ value: [UInt8]?) -> String {
        if let number = ProducerClientNode.sequenceNumber(of: value) { return "value \(number)" }
        return value.map { "bytes \($0)" } ?? "a null value"
    }
}

/// Per partition, the consumed offsets strictly increase and the producer's values strictly
/// increase: fed one record at a time, in delivery order.
public struct ConsumedOrder: Sendable {
    private var lastOffset: [TopicPartition: Offset] = [:]
    private var lastValue: [TopicPartition: (value: UInt64, offset: Offset)] = [:]
    /// Topics whose values are only checked for offset order (see `ClusterLayout.retainedTopics`).
    private let atLeastOnceTopics: Set<String>

    public init(atLeastOnceTopics: Set<String> = []) {
        self.atLeastOnceTopics = atLeastOnceTopics
    }

    /// Forgets where the partition's consumer was: it was reset to another position.
    public mutating func restart(_ topicPartition: TopicPartition) {
        lastOffset[topicPartition] = nil
        lastValue[topicPartition] = nil
    }

    public mutating func observe(_ record: ObservedRecord) -> CheckResult {
        let topicPartition = record.topicPartition
        if let previous = lastOffset[topicPartition], record.offset <= previous {
            let kind = record.offset == previous ? "again" : "after offset \(previous)"
            return .violation("\(topicPartition): the consumer read offset \(record.offset) \(kind) (\(ConsumedRecordsChecker.describe(record.value)))")
        }
        let value = ProducerClientNode.sequenceNumber(of: record.value)
        lastOffset[topicPartition] = record.offset
        guard let value, !atLeastOnceTopics.contains(topicPartition.topic) else { return .ok }
        if let previous = lastValue[topicPartition], value <= previous.value {
            let kind = value == previous.value ? "a duplicate of" : "out of order after"
            return .violation("\(topicPartition): the consumer read value \(value) at offset \(record.offset), \(kind) value \(previous.value) at offset \(previous.offset)")
        }
        lastValue[topicPartition] = (value, record.offset)
        return .ok
    }
}
