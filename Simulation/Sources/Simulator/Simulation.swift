import LogStorage
import NodeKit
import SimWorld
import TernCore

/// One simulated machine: its disk and clock, which survive process restarts, and the current
/// process (node object), which does not.
final class SimulatedMachine {
    let index: Int
    let specification: NodeSpecification
    let disk: SimDisk
    let nodeDisk: SimNodeDisk
    /// Each incarnation's `NodeEnvironment.random` is a stream of this, by incarnation number.
    let nodeRandom: DeterministicRandom
    var tickRandom: DeterministicRandom
    /// The operator's planned controlled shutdowns of this machine's processes.
    var shutdownRandom: DeterministicRandom
    /// The monotonic clock the node's deadlines count in: drifts, never steps.
    var clock: SimClock
    /// The time of day (since the Unix epoch): drifts with `clock`, and steps (NTP) on its own.
    var wallClock: SimClock
    var node: (any NodeStateMachine)?
    var status: NodeStatus = .down
    /// False after a crash or power loss until the restart. A killed process leaves the machine
    /// (and its page cache) up, so a later crash or power loss still reaches its disk.
    var machineIsUp = true
    /// 0 before the first start; +1 at each start.
    var incarnation = 0
    var tickInterval = Duration.milliseconds(1)
    /// A tick came due while paused; one tick is delivered at the resume (ticks coalesce).
    var tickAwaitingResume = false
    /// Messages that arrived while paused, in arrival order.
    var pausedBacklog: RingBuffer<InFlightMessage>
    /// The disk wake-up currently in the event queue (earlier-scheduled later ones are stale).
    var scheduledDiskWake: Instant?

    var id: NodeID { specification.id }

    init(index: Int, specification: NodeSpecification, configuration: SimulationConfiguration, random: DeterministicRandom) {
        let key = Int(specification.id.rawValue)
        self.index = index
        self.specification = specification
        disk = SimDisk(random: random.stream("node.disk", key), configuration: specification.disk(from: configuration.disk))
        nodeDisk = SimNodeDisk(disk: disk, random: random.stream("node.disk-faults", key))
        nodeRandom = random.stream("node.random", key)
        tickRandom = random.stream("node.ticks", key)
        shutdownRandom = random.stream("node.planned-shutdown", key)
        var clockRandom = random.stream("node.clock", key)
        clock = SimClock(offset: clockRandom.duration(in: .zero...configuration.clockOriginSpread),
                         isMonotonic: configuration.clocksAreMonotonic)
        wallClock = SimClock(offset: configuration.wallClockOrigin + clockRandom.duration(in: .zero...configuration.wallClockSpread),
                             isMonotonic: false)
        pausedBacklog = RingBuffer(capacity: configuration.pausedBacklogCapacity)
    }
}

/// What the scheduler does when an entry of its queue comes due.
enum ScheduledAction {
    case tick(node: Int, incarnation: Int)
    case diskWake(node: Int)
    case arrival(InFlightMessage)
    case fault(FaultAction, fromNemesis: Bool)
    case nemesisStep
    case periodicCheck
    case beginLivenessPhase
    case endOfRun
    /// The head of one direction of a client connection is due at its end.
    case connectionArrival(connection: UInt64, towardServer: Bool)
    /// One end of a client connection closed without a segment (its own close, a reset).
    case connectionEndClosed(connection: UInt64, serverEnd: Bool)
    case connectionReadsResumed(connection: UInt64)
    /// The operator asks the process for a controlled shutdown.
    case plannedShutdown(node: Int, incarnation: Int)
}

/// The deterministic simulator: a whole cluster in one thread, driven by a discrete-event queue
/// ordered by (time, sequence number) under one seed.
///
/// The scheduler delivers `.start`, then `.tick` every `tickInterval` (plus jitter), to each
/// node; carries sends through `SimNetwork`; wakes each node's `SimDisk` at its
/// `nextCompletionTime` and hands finished syncs to the node as `.syncCompleted`. After each event
/// it carries out the node's effects in order (sends into the network; `.halt` ends the run as a
/// violation), records a trace record, and runs the checkers. The seed is split into independent
/// streams: one per link, per node (disk, disk faults, ticks, clock, node randomness by
/// incarnation) and for the nemesis, so adding a component never reshuffles the others.
///
/// A run has a safety phase, in which the nemesis injects the profile's faults, and a liveness
/// phase, which heals everything (partitions, clogs, degraded links, pauses, skew, EIO windows;
/// down nodes restart) and injects nothing; the caller's convergence condition must then hold
/// within the phase.
public final class Simulation {
    public let configuration: SimulationConfiguration
    /// Checked every `checkInterval` in the liveness phase; a run that never satisfies it fails
    /// with a liveness violation. Nil: the liveness phase just runs to its end.
    public var isConverged: ((SimulationView) -> Bool)?
    /// What is still missing when the liveness phase ends unconverged, for the violation message.
    public var describeNonConvergence: ((SimulationView) -> String)?
    /// Receives one readable line per trace record (`time subject kind details`). Set before `run`.
    public var traceSink: ((String) -> Void)?

