import Controller
import KafkaProtocol
import LogStorage
import TernCore

/// The leader's answer to a follower fetch.
public enum FollowerFetchResult: Equatable, Sendable {
    /// Batches from the fetch offset (possibly none) and the leader's offsets.
    case records(bytes: [UInt8], highWatermark: Offset, logStartOffset: Offset, leaderLogEndOffset: Offset)
    /// KIP-320: the follower's log left the leader's. `endOffset` is where the leader's log ends
    /// for `epoch` (the largest epoch of the leader's at or below the follower's last fetched one).
    case divergingEpoch(epoch: LeaderEpoch, endOffset: Offset, highWatermark: Offset)
    /// The fetch offset is below the leader's log start: the follower restarts its log there.
    case offsetOutOfRange(logStartOffset: Offset, leaderLogEndOffset: Offset)
    /// Not leader, fenced or unknown epoch, not a replica, or a storage error.
    case error(KafkaErrorCode)
}

/// What `handleFollowerFetch` answers and what it changed.
public struct LeaderFetchOutcome: Equatable, Sendable {
    public var result: FollowerFetchResult
    public var update: ReplicaUpdate
}

extension PartitionReplica {
    // MARK: Client appends

    /// Appends validated client batches as the leader. With `acks=all` the committed ISR must
    /// reach `min.insync.replicas` first (NOT_ENOUGH_REPLICAS, nothing appended); the answer then
    /// waits for the high watermark to cover the batch's last offset.
    public func appendClientBatch(_ bytes: inout [UInt8], acks: Acks, now: Instant, wallClock: Instant) -> AppendOutcome {
        guard role == .leader, log.leaderEpochs.accepts(epoch: leaderEpoch) else {
            return .rejected(.notLeaderOrFollower, logError: nil)
        }
        // The committed ISR never shrinks below min.insync.replicas (see `tick`): what counts here
        // is how many of its members are keeping up and eligible (a fenced member kept in the ISR
        // at that floor will not acknowledge anything soon; Kafka, which moves it out of the ISR,
        // answers NOT_ENOUGH_REPLICAS too).
        if acks == .all, isr.filter({ $0 == localID || (isCaughtUp($0, now: now) && isISREligible($0)) }).count
            < configuration.minInSyncReplicas {
            return .rejected(.notEnoughReplicas, logError: nil)
        }
        let info: AppendInfo
        do {
            info = try log.appendAsLeader(&bytes, leaderEpoch: leaderEpoch, wallClock: wallClock)
        } catch {
            return .rejected(Self.errorCode(for: error), logError: error)
        }
        var ticket: AppendTicket?
        if acks == .all {
            ticket = AppendTicket(nextTicket)
            nextTicket += 1
            pendingAppends.append(PendingAppend(ticket: ticket!, firstOffset: info.firstOffset, lastOffset: info.lastOffset))
        }
        // With `.pageCache` (or a lone replica whose log is already durable) the append itself
        // may move the high watermark.
        let update = recomputeHighWatermark(now: now)
        var outcome: AppendOutcome = ticket.map { .pending(info, $0) } ?? .completed(info, error: .none)
        for completion in update.completions {
            if completion.ticket == ticket {
                outcome = .completed(info, error: completion.error)
            } else {
                deferredCompletions.append(completion)
            }
        }
        return outcome
    }

    /// The Produce error code for a log's refusal.
    static func errorCode(for error: LogError) -> KafkaErrorCode {
        switch error {
        case let .invalidBatch(batchError): return batchError.kafkaErrorCode
        // Kafka: RecordBatchTooLargeException, a batch larger than segment.bytes.
        case .batchTooLarge: return .recordListTooLarge
        // A new leader's truncation barrier: retriable, the client refreshes metadata and retries.
        case .durabilityBarrierPending: return .notLeaderOrFollower
        case .disk, .corrupt, .offline, .topicIDMismatch: return .kafkaStorageError
        case .offsetOutOfRange, .nonContiguousAppend: return .unknownServerError
        }
    }

