import Glibc
import KafkaProtocol
import LogStorage
import Posix
import Runtime
import TernCore
import Testing
@testable import tern

/// The storage crash property on the real disk: `tern storage-crash-child` appends and syncs,
/// printing every offset it has made durable; we kill it with SIGKILL at a random moment, reopen
/// the log and check that nothing promised is lost and nothing unwritten appears. Then the child
/// runs again on the same directory, so recovering an already recovered log is exercised too.
///
/// A SIGKILL leaves the page cache intact, so the log may keep more than the promised prefix, and
/// everything a previous reopen saw must still be there. What a power loss does is the
/// simulator's job (SimDisk); this test checks the real files, system calls and sync thread.
@Suite struct StorageKillTests {
    static let seeds: [UInt64] = [0x5EED_0001, 0x5EED_0002, 0x5EED_0003]
    static let roundsPerDirectory = 5

    @Test(arguments: seeds)
    func killedWriterLosesNothingItPromisedAndInventsNothing(seed: UInt64) throws {
        let executable = try #require(ternExecutablePath(), "the tern executable is built next to the test bundle")
        let directory = TemporaryDirectory(prefix: "tern-storage-kill")
        let logDirectory = directory.path + "/crash-0"
        var random = DeterministicRandom(seed: seed).stream("kill-delay")
        var verifiedLogEnd = Offset.zero
        var summary: [String] = []

        for round in 0..<Self.roundsPerDirectory {
            let child = try CrashChild(executable: executable, arguments: ["storage-crash-child", logDirectory, String(seed)])
            // Anywhere from right after the first durable report (the recovery point, so the kill
            // can land among recovery's own syncs) to some hundreds of milliseconds of appends.
            let delayMilliseconds = Int64(random.int(in: 0...600))
            let report = child.killAfter(delayMilliseconds: delayMilliseconds)
            let context = "seed \(seed) round \(round) (kill \(delayMilliseconds) ms after ready)"

            try #require(report.exitStatus.signal == SIGKILL,
                         "the child must die by our SIGKILL, not by itself: \(report.exitStatus), output \(report.unexpectedLines) (\(context))")
            try #require(report.unexpectedLines.isEmpty, "unexpected child output \(report.unexpectedLines) (\(context))")
            let readyOffset = try #require(report.readyOffset, "the child printed 'ready' (\(context))")
            // Nothing touched the log between our close and its open.
            #expect(readyOffset == verifiedLogEnd.rawValue, "\(context)")
            let promised = try #require(report.durableOffsets.last, "the child reported a durable offset (\(context))")
            #expect(report.durableOffsets == report.durableOffsets.sorted(), "durable offsets never go back (\(context))")

            let (logEnd, recovery) = try verifyRecoveredLog(directory: logDirectory, seed: seed, promisedDurableOffset: Offset(promised), context: context)
            // A process crash keeps the page cache: what the last reopen read is still there.
            #expect(logEnd >= verifiedLogEnd, "recovery dropped offsets \(logEnd)..<\(verifiedLogEnd) that a kill cannot lose (\(context))")
            verifiedLogEnd = logEnd
            summary.append("round \(round): durable \(promised), log end \(logEnd.rawValue), \(recovery.segmentsFound) segments, torn tail \(recovery.truncatedBytes) bytes")
        }
        print("storage kill seed \(seed): " + summary.joined(separator: "; "))
    }

    /// Reopens the log as a fresh process would, checks it against everything the child can have
    /// written, waits for recovery's syncs and closes it.
    private func verifyRecoveredLog(directory: String, seed: UInt64, promisedDurableOffset: Offset, context: String) throws -> (logEnd: Offset, recovery: RecoveryReport) {
        let disk = try PosixDisk()
        defer { disk.close() }
        let log = try PartitionLog.open(directory: directory, configuration: StorageCrashWorkload.configuration,
                                        disk: disk, wallClock: Instant(nanoseconds: 0))
        defer { log.close() }
        try #require(log.corruption == nil, "\(context): \(String(describing: log.corruption))")
        try #require(log.failure == nil, "\(context): \(String(describing: log.failure))")
        #expect(log.logStartOffset == .zero, "\(context)")

        // (a) Nothing promised is lost.
        #expect(log.logEndOffset >= promisedDurableOffset,
                "log end \(log.logEndOffset) is below the promised durable offset \(promisedDurableOffset) (\(context))")

        // (b) The log is a prefix of what the child appended: contiguous batches, each with exactly
        // the records the workload puts at its offsets.
        var batches: [StoredBatch] = []
        var next = log.logStartOffset
        while next < log.logEndOffset {
            let result = try log.read(from: next, maxBytes: 1 << 20)
            try #require(result.batchCount > 0 && result.firstBatchOffset == next, "read at \(next) returned \(result.batchCount) batches from \(String(describing: result.firstBatchOffset)) (\(context))")
            var position = 0
            while position < result.bytes.count {
                let batch = try RecordBatch(result.bytes, at: position)
                try checkContents(of: batch, expectedBaseOffset: next, seed: seed, context: context)
                batches.append(StoredBatch(header: batch.header, bytes: Array(result.bytes[batch.range])))
                next = Offset(batch.header.nextOffset)
                position = batch.range.upperBound
            }
            try #require(next == result.nextOffset, "\(context)")
        }
        #expect(next == log.logEndOffset, "\(context)")
        #expect(try log.read(from: log.logEndOffset, maxBytes: 1 << 20).batchCount == 0, "\(context)")

        // (c) Every offset reads from the batch that contains it, whichever index entry it starts from.
        for batch in batches {
            for offset in Offset(batch.header.baseOffset)...Offset(batch.header.lastOffset) {
                let single = try log.read(from: offset, maxBytes: 1)
                try #require(single.firstBatchOffset == Offset(batch.header.baseOffset) && single.bytes == batch.bytes,
                             "read at \(offset) returned the batch at \(String(describing: single.firstBatchOffset)) instead of \(batch.header.baseOffset) (\(context))")
            }
        }

        // (d) The leader-epoch history is exactly where the batches' epochs change.
        var expectedEpochs: [LeaderEpochCache.Entry] = []
        for batch in batches where expectedEpochs.last?.epoch.rawValue != batch.header.partitionLeaderEpoch {
            let epoch = LeaderEpoch(batch.header.partitionLeaderEpoch)
            if let previous = expectedEpochs.last?.epoch {
                #expect(epoch > previous, "epoch \(epoch) follows \(previous) at \(batch.header.baseOffset) (\(context))")
            }
            expectedEpochs.append(LeaderEpochCache.Entry(epoch: epoch, startOffset: Offset(batch.header.baseOffset)))
        }
        #expect(log.leaderEpochs.entries == expectedEpochs, "\(context)")

        // Let recovery's syncs finish, so the next child starts from a quiet directory.
        var completions: [SyncCompletion] = []
        var waitsLeft = 300
        while !log.isIdle && waitsLeft > 0 {
            disk.waitForCompletions(timeoutMilliseconds: 100)
            disk.pollCompletions(into: &completions)
            for completion in completions { #expect(log.handle(completion), "\(context)") }
            completions.removeAll()
            waitsLeft -= 1
        }
        #expect(log.isIdle && log.failure == nil, "\(context)")
        return (log.logEndOffset, log.recoveryReport)
    }

    private func checkContents(of batch: RecordBatch, expectedBaseOffset: Offset, seed: UInt64, context: String) throws {
        let base = Offset(batch.header.baseOffset)
        try #require(base == expectedBaseOffset, "batch at \(base) where \(expectedBaseOffset) was expected (\(context))")
        let expectedCount = StorageCrashWorkload.recordCount(seed: seed, baseOffset: base)
        try #require(Int(batch.header.recordsCount) == expectedCount,
                     "batch at \(base) holds \(batch.header.recordsCount) records, the child writes \(expectedCount) there (\(context))")
        for record in try batch.records() {
            let offset = base + Int64(record.offsetDelta)
            let expectedValue = StorageCrashWorkload.value(seed: seed, offset: offset)
            // Compared first, so a mismatch reports sizes rather than kilobytes of bytes.
            let keyMatches = record.key == StorageCrashWorkload.key(offset: offset)
            let valueMatches = record.value == expectedValue
            try #require(keyMatches, "key at \(offset) is \(String(decoding: record.key ?? [], as: UTF8.self)) (\(context))")
            try #require(valueMatches, "value at \(offset): \(record.value?.count ?? -1) bytes, \(expectedValue.count) expected, contents differ (\(context))")
        }
    }
}

