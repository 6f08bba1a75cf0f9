import TernCore

/// What can happen to a Raft node besides the passing of time. Local requests are inputs like
/// peer messages (etcd steps `MsgHup` and `MsgProp` the same way), so every change of state goes
/// through `step` and one trace shows all of them.
public enum RaftInput: Sendable, Equatable {
    /// Start an election now, as if the election timeout had fired (pre-vote first if enabled).
    case campaign
    case propose(payload: [UInt8])
    /// Hand leadership to another voter: bring it up to date, then tell it to campaign at once.
    case transferLeadership(to: NodeID)
    case receive(RaftMessage)
}

/// A sans-IO Raft node for the controller quorum, in the style of etcd/raft.
///
/// Everything that changes its state is an input to `step` or the passing of time (`tick`); it
/// never touches a disk, a socket or a clock, and its only randomness (election jitter) comes
/// from the `DeterministicRandom` it is given. Its output is a `RaftReady`, which spells out the
/// order the caller must follow: persist the hard state and the entries, then send the messages,
/// then apply the committed entries, then `advance`. Messages that speak for nothing but the
/// sender's term need not wait for a Ready: `takeMessagesSendableNow` hands them out as soon as
/// the term and vote are durable, so heartbeats and the leader's appends do not queue behind a
/// slow disk.
///
/// Features: pre-vote, check-quorum with follower leases, log replication with probing and
/// pipelining and the conflict-term optimisation of backtracking, commitment of current-term
/// entries only (Raft §5.4.2) with a leader-change entry at the start of each term, static
/// voters, leadership transfer (TimeoutNow), the leader writing to its disk in parallel with
/// replication (Raft thesis §10.2.1: its appends leave at once, its own copy counts toward
/// commitment once durable).
///
/// Deferred: snapshots and log compaction (the whole log stays in memory and on disk, capped by
/// `RaftConfiguration.maximumLogEntries`; a restart replays it all), membership changes,
/// observers (learners), ReadIndex / lease reads.
///
/// Named `RaftCore` rather than `Raft` so that it does not shadow the module's name.
public struct RaftCore {
    public let configuration: RaftConfiguration
    public internal(set) var role: RaftRole = .follower
    public internal(set) var term: Term
    public internal(set) var votedFor: NodeID?
    /// The leader of the current term, once known.
    public internal(set) var leaderID: NodeID?

    var log: RaftLog
    var random: DeterministicRandom

    // Election timer (every role but leader): it fires at start + randomized timeout.
    var electionTimerStart: Instant
    var randomizedElectionTimeout: Duration = .zero
    // Leader timers.
    var heartbeatDeadline: Instant
    var checkQuorumDeadline: Instant
    var transferTarget: NodeID?
    var transferDeadline: Instant

    /// Per peer, on the leader only. Looked up by key; loops run over `configuration.peers`.
    var progress: [NodeID: PeerProgress] = [:]
    /// Votes received in the current (pre-)campaign. Looked up by key; counted over voters.
    var votes: [NodeID: Bool] = [:]

    var outbox: [RaftMessage] = []
    var handedHardState: RaftHardState
    /// The term and vote storage holds durably: the restored ones, then each advanced Ready's.
    var durableHardState: RaftHardState
    var readyInFlight: UInt64?
    var readyCount: UInt64 = 0

    public internal(set) var statistics = RaftStatistics()

    /// A node restored from what its storage holds: the hard state and every entry, durable (the
    /// caller makes sure they are durable before anything from the first Ready, or from
    /// `takeMessagesSendableNow`, leaves the node).
    /// A node starts as a follower with no known leader.
    public init(configuration: RaftConfiguration, hardState: RaftHardState = .initial, entries: [RaftLogEntry] = [],
                random: DeterministicRandom, now: Instant) {
        self.configuration = configuration.validated()
        self.log = RaftLog(restoring: entries)
        precondition(hardState.term >= log.lastTerm,
                     "hard state term \(hardState.term) is behind the last entry's term \(log.lastTerm)")
        term = hardState.term
        votedFor = hardState.votedFor
        handedHardState = hardState
        durableHardState = hardState
        self.random = random
        electionTimerStart = now
        heartbeatDeadline = now
        checkQuorumDeadline = now
        transferDeadline = now
        resetElectionTimer(now: now)
    }

    // MARK: State

    public var nodeID: NodeID { configuration.nodeID }
    public var isLeader: Bool { role == .leader }
    public var hardState: RaftHardState { RaftHardState(term: term, votedFor: votedFor) }
    public var commitIndex: LogIndex { log.commitIndex }
    /// Committed entries up to here were handed to the application and acknowledged.
    public var appliedIndex: LogIndex { log.appliedIndex }
    public var lastIndex: LogIndex { log.lastIndex }
    public var lastTerm: Term { log.lastTerm }
    /// Entries up to here are on storage exactly as in memory.
    public var durableIndex: LogIndex { log.durableIndex }
    public var entries: [RaftLogEntry] { log.entries }
    public func entry(at index: LogIndex) -> RaftLogEntry? { log.entry(at: index) }
    public func term(at index: LogIndex) -> Term? { log.term(at: index) }
    /// The peer a leadership transfer is handing over to, if one is in progress.
    public var leadershipTransferTarget: NodeID? { transferTarget }

