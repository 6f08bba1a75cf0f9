import TernCore
import KafkaProtocol

extension PartitionLog {
    /// Removes every batch whose last offset is at or after `offset` (a batch containing it goes
    /// whole) and returns the new log end offset. A follower calls this with the end offset of the
    /// leader's epoch, never with its own high watermark.
    ///
    /// Truncating is a barrier: appends are refused until the truncated files, the directory and a
    /// checkpoint of the new state are durable. Otherwise a crash could keep some files from before
    /// the truncation and some from after it: below the durable offset the old checkpoint would
    /// vouch for new bytes, and above it a segment file removed and re-created under the same name
    /// could follow an old segment, joining two histories whose epochs happen to increase (found by
    /// the recovery property, seed 1422 of 3000).
    @discardableResult
    public func truncate(to offset: Offset) throws(LogError) -> Offset {
        if let failure { throw .offline(reason: failure) }
        guard offset < logEndOffset else { return logEndOffset }
        var touched: [DiskFile] = []
        while segments.count > 1, segments[segments.count - 1].baseOffset >= offset {
            let removed = segments.removeLast()
            delete(removed)
        }
        do {
            try truncateActiveSegment(keepingBelow: offset)
        } catch {
            throw fail("truncation of \(activeSegment.logPath) failed: \(error)")
        }
        touched.append(activeSegment.logFile)
        touched.append(activeSegment.indexFile)
        if let corruption, corruption.offset >= logEndOffset { self.corruption = nil }
        afterRemovingTail(touched: touched)
        return logEndOffset
    }

    /// Empties the log and restarts it at `offset` (a follower whose log does not overlap the
    /// leader's, or a replica being rebuilt after corruption).
    public func truncateFully(startingAt offset: Offset, wallClock: Instant) throws(LogError) {
        if let failure { throw .offline(reason: failure) }
        deleteSegmentsAwaitingDeletion()
        for segment in segments { delete(segment) }
        segments.removeAll()
        do { segments.append(try createSegment(baseOffset: offset, wallClock: wallClock)) } catch {
            throw fail("segment creation failed: \(error)")
        }
        logStartOffset = offset
        highWatermark = offset
        leaderEpochs = LeaderEpochCache()
        corruption = nil
        afterRemovingTail(touched: [activeSegment.logFile, activeSegment.indexFile], restartingAt: offset)
    }

    /// Bookkeeping shared by both truncations: high watermark, epochs and the durability barrier.
    private func afterRemovingTail(touched: [DiskFile], restartingAt restart: Offset? = nil) {
        let end = logEndOffset
        highWatermark = min(highWatermark, end)
        leaderEpochs.truncate(fromEnd: end)
        flushedOffset = min(flushedOffset, end)
        durability.truncate(to: min(end, restart.map { _ in durableOffset } ?? end))
        raiseDurabilityBarrier(syncing: touched)
    }

    /// Refuses appends until `files`, the directory and a checkpoint of the current state are
    /// durable: the disk must stop vouching for offsets the log no longer holds before any new
    /// data can land on them.
    func raiseDurabilityBarrier(syncing files: [DiskFile]) {
        var tokens = files.map { disk.sync($0) }
        tokens.append(disk.syncDirectory(directory))
        durabilityBarrier = .max
        let generation = checkpoint()
        durabilityBarrier = generation
        durability.enqueue(target: max(durableOffset, logEndOffset), tokens: tokens, checkpointGeneration: generation)
        flushedOffset = logEndOffset
    }

    /// Cuts the active segment before the first batch whose last offset reaches `offset`; records
    /// a corruption instead if unreadable bytes come first.
    private func truncateActiveSegment(keepingBelow offset: Offset) throws(DiskError) {
        var segment = activeSegment
        let start = segment.scanStart(for: offset)
        let cut: Int64
        var maxTimestamp = segment.index.floorEntry(position: UInt32(clamping: start.position))?.maxTimestamp ?? -1
        var lastPosition: Int64 = -1
        var lastBase = segment.baseOffset
        var nextOffset = start.offset
        let end = try scanSegmentFile(segment.logFile, size: segment.size, from: start.position, verifyChecksums: false,
                                      bufferBytes: configuration.scanBufferBytes, disk: disk) { at, header in
            guard Offset(header.lastOffset) < offset else { return false }
            maxTimestamp = max(maxTimestamp, header.maxTimestamp)
            lastPosition = at
            lastBase = Offset(header.baseOffset)
            nextOffset = Offset(header.nextOffset)
            return true
        }
        switch end {
        case .endOfFile: cut = segment.size
        case let .stopped(position): cut = position
        case let .torn(position), let .invalid(position, _):
            guard nextOffset >= offset else {
                // Unreadable bytes below the cut: the log holds data there it can no longer
                // read. Cutting at them would drop it silently (seed 70 of all: a follower
                // emptied by a truncation meant to cut one batch, then elected leader); they are
                // kept and reported like corruption a read finds, and discarded once recorded.
                let reason = if case let .invalid(_, reason) = end { reason } else { "a batch runs past the end of the segment" }
                _ = recordCorruption(LogCorruption(file: segment.logPath, position: position, offset: nextOffset,
                                                   reason: "found while truncating to \(offset): \(reason)"))
                return
            }
            cut = position
        }
        try disk.truncate(segment.logFile, to: cut)
        if let indexSize = segment.index.truncate(atPosition: UInt32(clamping: cut)) {
            try disk.truncate(segment.indexFile, to: indexSize)
        }
        segment.indexNeedsSync = true
        segment.size = cut
        segment.nextOffset = cut == 0 ? segment.baseOffset : nextOffset
        segment.maxTimestamp = cut == 0 ? -1 : maxTimestamp
        segment.lastBatchPosition = cut == 0 ? -1 : lastPosition
        segment.lastBatchBaseOffset = cut == 0 ? segment.baseOffset : lastBase
        segment.bytesSinceIndexEntry = Int(cut - Int64(segment.index.last?.position ?? 0))
        if cut == 0 { segment.rollTimestamp = nil }
        activeSegment = segment
    }

