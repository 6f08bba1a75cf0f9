import Broker
import Controller
import NodeKit
import TernCore

/// Names one client connection for the life of the process (never reused).
public struct ClientConnectionID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "client-\(rawValue)" }
}

/// What a client protocol handler asks the node host to do.
public enum ClientAction: Sendable {
    /// A `NodeEvent.message` into the hosted node.
    case deliverToNode(from: NodeID, bytes: [UInt8])
    /// Whole frame(s), size prefix included, appended to the connection's output buffer.
    case send(ClientConnectionID, [UInt8])
    /// Closes the connection after flushing what is already queued.
    case close(ClientConnectionID)
    /// Backpressure: stop reading frames from the connection.
    case pauseReading(ClientConnectionID)
    case resumeReading(ClientConnectionID)
}

/// The client protocol spoken on the client listener (the Kafka gateway). The node host owns the
/// sockets and the framing; the handler turns frames into node messages and node messages into
/// response frames. Every method is called on the host's event-loop thread.
public protocol ClientProtocolHandler: AnyObject {
    func connectionOpened(_ connection: ClientConnectionID, pseudoNodeID: NodeID, now: Instant)
    /// One whole frame (size prefix removed; the runtime already checked size >= 0 and <= limit,
    /// closing the connection otherwise, before allocating).
    func frameReceived(_ frame: [UInt8], on connection: ClientConnectionID, now: Instant, actions: inout [ClientAction])
    /// The hosted node emitted `.send(to: pseudoNodeID, bytes)` for a client connection's pseudo id.
    func nodeSent(_ bytes: [UInt8], to pseudoNodeID: NodeID, now: Instant, actions: inout [ClientAction])
    /// Every event-loop iteration after the node's tick (expire what waited too long).
    func tick(now: Instant, actions: inout [ClientAction])
    /// The connection is gone, whoever closed it (the client, a `.close` action, a framing error,
    /// an output overflow or the host shutting down). Called once per opened connection.
    func connectionClosed(_ connection: ClientConnectionID, now: Instant)
}

/// What a client protocol handler is created with.
public struct NodeHostContext {
    public let configuration: NodeLaunchConfiguration
    /// The hosted node, and its broker and controller parts when it has them.
    public let node: any NodeStateMachine
    public let broker: BrokerNode?
    public let controller: ControllerNode?
    /// Where the client listener really listens (the configured port, or the ephemeral one).
    public let clientListenAddress: SocketAddress?
    public let internalListenAddress: SocketAddress
    public let log: RuntimeLog

    /// The node host makes these; public so a gateway's tests can build one around a node.
    public init(configuration: NodeLaunchConfiguration, node: any NodeStateMachine, broker: BrokerNode?,
                controller: ControllerNode?, clientListenAddress: SocketAddress?, internalListenAddress: SocketAddress,
                log: RuntimeLog) {
        self.configuration = configuration
        self.node = node
        self.broker = broker
        self.controller = controller
        self.clientListenAddress = clientListenAddress
        self.internalListenAddress = internalListenAddress
        self.log = log
    }
}

/// A handler that accepts client connections and closes each at once, for a node whose client
/// protocol is not plugged in (tests of the node host, and `tern broker` until the Kafka gateway
/// is merged).
public final class ClosingClientProtocolHandler: ClientProtocolHandler {
    public init() {}
    private var pendingCloses: [ClientConnectionID] = []

    public func connectionOpened(_ connection: ClientConnectionID, pseudoNodeID: NodeID, now: Instant) {
        pendingCloses.append(connection)
    }

    public func frameReceived(_ frame: [UInt8], on connection: ClientConnectionID, now: Instant, actions: inout [ClientAction]) {
        actions.append(.close(connection))
    }

    public func nodeSent(_ bytes: [UInt8], to pseudoNodeID: NodeID, now: Instant, actions: inout [ClientAction]) {}

    public func tick(now: Instant, actions: inout [ClientAction]) {
        for connection in pendingCloses { actions.append(.close(connection)) }
        pendingCloses.removeAll()
    }

    public func connectionClosed(_ connection: ClientConnectionID, now: Instant) {
        pendingCloses.removeAll { $0 == connection }
    }
}
