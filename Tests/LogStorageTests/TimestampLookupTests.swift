import KafkaProtocol
import LogStorage
import SimWorld
import TernCore
import Testing

/// ListOffsets by timestamp and KIP-734's max timestamp, against a brute-force reading of every
/// record: many segments, sparse index entries, timestamps that go back now and then (producers'
/// clocks disagree), a moved log start and a high watermark inside the active segment.
@Suite struct TimestampLookupTests {
    let directory = "/data/topic-0"

    func makeLog() throws -> (PartitionLog, SimDisk) {
        var diskConfiguration = SimDisk.Configuration.benignCrashes
        diskConfiguration.directoryCreationIsDurable = true
        let disk = SimDisk(random: DeterministicRandom(seed: 3), configuration: diskConfiguration)
        try disk.makeDirectory("/data")
        var configuration = LogConfiguration()
        configuration.segmentBytes = 4096
        configuration.indexIntervalBytes = 300
        configuration.retentionMilliseconds = -1
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        return (log, disk)
    }

    /// Appends `batches` batches of 1–5 records; each record's timestamp mostly grows, sometimes
    /// steps back by up to a second.
    func fill(_ log: PartitionLog, batches: Int, seed: UInt64) throws {
        var random = DeterministicRandom(seed: seed)
        var clock = testEpoch.milliseconds
        for _ in 0..<batches {
            var builder = RecordBatchBuilder(baseTimestamp: clock)
            for index in 0..<Int(random.next() % 5 + 1) {
                let step = Int64(random.next() % 100)
                let delta = random.next() % 10 == 0 ? -Int64(random.next() % 1000) : step
                clock += step
                builder.append(key: Array("k\(index)".utf8), value: [UInt8](repeating: 7, count: 40),
                               timestampDelta: max(-clock + testEpoch.milliseconds, clock - builder.baseTimestamp + min(0, delta)))
            }
            var bytes = builder.build()
            try log.appendAsLeader(&bytes, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        }
    }

    /// Every record from the log start below `limit`, with its timestamp.
    func allRecords(_ log: PartitionLog, below limit: Offset) throws -> [TimestampedOffset] {
        var records: [TimestampedOffset] = []
        var next = log.logStartOffset
        while next < limit {
            let read = try log.read(from: next, maxBytes: 1 << 20, maximumOffset: limit)
            guard read.batchCount > 0 else { break }
            var position = 0
            while position < read.bytes.count {
                let header = try RecordBatchHeader.validateFraming(read.bytes, at: position)
                var iterator = try RecordIterator(bytes: read.bytes, recordsRange: (position + 61)..<(position + header.totalSize),
                                                  recordsCount: header.recordsCount)
                while let record = try iterator.next() {
                    let offset = Offset(header.baseOffset + Int64(record.offsetDelta))
                    if offset >= log.logStartOffset { records.append(TimestampedOffset(offset: offset, timestamp: header.baseTimestamp + record.timestampDelta)) }
                }
                position += header.totalSize
            }
            next = read.nextOffset
        }
        return records
    }

    func check(_ log: PartitionLog, below limit: Offset) throws {
        let records = try allRecords(log, below: limit)
        let timestamps = Set(records.map(\.timestamp))
        let probes = Array(timestamps) + timestamps.map { $0 + 1 } + timestamps.map { $0 - 1 } + [Int64.min, 0, Int64.max]
        for target in probes.sorted() {
            let expected = records.first { $0.timestamp >= target }
            #expect(try log.offset(forTimestamp: target, below: limit) == expected, "timestamp \(target) below \(limit)")
        }
        let largest = records.map(\.timestamp).max()
        #expect(try log.maxTimestampOffset(below: limit) == largest.flatMap { top in records.first { $0.timestamp == top } }, "max below \(limit), log start \(log.logStartOffset): got \(String(describing: try? log.maxTimestampOffset(below: limit))), largest \(String(describing: largest)), at \(records.filter { $0.timestamp == largest }.map(\.offset))")
    }

    @Test func lookupsAgreeWithReadingEveryRecord() throws {
        let (log, _) = try makeLog()
        try fill(log, batches: 200, seed: 11)
        #expect(log.segmentCount > 5, "the lookups cross segments")
        log.updateHighWatermark(log.logEndOffset)
        try check(log, below: log.logEndOffset)
        try check(log, below: log.logEndOffset - 7)
        try check(log, below: Offset(log.segmentBaseOffsets[3].rawValue + 2))
        log.advanceLogStartOffset(to: Offset(log.segmentBaseOffsets[2].rawValue + 3))
        try check(log, below: log.logEndOffset)
        try check(log, below: log.logStartOffset)
    }

    @Test func logAppendTimeStampsEachBatchWithTheWallClock() throws {
        var diskConfiguration = SimDisk.Configuration.benignCrashes
        diskConfiguration.directoryCreationIsDurable = true
        let disk = SimDisk(random: DeterministicRandom(seed: 4), configuration: diskConfiguration)
        try disk.makeDirectory("/data")
        var configuration = LogConfiguration()
        configuration.messageTimestampType = .logAppendTime
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        let sent = makeBatch(records: 3, timestamp: 1_000)  // a producer clock far in the past
        var first = sent
        let appendedAt = testEpoch + .seconds(5)
        let info = try log.appendAsLeader(&first, leaderEpoch: LeaderEpoch(0), wallClock: appendedAt)
        #expect(info.maxTimestamp == appendedAt.milliseconds)
        var second = makeBatch(records: 2, timestamp: 2_000, seed: 2)
        try log.appendAsLeader(&second, leaderEpoch: LeaderEpoch(0), wallClock: appendedAt + .seconds(1))
        log.updateHighWatermark(log.logEndOffset)

        let stored = try log.read(from: .zero, maxBytes: 1 << 20).bytes
        let header = try RecordBatchHeader.validateFraming(stored)  // the CRC was resealed
        #expect(RecordBatchAttributes(rawValue: header.attributes).timestampType == .logAppendTime)
        #expect(header.maxTimestamp == appendedAt.milliseconds && header.baseTimestamp == 1_000)
        #expect(Array(stored[61..<header.totalSize]) == Array(sent[61...]), "the records are not re-encoded")
        // Every record of a LogAppendTime batch carries the batch's time.
        #expect(try log.offset(forTimestamp: 1_000, below: log.logEndOffset) == TimestampedOffset(offset: .zero, timestamp: appendedAt.milliseconds))
        #expect(try log.offset(forTimestamp: appendedAt.milliseconds + 1, below: log.logEndOffset)
            == TimestampedOffset(offset: Offset(3), timestamp: appendedAt.milliseconds + 1_000))
    }

    @Test func anEmptyLogHasNoTimestamps() throws {
        let (log, _) = try makeLog()
        #expect(try log.offset(forTimestamp: 0, below: log.logEndOffset) == nil)
        #expect(try log.maxTimestampOffset(below: log.logEndOffset) == nil)
    }
}
