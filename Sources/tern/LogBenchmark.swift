// `tern bench log`: the storage engine on a real disk, driven the way the broker's event loop
// will drive it (one thread owns the log; syncs go to PosixDisk's group-commit thread).
#if canImport(Glibc)
import Posix
import Glibc
#endif
import KafkaProtocol
import LogStorage
import Runtime
import TernCore

private let benchmarkUsage = """
    usage: tern bench log [--dir DIR] [--seconds N] [--appenders N] [--in-flight N]
                          [--sizes 1024,16384] [--total-bytes N] [--segment-bytes N]

      --dir DIR            parent of the scratch directory (default /tmp); it is removed afterwards
      --seconds N          time limit of each append scenario (default 20)
      --appenders N        simulated concurrent appenders in the group-committed scenario (default 4)
      --in-flight N        batches each appender keeps waiting for durability (default 256)
      --sizes LIST         record payload bytes per batch, comma separated (default 1024,16384)
      --total-bytes N      bytes appended per scenario, suffixes k/m/g allowed (default 1g)
      --segment-bytes N    segment.bytes of the benchmark logs (default 1g, Kafka's default)
    """

private struct LogBenchmarkOptions {
    var parentDirectory = "/tmp"
    var secondsLimit: Double = 20
    var appenderCount = 4
    /// 4 appenders x 256 batches of ~1.1 KiB keeps ~1 MiB waiting per sync, enough for the sync to
    /// be dominated by bandwidth rather than by its fixed latency (see docs/benchmarks.md).
    var inFlightBatchesPerAppender = 256
    var payloadSizesBytes = [1024, 16384]
    var totalBytesPerScenario: Int64 = 1 << 30
    var segmentBytes: Int64 = 1 << 30
}

