import LogStorage
@testable import SimWorld
@testable import Simulator
import Testing
import TernCore

// MARK: Helpers

private func makeDisk(seed: UInt64 = 1, _ configure: (inout SimDisk.Configuration) -> Void = { _ in }) -> SimDisk {
    var configuration = SimDisk.Configuration()
    configure(&configuration)
    return SimDisk(random: DeterministicRandom(seed: seed), configuration: configuration)
}

/// Runs the disk's clock until `token` completes and returns its completion.
private func waitFor(_ token: SyncToken, on disk: SimDisk) -> SyncCompletion? {
    var completions: [SyncCompletion] = []
    for _ in 0..<100_000 {
        disk.pollCompletions(into: &completions)
        if let completion = completions.first(where: { $0.token == token }) { return completion }
        guard let next = disk.nextCompletionTime else { return nil }
        disk.advance(to: next)
    }
    return nil
}

private func failure(of completion: SyncCompletion?) -> DiskError? {
    if case let .failure(error) = completion?.result { return error }
    return nil
}

private func succeeded(_ completion: SyncCompletion?) -> Bool {
    if case .success = completion?.result { return true }
    return false
}

private func syncAndWait(_ file: DiskFile, on disk: SimDisk) {
    #expect(succeeded(waitFor(disk.sync(file), on: disk)))
}

private func syncDirectoryAndWait(_ path: String, on disk: SimDisk) {
    #expect(succeeded(waitFor(disk.syncDirectory(path), on: disk)))
}

private func readAll(_ disk: SimDisk, _ path: String) throws -> [UInt8] {
    let file = try disk.open(path, create: false)
    defer { disk.close(file) }
    return try disk.read(file, at: 0, count: Int(try disk.size(file)))
}

private func bytes(_ count: Int, _ value: UInt8) -> [UInt8] { [UInt8](repeating: value, count: count) }

private func randomBytes(_ count: Int, _ random: inout DeterministicRandom) -> [UInt8] {
    var result = [UInt8](repeating: 0, count: count)
    random.fill(&result)
    return result
}

/// Creates `/data` and makes it durable, so tests start from a durable directory.
private func prepareDataDirectory(_ disk: SimDisk) throws {
    try disk.makeDirectory("/data")
    syncDirectoryAndWait("/", on: disk)
}

/// Creates `/data/<name>` with `content`, synced, entry synced.
private func makeDurableFile(_ disk: SimDisk, _ name: String, _ content: [UInt8]) throws {
    let file = try disk.open("/data/" + name, create: true)
    try disk.write(file, at: 0, content)
    syncAndWait(file, on: disk)
    syncDirectoryAndWait("/data", on: disk)
    disk.close(file)
}

// MARK: POSIX-like behaviour

@Suite struct SimDiskFileOperationTests {
    @Test func writeReadSizeAndShortReads() throws {
        let disk = makeDisk()
        try prepareDataDirectory(disk)
        let file = try disk.open("/data/a", create: true)
        #expect(try disk.size(file) == 0)
        try disk.write(file, at: 0, [1, 2, 3, 4])
        try disk.write(file, at: 2, [9, 9, 9])
        #expect(try disk.size(file) == 5)
        #expect(try disk.read(file, at: 0, count: 10) == [1, 2, 9, 9, 9])
        #expect(try disk.read(file, at: 3, count: 1) == [9])
        #expect(try disk.read(file, at: 5, count: 4) == [])
        #expect(try disk.read(file, at: 100, count: 4) == [])
        // A write past the end leaves a hole that reads as zeros.
        try disk.write(file, at: 8, [7])
        #expect(try disk.read(file, at: 0, count: 9) == [1, 2, 9, 9, 9, 0, 0, 0, 7])
        // An empty write does not extend the file.
        try disk.write(file, at: 20, [])
        #expect(try disk.size(file) == 9)
        disk.checkInvariants()
    }

    @Test func truncateShrinksAndGrowsWithZeros() throws {
        let disk = makeDisk()
        try prepareDataDirectory(disk)
        let file = try disk.open("data/t", create: true)
        try disk.write(file, at: 0, [1, 2, 3, 4, 5])
        try disk.truncate(file, to: 2)
        #expect(try disk.read(file, at: 0, count: 10) == [1, 2])
        try disk.truncate(file, to: 4)
        #expect(try disk.read(file, at: 0, count: 10) == [1, 2, 0, 0])
        disk.checkInvariants()
    }

    @Test func openErrors() throws {
        let disk = makeDisk()
        try prepareDataDirectory(disk)
        #expect(throws: DiskError.notFound(path: "/data/missing")) { try disk.open("/data/missing", create: false) }
        #expect(throws: DiskError.notFound(path: "/nodir/x")) { try disk.open("/nodir/x", create: true) }
        #expect(throws: DiskError.io(operation: "open", path: "/data", code: 21)) { try disk.open("/data", create: false) }
        #expect(throws: DiskError.self) { try disk.open("/", create: true) }
        #expect(!disk.fileExists("/data/missing"))
        let created = try disk.open("/data/new", create: true)
        #expect(disk.fileExists("/data/new"))
        #expect(disk.fileExists("data/./new"))
        #expect(disk.fileExists("/data"))
        #expect(disk.fileExists("/"))
        // Opening an existing file again gives a fresh handle to the same file.
        let again = try disk.open("/data/new", create: true)
        #expect(again != created)
        try disk.write(created, at: 0, [5])
        #expect(try disk.read(again, at: 0, count: 1) == [5])
    }