    /// When this node next has something to do if nothing arrives: for a scheduler that wants to
    /// tick only when needed (ticking more often is always allowed).
    public var nextDeadline: Instant {
        guard role == .leader else { return electionTimerStart + randomizedElectionTimeout }
        var deadline = min(heartbeatDeadline, checkQuorumDeadline)
        if transferTarget != nil { deadline = min(deadline, transferDeadline) }
        return deadline
    }

    /// What the leader knows of a peer's log, for status output and tests.
    public func replicationStatus(of peer: NodeID) -> (matchIndex: LogIndex, nextIndex: LogIndex, isProbing: Bool)? {
        guard let state = progress[peer] else { return nil }
        return (state.matchIndex, state.nextIndex, state.state == .probe)
    }

    // MARK: Input

    /// The one entry point for everything but time. Throws only for refused local requests
    /// (`propose`, `transferLeadership`); messages from peers never throw (a message that makes
    /// no sense is counted and ignored).
    public mutating func step(_ input: RaftInput, now: Instant) throws(RaftRequestError) {
        switch input {
        case .campaign:
            startElection(now: now)
        case let .propose(payload):
            _ = try appendProposal(payload)
        case let .transferLeadership(target):
            try startLeadershipTransfer(to: target, now: now)
        case let .receive(message):
            receive(message, now: now)
        }
    }

    /// Steps a proposal and returns the index it got. The entry is committed only if it is still
    /// at that index, with this term, when the application sees it committed.
    public mutating func propose(_ payload: [UInt8], now: Instant) throws(RaftRequestError) -> LogIndex {
        try step(.propose(payload: payload), now: now)
        return log.lastIndex
    }

    mutating func receive(_ message: RaftMessage, now: Instant) {
        guard message.isWellFormed, message.to == nodeID, message.from != nodeID,
              configuration.voters.contains(message.from) else {
            statistics.messagesIgnored += 1
            return
        }
        guard acceptTerm(of: message, now: now) else { return }
        if case let .voteRequest(request) = message.body {
            handleVoteRequest(request, from: message.from, term: message.term, now: now)
            return
        }
        switch role {
        case .leader: stepLeader(message, now: now)
        case .follower: stepFollower(message, now: now)
        case .preCandidate, .candidate: stepCandidate(message, now: now)
        }
    }

    /// Compares the message's term with ours, as in etcd's `Step`: a higher term makes us a
    /// follower of it (with the exceptions pre-vote and leases need), a lower one is stale.
    /// Returns whether the message should be handled further.
    private mutating func acceptTerm(of message: RaftMessage, now: Instant) -> Bool {
        if message.term > term {
            if case let .voteRequest(request) = message.body, !request.isLeadershipTransfer, isInLease(now: now) {
                // Raft §6 (thesis 4.2.3): a node that heard from a leader within the minimum
                // election timeout neither updates its term nor votes, so a node that cannot
                // hear the leader cannot depose it.
                statistics.voteRequestsIgnoredInLease += 1
                return false
            }
            switch message.body {
            case let .voteRequest(request) where request.isPreVote:
                break  // never change term for a pre-vote
            case .voteResponse(isPreVote: true, granted: true):
                break  // granted pre-votes carry the future term; the campaign moves us there
            case .appendEntries, .heartbeat:
                becomeFollower(term: message.term, leader: message.from, now: now)
            default:
                becomeFollower(term: message.term, leader: nil, now: now)
            }
            return true
        }
        if message.term < term {
            answerStaleMessage(message)
            return false
        }
        return true
    }

    /// A leader that fell behind (a partition healed) learns our newer term and steps down; a
    /// pre-candidate that fell behind learns it and stops. Everything else stale is dropped.
    private mutating func answerStaleMessage(_ message: RaftMessage) {
        statistics.staleMessages += 1
        switch message.body {
        case .appendEntries, .heartbeat:
            if configuration.checkQuorum || configuration.preVote {
                send(to: message.from, .heartbeatResponse)
            }
        case let .voteRequest(request) where request.isPreVote:
            send(to: message.from, .voteResponse(isPreVote: true, granted: false))
        default:
            break
        }
    }

    /// Whether we believe a leader is alive: then vote requests with higher terms are ignored.
    func isInLease(now: Instant) -> Bool {
        guard configuration.checkQuorum, leaderID != nil else { return false }
        return role == .leader || now - electionTimerStart < configuration.electionTimeout
    }

    // MARK: Output

    /// Queues a message carrying our term; handed out with the next Ready, or earlier by
    /// `takeMessagesSendableNow`.
    mutating func send(to peer: NodeID, _ body: RaftMessageBody) {
        send(RaftMessage(from: nodeID, to: peer, term: term, body: body))
    }

    mutating func send(_ message: RaftMessage) {
        guard outbox.count < configuration.maximumPendingMessages else {
            statistics.messagesDropped += 1
            return
        }
        outbox.append(message)
    }

    mutating func resetElectionTimer(now: Instant) {
        electionTimerStart = now
        let timeout = configuration.electionTimeout
        randomizedElectionTimeout = random.duration(in: timeout...(timeout * 2 - .nanoseconds(1)))
    }
}

/// Counters for status output and tests.
public struct RaftStatistics: Sendable, Equatable {
    /// Malformed, misaddressed or from a non-voter.
    public var messagesIgnored = 0
    /// From an older term.
    public var staleMessages = 0
    /// Dropped because the outbox was full.
    public var messagesDropped = 0
    public var voteRequestsIgnoredInLease = 0
    public var electionsStarted = 0
    public var preVoteCampaignsStarted = 0
    public var leaderStepDownsForLostQuorum = 0
    public init() {}
}
