import KafkaProtocol
import LogStorage
import NodeKit
@testable import Raft
import SimWorld
import Testing
import TernCore

/// What RaftNode leaves on disk: the quorum-state file and the metadata log's record batches.
struct RaftStorageTests {
    @Test func hardStateRoundTripsAndRejectsDamage() throws {
        let state = RaftHardState(term: Term(42), votedFor: NodeID(3))
        let bytes = HardStateFile.encode(state)
        #expect(bytes.count == HardStateFile.encodedSize)
        #expect(try HardStateFile.decode(bytes) == state)
        #expect(try HardStateFile.decode(HardStateFile.encode(.initial)) == .initial)
        for position in bytes.indices {
            var damaged = bytes
            damaged[position] ^= 0x10
            #expect(throws: DecodeError.self) { try HardStateFile.decode(damaged) }
        }
        #expect(throws: DecodeError.self) { try HardStateFile.decode(Array(bytes.dropLast())) }
        #expect(throws: DecodeError.self) { try HardStateFile.decode(bytes + [0]) }
    }

    /// Log and hard state are synced separately: after a crash the log may hold entries of a term
    /// the hard state never recorded. Recovery adopts that term, without a vote.
    @Test func recoveryReconcilesTheTermWithTheLog() {
        let stored = RaftHardState(term: Term(2), votedFor: NodeID(3))
        #expect(RaftNode.reconcile(stored, lastLogTerm: Term(4)) == RaftHardState(term: Term(4), votedFor: nil))
        #expect(RaftNode.reconcile(stored, lastLogTerm: Term(2)) == stored)
        #expect(RaftNode.reconcile(stored, lastLogTerm: Term(1)) == stored)
    }

    @Test func entriesAreKafkaRecordBatches() throws {
        let command = RaftLogEntry(index: LogIndex(5), term: Term(3), payload: Array("record".utf8))
        let bytes = RaftLogStore.encodeBatch(command, timestampMilliseconds: 1_000)
        let batch = try RecordBatch(bytes)
        #expect(batch.header.baseOffset == 4, "index 5 is offset 4")
        #expect(batch.header.partitionLeaderEpoch == 3, "the term is the leader epoch")
        #expect(!batch.attributes.isControl)
        #expect(try batch.records().map(\.value) == [Array("record".utf8)])
        #expect(try RaftLogStore.decodeEntry(bytes, at: 0, expectedOffset: Offset(4)).entry == command)

        let leaderChange = RaftLogEntry(index: LogIndex(6), term: Term(4), kind: .leaderChange, payload: [])
        let controlBytes = RaftLogStore.encodeBatch(leaderChange, timestampMilliseconds: 1_000)
        #expect(try RecordBatch(controlBytes).attributes.isControl)
        #expect(try RaftLogStore.decodeEntry(controlBytes, at: 0, expectedOffset: Offset(5)).entry == leaderChange)
        #expect(throws: RaftStorageError.self) { try RaftLogStore.decodeEntry(controlBytes, at: 0, expectedOffset: Offset(6)) }
    }

    @Test func damagedEntryBytesNeverTrap() {
        let bytes = RaftLogStore.encodeBatch(RaftLogEntry(index: LogIndex(1), term: Term(1), payload: Array("payload".utf8)),
                                             timestampMilliseconds: 0)
        var random = DeterministicRandom(seed: 5)
        for _ in 0..<5_000 {
            var damaged = bytes
            damaged[random.int(in: 0...(bytes.count - 1))] = UInt8(truncatingIfNeeded: random.next())
            if random.chance(0.3) { damaged.removeLast(random.int(in: 1...(bytes.count - 1))) }
            _ = try? RaftLogStore.decodeEntry(damaged, at: 0, expectedOffset: .zero)
        }
    }

    /// The segment files a cluster leaves behind read back, batch by batch, as the committed log.
    @Test func theMetadataLogOnDiskMatchesTheCommittedLog() throws {
        let cluster = SimulatedCluster(nodeCount: 3, seed: 21)
        cluster.startAll()
        let leader = try #require(cluster.awaitLeader())
        for number in 0..<5 { cluster.proposeOnLeader("entry-\(number)") }
        cluster.run(for: .seconds(1))
        let entries = try #require(leader.core?.entries)
        for id in cluster.voters {
            let directory = SimulatedCluster.directory(id)
            let names = try #require(cluster.hosts[Int(id.rawValue) - 1].disk.durableListing(of: directory))
            #expect(names.contains("quorum-state"))
            var stored: [RaftLogEntry] = []
            for name in names where name.hasSuffix(".log") {
                let bytes = try #require(cluster.hosts[Int(id.rawValue) - 1].disk.durableContents(of: directory + "/" + name))
                var position = 0
                while position < bytes.count {
                    let decoded = try RaftLogStore.decodeEntry(bytes, at: position, expectedOffset: Offset(Int64(stored.count)))
                    stored.append(decoded.entry)
                    position = decoded.end
                }
            }
            #expect(stored == entries, "node \(id)")
        }
    }

    @Test func aCorruptQuorumStateHaltsTheNode() throws {
        let disk = SimDisk(random: DeterministicRandom(seed: 3))
        try disk.makeDirectory("/node1/__cluster_metadata-0")
        let file = try disk.open("/node1/__cluster_metadata-0/quorum-state", create: true)
        try disk.write(file, at: 0, [UInt8](repeating: 7, count: 21))
        disk.close(file)
        let configuration = RaftNode.Configuration(raft: RaftConfiguration(nodeID: NodeID(1), voters: [NodeID(1), NodeID(2), NodeID(3)]))
        let node = RaftNode(environment: NodeEnvironment(nodeID: NodeID(1), disk: disk, dataDirectory: "/node1",
                                                         random: DeterministicRandom(seed: 1)), configuration: configuration)
        var effects: [NodeEffect] = []
        node.handle(.start, now: .zero, effects: &effects)
        guard case let .halt(reason)? = effects.first else {
            Issue.record("expected a halt, got \(effects)")
            return
        }
        #expect(reason.contains("quorum-state"))
        #expect(!node.isRunning)
    }

    @Test func aFailedSyncMakesTheNodeExit() throws {
        var diskConfiguration = SimDisk.Configuration()
        diskConfiguration.syncFailureProbability = 1
        let disk = SimDisk(random: DeterministicRandom(seed: 4), configuration: diskConfiguration)
        let configuration = RaftNode.Configuration(raft: RaftConfiguration(nodeID: NodeID(1), voters: [NodeID(1)]))
        let node = RaftNode(environment: NodeEnvironment(nodeID: NodeID(1), disk: disk, dataDirectory: "/node1",
                                                         random: DeterministicRandom(seed: 1)), configuration: configuration)
        var effects: [NodeEffect] = []
        node.handle(.start, now: .zero, effects: &effects)
        var now = Instant.zero
        while effects.isEmpty, let due = disk.nextCompletionTime {
            disk.advance(to: due)
            now = due
            var completions: [SyncCompletion] = []
            disk.pollCompletions(into: &completions)
            for completion in completions { node.handle(.syncCompleted(completion), now: now, effects: &effects) }
        }
        guard case .exit? = effects.first else {
            Issue.record("expected an exit, got \(effects)")
            return
        }
        #expect(!node.isRunning)
    }
}