    public private(set) var now: Instant = .zero
    public private(set) var phase: SimulationPhase = .safety
    public private(set) var livenessPhaseStart: Instant?
    public private(set) var faultsInjected = FaultCounts(repeating: 0)
    public let network: SimNetwork
    let nodeIDs: [NodeID]

    private let makeNode: (NodeEnvironment) -> any NodeStateMachine
    private var checkers: [any SimulationChecker] = []
    private var faultPlanners: [any FaultPlanner] = []
    let hosts: [SimulatedMachine]
    /// Looked up only, never walked.
    let indexByID: [NodeID: Int]
    private var queue: EventQueue<ScheduledAction>
    private var nextSequence: UInt64 = 0
    private var pendingScriptedActions = 0
    private var nemesis: Nemesis
    private var corruptionRandom: DeterministicRandom
    var trace = SimulationTrace(sink: nil)
    private var eventsDelivered = 0
    private var schedulerSteps = 0
    private var nodeRestarts = 0
    var violation: SimulationViolation?
    private var convergedAt: Instant?
    private var finished = false
    private var hasRun = false
    /// Reused for every event, so delivering one allocates nothing on the hot path.
    private var effects: [NodeEffect] = []
    private var polledCompletions: [SyncCompletion] = []
    /// Client connections by the server's id for them (looked up only; walks sort the keys).
    var connections: [UInt64: SimConnection] = [:]
    var connectionByOutbound: [OutboundEnd: UInt64] = [:]
    var nextConnectionID: UInt64 = 1

    /// Scripted actions that may wait in the queue at once.
    static let maximumScriptedActions = 1 << 16

    /// `makeNode` builds a node for its environment, at the first start and again after every
    /// restart (on the same disk); the node it returns must carry `environment.nodeID`.
    public init(configuration: SimulationConfiguration, makeNode: @escaping (NodeEnvironment) -> any NodeStateMachine) {
        configuration.validate()
        self.configuration = configuration
        self.makeNode = makeNode
        let root = DeterministicRandom(seed: configuration.seed)
        nodeIDs = configuration.nodes.map(\.id)
        network = SimNetwork(nodeIDs: nodeIDs, configuration: configuration.network, random: root.stream("network"))
        hosts = configuration.nodes.enumerated().map { index, specification in
            SimulatedMachine(index: index, specification: specification, configuration: configuration, random: root)
        }
        var indexByID: [NodeID: Int] = [:]
        for host in hosts { indexByID[host.id] = host.index }
        self.indexByID = indexByID
        nemesis = Nemesis(profile: configuration.profile, configuration: configuration.nemesis,
                          nodes: configuration.nodes, random: root.stream("nemesis"))
        corruptionRandom = root.stream("latent-corruption")
        queue = EventQueue(capacity: Simulation.eventQueueCapacity(configuration))
    }

    /// Every event the queue can hold at once: each in-flight message once, per node a tick
    /// (plus ticks of dead incarnations not yet popped) and a disk wake-up per outstanding sync,
    /// the nemesis's pending healings, scripted actions, and the run's own markers.
    static func eventQueueCapacity(_ configuration: SimulationConfiguration) -> Int {
        let nodeCount = configuration.nodes.count
        let messages = nodeCount * nodeCount * configuration.network.maximumInFlightPerLink
        let perNode = configuration.disk.maximumOutstandingSyncs + 64
        let nemesis = 4 * nodeCount + 2 * configuration.nemesis.clogLinksPerEpisode.upperBound + 2
        // Per connection: an arrival per direction, a close per end, a resumed read.
        let connectionEvents = 5 * maximumConnections
        return messages + nodeCount * perNode + nemesis + maximumScriptedActions + connectionEvents + 16
    }

    public func addChecker(_ checker: any SimulationChecker) {
        precondition(!hasRun, "checkers are registered before the run")
        checkers.append(checker)
    }

