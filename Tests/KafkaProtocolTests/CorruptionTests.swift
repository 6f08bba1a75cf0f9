import KafkaProtocol
import TernCore
import Testing

/// Damaged and hostile batches are refused with a typed error, never a trap.
@Suite struct CorruptionTests {
    /// Every single-bit flip in the CRC-covered bytes (21..end) of every fixture is caught by the
    /// CRC, whatever field the bit belongs to.
    @Test(arguments: Fixture.all)
    func everyBitFlipInTheCoveredRangeIsACRCMismatch(fixture: Fixture) throws {
        let original = try fixture.batchBytes()
        let storedCRC = try RecordBatchHeader.read(original).crc
        var flips = 0
        for index in RecordBatchLayout.crcCoveredStart..<original.count {
            for bit in 0..<8 {
                var damaged = original
                damaged[index] ^= UInt8(1) << bit
                let error = thrownError { try RecordBatchHeader.validateFraming(damaged) }
                guard case let .crcMismatch(stored, computed) = error else {
                    Issue.record("flipping bit \(bit) of byte \(index) gave \(String(describing: error))")
                    continue
                }
                #expect(stored == storedCRC)
                #expect(computed != storedCRC)
                #expect(thrownError { try RecordBatch.validateProduce(damaged, maximumMessageBytes: .max) }?.kafkaErrorCode == .corruptMessage)
                flips += 1
            }
        }
        #expect(flips == (original.count - RecordBatchLayout.crcCoveredStart) * 8)
    }

    /// A flipped bit in the stored CRC itself is caught too.
    @Test func everyBitFlipInTheStoredCRCIsRejected() throws {
        let original = try Fixture.kcatUncompressed.batchBytes()
        for index in RecordBatchLayout.crc..<RecordBatchLayout.crcCoveredStart {
            for bit in 0..<8 {
                var damaged = original
                damaged[index] ^= UInt8(1) << bit
                guard case .crcMismatch = thrownError({ try RecordBatchHeader.validateFraming(damaged) }) else {
                    Issue.record("flipping bit \(bit) of CRC byte \(index) was not refused")
                    continue
                }
            }
        }
    }

    /// Every proper prefix of every fixture is refused as truncated (or as too short a length).
    @Test(arguments: Fixture.all)
    func everyTruncationIsRejected(fixture: Fixture) throws {
        let original = try fixture.batchBytes()
        for length in 0..<original.count {
            let prefix = Array(original[0..<length])
            let framingError = thrownError { try RecordBatchHeader.validateFraming(prefix) }
            #expect(framingError == .truncated(available: length), "prefix of \(length) bytes")
            let produceError = thrownError { try RecordBatch.validateProduce(prefix, maximumMessageBytes: .max) }
            #expect(produceError == .truncated(available: length), "prefix of \(length) bytes")
            #expect(produceError?.kafkaErrorCode == .corruptMessage)
            #expect(thrownError { try RecordBatch(prefix) } == .truncated(available: length))
        }
    }

    /// The records section cut at every length, with batchLength and CRC made to agree with the
    /// cut: framing passes, and the record parser must find the damage on its own.
    @Test(arguments: Fixture.uncompressed)
    func recordsCutAtEveryLengthAreInvalidRecords(fixture: Fixture) throws {
        let original = try fixture.batchBytes()
        for length in RecordBatchLayout.headerSize..<original.count {
            var cut = Array(original[0..<length])
            cut.storeBigEndian(Int32(length - RecordBatchLayout.logOverhead), at: RecordBatchLayout.batchLength)
            RecordBatchHeader.sealCRC(in: &cut)
            let batch = try RecordBatch(cut)
            guard case .invalidRecord = thrownError({ try batch.records() }) else {
                Issue.record("records cut to \(length - RecordBatchLayout.headerSize) bytes were not refused")
                continue
            }
            #expect(thrownError { try RecordBatch.validateProduce(cut, maximumMessageBytes: .max) }?.kafkaErrorCode == .invalidRecord)
        }
    }

    @Test func batchLengthLargerThanTheBufferIsTruncated() throws {
        let original = try Fixture.confluentIdempotent.batchBytes()
        for extra in [1, 2, 1000] {
            // batchLength lies outside the CRC: no resealing needed, or possible.
            var longer = original
            longer.storeBigEndian(Int32(original.count - RecordBatchLayout.logOverhead + extra), at: RecordBatchLayout.batchLength)
            #expect(thrownError { try RecordBatchHeader.validateFraming(longer) } == .truncated(available: original.count))
        }
        var huge = original
        huge.storeBigEndian(Int32.max, at: RecordBatchLayout.batchLength)
        #expect(thrownError { try RecordBatchHeader.validateFraming(huge) } == .truncated(available: original.count))
        #expect(thrownError { try RecordBatch.validateProduce(huge, maximumMessageBytes: .max) } == .truncated(available: original.count))
    }