    @Test func closedHandlesAreNotOpenAndNeverReused() throws {
        let disk = makeDisk()
        try prepareDataDirectory(disk)
        let first = try disk.open("/data/f", create: true)
        disk.close(first)
        disk.close(first)  // harmless
        #expect(throws: DiskError.notOpen(first)) { try disk.size(first) }
        #expect(throws: DiskError.notOpen(first)) { try disk.write(first, at: 0, [1]) }
        #expect(throws: DiskError.notOpen(first)) { try disk.read(first, at: 0, count: 1) }
        #expect(throws: DiskError.notOpen(first)) { try disk.truncate(first, to: 0) }
        let second = try disk.open("/data/f", create: false)
        #expect(second != first)
        // Syncing a closed handle completes at once with notOpen.
        let token = disk.sync(first)
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
        #expect(completions == [SyncCompletion(token: token, result: .failure(.notOpen(first)))])
    }

    @Test func renameReplacesAtomicallyAndHandlesFollowTheFile() throws {
        let disk = makeDisk()
        try prepareDataDirectory(disk)
        let source = try disk.open("/data/tmp", create: true)
        try disk.write(source, at: 0, [1, 1])
        let replaced = try disk.open("/data/final", create: true)
        try disk.write(replaced, at: 0, [2, 2, 2])
        try disk.rename("/data/tmp", to: "/data/final")
        #expect(!disk.fileExists("/data/tmp"))
        #expect(try readAll(disk, "/data/final") == [1, 1])
        #expect(try disk.listDirectory("/data") == ["final"])
        // The source handle now names /data/final; the replaced file lives on while open.
        try disk.write(source, at: 2, [3])
        #expect(try readAll(disk, "/data/final") == [1, 1, 3])
        #expect(try disk.read(replaced, at: 0, count: 10) == [2, 2, 2])
        // Renaming a name onto itself does nothing; a missing source is notFound.
        try disk.rename("/data/final", to: "/data/final")
        #expect(try readAll(disk, "/data/final") == [1, 1, 3])
        #expect(throws: DiskError.notFound(path: "/data/nothing")) { try disk.rename("/data/nothing", to: "/data/x") }
        #expect(throws: DiskError.notFound(path: "/nodir/x")) { try disk.rename("/data/final", to: "/nodir/x") }
        disk.checkInvariants()
        disk.close(replaced)
        disk.checkInvariants()
    }

    @Test func renameDirectoryRules() throws {
        let disk = makeDisk()
        try disk.makeDirectory("/a/b")
        try disk.makeDirectory("/c")
        let file = try disk.open("/a/b/f", create: true)
        try disk.write(file, at: 0, [4])
        #expect(throws: DiskError.io(operation: "rename", path: "/a/b/inner", code: 22)) { try disk.rename("/a", to: "/a/b/inner") }
        #expect(throws: DiskError.io(operation: "rename", path: "/a/b/f", code: 20)) { try disk.rename("/c", to: "/a/b/f") }
        #expect(throws: DiskError.io(operation: "rename", path: "/c", code: 21)) { try disk.rename("/a/b/f", to: "/c") }
        #expect(throws: DiskError.io(operation: "rename", path: "/a", code: 39)) { try disk.rename("/c", to: "/a") }
        try disk.rename("/a/b", to: "/c")  // onto an empty directory
        #expect(try readAll(disk, "/c/f") == [4])
        #expect(try disk.listDirectory("/a") == [])
        disk.checkInvariants()
    }

    @Test func removeFilesAndDirectories() throws {
        let disk = makeDisk()
        try disk.makeDirectory("/d/sub")
        let file = try disk.open("/d/f", create: true)
        try disk.write(file, at: 0, [1, 2])
        try disk.remove("/d/f")
        #expect(!disk.fileExists("/d/f"))
        #expect(throws: DiskError.notFound(path: "/d/f")) { try disk.remove("/d/f") }
        #expect(throws: DiskError.notFound(path: "/d/f")) { try disk.open("/d/f", create: false) }
        // Still readable through the open handle, like an unlinked file on POSIX.
        #expect(try disk.read(file, at: 0, count: 2) == [1, 2])
        let child = try disk.open("/d/sub/x", create: true)
        disk.close(child)
        #expect(throws: DiskError.io(operation: "remove", path: "/d/sub", code: 39)) { try disk.remove("/d/sub") }
        try disk.remove("/d/sub/x")
        try disk.remove("/d/sub")
        #expect(try disk.listDirectory("/d") == [])
        #expect(throws: DiskError.self) { try disk.remove("/") }
        disk.checkInvariants()
    }

    @Test func listingIsSortedByUTF8Bytes() throws {
        let disk = makeDisk()
        try disk.makeDirectory("/d")
        for name in ["b", "ä", "B", "a", "_x", "10", "9", "a.index", "a.log"] {
            disk.close(try disk.open("/d/" + name, create: true))
        }
        try disk.makeDirectory("/d/zdir")
        #expect(try disk.listDirectory("/d") == ["10", "9", "B", "_x", "a", "a.index", "a.log", "b", "zdir", "ä"])
        #expect(throws: DiskError.notFound(path: "/nope")) { try disk.listDirectory("/nope") }
        #expect(throws: DiskError.io(operation: "listDirectory", path: "/d/b", code: 20)) { try disk.listDirectory("/d/b") }
    }

