import SimWorld
import TernCore

/// What varies per seed in a cluster simulation besides the nemesis's fault schedule: how fast
/// each machine's disk syncs, how the producer writes, and whether leadership is churned. A world
/// where every fsync takes a few milliseconds, the producer writes a steady trickle and leaders
/// rarely change hides whole classes of bugs (an acknowledgement sent before its sync has almost
/// no window to show; retries rarely arrive out of order; epochs rarely move twice in a row), so
/// each seed draws one of several worlds.
///
/// Each dimension is drawn from a stream of its own, derived from the seed alone, so adding a
/// dimension (or drawing more in one) never reshuffles the others, nor the nemesis, network or
/// node streams. A caller may fix a dimension's kind (`Choices`); the rest is still drawn.
public struct GeneratedWorld: Sendable, Equatable {
    public var storage: StorageProfile
    public var workload: WorkloadProfile
    public var churn: ElectionChurnPlan

    /// Kinds a caller fixes instead of drawing them (`tern simulate --storage slow-minority`).
    public struct Choices: Sendable, Equatable {
        public var storage: StorageProfile.Kind?
        public var workload: WorkloadProfile.Kind?
        public var churn: ElectionChurnPlan.Kind?
        public init(storage: StorageProfile.Kind? = nil, workload: WorkloadProfile.Kind? = nil, churn: ElectionChurnPlan.Kind? = nil) {
            self.storage = storage
            self.workload = workload
            self.churn = churn
        }

        /// Today's narrow world: every disk as configured, a steady producer, no churn.
        public static let narrow = Choices(storage: .uniform, workload: .steady, churn: .off)
    }

    /// Draws the world of `seed` for this layout and configuration (the disks' configured latency
    /// and the fault kinds the profile and weights enable decide some details).
    public static func draw(seed: UInt64, layout: ClusterLayout, configuration: SimulationConfiguration,
                            choices: Choices = Choices()) -> GeneratedWorld {
        let root = DeterministicRandom(seed: seed)
        var storageRandom = root.stream("world.storage")
        var workloadRandom = root.stream("world.workload")
        var churnRandom = root.stream("world.election-churn")
        let faultKinds = configuration.profile.faultKinds.filter { configuration.nemesis.weights[$0] > 0 }
        // A profile of one failure and nothing else (the write-availability check) has no churn.
        let churn = configuration.profile.injectsOneFailure ? ElectionChurnPlan.Kind.off : choices.churn
        return GeneratedWorld(
            storage: StorageProfile.draw(using: &storageRandom, layout: layout, disk: configuration.disk, kind: choices.storage),
            workload: WorkloadProfile.draw(using: &workloadRandom, layout: layout, safetyPhase: configuration.safetyPhaseDuration,
                                           kind: choices.workload),
            churn: ElectionChurnPlan.draw(using: &churnRandom, layout: layout, safetyPhase: configuration.safetyPhaseDuration,
                                          faultKinds: faultKinds, kind: churn))
    }

    /// The layout with this world's producer bursts and preferred-election windows.
    func applied(to layout: ClusterLayout) -> ClusterLayout {
        var layout = layout
        layout.producerBursts = layout.produceWorkload ? workload.bursts : []
        layout.preferredElectionWindows = churn.preferredElectionWindows
        layout.preferredElectionInterval = churn.preferredElectionInterval
        return layout
    }

    /// The simulation's configuration for `layout`: its nodes with this world's disks, and the
    /// choices written for the trace.
    func applied(to configuration: SimulationConfiguration, layout: ClusterLayout) -> SimulationConfiguration {
        var configuration = configuration
        configuration.nodes = layout.nodes.map { node in
            var node = node
            node.diskLatency = storage.latency(of: node.id)
            return node
        }
        configuration.worldChoices = traceLines
        return configuration
    }

    /// One line per dimension, for a run's summary.
    public var summary: [(label: String, text: String)] {
        [("storage", storage.summary), ("workload", workload.summary), ("election churn", churn.summary)]
    }

    /// Every choice in detail, one line each, for the trace.
    public var traceLines: [String] {
        ["storage " + storage.summary] + storage.nodes.map { "storage n\($0.id) \($0.latency)" }
            + ["workload " + workload.summary] + workload.bursts.map { "workload burst \($0)" }
            + ["election-churn " + churn.summary] + churn.bursts.map { "election-churn burst \($0)" }
    }
}

// MARK: Storage

/// How fast each machine's disk syncs.
public struct StorageProfile: Sendable, Equatable {
    public enum Kind: String, CaseIterable, Sendable {
        /// Every disk as configured (by default 0.2–5 ms per sync): the world before profiles.
        case uniform
        /// A minority of the controllers and of the brokers sync in 100 ms – 1 s.
        case slowMinority = "slow-minority"
        /// Some disks are quick but stall now and then: 1–5% of their syncs take 100 ms – 1 s.
        case stalls
        /// Each machine on its own: as configured, slow, or stalling.
        case mixed
    }

