import KafkaProtocol
import TernCore
import Testing

/// `RecordBatch.validateProduce`, one rule at a time, each on an otherwise valid batch.
@Suite struct ProduceValidationTests {
    func validate(_ bytes: [UInt8], maximumMessageBytes: Int = RecordBatch.defaultMaximumMessageBytes) -> RecordBatchError? {
        thrownError { try RecordBatch.validateProduce(bytes, maximumMessageBytes: maximumMessageBytes) }
    }

    @Test func aValidBatchPasses() throws {
        let bytes = sampleBatchBuilder().build()
        let batch = try RecordBatch.validateProduce(bytes, maximumMessageBytes: bytes.count)
        #expect(batch.header.recordsCount == 3)
        #expect(batch.header.baseTimestamp == 1_700_000_000_000)
        #expect(batch.header.maxTimestamp == 1_700_000_000_005)
        #expect(batch.header.producerID == -1)
        #expect(try batch.records().map(\.value) == [utf8Bytes("first"), utf8Bytes("second"), nil])
    }

    @Test func sizeLimitIsTheWholeBatchIncludingLogOverhead() {
        let bytes = sampleBatchBuilder().build()
        #expect(validate(bytes, maximumMessageBytes: bytes.count) == nil)
        #expect(validate(bytes, maximumMessageBytes: bytes.count - 1) == .tooLarge(size: bytes.count, limit: bytes.count - 1))
        #expect(RecordBatchError.tooLarge(size: 2, limit: 1).kafkaErrorCode == .messageTooLarge)
    }

    /// The size limit is checked from the header, before the CRC or the rest of the bytes.
    @Test func sizeLimitComesBeforeTheCRC() {
        var bytes = sampleBatchBuilder().build()
        bytes[bytes.count - 1] ^= 0xFF
        #expect(validate(bytes, maximumMessageBytes: 61) == .tooLarge(size: bytes.count, limit: 61))
        guard case .crcMismatch = validate(bytes) else {
            Issue.record("damaged batch within the limit was not refused by its CRC")
            return
        }
    }

    @Test func baseOffsetMustBeZero() {
        let bytes = patched(sampleBatchBuilder().build(), Int64(7), at: RecordBatchLayout.baseOffset)
        #expect(validate(bytes) == .invalidBaseOffset(7))
        #expect(RecordBatchError.invalidBaseOffset(7).kafkaErrorCode == .invalidRecord)
        // The log's own framing check does not care: stored batches have real offsets.
        #expect(thrownError { try RecordBatchHeader.validateFraming(bytes) } == nil)
    }

    @Test func clientsMayNotWriteControlBatches() {
        let marker = TransactionMarker(type: .commit, coordinatorEpoch: 3)
        let bytes = marker.batch(producerID: 5, producerEpoch: 1, timestamp: 1_700_000_000_000)
        #expect(validate(bytes) == .invalidControlBatch("clients may not write control batches"))
        #expect(validate(bytes)?.kafkaErrorCode == .invalidRecord)
    }

    @Test func producerIDNeedsABaseSequence() {
        var builder = sampleBatchBuilder()
        builder.producerID = 1000
        builder.producerEpoch = 0
        builder.baseSequence = -1
        #expect(validate(builder.build()) == .invalidProducerFields("producerId 1000 with baseSequence -1"))
        builder.baseSequence = 0
        #expect(validate(builder.build()) == nil)
        builder.baseSequence = 17
        #expect(validate(builder.build()) == nil)
    }

    @Test func producerIDNeedsAnEpoch() {
        var builder = sampleBatchBuilder()
        builder.producerID = 1000
        builder.producerEpoch = -1
        builder.baseSequence = 0
        #expect(validate(builder.build()) == .invalidProducerFields("producerId 1000 with producerEpoch -1"))
        #expect(validate(builder.build())?.kafkaErrorCode == .invalidRecord)
    }

    @Test func noProducerIsExactlyMinusOne() {
        var builder = sampleBatchBuilder()
        builder.producerID = -2
        #expect(validate(builder.build()) == .invalidProducerFields("producerId -2 is neither -1 (none) nor a producer id"))
    }

    @Test func transactionalBatchNeedsAProducer() throws {
        var builder = sampleBatchBuilder()
        builder.attributes.isTransactional = true
        #expect(validate(builder.build()) == .invalidProducerFields("transactional batch without a producerId"))
        builder.producerID = 9
        builder.producerEpoch = 2
        builder.baseSequence = 0
        #expect(validate(builder.build()) == nil)
        #expect(try RecordBatch(builder.build()).attributes.isTransactional)
    }

    @Test func offsetDeltaMustEqualTheRecordIndex() {
        var builder = RecordBatchBuilder(baseTimestamp: 0)
        builder.append(Record(offsetDelta: 0, key: nil, value: utf8Bytes("a")))
        builder.append(Record(offsetDelta: 2, key: nil, value: utf8Bytes("b")))
        let bytes = builder.build()
        // Framing alone cannot see it: the header agrees with itself.
        #expect(thrownError { try RecordBatchHeader.validateFraming(bytes) } == nil)
        #expect(validate(bytes) == .recordOffsetMismatch(index: 1, offsetDelta: 2))
        #expect(validate(bytes)?.kafkaErrorCode == .invalidRecord)
    }

