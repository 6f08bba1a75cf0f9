import Glibc
import LogStorage
@testable import Runtime
import Synchronization
import Testing


/// Collects completions until `count` have arrived or 30 s pass (a safety net, not a timing assumption).
private func collect(_ count: Int, from disk: PosixDisk) -> [SyncCompletion] {
    var completions: [SyncCompletion] = []
    var waitsLeft = 300
    while completions.count < count && waitsLeft > 0 {
        disk.waitForCompletions(timeoutMilliseconds: 100)
        disk.pollCompletions(into: &completions)
        waitsLeft -= 1
    }
    return completions
}

private func isReadable(_ descriptor: Int32, timeoutMilliseconds: Int32) -> Bool {
    var waiting = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
    return poll(&waiting, 1, timeoutMilliseconds) == 1 && waiting.revents & Int16(POLLIN) != 0
}

@Suite struct PosixDiskFileTests {
    @Test func writesAtOffsetsAndReadsShortAtEndOfFile() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let file = try disk.open(directory.child("segment.log"), create: true)
        #expect(try disk.size(file) == 0)

        try disk.write(file, at: 0, [1, 2, 3, 4])
        try disk.write(file, at: 2, [9, 9])
        try disk.write(file, at: 8, [7])  // leaves a hole, read back as zeros
        #expect(try disk.size(file) == 9)
        #expect(try disk.read(file, at: 0, count: 9) == [1, 2, 9, 9, 0, 0, 0, 0, 7])
        #expect(try disk.read(file, at: 6, count: 100) == [0, 0, 7])
        #expect(try disk.read(file, at: 9, count: 4) == [])
        #expect(try disk.read(file, at: 50, count: 4) == [])
        disk.close(file)
    }

    @Test func largeWriteRoundTrips() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let file = try disk.open(directory.child("large"), create: true)
        let bytes = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try disk.write(file, at: 5, bytes)
        #expect(try disk.size(file) == Int64(bytes.count + 5))
        #expect(try disk.read(file, at: 5, count: bytes.count) == bytes)
    }

    @Test func truncateShrinksAndGrows() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let file = try disk.open(directory.child("segment.log"), create: true)
        try disk.write(file, at: 0, [1, 2, 3, 4, 5])
        try disk.truncate(file, to: 2)
        #expect(try disk.size(file) == 2)
        #expect(try disk.read(file, at: 0, count: 5) == [1, 2])
        try disk.truncate(file, to: 4)
        #expect(try disk.read(file, at: 0, count: 5) == [1, 2, 0, 0])
    }

    @Test func reopenSeesWrittenBytes() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let path = directory.child("data")
        let first = try disk.open(path, create: true)
        try disk.write(first, at: 0, [42])
        disk.close(first)
        let second = try disk.open(path, create: false)
        #expect(second != first)
        #expect(try disk.read(second, at: 0, count: 1) == [42])
        #expect(throws: DiskError.notOpen(first)) { try disk.size(first) }
    }

    @Test func renameReplacesDestinationAndOpenFileFollows() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let temporary = directory.child("checkpoint.tmp")
        let destination = directory.child("checkpoint")
        let old = try disk.open(destination, create: true)
        try disk.write(old, at: 0, [1, 1, 1])
        disk.close(old)
        let file = try disk.open(temporary, create: true)
        try disk.write(file, at: 0, [2])

        try disk.rename(temporary, to: destination)
        #expect(!disk.fileExists(temporary))
        #expect(disk.fileExists(destination))
        try disk.write(file, at: 1, [3])  // the handle refers to the file, not the name
        let reopened = try disk.open(destination, create: false)
        #expect(try disk.read(reopened, at: 0, count: 10) == [2, 3])
    }

    @Test func listsEntriesSortedByUTF8Bytes() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        for name in ["b", "a10", "é", "Z", "a2", "a"] {
            disk.close(try disk.open(directory.child(name), create: true))
        }
        try disk.makeDirectory(directory.child("topic-0"))
        // "Z" (0x5A) < "a" (0x61) < "é" (0xC3 0xA9), and "a10" < "a2" bytewise.
        #expect(try disk.listDirectory(directory.path) == ["Z", "a", "a10", "a2", "b", "topic-0", "é"])
        #expect(try disk.listDirectory(directory.child("topic-0")) == [])
    }

    @Test func makesNestedDirectoriesIdempotently() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let nested = directory.child("logs/topic-3/deep")
        try disk.makeDirectory(nested)
        try disk.makeDirectory(nested)
        try disk.makeDirectory(nested + "/")
        #expect(disk.fileExists(nested))
        #expect(try disk.listDirectory(directory.child("logs")) == ["topic-3"])

        let file = directory.child("plain")
        disk.close(try disk.open(file, create: true))
        #expect(throws: DiskError.alreadyExists(path: file)) { try disk.makeDirectory(file) }
    }

    @Test func removesFilesAndEmptyDirectories() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let subdirectory = directory.child("partition")
        try disk.makeDirectory(subdirectory)
        let file = joinPath(subdirectory, "00000000000000000000.log")
        disk.close(try disk.open(file, create: true))

        do {
            try disk.remove(subdirectory)
            Issue.record("removing a non-empty directory must fail")
        } catch {
            guard case let .io(operation, path, code) = error else {
                Issue.record("expected an io error, got \(error)")
                return
            }
            #expect(operation == "rmdir" && path == subdirectory && code == ENOTEMPTY)
        }
        try disk.remove(file)
        #expect(!disk.fileExists(file))
        try disk.remove(subdirectory)
        #expect(!disk.fileExists(subdirectory))
    }

    @Test func missingPathsAreNotFound() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let missing = directory.child("missing")
        #expect(throws: DiskError.notFound(path: missing)) { try disk.open(missing, create: false) }
        #expect(throws: DiskError.notFound(path: missing)) { try disk.remove(missing) }
        #expect(throws: DiskError.notFound(path: missing)) { try disk.listDirectory(missing) }
        #expect(throws: DiskError.notFound(path: missing)) { try disk.rename(missing, to: directory.child("other")) }
        #expect(!disk.fileExists(missing))
        #expect(throws: DiskError.notOpen(DiskFile(rawValue: 999))) {
            try disk.read(DiskFile(rawValue: 999), at: 0, count: 1)
        }
    }

    @Test func otherFailuresAreIOErrorsWithTheirPath() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        #expect(throws: DiskError.io(operation: "open", path: directory.path, code: EISDIR)) {
            try disk.open(directory.path, create: false)
        }
        let file = directory.child("plain")
        disk.close(try disk.open(file, create: true))
        #expect(throws: DiskError.io(operation: "opendir", path: file, code: ENOTDIR)) {
            try disk.listDirectory(file)
        }
    }
}

