// `tern storage-crash-child DIR SEED`: the writing half of the storage crash property. It appends
// and syncs forever, printing each durable offset; a test kills it with SIGKILL at a random moment,
// reopens the log and checks that every promised offset survived and nothing was invented.
#if canImport(Glibc)
import Posix
import Glibc
#endif
import KafkaProtocol
import LogStorage
import Runtime
import TernCore

/// What the crash child writes, as pure functions of (seed, offset), so that a checker in another
/// process can say exactly which bytes every offset must hold. The tests use this same type
/// (`@testable import tern`), so writer and checker cannot drift apart.
enum StorageCrashWorkload {
    /// Small segments and a dense index, so that a few hundred milliseconds of appends roll many
    /// segments and write many index entries: the kill then lands among rolls and index writes too.
    static var configuration: LogConfiguration {
        var configuration = LogConfiguration()
        configuration.segmentBytes = 256 << 10
        configuration.indexIntervalBytes = 1024
        return configuration
    }

    /// Records in the batch starting at `baseOffset`. Drawn from the offset, so a checker knows
    /// every batch boundary as well as every record.
    static func recordCount(seed: UInt64, baseOffset: Offset) -> Int {
        var random = DeterministicRandom(seed: seed ^ UInt64(bitPattern: baseOffset.rawValue) ^ 0xBA7C_0000_0000_0000)
        return random.int(in: 1...16)
    }

    static func key(offset: Offset) -> [UInt8] { Array("o\(offset.rawValue)".utf8) }

    /// Mostly small values, now and then a larger one, so batches straddle index intervals and
    /// some outgrow the read-ahead of a single index interval.
    static func value(seed: UInt64, offset: Offset) -> [UInt8] {
        var random = DeterministicRandom(seed: seed ^ UInt64(bitPattern: offset.rawValue))
        let length = random.chance(0.05) ? random.int(in: 400...6_000) : random.int(in: 0...300)
        var value = [UInt8](repeating: 0, count: length)
        random.fill(&value)
        return value
    }

    /// The batch that must start at `baseOffset`, before the leader assigns its offset and epoch.
    static func batch(seed: UInt64, baseOffset: Offset, timestampMilliseconds: Int64) -> [UInt8] {
        var builder = RecordBatchBuilder(baseTimestamp: timestampMilliseconds)
        for offset in baseOffset..<(baseOffset + Int64(recordCount(seed: seed, baseOffset: baseOffset))) {
            builder.append(key: key(offset: offset), value: value(seed: seed, offset: offset))
        }
        return builder.build()
    }
}

/// Syncs requested and not yet durable before the child stops appending and waits: enough to keep
/// syncs overlapping appends (group commit), few enough that the durable offset keeps up.
private let maximumFlushesInFlight = 4
/// A checkpoint (recovery point) every this many flushes, so a kill finds recent and stale ones.
private let flushesPerCheckpoint = 16
/// A new leader epoch every this many flushes (and at every start), so epoch history is recovered too.
private let flushesPerLeaderEpoch = 200

func runStorageCrashChild(directory: String, seed: UInt64) -> Never {
    let disk: PosixDisk
    let log: PartitionLog
    do {
        disk = try PosixDisk()
        log = try PartitionLog.open(directory: directory, configuration: StorageCrashWorkload.configuration,
                                    disk: disk, wallClock: Clocks.wallClockNow())
    } catch {
        fail("cannot open the log in \(directory): \(error)")
    }
    if let corruption = log.corruption { fail("recovered log is corrupt: \(corruption)") }
    guard disk.drive(log, until: { !log.hasDurabilityBarrier }) else { fail("log failed: \(log.failure ?? "")") }
    announce("ready \(log.logEndOffset.rawValue)")

    // Scheduling choices differ from run to run on one directory (the start offset differs), while
    // the bytes at each offset depend on the seed and the offset only.
    var random = DeterministicRandom(seed: seed).stream("storage-crash-child", Int(log.logEndOffset.rawValue))
    var leaderEpoch = LeaderEpoch((log.leaderEpochs.latestEpoch?.rawValue ?? -1) + 1)
    var reportedDurableOffset = Offset.unknown
    var flushTargets: [Offset] = []
    var completions: [SyncCompletion] = []
    var flushes = 0

    func collectCompletions() {
        completions.removeAll(keepingCapacity: true)
        disk.pollCompletions(into: &completions)
        for completion in completions where !log.handle(completion) {
            fail("a sync completion the log does not own: \(completion.token)")
        }
        if let failure = log.failure { fail("log failed: \(failure)") }
        flushTargets.removeAll { $0 <= log.durableOffset }
        if log.durableOffset > reportedDurableOffset {
            reportedDurableOffset = log.durableOffset
            // The promise the parent checks: printed only after the sync behind it completed.
            announce("durable \(reportedDurableOffset.rawValue)")
        }
    }

    while true {
        // Several appends per flush, sometimes two batches in one append, as a produce request has.
        for _ in 0..<random.int(in: 1...4) {
            let now = Clocks.wallClockNow()
            var batches = StorageCrashWorkload.batch(seed: seed, baseOffset: log.logEndOffset, timestampMilliseconds: now.milliseconds)
            if random.chance(0.25) {
                let next = log.logEndOffset + Int64(StorageCrashWorkload.recordCount(seed: seed, baseOffset: log.logEndOffset))
                batches += StorageCrashWorkload.batch(seed: seed, baseOffset: next, timestampMilliseconds: now.milliseconds)
            }
            do { try log.appendAsLeader(&batches, leaderEpoch: leaderEpoch, wallClock: now) } catch {
                fail("append at \(log.logEndOffset) failed: \(error)")
            }
        }
        log.flush()
        flushTargets.append(log.logEndOffset)
        flushes += 1
        if flushes % flushesPerCheckpoint == 0 { log.checkpoint() }
        if flushes % flushesPerLeaderEpoch == 0 { leaderEpoch = leaderEpoch.next }

        collectCompletions()
        while flushTargets.count > maximumFlushesInFlight {
            disk.waitForCompletions(timeoutMilliseconds: 1_000)
            collectCompletions()
        }
    }
}

/// One line on stdout, flushed at once: the reader may kill this process right after reading it.
private func announce(_ line: String) {
    print(line)
    // fflush(nil) flushes every output stream: the `stdout` global is not concurrency-safe in Swift 6.
    fflush(nil)
}
