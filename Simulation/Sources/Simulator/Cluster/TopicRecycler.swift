import Client
import Controller
import KafkaProtocol
import NodeKit
import SimWorld
import TernCore

/// The value of a record written to the recycled topic: a sequence number unique over the run and
/// the incarnation of the topic it was written to (1 for the first creation, one more for each
/// re-creation under the same name), 8 + 4 big-endian bytes. The workload topics' values are 8
/// bytes (`ProducerClientNode.sequenceNumber(of:)`), so the two never decode as each other.
public struct IncarnationTaggedValue: Equatable, Sendable, CustomStringConvertible {
    public var sequence: UInt64
    public var incarnation: UInt32

    public init(sequence: UInt64, incarnation: UInt32) {
        self.sequence = sequence
        self.incarnation = incarnation
    }

    public init?(decoding value: [UInt8]?) {
        guard let value, value.count == 12 else { return nil }
        sequence = value[0..<8].reduce(0) { ($0 << 8) | UInt64($1) }
        incarnation = value[8..<12].reduce(0) { ($0 << 8) | UInt32($1) }
    }

    public var bytes: [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (8 * (7 - $0))) }
            + (0..<4).map { UInt8(truncatingIfNeeded: incarnation >> (8 * (3 - $0))) }
    }

    public var description: String { "value \(sequence) of incarnation \(incarnation)" }
}

/// A record of the recycled topic the cluster acknowledged to the operator (acks=all).
public struct RecycledTopicWrite: Equatable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Offset
    public var value: IncarnationTaggedValue

    public init(topicPartition: TopicPartition, offset: Offset, value: IncarnationTaggedValue) {
        self.topicPartition = topicPartition
        self.offset = offset
        self.value = value
    }
}

/// The operator deleting a topic and creating it again under the same name, over and over, with
/// records written to every incarnation: the way a user resets a topic. Deleting needs only a
/// majority of controllers, so a broker that is down, paused or cut off at that moment misses it
/// and must work out on its own, from the metadata it reads later, that the directories it holds
/// under that name belong to a topic that no longer exists. Each incarnation gets the same replica
/// assignment (by hand, as `kafka-topics --replica-assignment` does), so such a broker is asked to
/// host the new incarnation under the directory name of the old one.
///
/// One incarnation's life: created; `recordsPerIncarnation` records written by a fresh idempotent
/// producer (a new producer id, so its sequence numbers start again at 0, as they must on a new
/// topic); every record answered, or the rest abandoned after `drainTime` (a partition without a
/// leader for long must not stop the cycle: records written but not acknowledged are on disk
/// all the same); then a quiet time before the deletion, so that no request of it can still be in
/// the network (a produce request names its topic, not the topic's id, so one delivered after the
/// re-creation would rightly be written to the new incarnation); deleted; created again at once.
/// After `operationsEnd` no new deletion starts, so the run ends with the last incarnation's
/// records in place.
struct TopicRecycler {
    static let topicName = "recycled"
    static let recordsPerIncarnation = 12
    static let recordsPerTick = 3
    /// Longer than a clogged link or a paused broker holds a message in the simulated network.
    static let quietTimeBeforeDeletion = Duration.seconds(5)
    static let drainTime = Duration.seconds(3)
    static let retryBackoff = Duration.milliseconds(500)
    static let requestTimeout = Duration.seconds(3)

    enum Phase: Equatable {
        /// Waiting to ask the controller for the next incarnation.
        case creating
        /// Sending records, `recordsPerTick` at each tick.
        case writing(sent: Int)
        /// Waiting for every record written to be answered, until the time given.
        case draining(until: Instant)
        /// Waiting until no request of this incarnation can still be on its way.
        case quiet(until: Instant)
        /// Waiting to ask the controller to delete it.
        case deleting
    }

    enum Request: Equatable {
        case create(assignments: [[NodeID]])
        case delete
    }

    private(set) var phase = Phase.creating
    /// Incarnations whose creation the controller confirmed.
    private(set) var incarnation: UInt32 = 0
    private(set) var acknowledged: [RecycledTopicWrite] = []
    let assignments: [[NodeID]]
    private let brokers: [NodeID]
    private let random: DeterministicRandom
    private var producer: IdempotentProducer?
    private var values: [RecordHandle: (topicPartition: TopicPartition, value: IncarnationTaggedValue)] = [:]
    private var inFlight: [UInt64: Instant] = [:]
    private var nextSequence: UInt64 = 0
    private var retryAt = Instant.zero

    /// `random` is the recycler's own stream: its draws (the assignment, each producer's) never
    /// shift the other clients' or the nodes'.
    init(brokers: [NodeID], partitions: Int32, replicationFactor: Int16, random: DeterministicRandom) {
        self.brokers = brokers
        var choice = random.stream("assignment")
        let first = Int(choice.next(below: UInt64(brokers.count)))
        let size = min(Int(replicationFactor), brokers.count)
        assignments = (0..<Int(partitions)).map { partition in
            (0..<size).map { brokers[(first + partition + $0) % brokers.count] }
        }
        self.random = random
    }