@Suite struct PosixDiskSyncTests {
    @Test func completionsCarryTheReturnedTokens() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let file = try disk.open(directory.child("segment.log"), create: true)
        try disk.write(file, at: 0, [1, 2, 3])
        let first = disk.sync(file)
        let second = disk.sync(file)
        let third = disk.syncDirectory(directory.path)
        #expect(first < second && second < third)

        let completions = collect(3, from: disk)
        #expect(completions.map(\.token) == [first, second, third])
        #expect(completions.allSatisfy { (try? $0.result.get()) != nil })
        #expect(disk.syncStatistics.completedRequests == 3)
        var none: [SyncCompletion] = []
        disk.pollCompletions(into: &none)
        #expect(none.isEmpty)
    }

    @Test func pausedRequestsCompleteAsOneBatchWithOneFdatasyncPerFile() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let files = try (0..<3).map { index in try disk.open(directory.child("file-\(index)"), create: true) }
        disk.pauseSyncBatches()
        var tokens: [SyncToken] = []
        for request in 0..<200 {
            let file = files[request % files.count]
            try disk.write(file, at: Int64(request), [UInt8(truncatingIfNeeded: request)])
            tokens.append(disk.sync(file))
        }
        tokens.append(disk.syncDirectory(directory.path))
        tokens.append(disk.syncDirectory(directory.path))
        disk.resumeSyncBatches()

        let completions = collect(tokens.count, from: disk)
        #expect(completions.map(\.token) == tokens)
        let statistics = disk.syncStatistics
        #expect(statistics.batches == 1)
        #expect(statistics.fdatasyncCalls == 3)
        #expect(statistics.directoryFsyncCalls == 1)
        #expect(statistics.completedRequests == UInt64(tokens.count))
    }

    @Test func groupCommitCompletesEveryTokenExactlyOnce() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let files = try (0..<3).map { index in try disk.open(directory.child("file-\(index)"), create: true) }
        var tokens: [SyncToken] = []
        for request in 0..<200 {
            let file = files[request % files.count]
            try disk.write(file, at: Int64(request) * 512, [UInt8](repeating: UInt8(truncatingIfNeeded: request), count: 512))
            tokens.append(disk.sync(file))
        }
        #expect(tokens == tokens.sorted() && Set(tokens).count == tokens.count)

        let completions = collect(tokens.count, from: disk)
        #expect(completions.count == tokens.count)
        #expect(completions.map(\.token).sorted() == tokens)
        #expect(completions.allSatisfy { (try? $0.result.get()) != nil })
        // Only what group commit guarantees regardless of timing: never more than one fdatasync
        // per request, at most one per distinct file per batch, and every file synced at least once.
        let statistics = disk.syncStatistics
        #expect(statistics.completedRequests == 200)
        #expect(statistics.fdatasyncCalls <= 200)
        #expect(statistics.fdatasyncCalls <= 3 * statistics.batches)
        #expect(statistics.fdatasyncCalls >= 3)
    }

    @Test func directorySyncSucceedsAndMissingDirectoryFails() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        disk.close(try disk.open(directory.child("new-file"), create: true))
        let missing = directory.child("missing")
        let synced = disk.syncDirectory(directory.path)
        let failed = disk.syncDirectory(missing)

        let completions = collect(2, from: disk)
        #expect(completions == [
            SyncCompletion(token: synced, result: .success(())),
            SyncCompletion(token: failed, result: .failure(.notFound(path: missing))),
        ])
        #expect(disk.syncStatistics.directoryFsyncCalls == 1)
    }

    @Test func syncOfAFileThatIsNotOpenFailsInOrder() throws {
        let disk = try PosixDisk()
        let stale = DiskFile(rawValue: 12345)
        let token = disk.sync(stale)
        #expect(collect(1, from: disk) == [SyncCompletion(token: token, result: .failure(.notOpen(stale)))])
        #expect(disk.syncStatistics.fdatasyncCalls == 0)
    }

    @Test func closingAFileWithAPendingSyncKeepsItsDescriptorUntilTheSyncIsDone() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let closed = try disk.open(directory.child("closed"), create: true)
        let closedDescriptor = try #require(disk.descriptor(of: closed))
        try disk.write(closed, at: 0, [1, 2, 3])

        disk.pauseSyncBatches()
        let token = disk.sync(closed)
        disk.close(closed)
        // The queued request still holds the descriptor, so its number cannot be handed to the
        // next file, and the fdatasync cannot reach another file.
        let next = try disk.open(directory.child("next"), create: true)
        #expect(disk.descriptor(of: next) != closedDescriptor)
        #expect(fcntl(closedDescriptor, F_GETFD) >= 0)
        disk.resumeSyncBatches()

        #expect(collect(1, from: disk) == [SyncCompletion(token: token, result: .success(()))])
        #expect(disk.syncStatistics.fdatasyncCalls == 1)
    }

    @Test func eventDescriptorIsReadableExactlyWhileCompletionsWait() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let file = try disk.open(directory.child("segment.log"), create: true)
        #expect(!isReadable(disk.completionEventDescriptor, timeoutMilliseconds: 0))

        let token = disk.sync(file)
        // Waiting on the descriptor itself, as an epoll loop would.
        #expect(isReadable(disk.completionEventDescriptor, timeoutMilliseconds: 30_000))
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
        #expect(completions.map(\.token) == [token])
        #expect(!isReadable(disk.completionEventDescriptor, timeoutMilliseconds: 0))
    }

    @Test func waitForCompletionsTimesOutWhenNothingIsPending() throws {
        let disk = try PosixDisk()
        #expect(disk.waitForCompletions(timeoutMilliseconds: 20) == false)
    }

    @Test func syncBlocksWhileTheQueueIsFull() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk(syncQueueCapacity: 2, maximumUncollectedSyncs: 16)
        let file = try disk.open(directory.child("segment.log"), create: true)
        disk.pauseSyncBatches()
        _ = disk.sync(file)
        _ = disk.sync(file)

        final class Flag: Sendable { let isSet = Atomic<Bool>(false) }
        let thirdReturned = Flag()
        let producer = try startThread {
            _ = disk.sync(file)
            thirdReturned.isSet.store(true, ordering: .releasing)
        }
        usleep(50_000)
        // Had it returned, the bound would be broken. Not having returned yet is what any timing
        // gives, so this cannot fail spuriously.
        let returnedWhileFull = thirdReturned.isSet.load(ordering: .acquiring)
        #expect(!returnedWhileFull)
        disk.resumeSyncBatches()
        #expect(pthread_join(producer, nil) == 0)
        let returnedAfterRoom = thirdReturned.isSet.load(ordering: .acquiring)
        #expect(returnedAfterRoom)
        #expect(collect(3, from: disk).count == 3)
    }

    @Test func closeFinishesQueuedSyncs() throws {
        let directory = TemporaryDirectory(prefix: "tern-posix-disk")
        let disk = try PosixDisk()
        let file = try disk.open(directory.child("segment.log"), create: true)
        disk.pauseSyncBatches()
        let tokens = [disk.sync(file), disk.syncDirectory(directory.path)]
        disk.close()  // overrides the pause: queued requests are finished before the thread ends
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
        #expect(completions.map(\.token) == tokens)
        disk.close()
    }
}

/// Runs `body` on a new pthread; join the returned handle.
private func startThread(_ body: @escaping @Sendable () -> Void) throws -> pthread_t {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let code = pthread_create(&thread, nil, { context in
        Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, context)
    try #require(code == 0)
    return thread
}
