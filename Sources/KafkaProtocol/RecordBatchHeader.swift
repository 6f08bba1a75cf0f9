import TernCore

/// The fixed 61-byte header of a Kafka RecordBatch v2 (magic 2). Everything from `attributes`
/// (byte 21) to the end of the batch is covered by the CRC-32C at byte 17; `baseOffset`,
/// `batchLength`, `partitionLeaderEpoch` and `magic` lie outside it, so a broker rewrites the
/// first and third without recomputing the checksum.
public enum RecordBatchLayout {
    public static let baseOffset = 0
    public static let batchLength = 8
    public static let partitionLeaderEpoch = 12
    public static let magic = 16
    public static let crc = 17
    public static let attributes = 21
    public static let lastOffsetDelta = 23
    public static let baseTimestamp = 27
    public static let maxTimestamp = 35
    public static let producerID = 43
    public static let producerEpoch = 51
    public static let baseSequence = 53
    public static let recordsCount = 57
    public static let headerSize = 61
    /// Bytes before `batchLength`'s coverage starts: baseOffset and batchLength themselves.
    public static let logOverhead = 12
    /// The first byte covered by the CRC.
    public static let crcCoveredStart = 21
    public static let currentMagic: Int8 = 2
}

/// The header fields of one RecordBatch v2, read without touching its records.
public struct RecordBatchHeader: Equatable, Sendable {
    public var baseOffset: Int64
    /// Bytes after the batchLength field; the whole batch is `batchLength + 12` bytes.
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerID: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var recordsCount: Int32

    /// Size of the whole batch in bytes, header included.
    public var totalSize: Int { Int(batchLength) + RecordBatchLayout.logOverhead }
    public var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
    public var nextOffset: Int64 { lastOffset + 1 }
    public var compression: Int { Int(attributes & 0x07) }
    public var isTransactional: Bool { attributes & 0x10 != 0 }
    public var isControl: Bool { attributes & 0x20 != 0 }
    public var hasProducer: Bool { producerID >= 0 }

    /// Reads the header at `start` in `bytes`. Checks only that the 61 bytes are there and that
    /// the length field is sane; `validate` checks the rest.
    public static func read(_ bytes: [UInt8], at start: Int = 0) throws(RecordBatchError) -> RecordBatchHeader {
        guard start >= 0, bytes.count - start >= RecordBatchLayout.headerSize else {
            throw .truncated(available: max(0, bytes.count - start))
        }
        let header = bytes.withUnsafeBytes { raw -> RecordBatchHeader in
            func load<T: FixedWidthInteger>(_ field: Int, _: T.Type) -> T {
                T(bigEndian: raw.loadUnaligned(fromByteOffset: start + field, as: T.self))
            }
            return RecordBatchHeader(
                baseOffset: load(RecordBatchLayout.baseOffset, Int64.self),
                batchLength: load(RecordBatchLayout.batchLength, Int32.self),
                partitionLeaderEpoch: load(RecordBatchLayout.partitionLeaderEpoch, Int32.self),
                magic: load(RecordBatchLayout.magic, Int8.self),
                crc: load(RecordBatchLayout.crc, UInt32.self),
                attributes: load(RecordBatchLayout.attributes, Int16.self),
                lastOffsetDelta: load(RecordBatchLayout.lastOffsetDelta, Int32.self),
                baseTimestamp: load(RecordBatchLayout.baseTimestamp, Int64.self),
                maxTimestamp: load(RecordBatchLayout.maxTimestamp, Int64.self),
                producerID: load(RecordBatchLayout.producerID, Int64.self),
                producerEpoch: load(RecordBatchLayout.producerEpoch, Int16.self),
                baseSequence: load(RecordBatchLayout.baseSequence, Int32.self),
                recordsCount: load(RecordBatchLayout.recordsCount, Int32.self))
        }
        guard Int(header.batchLength) >= RecordBatchLayout.headerSize - RecordBatchLayout.logOverhead else {
            throw .invalidLength(header.batchLength)
        }
        return header
    }

    /// The structural checks a log applies to every stored batch: magic, length within `available`,
    /// the CRC over bytes 21..end, and offset-delta/count agreement.
    ///
    /// The CRC is checked before the fields it covers, so any damage to bytes 21..end is reported
    /// as corruption (`crcMismatch`, Kafka's retriable CORRUPT_MESSAGE) and never mistaken for a
    /// malformed batch.
    public static func validateFraming(_ bytes: [UInt8], at start: Int = 0) throws(RecordBatchError) -> RecordBatchHeader {
        let header = try read(bytes, at: start)
        guard header.magic == RecordBatchLayout.currentMagic else { throw .unsupportedMagic(header.magic) }
        guard header.totalSize <= bytes.count - start else {
            throw .truncated(available: bytes.count - start)
        }
        let computed = CRC32C.checksum(bytes, range: (start + RecordBatchLayout.crcCoveredStart)..<(start + header.totalSize))
        guard computed == header.crc else { throw .crcMismatch(stored: header.crc, computed: computed) }
        guard header.recordsCount > 0, header.lastOffsetDelta >= 0,
              Int64(header.lastOffsetDelta) + 1 == Int64(header.recordsCount) else {
            throw .recordCountMismatch(lastOffsetDelta: header.lastOffsetDelta, recordsCount: header.recordsCount)
        }
        return header
    }