    public func addFaultPlanner(_ planner: any FaultPlanner) {
        precondition(!hasRun, "fault planners are registered before the run")
        faultPlanners.append(planner)
    }

    /// Schedules a hand-written fault (or healing) at simulated `time`. Scripted actions apply in
    /// either phase.
    public func schedule(_ action: FaultAction, at time: Instant) {
        precondition(time >= now, "a scripted action cannot be scheduled in the past")
        precondition(pendingScriptedActions < Simulation.maximumScriptedActions,
                     "more than \(Simulation.maximumScriptedActions) scripted actions pending")
        pendingScriptedActions += 1
        push(.fault(action, fromNemesis: false), at: time)
    }

    /// Runs the simulation once, from time zero to the end of the liveness phase, convergence, or
    /// the first violation.
    public func run() -> SimulationReport {
        precondition(!hasRun, "a Simulation runs once; make a new one to replay")
        hasRun = true
        trace = SimulationTrace(sink: traceSink)
        for choice in configuration.worldChoices { trace.record(now, .cluster, .world, stableHash(choice)) { choice } }
        let livenessStart = Instant.zero + configuration.safetyPhaseDuration
        let end = livenessStart + configuration.livenessPhaseDuration
        if configuration.profile.degradesNetwork && configuration.safetyPhaseDuration > .zero {
            network.setDegraded(true)
        }
        for host in hosts where violation == nil { startNode(host) }
        if nemesis.isActive { scheduleNemesisStep(before: livenessStart) }
        if let failure = nemesis.planOneBrokerFailure(nodes: configuration.nodes, safetyPhase: configuration.safetyPhaseDuration) {
            push(.fault(failure.action, fromNemesis: true), at: now + failure.delay)
        }
        push(.periodicCheck, at: now + configuration.checkInterval)
        push(.beginLivenessPhase, at: livenessStart)
        push(.endOfRun, at: end)
        while violation == nil && !finished, let (time, _, action) = queue.popMin() {
            schedulerSteps += 1
            guard schedulerSteps <= configuration.maximumSchedulerSteps else {
                recordViolation(.liveness, node: nil,
                                "the step budget of \(configuration.maximumSchedulerSteps) scheduler steps ran out")
                break
            }
            precondition(time >= now, "the scheduler's time never goes backwards")
            now = time
            dispatch(action)
        }
        finishRun()
        return makeReport()
    }

    /// How long a supervisor waits before starting a process that exited.
    static let supervisorRestartDelay = Duration.seconds(1)

    /// Builds a simulation, registers checkers and runs it.
    public static func run(
        _ configuration: SimulationConfiguration,
        checkers: [any SimulationChecker] = [],
        faultPlanners: [any FaultPlanner] = [],
        isConverged: ((SimulationView) -> Bool)? = nil,
        describeNonConvergence: ((SimulationView) -> String)? = nil,
        traceSink: ((String) -> Void)? = nil,
        makeNode: @escaping (NodeEnvironment) -> any NodeStateMachine
    ) -> SimulationReport {
        let simulation = Simulation(configuration: configuration, makeNode: makeNode)
        for checker in checkers { simulation.addChecker(checker) }
        for planner in faultPlanners { simulation.addFaultPlanner(planner) }
        simulation.isConverged = isConverged
        simulation.describeNonConvergence = describeNonConvergence
        simulation.traceSink = traceSink
        return simulation.run()
    }

    /// What checkers see; also for inspecting a simulation after `run`.
    public var view: SimulationView { SimulationView(simulation: self) }

    func host(_ id: NodeID) -> SimulatedMachine {
        guard let index = indexByID[id] else { preconditionFailure("n\(id) is not a node of this simulation") }
        return hosts[index]
    }

    // MARK: The event loop

    func push(_ action: ScheduledAction, at time: Instant) {
        precondition(time >= now, "events are scheduled at or after the current time")
        let inserted = queue.insert(action, time: time, sequence: nextSequence)
        precondition(inserted, "the event queue bound (\(queue.capacity)) is exceeded: a bound in eventQueueCapacity is wrong")
        nextSequence += 1
    }

