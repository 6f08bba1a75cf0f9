import TernCore
import KafkaProtocol

/// What opening a log found and did.
public struct RecoveryReport: Equatable, Sendable {
    public var segmentsFound = 0
    /// Segments whose batches were read and CRC-checked (the recovery point onwards).
    public var segmentsScanned = 0
    public var bytesScanned: Int64 = 0
    public var batchesScanned = 0
    /// Bytes cut from a torn or invalid tail after the recovery point.
    public var truncatedBytes: Int64 = 0
    /// Segments removed: below the log start, or no longer continuing the log.
    public var segmentsDeleted = 0
    public var indexesRebuilt = 0
    /// The checkpoint file was unreadable; recovery then scanned everything.
    public var checkpointProblem: String?
}

extension PartitionLog {
    /// Opens (creating if needed) the log in `directory` and recovers it: segments below the
    /// recovery point are trusted (their index is checked and their last batch read); from the
    /// recovery point on, every batch's length, offsets, epoch and CRC-32C are verified, the first
    /// torn or invalid batch and everything after it are cut, and indexes are rebuilt.
    /// Corruption below the recovery point is not cut: the log opens, serves what precedes it, and
    /// reports it in `corruption` (reads past it and appends fail until it is repaired).
    ///
    /// With `topicID` (32 lowercase hexadecimal digits), the directory must belong to that topic
    /// (`partition.metadata`, or the copy in the checkpoint where the file is damaged): one of
    /// another topic is refused untouched (`topicIDMismatch`). A directory recording no topic (new,
    /// or from before topic ids were recorded) is adopted: the file is written, and appends wait
    /// until it is durable. One whose topic cannot be read from either file opens as lost data
    /// (`corruption` at its log start: nothing served, nothing appended) until
    /// `discardFromCorruption` empties it and records the topic.
    public static func open(directory: String, topicID: String? = nil, configuration: LogConfiguration = LogConfiguration(),
                            disk: any Disk, wallClock: Instant) throws(LogError) -> PartitionLog {
        var identity: IdentityCheck?
        if let topicID { identity = try checkIdentity(of: directory, is: topicID, disk: disk) }
        let log: PartitionLog
        do {
            var recovery = try Recovery(directory: directory, configuration: configuration.validated(), disk: disk, wallClock: wallClock)
            // Checkpoints repeat a topic id only once it is known to be the data's.
            if case .recorded? = identity { recovery.topicID = topicID }
            if case .toWrite? = identity { recovery.topicID = topicID }
            log = try recovery.run()
        } catch let error as DiskError {
            throw .disk(error)
        } catch {
            preconditionFailure("recovery throws only disk errors: \(error)")
        }
        switch identity {
        case nil, .recorded?:
            break
        case .toWrite?:
            do { try log.startIdentityWrite() } catch { throw .disk(error) }
        case let .unknown(reason)?:
            log.corruption = LogCorruption(file: joinPath(directory, PartitionMetadata.fileName), position: 0,
                                           offset: log.logStartOffset, reason: "the topic this log belongs to is unknown: \(reason)")
            log.topicIDAwaitingDiscard = topicID
        }
        return log
    }

    enum IdentityCheck {
        /// `partition.metadata` names the topic.
        case recorded
        /// It is to be written: new, from before topic ids, or repaired from the checkpoint's copy.
        case toWrite
        case unknown(String)
    }

    /// What `directory` records of its topic, checked against `topicID`; throws when it names another.
    private static func checkIdentity(of directory: String, is topicID: String, disk: any Disk) throws(LogError) -> IdentityCheck {
        let found: PartitionMetadata.Found
        do { found = try PartitionMetadata.read(directory: directory, disk: disk) } catch { throw .disk(error) }
        if found == .unreadable {
            return .unknown("\(PartitionMetadata.fileName) does not decode and no checkpoint repeats the topic id")
        }
        guard let recorded = found.recordedTopicID else { return .toWrite }
        guard recorded == topicID else { throw .topicIDMismatch(directory: directory, found: recorded, expected: topicID) }
        return found == .topicID(recorded) ? .recorded : .toWrite
    }