    /// OffsetForLeaderEpoch as the leader answers it: its log's epochs plus its own, which starts
    /// at `leaderEpochStartOffset` even before a batch of it is written (Kafka assigns it when
    /// leadership starts). Without it a follower whose log ends in an epoch this leader never had
    /// — but older than its own — passed the divergence check and was counted in sync with the
    /// wrong records (found by the simulator's produce workload, seed 24 of `all`).
    public func endOffset(forEpoch epoch: LeaderEpoch) -> (epoch: LeaderEpoch, endOffset: Offset) {
        var epochs = log.leaderEpochs
        if role == .leader, leaderEpochStartOffset != .unknown, epochs.accepts(epoch: leaderEpoch) {
            _ = epochs.assign(epoch: leaderEpoch, startOffset: leaderEpochStartOffset)
        }
        return epochs.endOffset(for: epoch, logEndOffset: log.logEndOffset)
    }

    // MARK: Follower fetches

    /// Answers a follower's fetch. The fetch offset is the follower's log end offset; the durable
    /// offset it reports counts toward the high watermark under `.synced`. `currentLeaderEpoch`,
    /// when given, is checked (FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).
    /// A fetch from an older process of the follower's broker, or sent before the follower
    /// discarded data for a recorded loss, is answered but its positions are not taken.
    public func handleFollowerFetch(follower: NodeID, fetchOffset: Offset, lastFetchedEpoch: LeaderEpoch,
                                    followerDurableOffset: Offset, followerBrokerEpoch: BrokerEpoch = BrokerEpoch(-1),
                                    followerAcknowledgedLoss: PartitionEpoch = PartitionEpoch(-1),
                                    followerLogStartOffset: Offset = .unknown,
                                    currentLeaderEpoch: LeaderEpoch? = nil, now: Instant) -> LeaderFetchOutcome {
        var update = ReplicaUpdate()
        update.completions = takeDeferred()
        func answer(_ result: FollowerFetchResult) -> LeaderFetchOutcome { LeaderFetchOutcome(result: result, update: update) }

        guard role == .leader else { return answer(.error(.notLeaderOrFollower)) }
        // A leader whose log found corruption has lost data its followers may hold: answering
        // with its shortened log end would make them truncate it too.
        guard log.corruption == nil else { return answer(.error(.kafkaStorageError)) }
        if let current = currentLeaderEpoch, current != .none {
            if current < leaderEpoch { return answer(.error(.fencedLeaderEpoch)) }
            if current > leaderEpoch { return answer(.error(.unknownLeaderEpoch)) }
        }
        guard follower != localID, followers[follower] != nil else { return answer(.error(.notLeaderOrFollower)) }
        let isCurrent = noteFetchOrigin(of: follower, brokerEpoch: followerBrokerEpoch, acknowledgedLoss: followerAcknowledgedLoss)

        let leaderEnd = log.logEndOffset
        // KIP-320: does the follower's last fetched epoch end, in the leader's log, before its fetch offset?
        if lastFetchedEpoch != .none {
            let (epoch, end) = endOffset(forEpoch: lastFetchedEpoch)
            if epoch == .none || end == .unknown {
                if fetchOffset > leaderEnd {
                    return answer(.divergingEpoch(epoch: .none, endOffset: leaderEnd, highWatermark: log.highWatermark))
                }
            } else if epoch < lastFetchedEpoch || end < fetchOffset {
                return answer(.divergingEpoch(epoch: epoch, endOffset: end, highWatermark: log.highWatermark))
            }
        }
        if fetchOffset > leaderEnd {
            return answer(.divergingEpoch(epoch: .none, endOffset: leaderEnd, highWatermark: log.highWatermark))
        }
        if fetchOffset < log.logStartOffset {
            return answer(.offsetOutOfRange(logStartOffset: log.logStartOffset, leaderLogEndOffset: leaderEnd))
        }

        if isCurrent {
            followers[follower]?.logStartOffset = followerLogStartOffset
            recordFetch(of: follower, fetchOffset: fetchOffset, durableOffset: followerDurableOffset, leaderEnd: leaderEnd, now: now)
            update.merge(recomputeHighWatermark(now: now))
            // Join the ISR, or (a member whose loss is recorded) have the record cleared.
            if pendingProposal == nil, !isr.contains(follower) || hasRecordedLoss(follower), isEligibleToJoin(follower) {
                update.merge(propose(isr: isr.contains(follower) ? isr : isr + [follower]))
            }
        }

        let read: LogReadResult
        do {
            read = try log.read(from: fetchOffset, maxBytes: configuration.maximumFetchBytes, maximumOffset: leaderEnd)
        } catch {
            update.logError = error
            return answer(.error(.kafkaStorageError))
        }
        return answer(.records(bytes: read.bytes, highWatermark: log.highWatermark,
                               logStartOffset: log.logStartOffset, leaderLogEndOffset: leaderEnd))
    }