    @Test func makeDirectoryCreatesParentsAndIsIdempotent() throws {
        let disk = makeDisk()
        try disk.makeDirectory("/x/y/z")
        try disk.makeDirectory("/x/y/z")
        try disk.makeDirectory("x/y")
        #expect(try disk.listDirectory("/") == ["x"])
        #expect(try disk.listDirectory("/x/y") == ["z"])
        disk.close(try disk.open("/x/file", create: true))
        #expect(throws: DiskError.alreadyExists(path: "/x/file")) { try disk.makeDirectory("/x/file/below") }
        disk.checkInvariants()
    }

    @Test func injectedWriteAndReadErrorsChangeNothing() throws {
        let disk = makeDisk { $0.writeFailureProbability = 1; $0.readFailureProbability = 1 }
        try disk.makeDirectory("/d")
        let file = try disk.open("/d/f", create: true)
        #expect(throws: DiskError.io(operation: "write", path: "/d/f", code: 5)) { try disk.write(file, at: 0, [1]) }
        #expect(try disk.size(file) == 0)
        #expect(throws: DiskError.io(operation: "read", path: "/d/f", code: 5)) { try disk.read(file, at: 0, count: 1) }
        #expect(disk.statistics.injectedIOErrors == 2)
    }

    @Test func oversizedWritesAreRefused() throws {
        let disk = makeDisk { $0.maximumFileSize = 100 }
        try disk.makeDirectory("/d")
        let file = try disk.open("/d/f", create: true)
        try disk.write(file, at: 90, bytes(10, 1))
        #expect(throws: DiskError.io(operation: "write", path: "/d/f", code: 27)) { try disk.write(file, at: 91, bytes(10, 1)) }
        #expect(throws: DiskError.io(operation: "truncate", path: "/d/f", code: 27)) { try disk.truncate(file, to: 101) }
        #expect(try disk.size(file) == 100)
    }

    @Test func unreachableFilesAreFreedOnceClosedAndDurablyRemoved() throws {
        let disk = makeDisk()
        try prepareDataDirectory(disk)
        let file = try disk.open("/data/big", create: true)
        try disk.write(file, at: 0, bytes(1 << 20, 7))
        syncAndWait(file, on: disk)
        syncDirectoryAndWait("/data", on: disk)
        let inodesWithFile = disk.inodes.count
        try disk.remove("/data/big")
        syncDirectoryAndWait("/data", on: disk)
        #expect(disk.inodes.count == inodesWithFile)  // still open
        #expect(try disk.size(file) == 1 << 20)
        disk.close(file)
        #expect(disk.inodes.count == inodesWithFile - 1)
        disk.checkInvariants()
    }

    @Test func writebackKeepsPendingOperationsBounded() throws {
        let disk = makeDisk { $0.maximumPendingOperations = 8 }
        try disk.makeDirectory("/d")
        let file = try disk.open("/d/f", create: true)
        for index in 0..<100 {
            try disk.write(file, at: Int64(index), [UInt8(index)])
            #expect(disk.pendingOperationCount <= 8 + 3)  // + the directory's own entries
        }
        #expect(disk.statistics.writebacks > 0)
        #expect(try disk.read(file, at: 0, count: 100) == (0..<100).map { UInt8($0) })
        disk.checkInvariants()
    }
}

// MARK: Sync timing

@Suite struct SimDiskSyncTests {
    @Test func completionArrivesOnlyAfterItsLatency() throws {
        let disk = makeDisk { $0.syncLatency = .milliseconds(5)...(.milliseconds(5)) }
        try disk.makeDirectory("/d")
        let file = try disk.open("/d/f", create: true)
        try disk.write(file, at: 0, [1])
        disk.advance(to: Instant(nanoseconds: 1_000))
        let token = disk.sync(file)
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
        #expect(completions.isEmpty)
        #expect(disk.nextCompletionTime == Instant(nanoseconds: 1_000) + .milliseconds(5))
        disk.advance(to: Instant(nanoseconds: 1_000) + .milliseconds(5) - .nanoseconds(1))
        disk.pollCompletions(into: &completions)
        #expect(completions.isEmpty)
        #expect(!disk.hasCompletionsReady)
        disk.advance(to: Instant(nanoseconds: 1_000) + .milliseconds(5))
        #expect(disk.hasCompletionsReady)
        #expect(disk.nextCompletionTime == nil)  // finished, waiting to be polled
        disk.pollCompletions(into: &completions)
        #expect(completions == [SyncCompletion(token: token, result: .success(()))])
        disk.pollCompletions(into: &completions)
        #expect(completions.count == 1)
        #expect(!disk.hasCompletionsReady)
        #expect(disk.outstandingSyncCount == 0)
    }

