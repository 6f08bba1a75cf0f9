import LogStorage
import NodeKit
import SimWorld
import TernCore

/// What a simulated node runs as. A node may hold several roles (Kafka's combined mode).
public struct NodeRoles: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let controller = NodeRoles(rawValue: 1 << 0)
    public static let broker = NodeRoles(rawValue: 1 << 1)
    /// A workload client. Network faults reach clients; process, clock and disk faults do not,
    /// because a client's pending operations are the history the checkers judge.
    public static let client = NodeRoles(rawValue: 1 << 2)

    public var description: String {
        var names: [String] = []
        if contains(.controller) { names.append("controller") }
        if contains(.broker) { names.append("broker") }
        if contains(.client) { names.append("client") }
        return names.isEmpty ? "none" : names.joined(separator: "+")
    }
}

/// One node of a simulated cluster.
public struct NodeSpecification: Sendable, Equatable {
    public var id: NodeID
    public var roles: NodeRoles
    /// Replaces the node's own `tickInterval` when set (to slow a role down or speed it up).
    public var tickInterval: Duration?
    /// Replaces the simulation's sync latency on this node's machine when set (a slower or
    /// stalling disk than the others').
    public var diskLatency: DiskLatency?

    public init(id: NodeID, roles: NodeRoles, tickInterval: Duration? = nil, diskLatency: DiskLatency? = nil) {
        precondition(tickInterval.map { $0 > .zero } ?? true, "a tick interval must be positive")
        self.id = id
        self.roles = roles
        self.tickInterval = tickInterval
        self.diskLatency = diskLatency
    }

    /// The disk configuration of this node's machine.
    func disk(from shared: SimDisk.Configuration) -> SimDisk.Configuration {
        guard let diskLatency else { return shared }
        var configuration = shared
        diskLatency.apply(to: &configuration)
        return configuration
    }

    /// Process, clock and disk faults are only injected into nodes that are not clients.
    public var receivesProcessFaults: Bool { !roles.contains(.client) }
}

/// Every kind of fault the simulator injects, for profiles, weights and the report's counts.
/// Healing actions (restart, resume, unclog, heal a partition) are not faults.
public enum FaultKind: Int, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    /// The nodes split into groups that cannot reach each other in either direction.
    case partitionSymmetric
    /// One group cannot reach another, which can still reach it.
    case partitionAsymmetric
    /// One node cut off from all others in both directions.
    case isolateNode
    /// One directed link stops delivering (messages wait on it) until unclogged.
    case linkClog
    /// The machine crashes: the page cache is lost (`SimDisk.crash()`), the node restarts later.
    case nodeCrash
    /// The process dies, the machine does not (`SimDisk.killProcess()`); the node restarts later.
    case processKill
    /// The process stops (SIGSTOP, a GC pause, a VM stall) and later continues where it was.
    case nodePause
    /// The node's clock runs fast or slow.
    case clockSkew
    /// The machine's time of day jumps forward or backward at once (its monotonic clock does not).
    case clockJump
    /// Several machines lose power at the same instant (`SimDisk.powerLoss()`), restart later.
    case powerLoss
    /// One sector of synced data silently changes (bit rot, a misdirected write).
    case latentCorruption
    /// For a while reads, writes, truncations and syncs fail with EIO at some rate.
    case diskIOErrors
    /// A node's client connections are reset, black-holed (half-open) or stalled mid-frame.
    case connectionFault

    public var description: String {
        switch self {
        case .partitionSymmetric: return "partition-symmetric"
        case .partitionAsymmetric: return "partition-asymmetric"
        case .isolateNode: return "isolate"
        case .linkClog: return "clog"
        case .nodeCrash: return "crash"
        case .processKill: return "kill"
        case .nodePause: return "pause"
        case .clockSkew: return "clock-skew"
        case .clockJump: return "clock-jump"
        case .powerLoss: return "power-loss"
        case .latentCorruption: return "latent-corruption"
        case .diskIOErrors: return "io-errors"
        case .connectionFault: return "connection-fault"
        }
    }
}

/// A value per fault kind (counts, weights), stored densely in `FaultKind` order so that walking
/// it never depends on hashing.
public struct FaultKindTable<Value: Sendable & Equatable>: Sendable, Equatable {
    private var values: [Value]

    public init(repeating value: Value) {
        values = Array(repeating: value, count: FaultKind.allCases.count)
    }

    public subscript(kind: FaultKind) -> Value {
        get { values[kind.rawValue] }
        set { values[kind.rawValue] = newValue }
    }
}