    /// Kafka's low watermark: the smallest log start offset among the leader and the followers in
    /// the ISR (unknown while one of them has not reported its own). DeleteRecords is done once
    /// it reaches the requested offset: every in-sync copy has deleted the records.
    public var lowWatermark: Offset {
        guard role == .leader else { return .unknown }
        var lowest = log.logStartOffset
        for member in isr where member != localID {
            guard let start = followers[member]?.logStartOffset, start != .unknown else { return .unknown }
            lowest = min(lowest, start)
        }
        return lowest
    }

    /// Whether a fetch's positions may be taken. KIP-903: a fetch from a new process of the
    /// follower's broker (a newer broker epoch) starts its state afresh: what the previous process
    /// had fetched, and had synced, may be gone, so neither its position nor its having caught up
    /// may count; a fetch from an older process (still in flight) counts for nothing. Likewise a
    /// fetch naming an older recorded loss than one the follower already said it discarded its data
    /// for was sent before that discard.
    func noteFetchOrigin(of follower: NodeID, brokerEpoch epoch: BrokerEpoch, acknowledgedLoss: PartitionEpoch) -> Bool {
        guard var state = followers[follower] else { return false }
        if epoch.rawValue >= 0, let known = state.brokerEpoch {
            if epoch < known { return false }
            if epoch > known { state = FollowerState(lastCaughtUpTime: nil) }
        }
        if epoch.rawValue >= 0 { state.brokerEpoch = epoch }
        guard acknowledgedLoss >= state.acknowledgedLoss else {
            followers[follower] = state
            return false
        }
        state.acknowledgedLoss = acknowledgedLoss
        followers[follower] = state
        return true
    }

    /// The broker epoch the follower last fetched with, for AlterPartition (KIP-903).
    public func brokerEpoch(of follower: NodeID) -> BrokerEpoch? { followers[follower]?.brokerEpoch }

    /// The recorded loss the follower's fetches say it discarded its data for (-1 if none).
    public func acknowledgedLoss(of follower: NodeID) -> PartitionEpoch { followers[follower]?.acknowledgedLoss ?? PartitionEpoch(-1) }

    /// What an AlterPartition says of the follower's recorded loss: the loss it discarded its data
    /// for, only while it is caught up again (durably at the high watermark and the start of this
    /// epoch), since naming it clears the record; -1 otherwise. Naming it for every member let a
    /// proposal that added another replica clear the record of a member still re-fetching, which
    /// was then elected without the records it lacked (seed 1312 of `all`).
    public func vouchedAcknowledgedLoss(of follower: NodeID) -> PartitionEpoch {
        isEligibleToJoin(follower) ? acknowledgedLoss(of: follower) : PartitionEpoch(-1)
    }

    func hasRecordedLoss(_ replica: NodeID) -> Bool { dataLoss.contains { $0.broker == replica } }

    /// A recorded loss the follower's fetches have not yet shown it discarded its data for: until
    /// they do, its positions describe data it may no longer hold, so they count for nothing.
    func hasUnacknowledgedLoss(_ follower: NodeID) -> Bool {
        guard let loss = dataLoss.first(where: { $0.broker == follower }) else { return false }
        return followers[follower]?.acknowledgedLoss != loss.markedAt
    }

    func recordFetch(of follower: NodeID, fetchOffset: Offset, durableOffset: Offset, leaderEnd: Offset, now: Instant) {
        guard var state = followers[follower] else { return }
        if fetchOffset >= leaderEnd {
            state.lastCaughtUpTime = max(state.lastCaughtUpTime ?? now, now)
        } else if state.leaderEndOffsetAtLastFetch != .unknown, fetchOffset >= state.leaderEndOffsetAtLastFetch,
                  let previous = state.lastFetchTime {
            state.lastCaughtUpTime = max(state.lastCaughtUpTime ?? previous, previous)
        }
        state.leaderEndOffsetAtLastFetch = leaderEnd
        state.lastFetchTime = now
        state.logEndOffset = fetchOffset
        state.durableOffset = min(durableOffset, fetchOffset)
        followers[follower] = state
    }

    /// What a follower counts toward the high watermark under the policy.
    func countedOffset(of follower: NodeID) -> Offset? {
        guard let state = followers[follower], state.logEndOffset != .unknown, !hasUnacknowledgedLoss(follower) else { return nil }
        switch configuration.durabilityPolicy {
        case .synced: return state.durableOffset == .unknown ? nil : state.durableOffset
        case .pageCache: return state.logEndOffset
        }
    }