    @Test func completionsComeInCompletionOrderAndEachExactlyOnce() throws {
        let disk = makeDisk(seed: 7) { $0.syncLatency = .microseconds(1)...(.milliseconds(10)) }
        try disk.makeDirectory("/d")
        let file = try disk.open("/d/f", create: true)
        var requested: [SyncToken] = []
        for index in 0..<50 {
            try disk.write(file, at: Int64(index), [1])
            requested.append(disk.sync(file))
            disk.advance(to: disk.now + .microseconds(10))
        }
        var received: [(SyncToken, Instant)] = []
        while let next = disk.nextCompletionTime {
            disk.advance(to: next)
            var completions: [SyncCompletion] = []
            disk.pollCompletions(into: &completions)
            for completion in completions { received.append((completion.token, disk.now)) }
        }
        #expect(received.map(\.0).sorted() == requested)
        // Within one instant, ties go by token; across instants, time never goes back.
        for (earlier, later) in zip(received, received.dropFirst()) {
            #expect(earlier.1 < later.1 || (earlier.1 == later.1 && earlier.0 < later.0))
        }
        #expect(received.map(\.0) != requested, "random latencies should reorder some completions")
        disk.checkInvariants()
    }

    @Test func requestOrderCanBeEnforced() throws {
        let disk = makeDisk(seed: 7) {
            $0.syncLatency = .microseconds(1)...(.milliseconds(10))
            $0.syncsCompleteInRequestOrder = true
        }
        try disk.makeDirectory("/d")
        let file = try disk.open("/d/f", create: true)
        var requested: [SyncToken] = []
        for _ in 0..<50 { requested.append(disk.sync(file)) }
        var received: [SyncToken] = []
        while let next = disk.nextCompletionTime {
            disk.advance(to: next)
            var completions: [SyncCompletion] = []
            disk.pollCompletions(into: &completions)
            received += completions.map(\.token)
        }
        #expect(received == requested)
    }

    @Test func syncCoversOnlyOperationsIssuedBeforeTheRequest() throws {
        let disk = makeDisk { $0.crashBehavior = .dropUnsynced }
        try prepareDataDirectory(disk)
        let file = try disk.open("/data/f", create: true)
        syncDirectoryAndWait("/data", on: disk)
        try disk.write(file, at: 0, [1, 2, 3])
        let token = disk.sync(file)
        try disk.write(file, at: 3, [4, 5])
        try disk.truncate(file, to: 1)
        #expect(waitFor(token, on: disk) != nil)
        #expect(disk.durableContents(of: "/data/f") == [1, 2, 3])
        #expect(try disk.read(file, at: 0, count: 10) == [1])
        disk.crash()
        #expect(try readAll(disk, "/data/f") == [1, 2, 3])
    }

    @Test func failedSyncMakesNothingDurable() throws {
        let disk = makeDisk { $0.crashBehavior = .dropUnsynced; $0.syncFailureProbability = 1 }
        try disk.makeDirectory("/data")
        let rootSync = waitFor(disk.syncDirectory("/"), on: disk)
        #expect(failure(of: rootSync) == .io(operation: "fsync", path: "/", code: 5))
        let file = try disk.open("/data/f", create: true)
        try disk.write(file, at: 0, [1, 2, 3])
        let fileSync = waitFor(disk.sync(file), on: disk)
        #expect(failure(of: fileSync) == .io(operation: "fsync", path: "/data/f", code: 5))
        #expect(disk.statistics.syncsFailed == 2)
        #expect(disk.durableListing(of: "/") == [])
        #expect(disk.inodes[disk.openFiles[file]!]!.durableContent == [])
        #expect(disk.pendingOperationCount == 3)  // two directory entries and one write
        disk.crash()
        #expect(!disk.fileExists("/data"))
    }

    @Test func crashDropsOutstandingSyncsForever() throws {
        let disk = makeDisk { $0.syncLatency = .milliseconds(5)...(.milliseconds(5)); $0.crashBehavior = .dropUnsynced }
        try prepareDataDirectory(disk)
        let file = try disk.open("/data/f", create: true)
        try disk.write(file, at: 0, [1])
        _ = disk.sync(file)
        _ = disk.syncDirectory("/data")
        disk.advance(to: disk.now + .milliseconds(1))
        disk.crash()
        #expect(disk.nextCompletionTime == nil)
        disk.advance(to: disk.now + .seconds(1))
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
        #expect(completions.isEmpty)
        #expect(!disk.fileExists("/data/f"))
        #expect(throws: DiskError.notOpen(file)) { try disk.size(file) }
    }

    @Test func syncsDueBeforeACrashAreDurableEvenIfNeverPolled() throws {
        let disk = makeDisk { $0.syncLatency = .milliseconds(5)...(.milliseconds(5)); $0.crashBehavior = .dropUnsynced }
        try prepareDataDirectory(disk)
        let file = try disk.open("/data/f", create: true)
        try disk.write(file, at: 0, [1])
        _ = disk.sync(file)
        _ = disk.syncDirectory("/data")
        disk.advance(to: disk.now + .milliseconds(5))
        disk.crash()
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
        #expect(completions.isEmpty)
        #expect(try readAll(disk, "/data/f") == [1])
    }