extension FaultKindTable: CustomStringConvertible where Value == Int {
    public var total: Int { values.reduce(0, +) }

    /// Nonzero entries in `FaultKind` order, e.g. "crash=2 pause=1"; "none" when all are zero.
    public var description: String {
        let parts = FaultKind.allCases.filter { self[$0] != 0 }.map { "\($0)=\(self[$0])" }
        return parts.isEmpty ? "none" : parts.joined(separator: " ")
    }
}

public typealias FaultCounts = FaultKindTable<Int>

/// Named sets of faults for the safety phase.
public enum FaultProfile: String, CaseIterable, Sendable, CustomStringConvertible {
    /// No faults at all: calm network, no process or disk faults.
    case none
    /// Partitions (symmetric, asymmetric, isolation), link clogging, client connections reset,
    /// black-holed or stalled, and a degraded network (loss, duplication, reordering, latency
    /// tails) for the whole safety phase.
    case network
    /// Process and machine faults: crash, process kill, pause, clock skew and jumps, coordinated
    /// power loss.
    case crash
    /// Storage faults: crashes and power loss (torn and garbled unsynced writes, as the disk's
    /// crash model allows), latent corruption of synced data on a minority of nodes, windows of
    /// EIO on reads, writes and syncs.
    case disk
    /// Everything above.
    case all
    /// One broker fails once, in an otherwise healthy cluster: at a time drawn from the half to
    /// the two thirds of the safety phase, one broker's machine crashes or its process is killed,
    /// and it stays down until the liveness phase. Nothing else is injected, and no broker plans
    /// a controlled shutdown. The failover the write-availability checker judges.
    case brokerFailure = "broker-failure"

    public var faultKinds: [FaultKind] {
        switch self {
        case .none: return []
        case .network: return [.partitionSymmetric, .partitionAsymmetric, .isolateNode, .linkClog, .connectionFault]
        case .crash: return [.nodeCrash, .processKill, .nodePause, .clockSkew, .clockJump, .powerLoss]
        case .disk: return [.nodeCrash, .powerLoss, .latentCorruption, .diskIOErrors]
        case .all: return FaultKind.allCases
        case .brokerFailure: return [.nodeCrash, .processKill]
        }
    }

    /// True when the nemesis injects one planned fault instead of drawing faults all phase long.
    public var injectsOneFailure: Bool { self == .brokerFailure }

    /// True when the network runs with `NetworkConfiguration.degraded` links during the safety
    /// phase (otherwise `calm`).
    public var degradesNetwork: Bool { self == .network || self == .all }

    public var description: String { rawValue }
}

/// How the nemesis draws faults during the safety phase. All durations are simulated time.
public struct NemesisConfiguration: Sendable {
    /// The nemesis acts at intervals drawn uniformly from 0 to twice this.
    public var meanTimeBetweenFaults: Duration
    /// How long a partition, pause, clock skew or EIO window lasts.
    public var faultDuration: ClosedRange<Duration>
    /// How long a crashed, killed or powered-off node stays down.
    public var restartDelay: ClosedRange<Duration>
    /// Nodes that may be down or paused at once through crash, kill or pause (power loss is
    /// coordinated and ignores it). Nil: a minority of the nodes that receive process faults.
    public var maximumNodesFaulted: Int?
    /// Links clogged per episode; they are clogged one at a time and released in random order.
    public var clogLinksPerEpisode: ClosedRange<Int>
    /// Time between two steps of a clog episode.
    public var clogStepInterval: ClosedRange<Duration>
    /// A skewed clock runs fast or slow by up to this many parts per million.
    public var maximumClockDriftPartsPerMillion: Int64
    public var maximumClockJumpForward: Duration
    public var maximumClockJumpBackward: Duration
    /// Probability that each read, write, truncation or sync fails during an EIO window.
    public var ioErrorProbability: Double
    /// Nodes whose synced data may rot. Nil: a minority of the nodes that receive process faults,
    /// chosen from the seed, so a majority always holds intact copies.
    public var corruptibleNodeCount: Int?
    /// The nodes the corruptible ones are drawn from (nil: every node that receives process faults).
    public var corruptibleCandidates: [NodeID]?
    /// Which files latent corruption may hit, by path (for example only CRC-protected segments).
    public var isCorruptibleFile: @Sendable (String) -> Bool
    /// Relative frequency of each fault kind among those the profile enables; 0 disables one.
    public var weights: FaultKindTable<Int>