    /// Deletes the corrupt batch and everything after it, so the log can be refilled from a leader.
    public func discardFromCorruption() throws(LogError) {
        guard let found = corruption else { return }
        defer { if corruption == nil { recordTopicAfterDiscard() } }
        if found.offset < logEndOffset {
            // Found by a read: the bad batch and what follows are still part of the log.
            try truncate(to: found.offset)
            precondition(corruption == nil, "a truncation below the corruption clears it")
            return
        }
        do {
            for path in orphanedPaths { try? disk.remove(path) }
            orphanedPaths.removeAll()
            try disk.truncate(activeSegment.logFile, to: activeSegment.size)
        } catch {
            throw fail("repair of \(found.file) failed: \(error)")
        }
        corruption = nil
        durability.truncate(to: logEndOffset)
        raiseDurabilityBarrier(syncing: [activeSegment.logFile])
    }
}

extension PartitionLog {
    /// A log whose topic was unknown is empty now: it belongs to the topic it was opened for.
    private func recordTopicAfterDiscard() {
        guard let pending = topicIDAwaitingDiscard else { return }
        topicIDAwaitingDiscard = nil
        topicID = pending
        do { try startIdentityWrite() } catch { _ = fail("writing \(PartitionMetadata.fileName) failed: \(error)") }
    }
}

/// The directories above `path`, nearest first, up to the root (or the first component of a
/// relative path).
func ancestorDirectories(of path: String) -> [String] {
    var ancestors: [String] = []
    var current = path
    while true {
        let parent = parentDirectory(of: current)
        guard parent != current, parent != "." else { break }
        ancestors.append(parent)
        current = parent
    }
    return ancestors
}

/// The steps of opening a log, kept apart so each stays short.
private struct Recovery {
    let directory: String
    let configuration: LogConfiguration
    let disk: any Disk
    let wallClock: Instant
    var report = RecoveryReport()
    var checkpoint: PartitionCheckpoint?
    var segments: [LogSegment] = []
    var epochs = LeaderEpochCache()
    var corruption: LogCorruption?
    var orphanedPaths: [String] = []
    /// Log files of the segments recovery read or cut: their state must be made durable.
    var scannedFiles: [DiskFile] = []
    /// The verified (or new) topic of the directory, written into every checkpoint.
    var topicID: String?

    init(directory: String, configuration: LogConfiguration, disk: any Disk, wallClock: Instant) throws(DiskError) {
        self.directory = directory
        self.configuration = configuration
        self.disk = disk
        self.wallClock = wallClock
        try disk.makeDirectory(directory)
    }

    mutating func run() throws -> PartitionLog {
        let bases = try listSegments()
        checkpoint = readCheckpoint()
        var logStart = checkpoint?.logStartOffset ?? bases.first ?? .zero
        let kept = try dropSegmentsBelow(logStart, bases: bases)
        if let first = kept.first { logStart = max(logStart, first) }
        var recoveryPoint = max(checkpoint?.recoveryPoint ?? logStart, logStart)
        if checkpoint == nil, let first = kept.first { recoveryPoint = first }
        epochs = LeaderEpochCache(entries: (checkpoint?.leaderEpochs ?? []).filter { $0.startOffset < recoveryPoint })
        try openSegments(kept)
        if segments.isEmpty {
            segments.append(try makeSegment(baseOffset: logStart, create: true))
            scannedFiles.append(segments[0].logFile)
        }
        try recoverSegments(recoveryPoint: recoveryPoint)
        try readRollTimestamp()
        let logEnd = segments[segments.count - 1].nextOffset
        let durable = min(recoveryPoint, logEnd)
        epochs.truncate(fromEnd: logEnd)
        let highWatermark = max(min(checkpoint?.highWatermark ?? logStart, logEnd), logStart)
        let log = PartitionLog(directory: directory, configuration: configuration, disk: disk, segments: segments,
                               logStartOffset: logStart, highWatermark: highWatermark, leaderEpochs: epochs,
                               durableOffset: durable)
        log.corruption = corruption
        log.orphanedPaths = orphanedPaths
        log.recoveryReport = report
        log.topicID = topicID
        // What recovery read may be only in the page cache (after a process kill): cuts, removals
        // and bytes that a later power loss could still undo. Make exactly this state durable, the
        // directory entries and the checkpoint included, before anything new is appended on it.
        // Every directory above the log too: a log dir created by the broker itself (mkdir -p)
        // is only reachable after a power loss once each level's entry is durable (found by the
        // simulator's produce workload: a broker's whole data directory vanished).
        log.durability.enqueue(target: durable, tokens: ancestorDirectories(of: directory).map { disk.syncDirectory($0) })
        log.raiseDurabilityBarrier(syncing: scannedFiles.filter { file in segments.contains { $0.logFile == file } })
        log.flush()
        return log
    }