func runLogBenchmark(_ arguments: [String]) {
    let options = parseLogBenchmarkOptions(arguments)
    let scratchDirectory = makeScratchDirectory(under: options.parentDirectory)
    defer { removeTree(scratchDirectory) }

    let disk: PosixDisk
    do { disk = try PosixDisk() } catch { fail("cannot start the disk: \(error)") }
    defer { disk.close() }

    print("tern bench log")
    print("  directory      \(scratchDirectory) (removed afterwards)")
    print("  segment.bytes  \(formatBytes(options.segmentBytes))")
    print("  appenders      \(options.appenderCount) x \(options.inFlightBatchesPerAppender) batches in flight (group-committed scenario)")
    print("  per scenario   \(formatBytes(options.totalBytesPerScenario)) or \(formatFixed(options.secondsLimit, places: 0)) s, whichever first")
    print("  throughput counts stored batch bytes (headers included); MB = 10^6 bytes, GB = 10^9 bytes")
    print("")

    var table = ResultTable()
    var scenarioNumber = 0
    for payloadBytes in options.payloadSizesBytes {
        scenarioNumber += 1
        var batch = makeBenchmarkBatch(payloadBytes: payloadBytes)
        let sizeLabel = formatBytes(Int64(payloadBytes))
        let batchNote = "\(batch.count) B/batch"

        // (b) first, on a log that is deleted before anything is synced: its dirty pages are dropped
        // rather than written back, so they do not compete with the group-committed run.
        let noSyncDirectory = joinPath(scratchDirectory, "no-sync-\(scenarioNumber)")
        let noSync = runNoSyncAppends(directory: noSyncDirectory, disk: disk, batch: &batch, options: options, label: "no-sync \(sizeLabel)")
        removeTree(noSyncDirectory)

        // (a) group-committed; its log, durable once the run ends, then serves (c) and (d).
        let logDirectory = joinPath(scratchDirectory, "group-commit-\(scenarioNumber)")
        let groupCommit = runGroupCommittedAppends(directory: logDirectory, disk: disk, batch: &batch, options: options,
                                                   label: "group-commit \(sizeLabel)")
        table.add(ResultRow(scenario: "group-committed append", size: sizeLabel, bytes: groupCommit.durableBytes,
                            seconds: groupCommit.seconds, rate: formatRate(groupCommit.durableBytes, groupCommit.seconds, unit: .megabytes),
                            latencyP50: formatNanoseconds(groupCommit.latencyP50Nanoseconds),
                            latencyP99: formatNanoseconds(groupCommit.latencyP99Nanoseconds),
                            note: "\(batchNote), \(groupCommit.fdatasyncCalls) fdatasync, \(formatBytes(groupCommit.durableBytes / Int64(max(groupCommit.fdatasyncCalls, 1))))/fdatasync"))
        table.add(ResultRow(scenario: "no-sync append", size: sizeLabel, bytes: noSync.bytes, seconds: noSync.seconds,
                            rate: formatRate(noSync.bytes, noSync.seconds, unit: .megabytes), note: "page cache only"))

        let recovery = measureRecovery(directory: logDirectory, disk: disk, options: options, label: "recovery \(sizeLabel)")
        table.add(ResultRow(scenario: "reopen, crash-like", size: sizeLabel, bytes: recovery.crashLike.bytesScanned,
                            seconds: recovery.crashLike.seconds,
                            rate: formatRate(recovery.crashLike.bytesScanned, recovery.crashLike.seconds, unit: .gigabytes),
                            note: "data = bytes CRC-scanned; no checkpoint, so the whole log is the tail; \(recovery.segmentCount) segment(s), hot cache"))
        table.add(ResultRow(scenario: "reopen, clean close", size: sizeLabel, bytes: recovery.clean.bytesScanned,
                            seconds: recovery.clean.seconds, rate: "-",
                            note: "data = bytes scanned (from the last index entry) of a \(formatBytes(recovery.logBytes)) log"))

        let readBack = runSequentialReadBack(log: recovery.reopenedLog, label: "read-back \(sizeLabel)")
        table.add(ResultRow(scenario: "sequential read-back", size: sizeLabel, bytes: readBack.bytes, seconds: readBack.seconds,
                            rate: formatRate(readBack.bytes, readBack.seconds, unit: .gigabytes),
                            note: "read(maxBytes: 1 MiB), CRC-checked, hot cache"))
        closeCleanly(recovery.reopenedLog, disk: disk)
        removeTree(logDirectory)

        table.summary.append(("group_commit_\(payloadBytes)_MBps", formatFixed(Double(groupCommit.durableBytes) / groupCommit.seconds / 1e6, places: 1)))
        table.summary.append(("group_commit_\(payloadBytes)_p50_us", String(groupCommit.latencyP50Nanoseconds / 1_000)))
        table.summary.append(("group_commit_\(payloadBytes)_p99_us", String(groupCommit.latencyP99Nanoseconds / 1_000)))
        table.summary.append(("no_sync_\(payloadBytes)_MBps", formatFixed(Double(noSync.bytes) / noSync.seconds / 1e6, places: 1)))
        table.summary.append(("read_back_\(payloadBytes)_GBps", formatFixed(Double(readBack.bytes) / readBack.seconds / 1e9, places: 2)))
        table.summary.append(("reopen_clean_\(payloadBytes)_ms", formatFixed(recovery.clean.seconds * 1e3, places: 2)))
        table.summary.append(("reopen_crash_\(payloadBytes)_ms", formatFixed(recovery.crashLike.seconds * 1e3, places: 1)))
        table.summary.append(("log_\(payloadBytes)_bytes", String(recovery.logBytes)))
    }

    let crc = measureCRC32CThroughput()
    table.add(ResultRow(scenario: "CRC-32C", size: "64 MiB", bytes: crc.bytesPerPass, seconds: crc.medianPassSeconds,
                        rate: formatRate(crc.bytesPerPass, crc.medianPassSeconds, unit: .gigabytes),
                        note: "median of \(crc.passes) passes, \(CRC32C.usesHardware ? "hardware (SSE4.2/ARMv8 CRC)" : "portable table") path"))
    table.summary.append(("crc32c_GBps", formatFixed(Double(crc.bytesPerPass) / crc.medianPassSeconds / 1e9, places: 2)))
    table.summary.append(("crc32c_hardware", String(CRC32C.usesHardware)))

    clearProgress()
    table.printTable()
}

