import Client
import Controller
import KafkaProtocol
import NodeKit
import SimWorld
import TernCore

/// One record the consumer client was handed, as the consumed-records checker judges it.
public struct ObservedRecord: Equatable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Offset
    /// The epoch of the leader that wrote the record's batch.
    public var leaderEpoch: LeaderEpoch
    public var value: [UInt8]?

    public init(topicPartition: TopicPartition, offset: Offset, leaderEpoch: LeaderEpoch = .none, value: [UInt8]?) {
        self.topicPartition = topicPartition
        self.offset = offset
        self.leaderEpoch = leaderEpoch
        self.value = value
    }
}

/// A consumer client for simulations: one `Consumer` (read_uncommitted, no group) assigned every
/// partition of the topics the admin client creates, each from offset 0. Partitions of topics
/// that do not exist yet wait until metadata names a leader for them. It records every record it
/// is handed and every `ConsumerEvent`, in order; it never crashes (the nemesis leaves clients
/// alone), so its history is what the consumed-records checker compares with the producer's
/// acknowledgements and the brokers' logs. Its requests travel as Kafka frames through the brokers'
/// front doors (`KafkaClientConnections`).
///
/// Brokers answer a consumer fetch at once (they do not park it until `maxWait`), so sending on
/// every answer would poll in a tight loop: requests go out on ticks only, at most one per leader
/// and kind per tick.
///
/// Beside consuming, it looks offsets up by timestamp (ListOffsets), one partition at a time in
/// turn, for the timestamp-lookups checker: a time shortly before its wall clock's now (often
/// after the newest committed record, sometimes before the oldest), time zero, or the
/// max-timestamp query. The answers are not used: the checker judges them at the broker.
public final class ConsumerClientNode: NodeStateMachine {
    public let nodeID: NodeID
    public var tickInterval: Duration { .milliseconds(100) }

    public private(set) var consumer: Consumer
    /// Every record handed over, in delivery order (per partition: offset order).
    public private(set) var consumed: [ObservedRecord] = []
    /// Every event the consumer reported, in order.
    public private(set) var events: [ConsumerEvent] = []
    /// The partitions assigned, sorted.
    public let partitions: [TopicPartition]
    private var connections = KafkaClientConnections(clientID: "simulated-consumer")
    private var outcomes: [ClientRequestOutcome] = []
    private var timestampLookupRandom: DeterministicRandom
    private var nextTimestampLookupAt = Instant.zero
    private var nextTimestampLookupPartition = 0
    /// Lookups take correlations far above any the consumer allocates, so their answers can be
    /// kept from it.
    private var nextTimestampLookupCorrelation = ConsumerClientNode.firstTimestampLookupCorrelation
    static let firstTimestampLookupCorrelation: UInt64 = 1 << 62
    static let timestampLookupInterval = Duration.seconds(1)

    /// Longer than a broker ever takes to answer, shorter than the liveness phase: a request to a
    /// crashed broker is given up in time to retry elsewhere.
    static let requestTimeout = Duration.seconds(3)

    init(environment: NodeEnvironment, brokers: [NodeID], topics: Int, partitionsPerTopic: Int32) {
        nodeID = environment.nodeID
        partitions = (0..<topics).flatMap { topic in
            (0..<partitionsPerTopic).map { TopicPartition(topic: "topic-\(topic)", partition: $0) }
        }.sorted()
        let configuration = Consumer.Configuration(requestTimeout: Self.requestTimeout)
        consumer = Consumer(assignments: partitions.map { ($0, ConsumerStartPosition.offset(Offset(0))) },
                            bootstrapNodes: brokers, configuration: configuration,
                            random: environment.random.stream("consumer-client"))
        timestampLookupRandom = environment.random.stream("timestamp-lookups")
    }

    /// The next offset the consumer will deliver for `topicPartition`, once known.
    public func position(of topicPartition: TopicPartition) -> Offset? { consumer.position(of: topicPartition) }

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        switch event {
        case .start, .message, .syncCompleted, .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected:
            break
        case .tick:
            connections.expire(now: now, effects: &effects, outcomes: &outcomes)
            deliverOutcomes(now: now)
            // `nextRequests` also expires requests past `requestTimeout`; the connection waits a
            // little longer, so the consumer's own timeout decides.
            for request in consumer.nextRequests(now: now) {
                connections.send(request, timeout: Self.requestTimeout + .seconds(1), now: now, effects: &effects, outcomes: &outcomes)
            }
            if now >= nextTimestampLookupAt, let lookup = nextTimestampLookup(wallClock: wallClock) {
                nextTimestampLookupAt = now + Self.timestampLookupInterval
                connections.send(lookup, timeout: Self.requestTimeout, now: now, effects: &effects, outcomes: &outcomes)
            }
        case .outboundConnected, .outboundResponse, .outboundClosed:
            _ = connections.handle(event, now: now, effects: &effects, outcomes: &outcomes)
        }
        deliverOutcomes(now: now)
        collect()
    }

    private func deliverOutcomes(now: Instant) {
        outcomes.removeAll { outcome in
            switch outcome {
            case let .answered(correlation, _), let .failed(correlation):
                return correlation.rawValue >= Self.firstTimestampLookupCorrelation
            }
        }
        consumer.take(outcomes, now: now)
        outcomes.removeAll(keepingCapacity: true)
    }

    /// A ListOffsets by timestamp for the next partition in turn whose leader is known.
    private func nextTimestampLookup(wallClock: Instant) -> ClientRequest? {
        guard !partitions.isEmpty else { return nil }
        let topicPartition = partitions[nextTimestampLookupPartition % partitions.count]
        nextTimestampLookupPartition += 1
        guard let leader = consumer.metadata.usableLeader(for: topicPartition) else { return nil }
        let timestamp: Int64
        switch timestampLookupRandom.int(in: 0...9) {
        case 0: timestamp = ListOffsetsTimestamp.maxTimestamp
        case 1: timestamp = 0
        default: timestamp = wallClock.milliseconds - Int64(timestampLookupRandom.int(in: -200...8_000))
        }
        let correlation = RequestCorrelation(rawValue: nextTimestampLookupCorrelation)
        nextTimestampLookupCorrelation += 1
        let request = KafkaWire.ListOffsetsRequest(replicaId: -1, topics: [
            .init(name: topicPartition.topic, partitions: [
                .init(partitionIndex: topicPartition.partition, currentLeaderEpoch: leader.leaderEpoch.rawValue, timestamp: timestamp),
            ]),
        ])
        return ClientRequest(destination: leader.leaderID, request: .listOffsets(request), correlation: correlation)
    }

    private func collect() {
        for record in consumer.takeRecords() {
            consumed.append(ObservedRecord(topicPartition: record.topicPartition, offset: record.offset,
                                           leaderEpoch: record.leaderEpoch, value: record.value))
        }
        events.append(contentsOf: consumer.takeEvents())
    }
}