    @Test func oneBatchPerPartitionAndNothingAfterIt() {
        let bytes = sampleBatchBuilder().build()
        #expect(validate(bytes + [0]) == .trailingBytes(count: 1))
        #expect(validate(bytes + bytes) == .trailingBytes(count: bytes.count))
        #expect(RecordBatchError.trailingBytes(count: 1).kafkaErrorCode == .invalidRecord)
        // Not an error for a plain read: a log holds batches back to back.
        #expect(thrownError { try RecordBatch(bytes + bytes, at: bytes.count) } == nil)
    }

    @Test func unknownCompressionCodecIsRefused() {
        for codecID in 5...7 {
            let bytes = patched(sampleBatchBuilder().build(), Int16(codecID), at: RecordBatchLayout.attributes)
            #expect(validate(bytes) == .unsupportedCompression(codecID: codecID))
            #expect(thrownError { try RecordBatch(bytes) } == .unsupportedCompression(codecID: codecID))
        }
        #expect(RecordBatchError.unsupportedCompression(codecID: 5).kafkaErrorCode == .unsupportedCompressionType)
    }

    /// A record whose declared length is longer than its fields: the extra byte is refused, not
    /// read as the start of the next record.
    @Test func recordLengthMustMatchItsFields() throws {
        var builder = RecordBatchBuilder(baseTimestamp: 0)
        builder.append(key: utf8Bytes("k"), value: utf8Bytes("v"))
        var bytes = builder.build()
        let recordStart = RecordBatchLayout.headerSize
        var reader = ByteReader(bytes, range: recordStart..<bytes.count)
        let length = try reader.readVarint()
        #expect(reader.position == recordStart + 1)
        bytes[recordStart] = UInt8(truncatingIfNeeded: (length + 1) << 1)
        bytes.append(0)
        bytes.storeBigEndian(Int32(bytes.count - RecordBatchLayout.logOverhead), at: RecordBatchLayout.batchLength)
        RecordBatchHeader.sealCRC(in: &bytes)
        guard case let .invalidRecord(reason) = validate(bytes) else {
            Issue.record("a record longer than its fields was accepted")
            return
        }
        #expect(reason.contains("leaves 1 bytes after the headers"))
    }

    @Test func negativeLengthsAreRefused() throws {
        // One record, hand-encoded: length, attributes, timestampDelta, offsetDelta, key length -2.
        var builder = RecordBatchBuilder(baseTimestamp: 0)
        builder.append(key: [], value: [])
        var bytes = builder.build()
        let keyLengthIndex = RecordBatchLayout.headerSize + 4
        #expect(bytes[keyLengthIndex] == 0)
        bytes[keyLengthIndex] = 0x03  // zig-zag -2
        RecordBatchHeader.sealCRC(in: &bytes)
        guard case let .invalidRecord(reason) = validate(bytes) else {
            Issue.record("key length -2 was accepted")
            return
        }
        #expect(reason.contains("key length -2"))
    }

    @Test func nullHeaderKeyIsRefused() throws {
        var builder = RecordBatchBuilder(baseTimestamp: 0)
        builder.append(key: nil, value: nil, headers: [RecordHeader(key: "", value: nil)])
        var bytes = builder.build()
        // Record: length, attributes, timestampDelta, offsetDelta, key -1, value -1, 1 header,
        // then the header key length (0) at the eighth byte.
        let headerKeyLengthIndex = RecordBatchLayout.headerSize + 7
        #expect(bytes[headerKeyLengthIndex] == 0)
        bytes[headerKeyLengthIndex] = 0x01  // zig-zag -1
        RecordBatchHeader.sealCRC(in: &bytes)
        guard case let .invalidRecord(reason) = validate(bytes) else {
            Issue.record("a null header key was accepted")
            return
        }
        #expect(reason.contains("null header key"))
    }

    @Test func errorCodesMatchKafka() {
        #expect(KafkaErrorCode.corruptMessage.rawValue == 2)
        #expect(KafkaErrorCode.messageTooLarge.rawValue == 10)
        #expect(KafkaErrorCode.invalidRecord.rawValue == 87)
        #expect(KafkaErrorCode.unsupportedCompressionType.rawValue == 76)
        #expect(KafkaErrorCode.unsupportedVersion.rawValue == 35)
        #expect(KafkaErrorCode.transactionAbortable.rawValue == 120)
        #expect(RecordBatchError.crcMismatch(stored: 1, computed: 2).kafkaErrorCode == .corruptMessage)
        #expect(RecordBatchError.truncated(available: 3).kafkaErrorCode == .corruptMessage)
        #expect(RecordBatchError.unsupportedMagic(1).kafkaErrorCode == .invalidRecord)
        #expect(RecordBatchError.invalidRecord("x").kafkaErrorCode == .invalidRecord)
        #expect(RecordBatchError.invalidControlBatch("x").kafkaErrorCode == .invalidRecord)
        #expect(RecordBatchError.recordsAreCompressed(.gzip).kafkaErrorCode == .unknownServerError)
        // Codes are unique.
        #expect(Set(KafkaErrorCode.allCases.map(\.rawValue)).count == KafkaErrorCode.allCases.count)
    }
}
