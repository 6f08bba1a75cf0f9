// `tern demo log DIR`: the partition log's life cycle in a few readable steps, on the real disk.
#if canImport(Glibc)
import Posix
import Glibc
#endif
import KafkaProtocol
import LogStorage
import Runtime
import TernCore

func runLogDemo(directory: String) {
    let partitionDirectory = joinPath(directory, "demo-0")
    let disk: PosixDisk
    do { disk = try PosixDisk() } catch { fail("cannot start the disk: \(error)") }
    defer { disk.close() }

    print("1. open \(partitionDirectory)")
    var log = openDemoLog(partitionDirectory, disk: disk)
    printRecoveryReport(log)
    // Appends must not go back in leader epoch; a rerun on the same directory keeps the latest one.
    let leaderEpoch = log.leaderEpochs.latestEpoch ?? LeaderEpoch(0)

    print("\n2. append three batches as leader (epoch \(leaderEpoch))")
    let batches: [[(key: String, value: String)]] = [
        [("user-1", "signed up"), ("user-2", "signed up")],
        [("user-1", "added a tern to the cart"), ("user-3", "signed up")],
        [("user-1", "checked out")],
    ]
    for records in batches {
        var builder = RecordBatchBuilder(baseTimestamp: Clocks.wallClockNow().milliseconds)
        for (index, record) in records.enumerated() {
            builder.append(key: Array(record.key.utf8), value: Array(record.value.utf8),
                           headers: [RecordHeader(key: "source", value: Array("demo".utf8))], timestampDelta: Int64(index))
        }
        var bytes = builder.build()
        let info: AppendInfo
        do { info = try log.appendAsLeader(&bytes, leaderEpoch: leaderEpoch, wallClock: Clocks.wallClockNow()) } catch {
            fail("append failed: \(error)")
        }
        print("   offsets \(info.firstOffset)...\(info.lastOffset): \(info.bytes) bytes, in the page cache only")
    }

    print("\n3. flush (one sync for all three) and wait until durable")
    print("   before: log end \(log.logEndOffset), durable offset \(log.durableOffset)")
    log.flush()
    pumpDemoCompletions(log, disk: disk) { log.durableOffset == log.logEndOffset }
    print("   after:  log end \(log.logEndOffset), durable offset \(log.durableOffset)")

    print("\n4. checkpoint (recovery point = \(log.durableOffset)), wait until idle, close")
    log.checkpoint()
    pumpDemoCompletions(log, disk: disk) { log.isIdle }
    log.close()

    print("\n5. reopen")
    log = openDemoLog(partitionDirectory, disk: disk)
    printRecoveryReport(log)
    pumpDemoCompletions(log, disk: disk) { log.isIdle }

    print("\n6. read everything back from offset \(log.logStartOffset)")
    var offset = log.logStartOffset
    while offset < log.logEndOffset {
        let result: LogReadResult
        do { result = try log.read(from: offset, maxBytes: 1 << 20) } catch { fail("read at \(offset) failed: \(error)") }
        var position = 0
        while position < result.bytes.count {
            do {
                let batch = try RecordBatch(result.bytes, at: position)
                print("   batch \(batch.header.baseOffset)...\(batch.header.lastOffset) epoch \(batch.header.partitionLeaderEpoch), CRC ok")
                for record in try batch.records() {
                    let key = record.key.map { String(decoding: $0, as: UTF8.self) } ?? "null"
                    let value = record.value.map { String(decoding: $0, as: UTF8.self) } ?? "null"
                    let headers = record.headers.map { "\($0.key)=\($0.value.map { String(decoding: $0, as: UTF8.self) } ?? "null")" }
                    print("     offset \(batch.header.baseOffset + Int64(record.offsetDelta))  \(key) -> \(value)  [\(headers.joined(separator: ", "))]")
                }
                position += batch.header.totalSize
            } catch {
                fail("batch at byte \(position) of the read does not decode: \(error)")
            }
        }
        offset = result.nextOffset
    }
    log.close()
    print("\ndone: the log stays in \(partitionDirectory); run again to append more, or remove it")
}

private func openDemoLog(_ directory: String, disk: PosixDisk) -> PartitionLog {
    let log: PartitionLog
    do { log = try PartitionLog.open(directory: directory, disk: disk, wallClock: Clocks.wallClockNow()) } catch {
        fail("cannot open the log in \(directory): \(error)")
    }
    guard disk.drive(log, until: { !log.hasDurabilityBarrier }) else { fail("log failed: \(log.failure ?? "")") }
    return log
}

private func printRecoveryReport(_ log: PartitionLog) {
    let report = log.recoveryReport
    print("   recovery: \(report.segmentsFound) segment(s) found, \(report.segmentsScanned) scanned, "
        + "\(report.batchesScanned) batch(es) / \(report.bytesScanned) bytes CRC-checked, "
        + "\(report.truncatedBytes) bytes truncated, \(report.indexesRebuilt) index(es) rebuilt"
        + (report.checkpointProblem.map { ", checkpoint problem: \($0)" } ?? ""))
    print("   log start \(log.logStartOffset), log end \(log.logEndOffset), durable \(log.durableOffset), "
        + "\(log.segmentCount) segment(s), \(log.sizeInBytes) bytes")
}

/// Hands sync completions to the log until `condition` holds; a demo has nothing else to do.
private func pumpDemoCompletions(_ log: PartitionLog, disk: PosixDisk, until condition: () -> Bool) {
    var completions: [SyncCompletion] = []
    var waitedMilliseconds = 0
    while !condition() {
        guard waitedMilliseconds < 60_000 else { fail("the disk did not complete its syncs within a minute") }
        if !disk.waitForCompletions(timeoutMilliseconds: 100) { waitedMilliseconds += 100 }
        completions.removeAll(keepingCapacity: true)
        disk.pollCompletions(into: &completions)
        for completion in completions { log.handle(completion) }
        if let failure = log.failure { fail("log failed: \(failure)") }
    }
}
