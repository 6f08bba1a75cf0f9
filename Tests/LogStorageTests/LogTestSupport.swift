import KafkaProtocol
import LogStorage
import SimWorld
import TernCore

/// A clock for tests: wall-clock milliseconds that only move when told.
let testEpoch = Instant(nanoseconds: 1_700_000_000_000 * 1_000_000)

func makeBatch(records: Int, valueBytes: Int = 10, timestamp: Int64 = 1_700_000_000_000, seed: UInt64 = 1,
               epoch: Int32 = -1, baseOffset: Int64 = 0) -> [UInt8] {
    var random = DeterministicRandom(seed: seed)
    var builder = RecordBatchBuilder(baseTimestamp: timestamp)
    builder.baseOffset = baseOffset
    builder.partitionLeaderEpoch = epoch
    for index in 0..<records {
        var value = [UInt8](repeating: 0, count: valueBytes)
        random.fill(&value)
        builder.append(key: Array("key-\(index)".utf8), value: value)
    }
    return builder.build()
}

/// Delivers every outstanding sync of `disk` to `log` until the log has nothing in flight.
func settle(_ log: PartitionLog, on disk: SimDisk, limit: Int = 10_000) {
    var completions: [SyncCompletion] = []
    for _ in 0..<limit {
        disk.pollCompletions(into: &completions)
        for completion in completions { log.handle(completion) }
        completions.removeAll()
        if log.isIdle { return }
        guard let next = disk.nextCompletionTime else {
            if log.isIdle { return }
            Issue.record("log not idle but the disk has no sync in flight")
            return
        }
        disk.advance(to: next)
    }
    Issue.record("log did not settle within \(limit) steps")
}

import Testing

func headers(in bytes: [UInt8]) -> [RecordBatchHeader] {
    var result: [RecordBatchHeader] = []
    var position = 0
    while position < bytes.count {
        let header = try! RecordBatchHeader.validateFraming(bytes, at: position)
        result.append(header)
        position += header.totalSize
    }
    return result
}
