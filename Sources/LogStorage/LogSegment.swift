import TernCore
import KafkaProtocol

/// One segment of a partition log: `<20-digit base offset>.log` holding RecordBatch v2 bytes back
/// to back, and `.index` holding its sparse offset index.
struct LogSegment {
    let baseOffset: Offset
    let logPath: String
    let indexPath: String
    let logFile: DiskFile
    let indexFile: DiskFile
    /// Bytes of batches in the log file.
    var size: Int64 = 0
    /// The offset after the last batch; equals `baseOffset` while empty.
    var nextOffset: Offset
    var index = OffsetIndex()
    var bytesSinceIndexEntry = 0
    /// Largest record timestamp (ms) in the segment, -1 when empty.
    var maxTimestamp: Int64 = -1
    /// Timestamp (ms) that time-based rolling counts from: the first batch's max timestamp.
    var rollTimestamp: Int64?
    /// Wall-clock ms when this process opened or created the segment; rolling falls back to it.
    let openedAtMilliseconds: Int64
    /// Position and base offset of the last batch, for the seal entry written at roll.
    var lastBatchPosition: Int64 = -1
    var lastBatchBaseOffset: Offset
    /// The index file changed since it was last synced.
    var indexNeedsSync = false

    init(baseOffset: Offset, directory: String, logFile: DiskFile, indexFile: DiskFile, openedAtMilliseconds: Int64) {
        self.baseOffset = baseOffset
        self.logPath = joinPath(directory, Self.fileName(baseOffset: baseOffset, suffix: ".log"))
        self.indexPath = joinPath(directory, Self.fileName(baseOffset: baseOffset, suffix: ".index"))
        self.logFile = logFile
        self.indexFile = indexFile
        self.nextOffset = baseOffset
        self.lastBatchBaseOffset = baseOffset
        self.openedAtMilliseconds = openedAtMilliseconds
    }

    var isEmpty: Bool { size == 0 }

    static func fileName(baseOffset: Offset, suffix: String) -> String {
        let digits = String(baseOffset.rawValue)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + suffix
    }

    /// The base offset named by a segment file name, or nil if the name is not one.
    static func baseOffset(fromFileName name: String, suffix: String) -> Offset? {
        guard name.hasSuffix(suffix) else { return nil }
        let digits = name.dropLast(suffix.count)
        guard digits.count == 20, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(digits) else { return nil }
        return Offset(value)
    }

    /// Records a batch just written at `position` (already in the file).
    mutating func recordAppended(_ header: RecordBatchHeader, at position: Int64, indexIntervalBytes: Int) {
        precondition(position == size, "batches are appended at the end of the segment")
        precondition(Offset(header.baseOffset) == nextOffset, "batch offsets must be contiguous")
        if bytesSinceIndexEntry >= indexIntervalBytes && position > 0 {
            index.append(OffsetIndexEntry(relativeOffset: relative(Offset(header.baseOffset)),
                                          position: UInt32(position),
                                          maxTimestamp: max(maxTimestamp, header.maxTimestamp)))
            bytesSinceIndexEntry = 0
        }
        if rollTimestamp == nil { rollTimestamp = header.maxTimestamp }
        size += Int64(header.totalSize)
        nextOffset = Offset(header.nextOffset)
        maxTimestamp = max(maxTimestamp, header.maxTimestamp)
        lastBatchPosition = position
        lastBatchBaseOffset = Offset(header.baseOffset)
        bytesSinceIndexEntry += header.totalSize
    }

    /// Adds an index entry for the last batch so a sealed segment's index ends at its tail: reopening
    /// then reads one batch header to know the segment's end and newest timestamp.
    mutating func addSealEntry() {
        guard lastBatchPosition > 0 else { return }
        if let last = index.last, Int64(last.position) >= lastBatchPosition { return }
        index.append(OffsetIndexEntry(relativeOffset: relative(lastBatchBaseOffset),
                                      position: UInt32(lastBatchPosition), maxTimestamp: maxTimestamp))
    }

    func relative(_ offset: Offset) -> UInt32 {
        let distance = baseOffset.distance(to: offset)
        precondition(distance >= 0 && distance <= Int64(UInt32.max), "offset \(offset) outside segment \(baseOffset)")
        return UInt32(distance)
    }

    /// Where a scan for `offset` may start: the indexed batch at or before it.
    func scanStart(for offset: Offset) -> (position: Int64, offset: Offset) {
        guard offset > baseOffset, let entry = index.floorEntry(relativeOffset: relative(offset)) else {
            return (0, baseOffset)
        }
        return (Int64(entry.position), baseOffset + Int64(entry.relativeOffset))
    }