    @Test func batchLengthShorterThanAHeaderIsInvalid() throws {
        var bytes = try Fixture.kcatUncompressed.batchBytes()
        for length: Int32 in [-1, 0, 48, Int32.min] {
            bytes.storeBigEndian(length, at: RecordBatchLayout.batchLength)
            #expect(thrownError { try RecordBatchHeader.validateFraming(bytes) } == .invalidLength(length))
        }
        #expect(RecordBatchError.invalidLength(0).kafkaErrorCode == .corruptMessage)
    }

    @Test func lastOffsetDeltaMustAgreeWithRecordsCount() throws {
        let bytes = sampleBatchBuilder().build()
        let wrongDelta = patched(bytes, Int32(5), at: RecordBatchLayout.lastOffsetDelta)
        #expect(thrownError { try RecordBatchHeader.validateFraming(wrongDelta) }
            == .recordCountMismatch(lastOffsetDelta: 5, recordsCount: 3))
        let wrongCount = patched(bytes, Int32(2), at: RecordBatchLayout.recordsCount)
        #expect(thrownError { try RecordBatchHeader.validateFraming(wrongCount) }
            == .recordCountMismatch(lastOffsetDelta: 2, recordsCount: 2))
        let noRecords = patched(patched(bytes, Int32(0), at: RecordBatchLayout.recordsCount), Int32(-1), at: RecordBatchLayout.lastOffsetDelta)
        #expect(thrownError { try RecordBatchHeader.validateFraming(noRecords) }
            == .recordCountMismatch(lastOffsetDelta: -1, recordsCount: 0))
        #expect(RecordBatchError.recordCountMismatch(lastOffsetDelta: 5, recordsCount: 3).kafkaErrorCode == .invalidRecord)
    }

    /// recordsCount and lastOffsetDelta agree with each other but not with the records present.
    @Test func recordsCountDisagreeingWithTheRecordsIsInvalid() throws {
        let bytes = sampleBatchBuilder().build()
        let fewer = patched(patched(bytes, Int32(2), at: RecordBatchLayout.recordsCount), Int32(1), at: RecordBatchLayout.lastOffsetDelta)
        guard case let .invalidRecord(reason) = thrownError({ try RecordBatch(fewer).records() }) else {
            Issue.record("a record after the declared count was not refused")
            return
        }
        #expect(reason.contains("follow the last of 2 records"))
        let more = patched(patched(bytes, Int32(4), at: RecordBatchLayout.recordsCount), Int32(3), at: RecordBatchLayout.lastOffsetDelta)
        guard case .invalidRecord = thrownError({ try RecordBatch(more).records() }) else {
            Issue.record("a missing record was not refused")
            return
        }
    }

    @Test func otherMagicIsRefused() throws {
        var bytes = sampleBatchBuilder().build()
        for magic: Int8 in [0, 1, 3, -1] {
            bytes.storeBigEndian(magic, at: RecordBatchLayout.magic)
            #expect(thrownError { try RecordBatchHeader.validateFraming(bytes) } == .unsupportedMagic(magic))
            #expect(thrownError { try RecordBatch.validateProduce(bytes, maximumMessageBytes: .max) } == .unsupportedMagic(magic))
        }
    }

    /// Random damage to the records section, CRC resealed each time so the parser itself is
    /// exercised: every outcome is either records or a typed error. Seeded, so reproducible.
    @Test(arguments: Fixture.uncompressed)
    func randomRecordDamageNeverTraps(fixture: Fixture) throws {
        let original = try fixture.batchBytes()
        var random = DeterministicRandom(seed: 0x7E27_0001)
        var refused = 0
        for _ in 0..<2_000 {
            var damaged = original
            for _ in 0..<random.int(in: 1...4) {
                let index = random.int(in: RecordBatchLayout.headerSize...(original.count - 1))
                damaged[index] = UInt8(truncatingIfNeeded: random.next())
            }
            RecordBatchHeader.sealCRC(in: &damaged)
            if thrownError({ try RecordBatch.validateProduce(damaged, maximumMessageBytes: .max) }) != nil { refused += 1 }
        }
        // Most damage breaks some varint or length; some lands harmlessly inside keys or values.
        #expect(refused > 0)
        #expect(refused < 2_000)
    }

    /// Random bytes after a plausible header: never a trap.
    @Test func randomRecordSectionsNeverTrap() throws {
        var random = DeterministicRandom(seed: 0x7E27_0002)
        for _ in 0..<2_000 {
            var bytes = sampleBatchBuilder().build()
            let tail = random.int(in: 0...64)
            bytes.removeLast(bytes.count - RecordBatchLayout.headerSize)
            var noise = [UInt8](repeating: 0, count: tail)
            random.fill(&noise)
            bytes += noise
            bytes.storeBigEndian(Int32(bytes.count - RecordBatchLayout.logOverhead), at: RecordBatchLayout.batchLength)
            let count = Int32(random.int(in: 1...8))
            bytes.storeBigEndian(count, at: RecordBatchLayout.recordsCount)
            bytes.storeBigEndian(count - 1, at: RecordBatchLayout.lastOffsetDelta)
            RecordBatchHeader.sealCRC(in: &bytes)
            _ = thrownError { try RecordBatch.validateProduce(bytes, maximumMessageBytes: .max) }
            _ = thrownError { try RecordBatch(bytes).records() }
        }
    }
}