    public struct NodeDisk: Sendable, Equatable {
        public var id: NodeID
        public var latency: DiskLatency
    }

    public var kind: Kind
    /// Machines whose disk differs from the configured one, in id order.
    public var nodes: [NodeDisk]
    /// What the other machines' syncs take.
    public var configuredLatency: ClosedRange<Duration>

    static let slowLatencyFloor = Duration.milliseconds(100)
    static let slowLatencyCeiling = Duration.seconds(1)

    public func latency(of id: NodeID) -> DiskLatency? { nodes.first { $0.id == id }?.latency }

    static func draw(using random: inout DeterministicRandom, layout: ClusterLayout, disk: SimDisk.Configuration,
                     kind forced: Kind?) -> StorageProfile {
        let drawn = pickWeighted([(Kind.uniform, 3), (.slowMinority, 2), (.stalls, 2), (.mixed, 2)], using: &random)
        let kind = forced ?? drawn
        let controllers = layout.controllerIDs
        let brokers = layout.brokerIDs.filter { !controllers.contains($0) }
        var chosen: [NodeDisk] = []
        switch kind {
        case .uniform:
            break
        case .slowMinority:
            var slow = pickMinority(of: controllers, using: &random) + pickMinority(of: brokers, using: &random)
            if slow.isEmpty { slow = [(controllers + brokers)[random.int(in: 0...(controllers.count + brokers.count - 1))]] }
            chosen = slow.map { NodeDisk(id: $0, latency: slowDisk(using: &random)) }
        case .stalls:
            for id in controllers + brokers where random.chance(0.5) {
                chosen.append(NodeDisk(id: id, latency: stallingDisk(disk, using: &random)))
            }
            if chosen.isEmpty { chosen = [NodeDisk(id: (controllers + brokers)[0], latency: stallingDisk(disk, using: &random))] }
        case .mixed:
            for id in controllers + brokers {
                switch random.int(in: 0...9) {
                case 0...3: continue
                case 4...6: chosen.append(NodeDisk(id: id, latency: slowDisk(using: &random)))
                default: chosen.append(NodeDisk(id: id, latency: stallingDisk(disk, using: &random)))
                }
            }
        }
        return StorageProfile(kind: kind, nodes: chosen.sorted { $0.id < $1.id }, configuredLatency: disk.syncLatency)
    }

    /// Every sync takes 100 ms to a ceiling drawn between 200 ms and 1 s.
    private static func slowDisk(using random: inout DeterministicRandom) -> DiskLatency {
        let ceiling = random.duration(in: .milliseconds(200)...slowLatencyCeiling)
        return DiskLatency(syncLatency: slowLatencyFloor...ceiling)
    }

    private static func stallingDisk(_ disk: SimDisk.Configuration, using random: inout DeterministicRandom) -> DiskLatency {
        let probability = Double(random.int(in: 10...50)) / 1_000
        return DiskLatency(syncLatency: disk.syncLatency, stallProbability: probability,
                           stallLatency: slowLatencyFloor...slowLatencyCeiling)
    }

    /// "slow-minority: n2 syncs 100–640 ms; n103 syncs 100–1000 ms; the rest syncs 0.2–5 ms".
    public var summary: String {
        let rest = "syncs " + formatMilliseconds(configuredLatency)
        guard !nodes.isEmpty else { return "\(kind.rawValue): every disk \(rest)" }
        return "\(kind.rawValue): " + nodes.map { "n\($0.id) \($0.latency)" }.joined(separator: "; ") + "; the rest \(rest)"
    }
}

// MARK: Workload

/// A burst of records to a few partitions: while it lasts, the producer keeps each of them at
/// its in-flight limit with one more batch queued, in batches of `recordsPerBatch`.
public struct ProducerBurst: Sendable, Equatable, CustomStringConvertible {
    /// After the producer client starts.
    public var start: Duration
    public var length: Duration
    public var partitions: [TopicPartition]
    public var recordsPerBatch: Int

    public init(start: Duration, length: Duration, partitions: [TopicPartition], recordsPerBatch: Int) {
        precondition(length > .zero && recordsPerBatch > 0 && !partitions.isEmpty, "a burst writes something for a while")
        self.start = start
        self.length = length
        self.partitions = partitions
        self.recordsPerBatch = recordsPerBatch
    }

    public var description: String {
        "at \(formatFixed(start.seconds, places: 1)) s for \(formatFixed(length.seconds, places: 1)) s to "
            + partitions.map(\.description).joined(separator: ",") + ", \(recordsPerBatch) records per batch"
    }
}