    public init(
        meanTimeBetweenFaults: Duration = .milliseconds(400),
        faultDuration: ClosedRange<Duration> = .milliseconds(50)...(.seconds(2)),
        restartDelay: ClosedRange<Duration> = .milliseconds(10)...(.seconds(1)),
        maximumNodesFaulted: Int? = nil,
        clogLinksPerEpisode: ClosedRange<Int> = 1...4,
        clogStepInterval: ClosedRange<Duration> = .milliseconds(20)...(.milliseconds(500)),
        maximumClockDriftPartsPerMillion: Int64 = 5_000,
        maximumClockJumpForward: Duration = .seconds(2),
        maximumClockJumpBackward: Duration = .milliseconds(500),
        ioErrorProbability: Double = 0.05,
        corruptibleNodeCount: Int? = nil,
        isCorruptibleFile: @escaping @Sendable (String) -> Bool = { _ in true },
        weights: FaultKindTable<Int> = NemesisConfiguration.defaultWeights
    ) {
        precondition(meanTimeBetweenFaults > .zero, "the time between faults must be positive")
        precondition(faultDuration.lowerBound > .zero && restartDelay.lowerBound >= .zero, "fault durations must be positive")
        precondition(clogLinksPerEpisode.lowerBound >= 1, "a clog episode clogs at least one link")
        precondition(clogStepInterval.lowerBound > .zero, "clog steps must take time")
        precondition(maximumClockDriftPartsPerMillion >= 0 && maximumClockDriftPartsPerMillion <= 100_000,
                     "clock drift is at most 10% (100000 ppm)")
        precondition(maximumClockJumpForward >= .zero && maximumClockJumpBackward >= .zero, "clock jumps are magnitudes")
        precondition(ioErrorProbability >= 0 && ioErrorProbability <= 1, "a probability is within 0...1")
        self.meanTimeBetweenFaults = meanTimeBetweenFaults
        self.faultDuration = faultDuration
        self.restartDelay = restartDelay
        self.maximumNodesFaulted = maximumNodesFaulted
        self.clogLinksPerEpisode = clogLinksPerEpisode
        self.clogStepInterval = clogStepInterval
        self.maximumClockDriftPartsPerMillion = maximumClockDriftPartsPerMillion
        self.maximumClockJumpForward = maximumClockJumpForward
        self.maximumClockJumpBackward = maximumClockJumpBackward
        self.ioErrorProbability = ioErrorProbability
        self.corruptibleNodeCount = corruptibleNodeCount
        self.isCorruptibleFile = isCorruptibleFile
        self.weights = weights
    }

    public static var defaultWeights: FaultKindTable<Int> {
        var weights = FaultKindTable(repeating: 1)
        weights[.partitionSymmetric] = 2
        weights[.isolateNode] = 2
        weights[.linkClog] = 2
        weights[.nodeCrash] = 3
        weights[.processKill] = 2
        weights[.nodePause] = 2
        return weights
    }
}

/// The simulated operator's controlled shutdowns, as SIGTERM asks for them on a real node: each
/// broker process, when it starts, plans one with `probability`, at a delay drawn from `delay`
/// after its start, unless that falls at or after `end`. The node then gets `.shutdownRequested`,
/// exits once the controller lets it, and its supervisor starts it again.
public struct PlannedShutdowns: Sendable {
    public var probability: Double
    public var delay: ClosedRange<Duration>
    public var end: Instant?

    public init(probability: Double, delay: ClosedRange<Duration> = .seconds(5)...(.seconds(30)), end: Instant? = nil) {
        precondition(probability >= 0 && probability <= 1, "a probability is within 0...1")
        precondition(delay.lowerBound >= .zero, "a delay is not negative")
        self.probability = probability
        self.delay = delay
        self.end = end
    }
}

