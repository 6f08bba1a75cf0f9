import TernCore

/// The position of an entry in the Raft log. The first entry has index 1; index 0 stands for
/// "before the first entry" and has term 0, which makes the consistency check of an append at
/// the start of the log the same as anywhere else.
///
/// On disk an entry of index `i` is the record batch at log offset `i - 1` (see `RaftLogStore`).
public struct LogIndex: TypedInteger, Strideable {
    public var rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public static let zero = LogIndex(0)
    public var next: LogIndex { LogIndex(rawValue + 1) }
    public var previous: LogIndex { LogIndex(rawValue - 1) }
    public func advanced(by count: Int64) -> LogIndex { LogIndex(rawValue + count) }
    public func distance(to other: LogIndex) -> Int64 { other.rawValue - rawValue }
    public static func + (lhs: LogIndex, rhs: Int64) -> LogIndex { LogIndex(lhs.rawValue + rhs) }
    public static func - (lhs: LogIndex, rhs: Int64) -> LogIndex { LogIndex(lhs.rawValue - rhs) }
    public static func < (lhs: LogIndex, rhs: LogIndex) -> Bool { lhs.rawValue < rhs.rawValue }
}

extension Term {
    /// Terms are stored as the 32-bit partition leader epoch of each entry's record batch, so a
    /// term above this can neither be stored nor accepted from a peer. (A node that reached it
    /// would have held two billion elections; it stops campaigning there.)
    public static let maximum = Term(Int64(Int32.max))
}

/// What an entry is for. Stored on disk as the batch's control bit (see `RaftLogStore`).
public enum RaftEntryKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// A proposal of the application (a metadata record for the controller).
    case command = 0
    /// The empty entry a new leader appends at the start of its term: entries of earlier terms
    /// can only be committed through an entry of the current term (Raft §5.4.2), and this one
    /// gets them committed without waiting for a proposal. KRaft writes a LeaderChange control
    /// record for the same reason. The application skips it.
    case leaderChange = 1

    public var description: String {
        switch self {
        case .command: return "command"
        case .leaderChange: return "leader-change"
        }
    }
}

/// One entry of the replicated log.
public struct RaftLogEntry: Sendable, Equatable, CustomStringConvertible {
    public var index: LogIndex
    public var term: Term
    public var kind: RaftEntryKind
    public var payload: [UInt8]

    public init(index: LogIndex, term: Term, kind: RaftEntryKind = .command, payload: [UInt8]) {
        self.index = index
        self.term = term
        self.kind = kind
        self.payload = payload
    }

    public var description: String { "\(index)@\(term)" }
}

/// The state that must be durable before any message that depends on it is sent: the current
/// term and the vote cast in it. Written atomically as one unit (`HardStateFile`).
public struct RaftHardState: Sendable, Equatable, CustomStringConvertible {
    public var term: Term
    public var votedFor: NodeID?

    public init(term: Term, votedFor: NodeID?) {
        self.term = term
        self.votedFor = votedFor
    }

    public static let initial = RaftHardState(term: .zero, votedFor: nil)

    public var description: String { "term=\(term) vote=\(votedFor.map { String($0.rawValue) } ?? "none")" }
}

/// The role a node plays in its current term.
public enum RaftRole: Sendable, Equatable, CustomStringConvertible {
    case follower
    /// Asking for pre-votes without changing its term: it only starts a real election (and bumps
    /// the term) if a quorum says it could win, so a node cut off from the quorum cannot inflate
    /// terms and disrupt the leader when it comes back.
    case preCandidate
    case candidate
    case leader

    public var description: String {
        switch self {
        case .follower: return "follower"
        case .preCandidate: return "pre-candidate"
        case .candidate: return "candidate"
        case .leader: return "leader"
        }
    }
}

/// Why a local request was refused. These are operating conditions, not bugs: the caller retries
/// elsewhere or later.
public enum RaftRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Only the leader accepts proposals; `leaderID` is the leader this node knows of, if any.
    case notLeader(leaderID: NodeID?)
    /// The leader is handing leadership over and accepts nothing until the transfer ends.
    case leadershipTransferInProgress
    case payloadTooLarge(bytes: Int, limit: Int)
    /// Too many entries are waiting to be committed: backpressure until followers catch up.
    case tooManyUncommittedEntries(limit: Int)
    /// The log reached `maximumLogEntries`. Without snapshots nothing can be removed from it.
    case logFull(limit: Int)
    /// The target of a leadership transfer is not another voter.
    case invalidTransferTarget(NodeID)

    public var description: String {
        switch self {
        case let .notLeader(leaderID): return "not the leader (leader: \(leaderID.map { String($0.rawValue) } ?? "unknown"))"
        case .leadershipTransferInProgress: return "a leadership transfer is in progress"
        case let .payloadTooLarge(bytes, limit): return "payload of \(bytes) bytes exceeds the limit of \(limit)"
        case let .tooManyUncommittedEntries(limit): return "more than \(limit) entries are waiting to be committed"
        case let .logFull(limit): return "the log holds its maximum of \(limit) entries (snapshots are not implemented)"
        case let .invalidTransferTarget(target): return "node \(target) is not another voter"
        }
    }
}
