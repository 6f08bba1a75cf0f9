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
    /// The operator asked for a controlled shutdown (SIGTERM in the runtime, the simulated
    /// operator in the simulator): a broker moves its leaderships away, then exits.
    case shutdownRequested
    /// A client connected to the node's client listener.
    case clientConnected(ClientConnectionID)
    /// One whole request frame from a client, size prefix removed. The shell has checked the
    /// size against the node's frame limit before allocating, closing the connection otherwise.
    case clientRequest(ClientConnectionID, [UInt8])
    /// The connection is gone, whoever closed it (the client, a `.closeClient`, a framing error,
    /// the shell). Delivered once per connected connection, and never for a node restarted since.
    case clientDisconnected(ClientConnectionID)
    /// A connection this node opened (`openOutbound`) to another node's client listener is up.
    case outboundConnected(OutboundConnectionID)
    /// One whole response frame on an outbound connection, size prefix removed.
    case outboundResponse(OutboundConnectionID, [UInt8])
    /// The outbound connection is gone: refused, reset, or closed by the other side. Never
    /// delivered for a close the node asked for itself.
    case outboundClosed(OutboundConnectionID)
}

/// Names one connection a node opened as a client of another node; chosen by the node, unique
/// for its life.
public struct OutboundConnectionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "outbound-\(rawValue)" }
    public static func < (left: Self, right: Self) -> Bool { left.rawValue < right.rawValue }
}

/// Names one client connection for the life of the shell (never reused).
public struct ClientConnectionID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "client-\(rawValue)" }
    public static func < (left: Self, right: Self) -> Bool { left.rawValue < right.rawValue }
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
    /// Whole response frame(s), size prefix included, for the connection, in order.
    case reply(ClientConnectionID, [UInt8])
    /// Closes the connection once what is already queued for it has been written.
    case closeClient(ClientConnectionID)
    /// Back-pressure: stop delivering the connection's requests until `resumeClientReads`.
    case pauseClientReads(ClientConnectionID)
    case resumeClientReads(ClientConnectionID)
    /// Opens a connection to `node`'s client listener (the simulator's clients use it).
    case openOutbound(OutboundConnectionID, to: NodeID)
    /// Whole request frame(s), size prefix included, for the outbound connection, in order.
    case sendOutbound(OutboundConnectionID, [UInt8])
    case closeOutbound(OutboundConnectionID)
    /// A line for the operator's log (the runtime prints it; the simulator drops it).
    case log(String)
}

/// A node role (controller, broker, or both) as a deterministic state machine. It owns a `Disk`
/// (handed in at creation) for synchronous reads and writes; sync completions come back as events.
public protocol NodeStateMachine: AnyObject {
    var nodeID: NodeID { get }
    /// How often the shell delivers `.tick`.
    var tickInterval: Duration { get }
    /// `now` is monotonic: every deadline and timeout counts in it. `wallClock` is the time of
    /// day in nanoseconds since the Unix epoch, for what records and logs stamp (record and
    /// segment timestamps, roll by `segment.ms`); it may step backwards or forwards (NTP), so no
    /// deadline is ever measured with it.
    func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect])
}

extension NodeStateMachine {
    /// For tests that drive a node by hand: the wall clock reads the same as the monotonic one.
    public func handle(_ event: NodeEvent, now: Instant, effects: inout [NodeEffect]) {
        handle(event, now: now, wallClock: now, effects: &effects)
    }
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
