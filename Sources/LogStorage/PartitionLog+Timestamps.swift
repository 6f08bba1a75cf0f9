import TernCore
import KafkaProtocol

/// A record's offset with its timestamp (ms): what ListOffsets answers for a timestamp.
public struct TimestampedOffset: Equatable, Sendable {
    public var offset: Offset
    public var timestamp: Int64

    public init(offset: Offset, timestamp: Int64) {
        self.offset = offset
        self.timestamp = timestamp
    }
}

extension PartitionLog {
    /// Kafka's ListOffsets by timestamp: the first record at or above the log start and below
    /// `upper` whose timestamp is at or after `target`, or nil when none is.
    ///
    /// The offset index doubles as the time index: each entry carries the largest timestamp of its
    /// segment up to and including its batch, so timestamps along the index never decrease. The
    /// first segment whose largest timestamp reaches `target` holds the record, and within it the
    /// last entry still below `target` is where the scan starts: the record lies before the next
    /// entry's batch ends, so a lookup reads about one index interval, whatever the log's size.
    ///
    /// A compressed batch is answered at batch granularity (its first offset and its largest
    /// timestamp) until the broker can decompress; with LogAppendTime every record of a batch
    /// carries the batch's timestamp. Corruption below `upper` that hides the answer is thrown:
    /// "none" would be a claim about records the log cannot read.
    public func offset(forTimestamp target: Int64, below upper: Offset) throws(LogError) -> TimestampedOffset? {
        if let failure { throw .offline(reason: failure) }
        let limit = readableLimit(upper)
        if logStartOffset < limit {
            var segmentPosition = segmentIndex(containing: logStartOffset)
            while segmentPosition < segments.count, segments[segmentPosition].baseOffset < limit {
                let segment = segments[segmentPosition]
                segmentPosition += 1
                guard segment.maxTimestamp >= target else { continue }
                let start = max(logStartOffset, segment.scanStart(forTimestamp: target))
                if let found = try firstRecord(atOrAfter: target, from: start, below: min(limit, segment.nextOffset)) { return found }
            }
        }
        try refuseIfCorruptionHides(below: upper)
        return nil
    }

    /// Kafka's MAX_TIMESTAMP lookup (KIP-734): the largest timestamp below `upper` and the first
    /// offset at or above the log start holding it, or nil for an empty range. Sealed segments
    /// answer from their largest timestamp; the one holding `upper` is read from its last index
    /// entry whose batches all lie below `upper`.
    public func maxTimestampOffset(below upper: Offset) throws(LogError) -> TimestampedOffset? {
        if let failure { throw .offline(reason: failure) }
        try refuseIfCorruptionHides(below: upper)
        let limit = readableLimit(upper)
        guard logStartOffset < limit else { return nil }
        var largest = Int64.min
        for segment in segments where segment.baseOffset < limit && segment.nextOffset > logStartOffset {
            if segment.nextOffset <= limit {
                largest = max(largest, segment.maxTimestamp)
                continue
            }
            let (indexed, readFrom) = segment.timestampsIndexed(below: limit)
            largest = max(largest, indexed)
            try forEachBatch(from: max(logStartOffset, readFrom), below: limit) { _, header in
                largest = max(largest, header.maxTimestamp)
                return true
            }
        }
        guard largest != Int64.min else { return nil }
        return try offset(forTimestamp: largest, below: limit)
    }

    private func refuseIfCorruptionHides(below upper: Offset) throws(LogError) {
        if let corruption, corruption.offset < min(upper, logEndOffset), corruption.offset >= logStartOffset {
            throw .corrupt(corruption)
        }
    }

    /// Where reads stop: `upper`, the log end, and any corruption found, whichever is lowest.
    private func readableLimit(_ upper: Offset) -> Offset {
        var limit = min(upper, logEndOffset)
        if let corruption { limit = min(limit, corruption.offset) }
        return limit
    }

    private func firstRecord(atOrAfter target: Int64, from start: Offset, below limit: Offset) throws(LogError) -> TimestampedOffset? {
        var found: TimestampedOffset?
        try forEachBatch(from: start, below: limit) { bytes, header in
            guard header.maxTimestamp >= target else { return true }
            found = Self.firstRecord(in: bytes, header, atOrAfter: target, notBelow: start)
            return found == nil
        }
        return found
    }

    /// Visits whole batches from the one holding `start` up to `limit` (exclusive), each with its
    /// bytes, until `visit` returns false. Reads go through `read`, so checksums are checked and
    /// corruption is recorded as for any read.
    private func forEachBatch(from start: Offset, below limit: Offset,
                              _ visit: (ArraySlice<UInt8>, RecordBatchHeader) -> Bool) throws(LogError) {
        var next = start
        while next < limit {
            let result = try read(from: next, maxBytes: 1 << 20, maximumOffset: limit)
            guard result.batchCount > 0 else { return }
            var keepGoing = true
            _ = walkBatches(in: result.bytes, from: 0, verifyChecksums: false) { position, header in
                keepGoing = visit(result.bytes[position..<(position + header.totalSize)], header)
                return keepGoing
            }
            if !keepGoing { return }
            next = result.nextOffset
        }
    }

    /// The first record of one batch at or above `floor` whose timestamp reaches `target`.
    static func firstRecord(in batch: ArraySlice<UInt8>, _ header: RecordBatchHeader, atOrAfter target: Int64,
                            notBelow floor: Offset) -> TimestampedOffset? {
        let batchStart = Offset(header.baseOffset)
        if header.compression != 0 || RecordBatchAttributes(rawValue: header.attributes).timestampType == .logAppendTime {
            return TimestampedOffset(offset: max(batchStart, floor), timestamp: header.maxTimestamp)
        }
        let bytes = Array(batch)
        guard var records = try? RecordIterator(bytes: bytes, recordsRange: RecordBatchLayout.headerSize..<bytes.count,
                                                recordsCount: header.recordsCount) else { return nil }
        while let record = try? records.next() {
            let offset = batchStart + Int64(record.offsetDelta)
            let timestamp = header.baseTimestamp &+ record.timestampDelta
            if offset >= floor && timestamp >= target { return TimestampedOffset(offset: offset, timestamp: timestamp) }
        }
        return nil
    }
}

extension LogSegment {
    /// Where a search for the first timestamp at or after `target` starts: the base offset of
    /// the last indexed batch whose running largest timestamp is still below it (every batch up
    /// to it is older), or the segment's base.
    func scanStart(forTimestamp target: Int64) -> Offset {
        guard let entry = index.lastEntry(withMaxTimestampBelow: target) else { return baseOffset }
        return baseOffset + Int64(entry.relativeOffset)
    }

    /// For a segment that runs past `limit`: the largest timestamp the index vouches for below it
    /// and where reading must take over. An entry's running maximum covers its own batch and
    /// those before it; the last entry starting at or below `limit` may hold a batch that runs
    /// past it, so the one before that is taken, and reading resumes at its batch.
    func timestampsIndexed(below limit: Offset) -> (largest: Int64, readFrom: Offset) {
        let startingAtOrBelow = index.countOfEntries(atOrBelow: relative(max(baseOffset, min(limit, nextOffset))))
        guard startingAtOrBelow >= 2 else { return (Int64.min, baseOffset) }
        let vouching = index.entries[startingAtOrBelow - 2]
        return (vouching.maxTimestamp, baseOffset + Int64(vouching.relativeOffset))
    }
}