/// How the producer client writes: a steady 20 records/s round-robin over every partition, and in
/// a bursty world also bursts that fill a few partitions' in-flight limit.
public struct WorkloadProfile: Sendable, Equatable {
    public enum Kind: String, CaseIterable, Sendable {
        case steady
        case bursty
    }

    public var kind: Kind
    /// In start order; empty when steady.
    public var bursts: [ProducerBurst]
    /// False for a run without the producer (`--no-workload`).
    public var hasProducer = true

    static func draw(using random: inout DeterministicRandom, layout: ClusterLayout, safetyPhase: Duration,
                     kind forced: Kind?) -> WorkloadProfile {
        let drawn: Kind = random.chance(0.5) ? .bursty : .steady
        let kind = forced ?? drawn
        // The producer starts writing 3 s in; bursts end 3 s before the faults stop.
        let earliest = Duration.seconds(5)
        let latest = safetyPhase - .seconds(3)
        guard kind == .bursty, layout.produceWorkload, latest > earliest else {
            return WorkloadProfile(kind: kind, bursts: [], hasProducer: layout.produceWorkload)
        }
        let partitions = (0..<layout.topics).flatMap { topic in
            (0..<layout.partitionsPerTopic).map { TopicPartition(topic: "topic-\(topic)", partition: $0) }
        }
        var bursts: [ProducerBurst] = []
        for _ in 0..<random.int(in: 3...8) {
            var shuffled = partitions
            shuffleInPlace(&shuffled, using: &random)
            let count = min(random.int(in: 1...3), shuffled.count)
            bursts.append(ProducerBurst(start: random.duration(in: earliest...latest),
                                        length: random.duration(in: .milliseconds(300)...(.milliseconds(1_500))),
                                        partitions: Array(shuffled.prefix(count)).sorted(),
                                        recordsPerBatch: random.int(in: 1...8)))
        }
        return WorkloadProfile(kind: kind, bursts: bursts.sorted { $0.start < $1.start })
    }

    public var summary: String {
        guard hasProducer else { return "no producer" }
        guard !bursts.isEmpty else { return "\(kind.rawValue): 20 records/s round-robin" }
        let lengths = bursts.map(\.length)
        let sizes = bursts.map(\.recordsPerBatch)
        let widths = bursts.map(\.partitions.count)
        return "\(kind.rawValue): 20 records/s round-robin, and \(bursts.count) bursts of "
            + "\(formatFixed(lengths.min()!.seconds, places: 1))–\(formatFixed(lengths.max()!.seconds, places: 1)) s "
            + "keeping \(widths.min()!)–\(widths.max()!) partitions at 5 batches in flight + 1 queued, "
            + "\(sizes.min()!)–\(sizes.max()!) records per batch"
    }
}

// MARK: Election churn

/// Bursts of leadership changes in quick succession: several times in a row, the current leader
/// of one partition (or the active controller) is paused, isolated, killed or crashed — whichever
/// of those the fault profile enables — long enough to lose its leadership, while an operator
/// asks for preferred leader elections every few hundred milliseconds (which moves partitions
/// back as soon as their preferred replica is in sync again).
public struct ElectionChurnPlan: Sendable, Equatable {
    public enum Kind: String, CaseIterable, Sendable {
        case off
        case on
    }

    public enum Target: Sendable, Equatable, CustomStringConvertible {
        case activeController
        case partitionLeader(TopicPartition)

        public var description: String {
            switch self {
            case .activeController: return "active controller"
            case let .partitionLeader(topicPartition): return "leader of \(topicPartition)"
            }
        }
    }

    /// The faults churn uses, each only when the profile enables its kind.
    public enum Fault: String, Sendable, Equatable {
        case pause, isolate, kill, crash

        init?(_ kind: FaultKind) {
            switch kind {
            case .nodePause: self = .pause
            case .isolateNode: self = .isolate
            case .processKill: self = .kill
            case .nodeCrash: self = .crash
            default: return nil
            }
        }
    }

    public struct Step: Sendable, Equatable {
        public var fault: Fault
        /// How long the target stays paused or isolated, or down before its restart.
        public var outage: Duration
        /// Time from the end of the outage to the next step.
        public var gap: Duration
    }

    public struct Burst: Sendable, Equatable, CustomStringConvertible {
        /// Simulated time of the first step.
        public var start: Duration
        public var target: Target
        /// Empty when the profile enables none of churn's faults: then only the operator churns.
        public var steps: [Step]
        /// How long preferred elections are requested from `start`.
        public var span: Duration

        public var description: String {
            let faults = steps.isEmpty ? "no faults" : steps.map { "\($0.fault.rawValue) \(formatFixed($0.outage.seconds, places: 1)) s" }
                .joined(separator: ", ")
            return "at \(formatFixed(start.seconds, places: 1)) s, \(target): \(faults); preferred elections for \(formatFixed(span.seconds, places: 1)) s"
        }
    }