    var unfinishedRecords: Int { producer?.unfinishedRecords ?? 0 }

    // MARK: Controller requests

    /// The controller request the recycler wants sent now, if any.
    func nextRequest(now: Instant, operationsEnd: Instant?) -> Request? {
        guard now >= retryAt else { return nil }
        switch phase {
        case .creating:
            // A deletion is half of one action: its re-creation follows even after the end.
            guard incarnation > 0 || operationsEnd.map({ now < $0 }) == true else { return nil }
            return .create(assignments: assignments)
        case .deleting:
            guard let operationsEnd, now < operationsEnd else { return nil }
            return .delete
        case .writing, .draining, .quiet:
            return nil
        }
    }

    /// The controller confirmed `request`.
    mutating func confirmed(_ request: Request) {
        switch request {
        case .create:
            incarnation += 1
            producer = IdempotentProducer(
                bootstrapNodes: brokers,
                configuration: IdempotentProducer.Configuration(brokerAckTimeout: .seconds(2), requestTimeout: .seconds(10)),
                random: random.stream("producer", Int(incarnation)))
            values.removeAll()
            inFlight.removeAll()
            phase = .writing(sent: 0)
        case .delete:
            precondition(phase == .deleting && unfinishedRecords == 0, "an incarnation is deleted only once drained")
            producer = nil
            phase = .creating
        }
    }

    mutating func refused(now: Instant) {
        retryAt = now + Self.retryBackoff
    }

    // MARK: Records

    /// Moves the incarnation's life along and returns the data requests to send.
    /// `wallClock` (the time of day) stamps the records written.
    mutating func tick(now: Instant, wallClock: Instant) -> [(destination: NodeID, correlationID: UInt64, request: KafkaRequest)] {
        for (wireID, sentAt) in inFlight.sorted(by: { $0.key < $1.key }) where now - sentAt >= Self.requestTimeout {
            inFlight[wireID] = nil
            producer?.handleTimeout(correlation: RequestCorrelation(wireID & Self.correlationMask), now: now)
        }
        if case let .writing(sent) = phase {
            let count = min(Self.recordsPerTick, Self.recordsPerIncarnation - sent)
            for position in 0..<count { send(partition: Int32((sent + position) % assignments.count), now: now, wallClock: wallClock) }
            phase = sent + count >= Self.recordsPerIncarnation ? .draining(until: now + Self.drainTime) : .writing(sent: sent + count)
        }
        return requests(now: now)
    }

    /// A data-plane answer addressed to the recycler's producers.
    mutating func handle(_ response: KafkaResponse, correlationID: UInt64, now: Instant) {
        guard correlationID >> Self.incarnationShift == UInt64(incarnation), inFlight.removeValue(forKey: correlationID) != nil else {
            return  // for an earlier incarnation's producer, or given up on
        }
        producer?.handle(response: response, correlation: RequestCorrelation(correlationID & Self.correlationMask), now: now)
    }

    mutating func requests(now: Instant) -> [(destination: NodeID, correlationID: UInt64, request: KafkaRequest)] {
        if case let .quiet(until) = phase, now >= until { phase = .deleting }
        guard var producer else { return [] }
        let requests = producer.nextRequests(now: now)
        self.producer = producer
        collectCompletions(now: now)
        return requests.map { request in
            let wireID = UInt64(incarnation) << Self.incarnationShift | request.correlation.rawValue
            inFlight[wireID] = now
            return (request.destination, wireID, request.request)
        }
    }

    /// Wire correlation ids carry the incarnation above this bit, so an answer to an earlier
    /// incarnation's producer is never taken for one of the current producer's.
    private static let incarnationShift: UInt64 = 40
    private static let correlationMask: UInt64 = (1 << incarnationShift) - 1

    private mutating func send(partition: Int32, now: Instant, wallClock: Instant) {
        let value = IncarnationTaggedValue(sequence: nextSequence, incarnation: incarnation)
        nextSequence += 1
        let topicPartition = TopicPartition(topic: Self.topicName, partition: partition)
        do {
            guard let handle = try producer?.send(topicPartition, key: Array("r\(value.sequence)".utf8), value: value.bytes, timestamp: wallClock, now: now) else { return }
            values[handle] = (topicPartition, value)
        } catch {
            return  // refused (a failed partition): the record is simply not written
        }
    }

    private mutating func collectCompletions(now: Instant) {
        guard var producer else { return }
        for completion in producer.takeCompletions() {
            guard let sent = values.removeValue(forKey: completion.handle) else { continue }
            switch completion.outcome {
            case let .written(offset):
                acknowledged.append(RecycledTopicWrite(topicPartition: sent.topicPartition, offset: offset, value: sent.value))
            case .failed:
                continue  // not acknowledged: nothing to check
            }
        }
        self.producer = producer
        if case let .draining(until) = phase, producer.unfinishedRecords == 0 || now >= until {
            if producer.unfinishedRecords > 0 {
                // Its requests stop here: no retry follows, and the quiet time outlasts any in flight.
                self.producer = nil
            }
            phase = .quiet(until: now + Self.quietTimeBeforeDeletion)
        }
    }
}
