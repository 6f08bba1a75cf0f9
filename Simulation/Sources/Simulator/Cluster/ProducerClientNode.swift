import Client
import Controller
import KafkaProtocol
import NodeKit
import SimWorld
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

/// A record the producer reported failed: the producer gave up on it.
public struct FailedRecord: Equatable, Sendable {
    public var topicPartition: TopicPartition
    public var value: UInt64
    public var error: KafkaErrorCode
    /// Some attempt may have reached a log.
    public var possiblyWritten: Bool
    /// The client's clock when the failure was reported.
    public var time: Instant

    public init(topicPartition: TopicPartition, value: UInt64, error: KafkaErrorCode, possiblyWritten: Bool, time: Instant) {
        self.topicPartition = topicPartition
        self.value = value
        self.error = error
        self.possiblyWritten = possiblyWritten
        self.time = time
    }
}

/// A record `IdempotentProducer.send` refused for a reason other than a full buffer.
public struct RefusedRecord: Equatable, Sendable {
    public var topicPartition: TopicPartition
    public var value: UInt64
    public var error: ProducerSendError
    public var time: Instant

    public init(topicPartition: TopicPartition, value: UInt64, error: ProducerSendError, time: Instant) {
        self.topicPartition = topicPartition
        self.value = value
        self.error = error
        self.time = time
    }
}

/// A producer client for simulations: one `IdempotentProducer` (acks=all) sending a steady stream
/// of small records (key "p<n>", value n as 8 big-endian bytes, n increasing over the whole run)
/// round-robin to every partition of the topics the admin client creates, and during each of its
/// `bursts` keeping the burst's partitions at the in-flight limit with one batch queued. It carries each
/// `ClientRequest` as a Kafka request frame over a client connection to the broker's front door
/// (`KafkaClientConnections`), feeds the answers back, and gives up on a connection whose oldest
/// request is unanswered after `requestTimeout`, failing every request on it. It never crashes (the
/// nemesis leaves clients alone), so its acknowledgements are the ground truth the replication
/// checker compares the brokers' logs with.
public final class ProducerClientNode: NodeStateMachine {
    public let nodeID: NodeID
    public var tickInterval: Duration { .milliseconds(50) }

    public private(set) var producer: IdempotentProducer
    public private(set) var acknowledged: [AcknowledgedWrite] = []
    /// Records reported failed, in the order reported.
    public private(set) var failed: [FailedRecord] = []
    /// `send` refusals (buffer full, failed partition or producer).
    public private(set) var refusedSends = 0
    /// Refusals because the producer's buffer was full: back-pressure, not a failure.
    public private(set) var bufferFullRefusals = 0
    /// The first few refusals for any other reason (a failed partition or producer).
    public private(set) var otherRefusals: [RefusedRecord] = []
    /// Values handed out so far, refused sends included.
    public private(set) var nextValue: UInt64 = 0
    /// Per partition, the value of the last record given to the producer: a checker reading it
    /// after each of this node's events knows when each partition was given each record.
    public private(set) var lastValueSent: [TopicPartition: UInt64] = [:]
    /// The fullest in-flight window a burst's partition reached (at most the producer's limit).
    public private(set) var fullestBurstWindow = 0

    private let partitions: [TopicPartition]
    private let interval: Duration
    private let startDelay: Duration
    private let produceDuration: Duration?
    private var stopSendingAt: Instant?
    private var nextSendAt: Instant?
    private var values: [RecordHandle: (topicPartition: TopicPartition, value: UInt64)] = [:]
    private var connections = KafkaClientConnections(clientID: "simulated-producer")
    /// The time of day of the event under way: the records' CreateTime.
    private var wallClock = Instant.zero
    private var outcomes: [ClientRequestOutcome] = []
    private let bursts: [ProducerBurst]
    private var startedAt: Instant?
    /// Sends of the steady stream so far: its round-robin position.
    private var steadySends = 0
    /// Records given to the producer and not completed yet, per partition (bursts top these up).
    private var outstanding: [TopicPartition: Int] = [:]

    static let requestTimeout = Duration.seconds(3)
    static let maximumOtherRefusalsKept = 16
    static let batchSizeBytes = 1_024

    init(environment: NodeEnvironment, brokers: [NodeID], topics: Int, partitionsPerTopic: Int32,
         recordsPerSecond: Int = 20, startDelay: Duration = .seconds(3), produceDuration: Duration? = nil,
         bursts: [ProducerBurst] = []) {
        nodeID = environment.nodeID
        var configuration = IdempotentProducer.Configuration(brokerAckTimeout: .seconds(2), requestTimeout: .seconds(10))
        configuration.lingerTime = .milliseconds(5)
        // Small batches, so that the retained topics' 2 KiB segments always take one whole.
        configuration.batchSizeBytes = Self.batchSizeBytes
        producer = IdempotentProducer(bootstrapNodes: brokers, configuration: configuration,
                                      random: environment.random.stream("producer-client"))
        partitions = (0..<topics).flatMap { topic in
            (0..<partitionsPerTopic).map { TopicPartition(topic: "topic-\(topic)", partition: $0) }
        }
        interval = .milliseconds(Int64(1_000 / max(1, recordsPerSecond)))
        self.startDelay = startDelay
        self.produceDuration = produceDuration
        self.bursts = bursts
    }

