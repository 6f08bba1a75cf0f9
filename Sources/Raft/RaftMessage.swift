import TernCore

/// A message between two members of the quorum. `term` is the sender's term, except in vote
/// messages: a pre-vote request carries the term the sender would campaign in (its term + 1),
/// and a granted (pre-)vote carries the term of the request, so a stale pre-candidate does not
/// mistake it for an old message.
public struct RaftMessage: Sendable, Equatable, CustomStringConvertible {
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    public var body: RaftMessageBody

    public init(from: NodeID, to: NodeID, term: Term, body: RaftMessageBody) {
        self.from = from
        self.to = to
        self.term = term
        self.body = body
    }

    public var description: String { "\(from)->\(to) term=\(term) \(body)" }
}

public enum RaftMessageBody: Sendable, Equatable, CustomStringConvertible {
    /// RequestVote or PreVote.
    case voteRequest(RaftVoteRequest)
    case voteResponse(isPreVote: Bool, granted: Bool)
    case appendEntries(RaftAppendEntries)
    /// The follower's log matches the leader's up to `matchIndex`, durably.
    case appendAccepted(matchIndex: LogIndex)
    /// The follower's log does not hold the leader's entry at `rejectedIndex` (the append's
    /// previous index). `hintIndex` and `hintTerm` guess where the logs do agree: the last index
    /// at or below `rejectedIndex` whose term is at most the append's previous term, so the
    /// leader skips a whole divergent term per round trip instead of one entry.
    case appendRejected(rejectedIndex: LogIndex, hintIndex: LogIndex, hintTerm: Term)
    /// Keeps followers from campaigning and carries the commit index (never beyond what the
    /// follower is known to hold).
    case heartbeat(commitIndex: LogIndex)
    case heartbeatResponse
    /// Leadership transfer: the leader tells an up-to-date follower to campaign at once.
    case timeoutNow

    public var description: String {
        switch self {
        case let .voteRequest(request):
            return "\(request.isPreVote ? "PreVote" : "Vote") last=\(request.lastLogIndex)@\(request.lastLogTerm)"
                + (request.isLeadershipTransfer ? " transfer" : "")
        case let .voteResponse(isPreVote, granted):
            return "\(isPreVote ? "PreVoteResponse" : "VoteResponse") \(granted ? "granted" : "rejected")"
        case let .appendEntries(append):
            let entries = append.entries.isEmpty ? "[]" : "[\(append.entries.map(\.description).joined(separator: " "))]"
            return "Append prev=\(append.previousIndex)@\(append.previousTerm) commit=\(append.leaderCommit) entries=\(entries)"
        case let .appendAccepted(matchIndex):
            return "AppendAccepted match=\(matchIndex)"
        case let .appendRejected(rejectedIndex, hintIndex, hintTerm):
            return "AppendRejected rejected=\(rejectedIndex) hint=\(hintIndex)@\(hintTerm)"
        case let .heartbeat(commitIndex):
            return "Heartbeat commit=\(commitIndex)"
        case .heartbeatResponse:
            return "HeartbeatResponse"
        case .timeoutNow:
            return "TimeoutNow"
        }
    }
}

public struct RaftVoteRequest: Sendable, Equatable {
    public var isPreVote: Bool
    public var lastLogIndex: LogIndex
    public var lastLogTerm: Term
    /// Sent by the target of a leadership transfer: voters answer even while they still hear
    /// from the (outgoing) leader.
    public var isLeadershipTransfer: Bool

    public init(isPreVote: Bool, lastLogIndex: LogIndex, lastLogTerm: Term, isLeadershipTransfer: Bool = false) {
        self.isPreVote = isPreVote
        self.lastLogIndex = lastLogIndex
        self.lastLogTerm = lastLogTerm
        self.isLeadershipTransfer = isLeadershipTransfer
    }
}

public struct RaftAppendEntries: Sendable, Equatable {
    /// The entry just before `entries`; the follower must hold it with `previousTerm`.
    public var previousIndex: LogIndex
    public var previousTerm: Term
    /// Contiguous, starting at previousIndex + 1.
    public var entries: [RaftLogEntry]
    public var leaderCommit: LogIndex

    public init(previousIndex: LogIndex, previousTerm: Term, entries: [RaftLogEntry], leaderCommit: LogIndex) {
        self.previousIndex = previousIndex
        self.previousTerm = previousTerm
        self.entries = entries
        self.leaderCommit = leaderCommit
    }
}

extension RaftMessage {
    /// The shape every message must have before the core looks at it: terms in
    /// 0...`Term.maximum`, non-negative indexes, and entries that follow `previousIndex`
    /// contiguously with terms that never go down and never pass the message's term. The codec only produces such messages; the core
    /// checks again so that a message built any other way cannot break its invariants.
    public var isWellFormed: Bool {
        guard term >= .zero, term <= .maximum, from.rawValue >= 0, to.rawValue >= 0 else { return false }
        switch body {
        case let .voteRequest(request):
            return request.lastLogIndex >= .zero && request.lastLogTerm >= .zero && request.lastLogTerm <= term
        case .voteResponse, .heartbeatResponse, .timeoutNow:
            return true
        case let .appendEntries(append):
            return append.isWellFormed(messageTerm: term)
        case let .appendAccepted(matchIndex):
            return matchIndex >= .zero
        case let .appendRejected(rejectedIndex, hintIndex, hintTerm):
            return rejectedIndex >= .zero && hintIndex >= .zero && hintTerm >= .zero && hintTerm <= .maximum
        case let .heartbeat(commitIndex):
            return commitIndex >= .zero
        }
    }
}

extension RaftAppendEntries {
    func isWellFormed(messageTerm: Term) -> Bool {
        guard previousIndex >= .zero, previousTerm >= .zero, previousTerm <= messageTerm, leaderCommit >= .zero else {
            return false
        }
        guard previousIndex.rawValue <= Int64.max - Int64(entries.count) else { return false }
        var expectedIndex = previousIndex.next
        var lastTerm = previousTerm
        for entry in entries {
            guard entry.index == expectedIndex, entry.term >= lastTerm, entry.term <= messageTerm, entry.term > .zero else {
                return false
            }
            expectedIndex = expectedIndex.next
            lastTerm = entry.term
        }
        return true
    }
}
