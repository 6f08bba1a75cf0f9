import KafkaProtocol
import LogStorage
import SimWorld
import TernCore
import Testing

/// `partition.metadata`: a partition directory records the id of its topic before any data, and
/// a log opened for another topic refuses it.
@Suite struct PartitionIdentityTests {
    let directory = "/data/orders-0"
    let topicA = "0000000000000001000000000000000a"
    let topicB = "0000000000000002000000000000000b"

    func makeDisk(seed: UInt64 = 11, crashes: SimDisk.Configuration.CrashBehavior = .dropUnsynced) -> SimDisk {
        var configuration = SimDisk.Configuration.benignCrashes
        configuration.crashBehavior = crashes
        configuration.directoryCreationIsDurable = true
        let disk = SimDisk(random: DeterministicRandom(seed: seed), configuration: configuration)
        try! disk.makeDirectory("/data")
        return disk
    }

    func metadataPath() -> String { joinPath(directory, PartitionMetadata.fileName) }

    @Test func theFileRoundTripsAndRejectsDamage() throws {
        let bytes = PartitionMetadata(topicID: topicA).encode()
        #expect(try PartitionMetadata.decode(bytes) == PartitionMetadata(topicID: topicA))
        var flipped = bytes
        flipped[30] ^= 0x01
        #expect(throws: PartitionMetadata.FormatError.self) { try PartitionMetadata.decode(flipped) }
        #expect(throws: PartitionMetadata.FormatError.self) { try PartitionMetadata.decode(Array(bytes.dropLast(3))) }
        #expect(throws: PartitionMetadata.FormatError.self) { try PartitionMetadata.decode(Array("hello\n".utf8)) }
    }