    /// The in-flight limit per partition of the producer this client runs.
    public var maximumInFlightPerPartition: Int { producer.configuration.maximumInFlightPerPartition }

    /// Records given to the producer whose outcome is not known yet.
    public var unfinishedRecords: Int { producer.unfinishedRecords }

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        self.wallClock = wallClock
        switch event {
        case .start:
            startedAt = now
            nextSendAt = now + startDelay
            stopSendingAt = produceDuration.map { now + $0 }
        case .tick:
            connections.expire(now: now, effects: &effects, outcomes: &outcomes)
            while let due = nextSendAt, now >= due, !partitions.isEmpty, stopSendingAt.map({ due < $0 }) ?? true {
                sendSteady(now: now)
                nextSendAt = due + interval
            }
            sendBursts(now: now)
        case .outboundConnected, .outboundResponse, .outboundClosed:
            _ = connections.handle(event, now: now, effects: &effects, outcomes: &outcomes)
        case .message, .syncCompleted, .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected:
            break
        }
        deliverOutcomes(now: now)
        collectCompletions(now: now)
        let requests = producer.nextRequests(now: now)
        for request in requests {
            connections.send(request, timeout: Self.requestTimeout, now: now, effects: &effects, outcomes: &outcomes)
        }
        if !requests.isEmpty { noteBurstWindows(now: now) }
        deliverOutcomes(now: now)
        collectCompletions(now: now)
    }

    /// What the connections answered goes to the producer; requests it makes of it leave with
    /// the next `nextRequests`.
    private func deliverOutcomes(now: Instant) {
        producer.take(outcomes, now: now)
        outcomes.removeAll(keepingCapacity: true)
    }

    private func sendSteady(now: Instant) {
        let topicPartition = partitions[steadySends % partitions.count]
        steadySends += 1
        sendOne(to: topicPartition, now: now)
    }

    /// Tops each partition of every burst under way up to the in-flight limit plus one queued
    /// batch, one batch of `recordsPerBatch` at a time (a flush closes each), so that the
    /// partition has as many requests in flight as the producer allows when a connection drops.
    private func sendBursts(now: Instant) {
        guard let startedAt, stopSendingAt.map({ now < $0 }) ?? true else { return }
        for burst in bursts where startedAt + burst.start <= now && now < startedAt + burst.start + burst.length {
            let target = (maximumInFlightPerPartition + 1) * burst.recordsPerBatch
            for topicPartition in burst.partitions {
                topUp: while outstanding[topicPartition, default: 0] + burst.recordsPerBatch <= target {
                    for _ in 0..<burst.recordsPerBatch {
                        guard sendOne(to: topicPartition, now: now) else { break topUp }
                    }
                    producer.flush()
                }
            }
        }
    }

    private func noteBurstWindows(now: Instant) {
        guard let startedAt, fullestBurstWindow < maximumInFlightPerPartition else { return }
        for burst in bursts where startedAt + burst.start <= now && now < startedAt + burst.start + burst.length {
            for topicPartition in burst.partitions {
                fullestBurstWindow = max(fullestBurstWindow, producer.window(of: topicPartition))
            }
        }
    }

    /// Hands the next value to the producer; false when it refused it.
    @discardableResult
    private func sendOne(to topicPartition: TopicPartition, now: Instant) -> Bool {
        let value = nextValue
        nextValue += 1
        var bytes = [UInt8](repeating: 0, count: 8)
        for index in 0..<8 { bytes[index] = UInt8(truncatingIfNeeded: value >> (8 * (7 - index))) }
        do throws(ProducerSendError) {
            let handle = try producer.send(topicPartition, key: Array("p\(value)".utf8), value: bytes, timestamp: wallClock, now: now)
            values[handle] = (topicPartition, value)
            lastValueSent[topicPartition] = value
            outstanding[topicPartition, default: 0] += 1
            return true
        } catch {
            refusedSends += 1
            if error == .bufferFull {
                bufferFullRefusals += 1
            } else if otherRefusals.count < Self.maximumOtherRefusalsKept {
                otherRefusals.append(RefusedRecord(topicPartition: topicPartition, value: value, error: error, time: now))
            }
            return false
        }
    }

    private func collectCompletions(now: Instant) {
        for completion in producer.takeCompletions() {
            guard let sent = values.removeValue(forKey: completion.handle) else { continue }
            outstanding[sent.topicPartition, default: 1] -= 1
            switch completion.outcome {
            case let .written(offset):
                acknowledged.append(AcknowledgedWrite(topicPartition: sent.topicPartition, offset: offset, value: sent.value))
            case let .failed(error, possiblyWritten):
                failed.append(FailedRecord(topicPartition: sent.topicPartition, value: sent.value, error: error,
                                           possiblyWritten: possiblyWritten, time: now))
            }
        }
    }

    /// Decodes a record written by this client: its value as the sequence number, if it is one.
    public static func sequenceNumber(of value: [UInt8]?) -> UInt64? {
        guard let value, value.count == 8 else { return nil }
        return value.reduce(0) { ($0 << 8) | UInt64($1) }
    }
}