private struct StoredBatch {
    var header: RecordBatchHeader
    var bytes: [UInt8]
}

/// `tern`, built by SwiftPM into the same directory as the test bundle (RuntimeTests depends on it).
func ternExecutablePath() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { return nil }
    let testBundle = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let path = parentDirectory(of: testBundle) + "/tern"
    return access(path, X_OK) == 0 ? path : nil
}

/// How a child process ended, from `waitpid`'s status word.
struct ChildExitStatus: CustomStringConvertible {
    var rawStatus: Int32
    /// The signal that killed the process, nil if it exited.
    var signal: Int32? { rawStatus & 0x7f == 0 ? nil : rawStatus & 0x7f }
    var exitCode: Int32? { rawStatus & 0x7f == 0 ? (rawStatus >> 8) & 0xff : nil }
    var description: String { signal.map { "killed by signal \($0)" } ?? "exited with \(exitCode ?? -1)" }
}

/// What the child printed before it died.
struct CrashChildReport {
    var exitStatus: ChildExitStatus
    var readyOffset: Int64?
    var durableOffsets: [Int64] = []
    var unexpectedLines: [String] = []
}

/// A `tern storage-crash-child` process whose stdout we read line by line.
private final class CrashChild {
    private let processID: pid_t
    private let output: Int32
    private var pending: [UInt8] = []
    private var readyOffset: Int64?
    private var durableOffsets: [Int64] = []
    private var unexpectedLines: [String] = []
    private var reachedEndOfOutput = false
    /// Bound on every wait, so a hung child fails the test instead of hanging it (not a timing claim).
    private static let patienceMilliseconds: Int64 = 30_000

