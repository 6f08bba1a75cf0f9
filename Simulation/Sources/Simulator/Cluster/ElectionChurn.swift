import Controller
import NodeKit
import SimWorld
import TernCore

/// Carries out an `ElectionChurnPlan`'s faults: for each step of a burst it finds the target as
/// the cluster stands at that moment (the active controller, or the current leader of the
/// partition in the active controller's committed image) and pauses, isolates, kills or crashes
/// it, then heals it after the step's outage. The nemesis keeps running meanwhile; churn respects
/// its bound on nodes crashed, killed or paused at once, and isolates only while no partition or
/// clog is in force (one partition holds at a time). A step whose target cannot be found or
/// faulted within `patience` is skipped.
final class ElectionChurnPlanner: FaultPlanner {
    private let plan: ElectionChurnPlan
    private let layout: ClusterLayout
    private var burstIndex = 0
    private var stepIndex = 0
    /// When the next step is due; nil before a burst has started.
    private var nextStepAt: Instant?
    private(set) var stepsTaken = 0
    private(set) var stepsSkipped = 0

    static let patience = Duration.seconds(3)

    init(plan: ElectionChurnPlan, layout: ClusterLayout) {
        self.plan = plan
        self.layout = layout
    }

    func plan(in simulation: SimulationView) -> [(delay: Duration, action: FaultAction)] {
        while burstIndex < plan.bursts.count && plan.bursts[burstIndex].steps.count <= stepIndex {
            burstIndex += 1
            stepIndex = 0
        }
        guard burstIndex < plan.bursts.count else { return [] }
        let burst = plan.bursts[burstIndex]
        let due = max(nextStepAt ?? .zero, .zero + burst.start)
        nextStepAt = due
        guard simulation.now >= due else { return [] }
        let step = burst.steps[stepIndex]
        guard let target = resolve(burst.target, in: simulation),
              let faults = faults(step, on: target, in: simulation) else {
            if simulation.now - due >= Self.patience {
                stepsSkipped += 1
                advance(to: simulation.now)
            }
            return []
        }
        stepsTaken += 1
        advance(to: simulation.now + step.outage + step.gap)
        return faults
    }

    private func advance(to time: Instant) {
        stepIndex += 1
        nextStepAt = time
    }

    private func resolve(_ target: ElectionChurnPlan.Target, in simulation: SimulationView) -> NodeID? {
        guard let active = activeController(simulation, layout: layout) else { return nil }
        switch target {
        case .activeController:
            return active.nodeID
        case let .partitionLeader(topicPartition):
            return active.committedImage.partition(topicPartition)?.leader
        }
    }

    private func faults(_ step: ElectionChurnPlan.Step, on target: NodeID,
                        in simulation: SimulationView) -> [(delay: Duration, action: FaultAction)]? {
        guard simulation.status(of: target) == .running else { return nil }
        switch step.fault {
        case .isolate:
            guard simulation.network.isHealed else { return nil }
            return [(.zero, .partition(.isolating(target, from: simulation.nodeIDs))), (step.outage, .healPartition)]
        case .pause:
            guard mayStopAnother(simulation) else { return nil }
            return [(.zero, .pause(target)), (step.outage, .resume(target))]
        case .kill:
            guard mayStopAnother(simulation) else { return nil }
            return [(.zero, .killProcess(target)), (step.outage, .restart(target))]
        case .crash:
            guard mayStopAnother(simulation) else { return nil }
            return [(.zero, .crash(target)), (step.outage, .restart(target))]
        }
    }

    /// The nemesis's bound: at most a minority of the nodes that take process faults are crashed,
    /// killed or paused at once.
    private func mayStopAnother(_ simulation: SimulationView) -> Bool {
        let targets = simulation.nodeIDs.filter { !simulation.roles(of: $0).contains(.client) }
        let limit = simulation.configuration.nemesis.maximumNodesFaulted ?? max(1, (targets.count - 1) / 2)
        return targets.filter { simulation.status(of: $0) != .running }.count < limit
    }
}

/// An operator that asks the controller for preferred leader elections every `interval` within
/// its windows (election churn: partitions move back to their preferred replica as soon as it is
/// in sync again, so leadership moves twice per fault). It follows NOT_CONTROLLER hints and
/// retries on timeouts, as the admin client does. It never crashes (the nemesis leaves clients
/// alone).
public final class PreferredElectionClientNode: NodeStateMachine {
    public let nodeID: NodeID
    public var tickInterval: Duration { .milliseconds(100) }
    /// Elections the controller answered.
    public private(set) var electionsAnswered = 0

    private let controllers: [NodeID]
    private let windows: [ClosedRange<Duration>]
    private let interval: Duration
    private var startedAt: Instant?
    private var controllerIndex = 0
    private var nextCorrelationID: UInt64 = 1
    private var pending: (correlationID: UInt64, sentAt: Instant)?
    private var nextRequestAt = Instant.zero

    static let requestTimeout = Duration.milliseconds(2_000)

    init(environment: NodeEnvironment, controllers: [NodeID], windows: [ClosedRange<Duration>], interval: Duration) {
        precondition(!controllers.isEmpty && interval > .zero, "an operator needs a controller and a pace")
        nodeID = environment.nodeID
        self.controllers = controllers
        self.windows = windows
        self.interval = interval
    }

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        switch event {
        case .start:
            startedAt = now
        case .tick:
            if let pending, now - pending.sentAt >= Self.requestTimeout {
                self.pending = nil
                controllerIndex = (controllerIndex + 1) % controllers.count
            }
            guard pending == nil, now >= nextRequestAt, isInWindow(now) else { return }
            requestElection(now: now, effects: &effects)
        case let .message(_, bytes):
            guard let message = try? PeerMessage(decoding: bytes) else { return }
            onMessage(message, now: now)
        case .syncCompleted, .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected, .outboundConnected, .outboundResponse, .outboundClosed:
            break
        }
    }

    private func isInWindow(_ now: Instant) -> Bool {
        guard let startedAt else { return false }
        let elapsed = now - startedAt
        return windows.contains { $0.contains(elapsed) }
    }

    private func requestElection(now: Instant, effects: inout [NodeEffect]) {
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        pending = (correlationID, now)
        let request = ControllerRequest.electLeaders(ElectLeadersRequest(electionType: .preferred, partitions: nil))
        effects.append(.send(to: controllers[controllerIndex],
                             bytes: PeerMessage.controllerRequest(correlationID: correlationID, request: request).encoded()))
    }

    private func onMessage(_ message: PeerMessage, now: Instant) {
        switch message {
        case let .controllerResponse(correlationID, _):
            guard pending?.correlationID == correlationID else { return }
            pending = nil
            electionsAnswered += 1
            nextRequestAt = now + interval
        case let .notController(correlationID, hint):
            guard pending?.correlationID == correlationID else { return }
            pending = nil
            if let hint, let index = controllers.firstIndex(of: hint) {
                controllerIndex = index
            } else {
                controllerIndex = (controllerIndex + 1) % controllers.count
            }
            nextRequestAt = now + .milliseconds(100)
        default:
            return
        }
    }
}