    var leaderCountedOffset: Offset {
        switch configuration.durabilityPolicy {
        case .synced: return min(log.durableOffset, log.logEndOffset)
        case .pageCache: return log.logEndOffset
        }
    }

    /// Kafka's expansion rule: the follower is ISR-eligible and reached the high watermark and the
    /// start of this epoch. Under `.synced` it must hold them durably, so every ISR member has what
    /// the high watermark vouches for on stable storage — the start of the epoch too: a new
    /// leader's own high watermark may still be behind what earlier leaders committed, and
    /// everything committed lies below the start of its epoch.
    func isEligibleToJoin(_ follower: NodeID) -> Bool {
        guard replicas.contains(follower), isISREligible(follower), let state = followers[follower],
              let counted = countedOffset(of: follower) else {
            return false
        }
        return state.logEndOffset >= leaderEpochStartOffset && counted >= max(log.highWatermark, leaderEpochStartOffset)
    }

    /// Kafka's ISR eligibility (KIP-903): the follower's broker is registered, unfenced and not in
    /// controlled shutdown in the image, and it last fetched with the broker epoch the image
    /// knows (a fetch of an older process says nothing of the current one).
    func isISREligible(_ follower: NodeID) -> Bool {
        guard let eligible = eligibleBrokerEpochs else { return true }
        guard let epoch = eligible[follower] else { return false }
        return followers[follower]?.brokerEpoch.map { $0 == epoch } ?? true
    }

    func isCaughtUp(_ follower: NodeID, now: Instant) -> Bool {
        guard let caughtUp = followers[follower]?.lastCaughtUpTime, !hasUnacknowledgedLoss(follower) else { return false }
        return now - caughtUp <= configuration.replicaLagTimeMax
    }

    // MARK: High watermark

    /// HW = the minimum counted offset over the maximal ISR, and over ISR-eligible caught-up
    /// replicas about to join (Kafka's rule). Every member of the maximal ISR counts, eligible or
    /// not: the controller takes fenced, shutting-down and re-registered brokers out of the ISR
    /// itself, in the commit that fences them, but keeps them at the `min.insync.replicas` floor
    /// and may elect them later, so a member must hold everything below the HW. A replica outside
    /// the ISR counts only while eligible: counting a dead follower the controller had already
    /// fenced and removed held the HW, and every `acks=all` answer, until
    /// `replica.lag.time.max.ms` after its last fetch instead of the broker session timeout
    /// (found by the write-availability checker: `tern simulate --seed 1 --profile broker-failure`).
    ///
    /// Only positions followers reported in the current leader epoch count (becoming leader
    /// forgets the others), and such a fetch has passed the leader-epoch divergence check, so the
    /// follower's log matches the leader's below it: the HW may then cover data of earlier epochs,
    /// as in Kafka. (Waiting for an offset of the leader's own epoch, as Raft does, left a new
    /// leader without writes unable to ever acknowledge inherited data: the produce workload
    /// never converged.) It never goes backwards and stays put while the committed ISR is
    /// smaller than `min.insync.replicas`. Completes the `acks=all` appends it now covers.
    func recomputeHighWatermark(now: Instant) -> ReplicaUpdate {
        var update = ReplicaUpdate()
        guard role == .leader else { return update }
        let current = log.highWatermark
        if isr.count >= configuration.minInSyncReplicas {
            var candidate: Offset? = leaderCountedOffset
            let members = maximalISR
            for id in replicas where id != localID {
                let inISR = members.contains(id)
                guard inISR || (isCaughtUp(id, now: now) && isISREligible(id)) else { continue }
                guard let counted = countedOffset(of: id) else {
                    if inISR { candidate = nil }
                    continue
                }
                candidate = candidate.map { min($0, counted) }
            }
            if let candidate, candidate > current, candidate <= log.logEndOffset {
                log.updateHighWatermark(candidate)
                update.highWatermarkChanged = true
            }
        }
        update.completions = resolvePendingAppends()
        return update
    }

    /// Answers the `acks=all` appends the high watermark covers.
    func resolvePendingAppends() -> [AppendCompletion] {
        let hw = log.highWatermark
        var done: [AppendCompletion] = []
        while let first = pendingAppends.first, first.lastOffset < hw {
            pendingAppends.removeFirst()
            done.append(first.completion(isr.count < configuration.minInSyncReplicas ? .notEnoughReplicasAfterAppend : .none))
        }
        return done
    }

