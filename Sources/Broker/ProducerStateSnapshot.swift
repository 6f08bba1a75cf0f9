import TernCore

// Producer-state snapshots: a pure binary encoding of a `ProducerStateTable` at an offset, and the
// file names the broker uses for them. File IO is the caller's: write the bytes atomically (temp
// file, sync, rename, sync directory) like every other small Tern file.
//
// Format, version 2, all integers big-endian:
//
//     0   4  magic "TPST"
//     4   2  version (2)
//     6   4  CRC-32C of every byte from offset 10 to the end
//     10  8  snapshot offset: the table reflects every batch below it
//     18  4  boundary: the CRC field of the log's batch ending at the snapshot offset (0 for none),
//            so a snapshot that outlived a truncation of its log is recognised and not loaded
//     22  4  producer count, then per producer in ascending id order:
//            8 producer id, 2 epoch, 8 last written offset, 1 batch count (0...5),
//            then per batch, oldest first: 4 first sequence, 4 last sequence,
//            8 first offset, 8 last offset, 8 timestamp (ms)
//
// The magic and version lie outside the CRC but are checked for exact values, so every
// single-bit flip anywhere in a snapshot is refused. Producers are written in id order, so the
// bytes depend only on the table's contents, never on dictionary order.

extension ProducerStateTable {
    static let snapshotMagic: [UInt8] = Array("TPST".utf8)
    public static let snapshotVersion: Int16 = 2
    static let snapshotHeaderSize = 26
    static let snapshotCRCCoveredStart = 10
    static let snapshotProducerSize = 19
    static let snapshotBatchSize = 32

    /// The table as snapshot bytes for `offset`, which must be at or above `endOffset`: the caller
    /// asserts that no producer batch lies between the two (normally `offset` is the log end offset).
    public func encodeSnapshot(at offset: Offset, boundaryChecksum: UInt32 = 0) -> [UInt8] {
        precondition(offset >= endOffset, "a snapshot at \(offset) would miss batches up to \(endOffset)")
        var writer = ByteWriter(capacity: Self.snapshotHeaderSize + producers.count
                                * (Self.snapshotProducerSize + Self.retainedBatchCount * Self.snapshotBatchSize))
        writer.writeBytes(Self.snapshotMagic)
        writer.writeInt16(Self.snapshotVersion)
        writer.writeUInt32(0)  // CRC placeholder
        writer.writeInt64(offset.rawValue)
        writer.writeUInt32(boundaryChecksum)
        writer.writeInt32(Int32(producers.count))
        for producerID in producerIDs {
            let entry = producers[producerID]!
            writer.writeInt64(producerID.rawValue)
            writer.writeInt16(entry.producerEpoch.rawValue)
            writer.writeInt64(entry.lastWrittenOffset.rawValue)
            writer.writeUInt8(UInt8(entry.batches.count))
            for batch in entry.batches {
                writer.writeInt32(batch.firstSequence)
                writer.writeInt32(batch.lastSequence)
                writer.writeInt64(batch.firstOffset.rawValue)
                writer.writeInt64(batch.lastOffset.rawValue)
                writer.writeInt64(batch.timestampMilliseconds)
            }
        }
        var bytes = writer.take()
        let crc = CRC32C.checksum(bytes, range: Self.snapshotCRCCoveredStart..<bytes.count)
        bytes.storeBigEndian(crc, at: 6)
        return bytes
    }

    /// The table a snapshot holds; its `endOffset` is the snapshot offset. Damaged or malformed
    /// bytes give a `DecodeError`, never a trap, and no count is trusted before the bytes it
    /// promises have been found to be there.
    public static func decodeSnapshot(_ bytes: [UInt8]) throws(DecodeError) -> ProducerStateTable {
        try decodeSnapshotWithBoundary(bytes).table
    }