    private func dispatch(_ action: ScheduledAction) {
        switch action {
        case let .tick(index, incarnation): handleTick(hosts[index], incarnation: incarnation)
        case let .diskWake(index): handleDiskWake(hosts[index])
        case let .arrival(message): handleArrival(message)
        case let .fault(action, fromNemesis):
            if !fromNemesis { pendingScriptedActions -= 1 }
            apply(action, fromNemesis: fromNemesis)
        case .nemesisStep: handleNemesisStep()
        case .periodicCheck: handlePeriodicCheck()
        case .beginLivenessPhase: beginLivenessPhase()
        case .endOfRun:
            trace.record(now, .cluster, .end) { "end of run" }
            finished = true
        case let .connectionArrival(connection, towardServer): handleConnectionArrival(connection, towardServer: towardServer)
        case let .connectionEndClosed(connection, serverEnd): handleConnectionEndClosed(connection, serverEnd: serverEnd)
        case let .connectionReadsResumed(connection): handleConnectionReadsResumed(connection)
        case let .plannedShutdown(index, incarnation): handlePlannedShutdown(hosts[index], incarnation: incarnation)
        }
    }

    private func handleTick(_ host: SimulatedMachine, incarnation: Int) {
        guard host.incarnation == incarnation, host.status != .down else { return }  // a dead process's tick
        guard host.status == .running else {
            host.tickAwaitingResume = true
            return
        }
        deliver(.tick, to: host)
        scheduleTick(host, after: host.tickInterval)
    }

    private func scheduleTick(_ host: SimulatedMachine, after delay: Duration) {
        var due = now + delay
        if configuration.tickJitter > .zero { due = due + host.tickRandom.duration(in: .zero...configuration.tickJitter) }
        push(.tick(node: host.index, incarnation: host.incarnation), at: due)
    }

    private func handleDiskWake(_ host: SimulatedMachine) {
        guard host.scheduledDiskWake == now else { return }  // superseded by an earlier wake-up
        host.scheduledDiskWake = nil
        host.disk.advance(to: now)
        // A paused node's completions wait in the disk until the resume; a dead process's are
        // discarded by the disk itself.
        if host.status == .running { deliverCompletions(host) }
        scheduleDiskWake(host)
    }

    private func scheduleDiskWake(_ host: SimulatedMachine) {
        guard let due = host.disk.nextCompletionTime else { return }
        if let scheduled = host.scheduledDiskWake, scheduled <= due { return }
        host.scheduledDiskWake = due
        push(.diskWake(node: host.index), at: due)
    }

    private func deliverCompletions(_ host: SimulatedMachine) {
        polledCompletions.removeAll(keepingCapacity: true)
        host.disk.pollCompletions(into: &polledCompletions)
        let batch = polledCompletions
        for completion in batch where violation == nil && host.status == .running {
            deliver(.syncCompleted(host.nodeDisk.deliverable(completion)), to: host)
        }
    }

    private func handleArrival(_ message: InFlightMessage) {
        let source = hosts[message.source].id
        let host = hosts[message.destination]
        switch network.arrive(message) {
        case .held:
            trace.record(now, .link(source, host.id), .held, message.digest) { "held (clogged) bytes=\(message.bytes.count)" }
        case let .dropped(reason):
            traceDrop(reason, message)
        case .deliver:
            switch host.status {
            case .down:
                network.recordDrop(.downNode)
                traceDrop(.downNode, message)
            case .paused:
                if host.pausedBacklog.append(message) {
                    network.recordPausedBacklog(host.pausedBacklog.count)
                } else {
                    network.recordDrop(.pausedBacklog)
                    traceDrop(.pausedBacklog, message)
                }
            case .running:
                network.recordDelivery()
                deliver(.message(from: source, bytes: message.bytes), to: host, digest: message.digest)
            }
        }
    }

    private func traceDrop(_ reason: DropReason, _ message: InFlightMessage) {
        trace.record(now, .link(hosts[message.source].id, hosts[message.destination].id), .drop, reason.rawValue, message.digest) {
            "\(reason) bytes=\(message.bytes.count) digest=\(hexadecimal(message.digest))"
        }
    }

    // MARK: Delivering events to nodes

    /// Hands one event to a running node, then carries out its effects, traces, schedules the
    /// disk's next wake-up and runs the checkers.
    func deliver(_ event: NodeEvent, to host: SimulatedMachine, digest: UInt64 = 0) {
        guard violation == nil, let node = host.node else { return }
        precondition(host.status == .running, "only running nodes receive events")
        host.disk.advance(to: now)  // so syncs requested now are due after now
        let nodeTime = host.clock.observe(at: now)
        let wallTime = host.wallClock.observe(at: now)
        effects.removeAll(keepingCapacity: true)
        node.handle(event, now: nodeTime, wallClock: wallTime, effects: &effects)
        eventsDelivered += 1
        traceEvent(event, host: host, nodeTime: nodeTime, digest: digest)
        executeEffects(of: host)
        scheduleDiskWake(host)
        guard violation == nil, !checkers.isEmpty else { return }
        let delivered = DeliveredEvent(time: now, nodeTime: nodeTime, wallClock: wallTime, nodeID: host.id, incarnation: host.incarnation,
                                       event: event, effects: effects)
        let view = self.view
        for checker in checkers {
            if case let .violation(message) = checker.afterEvent(delivered, in: view) {
                recordViolation(.checker(checker.name), node: host.id, message)
                return
            }
        }
    }

