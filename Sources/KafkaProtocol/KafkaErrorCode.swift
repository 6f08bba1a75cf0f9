/// Kafka's protocol error codes, as sent in responses. Only the codes Tern uses so far; add
/// cases as handlers need them (numbers from Kafka's `Errors.java`).
public enum KafkaErrorCode: Int16, Sendable, CaseIterable {
    case unknownServerError = -1
    case none = 0
    case offsetOutOfRange = 1
    case corruptMessage = 2
    case unknownTopicOrPartition = 3
    case leaderNotAvailable = 5
    case notLeaderOrFollower = 6
    case requestTimedOut = 7
    case replicaNotAvailable = 9
    case messageTooLarge = 10
    case coordinatorLoadInProgress = 14
    case coordinatorNotAvailable = 15
    case notCoordinator = 16
    case invalidTopic = 17
    case recordListTooLarge = 18
    case notEnoughReplicas = 19
    case notEnoughReplicasAfterAppend = 20
    case invalidRequiredAcks = 21
    case illegalGeneration = 22
    case unknownMemberID = 25
    case rebalanceInProgress = 27
    case invalidTimestamp = 32
    case unsupportedVersion = 35
    case notController = 41
    case invalidRequest = 42
    case outOfOrderSequenceNumber = 45
    case duplicateSequenceNumber = 46
    case invalidProducerEpoch = 47
    case invalidTransactionTimeout = 50
    case concurrentTransactions = 51
    case kafkaStorageError = 56
    case unknownProducerID = 59
    case fencedLeaderEpoch = 74
    case unknownLeaderEpoch = 75
    case unsupportedCompressionType = 76
    case offsetNotAvailable = 78
    case memberIDRequired = 79
    case invalidRecord = 87
    case unstableOffsetCommit = 88
    case producerFenced = 90
    case unknownTopicID = 100
    case transactionAbortable = 120
}

extension KafkaErrorCode {
    /// The code a response field carries; codes newer than Tern's table read as
    /// UNKNOWN_SERVER_ERROR, which every client treats as a failure it does not retry.
    public init(wire raw: Int16) { self = KafkaErrorCode(rawValue: raw) ?? .unknownServerError }
}

extension RecordBatchError {
    /// The code a Produce response carries for a batch refused with this error, following what
    /// Kafka's LogValidator and UnifiedLog answer for the same fault: damage (bad CRC, torn
    /// framing) is the retriable CORRUPT_MESSAGE; a well-formed batch that breaks a rule is
    /// INVALID_RECORD, which clients do not retry.
    public var kafkaErrorCode: KafkaErrorCode {
        switch self {
        case .truncated, .invalidLength, .crcMismatch:
            return .corruptMessage
        case .tooLarge:
            return .messageTooLarge
        case .unsupportedCompression:
            return .unsupportedCompressionType
        case .unsupportedMagic, .recordCountMismatch, .invalidRecord, .invalidProducerFields,
             .invalidControlBatch, .invalidBaseOffset, .recordOffsetMismatch, .trailingBytes:
            return .invalidRecord
        case .recordsAreCompressed:
            // Not a property of the batch but of a caller asking for records Tern keeps opaque.
            return .unknownServerError
        }
    }
}
