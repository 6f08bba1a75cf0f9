import TernCore

/// One record of a batch as plain values: what tests and tools compare and what the builder
/// takes. The produce and fetch paths use `RecordView` instead, which copies nothing.
public struct Record: Equatable, Sendable {
    /// Unused by Kafka so far; always 0 from real clients.
    public var attributes: Int8
    /// Milliseconds after the batch's baseTimestamp.
    public var timestampDelta: Int64
    /// Offset after the batch's baseOffset; equals the record's index in a valid batch.
    public var offsetDelta: Int32
    /// nil is a null key, distinct from an empty one.
    public var key: [UInt8]?
    /// nil is a null value (a tombstone on a compacted topic), distinct from an empty one.
    public var value: [UInt8]?
    public var headers: [RecordHeader]

    public init(attributes: Int8 = 0, timestampDelta: Int64 = 0, offsetDelta: Int32,
                key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = []) {
        self.attributes = attributes
        self.timestampDelta = timestampDelta
        self.offsetDelta = offsetDelta
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// A record header: a non-null UTF-8 key and a nullable value.
public struct RecordHeader: Equatable, Sendable {
    public var key: String
    public var value: [UInt8]?

    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }
}

/// One record of an uncompressed batch, located by ranges into the bytes it was read from.
/// `RecordIterator` returns a view only after checking the whole record, headers included, so
/// every range lies inside the record.
public struct RecordView: Equatable, Sendable {
    /// The smallest encoded record: a one-byte length, then attributes, timestampDelta,
    /// offsetDelta, keyLength, valueLength and headersCount of one byte each.
    public static let minimumEncodedSize = 7

    /// Position of the record in its batch, from 0.
    public let index: Int32
    /// The whole record, its length prefix included.
    public let range: Range<Int>
    public let attributes: Int8
    public let timestampDelta: Int64
    public let offsetDelta: Int32
    /// nil for a null key.
    public let keyRange: Range<Int>?
    /// nil for a null value.
    public let valueRange: Range<Int>?
    public let headersCount: Int32
    /// The encoded headers, after the headersCount varint.
    public let headersRange: Range<Int>

    /// Walks the headers of this record in `bytes` (the buffer the view was read from).
    public func headerIterator(in bytes: [UInt8]) -> RecordHeaderIterator {
        RecordHeaderIterator(bytes: bytes, headersRange: headersRange, headersCount: headersCount, recordIndex: index)
    }

    /// Copies the record out of `bytes` into values. Header keys must be valid UTF-8 here; the
    /// view itself does not look inside keys.
    public func decode(from bytes: [UInt8]) throws(RecordBatchError) -> Record {
        precondition(range.upperBound <= bytes.count, "decoding a record view against a different buffer")
        var headers: [RecordHeader] = []
        headers.reserveCapacity(Int(headersCount))
        var iterator = headerIterator(in: bytes)
        while let header = try iterator.next() {
            guard let key = String(validating: bytes[header.keyRange], as: UTF8.self) else {
                throw .invalidRecord("record \(index): header key at byte \(header.keyRange.lowerBound) is not valid UTF-8")
            }
            headers.append(RecordHeader(key: key, value: header.valueRange.map { Array(bytes[$0]) }))
        }
        return Record(attributes: attributes, timestampDelta: timestampDelta, offsetDelta: offsetDelta,
                      key: keyRange.map { Array(bytes[$0]) }, value: valueRange.map { Array(bytes[$0]) },
                      headers: headers)
    }
}

/// One header of a record, located by ranges into the record's bytes.
public struct RecordHeaderView: Equatable, Sendable {
    public let keyRange: Range<Int>
    /// nil for a null value.
    public let valueRange: Range<Int>?
}

/// Reads the records of an uncompressed records section one at a time, checking each as it goes:
/// lengths inside the section, every field inside its record's declared length, the record's
/// fields consuming exactly that length, and — after `recordsCount` records — nothing left over.
/// Allocates nothing; errors are `RecordBatchError.invalidRecord`.
public struct RecordIterator: Sendable {
    private var reader: ByteReader
    public let recordsCount: Int32
    /// Records returned so far.
    public private(set) var index: Int32 = 0

