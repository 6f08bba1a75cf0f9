import TernCore

extension RaftCore {
    enum CampaignKind {
        /// Ask whether we could win, without touching the term.
        case preVote
        case election
        /// An election the outgoing leader asked for: voters answer despite their lease.
        case leadershipTransfer
    }

    /// The election timeout fired, or the caller asked for an election.
    mutating func startElection(now: Instant) {
        guard role != .leader, term < .maximum else { return }
        campaign(configuration.preVote ? .preVote : .election, now: now)
    }

    mutating func campaign(_ kind: CampaignKind, now: Instant) {
        resetElectionTimer(now: now)
        let requestTerm: Term
        if kind == .preVote {
            becomePreCandidate()
            requestTerm = term.next
            statistics.preVoteCampaignsStarted += 1
        } else {
            becomeCandidate()
            requestTerm = term
            statistics.electionsStarted += 1
        }
        votes = [nodeID: true]
        if tallyVotes() == .won {
            wonCampaign(now: now)
            return
        }
        let request = RaftVoteRequest(isPreVote: kind == .preVote, lastLogIndex: log.lastIndex, lastLogTerm: log.lastTerm,
                                      isLeadershipTransfer: kind == .leadershipTransfer)
        for peer in configuration.peers {
            send(RaftMessage(from: nodeID, to: peer, term: requestTerm, body: .voteRequest(request)))
        }
    }

    private mutating func wonCampaign(now: Instant) {
        if role == .preCandidate {
            campaign(.election, now: now)
        } else {
            becomeLeader(now: now)
        }
    }

    enum VoteResult { case pending, won, lost }

    func tallyVotes() -> VoteResult {
        var granted = 0
        var rejected = 0
        for voter in configuration.voters {
            switch votes[voter] {
            case true?: granted += 1
            case false?: rejected += 1
            case nil: break
            }
        }
        if granted >= configuration.quorumSize { return .won }
        if rejected > configuration.voters.count - configuration.quorumSize { return .lost }
        return .pending
    }

    /// Grants a vote (or pre-vote) to a candidate whose log is at least as up to date as ours, if
    /// we have not voted for someone else in its term. A granted vote is recorded in the hard
    /// state, which the Ready persists before the response leaves.
    mutating func handleVoteRequest(_ request: RaftVoteRequest, from candidate: NodeID, term requestTerm: Term, now: Instant) {
        let canVote = votedFor == candidate
            || (votedFor == nil && leaderID == nil)
            || (request.isPreVote && requestTerm > term)
        guard canVote, log.isUpToDate(lastIndex: request.lastLogIndex, lastTerm: request.lastLogTerm) else {
            send(to: candidate, .voteResponse(isPreVote: request.isPreVote, granted: false))
            return
        }
        // The response carries the request's term: for a pre-vote it is ahead of ours, and the
        // pre-candidate must not take it for a stale answer.
        send(RaftMessage(from: nodeID, to: candidate, term: requestTerm,
                         body: .voteResponse(isPreVote: request.isPreVote, granted: true)))
        if !request.isPreVote {
            votedFor = candidate
            resetElectionTimer(now: now)
        }
    }

    mutating func recordVote(from voter: NodeID, isPreVote: Bool, granted: Bool, now: Instant) {
        guard isPreVote == (role == .preCandidate) else { return }  // an answer to another campaign
        if votes[voter] == nil { votes[voter] = granted }
        switch tallyVotes() {
        case .won: wonCampaign(now: now)
        case .lost: becomeFollower(term: term, leader: nil, now: now)
        case .pending: break
        }
    }

    // MARK: Roles

    mutating func becomeFollower(term newTerm: Term, leader: NodeID?, now: Instant) {
        precondition(newTerm >= term, "terms never go back (\(newTerm) < \(term))")
        if newTerm > term {
            term = newTerm
            votedFor = nil
        }
        role = .follower
        leaderID = leader
        resetElectionTimer(now: now)
        resetLeaderState()
    }

    mutating func becomePreCandidate() {
        precondition(role != .leader, "a leader does not campaign")
        role = .preCandidate
        leaderID = nil
        resetLeaderState()
    }

    mutating func becomeCandidate() {
        precondition(role != .leader, "a leader does not campaign")
        term = term.next
        votedFor = nodeID
        role = .candidate
        leaderID = nil
        resetLeaderState()
    }

    mutating func becomeLeader(now: Instant) {
        precondition(role == .candidate, "only a candidate becomes leader (was \(role))")
        role = .leader
        leaderID = nodeID
        votes = [:]
        heartbeatDeadline = now + configuration.heartbeatInterval
        checkQuorumDeadline = now + configuration.electionTimeout
        for peer in configuration.peers {
            progress[peer] = PeerProgress(nextIndex: log.lastIndex.next,
                                          maximumInflightAppends: configuration.maximumInflightAppends)
        }
        // Entries of earlier terms commit only through one of ours (Raft §5.4.2): append one now
        // rather than wait for a proposal.
        log.append(RaftLogEntry(index: log.lastIndex.next, term: term, kind: .leaderChange, payload: []))
        broadcastAppend()
    }

    private mutating func resetLeaderState() {
        progress = [:]
        votes = [:]
        transferTarget = nil
    }
}