    @Test func durableChangesNameWhatChangedUntilTheDiskNoLongerKnows() throws {
        let disk = makeDisk()
        try prepareDataDirectory(disk)
        let start = disk.durableStateVersion
        #expect(disk.durableChanges(after: start) == [])
        let file = try disk.open("/data/f", create: true)
        try disk.write(file, at: 0, [1, 2])
        #expect(disk.durableChanges(after: start) == [], "nothing is durable yet")
        syncAndWait(file, on: disk)
        syncDirectoryAndWait("/data", on: disk)
        disk.close(file)
        #expect(disk.durableChanges(after: start) == [DurableChange(path: "/data/f", isEntry: true), DurableChange(path: "/data/f", isEntry: false)],
                "newest first")
        let created = disk.durableStateVersion
        try disk.rename("/data/f", to: "/data/g")
        syncDirectoryAndWait("/data", on: disk)
        #expect(Set(disk.durableChanges(after: created) ?? []) == [DurableChange(path: "/data/f", isEntry: true),
                                                                   DurableChange(path: "/data/g", isEntry: true)])
        disk.crash()
        #expect(disk.durableChanges(after: created) == nil, "a crash may have changed anything")
        let crashed = disk.durableStateVersion
        let reopened = try disk.open("/data/g", create: false)
        for index in 0...SimDisk.durableChangeLogCapacity {
            try disk.write(reopened, at: Int64(index), [3])
            syncAndWait(reopened, on: disk)
        }
        #expect(disk.durableChanges(after: crashed) == nil, "more changes than the disk keeps track of")
        let recent = disk.durableStateVersion
        try disk.write(reopened, at: 0, [4])
        syncAndWait(reopened, on: disk)
        #expect(disk.durableChanges(after: recent) == [DurableChange(path: "/data/g", isEntry: false)])
        disk.close(reopened)
    }

    @Test func syncOfMissingDirectoryFails() {
        let disk = makeDisk()
        let token = disk.syncDirectory("/nope")
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
        #expect(completions == [SyncCompletion(token: token, result: .failure(.notFound(path: "/nope")))])
    }
}

// MARK: Crashes

@Suite struct SimDiskCrashTests {
    /// An append-only file written and synced at random; tracks what the test itself saw synced.
    private struct AppendRun {
        var expected: [UInt8] = []
        var boundaries: Set<Int> = [0]
        var syncedLength = 0
        var afterCrash: [UInt8] = []
    }

    private func appendRun(seed: UInt64, configure: (inout SimDisk.Configuration) -> Void) throws -> (AppendRun, SimDisk) {
        let disk = makeDisk(seed: seed, configure)
        var workload = DeterministicRandom(seed: seed).stream("workload")
        try prepareDataDirectory(disk)
        let file = try disk.open("/data/log", create: true)
        syncDirectoryAndWait("/data", on: disk)
        var run = AppendRun()
        var lengthAtRequest: [SyncToken: Int] = [:]
        var completions: [SyncCompletion] = []
        for _ in 0..<40 {
            switch workload.int(in: 0...9) {
            case 0...5:
                let chunk = randomBytes(workload.int(in: 1...700), &workload)
                try disk.write(file, at: Int64(run.expected.count), chunk)
                run.expected += chunk
                run.boundaries.insert(run.expected.count)
            case 6...7:
                lengthAtRequest[disk.sync(file)] = run.expected.count
            default:
                disk.advance(to: disk.now + .microseconds(Int64(workload.int(in: 0...3_000))))
            }
            disk.pollCompletions(into: &completions)
            for completion in completions {
                if case .success = completion.result {
                    run.syncedLength = max(run.syncedLength, lengthAtRequest[completion.token]!)
                }
            }
            completions.removeAll()
        }
        disk.checkInvariants()
        disk.crash()
        disk.checkInvariants()
        run.afterCrash = try readAll(disk, "/data/log")
        return (run, disk)
    }

    @Test func syncedPrefixSurvivesExactlyAndTheRestIsAPrefix() throws {
        var sawLoss = false, sawKeptUnsynced = false, sawTorn = false
        for seed in UInt64(0)..<500 {
            let (run, _) = try appendRun(seed: seed) { $0.garbleProbability = 0 }
            let after = run.afterCrash
            #expect(after.count >= run.syncedLength, "seed \(seed)")
            #expect(after.count <= run.expected.count, "seed \(seed)")
            #expect(after[...] == run.expected[..<after.count], "seed \(seed): not a prefix of what was written")
            if after.count < run.expected.count { sawLoss = true }
            if after.count > run.syncedLength { sawKeptUnsynced = true }
            if !run.boundaries.contains(after.count) { sawTorn = true }
        }
        #expect(sawLoss && sawKeptUnsynced && sawTorn)
    }

    @Test func withoutTearingTheFileEndsOnAWriteBoundary() throws {
        for seed in UInt64(0)..<500 {
            let (run, _) = try appendRun(seed: seed) { $0.garbleProbability = 0; $0.tornWriteProbability = 0 }
            #expect(run.boundaries.contains(run.afterCrash.count), "seed \(seed)")
            #expect(run.afterCrash.count >= run.syncedLength, "seed \(seed)")
        }
    }

    @Test func garblingTouchesOnlyTheUnsyncedRegion() throws {
        var sawGarble = false
        for seed in UInt64(0)..<500 {
            let (run, disk) = try appendRun(seed: seed) { $0.garbleProbability = 1 }
            let after = run.afterCrash
            #expect(after.count >= run.syncedLength && after.count <= run.expected.count, "seed \(seed)")
            #expect(after[..<run.syncedLength] == run.expected[..<run.syncedLength], "seed \(seed): synced bytes changed")
            if after[...] != run.expected[..<after.count] {
                sawGarble = true
                #expect(disk.statistics.garbledSectors > 0)
            }
        }
        #expect(sawGarble)
    }

