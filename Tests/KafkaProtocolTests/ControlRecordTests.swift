import KafkaProtocol
import TernCore
import Testing

@Suite struct ControlRecordTests {
    @Test(arguments: TransactionMarkerType.allCases)
    func markerBatchBuildsAndParses(type: TransactionMarkerType) throws {
        let marker = TransactionMarker(type: type, coordinatorEpoch: 17)
        let bytes = marker.batch(producerID: 4242, producerEpoch: 3, baseOffset: 99,
                                 partitionLeaderEpoch: 5, timestamp: 1_700_000_000_123)
        let batch = try RecordBatch(bytes)
        #expect(batch.attributes.isControl)
        #expect(batch.attributes.isTransactional)
        #expect(batch.compression == CompressionCodec.none)
        #expect(batch.header.attributes == 0x30)
        #expect(batch.header.baseOffset == 99)
        #expect(batch.header.partitionLeaderEpoch == 5)
        #expect(batch.header.producerID == 4242)
        #expect(batch.header.producerEpoch == 3)
        #expect(batch.header.baseSequence == -1)
        #expect(batch.header.recordsCount == 1)
        #expect(batch.header.baseTimestamp == 1_700_000_000_123)
        #expect(batch.header.maxTimestamp == 1_700_000_000_123)
        #expect(try TransactionMarker(batch: batch) == marker)

        let record = try #require(try batch.records().first)
        #expect(record.key == [0, 0, 0, UInt8(type.rawValue)])
        #expect(record.value == [0, 0, 0, 0, 0, 17])
        #expect(record.headers.isEmpty)
        #expect(record.offsetDelta == 0)
    }

    @Test func keyAndValueLayout() {
        let marker = TransactionMarker(type: .commit, coordinatorEpoch: 0x0102_0304)
        #expect(marker.keyBytes == [0x00, 0x00, 0x00, 0x01])
        #expect(marker.valueBytes == [0x00, 0x00, 0x01, 0x02, 0x03, 0x04])
        #expect(TransactionMarker(type: .abort, coordinatorEpoch: -1).keyBytes == [0, 0, 0, 0])
    }

    /// A marker batch written by hand with the builder: the same bytes as `batch(...)`.
    @Test func markerBatchMatchesAHandBuiltOne() {
        let marker = TransactionMarker(type: .abort, coordinatorEpoch: 2)
        var builder = RecordBatchBuilder(baseTimestamp: 10)
        builder.attributes = RecordBatchAttributes(isTransactional: true, isControl: true)
        builder.producerID = 1
        builder.producerEpoch = 0
        builder.append(key: [0, 0, 0, 0], value: [0, 0, 0, 0, 0, 2])
        #expect(marker.batch(producerID: 1, producerEpoch: 0, timestamp: 10) == builder.build())
    }

    /// Newer key and value versions are read as version 0; trailing value bytes are ignored.
    @Test func newerVersionsStillParse() throws {
        let key: [UInt8] = [0, 1, 0, 1]
        let value: [UInt8] = [0, 1, 0, 0, 0, 9, 0xAA, 0xBB]
        let bytes = key + value
        let marker = try TransactionMarker(bytes: bytes, keyRange: 0..<4, valueRange: 4..<bytes.count)
        #expect(marker == TransactionMarker(type: .commit, coordinatorEpoch: 9))
    }

    @Test func malformedMarkersAreRefused() {
        func parse(_ key: [UInt8]?, _ value: [UInt8]?) -> RecordBatchError? {
            let bytes = (key ?? []) + (value ?? [])
            let keyRange = key.map { 0..<$0.count }
            let valueRange = value.map { _ in (key?.count ?? 0)..<bytes.count }
            return thrownError { try TransactionMarker(bytes: bytes, keyRange: keyRange, valueRange: valueRange) }
        }
        let value: [UInt8] = [0, 0, 0, 0, 0, 1]
        #expect(parse(nil, value) == .invalidControlBatch("control record with a null key or value"))
        #expect(parse([0, 0, 0, 1], nil) == .invalidControlBatch("control record with a null key or value"))
        guard case let .invalidControlBatch(shortKey) = parse([0, 0, 0], value) else {
            Issue.record("a three-byte key was accepted")
            return
        }
        #expect(shortKey.contains("truncated"))
        guard case let .invalidControlBatch(otherType) = parse([0, 0, 0, 2], value) else {
            Issue.record("control type 2 was read as a transaction marker")
            return
        }
        #expect(otherType.contains("type 2"))
        guard case .invalidControlBatch = parse([0xFF, 0xFF, 0, 1], value) else {
            Issue.record("a negative key version was accepted")
            return
        }
        guard case .invalidControlBatch = parse([0, 0, 0, 1], [0, 0, 0, 0, 1]) else {
            Issue.record("a five-byte value was accepted")
            return
        }
    }

    @Test func batchLevelRulesForMarkers() throws {
        let marker = TransactionMarker(type: .commit, coordinatorEpoch: 1)
        let good = marker.batch(producerID: 1, producerEpoch: 0, timestamp: 0)

        // Control bit without the transactional bit.
        let notTransactional = patched(good, Int16(0x20), at: RecordBatchLayout.attributes)
        #expect(thrownError { try TransactionMarker(batch: try RecordBatch(notTransactional)) }
            == .invalidControlBatch("a transaction marker batch must be transactional"))

        // An ordinary batch is not a marker.
        let ordinary = try RecordBatch(sampleBatchBuilder().build())
        #expect(thrownError { try TransactionMarker(batch: ordinary) } == .invalidControlBatch("the control bit is not set"))

        // Two records.
        var builder = RecordBatchBuilder(baseTimestamp: 0)
        builder.attributes = RecordBatchAttributes(isTransactional: true, isControl: true)
        builder.producerID = 1
        builder.producerEpoch = 0
        builder.append(key: marker.keyBytes, value: marker.valueBytes)
        builder.append(key: marker.keyBytes, value: marker.valueBytes)
        #expect(thrownError { try TransactionMarker(batch: try RecordBatch(builder.build())) }
            == .invalidControlBatch("2 records; a marker batch has exactly one"))

        // No producer.
        let noProducer = patched(good, Int64(-1), at: RecordBatchLayout.producerID)
        #expect(thrownError { try TransactionMarker(batch: try RecordBatch(noProducer)) }
            == .invalidControlBatch("a transaction marker batch needs a producerId"))
    }
}