    // MARK: ISR

    /// Periodic check (Kafka runs it every `replica.lag.time.max.ms / 2`): proposes removing ISR
    /// followers that have not caught up within `replica.lag.time.max.ms` — but never below
    /// `min.insync.replicas` members: while the ISR is that small the high watermark stands still,
    /// so the laggards kept still hold every committed record and remain clean leaders should this
    /// one fail (the controller keeps the same floor when it fences brokers).
    public func tick(now: Instant) -> ReplicaUpdate {
        var update = ReplicaUpdate()
        update.completions = takeDeferred()
        guard role == .leader else { return update }
        update.merge(recomputeHighWatermark(now: now))
        guard pendingProposal == nil else { return update }
        if let own = dataLoss.first(where: { $0.broker == localID }), acknowledgedLoss == own.markedAt, !log.hasDurabilityBarrier {
            // This leader's own loss: elected as the furthest surviving copy, it discarded what it
            // lost and its log is now the partition's; the record can go.
            update.merge(propose(isr: isr))
            return update
        }
        let removable = max(0, isr.count - configuration.minInSyncReplicas)
        let lagging = isr.filter { $0 != localID && !isCaughtUp($0, now: now) }
            .sorted { (followers[$0]?.lastCaughtUpTime ?? .zero, $0) < (followers[$1]?.lastCaughtUpTime ?? .zero, $1) }
            .prefix(removable)
        if !lagging.isEmpty {
            update.merge(propose(isr: isr.filter { !lagging.contains($0) }))
        }
        return update
    }

    func propose(isr newISR: [NodeID]) -> ReplicaUpdate {
        var update = ReplicaUpdate()
        let proposal = AlterPartitionProposal(leaderEpoch: leaderEpoch, partitionEpoch: partitionEpoch,
                                              newISR: ordered(newISR, by: replicas))
        pendingProposal = proposal
        update.proposal = proposal
        return update
    }

    /// The controller refused the proposal or its answer was lost: the next `tick` or fetch
    /// proposes again. Whatever it would have added may still have been committed (a lost answer,
    /// or a refusal of a retry whose first attempt committed), so those members go on counting
    /// toward the high watermark until a committed state of a later partition epoch says who is
    /// in. Dropping them let a leader whose expansion answer was lost advance the high watermark
    /// without a member the controller had added, which was later elected without the
    /// acknowledged records (seed 1110 of `network`).
    public func proposalFailed() {
        if let proposal = pendingProposal {
            let additions = proposal.newISR.filter { !isr.contains($0) }
            let earlier = unresolvedAdditions?.members ?? []
            if !additions.isEmpty || !earlier.isEmpty {
                unresolvedAdditions = (earlier + additions.filter { !earlier.contains($0) }, unresolvedAdditions?.basedOn ?? proposal.partitionEpoch)
            }
        }
        pendingProposal = nil
    }

    /// Adopts the controller-committed ISR for the current leader epoch (an older partition epoch
    /// or another leader epoch is ignored). If the ISR fell below `min.insync.replicas`, pending
    /// `acks=all` appends the high watermark does not cover fail with
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND (the data is possibly persisted; idempotence dedups a retry).
    @discardableResult
    public func applyCommittedPartitionState(isr newISR: [NodeID], leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch,
                                             dataLoss newDataLoss: [ReplicaDataLoss] = [], now: Instant) -> ReplicaUpdate {
        var update = ReplicaUpdate()
        update.completions = takeDeferred()
        guard role == .leader, leaderEpoch == self.leaderEpoch, partitionEpoch >= self.partitionEpoch else { return update }
        if partitionEpoch == self.partitionEpoch, ordered(newISR, by: replicas) == isr, newDataLoss == dataLoss { return update }
        isr = ordered(newISR, by: replicas)
        dataLoss = newDataLoss
        self.partitionEpoch = partitionEpoch
        pendingProposal = nil
        if let unresolved = unresolvedAdditions, partitionEpoch > unresolved.basedOn { unresolvedAdditions = nil }
        for id in isr where id != localID {
            if followers[id]?.lastCaughtUpTime == nil { followers[id]?.lastCaughtUpTime = now }
        }
        update.merge(recomputeHighWatermark(now: now))
        if isr.count < configuration.minInSyncReplicas {
            update.completions += failAllPending(with: .notEnoughReplicasAfterAppend)
        }
        return update
    }
}
