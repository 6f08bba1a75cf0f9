import TernCore

/// Time. Every timeout is a named deadline held in the state and checked when the caller ticks;
/// each one that has passed fires its `on...Timeout` handler. Ticking more often than needed is
/// harmless, and `nextDeadline` says when the next one is due.
///
///     election      follower, pre-candidate, candidate   random in [electionTimeout, 2×); held
///                                                        while term and vote are being persisted
///     heartbeat     leader                               heartbeatInterval
///     check-quorum  leader                               electionTimeout
///     transfer      leader with a transfer in progress   electionTimeout
extension RaftCore {
    public mutating func tick(now: Instant) {
        guard role == .leader else {
            // A term or vote still on its way to the disk is an election in progress (our own
            // campaign, or a vote granted): campaigning again would only waste it. Once durable,
            // the vote's clock restarts (`advance`).
            if now >= electionTimerStart + randomizedElectionTimeout && hardState == durableHardState {
                onElectionTimeout(now: now)
            }
            return
        }
        if transferTarget != nil && now >= transferDeadline { onTransferTimeout() }
        if now >= checkQuorumDeadline {
            onCheckQuorumTimeout(now: now)
            guard role == .leader else { return }
        }
        if now >= heartbeatDeadline { onHeartbeatTimeout(now: now) }
    }

    /// No leader was heard from: campaign (pre-vote first, if enabled).
    mutating func onElectionTimeout(now: Instant) {
        startElection(now: now)
    }

    mutating func onHeartbeatTimeout(now: Instant) {
        heartbeatDeadline = now + configuration.heartbeatInterval
        broadcastHeartbeat()
    }

    /// Steps down unless a quorum was heard from since the last check, then starts a new period.
    mutating func onCheckQuorumTimeout(now: Instant) {
        checkQuorumDeadline = now + configuration.electionTimeout
        if configuration.checkQuorum && !quorumIsActive() {
            statistics.leaderStepDownsForLostQuorum += 1
            becomeFollower(term: term, leader: nil, now: now)
            return
        }
        for peer in configuration.peers { progress[peer]?.recentlyActive = false }
    }

    /// The target did not take over in time: take proposals again.
    mutating func onTransferTimeout() {
        transferTarget = nil
    }
}
