import TernCore
import KafkaProtocol

/// Whole batches read from a log.
public struct LogReadResult: Equatable, Sendable {
    /// Batches back to back, byte for byte as stored. The first one contains the offset asked for.
    public var bytes: [UInt8] = []
    /// Base offset of the first batch returned, nil when nothing was returned.
    public var firstBatchOffset: Offset?
    /// The offset after the last batch returned; where the next read continues.
    public var nextOffset: Offset
    public var batchCount = 0
}

extension PartitionLog {
    /// Reads whole batches starting with the one containing `offset`, stopping before `maxBytes`
    /// would be exceeded (the first batch is always returned whole, however large, so a consumer
    /// always makes progress) and before any batch that reaches `maximumOffset` (exclusive; consumers
    /// pass the high watermark). Reading at the log end returns nothing.
    ///
    /// Every batch read is checked against its CRC-32C: recovery trusts what lies below the
    /// recovery point without reading it, so a read is where latent corruption shows. The first
    /// bad batch is recorded in `corruption`, and nothing at or past it is served from then on.
    public func read(from offset: Offset, maxBytes: Int, maximumOffset: Offset? = nil) throws(LogError) -> LogReadResult {
        if let failure { throw .offline(reason: failure) }
        guard offset >= logStartOffset, offset <= logEndOffset else {
            throw .offsetOutOfRange(requested: offset, logStartOffset: logStartOffset, logEndOffset: logEndOffset)
        }
        if let corruption, offset >= corruption.offset { throw .corrupt(corruption) }
        var upper = min(maximumOffset ?? logEndOffset, logEndOffset)
        if let corruption { upper = min(upper, corruption.offset) }
        var result = LogReadResult(nextOffset: offset)
        var segmentPosition = segmentIndex(containing: offset)
        while segmentPosition < segments.count, result.nextOffset < upper {
            let segment = segments[segmentPosition]
            if result.nextOffset < segment.nextOffset {
                let finished = try read(segment, into: &result, upper: upper, maxBytes: maxBytes)
                if !finished { break }
            }
            segmentPosition += 1
        }
        return result
    }

    /// Keeps the lowest corruption seen; returns the one in force.
    func recordCorruption(_ found: LogCorruption) -> LogCorruption {
        if let existing = corruption, existing.offset <= found.offset { return existing }
        corruption = found
        return found
    }

    /// Index of the segment whose range holds `offset` (the last one with base at or below it).
    func segmentIndex(containing offset: Offset) -> Int {
        var low = 0
        var high = segments.count
        while low < high {
            let middle = (low + high) / 2
            if segments[middle].baseOffset <= offset { low = middle + 1 } else { high = middle }
        }
        return max(0, low - 1)
    }

    /// Reads from one segment; returns true when the read may continue into the next segment.
    private func read(_ segment: LogSegment, into result: inout LogReadResult, upper: Offset, maxBytes: Int) throws(LogError) -> Bool {
        var position = segment.scanStart(for: result.nextOffset).position
        let readAhead = Int64(configuration.indexIntervalBytes) + 65_536
        while position < segment.size {
            let budget = result.bytes.isEmpty ? 0 : Int64(max(0, maxBytes - result.bytes.count))
            let wanted = min(segment.size - position, min(budget, segment.size) + readAhead)
            let chunk: [UInt8]
            do { chunk = try disk.read(segment.logFile, at: position, count: Int(wanted)) } catch {
                throw fail("read of \(segment.logPath) failed: \(error)")
            }
            var done = false
            let walk = walkBatches(in: chunk, from: 0, verifyChecksums: true) { start, header in
                if Offset(header.lastOffset) < result.nextOffset { return true }
                if Offset(header.nextOffset) > upper { done = true; return false }
                if !result.bytes.isEmpty && header.totalSize > maxBytes - result.bytes.count { done = true; return false }
                if result.firstBatchOffset == nil { result.firstBatchOffset = Offset(header.baseOffset) }
                result.bytes.append(contentsOf: chunk[start..<(start + header.totalSize)])
                result.nextOffset = Offset(header.nextOffset)
                result.batchCount += 1
                return true
            }
            if done { return false }
            switch walk.stop {
            case .endOfBuffer, .stoppedByVisitor:
                position += Int64(walk.position)
            case let .incomplete(needed):
                // A batch runs past the chunk: read again from it, large enough to hold it whole,
                // unless it would not fit the byte budget anyway.
                if !result.bytes.isEmpty && needed > maxBytes - result.bytes.count { return false }
                let batchStart = position + Int64(walk.position)
                guard batchStart + Int64(needed) <= segment.size else {
                    throw .corrupt(LogCorruption(file: segment.logPath, position: batchStart, offset: result.nextOffset,
                                                 reason: "batch runs past the end of the segment"))
                }
                if walk.position == 0 {
                    guard try readWhole(segment, at: batchStart, count: needed, into: &result, upper: upper) else { return false }
                    position = batchStart + Int64(needed)
                } else {
                    position = batchStart
                }
            case let .invalid(error):
                let expected = result.bytes.isEmpty ? segment.nextOffsetOfBatch(atOrAfter: result.nextOffset) : result.nextOffset
                let found = recordCorruption(LogCorruption(file: segment.logPath, position: position + Int64(walk.position),
                                                           offset: expected, reason: error.description))
                if result.bytes.isEmpty { throw .corrupt(found) }
                return false
            }
            if result.nextOffset >= upper { return false }
        }
        return true
    }

    /// Reads one batch larger than the read-ahead chunk; false when it reaches `upper`.
    private func readWhole(_ segment: LogSegment, at position: Int64, count: Int, into result: inout LogReadResult, upper: Offset) throws(LogError) -> Bool {
        let bytes: [UInt8]
        do { bytes = try disk.read(segment.logFile, at: position, count: count) } catch {
            throw fail("read of \(segment.logPath) failed: \(error)")
        }
        let header: RecordBatchHeader
        do { header = try RecordBatchHeader.validateFraming(bytes) } catch {
            let found = recordCorruption(LogCorruption(file: segment.logPath, position: position, offset: result.nextOffset,
                                                       reason: error.description))
            if result.bytes.isEmpty { throw .corrupt(found) }
            return false
        }
        guard Offset(header.lastOffset) >= result.nextOffset else { return true }
        guard Offset(header.nextOffset) <= upper else { return false }
        if result.firstBatchOffset == nil { result.firstBatchOffset = Offset(header.baseOffset) }
        result.bytes.append(contentsOf: bytes)
        result.nextOffset = Offset(header.nextOffset)
        result.batchCount += 1
        return true
    }
}
