@testable import Broker
import KafkaProtocol
import LogStorage
import SimWorld
import Simulator
import TernCore
import Testing

/// Loading a partition's producer state: a snapshot is used only while the log still has the
/// batch it was taken after; otherwise the log is replayed.
@Suite struct ProducerStateLoadingTests {
    let directory = "/data/orders-0"

    func idempotentBatch(producer: Int64, sequence: Int32) -> [UInt8] {
        var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
        builder.producerID = producer
        builder.producerEpoch = 0
        builder.baseSequence = sequence
        builder.append(key: nil, value: [UInt8(sequence)])
        return builder.build()
    }

    /// A synced log of producer 7's batches with sequences 0, 1, 2 (offsets 0...2).
    func makeLog() throws -> (PartitionLog, SimDisk) {
        var configuration = SimDisk.Configuration.benignCrashes
        configuration.directoryCreationIsDurable = true
        let disk = SimDisk(random: DeterministicRandom(seed: 3), configuration: configuration)
        try disk.makeDirectory("/data")
        let log = try PartitionLog.open(directory: directory, disk: disk, wallClock: .zero)
        drain(log, disk)
        for sequence in Int32(0)..<3 {
            var batch = idempotentBatch(producer: 7, sequence: sequence)
            try log.appendAsLeader(&batch, leaderEpoch: LeaderEpoch(0), wallClock: .zero)
        }
        log.flush()
        drain(log, disk)
        return (log, disk)
    }

    func drain(_ log: PartitionLog, _ disk: SimDisk) {
        var completions: [SyncCompletion] = []
        for _ in 0..<1_000 where !log.isIdle {
            if let next = disk.nextCompletionTime { disk.advance(to: next) }
            disk.pollCompletions(into: &completions)
            for completion in completions { log.handle(completion) }
            completions.removeAll()
        }
    }

    func writeSnapshot(_ table: ProducerStateTable, at offset: Offset, boundary: UInt32, on disk: SimDisk) throws {
        let file = try disk.open(directory + "/" + ProducerStateSnapshotFiles.fileName(for: offset), create: true)
        try disk.write(file, at: 0, table.encodeSnapshot(at: offset, boundaryChecksum: boundary))
        disk.close(file)
    }

    @Test func withoutSnapshotsTheLogIsReplayed() throws {
        let (log, disk) = try makeLog()
        let state = BrokerDataPlane.loadProducerState(from: log, disk: disk)
        #expect(state.endOffset == Offset(3))
        #expect(state.entry(for: ProducerID(7))?.lastSequence == 2)
    }

    @Test func aMatchingSnapshotIsUsedAndAStaleOneIgnored() throws {
        let (log, disk) = try makeLog()
        let boundary = try #require(BrokerDataPlane.boundaryChecksum(of: log, at: Offset(2)))
        // A table that the log alone could not produce (producer 9), so its use is visible.
        var marked = ProducerStateTable(endOffset: .zero)
        var foreign = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
        foreign.producerID = 9
        foreign.producerEpoch = 0
        foreign.baseSequence = 0
        foreign.append(key: nil, value: [9])
        marked.recordAppended(try RecordBatchHeader.read(foreign.build()), firstOffset: Offset(0))
        marked.advanceEndOffset(to: Offset(2))

        try writeSnapshot(marked, at: Offset(2), boundary: boundary, on: disk)
        let used = BrokerDataPlane.loadProducerState(from: log, disk: disk)
        #expect(used.entry(for: ProducerID(9)) != nil, "the snapshot was loaded")
        #expect(used.endOffset == Offset(3), "and the batch after it replayed")

        try writeSnapshot(marked, at: Offset(2), boundary: boundary ^ 1, on: disk)
        let replayed = BrokerDataPlane.loadProducerState(from: log, disk: disk)
        #expect(replayed.entry(for: ProducerID(9)) == nil, "a snapshot whose boundary batch changed is ignored")
        #expect(replayed.entry(for: ProducerID(7))?.lastSequence == 2)
    }
}
