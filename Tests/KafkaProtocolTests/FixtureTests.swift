import KafkaProtocol
import TernCore
import Testing

/// Golden tests on batches captured from real clients (kcat and confluent-kafka on librdkafka).
@Suite struct FixtureTests {
    @Test(arguments: Fixture.all)
    func headerMatchesTheCapture(fixture: Fixture) throws {
        let bytes = try fixture.batchBytes()
        let batch = try RecordBatch(bytes)
        let header = batch.header
        #expect(header.baseOffset == 0)
        #expect(header.totalSize == bytes.count)
        #expect(header.magic == 2)
        // librdkafka sends partitionLeaderEpoch 0 (the Java client sends -1).
        #expect(header.partitionLeaderEpoch == 0)
        #expect(batch.compression == fixture.compression)
        #expect(batch.isCompressed == (fixture.compression != .none))
        #expect(!batch.attributes.isTransactional)
        #expect(!batch.attributes.isControl)
        #expect(batch.attributes.timestampType == .createTime)
        #expect(header.recordsCount == Int32(fixture.expectedRecords.count))
        #expect(header.lastOffsetDelta == Int32(fixture.expectedRecords.count - 1))
        #expect(header.producerID == fixture.producerID)
        #expect(header.producerEpoch == fixture.producerEpoch)
        #expect(header.baseSequence == fixture.baseSequence)
        #expect(header.maxTimestamp >= header.baseTimestamp)
        // Captured in 2025 or later, by a clock in milliseconds.
        #expect(header.baseTimestamp > 1_735_689_600_000)
    }

    @Test(arguments: Fixture.all)
    func validatesAsAProduceBatch(fixture: Fixture) throws {
        let bytes = try fixture.batchBytes()
        let batch = try RecordBatch.validateProduce(bytes, maximumMessageBytes: RecordBatch.defaultMaximumMessageBytes)
        #expect(batch.range == 0..<bytes.count)
        #expect(batch.recordsRange == RecordBatchLayout.headerSize..<bytes.count)
    }

    @Test(arguments: Fixture.uncompressed)
    func recordsDecodeToWhatTheClientSent(fixture: Fixture) throws {
        let batch = try RecordBatch(try fixture.batchBytes())
        #expect(try batch.records() == fixture.expectedRecords)
    }

    @Test(arguments: Fixture.uncompressed)
    func visitorGivesRangesOfTheSameRecords(fixture: Fixture) throws {
        let bytes = try fixture.batchBytes()
        let batch = try RecordBatch(bytes)
        var visited: [RecordView] = []
        try batch.forEachRecord { visited.append($0) }
        #expect(visited.count == fixture.expectedRecords.count)
        // Records are back to back and cover the records section exactly.
        var position = batch.recordsRange.lowerBound
        for (index, view) in visited.enumerated() {
            let expected = fixture.expectedRecords[index]
            #expect(view.index == Int32(index))
            #expect(view.range.lowerBound == position)
            #expect(view.offsetDelta == expected.offsetDelta)
            #expect(view.keyRange.map { Array(bytes[$0]) } == expected.key)
            #expect(view.valueRange.map { Array(bytes[$0]) } == expected.value)
            #expect(view.headersCount == Int32(expected.headers.count))
            var headers = view.headerIterator(in: bytes)
            for expectedHeader in expected.headers {
                let header = try #require(try headers.next())
                #expect(Array(bytes[header.keyRange]) == Array(expectedHeader.key.utf8))
                #expect(header.valueRange.map { Array(bytes[$0]) } == expectedHeader.value)
            }
            #expect(try headers.next() == nil)
            position = view.range.upperBound
        }
        #expect(position == batch.recordsRange.upperBound)
    }

    @Test(arguments: Fixture.compressed)
    func compressedRecordsStayOpaque(fixture: Fixture) throws {
        let batch = try RecordBatch(try fixture.batchBytes())
        #expect(throws: RecordBatchError.recordsAreCompressed(.gzip)) { try batch.records() }
        #expect(throws: RecordBatchError.recordsAreCompressed(.gzip)) { try batch.recordIterator() }
        #expect(throws: RecordBatchError.recordsAreCompressed(.gzip)) { try batch.forEachRecord { _ in } }
        #expect(RecordBatchError.recordsAreCompressed(.gzip).description.contains("gzip"))
    }

