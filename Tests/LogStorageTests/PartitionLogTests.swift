import KafkaProtocol
import LogStorage
import SimWorld
import TernCore
import Testing

@Suite struct PartitionLogTests {
    let directory = "/data/topic-0"

    /// A disk whose log directory's parent already exists durably, as a configured log.dirs does.
    func makeDisk(seed: UInt64 = 7) -> SimDisk {
        var configuration = SimDisk.Configuration.benignCrashes
        configuration.directoryCreationIsDurable = true
        let disk = SimDisk(random: DeterministicRandom(seed: seed), configuration: configuration)
        try! disk.makeDirectory("/data")
        return disk
    }

    func smallSegments() -> LogConfiguration {
        var configuration = LogConfiguration()
        configuration.segmentBytes = 4096
        configuration.indexIntervalBytes = 256
        return configuration
    }

    @Test func leaderAppendAssignsOffsetsAndEpoch() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var first = makeBatch(records: 3)
        var second = makeBatch(records: 2, seed: 2)
        let a = try log.appendAsLeader(&first, leaderEpoch: LeaderEpoch(4), wallClock: testEpoch)
        let b = try log.appendAsLeader(&second, leaderEpoch: LeaderEpoch(5), wallClock: testEpoch)
        #expect(a.firstOffset == Offset(0) && a.lastOffset == Offset(2))
        #expect(b.firstOffset == Offset(3) && b.lastOffset == Offset(4))
        #expect(log.logEndOffset == Offset(5))
        let read = try log.read(from: Offset(0), maxBytes: 1 << 20)
        let stored = headers(in: read.bytes)
        #expect(stored.map(\.baseOffset) == [0, 3])
        #expect(stored.map(\.partitionLeaderEpoch) == [4, 5])
        #expect(read.bytes == first + second, "stored bytes are the rewritten input, byte for byte")
        #expect(log.leaderEpochs.entries.map(\.epoch) == [LeaderEpoch(4), LeaderEpoch(5)])
    }

    @Test func readStartsWithTheBatchContainingTheOffsetAndHonoursLimits() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, configuration: smallSegments(), disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var sizes: [Int] = []
        for index in 0..<40 {
            var batch = makeBatch(records: 5, valueBytes: 40, seed: UInt64(index))
            sizes.append(batch.count)
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(1), wallClock: testEpoch)
        }
        #expect(log.segmentCount > 3, "4 KiB segments roll")
        // Offset 12 lives in the batch [10, 14].
        let middle = try log.read(from: Offset(12), maxBytes: 1)
        #expect(middle.firstBatchOffset == Offset(10))
        #expect(middle.batchCount == 1, "the first batch is returned whole even over the byte limit")
        let limited = try log.read(from: Offset(0), maxBytes: sizes[0] * 3 + 1)
        #expect(limited.batchCount == 3)
        let bounded = try log.read(from: Offset(0), maxBytes: 1 << 20, maximumOffset: Offset(20))
        #expect(bounded.nextOffset == Offset(20), "no batch reaching the bound (a high watermark) is returned")
        let everything = try log.read(from: Offset(0), maxBytes: 1 << 20)
        #expect(everything.batchCount == 40 && everything.nextOffset == Offset(200), "reads cross segments")
        #expect(try log.read(from: Offset(200), maxBytes: 100).batchCount == 0, "reading at the log end returns nothing")
        #expect(throws: LogError.offsetOutOfRange(requested: Offset(201), logStartOffset: .zero, logEndOffset: Offset(200))) {
            try log.read(from: Offset(201), maxBytes: 100)
        }
    }

    @Test func durableOffsetFollowsSyncCompletions() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var batch = makeBatch(records: 4)
        try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        #expect(log.durableOffset == .zero)
        log.flush()
        #expect(log.durableOffset == .zero, "a sync completes only after its latency")
        settle(log, on: disk)
        #expect(log.durableOffset == Offset(4))
    }

    @Test func cleanReopenTrustsTheIndexAndKeepsState() throws {
        let disk = makeDisk()
        let configuration = smallSegments()
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        for index in 0..<60 {
            var batch = makeBatch(records: 3, valueBytes: 50, seed: UInt64(index))
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(Int32(index / 20)), wallClock: testEpoch)
        }
        log.updateHighWatermark(Offset(150))
        log.flush()
        settle(log, on: disk)
        log.checkpoint()
        settle(log, on: disk)
        let before = try log.read(from: .zero, maxBytes: 1 << 24)
        let epochs = log.leaderEpochs
        log.close()
        disk.crash()
        let reopened = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(reopened, on: disk)
        #expect(reopened.logEndOffset == Offset(180))
        #expect(reopened.highWatermark == Offset(150))
        #expect(reopened.leaderEpochs == epochs)
        #expect(try reopened.read(from: .zero, maxBytes: 1 << 24) == before)
        #expect(reopened.recoveryReport.segmentsScanned == 1, "only the segment holding the recovery point is scanned")
        #expect(reopened.recoveryReport.bytesScanned < Int64(configuration.segmentBytes))
    }

    @Test func unsyncedTailIsLostAndSyncedPrefixKept() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        for index in 0..<5 {
            var batch = makeBatch(records: 2, seed: UInt64(index))
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        }
        log.flush()
        settle(log, on: disk)
        var late = makeBatch(records: 2, seed: 99)
        try log.appendAsLeader(&late, leaderEpoch: LeaderEpoch(1), wallClock: testEpoch)
        disk.crash()
        let reopened = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(reopened, on: disk)
        #expect(reopened.logEndOffset == Offset(10))
        #expect(reopened.leaderEpochs.latestEpoch == LeaderEpoch(0))
    }

    @Test func aReplicaKeepsAnInvalidTailForRepairInsteadOfCuttingIt() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var batch = makeBatch(records: 2, seed: 1)
        try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        log.flush()
        settle(log, on: disk)
        log.close()
        // Half a batch after the synced one: a torn write, or rot of synced bytes; recovery cannot tell.
        let path = directory + "/00000000000000000000.log"
        let file = try disk.open(path, create: false)
        let size = try disk.size(file)
        let torn = makeBatch(records: 2, seed: 2)
        try disk.write(file, at: size, Array(torn[0..<(torn.count / 2)]))
        disk.close(file)

        var configuration = LogConfiguration()
        configuration.keepsInvalidTailForRepair = true
        let kept = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(kept, on: disk)
        let corruption = try #require(kept.corruption, "reported, not cut")
        #expect(corruption.offset == Offset(2) && corruption.position == size)
        #expect(kept.logEndOffset == Offset(2))
        #expect(try disk.size(try disk.open(path, create: false)) > size, "the bytes are still on disk")
        kept.close()

        // Reopened again, it is still reported: the decision survives restarts until discarded.
        let again = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(again, on: disk)
        #expect(again.corruption?.offset == Offset(2))
        try again.discardFromCorruption()
        settle(again, on: disk)
        #expect(again.corruption == nil)
        #expect(try disk.size(try disk.open(path, create: false)) == size)
    }

    @Test func truncationIsADurabilityBarrier() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, configuration: smallSegments(), disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        for index in 0..<30 {
            var batch = makeBatch(records: 2, valueBytes: 60, seed: UInt64(index))
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(Int32(index / 10)), wallClock: testEpoch)
        }
        log.flush()
        settle(log, on: disk)
        #expect(log.durableOffset == Offset(60))
        // Offset 31 is inside the batch [30, 31]: the whole batch goes.
        let end = try log.truncate(to: Offset(31))
        #expect(end == Offset(30))
        #expect(log.durableOffset == Offset(30))
        #expect(log.leaderEpochs.entries.map(\.epoch) == [LeaderEpoch(0), LeaderEpoch(1)])
        #expect(log.hasDurabilityBarrier)
        var blocked = makeBatch(records: 1, seed: 500)
        #expect(throws: LogError.durabilityBarrierPending) { try log.appendAsLeader(&blocked, leaderEpoch: LeaderEpoch(7), wallClock: testEpoch) }
        settle(log, on: disk)
        #expect(!log.hasDurabilityBarrier)
        try log.appendAsLeader(&blocked, leaderEpoch: LeaderEpoch(7), wallClock: testEpoch)
        #expect(log.logEndOffset == Offset(31))
        log.flush()
        settle(log, on: disk)
        log.close()
        disk.crash()
        let reopened = try PartitionLog.open(directory: directory, configuration: smallSegments(), disk: disk, wallClock: testEpoch)
        settle(reopened, on: disk)
        #expect(reopened.logEndOffset == Offset(31))
        #expect(reopened.leaderEpochs.entries.map(\.epoch) == [LeaderEpoch(0), LeaderEpoch(1), LeaderEpoch(7)])
        #expect(reopened.leaderEpochs.endOffset(for: LeaderEpoch(1), logEndOffset: reopened.logEndOffset).endOffset == Offset(30))
    }

    @Test func truncateFullyRestartsTheLog() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var batch = makeBatch(records: 5)
        try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(2), wallClock: testEpoch)
        log.flush()
        settle(log, on: disk)
        try log.truncateFully(startingAt: Offset(1000), wallClock: testEpoch)
        settle(log, on: disk)
        #expect(log.logStartOffset == Offset(1000) && log.logEndOffset == Offset(1000))
        var next = makeBatch(records: 2, epoch: 3, baseOffset: 1000)
        RecordBatchHeader.assign(baseOffset: 1000, partitionLeaderEpoch: 3, in: &next)
        try log.appendAsFollower(next, wallClock: testEpoch)
        log.flush()
        settle(log, on: disk)
        log.close()
        disk.crash()
        let reopened = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(reopened, on: disk)
        #expect(reopened.logStartOffset == Offset(1000))
        #expect(reopened.logEndOffset == Offset(1002))
        #expect(reopened.segmentBaseOffsets == [Offset(1000)])
    }

    @Test func followerAppendRejectsGapsBadChecksumsAndEpochRegressions() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        let first = makeBatch(records: 2, epoch: 5, baseOffset: 0)
        try log.appendAsFollower(first, wallClock: testEpoch)
        let gap = makeBatch(records: 2, epoch: 5, baseOffset: 3)
        #expect(throws: LogError.nonContiguousAppend(expected: Offset(2), received: Offset(3))) { try log.appendAsFollower(gap, wallClock: testEpoch) }
        var corrupt = makeBatch(records: 2, epoch: 5, baseOffset: 2)
        corrupt[corrupt.count - 1] ^= 0x40
        #expect(throws: LogError.self) { try log.appendAsFollower(corrupt, wallClock: testEpoch) }
        let older = makeBatch(records: 1, epoch: 4, baseOffset: 2)
        #expect(throws: LogError.self) { try log.appendAsFollower(older, wallClock: testEpoch) }
        #expect(log.logEndOffset == Offset(2), "rejected appends write nothing")
        let good = makeBatch(records: 1, epoch: 6, baseOffset: 2) + makeBatch(records: 3, epoch: 6, baseOffset: 3)
        let info = try log.appendAsFollower(good, wallClock: testEpoch)
        #expect(info.batchCount == 2 && info.lastOffset == Offset(5))
    }

    @Test func retentionDeletesWholeSegmentsBelowTheHighWatermark() throws {
        let disk = makeDisk()
        var configuration = smallSegments()
        configuration.retentionBytes = 8192
        configuration.retentionMilliseconds = -1
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        for index in 0..<100 {
            var batch = makeBatch(records: 1, valueBytes: 200, seed: UInt64(index))
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        }
        let segmentsBefore = log.segmentCount
        #expect(log.applyRetention(wallClock: testEpoch) == 0, "nothing is deleted above the high watermark")
        log.updateHighWatermark(log.logEndOffset)
        let deleted = log.applyRetention(wallClock: testEpoch)
        #expect(deleted > 0 && log.segmentCount == segmentsBefore - deleted)
        #expect(log.sizeInBytes <= 8192 + 4096)
        #expect(log.logStartOffset == log.segmentBaseOffsets[0])
        #expect(throws: LogError.self) { try log.read(from: .zero, maxBytes: 100) }
    }

    @Test func retentionByTimeUsesRecordTimestamps() throws {
        let disk = makeDisk()
        var configuration = smallSegments()
        configuration.retentionMilliseconds = 60_000
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        let old = testEpoch.milliseconds - 3_600_000
        for index in 0..<30 {
            var batch = makeBatch(records: 1, valueBytes: 300, timestamp: index < 20 ? old : testEpoch.milliseconds, seed: UInt64(index))
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        }
        log.updateHighWatermark(log.logEndOffset)
        log.applyRetention(wallClock: testEpoch)
        #expect(log.logStartOffset > .zero && log.logStartOffset <= Offset(20), "only segments wholly older than retention.ms go")
    }

    @Test func rollsByTime() throws {
        let disk = makeDisk()
        var configuration = LogConfiguration()
        configuration.segmentMilliseconds = 1000
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var first = makeBatch(records: 1, timestamp: testEpoch.milliseconds)
        try log.appendAsLeader(&first, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        var second = makeBatch(records: 1, timestamp: testEpoch.milliseconds)
        try log.appendAsLeader(&second, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch + .milliseconds(500))
        #expect(log.segmentCount == 1)
        var third = makeBatch(records: 1, timestamp: testEpoch.milliseconds)
        try log.appendAsLeader(&third, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch + .milliseconds(1500))
        #expect(log.segmentBaseOffsets == [Offset(0), Offset(2)])
    }

    @Test func tornTailAfterTheRecoveryPointIsCut() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        for index in 0..<4 {
            var batch = makeBatch(records: 2, seed: UInt64(index))
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        }
        log.flush()
        settle(log, on: disk)
        log.close()
        // Simulate a torn write by hand: half a batch at the end of the durable file.
        let path = directory + "/" + "00000000000000000000.log"
        let file = try disk.open(path, create: false)
        let size = try disk.size(file)
        let torn = Array(makeBatch(records: 2, seed: 9, baseOffset: 8).prefix(40))
        try disk.write(file, at: size, torn)
        disk.close(file)
        let reopened = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(reopened, on: disk)
        #expect(reopened.logEndOffset == Offset(8))
        #expect(reopened.recoveryReport.truncatedBytes == 40)
        #expect(reopened.corruption == nil)
    }

    /// Writes ten checkpointed batches, flips one byte inside the fourth (offsets 6-7; by default
    /// in its records, where only the checksum notices; nil flips none), reopens.
    func reopenWithCorruptFourthBatch(indexIntervalBytes: Int, byteInBatch: Int? = 70) throws
        -> (log: PartitionLog, disk: SimDisk, sizes: [Int], path: String) {
        let disk = makeDisk()
        var configuration = smallSegments()
        configuration.indexIntervalBytes = indexIntervalBytes
        let log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var sizes: [Int] = []
        for index in 0..<10 {
            var batch = makeBatch(records: 2, valueBytes: 30, seed: UInt64(index))
            sizes.append(batch.count)
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        }
        log.flush()
        settle(log, on: disk)
        log.checkpoint()
        settle(log, on: disk)
        log.close()
        let path = directory + "/00000000000000000000.log"
        if let byteInBatch {
            let file = try disk.open(path, create: false)
            let position = Int64(sizes[0..<3].reduce(0, +) + byteInBatch)
            var byte = try disk.read(file, at: position, count: 1)
            byte[0] ^= 0xFF
            try disk.write(file, at: position, byte)
            disk.close(file)
        }
        let reopened = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: testEpoch)
        settle(reopened, on: disk)
        return (reopened, disk, sizes, path)
    }

    func expectRefusesPastCorruption(_ log: PartitionLog, disk: SimDisk, sizes: [Int], path: String) throws {
        let corruption = try #require(log.corruption)
        #expect(corruption.file == path)
        #expect(corruption.offset == Offset(6))
        #expect(corruption.position == Int64(sizes[0..<3].reduce(0, +)))
        #expect(corruption.description.contains(path) && corruption.description.contains("offset 6"))
        #expect(try log.read(from: .zero, maxBytes: 1 << 20).nextOffset == Offset(6), "data before the corruption is served")
        #expect(throws: LogError.corrupt(corruption)) { try log.read(from: Offset(6), maxBytes: 100) }
        var more = makeBatch(records: 1)
        #expect(throws: LogError.corrupt(corruption)) { try log.appendAsLeader(&more, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch) }
        let fileSize = try disk.size(try disk.open(path, create: false))
        #expect(fileSize == Int64(sizes.reduce(0, +)), "the data past the corruption is not silently dropped")
    }

    @Test func corruptionInTheRecoveryScanBelowTheRecoveryPointIsReportedNotDropped() throws {
        // No index entries: recovery scans the whole last segment and meets the bad batch.
        let (log, disk, sizes, path) = try reopenWithCorruptFourthBatch(indexIntervalBytes: 1 << 20)
        #expect(log.corruption != nil, "found while opening")
        #expect(log.logEndOffset == Offset(6))
        try expectRefusesPastCorruption(log, disk: disk, sizes: sizes, path: path)
        try log.discardFromCorruption()
        settle(log, on: disk)
        var more = makeBatch(records: 1)
        try log.appendAsLeader(&more, leaderEpoch: LeaderEpoch(1), wallClock: testEpoch)
        #expect(log.logEndOffset == Offset(7))
    }

    @Test func latentCorruptionBelowTheRecoveryPointIsFoundByReads() throws {
        // Dense index: recovery starts at the last indexed batch and trusts what precedes it.
        let (log, disk, sizes, path) = try reopenWithCorruptFourthBatch(indexIntervalBytes: 64)
        #expect(log.corruption == nil, "not read while opening")
        #expect(log.logEndOffset == Offset(20))
        let served = try log.read(from: .zero, maxBytes: 1 << 20)
        #expect(served.nextOffset == Offset(6), "a read stops before the bad batch")
        try expectRefusesPastCorruption(log, disk: disk, sizes: sizes, path: path)
    }

    @Test func latentCorruptionFoundByAReadIsDiscardedWithEverythingAfterIt() throws {
        let (log, disk, _, _) = try reopenWithCorruptFourthBatch(indexIntervalBytes: 64)
        _ = try log.read(from: .zero, maxBytes: 1 << 20)
        #expect(log.corruption != nil)
        try log.discardFromCorruption()
        #expect(log.corruption == nil)
        #expect(log.logEndOffset == Offset(6), "cut at the bad batch")
        settle(log, on: disk)
        var more = makeBatch(records: 1)
        try log.appendAsLeader(&more, leaderEpoch: LeaderEpoch(1), wallClock: testEpoch)
        log.flush()
        settle(log, on: disk)
        let all = try log.read(from: .zero, maxBytes: 1 << 20)
        #expect(all.nextOffset == Offset(7), "the refilled log reads back whole, without the old bad bytes")
    }

    /// A truncation whose scan meets unreadable bytes below the cut keeps them and reports a
    /// corruption, as a read would, instead of cutting the log at them (seed 70 of all: a bad
    /// magic byte in a follower's first batch emptied its log on a one-batch truncation).
    @Test func aTruncationThatMeetsCorruptionBelowTheCutReportsItAndKeepsTheBytes() throws {
        let magicByte = 16
        let (log, disk, sizes, path) = try reopenWithCorruptFourthBatch(indexIntervalBytes: 64, byteInBatch: magicByte)
        #expect(log.corruption == nil, "not read while opening")
        try log.truncate(to: Offset(7))
        let corruption = try #require(log.corruption)
        #expect(corruption.offset == Offset(6) && corruption.position == Int64(sizes[0..<3].reduce(0, +)))
        #expect(log.logEndOffset == Offset(20), "nothing cut at the unreadable batch")
        #expect(try log.read(from: .zero, maxBytes: 1 << 20).nextOffset == Offset(6), "data before it is served")
        settle(log, on: disk)
        try log.discardFromCorruption()
        #expect(log.corruption == nil && log.logEndOffset == Offset(6), "discarded from the bad batch once recorded")
        #expect(try disk.size(try disk.open(path, create: false)) == Int64(sizes[0..<3].reduce(0, +)))
    }

    /// The positive control: the same truncation on an intact log cuts one batch and nothing else.
    @Test func aTruncationOfAnIntactLogCutsAtTheBatchHoldingTheOffset() throws {
        let (log, _, _, _) = try reopenWithCorruptFourthBatch(indexIntervalBytes: 64, byteInBatch: nil)
        try log.truncate(to: Offset(7))
        #expect(log.corruption == nil && log.logEndOffset == Offset(6))
    }

    @Test func checkpointFormatRoundTripsAndNamesTheBadLine() throws {
        let checkpoint = PartitionCheckpoint(logStartOffset: Offset(5), recoveryPoint: Offset(90), highWatermark: Offset(80),
                                             leaderEpochs: [.init(epoch: LeaderEpoch(1), startOffset: Offset(5)),
                                                            .init(epoch: LeaderEpoch(4), startOffset: Offset(40))])
        #expect(try PartitionCheckpoint.decode(checkpoint.encode()) == checkpoint)
        var text = String(decoding: checkpoint.encode(), as: UTF8.self)
        text = text.replacingOccurrences(of: "recovery-point 90", with: "recovery-point ninety")
        #expect(throws: PartitionCheckpoint.FormatError.self) { try PartitionCheckpoint.decode(Array(text.utf8)) }
        do {
            _ = try PartitionCheckpoint.decode(Array(text.utf8))
        } catch {
            #expect(error.line == 3)
        }
        var flipped = checkpoint.encode()
        flipped[flipped.firstIndex(of: UInt8(ascii: "9"))!] = UInt8(ascii: "8")
        #expect(throws: PartitionCheckpoint.FormatError(line: 8, reason: "checksum mismatch")) { try PartitionCheckpoint.decode(flipped) }
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