// MARK: - Scenarios

private struct GroupCommitResult {
    var durableBytes: Int64 = 0
    var seconds: Double = 0
    var latencyP50Nanoseconds: Int64 = 0
    var latencyP99Nanoseconds: Int64 = 0
    var fdatasyncCalls: UInt64 = 0
}

/// (a) Appenders each keep up to K batches waiting; the owner appends every batch that is ready,
/// flushes once per loop turn (that is the group commit), and acknowledges a batch in the first
/// turn that sees `durableOffset` pass it. Latency runs from the append call to that turn.
private func runGroupCommittedAppends(directory: String, disk: PosixDisk, batch: inout [UInt8],
                                      options: LogBenchmarkOptions, label: String) -> GroupCommitResult {
    let log = openLog(directory: directory, disk: disk, options: options)
    waitUntil(log: log, disk: disk, "the new log is idle") { log.isIdle }
    let syncsBefore = disk.syncStatistics.fdatasyncCalls
    let batchBytes = Int64(batch.count)
    let windowCapacity = options.appenderCount * options.inFlightBatchesPerAppender
    // Batches waiting for durability, oldest first; offsets rise, so the head is acknowledged first.
    var waiting = WaitingBatches(capacity: windowCapacity)
    var inFlightPerAppender = [Int](repeating: 0, count: options.appenderCount)
    var latenciesNanoseconds: [Int64] = []
    latenciesNanoseconds.reserveCapacity(Int(min(options.totalBytesPerScenario / batchBytes + 1, 1 << 24)))
    var completions: [SyncCompletion] = []
    completions.reserveCapacity(1024)
    var appendedBytes: Int64 = 0
    var durableBytes: Int64 = 0
    var appending = true
    let startNanoseconds = Clocks.monotonicNanoseconds()
    let limitNanoseconds = startNanoseconds + Int64(options.secondsLimit * 1e9)
    var lastAcknowledgementNanoseconds = startNanoseconds
    var progress = ProgressReporter(label: label, goalBytes: options.totalBytesPerScenario)

    while appending || !waiting.isEmpty {
        var appendedThisTurn = 0
        if appending {
            let now = Clocks.wallClockNow()
            for appender in 0..<options.appenderCount {
                while inFlightPerAppender[appender] < options.inFlightBatchesPerAppender && appendedBytes < options.totalBytesPerScenario {
                    let sentNanoseconds = Clocks.monotonicNanoseconds()
                    let info: AppendInfo
                    do { info = try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: now) } catch {
                        fail("append failed: \(error)")
                    }
                    waiting.push(lastOffset: info.lastOffset.rawValue, appender: appender, sentNanoseconds: sentNanoseconds)
                    inFlightPerAppender[appender] += 1
                    appendedBytes += batchBytes
                    appendedThisTurn += 1
                }
            }
            if appendedBytes >= options.totalBytesPerScenario || Clocks.monotonicNanoseconds() >= limitNanoseconds { appending = false }
        }
        log.flush()

        completions.removeAll(keepingCapacity: true)
        disk.pollCompletions(into: &completions)
        if completions.isEmpty && appendedThisTurn == 0 {
            // Every appender is waiting: block until the sync thread reports, as the event loop would.
            disk.waitForCompletions(timeoutMilliseconds: 1_000)
            disk.pollCompletions(into: &completions)
        }
        for completion in completions { log.handle(completion) }
        if let failure = log.failure { fail("log failed: \(failure)") }

        let turnNanoseconds = Clocks.monotonicNanoseconds()
        let durableOffset = log.durableOffset.rawValue
        while let head = waiting.head, head.lastOffset < durableOffset {
            waiting.pop()
            inFlightPerAppender[head.appender] -= 1
            latenciesNanoseconds.append(turnNanoseconds - head.sentNanoseconds)
            durableBytes += batchBytes
            lastAcknowledgementNanoseconds = turnNanoseconds
        }
        progress.update(doneBytes: durableBytes, nowNanoseconds: turnNanoseconds, startNanoseconds: startNanoseconds, verb: "durable")
    }

    var result = GroupCommitResult()
    result.durableBytes = durableBytes
    result.seconds = Double(lastAcknowledgementNanoseconds - startNanoseconds) / 1e9
    latenciesNanoseconds.sort()
    result.latencyP50Nanoseconds = percentile(latenciesNanoseconds, 0.50)
    result.latencyP99Nanoseconds = percentile(latenciesNanoseconds, 0.99)
    result.fdatasyncCalls = disk.syncStatistics.fdatasyncCalls - syncsBefore
    log.close()
    return result
}

