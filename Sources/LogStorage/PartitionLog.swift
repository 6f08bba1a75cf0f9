import TernCore
import KafkaProtocol

/// What an append wrote.
public struct AppendInfo: Equatable, Sendable {
    public var firstOffset: Offset
    public var lastOffset: Offset
    public var batchCount: Int
    public var maxTimestamp: Int64
    public var bytes: Int
}

/// A segmented, append-only partition log over a `Disk`: RecordBatch v2 bytes stored as they
/// arrived, a sparse offset index per segment, leader-epoch history, and crash recovery.
///
/// Durability is explicit. `append` writes to the page cache; `flush` requests a sync of
/// everything appended so far (callers flush once per event-loop turn: that is group commit);
/// completions come back through `handle(_:)`, and `durableOffset` says how far the log is
/// durable. Nothing below `durableOffset` can be lost by a crash; recovery scans from the last
/// checkpointed durable offset (the recovery point).
public final class PartitionLog {
    public let directory: String
    public private(set) var configuration: LogConfiguration
    let disk: any Disk
    var segments: [LogSegment]
    public internal(set) var logStartOffset: Offset
    public internal(set) var highWatermark: Offset
    public internal(set) var leaderEpochs: LeaderEpochCache
    var durability: DurabilityQueue
    var checkpointWriter: AtomicFileWriter
    /// Another checkpoint was asked for while one was in flight.
    var checkpointWanted = false
    var lastWrittenCheckpoint: PartitionCheckpoint?
    /// Log end offset covered by the last flush request.
    var flushedOffset: Offset
    /// A truncation below the durable offset, or a fresh recovery, is waiting for this checkpoint
    /// generation; appends are refused until it is durable.
    var durabilityBarrier: UInt64?
    /// Corruption found below the recovery point: nothing at or past its offset is served.
    public internal(set) var corruption: LogCorruption?
    /// Set when a write or sync failed; the log then refuses all work.
    public internal(set) var failure: String?
    public internal(set) var recoveryReport = RecoveryReport()
    /// Segments below the log start whose files wait for a durable checkpoint (see
    /// `advanceLogStartOffset`).
    var segmentsAwaitingDeletion: [SegmentsAwaitingDeletion] = []
    /// Segment files past a corruption, kept for repair and removed by `discardFromCorruption`.
    var orphanedPaths: [String] = []
    /// The topic the directory belongs to (32 hexadecimal digits), repeated in every checkpoint;
    /// nil for a log of no topic, or while the topic of its data is unknown.
    public internal(set) var topicID: String?
    /// The write of `partition.metadata`, while it is in flight: appends wait for it, so no data
    /// is ever in a directory that does not say which topic it belongs to.
    var identityWriter: AtomicFileWriter?
    /// The topic a log opened with an unreadable topic id belongs to once it is emptied.
    var topicIDAwaitingDiscard: String?

    init(directory: String, configuration: LogConfiguration, disk: any Disk, segments: [LogSegment],
         logStartOffset: Offset, highWatermark: Offset, leaderEpochs: LeaderEpochCache, durableOffset: Offset) {
        precondition(!segments.isEmpty, "a log always has an active segment")
        self.directory = directory
        self.configuration = configuration
        self.disk = disk
        self.segments = segments
        self.logStartOffset = logStartOffset
        self.highWatermark = highWatermark
        self.leaderEpochs = leaderEpochs
        self.durability = DurabilityQueue(durableOffset: durableOffset)
        self.checkpointWriter = AtomicFileWriter(path: joinPath(directory, PartitionCheckpoint.fileName))
        self.flushedOffset = durableOffset
    }

    /// Takes new settings (a topic config changed): the next append, roll and retention check
    /// follow them; what is written stays as it is.
    public func reconfigure(_ configuration: LogConfiguration) {
        guard configuration != self.configuration else { return }
        self.configuration = configuration.validated()
    }

    // MARK: State