    @Test func benignCrashKeepsExactlyWhatWasSynced() throws {
        for seed in UInt64(0)..<500 {
            let (run, disk) = try appendRun(seed: seed) { $0.crashBehavior = .dropUnsynced; $0.garbleProbability = 1; $0.tornWriteProbability = 1 }
            #expect(run.afterCrash[...] == run.expected[..<run.syncedLength], "seed \(seed)")
            #expect(disk.statistics.tornWrites == 0 && disk.statistics.garbledSectors == 0)
        }
    }

    @Test func overwrittenSyncedBytesMayChangeOnlyWhereOverwritten() throws {
        var sawOld = false, sawNew = false
        for seed in UInt64(0)..<500 {
            let disk = makeDisk(seed: seed) { $0.garbleProbability = 0.5 }
            try prepareDataDirectory(disk)
            var pattern = DeterministicRandom(seed: 99)
            let original = randomBytes(4096, &pattern)
            try makeDurableFile(disk, "f", original)
            let file = try disk.open("/data/f", create: false)
            try disk.write(file, at: 1000, bytes(100, 0xAB))
            try disk.write(file, at: 4096, bytes(3000, 0xCD))
            disk.crash()
            let after = try readAll(disk, "/data/f")
            #expect(after.count >= 4096 && after.count <= 7096, "seed \(seed)")
            #expect(after[..<1000] == original[..<1000], "seed \(seed)")
            #expect(after[1100..<4096] == original[1100..<4096], "seed \(seed)")
            if after[1000..<1100] == original[1000..<1100] { sawOld = true }
            if after[1000..<1100] == bytes(100, 0xAB)[...] { sawNew = true }
        }
        #expect(sawOld && sawNew)
    }

    @Test func unsyncedTruncationIsUndoneByABenignCrash() throws {
        let disk = makeDisk { $0.crashBehavior = .dropUnsynced }
        try prepareDataDirectory(disk)
        try makeDurableFile(disk, "f", bytes(1000, 1))
        var file = try disk.open("/data/f", create: false)
        try disk.truncate(file, to: 10)
        disk.crash()
        #expect(try readAll(disk, "/data/f") == bytes(1000, 1))
        file = try disk.open("/data/f", create: false)
        try disk.truncate(file, to: 10)
        syncAndWait(file, on: disk)
        disk.crash()
        #expect(try readAll(disk, "/data/f") == bytes(10, 1))
    }

    @Test func createdFileNeedsItsDirectorySynced() throws {
        // Benign: the entry is lost even though the file's data was synced.
        let benign = makeDisk { $0.crashBehavior = .dropUnsynced }
        try prepareDataDirectory(benign)
        var file = try benign.open("/data/new", create: true)
        try benign.write(file, at: 0, [1, 2, 3])
        syncAndWait(file, on: benign)
        benign.crash()
        #expect(!benign.fileExists("/data/new"))
        #expect(try benign.listDirectory("/data") == [])
        benign.checkInvariants()
        // With the directory synced it survives, with exactly its synced data.
        file = try benign.open("/data/new", create: true)
        try benign.write(file, at: 0, [1, 2, 3])
        syncAndWait(file, on: benign)
        syncDirectoryAndWait("/data", on: benign)
        try benign.write(file, at: 3, [4])
        benign.crash()
        #expect(try readAll(benign, "/data/new") == [1, 2, 3])

        // Adversarial: without the directory sync it may vanish or survive; if it survives, its
        // synced data is intact.
        var vanished = 0, survived = 0
        for seed in UInt64(0)..<500 {
            let disk = makeDisk(seed: seed)
            try prepareDataDirectory(disk)
            let file = try disk.open("/data/new", create: true)
            try disk.write(file, at: 0, [1, 2, 3])
            syncAndWait(file, on: disk)
            disk.crash()
            disk.checkInvariants()
            if disk.fileExists("/data/new") {
                survived += 1
                #expect(try readAll(disk, "/data/new") == [1, 2, 3], "seed \(seed)")
            } else {
                vanished += 1
            }
        }
        #expect(vanished > 50 && survived > 50)
    }

    @Test func directoryCreationIsDurableOnlyThroughItsParent() throws {
        let disk = makeDisk { $0.crashBehavior = .dropUnsynced }
        try disk.makeDirectory("/a/b/c")
        disk.crash()
        #expect(!disk.fileExists("/a"))
        try disk.makeDirectory("/a/b/c")
        syncDirectoryAndWait("/", on: disk)
        disk.crash()
        #expect(disk.fileExists("/a") && !disk.fileExists("/a/b"))

        let eager = makeDisk { $0.crashBehavior = .dropUnsynced; $0.directoryCreationIsDurable = true }
        try eager.makeDirectory("/a/b/c")
        eager.crash()
        #expect(eager.fileExists("/a/b/c"))
        eager.checkInvariants()
    }