    /// Rewrites baseOffset and partitionLeaderEpoch in place; both lie outside the CRC.
    public static func assign(baseOffset: Int64, partitionLeaderEpoch: Int32, in bytes: inout [UInt8], at start: Int = 0) {
        bytes.storeBigEndian(baseOffset, at: start + RecordBatchLayout.baseOffset)
        bytes.storeBigEndian(partitionLeaderEpoch, at: start + RecordBatchLayout.partitionLeaderEpoch)
    }

    /// Recomputes the CRC of the batch at `start` from its `batchLength` and stores it. For bytes
    /// this process wrote or rewrote itself: the batch must lie inside `bytes`.
    public static func sealCRC(in bytes: inout [UInt8], at start: Int = 0) {
        precondition(start >= 0 && bytes.count - start >= RecordBatchLayout.headerSize, "sealing a batch outside the buffer")
        let batchLength = bytes.loadBigEndian(Int32.self, at: start + RecordBatchLayout.batchLength)
        let end = start + RecordBatchLayout.logOverhead + Int(batchLength)
        precondition(batchLength >= 0 && end <= bytes.count, "sealing a batch whose length runs past the buffer")
        let crc = CRC32C.checksum(bytes, range: (start + RecordBatchLayout.crcCoveredStart)..<end)
        bytes.storeBigEndian(crc, at: start + RecordBatchLayout.crc)
    }

    /// A producer restarting its sequence numbers under a new epoch in a partition whose leader
    /// forgot it: sets producerEpoch and baseSequence, inside the CRC, and reseals the CRC.
    public static func assign(producerEpoch: Int16, baseSequence: Int32, in bytes: inout [UInt8], at start: Int = 0) {
        bytes.storeBigEndian(producerEpoch, at: start + RecordBatchLayout.producerEpoch)
        bytes.storeBigEndian(baseSequence, at: start + RecordBatchLayout.baseSequence)
        sealCRC(in: &bytes, at: start)
    }

    /// The LogAppendTime rewrite of a topic with `message.timestamp.type=LogAppendTime`: sets the
    /// timestamp-type bit and maxTimestamp, both inside the CRC, then reseals the CRC. Records
    /// keep their deltas; consumers read every record's time as maxTimestamp.
    public static func assignLogAppendTime(_ timestamp: Int64, in bytes: inout [UInt8], at start: Int = 0) {
        let attributes = bytes.loadBigEndian(Int16.self, at: start + RecordBatchLayout.attributes)
        bytes.storeBigEndian(attributes | RecordBatchAttributes.logAppendTimeBit, at: start + RecordBatchLayout.attributes)
        bytes.storeBigEndian(timestamp, at: start + RecordBatchLayout.maxTimestamp)
        sealCRC(in: &bytes, at: start)
    }
}

/// Why a RecordBatch was refused. Every case maps to a Kafka error code at the protocol edge.
public enum RecordBatchError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated(available: Int)
    case invalidLength(Int32)
    case unsupportedMagic(Int8)
    case crcMismatch(stored: UInt32, computed: UInt32)
    case recordCountMismatch(lastOffsetDelta: Int32, recordsCount: Int32)
    case invalidRecord(String)
    case invalidProducerFields(String)
    case invalidControlBatch(String)
    case tooLarge(size: Int, limit: Int)
    /// A client batch must arrive with baseOffset 0; the leader assigns the real one.
    case invalidBaseOffset(Int64)
    /// Compression bits 5, 6 and 7 name no codec.
    case unsupportedCompression(codecID: Int)
    /// The records of a compressed batch were asked for; Tern keeps such batches opaque.
    case recordsAreCompressed(CompressionCodec)
    /// Record `index` carries offsetDelta `offsetDelta`; in a valid batch the two are equal.
    case recordOffsetMismatch(index: Int32, offsetDelta: Int32)
    /// Bytes followed the batch where exactly one batch was expected (a produce partition).
    case trailingBytes(count: Int)

    public var description: String {
        switch self {
        case let .truncated(available): return "record batch truncated: \(available) bytes available"
        case let .invalidLength(length): return "record batch length \(length) is invalid"
        case let .unsupportedMagic(magic): return "record batch magic \(magic) is not supported (only 2)"
        case let .crcMismatch(stored, computed): return "record batch CRC mismatch: stored \(stored), computed \(computed)"
        case let .recordCountMismatch(delta, count):
            return "lastOffsetDelta \(delta) + 1 does not equal recordsCount \(count)"
        case let .invalidRecord(reason): return "invalid record: \(reason)"
        case let .invalidProducerFields(reason): return "invalid producer fields: \(reason)"
        case let .invalidControlBatch(reason): return "invalid control batch: \(reason)"
        case let .tooLarge(size, limit): return "record batch of \(size) bytes exceeds the limit of \(limit)"
        case let .invalidBaseOffset(offset): return "a client record batch must have baseOffset 0, not \(offset)"
        case let .unsupportedCompression(codecID): return "compression codec \(codecID) is not supported"
        case let .recordsAreCompressed(codec):
            return "the records of a \(codec)-compressed batch are kept opaque and cannot be decoded"
        case let .recordOffsetMismatch(index, offsetDelta):
            return "record \(index) has offsetDelta \(offsetDelta), expected \(index)"
        case let .trailingBytes(count): return "\(count) bytes follow the record batch"
        }
    }
}
