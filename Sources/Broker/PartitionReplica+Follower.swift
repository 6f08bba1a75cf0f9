import Controller
import KafkaProtocol
import LogStorage
import TernCore

/// What a follower asks its leader for.
public struct FetchRequestParameters: Equatable, Sendable {
    public var leader: NodeID
    /// The follower's leader epoch; the leader fences a mismatch.
    public var currentLeaderEpoch: LeaderEpoch
    /// The follower's log end offset.
    public var fetchOffset: Offset
    /// The epoch of the follower's last batch (`.none` for an empty log): the leader checks it
    /// for divergence (KIP-320).
    public var lastFetchedEpoch: LeaderEpoch
    /// Below this the follower's log is synced; counts toward the leader's high watermark.
    public var durableOffset: Offset
    /// The recorded data loss of this replica whose data it has discarded (see `ReplicaDataLoss`).
    public var acknowledgedLoss: PartitionEpoch
}

/// The leader's answer, with the request it answers (stale answers are ignored).
public struct FollowerFetchResponse: Equatable, Sendable {
    public var currentLeaderEpoch: LeaderEpoch
    public var fetchOffset: Offset
    public var result: FollowerFetchResult

    public init(request: FetchRequestParameters, result: FollowerFetchResult) {
        self.currentLeaderEpoch = request.currentLeaderEpoch
        self.fetchOffset = request.fetchOffset
        self.result = result
    }
}

extension PartitionReplica {
    /// The fetch a follower should send now, or nil when it is not a follower or its log is
    /// waiting for a truncation to become durable (`durabilityBarrierPending`). Keeping one fetch
    /// in flight and backing off are the caller's business.
    public func nextFetch(now: Instant) -> FetchRequestParameters? {
        guard case let .follower(leader) = role, !log.hasDurabilityBarrier, log.failure == nil, log.corruption == nil else {
            return nil
        }
        let end = log.logEndOffset
        return FetchRequestParameters(leader: leader, currentLeaderEpoch: leaderEpoch, fetchOffset: end,
                                      lastFetchedEpoch: log.leaderEpochs.latestEpoch ?? .none,
                                      durableOffset: min(log.durableOffset, end), acknowledgedLoss: acknowledgedLoss)
    }

    /// Applies the leader's answer: truncates by epoch on divergence (never to its own high
    /// watermark), restarts the log at the leader's log start when the logs do not overlap,
    /// otherwise appends the batches and adopts min(leader's HW, own log end) as high watermark.
    @discardableResult
    public func handleFetchResponse(_ response: FollowerFetchResponse, wallClock: Instant) -> ReplicaUpdate {
        var update = ReplicaUpdate()
        update.completions = takeDeferred()
        guard case .follower = role, response.currentLeaderEpoch == leaderEpoch,
              response.fetchOffset == log.logEndOffset else { return update }
        do throws(LogError) {
            switch response.result {
            case let .records(bytes, leaderHighWatermark, leaderLogStart, _):
                if !bytes.isEmpty {
                    do {
                        try log.appendAsFollower(bytes, wallClock: wallClock)
                    } catch .durabilityBarrierPending {
                        return update  // fetched again once the barrier is durable
                    }
                }
                let adopted = min(leaderHighWatermark, log.logEndOffset)
                if adopted > log.highWatermark {
                    log.updateHighWatermark(adopted)
                    update.highWatermarkChanged = true
                }
                // The leader's retention and DeleteRecords: delete the same, within what this
                // replica knows is committed.
                log.advanceLogStartOffset(to: min(leaderLogStart, log.highWatermark))
            case let .divergingEpoch(epoch, endOffset, _):
                try truncate(to: divergenceTruncationOffset(leaderEpoch: epoch, leaderEndOffset: endOffset), wallClock: wallClock)
            case let .offsetOutOfRange(leaderLogStart, leaderEnd):
                if response.fetchOffset < leaderLogStart {
                    try log.truncateFully(startingAt: leaderLogStart, wallClock: wallClock)
                } else if response.fetchOffset > leaderEnd {
                    try truncate(to: leaderEnd, wallClock: wallClock)
                }
            case .error:
                break  // the caller refreshes metadata; the next role change brings the new leader
            }
        } catch {
            update.logError = error
        }
        return update
    }

    /// Kafka's rule: if the follower knows the leader's epoch, cut at the smaller of both logs'
    /// ends for it; if not, cut at the end of the follower's largest epoch below it, and the next
    /// fetch checks again from there.
    func divergenceTruncationOffset(leaderEpoch epoch: LeaderEpoch, leaderEndOffset: Offset) -> Offset {
        let end = log.logEndOffset
        guard epoch != .none, leaderEndOffset != .unknown else {
            return leaderEndOffset == .unknown ? end : min(end, leaderEndOffset)
        }
        let own = log.leaderEpochs.endOffset(for: epoch, logEndOffset: end)
        if own.epoch == epoch { return min(end, own.endOffset, leaderEndOffset) }
        if own.epoch == .none || own.endOffset == .unknown { return min(end, leaderEndOffset) }
        return min(end, own.endOffset)
    }

    func truncate(to offset: Offset, wallClock: Instant) throws(LogError) {
        if offset < log.logStartOffset {
            try log.truncateFully(startingAt: offset, wallClock: wallClock)
        } else if offset < log.logEndOffset {
            try log.truncate(to: offset)
        }
    }
}