    /// Best knowledge of where the batch holding `offset` starts, without reading: the indexed
    /// batch at or before it.
    func nextOffsetOfBatch(atOrAfter offset: Offset) -> Offset {
        scanStart(for: offset).offset
    }

    /// Writes buffered index entries to the index file.
    mutating func writeIndex(disk: any Disk) throws(DiskError) {
        guard let pending = index.takeUnwritten() else { return }
        try disk.write(indexFile, at: pending.position, pending.bytes)
        indexNeedsSync = true
    }
}

/// Walks the batch headers in `buffer` from `start`, calling `visit` with each complete batch's
/// position in the buffer and header. Stops at the first batch that is incomplete in the buffer or
/// has an invalid header, or when `visit` returns false; returns where it stopped and why.
enum BatchWalkStop: Equatable {
    case endOfBuffer
    /// Header bytes or the batch body run past the end of the buffer.
    case incomplete(needed: Int)
    case invalid(RecordBatchError)
    case stoppedByVisitor
}

func walkBatches(in buffer: [UInt8], from start: Int, verifyChecksums: Bool,
                 _ visit: (Int, RecordBatchHeader) -> Bool) -> (position: Int, stop: BatchWalkStop) {
    var position = start
    while position < buffer.count {
        let header: RecordBatchHeader
        do {
            header = verifyChecksums
                ? try RecordBatchHeader.validateFraming(buffer, at: position)
                : try RecordBatchHeader.read(buffer, at: position)
        } catch {
            if case .truncated = error {
                let needed = buffer.count - position < RecordBatchLayout.headerSize
                    ? RecordBatchLayout.headerSize
                    : Int((try? RecordBatchHeader.read(buffer, at: position))?.totalSize ?? RecordBatchLayout.headerSize)
                return (position, .incomplete(needed: needed))
            }
            return (position, .invalid(error))
        }
        if !verifyChecksums {
            guard header.magic == RecordBatchLayout.currentMagic else { return (position, .invalid(.unsupportedMagic(header.magic))) }
            guard header.totalSize <= buffer.count - position else { return (position, .incomplete(needed: header.totalSize)) }
            guard header.lastOffsetDelta >= 0 else {
                return (position, .invalid(.recordCountMismatch(lastOffsetDelta: header.lastOffsetDelta, recordsCount: header.recordsCount)))
            }
        }
        guard visit(position, header) else { return (position, .stoppedByVisitor) }
        position += header.totalSize
    }
    return (position, .endOfBuffer)
}

/// How a sequential scan of a segment file ended.
enum SegmentScanEnd: Equatable {
    case endOfFile
    /// The file ends inside a batch (a torn write).
    case torn(position: Int64)
    /// Bytes that are not a valid batch.
    case invalid(position: Int64, reason: String)
    /// The visitor asked to stop before the batch at this position.
    case stopped(position: Int64)
}

/// Visits every batch of a segment file from `start` in order, reading `bufferBytes` at a time (more
/// when one batch is larger). With `verifyChecksums` each batch's CRC-32C and framing is checked.
func scanSegmentFile(_ file: DiskFile, size: Int64, from start: Int64, verifyChecksums: Bool, bufferBytes: Int,
                     disk: any Disk, _ visit: (Int64, RecordBatchHeader) -> Bool) throws(DiskError) -> SegmentScanEnd {
    var position = start
    var chunkBytes = bufferBytes
    while position < size {
        let chunk = try disk.read(file, at: position, count: Int(min(size - position, Int64(chunkBytes))))
        if chunk.isEmpty { return .torn(position: position) }
        var stoppedAt: Int64?
        let walk = walkBatches(in: chunk, from: 0, verifyChecksums: verifyChecksums) { at, header in
            guard visit(position + Int64(at), header) else { stoppedAt = position + Int64(at); return false }
            return true
        }
        if let stoppedAt { return .stopped(position: stoppedAt) }
        switch walk.stop {
        case .endOfBuffer, .stoppedByVisitor:
            position += Int64(walk.position)
            chunkBytes = bufferBytes
        case let .incomplete(needed):
            let batchStart = position + Int64(walk.position)
            if batchStart + Int64(needed) > size { return .torn(position: batchStart) }
            if walk.position == 0 { chunkBytes = max(chunkBytes, needed) }
            position = batchStart
        case let .invalid(error):
            return .invalid(position: position + Int64(walk.position), reason: error.description)
        }
    }
    return .endOfFile
}
