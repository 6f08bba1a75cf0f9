import LogStorage
import TernCore

/// What happens to a node. The node never asks the world for anything: time, peer messages and
/// disk completions are all delivered as events, with `now`.
public enum NodeEvent: Sendable {
    /// Delivered once when the node (re)starts, before anything else.
    case start
    /// Periodic; timeouts are deadlines the node checks here.
    case tick
    /// Bytes a peer sent over the network (peer messages always travel encoded, in the
    /// simulator too, so the codec runs under every fault).
    case message(from: NodeID, bytes: [UInt8])
    /// A sync the node requested from its disk finished.
    case syncCompleted(SyncCompletion)
}

/// What a node asks the shell to do. Shells execute effects in order after each event.
public enum NodeEffect: Sendable, Equatable {
    case send(to: NodeID, bytes: [UInt8])
    /// The node found a broken invariant it cannot continue from (the simulator counts it as a
    /// violation, the runtime exits). Normal operating errors are handled inside the node.
    case halt(reason: String)
    /// The process stops after an operating error it cannot safely continue from (an fsync that
    /// failed: the page cache can no longer be trusted). A supervisor restarts it; this is the
    /// expected reaction to a bad disk, not a bug.
    case exit(reason: String)
}

/// A node role (controller, broker, or both) as a deterministic state machine. It owns a `Disk`
/// (handed in at creation) for synchronous reads and writes; sync completions come back as events.
public protocol NodeStateMachine: AnyObject {
    var nodeID: NodeID { get }
    /// How often the shell delivers `.tick`.
    var tickInterval: Duration { get }
    func handle(_ event: NodeEvent, now: Instant, effects: inout [NodeEffect])
}

/// Everything a node gets from its world when it is created (and re-created after a crash).
public struct NodeEnvironment {
    public let nodeID: NodeID
    public let disk: any Disk
    /// Root directory of the node's files on `disk`.
    public let dataDirectory: String
    /// The node's own seeded generator (election jitter and similar).
    public var random: DeterministicRandom

    public init(nodeID: NodeID, disk: any Disk, dataDirectory: String, random: DeterministicRandom) {
        self.nodeID = nodeID
        self.disk = disk
        self.dataDirectory = dataDirectory
        self.random = random
    }
}