    public var logEndOffset: Offset { segments[segments.count - 1].nextOffset }
    /// Every offset below this is on stable storage.
    public var durableOffset: Offset { durability.durableOffset }
    public var segmentCount: Int { segments.count }
    public var sizeInBytes: Int64 { segments.reduce(0) { $0 + $1.size } }
    public var segmentBaseOffsets: [Offset] { segments.map(\.baseOffset) }
    /// No sync, checkpoint or truncation barrier outstanding.
    public var isIdle: Bool {
        durability.isEmpty && checkpointWriter.isIdle && !checkpointWanted && durabilityBarrier == nil && identityWriter == nil
    }
    /// Appends wait (`durabilityBarrierPending`): a truncation or recovery, or the write of
    /// `partition.metadata`, is being made durable.
    public var hasDurabilityBarrier: Bool { durabilityBarrier != nil || identityWriter != nil }

    var activeSegment: LogSegment {
        get { segments[segments.count - 1] }
        set { segments[segments.count - 1] = newValue }
        // Mutate in place: get+set would copy the segment, so its index arrays would be shared
        // and every index append would copy the whole index (quadratic in segment size).
        _modify { yield &segments[segments.count - 1] }
    }

    func ensureWritable() throws(LogError) {
        if let failure { throw .offline(reason: failure) }
        if let corruption { throw .corrupt(corruption) }
        if hasDurabilityBarrier { throw .durabilityBarrierPending }
    }

    /// A write or sync failed: the page cache may now disagree with the disk, so the log stops.
    func fail(_ reason: String) -> LogError {
        if failure == nil { failure = reason }
        return .offline(reason: failure ?? reason)
    }

    // MARK: Append

    /// Appends client batches as the leader: each gets the next offsets and the leader's epoch.
    /// The caller has validated them (framing, CRC, producer rules); `batches` may hold several
    /// back to back and is rewritten in place (base offset, partition leader epoch, and with
    /// `message.timestamp.type=LogAppendTime` the wall clock as max timestamp, CRC resealed).
    @discardableResult
    public func appendAsLeader(_ batches: inout [UInt8], leaderEpoch: LeaderEpoch, wallClock: Instant) throws(LogError) -> AppendInfo {
        try ensureWritable()
        guard leaderEpochs.accepts(epoch: leaderEpoch) else {
            preconditionFailure("leader epoch \(leaderEpoch) is older than the log's latest \(String(describing: leaderEpochs.latestEpoch))")
        }
        var next = logEndOffset
        var position = 0
        while position < batches.count {
            let header: RecordBatchHeader
            do { header = try RecordBatchHeader.read(batches, at: position) } catch { throw .invalidBatch(error) }
            guard header.totalSize <= batches.count - position else { throw .invalidBatch(.truncated(available: batches.count - position)) }
            if configuration.messageTimestampType == .logAppendTime {
                RecordBatchHeader.assignLogAppendTime(wallClock.milliseconds, in: &batches, at: position)
            }
            RecordBatchHeader.assign(baseOffset: next.rawValue, partitionLeaderEpoch: leaderEpoch.rawValue, in: &batches, at: position)
            next = next + Int64(header.lastOffsetDelta) + 1
            position += header.totalSize
        }
        return try write(batches, wallClock: wallClock)
    }

    /// Appends batches fetched from the leader, offsets and epochs as they are. They must start at
    /// the log end offset, be contiguous, carry valid CRCs and never go back in epoch.
    @discardableResult
    public func appendAsFollower(_ batches: [UInt8], wallClock: Instant) throws(LogError) -> AppendInfo {
        try ensureWritable()
        var expected = logEndOffset
        var epochs = leaderEpochs
        var failure: LogError?
        let walk = walkBatches(in: batches, from: 0, verifyChecksums: true) { _, header in
            guard Offset(header.baseOffset) == expected else {
                failure = .nonContiguousAppend(expected: expected, received: Offset(header.baseOffset))
                return false
            }
            guard epochs.assign(epoch: LeaderEpoch(header.partitionLeaderEpoch), startOffset: expected) else {
                failure = .invalidBatch(.invalidRecord("leader epoch \(header.partitionLeaderEpoch) goes backwards"))
                return false
            }
            expected = Offset(header.nextOffset)
            return true
        }
        if let failure { throw failure }
        switch walk.stop {
        case .endOfBuffer, .stoppedByVisitor: break
        case let .invalid(error): throw .invalidBatch(error)
        case .incomplete: throw .invalidBatch(.truncated(available: batches.count - walk.position))
        }
        return try write(batches, wallClock: wallClock)
    }

