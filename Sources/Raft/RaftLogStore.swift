import KafkaProtocol
import LogStorage
import TernCore

/// The Raft log kept in a `PartitionLog`, in the metadata log's segment format (DESIGN: "the
/// metadata log uses the same segment format"):
///
/// - the entry of index `i` is the record batch at offset `i - 1` (Raft counts from 1, Kafka
///   offsets from 0; LogIndex 0 means "no entry");
/// - its `partitionLeaderEpoch` is the entry's term, so the log's leader-epoch cache is the term
///   history of the Raft log;
/// - it holds exactly one record whose value is the payload; a leader-change entry is a control
///   batch whose record key is KRaft's LeaderChange control key (version 0, type 2).
///
/// The log is never compacted or trimmed by retention; see `RaftCore` for what that implies.
struct RaftLogStore {
    let log: PartitionLog

    /// KRaft's control record type for LeaderChange.
    static let leaderChangeKey: [UInt8] = [0, 0, 0, 2]
    static let readChunkBytes = 1 << 20

    static func open(directory: String, configuration: LogConfiguration, disk: any Disk, wallClock: Instant) throws(RaftStorageError) -> RaftLogStore {
        var settings = configuration
        settings.retentionBytes = -1
        settings.retentionMilliseconds = -1
        do {
            return RaftLogStore(log: try PartitionLog.open(directory: directory, configuration: settings, disk: disk, wallClock: wallClock))
        } catch {
            throw .log(error)
        }
    }

    var lastIndex: LogIndex { LogIndex(log.logEndOffset.rawValue) }
    /// Every entry up to here is on stable storage.
    var durableIndex: LogIndex { LogIndex(log.durableOffset.rawValue) }
    var hasDurabilityBarrier: Bool { log.hasDurabilityBarrier }

    /// Every entry, in order, checked for the shape this store writes.
    func loadEntries() throws(RaftStorageError) -> [RaftLogEntry] {
        guard log.logStartOffset == .zero else {
            throw .corruptEntry(offset: log.logStartOffset, reason: "the metadata log does not start at offset 0")
        }
        var entries: [RaftLogEntry] = []
        var next = Offset.zero
        while next < log.logEndOffset {
            let chunk: LogReadResult
            do { chunk = try log.read(from: next, maxBytes: Self.readChunkBytes) } catch { throw .log(error) }
            guard chunk.batchCount > 0 else { throw .corruptEntry(offset: next, reason: "read returned nothing before the log end") }
            var position = 0
            while position < chunk.bytes.count {
                let entry = try Self.decodeEntry(chunk.bytes, at: position, expectedOffset: next)
                precondition(entries.last.map { entry.entry.term >= $0.term } ?? true, "the log checked that epochs never go down")
                entries.append(entry.entry)
                position = entry.end
                next = next + 1
            }
        }
        return entries
    }

    /// Removes every stored entry at or after `index` (a follower's conflicting tail). Below the
    /// durable offset this raises the log's truncation barrier: appends wait until it is durable.
    func cut(from index: LogIndex) throws(RaftStorageError) {
        precondition(index > .zero && index <= lastIndex.next, "cut at \(index) outside 1...\(lastIndex.next)")
        guard index <= lastIndex else { return }
        do { try log.truncate(to: Offset(index.rawValue - 1)) } catch { throw .log(error) }
    }

    /// Appends entries that continue the stored log. Returns false (writing nothing) while a
    /// truncation is being made durable.
    /// Each batch is stamped with `wallClock`, the time of day.
    func append(_ entries: [RaftLogEntry], wallClock: Instant) throws(RaftStorageError) -> Bool {
        guard let first = entries.first else { return true }
        precondition(first.index == lastIndex.next, "append of \(first.index) after stored \(lastIndex)")
        guard !log.hasDurabilityBarrier else { return false }
        var batches: [UInt8] = []
        for entry in entries { batches += Self.encodeBatch(entry, timestampMilliseconds: wallClock.milliseconds) }
        do {
            try log.appendAsFollower(batches, wallClock: wallClock)
        } catch .durabilityBarrierPending {
            return false
        } catch {
            throw .log(error)
        }
        log.flush()
        return true
    }

    // MARK: Format

    static func encodeBatch(_ entry: RaftLogEntry, timestampMilliseconds: Int64) -> [UInt8] {
        precondition(entry.term.rawValue <= Int64(Int32.max), "term \(entry.term) does not fit a partition leader epoch")
        var builder = RecordBatchBuilder(baseTimestamp: timestampMilliseconds, capacity: entry.payload.count + 96)
        builder.baseOffset = entry.index.rawValue - 1
        builder.partitionLeaderEpoch = Int32(entry.term.rawValue)
        switch entry.kind {
        case .command:
            builder.append(key: nil, value: entry.payload)
        case .leaderChange:
            builder.attributes = RecordBatchAttributes(isControl: true)
            builder.append(key: leaderChangeKey, value: entry.payload)
        }
        return builder.build()
    }

    static func decodeEntry(_ bytes: [UInt8], at position: Int, expectedOffset: Offset) throws(RaftStorageError) -> (entry: RaftLogEntry, end: Int) {
        let batch: RecordBatch
        let records: [Record]
        do {
            batch = try RecordBatch(bytes, at: position)
            records = try batch.records()
        } catch {
            throw .corruptEntry(offset: expectedOffset, reason: error.description)
        }
        let header = batch.header
        guard header.baseOffset == expectedOffset.rawValue else {
            throw .corruptEntry(offset: expectedOffset, reason: "batch has base offset \(header.baseOffset)")
        }
        guard records.count == 1, let record = records.first, let payload = record.value else {
            throw .corruptEntry(offset: expectedOffset, reason: "a Raft entry is one record with a value")
        }
        guard header.partitionLeaderEpoch > 0 else {
            throw .corruptEntry(offset: expectedOffset, reason: "term \(header.partitionLeaderEpoch) is not positive")
        }
        let kind: RaftEntryKind = header.isControl ? .leaderChange : .command
        if kind == .leaderChange && record.key != leaderChangeKey {
            throw .corruptEntry(offset: expectedOffset, reason: "control batch is not a LeaderChange record")
        }
        let entry = RaftLogEntry(index: LogIndex(expectedOffset.rawValue + 1), term: Term(Int64(header.partitionLeaderEpoch)),
                                 kind: kind, payload: payload)
        return (entry, batch.range.upperBound)
    }
}