    private func traceEvent(_ event: NodeEvent, host: SimulatedMachine, nodeTime: Instant, digest: UInt64) {
        let subject = TraceSubject.node(host.id)
        let clockWord = UInt64(bitPattern: nodeTime.nanoseconds)
        switch event {
        case .start:
            trace.record(now, subject, .start, UInt64(host.incarnation), clockWord) {
                "incarnation=\(host.incarnation) clock=\(traceTime(nodeTime))"
            }
        case .tick:
            trace.record(now, subject, .tick, clockWord)
        case .shutdownRequested:
            trace.record(now, subject, .shutdownRequested)
        case let .message(source, bytes):
            trace.record(now, subject, .message, UInt64(UInt32(bitPattern: source.rawValue)), UInt64(bytes.count), digest) {
                "from=n\(source) bytes=\(bytes.count) digest=\(hexadecimal(digest))"
            }
        case let .syncCompleted(completion):
            let failed: Bool
            let outcome: String
            switch completion.result {
            case .success: (failed, outcome) = (false, "ok")
            case let .failure(error): (failed, outcome) = (true, "failed: \(error)")
            }
            trace.record(now, subject, .syncCompleted, completion.token.rawValue, failed ? 1 : 0) {
                "\(completion.token) \(outcome)"
            }
        case let .clientConnected(id):
            trace.record(now, subject, .connectionEvent, id.rawValue, 1) { "connected \(id)" }
        case let .clientRequest(id, frame):
            trace.record(now, subject, .connectionEvent, id.rawValue, 2, UInt64(frame.count)) { "request \(id) bytes=\(frame.count)" }
        case let .clientDisconnected(id):
            trace.record(now, subject, .connectionEvent, id.rawValue, 3) { "disconnected \(id)" }
        case let .outboundConnected(id):
            trace.record(now, subject, .connectionEvent, id.rawValue, 4) { "connected \(id)" }
        case let .outboundResponse(id, frame):
            trace.record(now, subject, .connectionEvent, id.rawValue, 5, UInt64(frame.count)) { "response \(id) bytes=\(frame.count)" }
        case let .outboundClosed(id):
            trace.record(now, subject, .connectionEvent, id.rawValue, 6) { "closed \(id)" }
        }
    }

    private func executeEffects(of host: SimulatedMachine) {
        for effect in effects {
            switch effect {
            case let .send(destinationID, bytes):
                let digest = payloadDigest(bytes)
                trace.record(now, .node(host.id), .send, UInt64(UInt32(bitPattern: destinationID.rawValue)),
                             UInt64(bytes.count), digest) {
                    "to=n\(destinationID) bytes=\(bytes.count) digest=\(hexadecimal(digest))"
                }
                guard bytes.count <= configuration.network.maximumMessageBytes else {
                    recordViolation(.bound, node: host.id,
                                    "sent \(bytes.count) bytes to n\(destinationID), over the \(configuration.network.maximumMessageBytes)-byte message bound")
                    return
                }
                guard let destination = indexByID[destinationID] else {
                    network.recordSendToUnknownDestination()
                    trace.record(now, .node(host.id), .drop, DropReason.unknownDestination.rawValue, digest) {
                        "unknown-destination n\(destinationID)"
                    }
                    continue
                }
                send(bytes, digest: digest, from: host.index, to: destination)
            case let .halt(reason):
                trace.record(now, .node(host.id), .halt, stableHash(reason)) { "reason=\(reason)" }
                recordViolation(.halt, node: host.id, reason)
                return
            case let .exit(reason):
                // The process ends as a kill would end it (the machine and its page cache stay);
                // a supervisor starts it again after a fixed delay.
                trace.record(now, .node(host.id), .halt, stableHash(reason)) { "exit reason=\(reason)" }
                stopNode(host, .kill)
                push(.fault(.restart(host.id), fromNemesis: false), at: now + Self.supervisorRestartDelay)
                return
            case .reply, .closeClient, .pauseClientReads, .resumeClientReads, .openOutbound, .sendOutbound, .closeOutbound:
                guard executeConnectionEffect(effect, of: host) else { return }
            case .log:
                continue  // the operator's log: not part of the run's behaviour
            }
        }
    }

