import LogStorage
import NodeKit
import SimWorld
import TernCore

/// A checker's verdict.
public enum CheckResult: Sendable, Equatable {
    case ok
    /// A description of what is wrong, precise enough to debug from (values, nodes, offsets).
    case violation(String)
}

/// One event as a node received it, with the effects it answered with.
public struct DeliveredEvent {
    /// Simulated time (the scheduler's).
    public let time: Instant
    /// The monotonic time the node was shown (its clock: offset, drift).
    public let nodeTime: Instant
    /// The time of day the node was shown (origin, drift, steps).
    public let wallClock: Instant
    public let nodeID: NodeID
    /// 1 for the first process of the node, +1 per restart.
    public let incarnation: Int
    public let event: NodeEvent
    public let effects: [NodeEffect]
}

/// Watches a run from outside the nodes, as TigerBeetle's state checker does, and reports the
/// first thing that is wrong. The first violation any checker reports stops the run. Checkers
/// must not change the simulation; they may inspect nodes (cast to their concrete types), disks,
/// the network and the effects nodes emit.
public protocol SimulationChecker: AnyObject {
    var name: String { get }
    /// After every event delivered to a node.
    func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult
    /// Every `SimulationConfiguration.checkInterval` of simulated time.
    func periodically(in simulation: SimulationView) -> CheckResult
    /// Once at the end of a run that saw no violation (after the liveness phase, or once converged).
    func atEnd(of simulation: SimulationView) -> CheckResult
    /// Right after a fault or a healing took effect (the nemesis's, a scripted one, or the
    /// liveness phase's), before anything else happens: for checkers whose rule holds only
    /// while some faults are absent.
    func faultApplied(_ action: FaultAction, in simulation: SimulationView)
}

extension SimulationChecker {
    public func faultApplied(_ action: FaultAction, in simulation: SimulationView) {}
    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult { .ok }
    public func periodically(in simulation: SimulationView) -> CheckResult { .ok }
    public func atEnd(of simulation: SimulationView) -> CheckResult { .ok }
}

public enum SimulationPhase: Sendable, Equatable, CustomStringConvertible {
    /// Faults are being injected.
    case safety
    /// Everything is healed and no fault is injected: the cluster must converge.
    case liveness

    public var description: String { self == .safety ? "safety" : "liveness" }
}

public enum NodeStatus: Sendable, Equatable, CustomStringConvertible {
    case running
    /// Receives nothing until resumed: messages wait (bounded), ticks and completions later.
    case paused
    /// Crashed, killed or powered off; no node object exists until the restart.
    case down

    public var description: String {
        switch self {
        case .running: return "running"
        case .paused: return "paused"
        case .down: return "down"
        }
    }
}

/// What checkers and convergence conditions may look at. Read-only.
public struct SimulationView {
    unowned let simulation: Simulation

    init(simulation: Simulation) {
        self.simulation = simulation
    }

    public var now: Instant { simulation.now }
    public var phase: SimulationPhase { simulation.phase }
    public var seed: UInt64 { simulation.configuration.seed }
    public var configuration: SimulationConfiguration { simulation.configuration }
    /// In configuration order.
    public var nodeIDs: [NodeID] { simulation.nodeIDs }
    public var network: SimNetwork { simulation.network }
    public var faultsInjected: FaultCounts { simulation.faultsInjected }
    /// When the liveness phase began, if it has.
    public var livenessPhaseStart: Instant? { simulation.livenessPhaseStart }

    /// The node's current process, or nil while it is down.
    public func node(_ id: NodeID) -> (any NodeStateMachine)? { simulation.host(id).node }

    /// The node's current process as its concrete type, or nil while it is down (or of another type).
    public func node<Node: NodeStateMachine>(_ id: NodeID, as type: Node.Type) -> Node? {
        simulation.host(id).node as? Node
    }

    public func status(of id: NodeID) -> NodeStatus { simulation.host(id).status }
    public func incarnation(of id: NodeID) -> Int { simulation.host(id).incarnation }
    public func roles(of id: NodeID) -> NodeRoles { simulation.host(id).specification.roles }
    /// The client node at the other end of a broker's client connection, while the simulator knows it.
    public func client(of connection: ClientConnectionID) -> NodeID? {
        simulation.connections[connection.rawValue].map { simulation.hosts[$0.client].id }
    }
    public func disk(of id: NodeID) -> SimDisk { simulation.host(id).disk }
    /// What the node's clock shows now.
    public func clockReading(of id: NodeID) -> Instant { simulation.host(id).clock.reading(at: simulation.now) }
    /// Messages waiting for a paused node.
    public func pausedBacklogCount(of id: NodeID) -> Int { simulation.host(id).pausedBacklog.count }
}