    public var kind: Kind
    /// In start order; empty when off.
    public var bursts: [Burst]
    public var preferredElectionInterval: Duration

    /// From the start of the operator client that asks for the elections (clients start at time
    /// zero and get no clock faults, so these are simulated times).
    var preferredElectionWindows: [ClosedRange<Duration>] { bursts.map { $0.start...($0.start + $0.span) } }

    static func draw(using random: inout DeterministicRandom, layout: ClusterLayout, safetyPhase: Duration,
                     faultKinds: [FaultKind], kind forced: Kind?) -> ElectionChurnPlan {
        let drawn: Kind = random.chance(0.5) ? .on : .off
        let kind = forced ?? drawn
        let interval = random.duration(in: .milliseconds(300)...(.milliseconds(800)))
        // Topics exist from about 10 s; the last burst starts 8 s before the faults stop.
        let earliest = Duration.seconds(12)
        let latest = safetyPhase - .seconds(8)
        guard kind == .on, latest > earliest else { return ElectionChurnPlan(kind: kind, bursts: [], preferredElectionInterval: interval) }
        let faults = faultKinds.compactMap(Fault.init)
        let partitions = (0..<layout.topics).flatMap { topic in
            (0..<layout.partitionsPerTopic).map { TopicPartition(topic: "topic-\(topic)", partition: $0) }
        }
        var bursts: [Burst] = []
        for _ in 0..<random.int(in: 1...3) {
            let target: Target = random.int(in: 0...2) == 0 || partitions.isEmpty
                ? .activeController : .partitionLeader(partitions[random.int(in: 0...(partitions.count - 1))])
            var steps: [Step] = []
            if !faults.isEmpty {
                for _ in 0..<random.int(in: 3...6) {
                    let fault = faults[random.int(in: 0...(faults.count - 1))]
                    steps.append(Step(fault: fault, outage: random.duration(in: outage(of: fault, target: target)),
                                      gap: random.duration(in: .milliseconds(200)...(.milliseconds(1_500)))))
                }
            }
            let span = steps.isEmpty ? random.duration(in: .seconds(5)...(.seconds(15)))
                                     : steps.reduce(Duration.seconds(5)) { $0 + $1.outage + $1.gap }
            bursts.append(Burst(start: random.duration(in: earliest...latest), target: target, steps: steps, span: span))
        }
        return ElectionChurnPlan(kind: kind, bursts: bursts.sorted { $0.start < $1.start }, preferredElectionInterval: interval)
    }

    /// Long enough to cost the target its leadership: past the controllers' election timeout
    /// (1–2 s), or past the brokers' 3 s session for a partition leader. A killed or crashed node
    /// is restarted after a short delay; it loses its leadership anyway, the broker once its old
    /// session runs out.
    private static func outage(of fault: Fault, target: Target) -> ClosedRange<Duration> {
        switch (fault, target) {
        case (.kill, _), (.crash, _): return .milliseconds(200)...(.seconds(1))
        case (_, .activeController): return .milliseconds(1_200)...(.milliseconds(2_500))
        case (_, .partitionLeader): return .milliseconds(3_200)...(.seconds(5))
        }
    }

    public var summary: String {
        guard !bursts.isEmpty else { return kind.rawValue }
        return "\(kind.rawValue): \(bursts.count) bursts, preferred elections every \(preferredElectionInterval.milliseconds) ms in each: "
            + bursts.map { burst in
                "\(formatFixed(burst.start.seconds, places: 1)) s \(burst.target)"
                    + (burst.steps.isEmpty ? "" : " " + burst.steps.map(\.fault.rawValue).joined(separator: ","))
            }.joined(separator: "; ")
    }
}

// MARK: Drawing helpers

/// One of `choices`, with probability proportional to its weight.
func pickWeighted<Value>(_ choices: [(Value, Int)], using random: inout DeterministicRandom) -> Value {
    let total = choices.reduce(0) { $0 + $1.1 }
    precondition(total > 0, "weights must add up to something")
    var draw = Int(random.next(below: UInt64(total)))
    for (value, weight) in choices {
        draw -= weight
        if draw < 0 { return value }
    }
    preconditionFailure("the draw is below the total")
}

/// Up to a minority (fewer than half) of `nodes`, possibly none, in id order.
func pickMinority(of nodes: [NodeID], using random: inout DeterministicRandom) -> [NodeID] {
    let limit = (nodes.count - 1) / 2
    guard limit > 0 else { return [] }
    var shuffled = nodes
    shuffleInPlace(&shuffled, using: &random)
    return Array(shuffled.prefix(random.int(in: 0...limit))).sorted()
}