/// A fixed-capacity FIFO of batches waiting for durability (capacity = appenders x in-flight).
private struct WaitingBatches {
    struct Entry {
        var lastOffset: Int64
        var appender: Int
        var sentNanoseconds: Int64
    }
    private var entries: [Entry]
    private var headPosition = 0
    private(set) var count = 0

    init(capacity: Int) {
        entries = [Entry](repeating: Entry(lastOffset: 0, appender: 0, sentNanoseconds: 0), count: max(capacity, 1))
    }

    var isEmpty: Bool { count == 0 }
    var head: Entry? { count == 0 ? nil : entries[headPosition] }

    mutating func push(lastOffset: Int64, appender: Int, sentNanoseconds: Int64) {
        precondition(count < entries.count, "more batches in flight than the appenders allow")
        entries[(headPosition + count) % entries.count] = Entry(lastOffset: lastOffset, appender: appender, sentNanoseconds: sentNanoseconds)
        count += 1
    }

    mutating func pop() {
        precondition(count > 0, "pop from an empty queue")
        headPosition = (headPosition + 1) % entries.count
        count -= 1
    }
}

private struct ByteCountResult {
    var bytes: Int64 = 0
    var seconds: Double = 0
}

/// (b) Appends with no flush: what the log costs on top of the page cache.
private func runNoSyncAppends(directory: String, disk: PosixDisk, batch: inout [UInt8],
                              options: LogBenchmarkOptions, label: String) -> ByteCountResult {
    let log = openLog(directory: directory, disk: disk, options: options)
    waitUntil(log: log, disk: disk, "the new log is idle") { log.isIdle }
    let batchBytes = Int64(batch.count)
    var appendedBytes: Int64 = 0
    var progress = ProgressReporter(label: label, goalBytes: options.totalBytesPerScenario)
    let startNanoseconds = Clocks.monotonicNanoseconds()
    let limitNanoseconds = startNanoseconds + Int64(options.secondsLimit * 1e9)
    var now = Clocks.wallClockNow()
    var nowNanoseconds = startNanoseconds
    while appendedBytes < options.totalBytesPerScenario && nowNanoseconds < limitNanoseconds {
        do { try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: now) } catch { fail("append failed: \(error)") }
        appendedBytes += batchBytes
        // The clocks are read every 64 appends: their cost is not what this scenario measures.
        if appendedBytes % (64 * batchBytes) == 0 {
            now = Clocks.wallClockNow()
            nowNanoseconds = Clocks.monotonicNanoseconds()
            progress.update(doneBytes: appendedBytes, nowNanoseconds: nowNanoseconds, startNanoseconds: startNanoseconds, verb: "appended")
        }
    }
    let seconds = Double(Clocks.monotonicNanoseconds() - startNanoseconds) / 1e9
    // Nothing of this log is wanted on disk: close it without syncing and let the caller delete it.
    // The open's own directory syncs are still collected so the disk has nothing outstanding.
    waitUntil(log: log, disk: disk, "the directory syncs finish") { log.isIdle }
    log.close()
    return ByteCountResult(bytes: appendedBytes, seconds: seconds)
}