    @Test func renameIsDurableOnlyWithTheDirectorySyncAndAtomic() throws {
        let old = bytes(10, 1), new = bytes(20, 2)
        func prepare(_ disk: SimDisk) throws {
            try prepareDataDirectory(disk)
            try makeDurableFile(disk, "final", old)
            try makeDurableFile(disk, "tmp", new)
            try disk.rename("/data/tmp", to: "/data/final")
        }
        let benign = makeDisk { $0.crashBehavior = .dropUnsynced }
        try prepare(benign)
        benign.crash()
        #expect(try readAll(benign, "/data/final") == old)
        #expect(try readAll(benign, "/data/tmp") == new)

        let synced = makeDisk { $0.crashBehavior = .dropUnsynced }
        try prepare(synced)
        syncDirectoryAndWait("/data", on: synced)
        synced.crash()
        #expect(try readAll(synced, "/data/final") == new)
        #expect(!synced.fileExists("/data/tmp"))

        var sawOld = false, sawNew = false
        for seed in UInt64(0)..<500 {
            let disk = makeDisk(seed: seed)
            try prepare(disk)
            disk.crash()
            disk.checkInvariants()
            let final = try readAll(disk, "/data/final")
            if final == old {
                sawOld = true
                #expect(try readAll(disk, "/data/tmp") == new, "seed \(seed)")
            } else {
                sawNew = true
                #expect(final == new, "seed \(seed): neither old nor new")
                #expect(!disk.fileExists("/data/tmp"), "seed \(seed)")
            }
        }
        #expect(sawOld && sawNew)
    }

    @Test func removalIsDurableOnlyWithTheDirectorySync() throws {
        let disk = makeDisk { $0.crashBehavior = .dropUnsynced }
        try prepareDataDirectory(disk)
        try makeDurableFile(disk, "f", [1])
        try disk.remove("/data/f")
        disk.crash()
        #expect(try readAll(disk, "/data/f") == [1])
        try disk.remove("/data/f")
        syncDirectoryAndWait("/data", on: disk)
        disk.crash()
        #expect(!disk.fileExists("/data/f"))
        disk.checkInvariants()
    }

    @Test func crossDirectoryRenameNeverLosesTheFile() throws {
        func prepare(_ disk: SimDisk) throws {
            try disk.makeDirectory("/x")
            try disk.makeDirectory("/y")
            syncDirectoryAndWait("/", on: disk)
            let file = try disk.open("/x/f", create: true)
            try disk.write(file, at: 0, [7])
            syncAndWait(file, on: disk)
            syncDirectoryAndWait("/x", on: disk)
            disk.close(file)
            try disk.rename("/x/f", to: "/y/f")
        }
        var outcomes: Set<String> = []
        for seed in UInt64(0)..<500 {
            let disk = makeDisk(seed: seed)
            try prepare(disk)
            disk.crash()
            disk.checkInvariants()
            let inX = disk.fileExists("/x/f"), inY = disk.fileExists("/y/f")
            #expect(inX || inY, "seed \(seed): the file vanished")
            outcomes.insert("\(inX)-\(inY)")
            for path in ["/x/f", "/y/f"] where disk.fileExists(path) {
                #expect(try readAll(disk, path) == [7])
            }
        }
        #expect(outcomes.count >= 2)
        // Syncing only the source directory makes the destination entry durable too.
        let disk = makeDisk { $0.crashBehavior = .dropUnsynced }
        try prepare(disk)
        syncDirectoryAndWait("/x", on: disk)
        disk.crash()
        #expect(!disk.fileExists("/x/f") && disk.fileExists("/y/f"))
        disk.checkInvariants()
    }

    @Test func crashInvalidatesHandlesAndTheDiskKeepsWorking() throws {
        let disk = makeDisk { $0.crashBehavior = .dropUnsynced }
        try prepareDataDirectory(disk)
        try makeDurableFile(disk, "f", [1])
        let file = try disk.open("/data/f", create: false)
        disk.crash()
        #expect(throws: DiskError.notOpen(file)) { try disk.read(file, at: 0, count: 1) }
        let reopened = try disk.open("/data/f", create: false)
        #expect(reopened.rawValue > file.rawValue)
        try disk.write(reopened, at: 1, [2])
        syncAndWait(reopened, on: disk)
        disk.powerLoss()
        #expect(try readAll(disk, "/data/f") == [1, 2])
        #expect(disk.statistics.crashes == 2)
    }

    @Test func processKillKeepsThePageCacheButNotTheCompletions() throws {
        let disk = makeDisk { $0.syncLatency = .milliseconds(5)...(.milliseconds(5)); $0.crashBehavior = .dropUnsynced }
        try prepareDataDirectory(disk)
        let file = try disk.open("/data/f", create: true)
        try disk.write(file, at: 0, [1, 2])
        _ = disk.sync(file)
        _ = disk.syncDirectory("/data")
        disk.killProcess()
        #expect(throws: DiskError.notOpen(file)) { try disk.size(file) }
        #expect(try readAll(disk, "/data/f") == [1, 2])  // page cache survived
        disk.advance(to: disk.now + .milliseconds(10))
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
        #expect(completions.isEmpty)
        // The syncs still happened: a later power loss keeps the data.
        disk.powerLoss()
        #expect(try readAll(disk, "/data/f") == [1, 2])
        disk.checkInvariants()
    }
}

// MARK: Determinism