    private func send(_ bytes: [UInt8], digest: UInt64, from source: Int, to destination: Int) {
        var copies = 0
        let dropped = network.send(from: source, to: destination, bytes: bytes, digest: digest, now: now) { arrival, message in
            copies += 1
            push(.arrival(message), at: arrival)
        }
        if let dropped {
            trace.record(now, .link(hosts[source].id, hosts[destination].id), .drop, dropped.rawValue, digest) {
                "\(dropped) bytes=\(bytes.count) digest=\(hexadecimal(digest))"
            }
        } else if copies > 1 {
            trace.record(now, .link(hosts[source].id, hosts[destination].id), .duplicate, digest) { "digest=\(hexadecimal(digest))" }
        }
    }

    // MARK: Node lifecycle

    /// A new process on the machine's disk: a fresh node from the factory, `.start`, then ticks
    /// from a random phase.
    private func startNode(_ host: SimulatedMachine) {
        precondition(host.status == .down && host.node == nil, "only a down node starts")
        host.incarnation += 1
        if host.incarnation > 1 { nodeRestarts += 1 }
        host.disk.advance(to: now)
        let environment = NodeEnvironment(
            nodeID: host.id, disk: host.nodeDisk, dataDirectory: configuration.dataDirectory,
            random: host.nodeRandom.stream("incarnation", host.incarnation))
        let node = makeNode(environment)
        precondition(node.nodeID == host.id, "the node factory built n\(node.nodeID) for n\(host.id)")
        host.tickInterval = host.specification.tickInterval ?? node.tickInterval
        precondition(host.tickInterval > .zero, "n\(host.id)'s tick interval must be positive")
        host.node = node
        host.status = .running
        host.machineIsUp = true
        deliver(.start, to: host)
        scheduleTick(host, after: host.tickRandom.duration(in: .zero...host.tickInterval))
        planShutdown(host)
    }

    private func planShutdown(_ host: SimulatedMachine) {
        guard let plan = configuration.plannedShutdowns, host.specification.roles.contains(.broker),
              host.shutdownRandom.chance(plan.probability) else { return }
        let at = now + host.shutdownRandom.duration(in: plan.delay)
        if plan.end.map({ at < $0 }) ?? true { push(.plannedShutdown(node: host.index, incarnation: host.incarnation), at: at) }
    }

    /// A paused process reads its signal once it runs again.
    private func handlePlannedShutdown(_ host: SimulatedMachine, incarnation: Int) {
        guard host.incarnation == incarnation, host.status != .down else { return }
        guard host.status == .running else {
            push(.plannedShutdown(node: host.index, incarnation: incarnation), at: now + host.tickInterval)
            return
        }
        deliver(.shutdownRequested, to: host)
    }

    private enum Stop { case crash, kill, powerLoss }

    /// The process is gone (or, for a crash or power loss of a machine whose process was already
    /// killed, only the page cache); what the disk keeps depends on how it went.
    private func stopNode(_ host: SimulatedMachine, _ stop: Stop) {
        precondition(stop == .kill ? host.status != .down : host.machineIsUp, "n\(host.id) is already stopped")
        host.disk.advance(to: now)
        switch stop {
        case .crash: host.disk.crash()
        case .kill: host.disk.killProcess()
        case .powerLoss: host.disk.powerLoss()
        }
        if stop != .kill { host.machineIsUp = false }
        guard host.status != .down else { return }
        host.node = nil
        host.status = .down
        host.tickAwaitingResume = false
        host.nodeDisk.processEnded()
        connectionsLoseProcess(host)
        // Messages waiting in a paused process's socket buffers die with it.
        while let lost = host.pausedBacklog.popFirst() {
            network.recordDrop(.downNode)
            traceDrop(.downNode, lost)
        }
    }

    private func resumeNode(_ host: SimulatedMachine) {
        precondition(host.status == .paused, "only a paused node resumes")
        host.status = .running
        host.disk.advance(to: now)
        deliverCompletions(host)
        while violation == nil, host.status == .running, let message = host.pausedBacklog.popFirst() {
            network.recordDelivery()
            deliver(.message(from: hosts[message.source].id, bytes: message.bytes), to: host, digest: message.digest)
        }
        resumeConnectionPipes(toward: host)
        if host.tickAwaitingResume {
            host.tickAwaitingResume = false
            push(.tick(node: host.index, incarnation: host.incarnation), at: now)
        }
        scheduleDiskWake(host)
    }

