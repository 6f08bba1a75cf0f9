import KafkaProtocol
import TernCore

// The sans-IO contract every client piece follows: the shell asks `nextRequests(now:)` for what to
// send, delivers each answer with `handle(response:correlation:now:)`, reports a lost connection
// or an abandoned request with `handleTimeout(correlation:now:)`, and wakes the client no later
// than `nextWakeup` so linger, backoff and request deadlines fire. Nothing here reads a clock.

/// The contract `IdempotentProducer` and `Consumer` share, so one shell drives either: the tools'
/// `SansIOClientDriver` over real sockets, the simulator's client nodes over simulated connections.
public protocol SansIOKafkaClient {
    mutating func nextRequests(now: Instant) -> [ClientRequest]
    mutating func handle(response: KafkaResponse, correlation: RequestCorrelation, now: Instant)
    mutating func handleTimeout(correlation: RequestCorrelation, now: Instant)
    func nextWakeup() -> Instant?
    var metadata: MetadataCache { get }
    /// How long the client itself waits for an answer; the network gives up a little later.
    var requestTimeout: Duration { get }
}

extension IdempotentProducer: SansIOKafkaClient {
    public var requestTimeout: Duration { configuration.requestTimeout }
}

extension Consumer: SansIOKafkaClient {
    public var requestTimeout: Duration { configuration.requestTimeout }
}

/// Names one request a client sent, so its answer (or its loss) finds the state waiting for it.
/// Unique within one client instance; the shell pairs it with the client's identity if it runs many.
public struct RequestCorrelation: TypedInteger {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// A request the shell must carry to `destination` and answer with the same `correlation`. The
/// body is the same at every version the conversation may pick (fields a version lacks are
/// dropped when it is encoded).
public struct ClientRequest: Equatable, Sendable {
    public var destination: NodeID
    public var request: KafkaRequest
    public var correlation: RequestCorrelation

    public init(destination: NodeID, request: KafkaRequest, correlation: RequestCorrelation) {
        self.destination = destination
        self.request = request
        self.correlation = correlation
    }
}

/// Hands out correlations in increasing order, never reusing one, so a late answer to an abandoned
/// request can never be mistaken for the answer to a newer one.
struct CorrelationAllocator: Sendable {
    private var next: UInt64 = 1

    mutating func allocate() -> RequestCorrelation {
        defer { next += 1 }
        return RequestCorrelation(next)
    }
}

extension KafkaErrorCode {
    /// Errors after which the partition's leader (or its existence) must be looked up again before
    /// retrying: Java's InvalidMetadataException family.
    public var invalidatesMetadata: Bool {
        switch self {
        case .notLeaderOrFollower, .fencedLeaderEpoch, .unknownTopicOrPartition, .leaderNotAvailable,
             .kafkaStorageError, .unknownTopicID:
            return true
        default:
            return false
        }
    }

    /// Errors a client retries with the same request (after refreshing metadata when
    /// `invalidatesMetadata`); the rest are reported to the application.
    public var isRetriable: Bool {
        if invalidatesMetadata { return true }
        switch self {
        case .corruptMessage, .requestTimedOut, .replicaNotAvailable, .notEnoughReplicas,
             .notEnoughReplicasAfterAppend, .coordinatorLoadInProgress, .coordinatorNotAvailable,
             .notCoordinator, .concurrentTransactions, .unknownLeaderEpoch, .offsetNotAvailable:
            return true
        default:
            return false
        }
    }
}

extension ClientRequest {
    /// The request as a `KafkaConversation` carries it, built at the version the conversation
    /// negotiates; its token is the correlation's raw value.
    public func outgoing(timeout: Duration) -> OutgoingRequest {
        let request = request
        var answerWhenWritten: KafkaResponse?
        if case let .produce(produce) = request, produce.acks == 0 { answerWhenWritten = .produce(produce.answerWithoutAcknowledgement) }
        return OutgoingRequest(apiKey: request.apiKey, token: correlation.rawValue, timeout: timeout,
                               answerWhenWritten: answerWhenWritten) { request.atVersion($0) }
    }
}

extension KafkaRequest {
    /// The request as sent at `version`. A Metadata request for every topic is a null list from
    /// v1; v0 has no null list and says "every topic" with an empty one.
    public func atVersion(_ version: Int16) -> KafkaRequest {
        guard version == 0, case var .metadata(metadata) = self, metadata.topics == nil else { return self }
        metadata.topics = []
        return .metadata(metadata)
    }
}

extension KafkaWire.ProduceRequest {
    /// What the client is told once an `acks=0` produce is written, as librdkafka reports it:
    /// every partition accepted, offset unknown (Kafka sends no answer).
    public var answerWithoutAcknowledgement: KafkaWire.ProduceResponse {
        KafkaWire.ProduceResponse(responses: topicData.map { topic in
            KafkaWire.ProduceResponse.TopicProduceResponse(name: topic.name, partitionResponses: topic.partitionData.map {
                KafkaWire.ProduceResponse.PartitionProduceResponse(index: $0.index, baseOffset: Offset.unknown.rawValue)
            })
        })
    }
}
