import TernCore

/// The first offset written in each leader epoch, oldest first. Answers Kafka's
/// OffsetForLeaderEpoch: where did epoch E end in this log. A follower truncates by that answer,
/// never by its own high watermark.
public struct LeaderEpochCache: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var epoch: LeaderEpoch
        public var startOffset: Offset
        public init(epoch: LeaderEpoch, startOffset: Offset) {
            self.epoch = epoch
            self.startOffset = startOffset
        }
    }

    public private(set) var entries: [Entry] = []

    public init(entries: [Entry] = []) {
        for entry in entries { assign(epoch: entry.epoch, startOffset: entry.startOffset) }
    }

    public var latestEpoch: LeaderEpoch? { entries.last?.epoch }

    /// Records that `epoch` starts at `startOffset`. An epoch already known is ignored; entries
    /// that conflict (an epoch not older, or a start not earlier) are replaced, as in Kafka.
    /// Returns false, changing nothing, for an epoch older than the latest one at a later offset:
    /// epochs never go backwards along a log, so such a batch is invalid.
    @discardableResult
    public mutating func assign(epoch: LeaderEpoch, startOffset: Offset) -> Bool {
        precondition(startOffset.rawValue >= 0, "epoch start offsets are non-negative")
        guard epoch.rawValue >= 0 else { return false }
        if let last = entries.last, last.epoch == epoch { return true }
        if let last = entries.last, last.epoch > epoch, last.startOffset <= startOffset { return false }
        entries.removeAll { $0.epoch >= epoch || $0.startOffset >= startOffset }
        entries.append(Entry(epoch: epoch, startOffset: startOffset))
        return true
    }

    /// Whether a batch of `epoch` may follow the batches already recorded.
    public func accepts(epoch: LeaderEpoch) -> Bool {
        epoch.rawValue >= 0 && (latestEpoch.map { epoch >= $0 } ?? true)
    }

    /// OffsetForLeaderEpoch: the largest known epoch at or below `epoch`, and the offset where it
    /// ended (the start of the next known epoch, or the log end offset for the latest epoch).
    /// (-1, -1) for an epoch older than every known one or when nothing is known.
    public func endOffset(for epoch: LeaderEpoch, logEndOffset: Offset) -> (epoch: LeaderEpoch, endOffset: Offset) {
        guard let latest = entries.last else { return (.none, .unknown) }
        if epoch == latest.epoch { return (latest.epoch, logEndOffset) }
        if epoch > latest.epoch { return (.none, .unknown) }
        guard let position = entries.lastIndex(where: { $0.epoch <= epoch }) else {
            // Older than everything we know: Kafka answers with the requested epoch and the start
            // of the oldest known one, so the follower truncates below it.
            return (epoch, entries[0].startOffset)
        }
        return (entries[position].epoch, entries[position + 1].startOffset)
    }

    /// The epoch of the batch containing `offset`, if known.
    public func epoch(containing offset: Offset) -> LeaderEpoch? {
        entries.last { $0.startOffset <= offset }?.epoch
    }

    /// Drops epochs starting at or after `offset` (the log was truncated to `offset`).
    public mutating func truncate(fromEnd offset: Offset) {
        entries.removeAll { $0.startOffset >= offset }
    }

    /// The log now starts at `offset`: the epoch covering it starts there.
    public mutating func truncate(fromStart offset: Offset) {
        guard let covering = entries.lastIndex(where: { $0.startOffset <= offset }) else { return }
        entries.removeFirst(covering)
        entries[0].startOffset = offset
    }
}
