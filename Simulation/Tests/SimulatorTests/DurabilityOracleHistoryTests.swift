import Broker
import Controller
import KafkaProtocol
import LogStorage
import NodeKit
@testable import SimWorld
@testable import Simulator
import TernCore
import Testing

/// The durability oracle judges an `acks=all` answer by where the batch has been synced between
/// the request's arrival and the answer, watched through a whole run: scripted nodes write the
/// history, the oracle sees it only through the client connection's frames, the messages and the
/// simulated disks.
///
/// The history of `tern simulate --seed 56 --profile disk`, reduced: leader and follower both
/// sync the batch; the follower later discards its copy (there it had found latent corruption
/// and the controller had recorded the loss); only then does the answer leave, held back by the
/// request's other partitions. The acknowledgement was earned while two synced copies existed.
@Suite struct DurabilityOracleHistoryTests {
    static let leader = NodeID(101)
    static let follower = NodeID(102)
    static let producer = NodeID(1001)
    static let segment = "/tern/topic-0-0/00000000000000000000.log"
    /// How long the leader holds each request before answering it.
    static let answerDelay = Duration.milliseconds(800)

    enum FollowerCopy {
        /// Synced, then discarded (and the discard synced) at the first tick after the time.
        case syncedThenDiscarded(at: Instant)
        /// Written to the page cache only, then lost in a crash of the follower's machine.
        case pageCacheOnlyThenCrashed
    }

    /// `retries`: the producer sends the batch again once the first request is answered, and the
    /// leader answers the retry as a duplicate of the batch it holds.
    static func run(_ copy: FollowerCopy, retries: Bool = false) -> (SimulationReport, DurabilityOracle, Simulation) {
        let configuration = SimulationConfiguration(
            seed: 1, nodes: [NodeSpecification(id: leader, roles: .broker), NodeSpecification(id: follower, roles: .broker),
                             NodeSpecification(id: producer, roles: .client)],
            safetyPhaseDuration: .seconds(3), livenessPhaseDuration: .zero, clockOriginSpread: .zero,
            disk: .benignCrashes)
        let batch = DurabilityOracleTests.storedBatch(baseOffset: 0, count: 3, sequence: 0)
        let simulation = Simulation(configuration: configuration) { environment in
            switch environment.nodeID {
            case leader: ScriptedLeader(environment, follower: follower)
            case follower: ScriptedFollower(environment, copy: copy)
            default: ScriptedProducer(environment, leader: leader, records: batch, retries: retries)
            }
        }
        if case .pageCacheOnlyThenCrashed = copy {
            simulation.schedule(.crash(follower), at: .zero + .milliseconds(300))
            simulation.schedule(.restart(follower), at: .zero + .milliseconds(400))
        }
        let oracle = DurabilityOracle(minInSyncReplicas: 2)
        simulation.addChecker(oracle)
        return (simulation.run(), oracle, simulation)
    }

    @Test func aCopySyncedThenDiscardedBeforeTheAnswerCounts() {
        let (report, oracle, simulation) = Self.run(.syncedThenDiscarded(at: .zero + .milliseconds(200)))
        #expect(report.passed, "\(String(describing: report.violation))")
        #expect(oracle.acknowledgedBatchesChecked == 1)
        #expect(simulation.view.disk(of: Self.follower).durableContentsAsWritten(of: Self.segment) == [],
                "the follower's copy was gone when the answer left")
    }

    /// A retry's batch was synced on both brokers before the retry arrived; the follower's copy
    /// goes while the retry waits for its answer.
    @Test func aCopySyncedBeforeARetryArrivedCounts() {
        let (report, oracle, simulation) = Self.run(.syncedThenDiscarded(at: .zero + .milliseconds(1_200)), retries: true)
        #expect(report.passed, "\(String(describing: report.violation))")
        #expect(oracle.acknowledgedBatchesChecked == 2, "the request and its retry")
        #expect(simulation.view.disk(of: Self.follower).durableContentsAsWritten(of: Self.segment) == [])
    }

    @Test func aCopyThatWasNeverSyncedDoesNotCount() {
        let (report, oracle, simulation) = Self.run(.pageCacheOnlyThenCrashed)
        #expect(report.violation?.kind == .checker("durability"), "\(String(describing: report.violation))")
        #expect(report.violation?.message.contains("n101 synced, n102 absent") == true, "\(String(describing: report.violation))")
        #expect(oracle.acknowledgedBatchesChecked == 1)
        #expect(simulation.view.disk(of: Self.follower).durableContentsAsWritten(of: Self.segment) == nil,
                "the crash took the follower's unsynced copy")
    }
}

/// Marks the scripted nodes' own messages (no Tern message kind starts so).
private let replicateTag: UInt8 = 0xF0

/// Sends one `acks=all` Produce request (a Kafka frame, over a client connection to the leader)
/// once connected, and the same batch again once answered when it `retries`.
private final class ScriptedProducer: NodeStateMachine {
    let nodeID: NodeID
    let tickInterval = Duration.milliseconds(100)
    private let leader: NodeID
    private let records: [UInt8]
    private var retries: Bool
    private let connection = OutboundConnectionID(rawValue: 1)

    init(_ environment: NodeEnvironment, leader: NodeID, records: [UInt8], retries: Bool) {
        nodeID = environment.nodeID
        self.leader = leader
        self.records = records
        self.retries = retries
    }