    /// The decompressed records section (gzip-decompressed by the capture script) holds exactly
    /// the records the client sent, readable by the same iterator.
    @Test(arguments: Fixture.compressed)
    func decompressedRecordsDecode(fixture: Fixture) throws {
        let records = try fixture.decompressedRecords()
        var iterator = try RecordIterator(bytes: records, recordsRange: 0..<records.count,
                                          recordsCount: Int32(fixture.expectedRecords.count))
        var decoded: [Record] = []
        while let view = try iterator.next() { decoded.append(try view.decode(from: records)) }
        #expect(decoded == fixture.expectedRecords)
    }

    /// Rebuilding an uncompressed fixture from its header fields and decoded records gives the
    /// client's bytes back exactly: the builder encodes like librdkafka.
    @Test(arguments: Fixture.uncompressed)
    func builderReproducesTheClientBytes(fixture: Fixture) throws {
        let bytes = try fixture.batchBytes()
        let batch = try RecordBatch(bytes)
        let rebuilt = rebuild(header: batch.header, records: try batch.records())
        #expect(rebuilt == bytes)
        _ = try RecordBatch.validateProduce(rebuilt, maximumMessageBytes: RecordBatch.defaultMaximumMessageBytes)
    }

    /// A compressed fixture's records, rebuilt uncompressed with the same header fields, make a
    /// valid produce batch with the same records.
    @Test(arguments: Fixture.compressed)
    func compressedFixtureRebuildsUncompressed(fixture: Fixture) throws {
        let batch = try RecordBatch(try fixture.batchBytes())
        let rebuilt = rebuild(header: batch.header, records: fixture.expectedRecords)
        let rebuiltBatch = try RecordBatch.validateProduce(rebuilt, maximumMessageBytes: RecordBatch.defaultMaximumMessageBytes)
        #expect(rebuiltBatch.compression == CompressionCodec.none)
        #expect(try rebuiltBatch.records() == fixture.expectedRecords)
        #expect(rebuiltBatch.header.producerID == batch.header.producerID)
        #expect(rebuiltBatch.header.maxTimestamp == batch.header.maxTimestamp)
        // The records section is the decompressed one, byte for byte.
        #expect(Array(rebuilt[rebuiltBatch.recordsRange]) == (try fixture.decompressedRecords()))
    }

    @Test(arguments: Fixture.all)
    func assigningOffsetAndEpochKeepsTheCRCAndEverythingElse(fixture: Fixture) throws {
        let original = try fixture.batchBytes()
        var rewritten = original
        RecordBatchHeader.assign(baseOffset: 1_234_567, partitionLeaderEpoch: 42, in: &rewritten)
        let header = try RecordBatchHeader.validateFraming(rewritten)
        #expect(header.baseOffset == 1_234_567)
        #expect(header.partitionLeaderEpoch == 42)
        #expect(header.lastOffset == 1_234_567 + Int64(fixture.expectedRecords.count - 1))
        var expectedHeader = try RecordBatchHeader.read(original)
        expectedHeader.baseOffset = 1_234_567
        expectedHeader.partitionLeaderEpoch = 42
        #expect(header == expectedHeader)
        // Only bytes 0..<8 and 12..<16 changed.
        for index in original.indices where !(0..<8).contains(index) && !(12..<16).contains(index) {
            #expect(rewritten[index] == original[index], "byte \(index) changed")
        }
        #expect(rewritten[0..<8] != original[0..<8])
        #expect(rewritten[12..<16] != original[12..<16])
        if fixture.compression == .none {
            #expect(try RecordBatch(rewritten).records() == fixture.expectedRecords)
        }
        // A stored batch with a real base offset is no longer a valid client batch.
        #expect(thrownError { try RecordBatch.validateProduce(rewritten, maximumMessageBytes: .max) } == .invalidBaseOffset(1_234_567))
    }

    @Test(arguments: Fixture.all)
    func logAppendTimeRewriteResealsTheCRC(fixture: Fixture) throws {
        var bytes = try fixture.batchBytes()
        RecordBatchHeader.assignLogAppendTime(1_800_000_000_000, in: &bytes)
        let batch = try RecordBatch(bytes)
        #expect(batch.attributes.timestampType == .logAppendTime)
        #expect(batch.header.maxTimestamp == 1_800_000_000_000)
        #expect(batch.compression == fixture.compression)
    }
}