    /// The table and the boundary checksum it was written with (see the format above).
    public static func decodeSnapshotWithBoundary(_ bytes: [UInt8]) throws(DecodeError)
        -> (table: ProducerStateTable, boundaryChecksum: UInt32) {
        var reader = ByteReader(bytes)
        let magic = try reader.readBytes(snapshotMagic.count)
        guard magic == snapshotMagic else { throw .invalidValue(position: 0, reason: "not a producer-state snapshot") }
        let version = try reader.readInt16()
        guard version == snapshotVersion else {
            throw .invalidValue(position: 4, reason: "unsupported producer-state snapshot version \(version)")
        }
        let storedCRC = try reader.readUInt32()
        let computedCRC = CRC32C.checksum(bytes, range: snapshotCRCCoveredStart..<bytes.count)
        guard storedCRC == computedCRC else {
            throw .invalidValue(position: 6, reason: "snapshot checksum mismatch: stored \(storedCRC), computed \(computedCRC)")
        }

        let snapshotOffset = Offset(try reader.readInt64())
        guard snapshotOffset >= .zero else { throw .invalidValue(position: 10, reason: "negative snapshot offset") }
        let boundaryChecksum = try reader.readUInt32()
        let countPosition = reader.position
        let producerCount = try reader.readInt32()
        guard producerCount >= 0, Int(producerCount) <= reader.remaining / snapshotProducerSize else {
            throw .invalidValue(position: countPosition, reason: "producer count \(producerCount) does not fit the snapshot")
        }

        var producers: [ProducerID: ProducerStateEntry] = [:]
        producers.reserveCapacity(Int(producerCount))
        var previousID: ProducerID?
        for _ in 0..<producerCount {
            let entryPosition = reader.position
            func invalid(_ reason: String) -> DecodeError { .invalidValue(position: entryPosition, reason: reason) }
            let producerID = ProducerID(try reader.readInt64())
            let epoch = ProducerEpoch(try reader.readInt16())
            let lastWrittenOffset = Offset(try reader.readInt64())
            let batchCount = Int(try reader.readUInt8())
            guard producerID.rawValue >= 0 else { throw invalid("negative producer id") }
            if let previousID, producerID <= previousID { throw invalid("producer ids out of order") }
            previousID = producerID
            guard epoch.rawValue >= 0 else { throw invalid("negative producer epoch") }
            guard lastWrittenOffset >= .zero, lastWrittenOffset < snapshotOffset else {
                throw invalid("last written offset \(lastWrittenOffset) outside the snapshot")
            }
            guard batchCount <= retainedBatchCount else { throw invalid("\(batchCount) batches, at most \(retainedBatchCount) are kept") }
            try reader.require(batchCount * snapshotBatchSize)

            var batches: [ProducerBatchMetadata] = []
            batches.reserveCapacity(batchCount)
            for _ in 0..<batchCount {
                let batch = ProducerBatchMetadata(
                    firstSequence: try reader.readInt32(), lastSequence: try reader.readInt32(),
                    firstOffset: Offset(try reader.readInt64()), lastOffset: Offset(try reader.readInt64()),
                    timestampMilliseconds: try reader.readInt64())
                guard batch.firstOffset >= .zero, batch.firstOffset <= batch.lastOffset,
                      batch.lastOffset <= lastWrittenOffset else {
                    throw invalid("batch offsets \(batch.firstOffset)...\(batch.lastOffset) out of range")
                }
                if let previous = batches.last, previous.lastOffset >= batch.firstOffset {
                    throw invalid("batches out of offset order")
                }
                let offsetDelta = batch.firstOffset.distance(to: batch.lastOffset)
                guard batch.firstSequence >= 0, offsetDelta <= Int64(Int32.max),
                      ProducerSequence.advance(batch.firstSequence, by: Int32(offsetDelta)) == batch.lastSequence else {
                    throw invalid("batch sequences \(batch.firstSequence)...\(batch.lastSequence) do not match its offsets")
                }
                batches.append(batch)
            }
            producers[producerID] = ProducerStateEntry(producerEpoch: epoch, batches: batches, lastWrittenOffset: lastWrittenOffset)
        }
        guard reader.isAtEnd else {
            throw .invalidValue(position: reader.position, reason: "\(reader.remaining) bytes after the last producer")
        }
        return (ProducerStateTable(producers: producers, endOffset: snapshotOffset), boundaryChecksum)
    }
}

/// Where producer-state snapshots live and which to use, as in Kafka: in the partition directory,
/// one file per snapshot named `<20-digit snapshot offset>.snapshot` (e.g.
/// `00000000000000004096.snapshot`), written when a segment rolls and at clean shutdown.
///
/// Recovery and truncation both load the latest snapshot at or below the offset the log ends at
/// (after truncation) and replay the batches from the snapshot offset up to it. Snapshots above a
/// truncation point must be deleted first, or a later restart would load state of removed
/// batches. Keep at least one snapshot at or below the log start offset's segment (or replay from
/// the log start): producers whose batches retention removed live on only in snapshots, and Tern
/// refuses a non-zero sequence from a producer it does not know.
public enum ProducerStateSnapshotFiles {
    public static let suffix = ".snapshot"
    static let digitCount = 20

    public static func fileName(for offset: Offset) -> String {
        precondition(offset >= .zero, "snapshot offsets are never negative")
        let digits = String(offset.rawValue)
        return String(repeating: "0", count: digitCount - digits.count) + digits + suffix
    }

    /// The snapshot offset a file name stands for, or nil when the name is not a snapshot's
    /// (temp files, other files of the partition directory).
    public static func offset(fromFileName name: String) -> Offset? {
        guard name.hasSuffix(suffix) else { return nil }
        let digits = name.utf8.dropLast(suffix.utf8.count)
        guard digits.count == digitCount, digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let value = Int64(String(decoding: digits, as: UTF8.self)) else { return nil }
        return Offset(value)
    }

    /// The snapshot to start from for a log that ends at `logEndOffset`: the latest at or below it.
    public static func snapshotToLoad(forLogEndOffset logEndOffset: Offset, among available: [Offset]) -> Offset? {
        available.filter { $0 <= logEndOffset }.max()
    }

    /// Snapshots that must be deleted when the log is truncated to `offset`, ascending.
    public static func snapshotsToDelete(truncatingTo offset: Offset, among available: [Offset]) -> [Offset] {
        available.filter { $0 > offset }.sorted()
    }
}