    /// Base offsets of the segment files present, ascending; leftovers of interrupted writes go.
    mutating func listSegments() throws(DiskError) -> [Offset] {
        let names = try disk.listDirectory(directory)
        var logs: [Offset] = []
        var indexes: [Offset] = []
        for name in names {
            if name.hasSuffix(".tmp") {
                try disk.remove(joinPath(directory, name))
            } else if let base = LogSegment.baseOffset(fromFileName: name, suffix: ".log") {
                logs.append(base)
            } else if let base = LogSegment.baseOffset(fromFileName: name, suffix: ".index") {
                indexes.append(base)
            }
        }
        for base in indexes where !logs.contains(base) {
            try disk.remove(joinPath(directory, LogSegment.fileName(baseOffset: base, suffix: ".index")))
        }
        report.segmentsFound = logs.count
        return logs.sorted()
    }

    mutating func readCheckpoint() -> PartitionCheckpoint? {
        let path = joinPath(directory, PartitionCheckpoint.fileName)
        guard disk.fileExists(path) else { return nil }
        do {
            let file = try disk.open(path, create: false)
            defer { disk.close(file) }
            let size = try disk.size(file)
            guard size <= 16 << 20 else {
                report.checkpointProblem = "\(path): \(size) bytes is too large for a checkpoint"
                return nil
            }
            return try PartitionCheckpoint.decode(try disk.read(file, at: 0, count: Int(size)))
        } catch let error as PartitionCheckpoint.FormatError {
            report.checkpointProblem = "\(path) \(error)"
        } catch {
            report.checkpointProblem = "\(path): \(error)"
        }
        return nil
    }

    /// Removes segments that lie wholly below the log start (retention whose checkpoint was lost).
    mutating func dropSegmentsBelow(_ logStart: Offset, bases: [Offset]) throws(DiskError) -> [Offset] {
        var kept = bases
        while kept.count > 1, kept[1] <= logStart {
            try removeSegmentFiles(kept.removeFirst())
        }
        return kept
    }

    mutating func removeSegmentFiles(_ base: Offset) throws(DiskError) {
        try disk.remove(joinPath(directory, LogSegment.fileName(baseOffset: base, suffix: ".log")))
        let index = joinPath(directory, LogSegment.fileName(baseOffset: base, suffix: ".index"))
        if disk.fileExists(index) { try disk.remove(index) }
        report.segmentsDeleted += 1
    }

    mutating func openSegments(_ bases: [Offset]) throws(DiskError) {
        for base in bases { segments.append(try makeSegment(baseOffset: base, create: false)) }
    }

    func makeSegment(baseOffset: Offset, create: Bool) throws(DiskError) -> LogSegment {
        let logFile = try disk.open(joinPath(directory, LogSegment.fileName(baseOffset: baseOffset, suffix: ".log")), create: true)
        let indexFile = try disk.open(joinPath(directory, LogSegment.fileName(baseOffset: baseOffset, suffix: ".index")), create: true)
        if create {
            try disk.truncate(logFile, to: 0)
            try disk.truncate(indexFile, to: 0)
        }
        var segment = LogSegment(baseOffset: baseOffset, directory: directory, logFile: logFile, indexFile: indexFile,
                                 openedAtMilliseconds: wallClock.milliseconds)
        segment.size = try disk.size(logFile)
        return segment
    }