    /// Writes framed batches (offsets already final) at the log end, rolling segments as needed.
    private func write(_ batches: [UInt8], wallClock: Instant) throws(LogError) -> AppendInfo {
        precondition(!batches.isEmpty, "an append carries at least one batch")
        let first = logEndOffset
        var info = AppendInfo(firstOffset: first, lastOffset: first, batchCount: 0, maxTimestamp: -1, bytes: batches.count)
        var runStart = 0
        var position = 0
        while position < batches.count {
            let header: RecordBatchHeader
            do { header = try RecordBatchHeader.read(batches, at: position) } catch { throw .invalidBatch(error) }
            guard Int64(header.totalSize) <= configuration.segmentBytes else {
                throw .batchTooLarge(size: header.totalSize, segmentBytes: configuration.segmentBytes)
            }
            let pendingRun = Int64(position - runStart)
            if shouldRoll(adding: pendingRun + Int64(header.totalSize), lastOffset: Offset(header.lastOffset), wallClock: wallClock) {
                try writeRun(batches, runStart..<position)
                runStart = position
                try roll(wallClock: wallClock)
            }
            info.batchCount += 1
            info.lastOffset = Offset(header.lastOffset)
            info.maxTimestamp = max(info.maxTimestamp, header.maxTimestamp)
            position += header.totalSize
        }
        try writeRun(batches, runStart..<position)
        return info
    }

    /// Writes whole batches into the active segment with one write, then records them.
    private func writeRun(_ batches: [UInt8], _ range: Range<Int>) throws(LogError) {
        guard !range.isEmpty else { return }
        let start = activeSegment.size
        let outcome = batches.withUnsafeBytes { raw in
            Result { () throws(DiskError) in
                try disk.write(activeSegment.logFile, at: start, UnsafeRawBufferPointer(rebasing: raw[range]))
            }
        }
        if case let .failure(error) = outcome { throw fail("write to \(activeSegment.logPath) failed: \(error)") }
        var position = range.lowerBound
        while position < range.upperBound {
            let header = try! RecordBatchHeader.read(batches, at: position)
            let segmentPosition = start + Int64(position - range.lowerBound)
            leaderEpochs.assign(epoch: LeaderEpoch(header.partitionLeaderEpoch), startOffset: Offset(header.baseOffset))
            activeSegment.recordAppended(header, at: segmentPosition, indexIntervalBytes: configuration.indexIntervalBytes)
            position += header.totalSize
        }
    }

    private func shouldRoll(adding bytes: Int64, lastOffset: Offset, wallClock: Instant) -> Bool {
        let segment = activeSegment
        guard !segment.isEmpty else { return false }
        if segment.size + bytes > configuration.segmentBytes { return true }
        // Index entries hold offsets relative to the segment base in 32 bits.
        if segment.baseOffset.distance(to: lastOffset) > Int64(UInt32.max) { return true }
        let rollBase = segment.rollTimestamp ?? segment.openedAtMilliseconds
        return wallClock.milliseconds - rollBase >= configuration.segmentMilliseconds
    }

