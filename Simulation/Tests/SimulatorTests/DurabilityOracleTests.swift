import Broker
import KafkaProtocol
import LogStorage
import Raft
@testable import SimWorld
@testable import Simulator
import TernCore
import Testing

/// The durability oracle must fail on every early send it exists to catch: each test builds the
/// disks (or the durable Raft state) a bad history leaves and expects the violation, next to the
/// good history it accepts.
@Suite struct DurabilityOracleTests {
    static let directory = "/tern/topic-0-0"
    static let segment = directory + "/00000000000000000000.log"

    /// Completes every sync the disk has in flight.
    static func settle(_ disk: SimDisk) {
        while let due = disk.nextCompletionTime { disk.advance(to: due) }
        var completions: [SyncCompletion] = []
        disk.pollCompletions(into: &completions)
    }

    static func makeDisk(_ seed: UInt64) -> SimDisk {
        SimDisk(random: DeterministicRandom(seed: seed), configuration: .benignCrashes)
    }

    /// A producer's batch of `count` records as the leader stores it at `baseOffset`.
    static func storedBatch(baseOffset: Int64, count: Int, sequence: Int32, epoch: Int32 = 1) -> [UInt8] {
        var builder = RecordBatchBuilder(baseTimestamp: 1_000)
        builder.producerID = 7
        builder.producerEpoch = 0
        builder.baseSequence = sequence
        for index in 0..<count { builder.append(key: nil, value: [UInt8(truncatingIfNeeded: Int(sequence) + index)]) }
        var bytes = builder.build()
        RecordBatchHeader.assign(baseOffset: baseOffset, partitionLeaderEpoch: epoch, in: &bytes, at: 0)
        return bytes
    }

    /// Writes `bytes` at the end of the segment file; syncs it (and every directory above it,
    /// so the file is durably reachable) when `synced`.
    static func append(_ bytes: [UInt8], to disk: SimDisk, synced: Bool, syncDirectories: Bool = true) throws {
        try disk.makeDirectory(directory)
        let file = try disk.open(segment, create: true)
        defer { disk.close(file) }
        try disk.write(file, at: try disk.size(file), bytes)
        guard synced else { return }
        _ = disk.sync(file)
        if syncDirectories { for path in [directory, "/tern", "/"] { _ = disk.syncDirectory(path) } }
        settle(disk)
    }

    static func claim(_ stored: [UInt8], baseOffset: Int64) throws -> DurabilityOracle.AcknowledgedBatch {
        let batch = try #require(ProducedBatch.batches(in: stored)?.first)
        return .init(leader: NodeID(101), client: NodeID(1001), correlationID: 9,
                     topicPartition: TopicPartition(topic: "topic-0", partition: 0), baseOffset: Offset(baseOffset), batch: batch)
    }

    // MARK: acks=all answers

    @Test func anAcknowledgementSyncedOnMinInSyncReplicasPasses() throws {
        let disks = [(NodeID(101), Self.makeDisk(1)), (NodeID(102), Self.makeDisk(2)), (NodeID(103), Self.makeDisk(3))]
        let first = Self.storedBatch(baseOffset: 0, count: 2, sequence: 0)
        let second = Self.storedBatch(baseOffset: 2, count: 3, sequence: 2)
        for (_, disk) in disks.prefix(2) {
            try Self.append(first, to: disk, synced: true)
            try Self.append(second, to: disk, synced: true)
        }
        let oracle = DurabilityOracle(minInSyncReplicas: 2)
        #expect(oracle.check(try Self.claim(first, baseOffset: 0), directory: Self.directory, disks: disks) == .ok)
        #expect(oracle.check(try Self.claim(second, baseOffset: 2), directory: Self.directory, disks: disks) == .ok)
    }

    @Test func anAcknowledgementAheadOfTheFollowersSyncIsCaught() throws {
        let disks = [(NodeID(101), Self.makeDisk(1)), (NodeID(102), Self.makeDisk(2)), (NodeID(103), Self.makeDisk(3))]
        let batch = Self.storedBatch(baseOffset: 0, count: 2, sequence: 0)
        try Self.append(batch, to: disks[0].1, synced: true)
        try Self.append(batch, to: disks[1].1, synced: false)  // written, sync still in flight
        let result = DurabilityOracle(minInSyncReplicas: 2).check(try Self.claim(batch, baseOffset: 0),
                                                                   directory: Self.directory, disks: disks)
        guard case let .violation(message) = result else {
            Issue.record("an acknowledgement with the batch synced on one broker of two was not reported")
            return
        }
        #expect(message.contains("n101 synced") && message.contains("n102 page cache only") && message.contains("n103 absent"), "\(message)")
    }

