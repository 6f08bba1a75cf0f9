import Foundation
import KafkaProtocol
import TernCore
import Testing

/// A batch captured from a real client by scripts/capture-record-batches.py, with what the
/// capture put into it. See Fixtures/README.md.
struct Fixture: CustomTestStringConvertible, Sendable {
    let name: String
    let compression: CompressionCodec
    let producerID: Int64
    let producerEpoch: Int16
    let baseSequence: Int32
    let expectedRecords: [Record]

    var testDescription: String { name }

    static let kcatUncompressed = Fixture(name: "kcat-uncompressed", compression: .none,
                                          producerID: -1, producerEpoch: -1, baseSequence: -1,
                                          expectedRecords: kcatRecords)
    static let kcatGzip = Fixture(name: "kcat-gzip", compression: .gzip,
                                  producerID: -1, producerEpoch: -1, baseSequence: -1,
                                  expectedRecords: kcatRecords)
    static let confluentIdempotent = Fixture(name: "confluent-idempotent", compression: .none,
                                             producerID: 1000, producerEpoch: 0, baseSequence: 0,
                                             expectedRecords: confluentRecords)
    static let confluentIdempotentGzip = Fixture(name: "confluent-idempotent-gzip", compression: .gzip,
                                                 producerID: 1000, producerEpoch: 0, baseSequence: 0,
                                                 expectedRecords: confluentRecords)

    static let all: [Fixture] = [kcatUncompressed, kcatGzip, confluentIdempotent, confluentIdempotentGzip]
    static let uncompressed = all.filter { $0.compression == .none }
    static let compressed = all.filter { $0.compression != .none }

    /// The batch as the client sent it.
    func batchBytes() throws -> [UInt8] { try Self.load("\(name).bin") }

    /// For compressed fixtures: the records section after gzip decompression (by the script).
    func decompressedRecords() throws -> [UInt8] { try Self.load("\(name).records") }

    static func load(_ file: String) throws -> [UInt8] {
        let directory = try #require(Bundle.module.resourceURL).appendingPathComponent("Fixtures")
        return [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
    }

    /// `printf 'key-1:value one\nkey-2:value two\n:value with empty key\nkey-4:\n' |
    ///  kcat -P -K: -H trace-id=abc123 -H source=kcat ...`
    static let kcatRecords: [Record] = {
        let headers = [RecordHeader(key: "trace-id", value: utf8Bytes("abc123")), RecordHeader(key: "source", value: utf8Bytes("kcat"))]
        return [
            Record(offsetDelta: 0, key: utf8Bytes("key-1"), value: utf8Bytes("value one"), headers: headers),
            Record(offsetDelta: 1, key: utf8Bytes("key-2"), value: utf8Bytes("value two"), headers: headers),
            // kcat sends an empty key, not a null one, for a line starting with the delimiter.
            Record(offsetDelta: 2, key: [], value: utf8Bytes("value with empty key"), headers: headers),
            Record(offsetDelta: 3, key: utf8Bytes("key-4"), value: [], headers: headers),
        ]
    }()

    /// Five keyed records with two headers each, then a record with a null key and null value.
    static let confluentRecords: [Record] = {
        var records = (0..<5).map { index in
            Record(offsetDelta: Int32(index), key: utf8Bytes("order-\(index)"),
                   value: utf8Bytes(String(repeating: "payload number \(index) ", count: 3)),
                   headers: [RecordHeader(key: "content-type", value: utf8Bytes("text/plain")),
                             RecordHeader(key: "index", value: utf8Bytes("\(index)"))])
        }
        records.append(Record(offsetDelta: 5, key: nil, value: nil))
        return records
    }()
}

func utf8Bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// The batch rebuilt from its header fields and `records`: identical bytes when the records are
/// the batch's own and the builder is right.
func rebuild(header: RecordBatchHeader, records: [Record]) -> [UInt8] {
    var builder = RecordBatchBuilder(baseTimestamp: header.baseTimestamp)
    builder.baseOffset = header.baseOffset
    builder.partitionLeaderEpoch = header.partitionLeaderEpoch
    var attributes = header.batchAttributes
    attributes.compression = CompressionCodec.none
    builder.attributes = attributes
    builder.maxTimestamp = header.maxTimestamp
    builder.producerID = header.producerID
    builder.producerEpoch = header.producerEpoch
    builder.baseSequence = header.baseSequence
    for record in records { builder.append(record) }
    return builder.build()
}

/// A small valid client batch: three records, keys, values, one with headers.
func sampleBatchBuilder() -> RecordBatchBuilder {
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    builder.append(key: utf8Bytes("a"), value: utf8Bytes("first"))
    builder.append(key: nil, value: utf8Bytes("second"), headers: [RecordHeader(key: "h", value: nil)], timestampDelta: 5)
    builder.append(key: utf8Bytes("c"), value: nil, timestampDelta: 3)
    return builder
}

/// Overwrites a big-endian field of the batch at the start of `bytes`, then reseals the CRC so
/// that only the field's own rule can refuse the batch.
func patched<T: FixedWidthInteger>(_ bytes: [UInt8], _ value: T, at offset: Int) -> [UInt8] {
    var copy = bytes
    copy.storeBigEndian(value, at: offset)
    RecordBatchHeader.sealCRC(in: &copy)
    return copy
}

/// The `RecordBatchError` that `body` throws, or nil if it returns. Any other error fails the test.
func thrownError<T>(_ body: () throws -> T, sourceLocation: SourceLocation = #_sourceLocation) -> RecordBatchError? {
    do {
        _ = try body()
        return nil
    } catch let error as RecordBatchError {
        return error
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
