import KafkaProtocol
import LogStorage
import SimWorld
import Simulator
import TernCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The storage engine's crash property, over many seeds of the simulated disk: append random
/// batches, flush, checkpoint and truncate at random, crash (power loss that keeps a random prefix
/// of unsynced writes, torn and garbled, or a process kill), recover, and check that
/// - the recovered log is a prefix of a history the log really had (every truncation or recovery
///   starts a new one; until its durability barrier completes, a crash may bring the old one back),
/// - it holds every batch that was durable when the crash hit, byte for byte,
/// - every offset reads back from the batch that contains it (the index is right),
/// - the leader-epoch history equals the one the recovered batches carry.
@Suite struct LogRecoveryPropertyTests {
    struct Batch: Equatable {
        let baseOffset: Int64
        let nextOffset: Int64
        let bytes: [UInt8]
    }

    /// 300 seeds in CI; `TERN_RECOVERY_SEEDS=N` runs more on demand.
    static let seeds: Range<Int> = {
        guard let value = getenv("TERN_RECOVERY_SEEDS"), let count = Int(String(cString: value)) else { return 0..<300 }
        return 0..<count
    }()

    /// `TERN_TRACE_SEED=N swift test --filter LogRecoveryPropertyTests` prints seed N's operations.
    static let tracedSeed: UInt64? = {
        guard let value = getenv("TERN_TRACE_SEED") else { return nil }
        return UInt64(String(cString: value))
    }()

    @Test(arguments: seeds)
    func recoveredLogIsADurablePrefix(seed: Int) throws {
        var harness = try Harness(seed: UInt64(seed))
        for _ in 0..<4 {
            try harness.runUntilCrash()
            try harness.recoverAndCheck()
        }
    }

    struct Harness {
        let directory = "/log/t-0"
        var random: DeterministicRandom
        let disk: SimDisk
        let configuration: LogConfiguration
        var log: PartitionLog
        var now = Instant(nanoseconds: 1_700_000_000_000_000_000)
        /// The log's current contents, batch by batch.
        var history: [Batch] = []
        /// Earlier histories, one per truncation: a crash may land before a truncation is durable.
        var pastHistories: [[Batch]] = []
        var epoch: Int32 = 0
        var batchSeed: UInt64 = 0
        let seed: UInt64

        init(seed: UInt64) throws {
            self.seed = seed
            random = DeterministicRandom(seed: seed).stream("workload")
            disk = SimDisk(random: DeterministicRandom(seed: seed).stream("disk"),
                           configuration: SimDisk.Configuration(syncsCompleteInRequestOrder: seed % 2 == 0))
            // The log dir exists durably (an operator made it); the partition directory is the log's.
            try disk.makeDirectory("/log")
            let rootSync = disk.syncDirectory("/")
            var drained: [SyncCompletion] = []
            while drained.isEmpty, let due = disk.nextCompletionTime {
                disk.advance(to: due)
                disk.pollCompletions(into: &drained)
            }
            precondition(drained.map(\.token) == [rootSync], "the root directory sync completes alone")
            var configuration = LogConfiguration()
            configuration.segmentBytes = Int64(random.int(in: 5000...16_384))
            configuration.indexIntervalBytes = random.int(in: 64...2048)
            configuration.scanBufferBytes = 4096
            self.configuration = configuration
            log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: now)
        }

        var context: String { "seed \(seed)" }

        func trace(_ line: @autoclosure () -> String) {
            if LogRecoveryPropertyTests.tracedSeed == seed { print("[\(seed)] \(line())") }
        }

        mutating func runUntilCrash() throws {
            let steps = random.int(in: 5...120)
            for _ in 0..<steps {
                switch random.int(in: 0...99) {
                case 0..<55: try append()
                case 55..<70: log.flush(); trace("flush")
                case 70..<88: deliverCompletions()
                case 88..<94: log.checkpoint(); trace("checkpoint durable \(log.durableOffset) epochs \(log.leaderEpochs.entries.map { "\($0.epoch)@\($0.startOffset)" })")
                default: try truncate()
                }
            }
        }

        mutating func append() throws {
            if log.hasDurabilityBarrier { return }
            if random.chance(0.1) { epoch += 1 }
            batchSeed += 1
            var builder = RecordBatchBuilder(baseTimestamp: now.milliseconds)
            for index in 0..<random.int(in: 1...6) {
                var value = [UInt8](repeating: 0, count: random.int(in: 0...600))
                random.fill(&value)
                builder.append(key: Array("k\(batchSeed)-\(index)".utf8), value: value)
            }
            var bytes = builder.build()
            let info = try log.appendAsLeader(&bytes, leaderEpoch: LeaderEpoch(epoch), wallClock: now)
            history.append(Batch(baseOffset: info.firstOffset.rawValue, nextOffset: info.lastOffset.rawValue + 1, bytes: bytes))
            trace("append [\(info.firstOffset), \(info.lastOffset)] epoch \(epoch) segments \(log.segmentBaseOffsets)")
        }