    // MARK: Faults

    private func apply(_ action: FaultAction, fromNemesis: Bool) {
        // The liveness phase injects nothing; healings the nemesis planned still run.
        if fromNemesis && phase == .liveness && !action.isHealing { return }
        switch action {
        case let .crash(id):
            let host = host(id)
            guard host.machineIsUp else { return }
            recordFault(.nodeCrash, action, .node(id))
            stopNode(host, .crash)
        case let .killProcess(id):
            let host = host(id)
            guard host.status != .down else { return }
            recordFault(.processKill, action, .node(id))
            stopNode(host, .kill)
        case let .powerLoss(ids):
            let victims = ids.map { host($0) }.filter(\.machineIsUp)
            guard !victims.isEmpty else { return }
            recordFault(.powerLoss, .powerLoss(victims.map(\.id)), .cluster)
            for victim in victims { stopNode(victim, .powerLoss) }
        case let .restart(id):
            let host = host(id)
            guard host.status == .down else { return }
            recordHealing(action, .node(id))
            startNode(host)
        case let .pause(id):
            let host = host(id)
            guard host.status == .running else { return }
            recordFault(.nodePause, action, .node(id))
            host.status = .paused
        case let .resume(id):
            let host = host(id)
            guard host.status == .paused else { return }
            recordHealing(action, .node(id))
            resumeNode(host)
        case let .partition(partition):
            recordFault(partition.kind, action, .cluster)
            network.partition(blocking: partition.blockedLinks.compactMap { link in
                guard let source = indexByID[link.source], let destination = indexByID[link.destination] else { return nil }
                return (source, destination)
            })
        case .healPartition:
            recordHealing(action, .cluster)
            network.healPartition()
        case let .clog(link):
            guard let source = indexByID[link.source], let destination = indexByID[link.destination],
                  network.clog(from: source, to: destination) else { return }
            recordFault(.linkClog, action, .link(link.source, link.destination))
        case let .unclog(link):
            guard let source = indexByID[link.source], let destination = indexByID[link.destination] else { return }
            unclog(from: source, to: destination)
        case let .setClockDrift(id, partsPerMillion):
            let host = host(id)
            host.clock.setDrift(partsPerMillion: partsPerMillion, at: now)
            host.wallClock.setDrift(partsPerMillion: partsPerMillion, at: now)
            if partsPerMillion == 0 { recordHealing(action, .node(id)) } else { recordFault(.clockSkew, action, .node(id)) }
        case let .jumpClock(id, amount):
            host(id).wallClock.jump(by: amount)
            recordFault(.clockJump, action, .node(id))
        case let .corruptDurableData(id):
            let host = host(id)
            guard let (path, bytes) = host.disk.corruptDurableSector(
                using: &corruptionRandom, where: configuration.nemesis.isCorruptibleFile) else { return }
            recordFault(.latentCorruption, action, .node(id), detail: " \(path) bytes \(bytes.lowerBound)..<\(bytes.upperBound)")
        case .resetConnections(let id), .blackholeConnections(let id), .stallConnections(let id, _):
            let hit = applyConnectionFault(action)
            if hit > 0 { recordFault(.connectionFault, action, .node(id), detail: " (\(hit) connections)") }
        case let .setDiskIOErrors(id, probability):
            precondition(probability >= 0 && probability <= 1, "a probability is within 0...1")
            host(id).nodeDisk.ioErrorProbability = probability
            if probability == 0 { recordHealing(action, .node(id)) } else { recordFault(.diskIOErrors, action, .node(id)) }
        }
    }

    private func unclog(from source: Int, to destination: Int) {
        let released = network.unclog(from: source, to: destination, now: now) { arrival, message in
            push(.arrival(message), at: arrival)
        }
        if released {
            recordHealing(.unclog(DirectedLink(from: hosts[source].id, to: hosts[destination].id)),
                          .link(hosts[source].id, hosts[destination].id))
        }
    }

    private func recordFault(_ kind: FaultKind, _ action: FaultAction, _ subject: TraceSubject, detail: String = "") {
        faultsInjected[kind] += 1
        let text = action.description + detail
        trace.record(now, subject, .fault, action.traceCode, stableHash(text)) { text }
        tellCheckers(action)
    }

    private func recordHealing(_ action: FaultAction, _ subject: TraceSubject) {
        trace.record(now, subject, .heal, action.traceCode, stableHash(action.description)) { action.description }
        tellCheckers(action)
    }

