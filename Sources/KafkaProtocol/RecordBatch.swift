import TernCore

/// The codec named by bits 0–2 of a batch's attributes.
public enum CompressionCodec: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case gzip = 1
    case snappy = 2
    case lz4 = 3
    case zstd = 4

    public var description: String {
        switch self {
        case .none: return "none"
        case .gzip: return "gzip"
        case .snappy: return "snappy"
        case .lz4: return "lz4"
        case .zstd: return "zstd"
        }
    }
}

/// Which clock a batch's timestamps come from (attributes bit 3).
public enum TimestampType: Sendable, Equatable {
    case createTime
    case logAppendTime
}

/// The 16-bit attributes field of a RecordBatch v2, bit by bit. Keeps the raw value so that bits
/// this version does not know (7–15) survive a read and a rewrite unchanged.
public struct RecordBatchAttributes: Equatable, Sendable {
    public var rawValue: Int16

    static let compressionMask: Int16 = 0x07
    static let logAppendTimeBit: Int16 = 0x08
    static let transactionalBit: Int16 = 0x10
    static let controlBit: Int16 = 0x20
    static let deleteHorizonBit: Int16 = 0x40

    public init(rawValue: Int16) { self.rawValue = rawValue }

    public init(compression: CompressionCodec = .none, timestampType: TimestampType = .createTime,
                isTransactional: Bool = false, isControl: Bool = false) {
        rawValue = compression.rawValue
        self.timestampType = timestampType
        self.isTransactional = isTransactional
        self.isControl = isControl
    }

    /// The raw codec number, 0–7; only 0–4 name a codec.
    public var compressionCodecID: Int { Int(rawValue & Self.compressionMask) }

    /// The codec, or nil when the bits name none (5, 6, 7).
    public var compression: CompressionCodec? {
        get { CompressionCodec(rawValue: rawValue & Self.compressionMask) }
        set { rawValue = (rawValue & ~Self.compressionMask) | (newValue ?? .none).rawValue }
    }

    public var timestampType: TimestampType {
        get { rawValue & Self.logAppendTimeBit != 0 ? .logAppendTime : .createTime }
        set { setBit(Self.logAppendTimeBit, newValue == .logAppendTime) }
    }

    public var isTransactional: Bool {
        get { rawValue & Self.transactionalBit != 0 }
        set { setBit(Self.transactionalBit, newValue) }
    }

    public var isControl: Bool {
        get { rawValue & Self.controlBit != 0 }
        set { setBit(Self.controlBit, newValue) }
    }

    /// Set by log compaction once the batch's tombstones have a delete horizon.
    public var hasDeleteHorizon: Bool {
        get { rawValue & Self.deleteHorizonBit != 0 }
        set { setBit(Self.deleteHorizonBit, newValue) }
    }

    private mutating func setBit(_ bit: Int16, _ isSet: Bool) {
        rawValue = isSet ? rawValue | bit : rawValue & ~bit
    }
}

extension RecordBatchHeader {
    public var batchAttributes: RecordBatchAttributes { RecordBatchAttributes(rawValue: attributes) }
}

/// One RecordBatch v2 whose framing and CRC have been checked, viewed in place inside `bytes`.
///
/// Compressed batches (compression bits ≠ 0) are kept opaque: their header, length and CRC are
/// checked like any other, but their records are never decompressed or decoded here.
/// `recordIterator()`, `forEachRecord` and `records()` throw `recordsAreCompressed` for them.
/// A broker does not need the records to assign offsets (the header has them), and a log stores
/// and serves the bytes unchanged.
public struct RecordBatch: Sendable {
    /// The buffer the batch lies in; the batch itself is `range`.
    public let bytes: [UInt8]
    public let start: Int
    public let header: RecordBatchHeader
    public let compression: CompressionCodec

    /// Checks the batch at `start` with `RecordBatchHeader.validateFraming` (magic, length, CRC,
    /// offset-delta/count agreement) and that its compression bits name a codec. Bytes after the
    /// batch are allowed: they belong to the next one.
    public init(_ bytes: [UInt8], at start: Int = 0) throws(RecordBatchError) {
        let header = try RecordBatchHeader.validateFraming(bytes, at: start)
        guard let compression = header.batchAttributes.compression else {
            throw .unsupportedCompression(codecID: header.batchAttributes.compressionCodecID)
        }
        self.bytes = bytes
        self.start = start
        self.header = header
        self.compression = compression
    }

    public var range: Range<Int> { start..<(start + header.totalSize) }
    public var attributes: RecordBatchAttributes { header.batchAttributes }
    public var isCompressed: Bool { compression != .none }

    /// The records section: encoded records if uncompressed, one compressed blob otherwise.
    public var recordsRange: Range<Int> { (start + RecordBatchLayout.headerSize)..<range.upperBound }

    /// Walks the records without copying them. Throws `recordsAreCompressed` for compressed batches.
    public func recordIterator() throws(RecordBatchError) -> RecordIterator {
        guard compression == .none else { throw .recordsAreCompressed(compression) }
        return try RecordIterator(bytes: bytes, recordsRange: recordsRange, recordsCount: header.recordsCount)
    }

    /// Calls `visit` with every record in order, as ranges into `bytes`; allocates nothing. Throws
    /// the first malformation found (and whatever `visit` throws), including bytes left over after
    /// the last record.
    public func forEachRecord(_ visit: (RecordView) throws(RecordBatchError) -> Void) throws(RecordBatchError) {
        var iterator = try recordIterator()
        while let record = try iterator.next() {
            try visit(record)
        }
    }

    /// Every record copied into values; for tests and tools, not for the produce or fetch path.
    public func records() throws(RecordBatchError) -> [Record] {
        var result: [Record] = []
        // recordsCount is untrusted: reserve no more than the bytes could possibly hold.
        result.reserveCapacity(min(Int(header.recordsCount), recordsRange.count / RecordView.minimumEncodedSize))
        try forEachRecord { (view: RecordView) throws(RecordBatchError) in
            result.append(try view.decode(from: bytes))
        }
        return result
    }
}