    func delete(_ segment: LogSegment) {
        // A removal that does not reach the disk before a crash is harmless: recovery drops
        // segments below the log start and segments that do not continue the log.
        try? disk.discard(segment.logFile, at: segment.logPath)
        try? disk.discard(segment.indexFile, at: segment.indexPath)
    }

    /// Moves the log start forward (DeleteRecords, retention, a follower learning its leader's):
    /// offsets below it are no longer served. Whole segments below it leave the log at once and
    /// their files are deleted once a checkpoint carrying the new log start is durable, so a crash
    /// never finds a gap below a log start it would still honour. Never past the high watermark.
    public func advanceLogStartOffset(to offset: Offset) {
        guard offset > logStartOffset, failure == nil else { return }
        precondition(offset <= highWatermark, "log start \(offset) may not pass the high watermark \(highWatermark)")
        logStartOffset = offset
        leaderEpochs.truncate(fromStart: offset)
        var removed: [LogSegment] = []
        while segments.count > 1, segments[1].baseOffset <= offset { removed.append(segments.removeFirst()) }
        let generation = checkpoint()
        guard !removed.isEmpty else { return }
        segmentsAwaitingDeletion.append(SegmentsAwaitingDeletion(segments: removed, checkpointGeneration: generation))
        deleteSegments(checkpointedThrough: checkpointWriter.completedGeneration)
    }

    /// Deletes the files of segments below a log start that a durable checkpoint now carries.
    func deleteSegments(checkpointedThrough generation: UInt64) {
        while let first = segmentsAwaitingDeletion.first, first.checkpointGeneration <= generation {
            segmentsAwaitingDeletion.removeFirst()
            for segment in first.segments { delete(segment) }
        }
    }

    /// Deletes every segment awaiting deletion now, before new files could take their names.
    func deleteSegmentsAwaitingDeletion() {
        for pending in segmentsAwaitingDeletion { pending.segments.forEach(delete) }
        segmentsAwaitingDeletion.removeAll()
    }

    /// Deletes the oldest segments wholly below the high watermark while retention by time
    /// (`retention.ms`: the segment's newest timestamp is older) or by size (`retention.bytes`: the
    /// log stays at least that large without it) allows. As in Kafka, an expired active segment is
    /// rolled so that it can go too. Returns how many segments were deleted.
    @discardableResult
    public func applyRetention(wallClock: Instant) -> Int {
        guard failure == nil, corruption == nil, !hasDurabilityBarrier else { return 0 }
        let timeLimit = configuration.retentionMilliseconds >= 0 ? wallClock.milliseconds - configuration.retentionMilliseconds : Int64.min
        var remainingBytes = sizeInBytes
        var deletable = 0
        for segment in segments {
            guard !segment.isEmpty, segment.nextOffset <= highWatermark else { break }
            let expiredByTime = segment.maxTimestamp < timeLimit
            let overSize = configuration.retentionBytes >= 0 && remainingBytes - segment.size >= configuration.retentionBytes
            guard expiredByTime || overSize else { break }
            remainingBytes -= segment.size
            deletable += 1
        }
        guard deletable > 0 else { return 0 }
        if deletable == segments.count {
            do { try roll(wallClock: wallClock) } catch { return 0 }
        }
        let newStart = segments[deletable - 1].nextOffset
        advanceLogStartOffset(to: newStart)
        return deletable
    }
}

/// Segments cut off below the log start, waiting for the checkpoint that records it.
struct SegmentsAwaitingDeletion {
    var segments: [LogSegment]
    var checkpointGeneration: UInt64
}