    @Test func copiesSyncedEarlierCountWithThoseSyncedNow() throws {
        let disks = [(NodeID(101), Self.makeDisk(1)), (NodeID(102), Self.makeDisk(2)), (NodeID(103), Self.makeDisk(3))]
        let batch = Self.storedBatch(baseOffset: 0, count: 2, sequence: 0)
        try Self.append(batch, to: disks[0].1, synced: true)
        let claim = try Self.claim(batch, baseOffset: 0)
        #expect(DurabilityOracle(minInSyncReplicas: 2).check(claim, directory: Self.directory, disks: disks,
                                                              syncedEarlier: [NodeID(102)]) == .ok)
        let result = DurabilityOracle(minInSyncReplicas: 3).check(claim, directory: Self.directory, disks: disks,
                                                                   syncedEarlier: [NodeID(102)])
        guard case let .violation(message) = result else {
            Issue.record("two copies were enough for min.insync.replicas 3")
            return
        }
        #expect(message.contains("synced on 2 broker(s)") && message.contains("n102 synced earlier, since gone"), "\(message)")
    }

    @Test func aFileWhoseDirectoryEntryIsNotDurableDoesNotCount() throws {
        let disks = [(NodeID(101), Self.makeDisk(1)), (NodeID(102), Self.makeDisk(2))]
        let batch = Self.storedBatch(baseOffset: 0, count: 1, sequence: 0)
        try Self.append(batch, to: disks[0].1, synced: true)
        // The data is synced but the new file's name is not: a power loss takes the whole file.
        try Self.append(batch, to: disks[1].1, synced: true, syncDirectories: false)
        let result = DurabilityOracle(minInSyncReplicas: 2).check(try Self.claim(batch, baseOffset: 0),
                                                                   directory: Self.directory, disks: disks)
        guard case .violation = result else {
            Issue.record("a copy in a file no durable directory entry reaches was counted")
            return
        }
    }

    @Test func anotherBatchAtTheSameOffsetDoesNotCount() throws {
        let disks = [(NodeID(101), Self.makeDisk(1)), (NodeID(102), Self.makeDisk(2))]
        let acknowledged = Self.storedBatch(baseOffset: 0, count: 2, sequence: 0)
        try Self.append(acknowledged, to: disks[0].1, synced: true)
        // A diverged follower synced a batch of another epoch at offset 0.
        try Self.append(Self.storedBatch(baseOffset: 0, count: 2, sequence: 40, epoch: 0), to: disks[1].1, synced: true)
        let result = DurabilityOracle(minInSyncReplicas: 2).check(try Self.claim(acknowledged, baseOffset: 0),
                                                                   directory: Self.directory, disks: disks)
        guard case .violation = result else {
            Issue.record("a different batch at the acknowledged offset was counted as a copy")
            return
        }
    }

    @Test func aSegmentRewrittenSinceTheLastCheckIsReadAgain() throws {
        let disks = [(NodeID(101), Self.makeDisk(1)), (NodeID(102), Self.makeDisk(2))]
        let first = Self.storedBatch(baseOffset: 0, count: 2, sequence: 0)
        let second = Self.storedBatch(baseOffset: 2, count: 1, sequence: 2)
        for (_, disk) in disks { try Self.append(first, to: disk, synced: true) }
        let oracle = DurabilityOracle(minInSyncReplicas: 2)
        #expect(oracle.check(try Self.claim(first, baseOffset: 0), directory: Self.directory, disks: disks) == .ok)
        for (_, disk) in disks { try Self.append(second, to: disk, synced: true) }
        #expect(oracle.check(try Self.claim(second, baseOffset: 2), directory: Self.directory, disks: disks) == .ok,
                "a segment that grew is read on from where the last check stopped")
        // n102 truncates (a diverged follower) and syncs another batch at offset 0.
        let file = try disks[1].1.open(Self.segment, create: false)
        try disks[1].1.truncate(file, to: 0)
        try disks[1].1.write(file, at: 0, Self.storedBatch(baseOffset: 0, count: 2, sequence: 90))
        _ = disks[1].1.sync(file)
        disks[1].1.close(file)
        Self.settle(disks[1].1)
        guard case .violation = oracle.check(try Self.claim(first, baseOffset: 0), directory: Self.directory, disks: disks) else {
            Issue.record("a copy overwritten since the last check still counted")
            return
        }
    }

    @Test func latentCorruptionOfASyncedCopyIsNotAMissingSync() throws {
        let disks = [(NodeID(101), Self.makeDisk(1)), (NodeID(102), Self.makeDisk(2))]
        let batch = Self.storedBatch(baseOffset: 0, count: 4, sequence: 0)
        for (_, disk) in disks { try Self.append(batch, to: disk, synced: true) }
        var random = DeterministicRandom(seed: 5)
        let corrupted = disks[1].1.corruptDurableSector(using: &random, where: { $0.hasSuffix(".log") })
        #expect(corrupted?.path == Self.segment)
        #expect(disks[1].1.durableContents(of: Self.segment) != batch, "the rot changed the durable bytes")
        #expect(disks[1].1.durableContentsAsWritten(of: Self.segment) == batch)
        #expect(DurabilityOracle(minInSyncReplicas: 2).check(try Self.claim(batch, baseOffset: 0),
                                                              directory: Self.directory, disks: disks) == .ok)
    }

    @Test func theImageAsWrittenFollowsLaterSyncsAndCrashes() throws {
        let disk = Self.makeDisk(1)
        let first = Self.storedBatch(baseOffset: 0, count: 4, sequence: 0)
        try Self.append(first, to: disk, synced: true)
        var random = DeterministicRandom(seed: 5)
        _ = disk.corruptDurableSector(using: &random, where: { _ in true })
        let second = Self.storedBatch(baseOffset: 4, count: 1, sequence: 4)
        try Self.append(second, to: disk, synced: true)
        #expect(disk.durableContentsAsWritten(of: Self.segment) == first + second)
        try Self.append(Self.storedBatch(baseOffset: 5, count: 1, sequence: 5), to: disk, synced: false)
        disk.crash()  // benign crashes drop the unsynced batch
        #expect(disk.durableContentsAsWritten(of: Self.segment) == first + second)
        disk.checkInvariants()
    }

    @Test func onlySegmentChangesAndEntriesAboveThemAreLookedAt() {
        let segment = DurableChange(path: Self.segment, isEntry: false)
        #expect(SyncedCopyWatch.mayAddCopies(segment, in: Self.directory))
        #expect(SyncedCopyWatch.mayAddCopies(DurableChange(path: Self.segment, isEntry: true), in: Self.directory))
        #expect(!SyncedCopyWatch.mayAddCopies(segment, in: "/tern/topic-0-1"))
        for other in ["/tern/topic-0-0/partition.checkpoint", "/tern/topic-0-0/00000000000000000000.index",
                      "/tern/topic-0-0/0000000000000000000x.log", "/tern/topic-0-0/sub/00000000000000000000.log"] {
            #expect(!SyncedCopyWatch.mayAddCopies(DurableChange(path: other, isEntry: false), in: Self.directory), "\(other)")
            #expect(!SyncedCopyWatch.mayAddCopies(DurableChange(path: other, isEntry: true), in: Self.directory), "\(other)")
        }
        for above in [Self.directory, "/tern"] {
            #expect(SyncedCopyWatch.mayAddCopies(DurableChange(path: above, isEntry: true), in: Self.directory), "\(above)")
            #expect(!SyncedCopyWatch.mayAddCopies(DurableChange(path: above, isEntry: false), in: Self.directory), "\(above)")
        }
        #expect(!SyncedCopyWatch.mayAddCopies(DurableChange(path: "/tern/topic-0", isEntry: true), in: Self.directory),
                "a sibling whose name is a prefix")
    }

    // MARK: Raft messages

    static func message(_ from: Int32, to: Int32, term: Int64, _ body: RaftMessageBody) -> RaftMessage {
        RaftMessage(from: NodeID(from), to: NodeID(to), term: Term(term), body: body)
    }

    static func durable(term: Int64, vote: Int32?, logTerms: [Int64] = []) -> DurableRaftState {
        DurableRaftState(hardState: RaftHardState(term: Term(term), votedFor: vote.map { NodeID($0) }),
                         logTerms: logTerms.map { Term($0) })
    }

    static func isViolation(_ result: CheckResult) -> Bool {
        if case .violation = result { return true }
        return false
    }

    @Test func aVoteGrantedBeforeItIsDurableIsCaught() {
        let grant = Self.message(1, to: 2, term: 5, .voteResponse(isPreVote: false, granted: true))
        #expect(DurabilityOracle.judge(grant, durable: Self.durable(term: 5, vote: 2), currentTerms: nil) == .ok)
        #expect(DurabilityOracle.judge(grant, durable: Self.durable(term: 6, vote: nil), currentTerms: nil) == .ok,
                "a newer durable term keeps the node from voting in term 5 again")
        #expect(Self.isViolation(DurabilityOracle.judge(grant, durable: Self.durable(term: 5, vote: nil), currentTerms: nil)))
        #expect(Self.isViolation(DurabilityOracle.judge(grant, durable: Self.durable(term: 5, vote: 3), currentTerms: nil)))
        #expect(Self.isViolation(DurabilityOracle.judge(grant, durable: Self.durable(term: 4, vote: 2), currentTerms: nil)))
        // A term adopted from the log after a crash comes with no vote.
        let fromLog = Self.durable(term: 4, vote: 2, logTerms: [1, 5])
        #expect(Self.isViolation(DurabilityOracle.judge(grant, durable: fromLog, currentTerms: nil)))
    }

    @Test func aVoteRequestBeforeTheCandidatesOwnVoteIsDurableIsCaught() {
        let request = Self.message(1, to: 2, term: 5, .voteRequest(RaftVoteRequest(isPreVote: false, lastLogIndex: .zero, lastLogTerm: .zero)))
        #expect(DurabilityOracle.judge(request, durable: Self.durable(term: 5, vote: 1), currentTerms: nil) == .ok)
        #expect(Self.isViolation(DurabilityOracle.judge(request, durable: Self.durable(term: 4, vote: 1), currentTerms: nil)))
        #expect(Self.isViolation(DurabilityOracle.judge(request, durable: Self.durable(term: 5, vote: nil), currentTerms: nil)))
    }

    @Test func preVotesSpeakForNoDurableTerm() {
        let preVote = Self.message(1, to: 2, term: 6, .voteRequest(RaftVoteRequest(isPreVote: true, lastLogIndex: .zero, lastLogTerm: .zero)))
        let preGrant = Self.message(2, to: 1, term: 6, .voteResponse(isPreVote: true, granted: true))
        let state = Self.durable(term: 5, vote: nil)
        #expect(DurabilityOracle.judge(preVote, durable: state, currentTerms: nil) == .ok)
        #expect(DurabilityOracle.judge(preGrant, durable: state, currentTerms: nil) == .ok)
        let preReject = Self.message(2, to: 1, term: 6, .voteResponse(isPreVote: true, granted: false))
        #expect(Self.isViolation(DurabilityOracle.judge(preReject, durable: state, currentTerms: nil)),
                "a rejection carries the sender's own term")
    }

    @Test func aTermSentBeforeItIsDurableIsCaught() {
        let append = Self.message(1, to: 2, term: 7, .appendEntries(RaftAppendEntries(previousIndex: .zero, previousTerm: .zero,
                                                                                       entries: [], leaderCommit: .zero)))
        let heartbeatResponse = Self.message(2, to: 1, term: 7, .heartbeatResponse)
        for message in [append, heartbeatResponse] {
            #expect(DurabilityOracle.judge(message, durable: Self.durable(term: 7, vote: 1), currentTerms: nil) == .ok)
            #expect(Self.isViolation(DurabilityOracle.judge(message, durable: Self.durable(term: 6, vote: 1), currentTerms: nil)))
        }
        #expect(DurabilityOracle.judge(append, durable: Self.durable(term: 6, vote: 1, logTerms: [7]), currentTerms: nil) == .ok,
                "a restart adopts the durable log's newer term")
    }

    @Test func anAcknowledgedAppendAheadOfTheDurableLogIsCaught() {
        let accepted = Self.message(2, to: 1, term: 3, .appendAccepted(matchIndex: LogIndex(3)))
        let memory: [Int64: Int64] = [1: 1, 2: 3, 3: 3]
        let current: (LogIndex) -> Term? = { index in memory[index.rawValue].map { Term($0) } }
        #expect(DurabilityOracle.judge(accepted, durable: Self.durable(term: 3, vote: nil, logTerms: [1, 3, 3]), currentTerms: current) == .ok)
        #expect(Self.isViolation(DurabilityOracle.judge(accepted, durable: Self.durable(term: 3, vote: nil, logTerms: [1, 3]),
                                                        currentTerms: current)),
                "entry 3 is not durable yet")
        // The conflicting entry 2 was replaced in memory, but the rewrite is not durable yet.
        #expect(Self.isViolation(DurabilityOracle.judge(accepted, durable: Self.durable(term: 3, vote: nil, logTerms: [1, 2, 3]),
                                                        currentTerms: current)))
    }

    @Test func theDurableRaftStateIsReadFromTheDurableImageOnly() throws {
        let disk = Self.makeDisk(1)
        let directory = "/tern/__cluster_metadata-0"
        try disk.makeDirectory(directory)
        var hardState = Array("RAFT".utf8) + [1]
        hardState += withUnsafeBytes(of: Int64(4).bigEndian, Array.init)
        hardState += withUnsafeBytes(of: Int32(2).bigEndian, Array.init)
        hardState += withUnsafeBytes(of: CRC32C.checksum(hardState).bigEndian, Array.init)
        let stateFile = try disk.open(directory + "/quorum-state", create: true)
        try disk.write(stateFile, at: 0, hardState)
        let logFile = try disk.open(directory + "/00000000000000000000.log", create: true)
        for (index, term) in [1, 1, 4].enumerated() {
            try disk.write(logFile, at: try disk.size(logFile), Self.storedBatch(baseOffset: Int64(index), count: 1, sequence: 0, epoch: Int32(term)))
        }
        #expect(DurableRaftState.read(from: disk, directory: directory) == DurableRaftState(hardState: nil, logTerms: []),
                "nothing is synced yet")
        _ = disk.sync(stateFile)
        _ = disk.sync(logFile)
        for path in [directory, "/tern", "/"] { _ = disk.syncDirectory(path) }
        Self.settle(disk)
        try disk.write(logFile, at: try disk.size(logFile), Self.storedBatch(baseOffset: 3, count: 1, sequence: 0, epoch: 5))
        let state = DurableRaftState.read(from: disk, directory: directory)
        #expect(state == Self.durable(term: 4, vote: 2, logTerms: [1, 1, 4]))
        #expect(state.term == Term(4) && state.votedFor == NodeID(2))
    }

    // MARK: In a whole run

    /// A cluster whose acks=all answers count page-cache copies (Kafka's default, unsafe under
    /// power loss) is flagged by the oracle without any fault, because its answers run ahead of
    /// the followers' syncs; with the default policy the same run passes.
    @Test func pageCacheAcknowledgementsAreFlaggedWithoutAnyFault() {
        func run(_ policy: DurabilityPolicy) -> (SimulationReport, DurabilityOracle) {
            var layout = ClusterLayout()
            layout.produceWorkload = true
            layout.durabilityPolicy = policy
            let simulation = ClusterSimulation(seed: 3, profile: .none, layout: layout, safetyPhase: .seconds(8), livenessPhase: .seconds(4))
            var configuration = simulation.configuration
            configuration.disk.syncLatency = .milliseconds(50)...(.milliseconds(150))
            let oracle = DurabilityOracle(minInSyncReplicas: layout.minInSyncReplicas, checksAcknowledgements: true)
            let report = Simulation.run(configuration, checkers: [oracle], makeNode: { layout.makeNode($0) })
            return (report, oracle)
        }
        let (unsafe, unsafeOracle) = run(.pageCache)
        #expect(unsafe.violation?.kind == .checker("durability"), "\(String(describing: unsafe.violation))")
        #expect(unsafe.violation?.message.contains("page cache only") == true, "\(String(describing: unsafe.violation))")
        #expect(unsafeOracle.acknowledgedBatchesChecked > 0)
        let (safe, safeOracle) = run(.synced)
        #expect(safe.passed, "\(String(describing: safe.violation))")
        #expect(safeOracle.acknowledgedBatchesChecked > 0 && safeOracle.raftMessagesChecked > 0,
                "the safe run checked \(safeOracle.acknowledgedBatchesChecked) acknowledgements, \(safeOracle.raftMessagesChecked) Raft messages")
    }
}
