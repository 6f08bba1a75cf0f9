import TernCore

/// Builds one uncompressed RecordBatch v2, for tests and for the client's producer.
///
/// Set the header fields, append records, then `build()`: it fills in batchLength,
/// lastOffsetDelta, maxTimestamp (unless given), recordsCount and the CRC. Records are encoded
/// into one growing buffer as they are appended.
///
///     var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
///     builder.append(key: Array("k".utf8), value: Array("v".utf8))
///     let bytes = builder.build()
public struct RecordBatchBuilder: Sendable {
    public var baseOffset: Int64 = 0
    /// -1 until a leader assigns its epoch; librdkafka sends 0, the Java client -1.
    public var partitionLeaderEpoch: Int32 = -1
    /// The compression bits must stay 0: the builder writes records uncompressed.
    public var attributes = RecordBatchAttributes()
    public var baseTimestamp: Int64
    /// nil: the largest record timestamp (baseTimestamp + the largest timestampDelta).
    public var maxTimestamp: Int64?
    public var producerID: Int64 = -1
    public var producerEpoch: Int16 = -1
    public var baseSequence: Int32 = -1

    private var writer: ByteWriter
    public private(set) var recordsCount: Int32 = 0
    private var largestTimestampDelta: Int64?

    public init(baseTimestamp: Int64, capacity: Int = 1024) {
        self.baseTimestamp = baseTimestamp
        writer = ByteWriter(capacity: max(capacity, RecordBatchLayout.headerSize))
        // The header is written last, over this placeholder, once the records are known.
        writer.writeBytes(repeatElement(0, count: RecordBatchLayout.headerSize))
    }

    /// Appends a record at the next offset (offsetDelta = its index).
    public mutating func append(key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = [], timestampDelta: Int64 = 0) {
        append(Record(timestampDelta: timestampDelta, offsetDelta: recordsCount, key: key, value: value, headers: headers))
    }

    /// Appends `record` exactly as given, offsetDelta included, so that tests can also build
    /// batches whose offsetDelta disagrees with the record's index.
    public mutating func append(_ record: Record) {
        precondition(recordsCount < Int32.max, "a record batch holds at most Int32.max records")
        writer.writeVarint(Self.checkedLength(Self.bodySize(of: record)))
        writer.writeInt8(record.attributes)
        writer.writeVarlong(record.timestampDelta)
        writer.writeVarint(record.offsetDelta)
        writeNullable(record.key)
        writeNullable(record.value)
        writer.writeVarint(Self.checkedLength(record.headers.count))
        for header in record.headers {
            writer.writeVarint(Self.checkedLength(header.key.utf8.count))
            writer.writeString(header.key)
            writeNullable(header.value)
        }
        recordsCount += 1
        largestTimestampDelta = max(largestTimestampDelta ?? record.timestampDelta, record.timestampDelta)
    }

    /// The finished batch. The builder stays usable: appending more records and building again
    /// gives a batch with those records too.
    public func build() -> [UInt8] {
        precondition(recordsCount > 0, "a record batch holds at least one record")
        precondition(attributes.compressionCodecID == 0, "the builder writes records uncompressed")
        var bytes = writer.bytes
        precondition(bytes.count - RecordBatchLayout.logOverhead <= Int(Int32.max), "record batch larger than Int32.max bytes")
        bytes.storeBigEndian(baseOffset, at: RecordBatchLayout.baseOffset)
        bytes.storeBigEndian(Int32(bytes.count - RecordBatchLayout.logOverhead), at: RecordBatchLayout.batchLength)
        bytes.storeBigEndian(partitionLeaderEpoch, at: RecordBatchLayout.partitionLeaderEpoch)
        bytes.storeBigEndian(RecordBatchLayout.currentMagic, at: RecordBatchLayout.magic)
        bytes.storeBigEndian(attributes.rawValue, at: RecordBatchLayout.attributes)
        bytes.storeBigEndian(recordsCount - 1, at: RecordBatchLayout.lastOffsetDelta)
        bytes.storeBigEndian(baseTimestamp, at: RecordBatchLayout.baseTimestamp)
        let largestTimestamp = baseTimestamp + (largestTimestampDelta ?? 0)
        bytes.storeBigEndian(maxTimestamp ?? largestTimestamp, at: RecordBatchLayout.maxTimestamp)
        bytes.storeBigEndian(producerID, at: RecordBatchLayout.producerID)
        bytes.storeBigEndian(producerEpoch, at: RecordBatchLayout.producerEpoch)
        bytes.storeBigEndian(baseSequence, at: RecordBatchLayout.baseSequence)
        bytes.storeBigEndian(recordsCount, at: RecordBatchLayout.recordsCount)
        RecordBatchHeader.sealCRC(in: &bytes)
        return bytes
    }

    private mutating func writeNullable(_ data: [UInt8]?) {
        guard let data else { return writer.writeVarint(-1) }
        writer.writeVarint(Self.checkedLength(data.count))
        writer.writeBytes(data)
    }

    /// Bytes of a record after its length prefix, so the prefix is written before the fields
    /// without encoding them twice.
    static func bodySize(of record: Record) -> Int {
        var size = 1 + varintSize(record.timestampDelta) + varintSize(Int64(record.offsetDelta))
        size += nullableSize(record.key) + nullableSize(record.value)
        size += varintSize(Int64(record.headers.count))
        for header in record.headers {
            let keySize = header.key.utf8.count
            size += varintSize(Int64(keySize)) + keySize + nullableSize(header.value)
        }
        return size
    }

    private static func nullableSize(_ data: [UInt8]?) -> Int {
        guard let data else { return varintSize(-1) }
        return varintSize(Int64(data.count)) + data.count
    }

    private static func checkedLength(_ length: Int) -> Int32 {
        precondition(length <= Int(Int32.max), "length \(length) does not fit a record varint")
        return Int32(length)
    }
}
