import KafkaProtocol
import LogStorage
import NodeKit
import Raft
import SimWorld
import TernCore

/// `RaftNode`s on `SimDisk`s, joined by SimWorld's `SimNetwork` (per-link latency with reordering;
/// while degraded also loss and duplication; partitions) with its messages waiting in SimWorld's
/// `EventQueue`, run by one event loop on one simulated clock: the simulator's world without the
/// cluster simulator. Every message travels as bytes through `RaftMessageCodec`. A
/// `RaftNodeSafetyChecker` watches every step.
final class SimulatedCluster {
    struct Host {
        let id: NodeID
        let disk: SimDisk
        var node: RaftNode?
        var incarnation = 0
        var restartAt: Instant?
        /// Next committed index this incarnation must hand out.
        var nextApplyIndex = LogIndex(1)
    }

    /// Calm links: 1–10 ms, every message on its own latency (so reordered), nothing lost.
    static let calmLinks = LinkBehavior(latencyMinimum: .milliseconds(1), latencyJitter: .milliseconds(9), reorderProbability: 1)
    /// Degraded links: 1–40 ms, 5% lost, 2% duplicated.
    static let degradedLinks = LinkBehavior(latencyMinimum: .milliseconds(1), latencyJitter: .milliseconds(39),
                                            lossProbability: 0.05, duplicationProbability: 0.02, reorderProbability: 1)

    let seed: UInt64
    let voters: [NodeID]
    var hosts: [Host] = []
    var now = Instant.zero
    let network: SimNetwork
    /// Node groups that can talk; empty: everyone can.
    var partitionGroups: [[NodeID]] = [] {
        didSet {
            let blocked = voters.indices.flatMap { source in
                voters.indices.filter { !connected(voters[source], voters[$0]) }.map { (source: source, destination: $0) }
            }
            network.partition(blocking: blocked)
        }
    }
    let checker = RaftNodeSafetyChecker()
    var configure: (inout RaftNode.Configuration) -> Void
    private var packets = EventQueue<InFlightMessage>(capacity: 1 << 18)
    private var packetSequence: UInt64 = 0
    private var nextTick = Instant.zero
    let tickInterval = Duration.milliseconds(10)
    /// Every command entry committed anywhere, by payload: for liveness checks.
    var committedPayloads: Set<String> = []
    var trace: [String] = []
    var tracing = false

    init(nodeCount: Int, seed: UInt64, diskConfiguration: SimDisk.Configuration = SimDisk.Configuration(),
         configure: @escaping (inout RaftNode.Configuration) -> Void = { _ in }) {
        self.seed = seed
        self.voters = (1...nodeCount).map { NodeID(Int32($0)) }
        self.configure = configure
        let root = DeterministicRandom(seed: seed)
        network = SimNetwork(nodeIDs: voters, configuration: NetworkConfiguration(calm: Self.calmLinks, degraded: Self.degradedLinks),
                             random: root.stream("network"))
        for id in voters {
            hosts.append(Host(id: id, disk: SimDisk(random: root.stream("disk", Int(id.rawValue)), configuration: diskConfiguration)))
        }
    }

    func slot(_ id: NodeID) -> Int { Int(id.rawValue) - 1 }
    func node(_ id: NodeID) -> RaftNode? { hosts[slot(id)].node }
    var runningNodes: [RaftNode] { hosts.compactMap { $0.node } }
    var leaders: [RaftNode] { runningNodes.filter { $0.isLeader } }
    static func directory(_ id: NodeID) -> String { "/node\(id)/__cluster_metadata-0" }
    static func hardStatePath(_ id: NodeID) -> String { directory(id) + "/quorum-state" }

    // MARK: Lifecycle

    func startAll() {
        for id in voters { start(id) }
    }

    func start(_ id: NodeID) {
        var host = hosts[slot(id)]
        precondition(host.node == nil, "node \(id) is running")
        var configuration = RaftNode.Configuration(raft: RaftConfiguration(nodeID: id, voters: voters))
        configuration.tickInterval = tickInterval
        configure(&configuration)
        let environment = NodeEnvironment(nodeID: id, disk: host.disk, dataDirectory: "/node\(id)",
                                          random: DeterministicRandom(seed: seed).stream("node-\(id)", host.incarnation))
        let node = RaftNode(environment: environment, configuration: configuration)
        host.node = node
        host.restartAt = nil
        host.nextApplyIndex = LogIndex(1)
        hosts[slot(id)] = host
        now = max(now, host.disk.now)
        host.disk.advance(to: now)
        deliver(.start, to: id)
    }

    /// The node stops; with `powerLoss` its disk loses what was not synced (adversarially: torn
    /// and garbled unsynced writes may survive), otherwise only the process dies.
    func crash(_ id: NodeID, powerLoss: Bool, restartAfter: Duration? = nil) {
        var host = hosts[slot(id)]
        guard host.node != nil else { return }
        if powerLoss { host.disk.crash() } else { host.disk.killProcess() }
        host.node = nil
        host.incarnation += 1
        host.restartAt = restartAfter.map { now + $0 }
        hosts[slot(id)] = host
        if tracing { trace.append("\(now) crash \(id) powerLoss=\(powerLoss)") }
    }