/// Everything that decides one simulation run. Equal configurations (and equal node code) give
/// equal runs, in any process.
public struct SimulationConfiguration: Sendable {
    public var seed: UInt64
    public var profile: FaultProfile
    /// In this order: it is the order nodes start in and the order of every per-node walk.
    public var nodes: [NodeSpecification]
    /// Faults are injected from time zero until here.
    public var safetyPhaseDuration: Duration
    /// Afterwards everything is healed and no fault is injected; the cluster must converge within
    /// this (when a convergence condition is given).
    public var livenessPhaseDuration: Duration
    /// The run ends as soon as the convergence condition holds in the liveness phase.
    public var stopWhenConverged: Bool
    /// Each tick comes late by up to this much (an event loop is never exact).
    public var tickJitter: Duration
    /// How often periodic checkers and the convergence condition run.
    public var checkInterval: Duration
    /// Each node's clock starts at a random origin between zero and this (monotonic clocks have
    /// arbitrary origins, and nodes must not compare their instants).
    public var clockOriginSpread: Duration
    /// When true a node never sees its clock go backwards: a backward jump holds the clock still
    /// until real time catches up, as a monotonic clock under NTP slewing would.
    public var clocksAreMonotonic: Bool
    public var network: NetworkConfiguration
    public var nemesis: NemesisConfiguration
    /// Every node's disk (each node has its own `SimDisk`, seeded per node).
    public var disk: SimDisk.Configuration
    /// The directory handed to each node as `NodeEnvironment.dataDirectory`.
    public var dataDirectory: String
    /// Messages held for a paused node; past it new arrivals are dropped (a full socket buffer).
    public var pausedBacklogCapacity: Int
    /// Hard bound on scheduler steps; reaching it is a liveness violation (a livelock or a
    /// runaway node), never an endless run.
    public var maximumSchedulerSteps: Int
    /// Choices that shape this run beyond the fields above (a cluster scenario's storage,
    /// workload and election churn), one readable line each. The trace records them at time zero,
    /// so a trace names the world it ran in.
    public var worldChoices: [String] = []
    /// The time of day every machine's wall clock shows at time zero, give or take
    /// `wallClockSpread` (NTP keeps machines close, not equal). Far from the monotonic clocks'
    /// origin, so code that mixes the two clocks up shows it.
    public var wallClockOrigin = Duration.seconds(1_767_225_600)  // 2026-01-01T00:00:00Z
    public var wallClockSpread = Duration.milliseconds(50)
    /// The simulated operator's controlled shutdowns of brokers (none when nil).
    public var plannedShutdowns: PlannedShutdowns?

    public init(
        seed: UInt64,
        profile: FaultProfile = .none,
        nodes: [NodeSpecification],
        safetyPhaseDuration: Duration = .seconds(10),
        livenessPhaseDuration: Duration = .seconds(10),
        stopWhenConverged: Bool = true,
        tickJitter: Duration = .microseconds(100),
        checkInterval: Duration = .milliseconds(100),
        clockOriginSpread: Duration = .seconds(1),
        clocksAreMonotonic: Bool = true,
        network: NetworkConfiguration = NetworkConfiguration(),
        nemesis: NemesisConfiguration = NemesisConfiguration(),
        disk: SimDisk.Configuration = SimDisk.Configuration(),
        dataDirectory: String = "/tern",
        pausedBacklogCapacity: Int = 4_096,
        maximumSchedulerSteps: Int = 100_000_000
    ) {
        self.seed = seed
        self.profile = profile
        self.nodes = nodes
        self.safetyPhaseDuration = safetyPhaseDuration
        self.livenessPhaseDuration = livenessPhaseDuration
        self.stopWhenConverged = stopWhenConverged
        self.tickJitter = tickJitter
        self.checkInterval = checkInterval
        self.clockOriginSpread = clockOriginSpread
        self.clocksAreMonotonic = clocksAreMonotonic
        self.network = network
        self.nemesis = nemesis
        self.disk = disk
        self.dataDirectory = dataDirectory
        self.pausedBacklogCapacity = pausedBacklogCapacity
        self.maximumSchedulerSteps = maximumSchedulerSteps
    }

    /// `count` nodes with ids 1...count and the given roles.
    public static func cluster(
        seed: UInt64, profile: FaultProfile = .none, nodeCount: Int, roles: NodeRoles = [.controller, .broker]
    ) -> SimulationConfiguration {
        precondition(nodeCount >= 1, "a cluster has at least one node")
        let nodes = (1...nodeCount).map { NodeSpecification(id: NodeID(Int32($0)), roles: roles) }
        return SimulationConfiguration(seed: seed, profile: profile, nodes: nodes)
    }

    /// Checks everything the engine relies on; a broken configuration is a caller bug.
    func validate() {
        precondition(!nodes.isEmpty, "a simulation needs at least one node")
        precondition(nodes.count <= 256, "the simulator models at most 256 nodes (links are a dense matrix)")
        let ids = nodes.map(\.id)
        precondition(Set(ids).count == ids.count, "node ids must be unique: \(ids)")
        precondition(safetyPhaseDuration >= .zero && livenessPhaseDuration >= .zero, "phase durations must not be negative")
        precondition(tickJitter >= .zero && clockOriginSpread >= .zero, "jitter and spread must not be negative")
        precondition(checkInterval > .zero, "the check interval must be positive")
        precondition(pausedBacklogCapacity > 0 && maximumSchedulerSteps > 0, "bounds must be positive")
        network.validate()
    }
}
