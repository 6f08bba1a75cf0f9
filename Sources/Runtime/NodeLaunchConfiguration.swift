import Broker
import Controller
import Posix
import TernCore

/// The roles a process plays (`process.roles`).
public enum NodeRole: String, Hashable, Sendable, CaseIterable, Comparable {
    case broker
    case controller

    public static func < (left: NodeRole, right: NodeRole) -> Bool { left.rawValue < right.rawValue }
}

/// Everything one node process needs to start, built from its `server.properties`
/// (`ServerProperties`) and handed to the node host. Which parts are present follows the roles: a
/// broker has a client listener and a `broker` configuration, a controller a `controller`
/// configuration.
public struct NodeLaunchConfiguration: Sendable {
    public var nodeID: NodeID
    public var roles: [NodeRole]
    /// Where Kafka clients connect (brokers only).
    public var clientListener: SocketAddress?
    /// What Metadata responses tell clients to connect to (defaults to `clientListener`).
    public var advertisedClientListener: SocketAddress?
    /// Controller and replication traffic between nodes.
    public var internalListener: SocketAddress
    /// `controller.quorum.voters`: every controller's internal listener, by node id.
    public var controllerVoters: [NodeID: SocketAddress]
    /// `log.dirs` (the first directory): partition logs and the metadata log live under it.
    public var dataDirectory: String
    public var broker: BrokerConfiguration?
    public var controller: ControllerNode.Configuration?
    /// `socket.request.max.bytes`: the largest request frame accepted from a client.
    public var maximumRequestBytes: Int

    public init(nodeID: NodeID, roles: [NodeRole], clientListener: SocketAddress?, advertisedClientListener: SocketAddress?,
                internalListener: SocketAddress, controllerVoters: [NodeID: SocketAddress], dataDirectory: String,
                broker: BrokerConfiguration?, controller: ControllerNode.Configuration?,
                maximumRequestBytes: Int = 100 * 1024 * 1024) {
        precondition(roles.contains(.broker) == (broker != nil), "a broker configuration exactly when the node is a broker")
        precondition(roles.contains(.controller) == (controller != nil), "a controller configuration exactly when the node is a controller")
        precondition(!roles.contains(.broker) || clientListener != nil, "a broker needs a client listener")
        self.nodeID = nodeID
        self.roles = roles.sorted()
        self.clientListener = clientListener
        self.advertisedClientListener = advertisedClientListener ?? clientListener
        self.internalListener = internalListener
        self.controllerVoters = controllerVoters
        self.dataDirectory = dataDirectory
        self.broker = broker
        self.controller = controller
        self.maximumRequestBytes = maximumRequestBytes
    }
}