    /// Seals the active segment and starts a new one at the log end offset. The sealed segment's
    /// data and index and the new file's directory entry must be durable before anything after
    /// the roll counts as durable.
    func roll(wallClock: Instant) throws(LogError) {
        let base = logEndOffset
        activeSegment.addSealEntry()
        do { try activeSegment.writeIndex(disk: disk) } catch { throw fail("index write failed: \(error)") }
        activeSegment.indexNeedsSync = false
        let sealed = activeSegment
        let segment: LogSegment
        do { segment = try createSegment(baseOffset: base, wallClock: wallClock) } catch { throw fail("segment creation failed: \(error)") }
        segments.append(segment)
        let tokens = [disk.sync(sealed.logFile), disk.sync(sealed.indexFile), disk.syncDirectory(directory)]
        durability.enqueue(target: base, tokens: tokens)
        flushedOffset = base
    }

    func createSegment(baseOffset: Offset, wallClock: Instant) throws(DiskError) -> LogSegment {
        let logPath = joinPath(directory, LogSegment.fileName(baseOffset: baseOffset, suffix: ".log"))
        let indexPath = joinPath(directory, LogSegment.fileName(baseOffset: baseOffset, suffix: ".index"))
        let logFile = try disk.open(logPath, create: true)
        let indexFile = try disk.open(indexPath, create: true)
        try disk.truncate(logFile, to: 0)
        try disk.truncate(indexFile, to: 0)
        return LogSegment(baseOffset: baseOffset, directory: directory, logFile: logFile, indexFile: indexFile,
                          openedAtMilliseconds: wallClock.milliseconds)
    }

    // MARK: Durability

    /// Requests a sync of everything appended since the last flush. Cheap when nothing changed.
    public func flush() {
        guard failure == nil, logEndOffset > flushedOffset else { return }
        let token = disk.sync(activeSegment.logFile)
        flushedOffset = logEndOffset
        durability.enqueue(target: logEndOffset, tokens: [token])
    }

    /// Feeds a sync completion. Returns false if the token is not this log's.
    @discardableResult
    public func handle(_ completion: SyncCompletion) -> Bool {
        if durability.complete(completion.token) {
            if case let .failure(error) = completion.result { _ = fail("sync failed: \(error)") }
            return true
        }
        if handleIdentityWrite(completion) { return true }
        let progress: AtomicFileWriter.Progress
        do {
            progress = try checkpointWriter.handle(completion, disk: disk)
        } catch {
            _ = fail("checkpoint write failed: \(error)")
            return true
        }
        switch progress {
        case .notMine: return false
        case .inProgress: return true
        case let .completed(generation):
            durability.checkpointCompleted(generation: generation)
            deleteSegments(checkpointedThrough: generation)
            if durabilityBarrier.map({ $0 <= generation }) == true { durabilityBarrier = nil }
            if checkpointWanted { startCheckpoint() }
            return true
        }
    }

    /// Writes the checkpoint (recovery point = durable offset, high watermark, log start, epochs)
    /// if it changed. Returns the generation that will carry the current state.
    @discardableResult
    public func checkpoint() -> UInt64 {
        guard failure == nil else { return checkpointWriter.currentGeneration }
        if !checkpointWriter.isIdle {
            checkpointWanted = true
            return checkpointWriter.currentGeneration + 1
        }
        return startCheckpoint()
    }

    @discardableResult
    private func startCheckpoint() -> UInt64 {
        checkpointWanted = false
        let state = PartitionCheckpoint(logStartOffset: logStartOffset, recoveryPoint: durableOffset,
                                        highWatermark: min(highWatermark, durableOffset),
                                        leaderEpochs: leaderEpochs.entries.filter { $0.startOffset < logEndOffset }, topicID: topicID)
        if state == lastWrittenCheckpoint && durabilityBarrier == nil { return checkpointWriter.completedGeneration }
        // The index entries below the recovery point must be durable before the checkpoint vouches
        // for them: recovery starts its scan at the indexed batch at or before the recovery point.
        var prerequisites: [SyncToken] = []
        do {
            for position in segments.indices {
                try segments[position].writeIndex(disk: disk)
                guard segments[position].indexNeedsSync else { continue }
                segments[position].indexNeedsSync = false
                prerequisites.append(disk.sync(segments[position].indexFile))
            }
            let generation = try checkpointWriter.start(contents: state.encode(), after: prerequisites, disk: disk)
            lastWrittenCheckpoint = state
            return generation
        } catch {
            _ = fail("checkpoint write failed: \(error)")
            return checkpointWriter.currentGeneration
        }
    }