@Suite struct SimDiskDeterminismTests {
    /// A random mix of every operation over a few files and directories, with crashes; returns
    /// the digest after each phase. Checks the disk's internal invariants as it goes.
    private func scriptedRun(seed: UInt64, configure: (inout SimDisk.Configuration) -> Void = { _ in }) throws -> [UInt64] {
        let disk = makeDisk(seed: seed) { $0.syncFailureProbability = 0.05; configure(&$0) }
        var workload = DeterministicRandom(seed: 12345)  // same operations for every seed
        var digests: [UInt64] = []
        var handles: [DiskFile] = []
        let directories = ["/a", "/b", "/a/c"]
        let names = ["f1", "f2", "f3"]
        func randomPath() -> String {
            directories[workload.int(in: 0...2)] + "/" + names[workload.int(in: 0...2)]
        }
        for phase in 0..<6 {
            for directory in directories { try disk.makeDirectory(directory) }
            for step in 0..<150 {
                switch workload.int(in: 0...11) {
                case 0, 1:
                    handles.append(try disk.open(randomPath(), create: true))
                case 2, 3, 4:
                    guard let file = handles.randomElement(using: &workload) else { continue }
                    let length = workload.int(in: 1...300)
                    let position = Int64(workload.int(in: 0...2_000))
                    try disk.write(file, at: position, randomBytes(length, &workload))
                case 5:
                    guard let file = handles.randomElement(using: &workload) else { continue }
                    try disk.truncate(file, to: Int64(workload.int(in: 0...1_500)))
                case 6:
                    guard let file = handles.randomElement(using: &workload) else { continue }
                    _ = disk.sync(file)
                case 7:
                    _ = disk.syncDirectory(directories[workload.int(in: 0...2)])
                    _ = disk.syncDirectory("/")
                case 8:
                    let source = randomPath(), destination = randomPath()
                    if disk.fileExists(source) { try disk.rename(source, to: destination) }
                case 9:
                    let path = randomPath()
                    if disk.fileExists(path) { try disk.remove(path) }
                case 10:
                    guard !handles.isEmpty else { continue }
                    disk.close(handles.remove(at: workload.int(in: 0...(handles.count - 1))))
                default:
                    disk.advance(to: disk.now + .microseconds(Int64(workload.int(in: 0...4_000))))
                    var completions: [SyncCompletion] = []
                    disk.pollCompletions(into: &completions)
                }
                // Recounting everything is slow in debug builds: check often, not always.
                if step % 5 == 0 { disk.checkInvariants() }
            }
            digests.append(disk.contentDigest())
            if phase % 3 == 2 { disk.killProcess() } else { disk.crash() }
            handles.removeAll()
            disk.checkInvariants()
            digests.append(disk.contentDigest())
        }
        return digests
    }

    @Test func sameSeedSameDigests() throws {
        for seed in UInt64(0)..<20 {
            #expect(try scriptedRun(seed: seed) == scriptedRun(seed: seed), "seed \(seed)")
        }
    }

    @Test func differentSeedsUsuallyDiffer() throws {
        var finalDigests: Set<UInt64> = []
        for seed in UInt64(0)..<20 {
            finalDigests.insert(try scriptedRun(seed: seed).last!)
        }
        #expect(finalDigests.count >= 18)
    }

    @Test func benignCrashesRestoreTheDurableView() throws {
        for seed in UInt64(0)..<50 {
            let disk = makeDisk(seed: seed) { $0.crashBehavior = .dropUnsynced }
            var workload = DeterministicRandom(seed: seed).stream("workload")
            try disk.makeDirectory("/d")
            var handles: [DiskFile] = []
            for _ in 0..<200 {
                switch workload.int(in: 0...5) {
                case 0: handles.append(try disk.open("/d/f\(workload.int(in: 0...4))", create: true))
                case 1, 2:
                    guard let file = handles.randomElement(using: &workload) else { continue }
                    try disk.write(file, at: Int64(workload.int(in: 0...500)), randomBytes(workload.int(in: 1...64), &workload))
                case 3:
                    guard let file = handles.randomElement(using: &workload) else { continue }
                    _ = disk.sync(file)
                case 4: _ = disk.syncDirectory(workload.chance(0.5) ? "/" : "/d")
                default: disk.advance(to: disk.now + .microseconds(Int64(workload.int(in: 0...3_000))))
                }
            }
            let durableNames = disk.durableListing(of: "/d")
            var durableFiles: [String: [UInt8]] = [:]
            for name in durableNames ?? [] { durableFiles[name] = disk.durableContents(of: "/d/" + name) }
            disk.crash()
            #expect(disk.pendingOperationCount == 0)
            if let durableNames {
                #expect(try disk.listDirectory("/d") == durableNames, "seed \(seed)")
                for name in durableNames {
                    #expect(try readAll(disk, "/d/" + name) == durableFiles[name]!, "seed \(seed)")
                }
            } else {
                #expect(!disk.fileExists("/d"), "seed \(seed)")
            }
        }
    }

    @Test func digestDependsOnContentAndPendingState() throws {
        let first = makeDisk(), second = makeDisk()
        for disk in [first, second] {
            try disk.makeDirectory("/d")
            let file = try disk.open("/d/f", create: true)
            try disk.write(file, at: 0, [1, 2, 3])
        }
        #expect(first.contentDigest() == second.contentDigest())
        let file = try second.open("/d/f", create: false)
        try second.write(file, at: 0, [1])  // same bytes, one more pending operation
        #expect(first.contentDigest() != second.contentDigest())
    }
}
