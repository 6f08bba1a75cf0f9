import TernCore

/// Everything the core wants done, in the order it must be done (etcd's `Ready`):
///
/// 1. Persist `hardState` (if set) and `entries`, and wait until both are durable. `entries`
///    replace the stored log from `entries[0].index` on: storage first cuts every entry at or
///    after that index (a follower's conflicting tail), then appends them.
/// 2. Send `messages`. A granted vote, an acknowledged append or a term in a message is only
///    true once step 1 is durable; a crash before that must not leave a trace of it elsewhere.
///    (Messages that speak for nothing but a durable term leave earlier, through
///    `takeMessagesSendableNow`, and are not in a Ready taken after it.)
/// 3. Apply `committedEntries` (already committed by a quorum; they never change).
/// 4. Call `advance(_:now:)` with this Ready. Until then the core hands out no other Ready (steps
///    and ticks may continue; their output waits for the next one).
public struct RaftReady: Sendable, Equatable {
    /// Term and vote to store atomically, if they changed.
    public var hardState: RaftHardState?
    public var entries: [RaftLogEntry]
    public var messages: [RaftMessage]
    public var committedEntries: [RaftLogEntry]
    let sequence: UInt64

    /// The index storage must keep entries below (cutting the rest) before appending `entries`.
    public var firstEntryIndex: LogIndex? { entries.first?.index }
    public var needsPersistence: Bool { hardState != nil || !entries.isEmpty }
}

extension RaftCore {
    /// Whether `ready` would hand out anything. `applyLimit` is how many committed entries the
    /// application can take now (its queue's free room).
    public func hasReady(applyLimit: Int = .max) -> Bool {
        guard readyInFlight == nil else { return false }
        return !outbox.isEmpty || hardState != handedHardState || !log.unstableEntries.isEmpty
            || (applyLimit > 0 && log.commitIndex > log.appliedIndex)
    }

    /// Hands out what is to be persisted, sent and applied. One Ready at a time: the caller
    /// follows its order and calls `advance` before asking again.
    public mutating func ready(applyLimit: Int = .max) -> RaftReady {
        precondition(readyInFlight == nil, "a Ready is still in flight: call advance first")
        readyCount += 1
        let current = hardState
        let limit = min(applyLimit, configuration.maximumCommittedEntriesPerReady)
        let ready = RaftReady(hardState: current == handedHardState ? nil : current,
                              entries: Array(log.unstableEntries),
                              messages: outbox,
                              committedEntries: Array(log.committedEntriesToApply(limit: limit)),
                              sequence: readyCount)
        outbox.removeAll(keepingCapacity: true)
        handedHardState = current
        log.markHandedToStorage()
        readyInFlight = readyCount
        return ready
    }

    /// The caller did everything `ready` asked: its entries are durable, its messages sent, its
    /// committed entries applied. A leader now counts its own copy towards commitment.
    public mutating func advance(_ ready: RaftReady, now: Instant) {
        precondition(readyInFlight == ready.sequence, "advance with a Ready that is not the one in flight")
        readyInFlight = nil
        if let hardState = ready.hardState { durableHardState = hardState }
        restartElectionTimerIfAVoteJustLeft(ready, now: now)
        if let last = ready.entries.last { log.markDurable(through: last.index) }
        if let last = ready.committedEntries.last { log.markApplied(through: last.index) }
        if role == .leader && !ready.entries.isEmpty && advanceCommitIndex() {
            broadcastAppend()
        }
    }
}

extension RaftCore {
    /// A campaign's vote requests and a granted vote leave only once the term and vote are
    /// durable, which on a slow disk takes much of an election timeout. Counting that time would
    /// let the candidate give up, or the voter campaign itself, before the voters' own syncs
    /// could answer: with syncs near the timeout, elections then never end (seed 1260 of crash,
    /// `--combined 3`: 30 s of split terms on disks syncing in up to 966 ms). The election clock
    /// starts when the vote leaves, as if the disk had been instant.
    private mutating func restartElectionTimerIfAVoteJustLeft(_ ready: RaftReady, now: Instant) {
        let carriesVoteOfThisTerm = ready.messages.contains { message in
            guard message.term == term else { return false }
            switch (role, message.body) {
            case let (.candidate, .voteRequest(request)): return !request.isPreVote
            case let (.follower, .voteResponse(isPreVote, granted)): return !isPreVote && granted && votedFor == message.to
            default: return false
            }
        }
        if carriesVoteOfThisTerm { resetElectionTimer(now: now) }
    }

    /// Takes out of the outbox, in order, the messages that may leave before the Ready in flight
    /// (or the next one) is durable: those that speak for nothing but the sender's term, while
    /// the current term and vote are the durable ones (none otherwise). The rest stay for the
    /// next Ready. Raft needs the sender's own persistence first only for what a message vouches
    /// for: a term, a vote, entries held. A heartbeat, its answer, the leader's appends (Raft
    /// thesis §10.2.1: the leader writes to its disk in parallel; its own copy counts toward
    /// commitment only once durable, in `advance`), a rejection and the pre-vote messages vouch
    /// for the term at most; a vote request, a granted vote and an append acknowledgement vouch
    /// for more (`RaftMessageBody.vouchesForVoteOrEntries`). While term and vote are durable,
    /// every message but a pre-vote one carries a durable term: none is newer than the node's.
    ///
    /// The caller sends what this returns at once, and only once the state it restored the core
    /// from is durable.
    public mutating func takeMessagesSendableNow() -> [RaftMessage] {
        guard hardState == durableHardState else { return [] }
        var sendable: [RaftMessage] = []
        var waiting: [RaftMessage] = []
        for message in outbox {
            if message.body.vouchesForVoteOrEntries {
                waiting.append(message)
            } else {
                precondition(message.term <= term || message.body.isPreVote,
                             "\(message) carries a term beyond the node's \(term)")
                sendable.append(message)
            }
        }
        outbox = waiting
        return sendable
    }
}

extension RaftMessageBody {
    /// Whether the message speaks for a vote (the candidate's own, in a vote request; the one it
    /// grants) or for entries the sender holds (an append acknowledgement): state beyond the term
    /// that must be durable on the sender before the message leaves.
    var vouchesForVoteOrEntries: Bool {
        switch self {
        case let .voteRequest(request): return !request.isPreVote
        case let .voteResponse(isPreVote, granted): return !isPreVote && granted
        case .appendAccepted: return true
        case .appendEntries, .appendRejected, .heartbeat, .heartbeatResponse, .timeoutNow: return false
        }
    }

    /// A pre-vote request or answer: it carries the term of a campaign nobody has entered.
    var isPreVote: Bool {
        switch self {
        case let .voteRequest(request): return request.isPreVote
        case let .voteResponse(isPreVote, _): return isPreVote
        default: return false
        }
    }
}