    func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        let correlationID: Int32
        switch event {
        case .start:
            effects.append(.openOutbound(connection, to: leader))
            return
        case .outboundConnected:
            correlationID = 8
        case .outboundResponse where retries:
            retries = false
            correlationID = 9
        case .message, .tick, .syncCompleted, .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected, .outboundResponse, .outboundClosed:
            return
        }
        let request = KafkaWire.ProduceRequest(acks: Acks.all.rawValue, timeoutMs: 30_000, topicData: [
            .init(name: "topic-0", partitionData: [.init(index: 0, records: records)]),
        ])
        let header = KafkaRequestHeader(apiKey: KafkaAPIKey.produce.rawValue, apiVersion: 9, correlationID: correlationID, clientID: "scripted")
        effects.append(.sendOutbound(connection, encodeKafkaRequest(.produce(request), header: header)))
    }
}

/// Writes the first request's batch, syncs it and hands it to the follower; answers each request
/// `answerDelay` after it arrived, at offset 0 (a retry as a duplicate).
private final class ScriptedLeader: NodeStateMachine {
    let nodeID: NodeID
    let tickInterval = Duration.milliseconds(10)
    private let disk: any Disk
    private let follower: NodeID
    private var holdsTheBatch = false
    private var awaitingAnswers: [(connection: ClientConnectionID, header: KafkaRequestHeader, due: Instant)] = []

    init(_ environment: NodeEnvironment, follower: NodeID) {
        nodeID = environment.nodeID
        disk = environment.disk
        self.follower = follower
    }

    func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        switch event {
        case let .clientRequest(connection, frame):
            guard let decoded = try? decodeKafkaRequest(frame[...]),
                  case let .produce(request) = decoded.body,
                  let records = request.topicData.first?.partitionData.first?.records else { return }
            if !holdsTheBatch {
                holdsTheBatch = true
                writeSynced(records, to: disk)
                effects.append(.send(to: follower, bytes: [replicateTag] + records))
            }
            awaitingAnswers.append((connection, decoded.header, now + DurabilityOracleHistoryTests.answerDelay))
        case .tick:
            guard let (connection, header, due) = awaitingAnswers.first, now >= due else { return }
            awaitingAnswers.removeFirst()
            let response = KafkaWire.ProduceResponse(responses: [.init(name: "topic-0", partitionResponses: [.init(index: 0, baseOffset: 0)])])
            effects.append(.reply(connection, encodeKafkaResponse(.produce(response), for: header)))
        case .start, .message, .syncCompleted, .shutdownRequested, .clientConnected, .clientDisconnected, .outboundConnected, .outboundResponse, .outboundClosed:
            break
        }
    }
}

/// Writes the leader's batch. A copy `syncedThenDiscarded` is synced and, once synced and the
/// discard time has come, discarded with the discard synced (as a replica that found its log
/// corrupt and had the loss recorded would).
private final class ScriptedFollower: NodeStateMachine {
    let nodeID: NodeID
    let tickInterval = Duration.milliseconds(10)
    private let disk: any Disk
    private let copy: DurabilityOracleHistoryTests.FollowerCopy
    private var syncsOfTheCopy: Set<SyncToken> = []
    private var holdsASyncedCopy = false

    init(_ environment: NodeEnvironment, copy: DurabilityOracleHistoryTests.FollowerCopy) {
        nodeID = environment.nodeID
        disk = environment.disk
        self.copy = copy
    }

    func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        switch (event, copy) {
        case let (.message(_, bytes), .syncedThenDiscarded) where bytes.first == replicateTag:
            syncsOfTheCopy = writeSynced(Array(bytes.dropFirst()), to: disk)
        case let (.message(_, bytes), .pageCacheOnlyThenCrashed) where bytes.first == replicateTag:
            write(Array(bytes.dropFirst()), to: disk)
        case let (.syncCompleted(completion), _):
            if syncsOfTheCopy.remove(completion.token) != nil, syncsOfTheCopy.isEmpty { holdsASyncedCopy = true }
        case let (.tick, .syncedThenDiscarded(discardTime)) where holdsASyncedCopy && now >= discardTime:
            holdsASyncedCopy = false
            let file = try! disk.open(DurabilityOracleHistoryTests.segment, create: false)
            try! disk.truncate(file, to: 0)
            _ = disk.sync(file)
            disk.close(file)
        default:
            break
        }
    }
}

/// Appends `bytes` to the partition's first segment (creating the directories).
private func write(_ bytes: [UInt8], to disk: any Disk) {
    try! disk.makeDirectory("/tern/topic-0-0")
    let file = try! disk.open(DurabilityOracleHistoryTests.segment, create: true)
    try! disk.write(file, at: try! disk.size(file), bytes)
    disk.close(file)
}

/// Appends `bytes` and syncs the segment and every directory above it; returns the syncs.
@discardableResult
private func writeSynced(_ bytes: [UInt8], to disk: any Disk) -> Set<SyncToken> {
    write(bytes, to: disk)
    let file = try! disk.open(DurabilityOracleHistoryTests.segment, create: false)
    defer { disk.close(file) }
    return Set([disk.sync(file)] + ["/tern/topic-0-0", "/tern", "/"].map { disk.syncDirectory($0) })
}