    /// Trusts the segments wholly below the recovery point, scans the rest.
    mutating func recoverSegments(recoveryPoint: Offset) throws(DiskError) {
        var position = 0
        var expected = segments[0].baseOffset
        while position < segments.count {
            if segments[position].baseOffset != expected {
                // Does not continue the log (left over from a truncation that did not reach the disk).
                try dropSegments(from: position)
                break
            }
            let trusted = position + 1 < segments.count && segments[position + 1].baseOffset <= recoveryPoint
            let complete = trusted
                ? try trustSegment(position, recoveryPoint: recoveryPoint)
                : try scanSegment(position, recoveryPoint: recoveryPoint, rebuildingEpochs: true)
            expected = segments[position].nextOffset
            guard complete else {
                try dropSegments(from: position + 1)
                break
            }
            position += 1
        }
    }

    /// Removes segments from `position` on. After corruption they are kept on disk (the data may
    /// be needed) but left out of the log.
    mutating func dropSegments(from position: Int) throws(DiskError) {
        guard position < segments.count else { return }
        for segment in segments[position...] {
            disk.close(segment.logFile)
            disk.close(segment.indexFile)
            if corruption != nil {
                orphanedPaths += [segment.logPath, segment.indexPath]
            } else {
                try removeSegmentFiles(segment.baseOffset)
            }
        }
        segments.removeSubrange(position...)
    }

    /// A segment below the recovery point: check its index and read from its last indexed batch to
    /// the end of the file. Returns false if the log ends early here (a truncation) or is corrupt.
    mutating func trustSegment(_ position: Int, recoveryPoint: Offset) throws(DiskError) -> Bool {
        var segment = segments[position]
        let indexSize = try disk.size(segment.indexFile)
        guard indexSize <= Int64(Int32.max),
              let index = OffsetIndex.load(try disk.read(segment.indexFile, at: 0, count: Int(indexSize)), segmentSize: segment.size) else {
            return try scanSegment(position, recoveryPoint: recoveryPoint, rebuildingEpochs: false)
        }
        segment.index = index
        let start = index.last.map { (Int64($0.position), segment.baseOffset + Int64($0.relativeOffset), $0.maxTimestamp) }
            ?? (0, segment.baseOffset, -1)
        var expected = start.1
        var maxTimestamp = start.2
        var lastPosition: Int64 = -1
        var lastBase = segment.baseOffset
        let end = try scanSegmentFile(segment.logFile, size: segment.size, from: start.0, verifyChecksums: false,
                                      bufferBytes: configuration.scanBufferBytes, disk: disk) { at, header in
            guard Offset(header.baseOffset) == expected else { return false }
            expected = Offset(header.nextOffset)
            maxTimestamp = max(maxTimestamp, header.maxTimestamp)
            lastPosition = at
            lastBase = Offset(header.baseOffset)
            return true
        }
        guard end == .endOfFile, expected > start.1 || start.0 == 0 else {
            // The index promised a batch the file does not hold as expected: check the whole segment.
            return try scanSegment(position, recoveryPoint: recoveryPoint, rebuildingEpochs: false)
        }
        segment.nextOffset = expected
        segment.maxTimestamp = maxTimestamp
        segment.lastBatchPosition = lastPosition
        segment.lastBatchBaseOffset = lastBase
        segment.bytesSinceIndexEntry = Int(segment.size - start.0)
        segments[position] = segment
        return segments.count <= position + 1 || segments[position + 1].baseOffset == expected
    }

