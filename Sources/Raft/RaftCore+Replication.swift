import TernCore

extension RaftCore {
    // MARK: Per role

    mutating func stepLeader(_ message: RaftMessage, now: Instant) {
        switch message.body {
        case let .appendAccepted(matchIndex):
            handleAppendAccepted(from: message.from, matchIndex: matchIndex)
        case let .appendRejected(rejectedIndex, hintIndex, hintTerm):
            handleAppendRejected(from: message.from, rejectedIndex: rejectedIndex, hintIndex: hintIndex, hintTerm: hintTerm)
        case .heartbeatResponse:
            handleHeartbeatResponse(from: message.from)
        case .appendEntries, .heartbeat:
            // Another leader in our term would break Election Safety; it cannot be genuine.
            statistics.messagesIgnored += 1
        case .voteRequest, .voteResponse, .timeoutNow:
            break
        }
    }

    mutating func stepFollower(_ message: RaftMessage, now: Instant) {
        switch message.body {
        case let .appendEntries(append):
            heardFromLeader(message.from, now: now)
            handleAppendEntries(append, from: message.from)
        case let .heartbeat(commitIndex):
            heardFromLeader(message.from, now: now)
            handleHeartbeat(commitIndex: commitIndex, from: message.from)
        case .timeoutNow:
            // The leader hands over to us: campaign at once, skipping the pre-vote, whose only
            // purpose (not disrupting a live leader) does not apply when the leader asks.
            campaign(.leadershipTransfer, now: now)
        case .voteRequest, .voteResponse, .appendAccepted, .appendRejected, .heartbeatResponse:
            break
        }
    }

    mutating func stepCandidate(_ message: RaftMessage, now: Instant) {
        switch message.body {
        case let .appendEntries(append):
            becomeFollower(term: message.term, leader: message.from, now: now)
            handleAppendEntries(append, from: message.from)
        case let .heartbeat(commitIndex):
            becomeFollower(term: message.term, leader: message.from, now: now)
            handleHeartbeat(commitIndex: commitIndex, from: message.from)
        case let .voteResponse(isPreVote, granted):
            recordVote(from: message.from, isPreVote: isPreVote, granted: granted, now: now)
        case .voteRequest, .appendAccepted, .appendRejected, .heartbeatResponse, .timeoutNow:
            break
        }
    }

    private mutating func heardFromLeader(_ leader: NodeID, now: Instant) {
        leaderID = leader
        resetElectionTimer(now: now)
    }

    // MARK: Follower

    mutating func handleAppendEntries(_ append: RaftAppendEntries, from leader: NodeID) {
        if append.previousIndex < log.commitIndex {
            // Everything up to our commit index already matches: say so, and the leader resends
            // from there.
            send(to: leader, .appendAccepted(matchIndex: log.commitIndex))
            return
        }
        if let lastNewIndex = log.appendFromLeader(append) {
            log.commit(to: min(append.leaderCommit, lastNewIndex))
            send(to: leader, .appendAccepted(matchIndex: lastNewIndex))
            return
        }
        let hint = log.lastIndex(atOrBelow: min(append.previousIndex, log.lastIndex), withTermAtMost: append.previousTerm)
        send(to: leader, .appendRejected(rejectedIndex: append.previousIndex, hintIndex: hint.index, hintTerm: hint.term))
    }

    mutating func handleHeartbeat(commitIndex: LogIndex, from leader: NodeID) {
        // The leader sends at most what it knows we hold; the clamp only guards against a
        // confused peer, which must not take down every follower at once.
        log.commit(to: min(commitIndex, log.lastIndex))
        send(to: leader, .heartbeatResponse)
    }

    // MARK: Leader

    mutating func appendProposal(_ payload: [UInt8]) throws(RaftRequestError) -> LogIndex {
        guard role == .leader else { throw .notLeader(leaderID: leaderID) }
        guard transferTarget == nil else { throw .leadershipTransferInProgress }
        guard payload.count <= configuration.maximumPayloadBytes else {
            throw .payloadTooLarge(bytes: payload.count, limit: configuration.maximumPayloadBytes)
        }
        guard log.commitIndex.distance(to: log.lastIndex) < Int64(configuration.maximumUncommittedEntries) else {
            throw .tooManyUncommittedEntries(limit: configuration.maximumUncommittedEntries)
        }
        guard log.count < configuration.maximumLogEntries else { throw .logFull(limit: configuration.maximumLogEntries) }
        let entry = RaftLogEntry(index: log.lastIndex.next, term: term, kind: .command, payload: payload)
        log.append(entry)
        broadcastAppend()
        return entry.index
    }

    mutating func broadcastAppend() {
        for peer in configuration.peers { sendAppend(to: peer) }
    }

    mutating func broadcastHeartbeat() {
        for peer in configuration.peers {
            guard var state = progress[peer] else { continue }
            let commitIndex = min(state.matchIndex, log.commitIndex)
            send(to: peer, .heartbeat(commitIndex: commitIndex))
            state.sentCommit(commitIndex)
            progress[peer] = state
        }
    }