    /// Records the high watermark (the replication layer decides it). It never passes the log end.
    public func updateHighWatermark(_ offset: Offset) {
        precondition(offset <= logEndOffset, "high watermark \(offset) beyond log end \(logEndOffset)")
        highWatermark = max(offset, logStartOffset)
    }

    /// Closes every file. Callers wanting a clean reopen flush and checkpoint first and wait for
    /// `isIdle`.
    public func close() {
        for segment in segments + segmentsAwaitingDeletion.flatMap(\.segments) {
            disk.close(segment.logFile)
            disk.close(segment.indexFile)
        }
        segments.removeAll()
        segmentsAwaitingDeletion.removeAll()
    }

    /// Stops the log for good, before its directory is moved away to be removed: closes every
    /// file and drops the work in flight, whose completions are no longer the log's. A checkpoint
    /// write would otherwise go on by path, into whatever directory then has this name.
    public func closeForRemoval() {
        for writer in [checkpointWriter] + (identityWriter.map { [$0] } ?? []) {
            if case let .syncingFile(_, file) = writer.phase { disk.close(file) }
        }
        checkpointWriter.abandon()
        identityWriter = nil
        checkpointWanted = false
        durability.reset(durableOffset: durableOffset)
        if failure == nil { failure = "closed for removal" }
        close()
    }

    // MARK: Identity

    /// Reads `partition.metadata` and the checkpoint back and rewrites whichever no longer decodes
    /// (latent corruption): each holds the topic id, and while one is intact the other can be
    /// repaired from memory. Called periodically; a read that fails is left for the next call.
    public func repairDamagedIdentity() {
        guard let topicID, identityWriter == nil, failure == nil else { return }
        if case .unreadable? = try? PartitionMetadata.readFile(directory: directory, disk: disk) {
            do { try startIdentityWrite() } catch { _ = fail("rewriting \(PartitionMetadata.fileName) failed: \(error)") }
        }
        let path = joinPath(directory, PartitionCheckpoint.fileName)
        guard checkpointWriter.isIdle, disk.fileExists(path), let file = try? disk.open(path, create: false) else { return }
        defer { disk.close(file) }
        guard let size = try? disk.size(file), size <= 16 << 20, let bytes = try? disk.read(file, at: 0, count: Int(size)),
              (try? PartitionCheckpoint.decode(bytes))?.topicID != topicID else { return }
        lastWrittenCheckpoint = nil  // written again even if nothing changed
        checkpoint()
    }

    /// Starts the write of `partition.metadata` (for a directory that has none, or a damaged one).
    func startIdentityWrite() throws(DiskError) {
        guard let topicID else { preconditionFailure("only a log of a known topic records it") }
        var writer = AtomicFileWriter(path: joinPath(directory, PartitionMetadata.fileName))
        _ = try writer.start(contents: PartitionMetadata(topicID: topicID).encode(), after: [], disk: disk)
        identityWriter = writer
    }

    private func handleIdentityWrite(_ completion: SyncCompletion) -> Bool {
        guard var writer = identityWriter else { return false }
        let progress: AtomicFileWriter.Progress
        do {
            progress = try writer.handle(completion, disk: disk)
        } catch {
            _ = fail("writing \(PartitionMetadata.fileName) failed: \(error)")
            identityWriter = nil
            return true
        }
        switch progress {
        case .notMine: return false
        case .inProgress: identityWriter = writer
        case .completed: identityWriter = nil
        }
        return true
    }
}
