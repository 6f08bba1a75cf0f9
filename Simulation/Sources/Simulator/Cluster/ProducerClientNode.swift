import Client
import Controller
import KafkaProtocol
import NodeKit
import TernCore

/// One record the cluster acknowledged to the producer client (acks=all).
public struct AcknowledgedWrite: Equatable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Offset
    /// The producer's sequence number, stored as the record's 8-byte big-endian value.
    public var value: UInt64

    public init(topicPartition: TopicPartition, offset: Offset, value: UInt64) {
        self.topicPartition = topicPartition
        self.offset = offset
        self.value = value
    }
}

/// A producer client for simulations: one `IdempotentProducer` (acks=all) sending a steady stream
/// of small records (key "p<n>", value n as 8 big-endian bytes, n increasing over the whole run)
/// round-robin to every partition of the topics the admin client creates. It carries each
/// `ClientRequest` as a `PeerMessage.dataRequest`, feeds `.dataResponse`s back, and abandons
/// requests unanswered after `requestTimeout` (a lost connection). It never crashes (the nemesis
/// leaves clients alone), so its acknowledgements are the ground truth the replication checker
/// compares the brokers' logs with.
public final class ProducerClientNode: NodeStateMachine {
    public let nodeID: NodeID
    public var tickInterval: Duration { .milliseconds(50) }

    public private(set) var producer: IdempotentProducer
    public private(set) var acknowledged: [AcknowledgedWrite] = []
    /// Records reported failed: (partition, value, error, possiblyWritten).
    public private(set) var failed: [(topicPartition: TopicPartition, value: UInt64, error: KafkaErrorCode, possiblyWritten: Bool)] = []
    /// `send` refusals (buffer full, failed partition or producer).
    public private(set) var refusedSends = 0
    public private(set) var nextValue: UInt64 = 0
    /// Per partition, the value of the last record given to the producer: a checker reading it
    /// after each of this node's events knows when each partition was given each record.
    public private(set) var lastValueSent: [TopicPartition: UInt64] = [:]

    private let partitions: [TopicPartition]
    private let interval: Duration
    private let startDelay: Duration
    private let produceDuration: Duration?
    private var stopSendingAt: Instant?
    private var nextSendAt: Instant?
    private var values: [RecordHandle: (topicPartition: TopicPartition, value: UInt64)] = [:]
    private var inFlight: [RequestCorrelation: Instant] = [:]

    static let requestTimeout = Duration.seconds(3)

    init(environment: NodeEnvironment, brokers: [NodeID], topics: Int, partitionsPerTopic: Int32,
         recordsPerSecond: Int = 20, startDelay: Duration = .seconds(3), produceDuration: Duration? = nil) {
        nodeID = environment.nodeID
        var configuration = IdempotentProducer.Configuration(brokerAckTimeout: .seconds(2), requestTimeout: .seconds(10))
        configuration.lingerTime = .milliseconds(5)
        producer = IdempotentProducer(bootstrapNodes: brokers, configuration: configuration,
                                      random: environment.random.stream("producer-client"))
        partitions = (0..<topics).flatMap { topic in
            (0..<partitionsPerTopic).map { TopicPartition(topic: "topic-\(topic)", partition: $0) }
        }
        interval = .milliseconds(Int64(1_000 / max(1, recordsPerSecond)))
        self.startDelay = startDelay
        self.produceDuration = produceDuration
    }

    /// Records given to the producer whose outcome is not known yet.
    public var unfinishedRecords: Int { producer.unfinishedRecords }

    public func handle(_ event: NodeEvent, now: Instant, effects: inout [NodeEffect]) {
        switch event {
        case .start:
            nextSendAt = now + startDelay
            stopSendingAt = produceDuration.map { now + $0 }
        case .tick:
            for (correlation, sentAt) in inFlight where now - sentAt >= Self.requestTimeout {
                inFlight[correlation] = nil
                producer.handleTimeout(correlation: correlation, now: now)
            }
            while let due = nextSendAt, now >= due, !partitions.isEmpty, stopSendingAt.map({ due < $0 }) ?? true {
                sendOne(now: now)
                nextSendAt = due + interval
            }
        case let .message(_, bytes):
            guard let message = try? PeerMessage(decoding: bytes),
                  case let .dataResponse(correlationID, response) = message else { return }
            let correlation = RequestCorrelation(correlationID)
            inFlight[correlation] = nil
            producer.handle(response: response, correlation: correlation, now: now)
        case .syncCompleted:
            break
        }
        collectCompletions()
        for request in producer.nextRequests(now: now) {
            inFlight[request.correlation] = now
            effects.append(.send(to: request.destination,
                                 bytes: PeerMessage.dataRequest(correlationID: request.correlation.rawValue,
                                                                request: request.request).encoded()))
        }
        collectCompletions()
    }

    private func sendOne(now: Instant) {
        let value = nextValue
        nextValue += 1
        let topicPartition = partitions[Int(value % UInt64(partitions.count))]
        var bytes = [UInt8](repeating: 0, count: 8)
        for index in 0..<8 { bytes[index] = UInt8(truncatingIfNeeded: value >> (8 * (7 - index))) }
        do {
            let handle = try producer.send(topicPartition, key: Array("p\(value)".utf8), value: bytes, now: now)
            values[handle] = (topicPartition, value)
            lastValueSent[topicPartition] = value
        } catch {
            refusedSends += 1
        }
    }

    private func collectCompletions() {
        for completion in producer.takeCompletions() {
            guard let sent = values.removeValue(forKey: completion.handle) else { continue }
            switch completion.outcome {
            case let .written(offset):
                acknowledged.append(AcknowledgedWrite(topicPartition: sent.topicPartition, offset: offset, value: sent.value))
            case let .failed(error, possiblyWritten):
                failed.append((sent.topicPartition, sent.value, error, possiblyWritten))
            }
        }
    }

    /// Decodes a record written by this client: its value as the sequence number, if it is one.
    public static func sequenceNumber(of value: [UInt8]?) -> UInt64? {
        guard let value, value.count == 8 else { return nil }
        return value.reduce(0) { ($0 << 8) | UInt64($1) }
    }
}
