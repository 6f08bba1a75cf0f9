import KafkaProtocol
import TernCore
import Testing

@Suite struct RecordBatchBuilderTests {
    @Test func headerFieldsAreWrittenWhereTheLayoutSays() throws {
        var builder = sampleBatchBuilder()
        builder.baseOffset = 0
        builder.partitionLeaderEpoch = 9
        builder.producerID = 77
        builder.producerEpoch = 4
        builder.baseSequence = 120
        let bytes = builder.build()
        #expect(bytes.loadBigEndian(Int32.self, at: RecordBatchLayout.batchLength) == Int32(bytes.count - 12))
        #expect(bytes.loadBigEndian(Int32.self, at: RecordBatchLayout.partitionLeaderEpoch) == 9)
        #expect(bytes[RecordBatchLayout.magic] == 2)
        #expect(bytes.loadBigEndian(Int16.self, at: RecordBatchLayout.attributes) == 0)
        #expect(bytes.loadBigEndian(Int32.self, at: RecordBatchLayout.lastOffsetDelta) == 2)
        #expect(bytes.loadBigEndian(Int64.self, at: RecordBatchLayout.baseTimestamp) == 1_700_000_000_000)
        #expect(bytes.loadBigEndian(Int64.self, at: RecordBatchLayout.maxTimestamp) == 1_700_000_000_005)
        #expect(bytes.loadBigEndian(Int64.self, at: RecordBatchLayout.producerID) == 77)
        #expect(bytes.loadBigEndian(Int16.self, at: RecordBatchLayout.producerEpoch) == 4)
        #expect(bytes.loadBigEndian(Int32.self, at: RecordBatchLayout.baseSequence) == 120)
        #expect(bytes.loadBigEndian(Int32.self, at: RecordBatchLayout.recordsCount) == 3)
        let crc = bytes.loadBigEndian(UInt32.self, at: RecordBatchLayout.crc)
        #expect(crc == CRC32C.checksum(bytes, range: RecordBatchLayout.crcCoveredStart..<bytes.count))
        #expect(crc == CRC32C.portableChecksum(Array(bytes[RecordBatchLayout.crcCoveredStart...])))
        _ = try RecordBatch.validateProduce(bytes, maximumMessageBytes: .max)
    }

    @Test func recordsRoundTripThroughTheParser() throws {
        let large = [UInt8](repeating: 0x5A, count: 20_000)  // three-byte length varints
        let records = [
            Record(timestampDelta: 0, offsetDelta: 0, key: nil, value: nil),
            Record(timestampDelta: 1_000_000, offsetDelta: 1, key: [], value: [],
                   headers: [RecordHeader(key: "empty", value: []), RecordHeader(key: "null", value: nil)]),
            Record(timestampDelta: 7, offsetDelta: 2, key: large, value: large,
                   headers: [RecordHeader(key: "ключ", value: large)]),
            Record(attributes: 0, timestampDelta: 3, offsetDelta: 3, key: [0], value: [0xFF]),
        ]
        var builder = RecordBatchBuilder(baseTimestamp: 5)
        for record in records { builder.append(record) }
        #expect(builder.recordsCount == 4)
        let batch = try RecordBatch.validateProduce(builder.build(), maximumMessageBytes: .max)
        #expect(try batch.records() == records)
        #expect(batch.header.maxTimestamp == 1_000_005)
    }

    @Test func explicitMaxTimestampWins() throws {
        var builder = sampleBatchBuilder()
        builder.maxTimestamp = 42
        #expect(try RecordBatch(builder.build()).header.maxTimestamp == 42)
    }

    @Test func builderKeepsWorkingAfterBuild() throws {
        var builder = RecordBatchBuilder(baseTimestamp: 0)
        builder.append(key: nil, value: utf8Bytes("one"))
        let first = try RecordBatch(builder.build())
        builder.append(key: nil, value: utf8Bytes("two"))
        let second = try RecordBatch(builder.build())
        #expect(first.header.recordsCount == 1)
        #expect(second.header.recordsCount == 2)
        #expect(try second.records().map(\.value) == [utf8Bytes("one"), utf8Bytes("two")])
    }

    @Test func attributesKeepUnknownBits() {
        var attributes = RecordBatchAttributes(rawValue: 0x0180)
        attributes.compression = .zstd
        attributes.isTransactional = true
        #expect(attributes.rawValue == 0x0194)
        attributes.isTransactional = false
        attributes.compression = CompressionCodec.none
        #expect(attributes.rawValue == 0x0180)
        #expect(RecordBatchAttributes(rawValue: 0x0006).compression == nil)
        #expect(RecordBatchAttributes(rawValue: 0x0006).compressionCodecID == 6)
        #expect(RecordBatchAttributes(compression: .lz4, timestampType: .logAppendTime, isTransactional: true, isControl: true).rawValue == 0x3B)
    }
}