    @Test func aNewLogRecordsItsTopicDurablyBeforeItAcceptsAnAppend() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
        var batch = makeBatch(records: 2)
        #expect(throws: LogError.durabilityBarrierPending) { try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch) }
        #expect(disk.durableContents(of: metadataPath()) == nil)
        settle(log, on: disk)
        let durable = try #require(disk.durableContents(of: metadataPath()))
        #expect(try PartitionMetadata.decode(durable).topicID == topicA)
        try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        #expect(log.logEndOffset == Offset(2))
    }

    @Test func aCrashBeforeTheFileIsDurableLeavesNoData() throws {
        // Power loss after 0 to 5 rounds of sync completions, appends tried after each: whatever
        // the crash keeps, a directory without the topic id holds no record (it is adopted, empty,
        // by whichever topic opens it next), and one with it is refused to any other topic.
        var adoptedEmpty = 0
        var refused = 0
        for seed in UInt64(1)...60 {
            let disk = makeDisk(seed: seed, crashes: .adversarial)
            let log = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
            for _ in 0..<(seed % 6) {
                guard let next = disk.nextCompletionTime else { break }
                disk.advance(to: next)
                var completions: [SyncCompletion] = []
                disk.pollCompletions(into: &completions)
                for completion in completions { log.handle(completion) }
                var batch = makeBatch(records: 2, seed: seed)
                _ = try? log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
                log.flush()
            }
            disk.crash()
            do {
                let reopened = try PartitionLog.open(directory: directory, topicID: topicB, disk: disk, wallClock: testEpoch)
                #expect(reopened.logEndOffset == Offset(0), "seed \(seed): a directory without a durable topic id held records")
                adoptedEmpty += 1
            } catch let error {
                #expect(error == .topicIDMismatch(directory: directory, found: topicA, expected: topicB), "seed \(seed)")
                refused += 1
            }
        }
        #expect(adoptedEmpty > 0 && refused > 0, "both outcomes are exercised")
    }

    @Test func aDirectoryOfAnotherTopicIsRefusedUntouched() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var batch = makeBatch(records: 3)
        try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        log.flush()
        settle(log, on: disk)
        log.checkpoint()
        settle(log, on: disk)
        log.close()
        let before = try disk.listDirectory(directory).map { disk.volatileContents(of: joinPath(directory, $0)) }
        #expect(throws: LogError.topicIDMismatch(directory: directory, found: topicA, expected: topicB)) {
            try PartitionLog.open(directory: directory, topicID: topicB, disk: disk, wallClock: testEpoch)
        }
        #expect(try disk.listDirectory(directory).map { disk.volatileContents(of: joinPath(directory, $0)) } == before)
        let same = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
        #expect(same.logEndOffset == Offset(3))
    }

    @Test func aDirectoryFromBeforeTopicIdsIsAdoptedWithItsData() throws {
        let disk = makeDisk()
        let legacy = try PartitionLog.open(directory: directory, disk: disk, wallClock: testEpoch)
        settle(legacy, on: disk)
        var batch = makeBatch(records: 4)
        try legacy.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        legacy.flush()
        settle(legacy, on: disk)
        legacy.close()
        #expect(!disk.fileExists(metadataPath()))
        let adopted = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
        settle(adopted, on: disk)
        #expect(adopted.logEndOffset == Offset(4))
        #expect(try PartitionMetadata.decode(try #require(disk.durableContents(of: metadataPath()))).topicID == topicA)
    }

    /// A log of topic A with three durable records, a checkpoint (which repeats the topic id) and
    /// its `partition.metadata`, closed.
    func closedLogOfTopicA(on disk: SimDisk) throws {
        let log = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var batch = makeBatch(records: 3)
        try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        log.flush()
        settle(log, on: disk)
        log.checkpoint()
        settle(log, on: disk)
        log.close()
    }

    func overwrite(_ path: String, with bytes: [UInt8], on disk: SimDisk) throws {
        let file = try disk.open(path, create: true)
        try disk.truncate(file, to: 0)
        try disk.write(file, at: 0, bytes)
        disk.close(file)
    }

    @Test func theCheckpointRepeatsTheTopicIdAndReadsWithoutIt() throws {
        let entries = [LeaderEpochCache.Entry(epoch: LeaderEpoch(2), startOffset: Offset(7))]
        let withID = PartitionCheckpoint(logStartOffset: Offset(1), recoveryPoint: Offset(9), highWatermark: Offset(8),
                                         leaderEpochs: entries, topicID: topicA)
        #expect(try PartitionCheckpoint.decode(withID.encode()) == withID)
        let without = PartitionCheckpoint(logStartOffset: Offset(1), recoveryPoint: Offset(9), highWatermark: Offset(8), leaderEpochs: entries)
        #expect(try PartitionCheckpoint.decode(without.encode()) == without)
        #expect(!String(decoding: without.encode(), as: UTF8.self).contains("topic-id"), "a log of no topic writes the format as before")
    }

    @Test func aDamagedTopicIdFileIsRepairedFromTheCheckpointsCopy() throws {
        let disk = makeDisk()
        try closedLogOfTopicA(on: disk)
        try overwrite(metadataPath(), with: Array("tern-partition-metadata 1\nrotten\n".utf8), on: disk)
        let found = try PartitionMetadata.read(directory: directory, disk: disk)
        #expect(found == .topicIDFromCheckpoint(topicA))
        #expect(throws: LogError.topicIDMismatch(directory: directory, found: topicA, expected: topicB)) {
            try PartitionLog.open(directory: directory, topicID: topicB, disk: disk, wallClock: testEpoch)
        }
        let repaired = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
        settle(repaired, on: disk)
        #expect(repaired.logEndOffset == Offset(3) && repaired.corruption == nil)
        #expect(try PartitionMetadata.decode(try #require(disk.durableContents(of: metadataPath()))).topicID == topicA)
    }

    @Test func aRunningLogRepairsEitherCopyOfItsTopicIdFromTheOther() throws {
        let disk = makeDisk()
        let log = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        var batch = makeBatch(records: 2)
        try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: testEpoch)
        log.flush()
        log.checkpoint()
        settle(log, on: disk)
        let checkpointPath = joinPath(directory, PartitionCheckpoint.fileName)
        for damaged in [metadataPath(), checkpointPath] {
            try overwrite(damaged, with: Array("rot".utf8), on: disk)
            log.repairDamagedIdentity()
            settle(log, on: disk)
            #expect(try PartitionMetadata.decode(try #require(disk.durableContents(of: metadataPath()))).topicID == topicA, "\(damaged)")
            #expect(try PartitionCheckpoint.decode(try #require(disk.durableContents(of: checkpointPath))).topicID == topicA, "\(damaged)")
        }
        #expect(log.logEndOffset == Offset(2) && log.failure == nil)
    }

    @Test func aLogWhoseTopicCannotBeReadIsLostDataUntilDiscarded() throws {
        // Both copies unreadable: whose records these are is unknown, so none is served, and the
        // log records its topic only once it has been emptied (after the controller stopped
        // counting on this replica: the broker discards lost data then).
        let disk = makeDisk()
        try closedLogOfTopicA(on: disk)
        try overwrite(metadataPath(), with: [0xFF, 0x00, 0x13], on: disk)
        try overwrite(joinPath(directory, PartitionCheckpoint.fileName), with: Array("garbage".utf8), on: disk)
        let log = try PartitionLog.open(directory: directory, topicID: topicB, disk: disk, wallClock: testEpoch)
        settle(log, on: disk)
        #expect(log.corruption?.offset == Offset(0))
        #expect(log.topicID == nil)
        #expect(throws: LogError.self) { try log.read(from: Offset(0), maxBytes: 1 << 20) }
        var batch = makeBatch(records: 1)
        #expect(throws: LogError.self) { try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(1), wallClock: testEpoch) }
        log.checkpoint()
        settle(log, on: disk)
        let beforeDiscard = try PartitionMetadata.read(directory: directory, disk: disk)
        #expect(beforeDiscard.recordedTopicID == nil, "no checkpoint vouches for the unknown records")

        try log.discardFromCorruption()
        settle(log, on: disk)
        #expect(log.corruption == nil && log.logEndOffset == Offset(0))
        let afterDiscard = try PartitionMetadata.read(directory: directory, disk: disk)
        #expect(afterDiscard == .topicID(topicB))
        try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(1), wallClock: testEpoch)
        #expect(log.logEndOffset == Offset(1))
    }

    @Test func aLogClosedForRemovalWritesNothingMoreUnderItsName() throws {
        // A checkpoint in flight when the log stops must not land, by path, in the directory a
        // new topic of the same name opens there once the old one is moved aside.
        let disk = makeDisk()
        let old = try PartitionLog.open(directory: directory, topicID: topicA, disk: disk, wallClock: testEpoch)
        settle(old, on: disk)
        var batch = makeBatch(records: 5)
        try old.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(3), wallClock: testEpoch)
        old.flush()
        old.checkpoint()
        old.closeForRemoval()
        try disk.rename(directory, to: directory + ".moved-delete")
        let new = try PartitionLog.open(directory: directory, topicID: topicB, disk: disk, wallClock: testEpoch)
        var completions: [SyncCompletion] = []
        while let next = disk.nextCompletionTime {
            disk.advance(to: next)
            disk.pollCompletions(into: &completions)
            for completion in completions where !new.handle(completion) { #expect(!old.handle(completion)) }
            completions.removeAll()
        }
        #expect(new.isIdle)
        new.close()
        let reopened = try PartitionLog.open(directory: directory, topicID: topicB, disk: disk, wallClock: testEpoch)
        #expect(reopened.logEndOffset == Offset(0))
        #expect(reopened.leaderEpochs.latestEpoch == nil, "no epoch of the old log's checkpoint")
    }
}
