import KafkaProtocol
import LogStorage
import SimWorld
import TernCore
import Testing

/// Moving the log start (retention, DeleteRecords): segment files go only once a checkpoint
/// carries the new start, so a crash at any point leaves a log that starts at one of the two
/// starts and has no gap.
@Suite struct RetentionTests {
    let directory = "/data/topic-0"

    func makeDisk(seed: UInt64 = 7, adversarial: Bool = false) -> SimDisk {
        var configuration = SimDisk.Configuration.benignCrashes
        if adversarial { configuration.crashBehavior = .adversarial }
        configuration.directoryCreationIsDurable = true
        let disk = SimDisk(random: DeterministicRandom(seed: seed), configuration: configuration)
        try! disk.makeDirectory("/data")
        return disk
    }

    func segmentPath(_ base: Offset) -> String {
        let digits = String(base.rawValue)
        return directory + "/" + String(repeating: "0", count: 20 - digits.count) + digits + ".log"
    }

    /// A settled log of 100 one-record batches in 4 KiB segments, committed up to `highWatermark`.
    func makeLog(on disk: SimDisk, retentionBytes: Int64, highWatermark: Offset = Offset(100)) throws -> PartitionLog {
        var configuration = LogConfiguration()
        configuration.segmentBytes = 4096
        configuration.indexIntervalBytes = 256
        configuration.retentionBytes = retentionBytes
        configuration.retentionMilliseconds = -1
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        for index in 0..<100 {
            var batch = makeBatch(records: 1, valueBytes: 200, seed: UInt64(index))
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        }
        log.flush()
        settle(log, on: disk)
        log.updateHighWatermark(highWatermark)
        log.checkpoint()
        settle(log, on: disk)
        return log
    }

    @Test func segmentFilesGoOnceTheCheckpointCarryingTheNewStartIsDurable() throws {
        let disk = makeDisk()
        let log = try makeLog(on: disk, retentionBytes: 8192)
        let bases = log.segmentBaseOffsets
        let deleted = log.applyRetention(wallClock: testEpoch)
        #expect(deleted > 0)
        #expect(log.logStartOffset == bases[deleted])
        #expect(disk.fileExists(segmentPath(bases[0])), "kept until the checkpoint is durable")
        settle(log, on: disk)
        for base in bases.prefix(deleted) { #expect(!disk.fileExists(segmentPath(base))) }
        #expect(disk.fileExists(segmentPath(bases[deleted])))
        log.close()
        let reopened = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        #expect(reopened.logStartOffset == bases[deleted] && reopened.logEndOffset == Offset(100))
    }

    @Test(arguments: [false, true])
    func aCrashAnywhereInRetentionLeavesAContiguousLog(adversarial: Bool) throws {
        for seed in UInt64(1)...40 {
            let disk = makeDisk(seed: seed, adversarial: adversarial)
            let log = try makeLog(on: disk, retentionBytes: 8192)
            var random = DeterministicRandom(seed: seed)
            // A DeleteRecords inside a segment, then retention: two moves, two checkpoints.
            log.advanceLogStartOffset(to: Offset(7))
            let deleted = log.applyRetention(wallClock: testEpoch)
            let newStart = log.logStartOffset
            #expect(deleted > 0)
            deliverSomeCompletions(of: disk, to: log, steps: Int(random.next() % 6))
            disk.crash(using: &random)
            let recovered = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
            let start = recovered.logStartOffset
            #expect(start <= newStart, "seed \(seed): recovered start \(start) past \(newStart)")
            #expect(recovered.logEndOffset == Offset(100), "seed \(seed): committed data lost")
            var offset = start
            while offset < recovered.logEndOffset {
                let read = try recovered.read(from: offset, maxBytes: 1 << 20)
                #expect(read.batchCount > 0 && read.nextOffset > offset, "seed \(seed): nothing readable at \(offset)")
                guard read.nextOffset > offset else { break }
                let first = headers(in: read.bytes).first.map { Offset($0.baseOffset) }
                #expect(first.map { $0 <= offset } ?? false, "seed \(seed): a gap at \(offset)")
                offset = read.nextOffset
            }
        }
    }

    @Test func anExpiredActiveSegmentIsRolledAndDeleted() throws {
        let disk = makeDisk()
        var configuration = LogConfiguration()
        configuration.retentionMilliseconds = 60_000
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        for index in 0..<5 {
            var batch = makeBatch(records: 2, timestamp: testEpoch.milliseconds, seed: UInt64(index))
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        }
        log.flush()
        settle(log, on: disk)
        log.updateHighWatermark(log.logEndOffset)
        #expect(log.applyRetention(wallClock: testEpoch + .seconds(59)) == 0, "not yet expired")
        #expect(log.applyRetention(wallClock: testEpoch + .seconds(61)) == 1)
        #expect(log.logStartOffset == Offset(10) && log.logEndOffset == Offset(10))
        #expect(log.segmentBaseOffsets == [Offset(10)])
        settle(log, on: disk)
        #expect(!disk.fileExists(segmentPath(.zero)))
    }

    @Test func retentionNeverPassesTheHighWatermark() throws {
        let disk = makeDisk()
        let log = try makeLog(on: disk, retentionBytes: 0, highWatermark: Offset(50))
        log.applyRetention(wallClock: testEpoch)
        #expect(log.logStartOffset <= Offset(50) && log.logStartOffset > .zero)
        #expect(log.segmentBaseOffsets.count >= 2, "the segment holding the high watermark stays")
    }

    /// Delivers completions for at most `steps` disk time steps.
    func deliverSomeCompletions(of disk: SimDisk, to log: PartitionLog, steps: Int) {
        var completions: [SyncCompletion] = []
        for _ in 0..<steps {
            disk.pollCompletions(into: &completions)
            for completion in completions { log.handle(completion) }
            completions.removeAll()
            guard let next = disk.nextCompletionTime else { return }
            disk.advance(to: next)
        }
    }
}