/// (c) Reads the whole log front to back in 1 MiB reads, as a catching-up consumer would.
private func runSequentialReadBack(log: PartitionLog, label: String) -> ByteCountResult {
    var progress = ProgressReporter(label: label, goalBytes: log.sizeInBytes)
    var offset = log.logStartOffset
    var bytes: Int64 = 0
    let startNanoseconds = Clocks.monotonicNanoseconds()
    while offset < log.logEndOffset {
        let result: LogReadResult
        do { result = try log.read(from: offset, maxBytes: 1 << 20) } catch { fail("read at \(offset) failed: \(error)") }
        precondition(result.nextOffset > offset, "a read below the log end always returns a batch")
        bytes += Int64(result.bytes.count)
        offset = result.nextOffset
        progress.update(doneBytes: bytes, nowNanoseconds: Clocks.monotonicNanoseconds(), startNanoseconds: startNanoseconds, verb: "read")
    }
    return ByteCountResult(bytes: bytes, seconds: Double(Clocks.monotonicNanoseconds() - startNanoseconds) / 1e9)
}

private struct ReopenTiming {
    var seconds: Double
    var bytesScanned: Int64
}

private struct RecoveryResult {
    var crashLike: ReopenTiming
    var clean: ReopenTiming
    var logBytes: Int64
    var segmentCount: Int
    /// Open after the clean reopen, for the read-back.
    var reopenedLog: PartitionLog
}

/// (d) The group-committed log is durable but was never checkpointed, which is what a crash leaves
/// when no checkpoint ran since the data was written: reopening scans and CRC-checks everything
/// after the (missing) recovery point. Then close it cleanly (flush, checkpoint, wait until idle)
/// and time the reopen again: now only the tail after the last index entry is read.
private func measureRecovery(directory: String, disk: PosixDisk, options: LogBenchmarkOptions, label: String) -> RecoveryResult {
    writeProgress("\r\(label): reopening\u{1B}[K")
    let crashLike = timedOpen(directory: directory, disk: disk, options: options)
    let logBytes = crashLike.log.sizeInBytes
    let segmentCount = crashLike.log.segmentCount
    closeCleanly(crashLike.log, disk: disk)
    let clean = timedOpen(directory: directory, disk: disk, options: options)
    precondition(clean.log.recoveryReport.checkpointProblem == nil, "the clean close wrote a readable checkpoint")
    waitUntil(log: clean.log, disk: disk, "the reopened log is idle") { clean.log.isIdle }
    return RecoveryResult(crashLike: ReopenTiming(seconds: crashLike.seconds, bytesScanned: crashLike.log.recoveryReport.bytesScanned),
                          clean: ReopenTiming(seconds: clean.seconds, bytesScanned: clean.log.recoveryReport.bytesScanned),
                          logBytes: logBytes, segmentCount: segmentCount, reopenedLog: clean.log)
}

private func timedOpen(directory: String, disk: PosixDisk, options: LogBenchmarkOptions) -> (log: PartitionLog, seconds: Double) {
    let startNanoseconds = Clocks.monotonicNanoseconds()
    let log = openLogWithoutWaiting(directory: directory, disk: disk, options: options)
    let seconds = Double(Clocks.monotonicNanoseconds() - startNanoseconds) / 1e9
    waitUntil(log: log, disk: disk, "the recovered state is durable") { !log.hasDurabilityBarrier }
    return (log, seconds)
}

private struct CRCResult {
    var bytesPerPass: Int64
    var medianPassSeconds: Double
    var passes: Int
}

