import LogStorage
import TernCore

/// Why a node's Raft state could not be read or written. Any of these stops the node: Raft cannot
/// run on state it cannot trust, and an fsync error cannot be retried.
public enum RaftStorageError: Error, Equatable, Sendable, CustomStringConvertible {
    case disk(DiskError)
    case log(LogError)
    case corruptHardState(path: String, reason: String)
    case corruptEntry(offset: Offset, reason: String)

    /// The stored state contradicts itself (as opposed to the disk failing an operation).
    public var isCorruption: Bool {
        switch self {
        case .corruptHardState, .corruptEntry: return true
        case let .log(error):
            if case .corrupt = error { return true }
            return false
        case .disk: return false
        }
    }

    public var description: String {
        switch self {
        case let .disk(error): return "disk error: \(error)"
        case let .log(error): return "metadata log error: \(error)"
        case let .corruptHardState(path, reason): return "\(path) is corrupt: \(reason)"
        case let .corruptEntry(offset, reason): return "metadata log entry at offset \(offset) is corrupt: \(reason)"
        }
    }
}