    /// Sends the peer the entries it needs next, unless it is paused. With `sendIfEmpty` false
    /// an append with no entries is not sent. Returns whether an append was sent.
    @discardableResult
    mutating func sendAppend(to peer: NodeID, sendIfEmpty: Bool = true) -> Bool {
        guard var state = progress[peer], !state.isPaused else { return false }
        let previousIndex = state.nextIndex.previous
        guard let previousTerm = log.term(at: previousIndex) else {
            preconditionFailure("next index \(state.nextIndex) of peer \(peer) is past the log end \(log.lastIndex)")
        }
        let entries = log.entries(from: state.nextIndex, maximumCount: configuration.maximumEntriesPerAppend,
                                  maximumBytes: configuration.maximumBytesPerAppend)
        if entries.isEmpty && !sendIfEmpty { return false }
        send(to: peer, .appendEntries(RaftAppendEntries(previousIndex: previousIndex, previousTerm: previousTerm,
                                                        entries: entries, leaderCommit: log.commitIndex)))
        state.sentAppend(lastIndex: entries.last?.index)
        state.sentCommit(log.commitIndex)
        progress[peer] = state
        return true
    }

    mutating func handleAppendAccepted(from peer: NodeID, matchIndex: LogIndex) {
        guard var state = progress[peer], matchIndex <= log.lastIndex else { return }
        state.recentlyActive = true
        let wasProbing = state.state == .probe
        let learned = state.acknowledge(through: matchIndex)
        guard learned || (wasProbing && state.matchIndex == matchIndex) else {
            progress[peer] = state
            return
        }
        if wasProbing { state.becomeReplicate() }
        progress[peer] = state
        if advanceCommitIndex() {
            broadcastAppend()  // tells every follower the new commit index
        } else if state.canAdvanceCommit(to: log.commitIndex) {
            sendAppend(to: peer)  // sooner than the next heartbeat would
        }
        // Fill the pipeline: the acknowledgement may have freed room for several appends.
        for _ in 0..<configuration.maximumInflightAppends {
            guard sendAppend(to: peer, sendIfEmpty: false) else { break }
        }
        if peer == transferTarget, progress[peer]?.matchIndex == log.lastIndex {
            send(to: peer, .timeoutNow)
        }
    }

    mutating func handleAppendRejected(from peer: NodeID, rejectedIndex: LogIndex, hintIndex: LogIndex, hintTerm: Term) {
        guard var state = progress[peer] else { return }
        state.recentlyActive = true
        // Skip every index whose term in our log is above the follower's term at the hint: the
        // logs cannot agree there (etcd's findConflictByTerm, used on both sides).
        var agreementHint = hintIndex
        if hintTerm > .zero {
            agreementHint = log.lastIndex(atOrBelow: hintIndex, withTermAtMost: hintTerm).index
        }
        guard state.rejected(rejectedIndex, agreementHint: agreementHint) else {
            progress[peer] = state
            return
        }
        if state.state == .replicate { state.becomeProbe() }
        progress[peer] = state
        sendAppend(to: peer)
    }

    mutating func handleHeartbeatResponse(from peer: NodeID) {
        guard var state = progress[peer] else { return }
        state.recentlyActive = true
        state.resumeProbing()
        // A full pipeline that the follower does not answer means appends were lost: probe again.
        if state.state == .replicate && state.inflightIsFull { state.becomeProbe() }
        progress[peer] = state
        if state.matchIndex < log.lastIndex || state.state == .probe {
            sendAppend(to: peer)
        }
    }

    /// Raft §5.4.2: commit the largest index a quorum holds durably, but only if its entry is of
    /// the current term (that commits everything before it too). Our own copy counts once it is
    /// durable.
    mutating func advanceCommitIndex() -> Bool {
        guard role == .leader else { return false }
        var matches: [LogIndex] = []
        matches.reserveCapacity(configuration.voters.count)
        for voter in configuration.voters {
            matches.append(voter == nodeID ? log.durableIndex : progress[voter]?.matchIndex ?? .zero)
        }
        matches.sort(by: >)
        let quorumIndex = matches[configuration.quorumSize - 1]
        guard quorumIndex > log.commitIndex, log.term(at: quorumIndex) == term else { return false }
        log.commit(to: quorumIndex)
        return true
    }

    // MARK: Leadership transfer

    mutating func startLeadershipTransfer(to target: NodeID, now: Instant) throws(RaftRequestError) {
        guard role == .leader else { throw .notLeader(leaderID: leaderID) }
        guard target != nodeID, configuration.voters.contains(target) else { throw .invalidTransferTarget(target) }
        if transferTarget == target { return }
        // A transfer must finish within an election timeout, or the leader takes proposals again.
        transferTarget = target
        transferDeadline = now + configuration.electionTimeout
        if progress[target]?.matchIndex == log.lastIndex {
            send(to: target, .timeoutNow)
        } else {
            sendAppend(to: target)
        }
    }

    /// A quorum (ourselves included) was heard from since the last check.
    func quorumIsActive() -> Bool {
        var active = 0
        for voter in configuration.voters where voter == nodeID || progress[voter]?.recentlyActive == true {
            active += 1
        }
        return active >= configuration.quorumSize
    }
}