/// (e) CRC-32C over a 64 MiB buffer of random bytes (larger than the caches, as a recovery scan is).
private func measureCRC32CThroughput() -> CRCResult {
    writeProgress("\rCRC-32C: 64 MiB x 7\u{1B}[K")
    var buffer = [UInt8](repeating: 0, count: 64 << 20)
    var random = DeterministicRandom(seed: 0x7e42)
    random.fill(&buffer)
    var passSeconds: [Double] = []
    var sink: UInt32 = 0
    buffer.withUnsafeBytes { bytes in
        sink ^= CRC32C.checksum(bytes)  // warm-up: page faults and frequency ramp
        for _ in 0..<7 {
            let startNanoseconds = Clocks.monotonicNanoseconds()
            sink ^= CRC32C.checksum(bytes)
            passSeconds.append(Double(Clocks.monotonicNanoseconds() - startNanoseconds) / 1e9)
        }
    }
    // Keeps the checksums observable so the optimiser cannot drop them.
    if sink == 0x5eed_5eed { writeProgress("") }
    passSeconds.sort()
    return CRCResult(bytesPerPass: Int64(buffer.count), medianPassSeconds: passSeconds[passSeconds.count / 2], passes: passSeconds.count)
}

// MARK: - Log plumbing

/// Opens the log and waits until what recovery found is durable (appends are refused before).
private func openLog(directory: String, disk: PosixDisk, options: LogBenchmarkOptions) -> PartitionLog {
    let log = openLogWithoutWaiting(directory: directory, disk: disk, options: options)
    waitUntil(log: log, disk: disk, "the recovered state is durable") { !log.hasDurabilityBarrier }
    return log
}

private func openLogWithoutWaiting(directory: String, disk: PosixDisk, options: LogBenchmarkOptions) -> PartitionLog {
    var configuration = LogConfiguration()
    configuration.segmentBytes = options.segmentBytes
    do { return try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: Clocks.wallClockNow()) } catch {
        fail("cannot open the log in \(directory): \(error)")
    }
}

/// Feeds sync completions to the log until `condition` holds. A benchmark has no other work, so it
/// blocks on the completion eventfd between completions.
private func waitUntil(log: PartitionLog, disk: PosixDisk, _ what: String, _ condition: () -> Bool) {
    let deadlineNanoseconds = Clocks.monotonicNanoseconds() + 300 * 1_000_000_000
    disk.drive(log) { condition() || Clocks.monotonicNanoseconds() > deadlineNanoseconds }
    if let failure = log.failure { fail("log failed: \(failure)") }
    if !condition() { fail("timed out waiting until \(what)") }
}

/// What a broker does on shutdown: everything durable, a checkpoint at the log end, then close.
private func closeCleanly(_ log: PartitionLog, disk: PosixDisk) {
    log.flush()
    waitUntil(log: log, disk: disk, "the log is durable") { log.durableOffset == log.logEndOffset }
    log.checkpoint()
    waitUntil(log: log, disk: disk, "the checkpoint is written") { log.isIdle }
    log.close()
}

/// One batch of `payloadBytes` of record values in 256-byte records (a few hundred bytes is a
/// typical Kafka record), built once so that building is not measured. Appends rewrite only its
/// base offset and leader epoch, which the CRC does not cover, so it can be appended again and again.
private func makeBenchmarkBatch(payloadBytes: Int) -> [UInt8] {
    precondition(payloadBytes > 0, "a batch needs a payload")
    let valueBytes = min(256, payloadBytes)
    let recordCount = max(1, payloadBytes / valueBytes)
    var random = DeterministicRandom(seed: UInt64(payloadBytes))
    var builder = RecordBatchBuilder(baseTimestamp: Clocks.wallClockNow().milliseconds, capacity: payloadBytes + 64 * recordCount + 128)
    for index in 0..<recordCount {
        var value = [UInt8](repeating: 0, count: valueBytes)
        random.fill(&value)
        builder.append(key: Array("key-\(index)".utf8), value: value)
    }
    return builder.build()
}

// MARK: - Options

