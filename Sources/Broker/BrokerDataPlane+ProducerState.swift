import KafkaProtocol
import LogStorage
import TernCore

// The idempotence table of every hosted replica, leader or follower, kept equal to what its log
// holds: built at open from the latest valid snapshot plus the batches after it, advanced by
// every append, reset by every truncation. So a follower that becomes leader deduplicates at once,
// and a restarted broker does not replay its whole log.
//
// Snapshots are an optimisation, never trusted blindly: written (not synced) as
// `<offset>.snapshot` in the partition directory at checkpoint time when everything up to the log
// end is committed, deleted above any truncation point, and loaded only if the log's batch ending
// at the snapshot offset still has the CRC the snapshot recorded. A missing, torn or stale
// snapshot costs a longer replay, nothing else.

extension BrokerDataPlane {
    /// Snapshots kept per partition (the newest ones).
    static let retainedProducerSnapshots = 2

    /// Brings the table in line with the log after anything that may have changed it. `appended`,
    /// when given, holds the batches just appended (a follower's fetch), taken from memory rather
    /// than read back from the log.
    ///
    /// A log start moving forward over what the table covers (retention, DeleteRecords) keeps the
    /// table: as in Kafka, a producer's state outlives its deleted batches, so its retries are
    /// still recognised. A log restarted past the table's end, or below its old start, is
    /// rebuilt from the log.
    func syncProducerState(_ hosted: HostedPartition, appended: [UInt8] = []) {
        let log = hosted.log
        let restarted = log.logStartOffset < hosted.producerStateLogStart || log.logStartOffset > hosted.producerState.endOffset
        if restarted || log.logEndOffset < hosted.producerState.endOffset {
            deleteProducerSnapshots(of: hosted, above: log.logEndOffset)
            if restarted || hosted.producerState.truncate(to: log.logEndOffset) != .exact {
                hosted.producerState = Self.loadProducerState(from: log, disk: disk)
            }
        }
        hosted.producerStateLogStart = log.logStartOffset
        if log.logEndOffset > hosted.producerState.endOffset {
            Self.record(batches: appended, into: &hosted.producerState)
        }
        if log.logEndOffset > hosted.producerState.endOffset {
            Self.replay(log, from: hosted.producerState.endOffset, into: &hosted.producerState)
        }
    }

    /// Records the batches in `bytes` that start at or after the table's end.
    static func record(batches bytes: [UInt8], into state: inout ProducerStateTable) {
        var position = 0
        while position < bytes.count, let header = try? RecordBatchHeader.read(bytes, at: position) {
            if Offset(header.baseOffset) >= state.endOffset { state.recordAppended(header, firstOffset: Offset(header.baseOffset)) }
            position += header.totalSize
        }
    }

    /// The latest snapshot at or below the log end whose boundary batch still matches, brought
    /// forward by the batches after it; with none, the whole log replayed.
    static func loadProducerState(from log: PartitionLog, disk: any Disk) -> ProducerStateTable {
        var state = loadProducerStateTable(from: log, disk: disk)
        state.mayHaveForgottenProducers = log.logStartOffset > .zero
        return state
    }

    private static func loadProducerStateTable(from log: PartitionLog, disk: any Disk) -> ProducerStateTable {
        let offsets = producerSnapshotOffsets(in: log.directory, disk: disk)
        for offset in offsets.reversed() where offset <= log.logEndOffset && offset >= log.logStartOffset {
            guard let bytes = readWholeFile(joinPath(log.directory, ProducerStateSnapshotFiles.fileName(for: offset)), disk: disk),
                  let (table, boundary) = try? ProducerStateTable.decodeSnapshotWithBoundary(bytes),
                  boundaryChecksum(of: log, at: offset) == boundary else { continue }
            var state = table
            replay(log, from: offset, into: &state)
            return state
        }
        var state = ProducerStateTable(endOffset: log.logStartOffset)
        replay(log, from: log.logStartOffset, into: &state)
        return state
    }

    /// Records every batch from `offset` to the log end. A read failure (corruption) stops early:
    /// such a log refuses appends and serves nothing past the damage until it is repaired.
    static func replay(_ log: PartitionLog, from start: Offset, into state: inout ProducerStateTable) {
        var offset = start
        while offset < log.logEndOffset {
            guard let read = try? log.read(from: offset, maxBytes: 1 << 20), read.batchCount > 0, read.nextOffset > offset else { return }
            record(batches: read.bytes, into: &state)
            offset = read.nextOffset
        }
    }

    /// The CRC field of the batch that ends exactly at `offset` (0 at the log start), or nil when
    /// no batch ends there.
    static func boundaryChecksum(of log: PartitionLog, at offset: Offset) -> UInt32? {
        guard offset > log.logStartOffset else { return offset == log.logStartOffset ? 0 : nil }
        guard let read = try? log.read(from: offset - 1, maxBytes: 1), read.batchCount > 0,
              let header = try? RecordBatchHeader.read(read.bytes, at: 0), Offset(header.nextOffset) == offset else { return nil }
        return header.crc
    }

    /// Writes a snapshot at the log end when everything below it is committed and it is newer
    /// than the last one, then keeps only the newest few.
    func snapshotProducerStateIfDue(_ hosted: HostedPartition) {
        let log = hosted.log
        let end = log.logEndOffset
        guard end == log.highWatermark, end > hosted.lastProducerSnapshot, end == hosted.producerState.endOffset,
              let boundary = Self.boundaryChecksum(of: log, at: end) else { return }
        let name = ProducerStateSnapshotFiles.fileName(for: end)
        let temporary = joinPath(log.directory, name + ".tmp")
        do {
            let file = try disk.open(temporary, create: true)
            defer { disk.close(file) }
            try disk.truncate(file, to: 0)
            try disk.write(file, at: 0, hosted.producerState.encodeSnapshot(at: end, boundaryChecksum: boundary))
            try disk.rename(temporary, to: joinPath(log.directory, name))
        } catch {
            return  // only an optimisation: the next checkpoint tries again
        }
        hosted.lastProducerSnapshot = end
        let offsets = Self.producerSnapshotOffsets(in: log.directory, disk: disk)
        for old in offsets.dropLast(Self.retainedProducerSnapshots) {
            try? disk.remove(joinPath(log.directory, ProducerStateSnapshotFiles.fileName(for: old)))
        }
    }

    func deleteProducerSnapshots(of hosted: HostedPartition, above offset: Offset) {
        let offsets = Self.producerSnapshotOffsets(in: hosted.log.directory, disk: disk)
        for stale in ProducerStateSnapshotFiles.snapshotsToDelete(truncatingTo: offset, among: offsets) {
            try? disk.remove(joinPath(hosted.log.directory, ProducerStateSnapshotFiles.fileName(for: stale)))
        }
        hosted.lastProducerSnapshot = min(hosted.lastProducerSnapshot, offset)
    }

    static func producerSnapshotOffsets(in directory: String, disk: any Disk) -> [Offset] {
        ((try? disk.listDirectory(directory)) ?? []).compactMap(ProducerStateSnapshotFiles.offset(fromFileName:)).sorted()
    }

    /// A small file's bytes (snapshots are bounded by the producers they hold), or nil.
    static func readWholeFile(_ path: String, disk: any Disk) -> [UInt8]? {
        guard disk.fileExists(path), let file = try? disk.open(path, create: false) else { return nil }
        defer { disk.close(file) }
        guard let size = try? disk.size(file), size <= 64 << 20 else { return nil }
        return try? disk.read(file, at: 0, count: Int(size))
    }
}
