import TernCore

/// What a leader knows about one follower's log, and how it sends to it (etcd's `Progress`).
///
/// - probe: the leader does not know where the logs agree. It sends one append at a time and
///   waits for the answer (or the next heartbeat response) before sending another, moving
///   `nextIndex` down on each rejection.
/// - replicate: the logs agree up to `matchIndex`; the leader streams appends optimistically,
///   moving `nextIndex` ahead as it sends, with at most `maximumInflightAppends` unacknowledged.
struct PeerProgress {
    enum State: Equatable { case probe, replicate }

    private(set) var state: State = .probe
    /// The follower durably holds the leader's entries up to here.
    private(set) var matchIndex: LogIndex = .zero
    /// The next entry to send.
    private(set) var nextIndex: LogIndex
    /// Heard from since the last check-quorum.
    var recentlyActive = false
    /// The commit index last sent to the follower (in an append or a heartbeat).
    private(set) var sentCommitIndex: LogIndex = .zero
    /// Probe: an append is out and unanswered.
    private var probeSent = false
    /// Replicate: last index of each unacknowledged append, oldest first.
    private var inflight: RingBuffer<LogIndex>

    init(nextIndex: LogIndex, maximumInflightAppends: Int) {
        self.nextIndex = nextIndex
        inflight = RingBuffer(capacity: maximumInflightAppends)
    }

    /// No append may be sent now (one probe is out, or the pipeline is full).
    var isPaused: Bool {
        switch state {
        case .probe: return probeSent
        case .replicate: return inflight.isFull
        }
    }

    var inflightIsFull: Bool { inflight.isFull }

    mutating func becomeProbe() {
        state = .probe
        nextIndex = matchIndex.next
        probeSent = false
        inflight.removeAll()
    }

    mutating func becomeReplicate() {
        state = .replicate
        nextIndex = matchIndex.next
        probeSent = false
        inflight.removeAll()
    }

    /// An append carrying entries up to `lastIndex` (or none) went out.
    mutating func sentAppend(lastIndex: LogIndex?) {
        switch state {
        case .probe:
            probeSent = true
        case .replicate:
            guard let lastIndex else { return }
            precondition(!inflight.isFull, "append sent to a follower whose pipeline is full")
            nextIndex = lastIndex.next
            inflight.append(lastIndex)
        }
    }

    mutating func sentCommit(_ index: LogIndex) {
        sentCommitIndex = index
    }

    /// Sending `commitIndex` could move the follower's commit index: it is newer than the one
    /// sent last, and that one did not already reach everything the follower was sent.
    func canAdvanceCommit(to commitIndex: LogIndex) -> Bool {
        commitIndex > sentCommitIndex && sentCommitIndex < nextIndex.previous
    }

    /// A heartbeat response arrived: a probe may go again.
    mutating func resumeProbing() {
        probeSent = false
    }

    /// The follower accepted up to `index`. Returns whether this told us something new.
    mutating func acknowledge(through index: LogIndex) -> Bool {
        var updated = false
        if index > matchIndex {
            matchIndex = index
            probeSent = false
            updated = true
        }
        nextIndex = max(nextIndex, index.next)
        while let oldest = inflight.first, oldest <= index { _ = inflight.popFirst() }
        return updated
    }

    /// The follower rejected an append whose previous index was `rejectedIndex`; the logs may
    /// agree at `agreementHint`. Returns false for a stale rejection (an answer to an append sent
    /// before the last change of course), which is ignored.
    mutating func rejected(_ rejectedIndex: LogIndex, agreementHint: LogIndex) -> Bool {
        switch state {
        case .replicate:
            guard rejectedIndex > matchIndex else { return false }
            nextIndex = matchIndex.next
            sentCommitIndex = min(sentCommitIndex, nextIndex.previous)
        case .probe:
            // Probes go one at a time, so only the answer to the last one counts.
            guard nextIndex.previous == rejectedIndex else { return false }
            nextIndex = max(min(rejectedIndex, agreementHint.next), matchIndex.next)
            sentCommitIndex = min(sentCommitIndex, nextIndex.previous)
            probeSent = false
        }
        return true
    }
}
