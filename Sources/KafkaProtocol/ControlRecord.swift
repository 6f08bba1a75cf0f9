import TernCore

/// The kind of a transaction marker, from the control record's key.
public enum TransactionMarkerType: Int16, Sendable, CaseIterable {
    case abort = 0
    case commit = 1
}

/// A transaction marker: the single record of a control batch that a transaction coordinator
/// writes to each partition of a transaction when it ends.
///
/// Key: `i16 version (0), i16 type`. Value: `i16 version (0), i32 coordinatorEpoch`. Both are
/// fixed-width big-endian, not varints. Higher versions are read as version 0 and their extra
/// bytes ignored, as Kafka does, so newer markers stay readable.
public struct TransactionMarker: Equatable, Sendable {
    public static let currentKeyVersion: Int16 = 0
    public static let currentValueVersion: Int16 = 0
    static let keySize = 4
    static let valueSize = 6

    public var type: TransactionMarkerType
    public var coordinatorEpoch: Int32

    public init(type: TransactionMarkerType, coordinatorEpoch: Int32) {
        self.type = type
        self.coordinatorEpoch = coordinatorEpoch
    }

    public var keyBytes: [UInt8] {
        var writer = ByteWriter(capacity: Self.keySize)
        writer.writeInt16(Self.currentKeyVersion)
        writer.writeInt16(type.rawValue)
        return writer.take()
    }

    public var valueBytes: [UInt8] {
        var writer = ByteWriter(capacity: Self.valueSize)
        writer.writeInt16(Self.currentValueVersion)
        writer.writeInt32(coordinatorEpoch)
        return writer.take()
    }

    /// Reads a marker from the key and value ranges of a control record in `bytes`.
    public init(bytes: [UInt8], keyRange: Range<Int>?, valueRange: Range<Int>?) throws(RecordBatchError) {
        guard let keyRange, let valueRange else { throw .invalidControlBatch("control record with a null key or value") }
        guard keyRange.lowerBound >= 0, keyRange.upperBound <= bytes.count,
              valueRange.lowerBound >= 0, valueRange.upperBound <= bytes.count else {
            throw .truncated(available: bytes.count)
        }
        do throws(DecodeError) {
            var key = ByteReader(bytes, range: keyRange)
            let keyVersion = try key.readInt16()
            let rawType = try key.readInt16()
            guard keyVersion >= 0 else { throw .invalidValue(position: keyRange.lowerBound, reason: "key version \(keyVersion)") }
            guard let type = TransactionMarkerType(rawValue: rawType) else {
                throw .invalidValue(position: keyRange.lowerBound + 2, reason: "control record type \(rawType) is not a transaction marker")
            }
            var value = ByteReader(bytes, range: valueRange)
            let valueVersion = try value.readInt16()
            guard valueVersion >= 0 else { throw .invalidValue(position: valueRange.lowerBound, reason: "value version \(valueVersion)") }
            self.init(type: type, coordinatorEpoch: try value.readInt32())
        } catch {
            throw .invalidControlBatch("\(error)")
        }
    }

    /// Reads the marker of a control batch: control and transactional bits set, uncompressed, a
    /// producer, and exactly one record.
    public init(batch: RecordBatch) throws(RecordBatchError) {
        let attributes = batch.attributes
        guard attributes.isControl else { throw .invalidControlBatch("the control bit is not set") }
        guard attributes.isTransactional else { throw .invalidControlBatch("a transaction marker batch must be transactional") }
        guard !batch.isCompressed else { throw .invalidControlBatch("a transaction marker batch must not be compressed") }
        guard batch.header.producerID >= 0 else { throw .invalidControlBatch("a transaction marker batch needs a producerId") }
        guard batch.header.recordsCount == 1 else {
            throw .invalidControlBatch("\(batch.header.recordsCount) records; a marker batch has exactly one")
        }
        var iterator = try batch.recordIterator()
        guard let record = try iterator.next() else { throw .invalidControlBatch("no record") }
        try self.init(bytes: batch.bytes, keyRange: record.keyRange, valueRange: record.valueRange)
        // Drains the iterator so bytes after the one record are refused too.
        _ = try iterator.next()
    }

    /// The control batch carrying this marker for `producerID`/`producerEpoch`: transactional
    /// and control bits set, baseSequence -1, one record at offsetDelta 0 with timestamp
    /// `timestamp`.
    public func batch(producerID: Int64, producerEpoch: Int16, baseOffset: Int64 = 0,
                      partitionLeaderEpoch: Int32 = -1, timestamp: Int64) -> [UInt8] {
        precondition(producerID >= 0 && producerEpoch >= 0, "a transaction marker belongs to a producer")
        var builder = RecordBatchBuilder(baseTimestamp: timestamp, capacity: RecordBatchLayout.headerSize + 32)
        builder.baseOffset = baseOffset
        builder.partitionLeaderEpoch = partitionLeaderEpoch
        builder.attributes = RecordBatchAttributes(isTransactional: true, isControl: true)
        builder.producerID = producerID
        builder.producerEpoch = producerEpoch
        builder.baseSequence = -1
        builder.append(key: keyBytes, value: valueBytes)
        return builder.build()
    }
}