    init(executable: String, arguments: [String]) throws {
        var pipeEnds: [Int32] = [-1, -1]
        try #require(pipe(&pipeEnds) == 0, "pipe failed (errno \(errno))")
        // Close-on-exec, so that no other child inherits the write end and keeps our read end from
        // seeing end of file (pipe2 is hidden behind _GNU_SOURCE). The spawn's dup2 onto stdout
        // clears the flag for our child.
        for end in pipeEnds { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], STDOUT_FILENO)
        let argumentVector: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argumentVector { free(argument) } }
        let environment: [UnsafeMutablePointer<CChar>?] = [nil]
        var spawned: pid_t = 0
        let code = posix_spawn(&spawned, executable, &actions, nil, argumentVector, environment)
        close(pipeEnds[1])
        guard code == 0 else {
            close(pipeEnds[0])
            throw SpawnError(code: code)
        }
        processID = spawned
        output = pipeEnds[0]
    }

    deinit { close(output) }

    struct SpawnError: Error { var code: Int32 }

    /// Reads output until `ready`, then until `delayMilliseconds` have passed and at least one
    /// durable offset was reported; kills the child with SIGKILL, reaps it and reads what it had
    /// printed before dying.
    func killAfter(delayMilliseconds: Int64) -> CrashChildReport {
        let start = Clocks.monotonicMilliseconds()
        while readyOffset == nil && !reachedEndOfOutput && Clocks.monotonicMilliseconds() - start < Self.patienceMilliseconds {
            readAvailable(waitingMilliseconds: 100)
        }
        let killTime = Clocks.monotonicMilliseconds() + delayMilliseconds
        while !reachedEndOfOutput && Clocks.monotonicMilliseconds() - start < Self.patienceMilliseconds {
            let now = Clocks.monotonicMilliseconds()
            if now >= killTime && !durableOffsets.isEmpty { break }
            readAvailable(waitingMilliseconds: Int32(clamping: max(1, min(100, killTime - now))))
        }
        kill(processID, SIGKILL)
        var status: Int32 = 0
        while waitpid(processID, &status, 0) < 0 && errno == EINTR {}
        // Everything printed before the kill is a promise too.
        let drainStart = Clocks.monotonicMilliseconds()
        while !reachedEndOfOutput && Clocks.monotonicMilliseconds() - drainStart < Self.patienceMilliseconds {
            readAvailable(waitingMilliseconds: 100)
        }
        return CrashChildReport(exitStatus: ChildExitStatus(rawStatus: status), readyOffset: readyOffset,
                                durableOffsets: durableOffsets, unexpectedLines: unexpectedLines)
    }

    private func readAvailable(waitingMilliseconds: Int32) {
        var waiting = pollfd(fd: output, events: Int16(POLLIN), revents: 0)
        guard poll(&waiting, 1, waitingMilliseconds) == 1 else { return }
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        let count = chunk.withUnsafeMutableBytes { read(output, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { return }
        guard count > 0 else {
            reachedEndOfOutput = true
            if !pending.isEmpty { unexpectedLines.append("unterminated: " + String(decoding: pending, as: UTF8.self)) }
            return
        }
        pending += chunk[..<count]
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            parse(String(decoding: pending[..<newline], as: UTF8.self))
            pending.removeSubrange(...newline)
        }
    }

    private func parse(_ line: String) {
        let words = line.split(separator: " ")
        guard words.count == 2, let offset = Int64(words[1]) else { return unexpectedLines.append(line) }
        switch words[0] {
        case "ready" where readyOffset == nil: readyOffset = offset
        case "durable" where readyOffset != nil: durableOffsets.append(offset)
        default: unexpectedLines.append(line)
        }
    }
}