    private func tellCheckers(_ action: FaultAction) {
        let view = self.view
        for checker in checkers { checker.faultApplied(action, in: view) }
    }

    private func scheduleNemesisStep(before livenessStart: Instant) {
        let due = now + nemesis.nextStepDelay()
        if due < livenessStart { push(.nemesisStep, at: due) }
    }

    private func handleNemesisStep() {
        guard phase == .safety else { return }
        let planned = nemesis.step(now: now) { host($0).status }
        for fault in planned where violation == nil {
            if fault.delay == .zero {
                apply(fault.action, fromNemesis: true)
            } else {
                push(.fault(fault.action, fromNemesis: true), at: now + fault.delay)
            }
        }
        scheduleNemesisStep(before: Instant.zero + configuration.safetyPhaseDuration)
    }

    // MARK: Phases and checks

    /// Heals everything, restarts what is down, and stops the nemesis.
    private func beginLivenessPhase() {
        phase = .liveness
        livenessPhaseStart = now
        trace.record(now, .cluster, .phase, 2) { "liveness" }
        network.setDegraded(false)
        if !network.isHealed {
            recordHealing(.healPartition, .cluster)
            network.healPartition()
        }
        for link in network.cloggedLinks() { unclog(from: link.source, to: link.destination) }
        for host in hosts where violation == nil {
            if host.clock.driftPartsPerMillion != 0 { apply(.setClockDrift(host.id, partsPerMillion: 0), fromNemesis: false) }
            if host.nodeDisk.ioErrorProbability != 0 { apply(.setDiskIOErrors(host.id, probability: 0), fromNemesis: false) }
            switch host.status {
            case .running: break
            case .paused: apply(.resume(host.id), fromNemesis: false)
            case .down: apply(.restart(host.id), fromNemesis: false)
            }
        }
    }

    private func handlePeriodicCheck() {
        let view = self.view
        for checker in checkers {
            if case let .violation(message) = checker.periodically(in: view) {
                recordViolation(.checker(checker.name), node: nil, message)
                return
            }
        }
        if phase == .safety { runFaultPlanners(view) }
        if phase == .liveness, convergedAt == nil, let isConverged, isConverged(view) {
            convergedAt = now
            trace.record(now, .cluster, .phase, 3) { "converged" }
            if configuration.stopWhenConverged { finished = true }
        }
        push(.periodicCheck, at: now + configuration.checkInterval)
    }

    private func runFaultPlanners(_ view: SimulationView) {
        for planner in faultPlanners {
            for (delay, action) in planner.plan(in: view) where violation == nil {
                if delay == .zero {
                    apply(action, fromNemesis: true)
                } else {
                    precondition(delay > .zero && action.isHealing, "a fault planner schedules only healings for later, not \(action)")
                    schedule(action, at: now + delay)
                }
            }
        }
    }

    private func finishRun() {
        guard violation == nil else { return }
        let view = self.view
        for checker in checkers {
            if case let .violation(message) = checker.atEnd(of: view) {
                recordViolation(.checker(checker.name), node: nil, message)
                return
            }
        }
        guard let isConverged, convergedAt == nil else { return }
        if phase == .liveness, isConverged(view) {
            convergedAt = now
            return
        }
        let missing = describeNonConvergence.map { ": " + $0(view) } ?? ""
        recordViolation(.liveness, node: nil,
                        "the cluster did not converge within the \(configuration.livenessPhaseDuration) liveness phase\(missing)")
    }

    func recordViolation(_ kind: SimulationViolation.Kind, node: NodeID?, _ message: String) {
        guard violation == nil else { return }
        violation = SimulationViolation(kind: kind, time: now, node: node, message: message,
                                        seed: configuration.seed, profile: configuration.profile)
        let subject: TraceSubject = node.map { .node($0) } ?? .cluster
        trace.record(now, subject, .violation, stableHash(message)) { "[\(kind)] \(message)" }
    }

    private func makeReport() -> SimulationReport {
        SimulationReport(
            seed: configuration.seed, profile: configuration.profile, nodeCount: hosts.count,
            simulatedTime: now - .zero, eventsDelivered: eventsDelivered, schedulerSteps: schedulerSteps,
            faultsInjected: faultsInjected, nodeRestarts: nodeRestarts, network: network.statistics,
            injectedDiskErrors: hosts.reduce(0) { $0 + $1.nodeDisk.injectedErrors },
            traceHash: trace.hash.value, traceRecords: trace.recordCount,
            livenessPhaseStart: livenessPhaseStart, convergedAt: convergedAt, violation: violation)
    }
}
