import TernCore
import KafkaProtocol

/// Where a log found bytes it cannot trust: the file, the byte position in it, and the offset the
/// log expected there.
public struct LogCorruption: Equatable, Sendable, CustomStringConvertible {
    public let file: String
    public let position: Int64
    public let offset: Offset
    public let reason: String

    public var description: String {
        "corrupt data in \(file) at byte \(position) (offset \(offset)): \(reason)"
    }
}

/// Operating errors of a partition log. Broken invariants are preconditions instead.
public enum LogError: Error, Equatable, Sendable, CustomStringConvertible {
    case disk(DiskError)
    /// Corruption below the recovery point: the log serves nothing at or past `offset` until it is
    /// repaired (re-fetched from a leader).
    case corrupt(LogCorruption)
    case offsetOutOfRange(requested: Offset, logStartOffset: Offset, logEndOffset: Offset)
    /// A follower append does not start at the log end offset.
    case nonContiguousAppend(expected: Offset, received: Offset)
    case invalidBatch(RecordBatchError)
    /// A truncation below the durable offset, or the state recovery found, is being made durable;
    /// appends wait for it (see `PartitionLog.hasDurabilityBarrier`).
    case durabilityBarrierPending
    /// A sync failed; the log no longer accepts writes (an fsync error cannot be retried safely).
    case offline(reason: String)
    case batchTooLarge(size: Int, segmentBytes: Int64)
    /// The directory's `partition.metadata` names another topic (one deleted, or the one created
    /// before under the same name): it is not opened, and left as it is.
    case topicIDMismatch(directory: String, found: String, expected: String)

    public var description: String {
        switch self {
        case let .disk(error): return "disk error: \(error)"
        case let .corrupt(corruption): return corruption.description
        case let .offsetOutOfRange(requested, start, end):
            return "offset \(requested) is out of range [\(start), \(end)]"
        case let .nonContiguousAppend(expected, received):
            return "append starts at offset \(received), log end offset is \(expected)"
        case let .invalidBatch(error): return "invalid record batch: \(error)"
        case .durabilityBarrierPending: return "a truncation or recovery is being made durable; retry the append"
        case let .offline(reason): return "log is offline: \(reason)"
        case let .batchTooLarge(size, segmentBytes): return "batch of \(size) bytes does not fit in a segment of \(segmentBytes) bytes"
        case let .topicIDMismatch(directory, found, expected):
            return "\(directory) belongs to topic id \(found), not \(expected)"
        }
    }
}