private func parseLogBenchmarkOptions(_ arguments: [String]) -> LogBenchmarkOptions {
    var options = LogBenchmarkOptions()
    var position = 0
    func value(for flag: String) -> String {
        position += 1
        guard position < arguments.count else { fail("\(flag) needs a value\n\(benchmarkUsage)") }
        return arguments[position]
    }
    func positive(_ text: String, _ flag: String) -> Int64 {
        guard let parsed = parseByteCount(text), parsed > 0 else { fail("\(flag): '\(text)' is not a positive number") }
        return parsed
    }
    while position < arguments.count {
        let flag = arguments[position]
        switch flag {
        case "--dir": options.parentDirectory = value(for: flag)
        case "--seconds":
            let text = value(for: flag)
            guard let seconds = Double(text), seconds > 0 else { fail("--seconds: '\(text)' is not a positive number") }
            options.secondsLimit = seconds
        case "--appenders": options.appenderCount = Int(positive(value(for: flag), flag))
        case "--in-flight": options.inFlightBatchesPerAppender = Int(positive(value(for: flag), flag))
        case "--sizes":
            let text = value(for: flag)
            options.payloadSizesBytes = text.split(separator: ",").map { Int(positive(String($0), flag)) }
            if options.payloadSizesBytes.isEmpty { fail("--sizes needs at least one size") }
        case "--total-bytes": options.totalBytesPerScenario = positive(value(for: flag), flag)
        case "--segment-bytes":
            options.segmentBytes = positive(value(for: flag), flag)
            guard options.segmentBytes >= 1 << 20, options.segmentBytes <= LogConfiguration.maximumSegmentBytes else {
                fail("--segment-bytes must be between 1 MiB and 2 GiB")
            }
        case "--help", "-h": print(benchmarkUsage); exit(0)
        default: fail("unknown option '\(flag)'\n\(benchmarkUsage)")
        }
        position += 1
    }
    return options
}

/// "4096", "64k", "16m", "1g" (binary multiples).
private func parseByteCount(_ text: String) -> Int64? {
    guard let last = text.last?.lowercased() else { return nil }
    let shifts: [String: Int64] = ["k": 10, "m": 20, "g": 30]
    if let shift = shifts[last] {
        guard let number = Int64(text.dropLast()), number <= Int64.max >> shift else { return nil }
        return number << shift
    }
    return Int64(text)
}

// MARK: - Scratch directory