    /// `recordsRange` must lie inside `bytes`: a records section of a checked batch, or a
    /// decompressed records blob.
    public init(bytes: [UInt8], recordsRange: Range<Int>, recordsCount: Int32) throws(RecordBatchError) {
        guard recordsRange.lowerBound >= 0, recordsRange.upperBound <= bytes.count else {
            throw .truncated(available: bytes.count)
        }
        guard recordsCount >= 0 else { throw .invalidRecord("negative record count \(recordsCount)") }
        reader = ByteReader(bytes, range: recordsRange)
        self.recordsCount = recordsCount
    }

    /// The next record, or nil after `recordsCount` records.
    public mutating func next() throws(RecordBatchError) -> RecordView? {
        guard index < recordsCount else {
            guard reader.isAtEnd else {
                throw .invalidRecord("\(reader.remaining) bytes follow the last of \(recordsCount) records")
            }
            return nil
        }
        do throws(DecodeError) {
            let record = try Self.readRecord(&reader, index: index)
            index += 1
            return record
        } catch {
            throw .invalidRecord("record \(index): \(error)")
        }
    }

    private static func readRecord(_ reader: inout ByteReader, index: Int32) throws(DecodeError) -> RecordView {
        let recordStart = reader.position
        let length = try reader.readVarint()
        guard length >= 0 else { throw .invalidValue(position: recordStart, reason: "negative record length \(length)") }
        // The record's fields are read within its declared length, so a bad length is caught
        // here and cannot make this record's fields spill into the next one.
        let body = try reader.readRange(Int(length))
        var fields = ByteReader(reader.bytes, range: body)
        let attributes = try fields.readInt8()
        let timestampDelta = try fields.readVarlong()
        let offsetDelta = try fields.readVarint()
        let keyRange = try readNullableRange(&fields, what: "key")
        let valueRange = try readNullableRange(&fields, what: "value")
        let headersCountPosition = fields.position
        let headersCount = try fields.readVarint()
        // Every header takes at least two bytes (its two lengths): a cheap bound on the loop.
        guard headersCount >= 0, Int(headersCount) <= fields.remaining / 2 else {
            throw .invalidValue(position: headersCountPosition, reason: "header count \(headersCount) does not fit the record")
        }
        let headersStart = fields.position
        for _ in 0..<headersCount {
            _ = try readHeader(&fields)
        }
        guard fields.isAtEnd else {
            throw .invalidValue(position: fields.position,
                                reason: "record length \(length) leaves \(fields.remaining) bytes after the headers")
        }
        return RecordView(index: index, range: recordStart..<body.upperBound, attributes: attributes,
                          timestampDelta: timestampDelta, offsetDelta: offsetDelta,
                          keyRange: keyRange, valueRange: valueRange,
                          headersCount: headersCount, headersRange: headersStart..<body.upperBound)
    }

    /// A varint length then that many bytes; length -1 is null.
    static func readNullableRange(_ reader: inout ByteReader, what: StaticString) throws(DecodeError) -> Range<Int>? {
        let position = reader.position
        let length = try reader.readVarint()
        if length == -1 { return nil }
        guard length >= 0 else { throw .invalidValue(position: position, reason: "\(what) length \(length)") }
        return try reader.readRange(Int(length))
    }

    static func readHeader(_ reader: inout ByteReader) throws(DecodeError) -> RecordHeaderView {
        let keyPosition = reader.position
        guard let keyRange = try readNullableRange(&reader, what: "header key") else {
            throw .invalidValue(position: keyPosition, reason: "null header key")
        }
        let valueRange = try readNullableRange(&reader, what: "header value")
        return RecordHeaderView(keyRange: keyRange, valueRange: valueRange)
    }
}

/// Reads the headers of one record. The record was checked whole by `RecordIterator`, so errors
/// appear only when the iterator is handed bytes other than the record's own.
public struct RecordHeaderIterator: Sendable {
    private var reader: ByteReader
    private let headersCount: Int32
    private let recordIndex: Int32
    private var index: Int32 = 0

    init(bytes: [UInt8], headersRange: Range<Int>, headersCount: Int32, recordIndex: Int32) {
        reader = ByteReader(bytes, range: headersRange)
        self.headersCount = headersCount
        self.recordIndex = recordIndex
    }

    public mutating func next() throws(RecordBatchError) -> RecordHeaderView? {
        guard index < headersCount else { return nil }
        do throws(DecodeError) {
            let header = try RecordIterator.readHeader(&reader)
            index += 1
            return header
        } catch {
            throw .invalidRecord("record \(recordIndex) header \(index): \(error)")
        }
    }
}