    // MARK: Running

    /// Runs events until `deadline` (inclusive). `onTick` runs after every cluster tick.
    func run(until deadline: Instant, onTick: (SimulatedCluster) -> Void = { _ in }) {
        while true {
            let next = nextEventTime()
            guard next <= deadline else { break }
            now = next
            for id in voters {
                let disk = hosts[slot(id)].disk
                if disk.now < now { disk.advance(to: now) }
                guard hosts[slot(id)].node != nil else { continue }
                var completions: [SyncCompletion] = []
                disk.pollCompletions(into: &completions)
                for completion in completions { deliver(.syncCompleted(completion), to: id) }
            }
            while let due = packets.earliestTime, due <= now, let (_, _, packet) = packets.popMin() {
                guard case .deliver = network.arrive(packet) else { continue }
                let to = voters[packet.destination]
                guard hosts[slot(to)].node != nil else { continue }
                deliver(.message(from: voters[packet.source], bytes: packet.bytes), to: to)
            }
            for id in voters where hosts[slot(id)].node == nil {
                if let restartAt = hosts[slot(id)].restartAt, restartAt <= now { start(id) }
            }
            if now >= nextTick {
                nextTick = now + tickInterval
                for id in voters where hosts[slot(id)].node != nil { deliver(.tick, to: id) }
                onTick(self)
            }
        }
        now = max(now, deadline)
    }

    func run(for duration: Duration, onTick: (SimulatedCluster) -> Void = { _ in }) {
        run(until: now + duration, onTick: onTick)
    }

    private func nextEventTime() -> Instant {
        var next = nextTick
        if let due = packets.earliestTime { next = min(next, due) }
        for host in hosts {
            if let due = host.disk.nextCompletionTime { next = min(next, due) }
            if let restartAt = host.restartAt { next = min(next, restartAt) }
        }
        return max(next, now)
    }

    func deliver(_ event: NodeEvent, to id: NodeID) {
        guard let node = hosts[slot(id)].node else { return }
        var effects: [NodeEffect] = []
        node.handle(event, now: now, effects: &effects)
        carryOut(effects, from: id)
    }

    func carryOut(_ effects: [NodeEffect], from id: NodeID) {
        for effect in effects {
            switch effect {
            case let .send(to, bytes):
                checker.observeSend(bytes, from: id, disk: hosts[slot(id)].disk, directory: Self.directory(id))
                send(bytes, from: id, to: to)
            case let .halt(reason):
                checker.fail("node \(id) halted: \(reason)")
            case let .exit(reason):
                checker.fail("node \(id) exited: \(reason)")  // no disk errors are injected here
            case .reply, .closeClient, .pauseClientReads, .resumeClientReads, .openOutbound, .sendOutbound, .closeOutbound, .log:
                checker.fail("node \(id) acted on a client connection: \(effect)")
            }
        }
        collectCommitted(id)
        checker.observeRoles(runningNodes)
    }

    private func send(_ bytes: [UInt8], from: NodeID, to: NodeID) {
        _ = network.send(from: slot(from), to: slot(to), bytes: bytes, digest: 0, now: now) { arrival, packet in
            packetSequence += 1
            precondition(packets.insert(packet, time: arrival, sequence: packetSequence), "network queue bound reached")
        }
    }

    func connected(_ a: NodeID, _ b: NodeID) -> Bool {
        partitionGroups.isEmpty || partitionGroups.contains { $0.contains(a) && $0.contains(b) }
    }

    private func collectCommitted(_ id: NodeID) {
        guard let node = hosts[slot(id)].node else { return }
        for entry in node.takeCommittedEntries() {
            if entry.index != hosts[slot(id)].nextApplyIndex {
                checker.fail("node \(id) applied \(entry.index) where \(hosts[slot(id)].nextApplyIndex) was next")
            }
            hosts[slot(id)].nextApplyIndex = entry.index.next
            checker.observeCommitted(entry, by: id, inTerm: node.term)
            if entry.kind == .command { committedPayloads.insert(String(decoding: entry.payload, as: UTF8.self)) }
        }
    }

    // MARK: Requests

    /// Proposes on whichever node believes it leads. Returns the index, or nil if none accepted.
    @discardableResult
    func proposeOnLeader(_ payload: String) -> LogIndex? {
        for node in leaders {
            var effects: [NodeEffect] = []
            if let index = try? node.propose(Array(payload.utf8), now: now, effects: &effects) {
                carryOut(effects, from: node.nodeID)
                return index
            }
        }
        return nil
    }

    /// Runs until a single node leads a quorum-backed term, at most `limit`.
    @discardableResult
    func awaitLeader(within limit: Duration = .seconds(10)) -> RaftNode? {
        let deadline = now + limit
        while now < deadline {
            if let leader = leaders.max(by: { $0.term < $1.term }), leader.commitIndex > .zero,
               leader.core?.entry(at: leader.commitIndex)?.term == leader.term {
                return leader
            }
            run(for: tickInterval)
        }
        return nil
    }

    func checkLogs() {
        checker.checkLogMatching(runningNodes)
    }
}