private func makeScratchDirectory(under parent: String) -> String {
    var template = Array(joinPath(parent, "tern-bench-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { buffer in mkdtemp(buffer.baseAddress!) }
    guard made != nil else { fail("cannot create a scratch directory under \(parent) (errno \(errno))") }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// Removes `path` and everything below it (only what this benchmark created lives there).
private func removeTree(_ path: String) {
    var status = stat()
    guard lstat(path, &status) == 0 else { return }
    if status.st_mode & S_IFMT == S_IFDIR {
        if let directory = opendir(path) {
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafePointer(to: &entry.pointee.d_name) { tuple in
                    String(cString: UnsafeRawPointer(tuple).assumingMemoryBound(to: CChar.self))
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(directory)
            for name in names { removeTree(joinPath(path, name)) }
        }
        rmdir(path)
    } else {
        unlink(path)
    }
}

// MARK: - Clocks, statistics, output

/// Nearest-rank percentile of ascending `sorted` values.
private func percentile(_ sorted: [Int64], _ fraction: Double) -> Int64 {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((fraction * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

/// stderr through write(2): the C `stderr` global is not concurrency-safe in Swift 6.
private func writeProgress(_ text: String) {
    var text = text
    text.withUTF8 { bytes in
        var written = 0
        while written < bytes.count {
            let count = Glibc.write(2, bytes.baseAddress! + written, bytes.count - written)
            if count <= 0 { return }
            written += count
        }
    }
}

/// The progress line is redrawn in place on a terminal; elsewhere it would only fill logs.
private let progressIsInteractive = isatty(2) == 1

private func clearProgress() {
    if progressIsInteractive { writeProgress("\r\u{1B}[K") }
}

private struct ProgressReporter {
    let label: String
    let goalBytes: Int64
    var lastReportNanoseconds: Int64 = 0

    init(label: String, goalBytes: Int64) {
        self.label = label
        self.goalBytes = goalBytes
        if !progressIsInteractive { writeProgress("\(label) ...\n") }
    }

    mutating func update(doneBytes: Int64, nowNanoseconds: Int64, startNanoseconds: Int64, verb: String) {
        guard progressIsInteractive, nowNanoseconds - lastReportNanoseconds >= 250_000_000 else { return }
        lastReportNanoseconds = nowNanoseconds
        let seconds = Double(nowNanoseconds - startNanoseconds) / 1e9
        let rate = seconds > 0 ? formatFixed(Double(doneBytes) / seconds / 1e6, places: 0) : "-"
        writeProgress("\r\(label): \(formatBytes(doneBytes)) of \(formatBytes(goalBytes)) \(verb), \(rate) MB/s\u{1B}[K")
    }
}

private enum RateUnit { case megabytes, gigabytes }

private func formatRate(_ bytes: Int64, _ seconds: Double, unit: RateUnit) -> String {
    guard seconds > 0 else { return "-" }
    switch unit {
    case .megabytes: return "\(formatFixed(Double(bytes) / seconds / 1e6, places: 1)) MB/s"
    case .gigabytes: return "\(formatFixed(Double(bytes) / seconds / 1e9, places: 2)) GB/s"
    }
}

private func formatBytes(_ bytes: Int64) -> String {
    let value = Double(bytes)
    if bytes >= 1 << 30 { return "\(formatFixed(value / Double(1 << 30), places: 2)) GiB" }
    if bytes >= 1 << 20 { return "\(formatFixed(value / Double(1 << 20), places: 1)) MiB" }
    if bytes >= 1 << 10 { return bytes % 1024 == 0 ? "\(bytes >> 10) KiB" : "\(formatFixed(value / 1024, places: 1)) KiB" }
    return "\(bytes) B"
}

private func formatNanoseconds(_ nanoseconds: Int64) -> String {
    if nanoseconds >= 1_000_000_000 { return "\(formatFixed(Double(nanoseconds) / 1e9, places: 2)) s" }
    if nanoseconds >= 1_000_000 { return "\(formatFixed(Double(nanoseconds) / 1e6, places: 2)) ms" }
    return "\(formatFixed(Double(nanoseconds) / 1e3, places: 0)) µs"
}

private struct ResultRow {
    var scenario: String
    var size: String
    var bytes: Int64
    var seconds: Double
    var rate: String
    var latencyP50 = "-"
    var latencyP99 = "-"
    var note = ""
}

private struct ResultTable {
    var rows: [ResultRow] = []
    /// Machine-readable figures, printed after the table for scripts that take medians of runs.
    var summary: [(key: String, value: String)] = []

    mutating func add(_ row: ResultRow) { rows.append(row) }

    func printTable() {
        let header = ["scenario", "batch", "data", "time", "throughput", "p50", "p99", "notes"]
        let cells = rows.map { row in
            [row.scenario, row.size, formatBytes(row.bytes), formatSeconds(row.seconds), row.rate, row.latencyP50, row.latencyP99, row.note]
        }
        var widths = header.map(\.count)
        for line in cells {
            for (column, cell) in line.enumerated() { widths[column] = max(widths[column], cell.count) }
        }
        func render(_ line: [String]) -> String {
            var text = ""
            for (column, cell) in line.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                // Names left-aligned, figures right-aligned, the free-text note last and unpadded.
                if column == line.count - 1 { text += cell }
                else if column < 2 { text += cell + padding + "  " }
                else { text += padding + cell + "  " }
            }
            return text
        }
        print(render(header))
        print(render(widths.enumerated().map { String(repeating: "-", count: $0.offset == widths.count - 1 ? 5 : $0.element) }))
        for line in cells { print(render(line)) }
        print("")
        for (key, value) in summary { print("result \(key)=\(value)") }
    }
}

private func formatSeconds(_ seconds: Double) -> String {
    seconds >= 1 ? "\(formatFixed(seconds, places: 2)) s" : "\(formatFixed(seconds * 1e3, places: 2)) ms"
}