    /// Reads and verifies a segment from its indexed batch at or before the recovery point (or from
    /// its start), rebuilding its index. Returns false when the log ends in this segment.
    /// Epochs of the scanned batches replace the checkpoint's only from the recovery point's
    /// segment on; below it the checkpoint's epochs stand and the scan only checks them.
    mutating func scanSegment(_ position: Int, recoveryPoint: Offset, rebuildingEpochs: Bool) throws(DiskError) -> Bool {
        var segment = segments[position]
        scannedFiles.append(segment.logFile)
        let fileSize = segment.size
        var start: (position: Int64, offset: Offset, maxTimestamp: Int64) = (0, segment.baseOffset, -1)
        let indexSize = try disk.size(segment.indexFile)
        if recoveryPoint > segment.baseOffset, indexSize <= Int64(Int32.max),
           let index = OffsetIndex.load(try disk.read(segment.indexFile, at: 0, count: Int(indexSize)), segmentSize: fileSize),
           let entry = index.floorEntry(relativeOffset: UInt32(clamping: segment.baseOffset.distance(to: recoveryPoint))) {
            segment.index = index
            if let size = segment.index.truncate(atPosition: entry.position + 1) {
                try disk.truncate(segment.indexFile, to: size)
            }
            start = (Int64(entry.position), segment.baseOffset + Int64(entry.relativeOffset), entry.maxTimestamp)
        } else {
            segment.index = OffsetIndex()
            try disk.truncate(segment.indexFile, to: 0)
            report.indexesRebuilt += 1
        }
        segment.size = start.position
        segment.nextOffset = start.offset
        segment.maxTimestamp = start.maxTimestamp
        segment.bytesSinceIndexEntry = 0
        var problem: String?
        let indexInterval = configuration.indexIntervalBytes
        var epochs = self.epochs
        epochs.truncate(fromEnd: start.offset)
        var batches = 0
        let end = try scanSegmentFile(segment.logFile, size: fileSize, from: start.position, verifyChecksums: true,
                                      bufferBytes: configuration.scanBufferBytes, disk: disk) { at, header in
            guard Offset(header.baseOffset) == segment.nextOffset else {
                problem = "batch at offset \(header.baseOffset) where \(segment.nextOffset) was expected"
                return false
            }
            guard segment.baseOffset.distance(to: Offset(header.lastOffset)) <= Int64(UInt32.max) else {
                problem = "batch ends at offset \(header.lastOffset), beyond what segment \(segment.baseOffset) can index"
                return false
            }
            guard epochs.assign(epoch: LeaderEpoch(header.partitionLeaderEpoch), startOffset: Offset(header.baseOffset)) else {
                problem = "leader epoch \(header.partitionLeaderEpoch) goes backwards"
                return false
            }
            segment.recordAppended(header, at: at, indexIntervalBytes: indexInterval)
            batches += 1
            return true
        }
        if rebuildingEpochs { self.epochs = epochs }
        report.segmentsScanned += 1
        report.batchesScanned += batches
        report.bytesScanned += segment.size - start.position
        let stopReason: String?
        switch end {
        case .endOfFile: stopReason = nil
        case .torn: stopReason = "batch torn by the end of the file"
        case let .invalid(_, reason): stopReason = reason
        case .stopped: stopReason = problem
        }
        segments[position] = segment
        guard let stopReason else {
            return segments.count <= position + 1 || segments[position + 1].baseOffset == segment.nextOffset
        }
        if segment.nextOffset < recoveryPoint {
            corruption = LogCorruption(file: segment.logPath, position: segment.size, offset: segment.nextOffset, reason: stopReason)
            return false
        }
        if configuration.keepsInvalidTailForRepair {
            corruption = LogCorruption(file: segment.logPath, position: segment.size, offset: segment.nextOffset,
                                       reason: "invalid tail past the recovery point (torn write or corruption): \(stopReason)")
            return false
        }
        report.truncatedBytes += fileSize - segment.size
        try disk.truncate(segment.logFile, to: segment.size)
        return false
    }

    /// Time-based rolling counts from the active segment's first batch.
    mutating func readRollTimestamp() throws(DiskError) {
        let last = segments.count - 1
        guard segments[last].size >= Int64(RecordBatchLayout.headerSize) else { return }
        let bytes = try disk.read(segments[last].logFile, at: 0, count: RecordBatchLayout.headerSize)
        if let header = try? RecordBatchHeader.read(bytes) { segments[last].rollTimestamp = header.maxTimestamp }
    }
}
