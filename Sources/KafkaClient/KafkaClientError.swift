import KafkaProtocol
import TernCore

/// Why a request, a connection or an operation of the networked client failed.
public enum KafkaClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The host name did not resolve.
    case unresolvableHost(BrokerAddress, reason: String)
    /// TCP connect failed or timed out.
    case connectFailed(BrokerAddress, reason: String)
    /// The connection broke (reset, closed by the broker, a read or write error).
    case connectionLost(BrokerAddress, reason: String)
    /// No answer within the request's timeout; the connection was closed, as Kafka's clients do,
    /// because later answers on it could no longer be trusted to be in order.
    case requestTimedOut(BrokerAddress, apiKey: KafkaAPIKey)
    /// The broker sent something that is not a valid answer (bad frame size, wrong correlation
    /// id, undecodable body).
    case protocolViolation(BrokerAddress, reason: String)
    /// The broker does not offer a version of the API this client speaks.
    case unsupportedAPI(BrokerAddress, apiKey: KafkaAPIKey)
    /// A node id the client has no address for (not in bootstrap, not in any Metadata answer).
    case unknownNode(NodeID)
    /// Too many requests are waiting on one connection; the bound keeps memory finite.
    case tooManyQueuedRequests(BrokerAddress)
    /// An operation found no broker to ask, or every broker failed.
    case noBrokerAvailable(reason: String)
    /// An operation did not finish in time.
    case operationTimedOut(String)

    public var description: String {
        switch self {
        case let .unresolvableHost(address, reason): return "cannot resolve \(address): \(reason)"
        case let .connectFailed(address, reason): return "cannot connect to \(address): \(reason)"
        case let .connectionLost(address, reason): return "connection to \(address) lost: \(reason)"
        case let .requestTimedOut(address, apiKey): return "\(apiKey) request to \(address) timed out"
        case let .protocolViolation(address, reason): return "protocol violation from \(address): \(reason)"
        case let .unsupportedAPI(address, apiKey): return "broker \(address) supports no version of \(apiKey) this client speaks"
        case let .unknownNode(node): return "no address known for node \(node)"
        case let .tooManyQueuedRequests(address): return "too many requests queued for \(address)"
        case let .noBrokerAvailable(reason): return "no broker available: \(reason)"
        case let .operationTimedOut(what): return "timed out: \(what)"
        }
    }
}

/// Kafka's error names for the codes the tools show (Kafka's `Errors.java`), so a failure reads
/// `TOPIC_ALREADY_EXISTS (36)` rather than a bare number.
public func kafkaErrorName(_ code: Int16) -> String {
    let names: [Int16: String] = [
        -1: "UNKNOWN_SERVER_ERROR", 0: "NONE", 1: "OFFSET_OUT_OF_RANGE", 2: "CORRUPT_MESSAGE",
        3: "UNKNOWN_TOPIC_OR_PARTITION", 5: "LEADER_NOT_AVAILABLE", 6: "NOT_LEADER_OR_FOLLOWER",
        7: "REQUEST_TIMED_OUT", 9: "REPLICA_NOT_AVAILABLE", 10: "MESSAGE_TOO_LARGE", 17: "INVALID_TOPIC_EXCEPTION",
        19: "NOT_ENOUGH_REPLICAS", 20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND", 21: "INVALID_REQUIRED_ACKS",
        29: "TOPIC_AUTHORIZATION_FAILED", 31: "CLUSTER_AUTHORIZATION_FAILED", 32: "INVALID_TIMESTAMP",
        35: "UNSUPPORTED_VERSION", 36: "TOPIC_ALREADY_EXISTS", 37: "INVALID_PARTITIONS",
        38: "INVALID_REPLICATION_FACTOR", 39: "INVALID_REPLICA_ASSIGNMENT", 40: "INVALID_CONFIG",
        41: "NOT_CONTROLLER", 42: "INVALID_REQUEST", 44: "POLICY_VIOLATION", 45: "OUT_OF_ORDER_SEQUENCE_NUMBER",
        46: "DUPLICATE_SEQUENCE_NUMBER", 47: "INVALID_PRODUCER_EPOCH", 56: "KAFKA_STORAGE_ERROR",
        59: "UNKNOWN_PRODUCER_ID", 74: "FENCED_LEADER_EPOCH", 75: "UNKNOWN_LEADER_EPOCH",
        76: "UNSUPPORTED_COMPRESSION_TYPE", 87: "INVALID_RECORD", 89: "THROTTLING_QUOTA_EXCEEDED",
        100: "UNKNOWN_TOPIC_ID",
    ]
    return "\(names[code] ?? "ERROR") (\(code))"
}

public func kafkaErrorName(_ code: KafkaErrorCode) -> String { kafkaErrorName(code.rawValue) }