        mutating func deliverCompletions() {
            now += .milliseconds(Int64(random.int(in: 0...6)))
            disk.advance(to: Instant(nanoseconds: disk.now.nanoseconds + Int64(random.int(in: 0...6_000_000))))
            var completions: [SyncCompletion] = []
            let barrierBefore = log.hasDurabilityBarrier
            disk.pollCompletions(into: &completions)
            for completion in completions { #expect(log.handle(completion), "\(context): every completion belongs to the log") }
            if !completions.isEmpty { trace("completed \(completions.map(\.token)) durable \(log.durableOffset)") }
            // Once a barrier (after a truncation or a recovery) is durable, the disk holds exactly
            // the current history: older ones can no longer come back.
            if barrierBefore && !log.hasDurabilityBarrier { pastHistories.removeAll() }
        }

        mutating func truncate() throws {
            guard !history.isEmpty, !log.hasDurabilityBarrier else { return }
            let target = Offset(random.int64(in: 0...log.logEndOffset.rawValue))
            pastHistories.append(history)
            let end = try log.truncate(to: target)
            trace("truncate to \(target) -> \(end) durable \(log.durableOffset) barrier \(log.hasDurabilityBarrier)")
            history.removeAll { $0.nextOffset > end.rawValue }
            #expect(history.last.map { $0.nextOffset } ?? 0 == end.rawValue, "\(context): truncation ends on a batch boundary")
            // A new leader follows a truncation: its epoch is higher than any before.
            epoch += 1
        }

        mutating func recoverAndCheck() throws {
            let durable = log.durableOffset.rawValue
            let mustKeep = history.filter { $0.nextOffset <= durable }
            log.close()
            let kill = random.chance(0.3)
            if kill { disk.killProcess() } else { disk.crash() }
            trace("\(kill ? "kill" : "power loss") with durable \(durable) end \(history.last?.nextOffset ?? 0)")
            log = try PartitionLog.open(directory: directory, configuration: configuration, disk: disk, wallClock: now)
            trace("recovered end \(log.logEndOffset) durable \(log.durableOffset) epochs \(log.leaderEpochs.entries.map { "\($0.epoch)@\($0.startOffset)" }) report \(log.recoveryReport)")
            #expect(log.corruption == nil, "\(context): a crash never corrupts synced data: \(String(describing: log.corruption))")
            let recovered = try readAll()
            let candidates = [history] + pastHistories
            let isPrefix = candidates.contains { candidate in
                recovered.count <= candidate.count && zip(recovered, candidate).allSatisfy { $0 == $1 }
            }
            #expect(isPrefix, "\(context): recovered log is not a prefix of any history (\(recovered.count) batches)")
            #expect(recovered.count >= mustKeep.count && Array(recovered.prefix(mustKeep.count)) == mustKeep,
                    "\(context): lost durable data: kept \(recovered.count) batches, \(mustKeep.count) were durable below \(durable)")
            try checkEveryOffsetReadsBack(recovered)
            #expect(log.leaderEpochs.entries == epochEntries(of: recovered), "\(context): leader epochs disagree with the batches")
            #expect(log.durableOffset.rawValue <= log.logEndOffset.rawValue)
            // Until recovery's barrier is durable, a crash may still bring back older histories.
            if recovered != history { pastHistories.append(history) }
            history = recovered
            epoch = max(epoch, log.leaderEpochs.latestEpoch?.rawValue ?? 0) + 1
        }

        func readAll() throws -> [Batch] {
            let read = try log.read(from: log.logStartOffset, maxBytes: Int.max)
            var batches: [Batch] = []
            var position = 0
            while position < read.bytes.count {
                let header = try RecordBatchHeader.validateFraming(read.bytes, at: position)
                batches.append(Batch(baseOffset: header.baseOffset, nextOffset: header.nextOffset,
                                     bytes: Array(read.bytes[position..<(position + header.totalSize)])))
                position += header.totalSize
            }
            #expect(batches.last.map { $0.nextOffset } ?? log.logStartOffset.rawValue == log.logEndOffset.rawValue,
                    "\(context): reading everything ends at the log end offset")
            return batches
        }

        func checkEveryOffsetReadsBack(_ batches: [Batch]) throws {
            for batch in batches {
                for offset in [batch.baseOffset, batch.nextOffset - 1] {
                    let read = try log.read(from: Offset(offset), maxBytes: 1)
                    #expect(read.firstBatchOffset == Offset(batch.baseOffset), "\(context): offset \(offset) read from the wrong batch")
                }
            }
        }

        func epochEntries(of batches: [Batch]) -> [LeaderEpochCache.Entry] {
            var entries: [LeaderEpochCache.Entry] = []
            for batch in batches {
                let epoch = LeaderEpoch(batch.bytes.loadBigEndian(Int32.self, at: RecordBatchLayout.partitionLeaderEpoch))
                if entries.last?.epoch != epoch { entries.append(.init(epoch: epoch, startOffset: Offset(batch.baseOffset))) }
            }
            return entries
        }
    }
}
