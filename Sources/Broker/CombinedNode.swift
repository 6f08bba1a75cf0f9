import Controller
import NodeKit
import TernCore

/// One process with both roles (`process.roles=broker,controller`): a controller and a broker that
/// share the node id, the disk and the network. Peer messages go to the part they are for; what the
/// broker sends to its own controller is handed over inside the process.
public final class CombinedNode: NodeStateMachine {
    public let controller: ControllerNode
    public let broker: BrokerNode
    public var nodeID: NodeID { controller.nodeID }
    public var tickInterval: Duration { min(controller.tickInterval, broker.tickInterval) }

    /// A loopback chain longer than this is a bug (two parts answering each other forever).
    static let maximumLoopbackHops = 64

    public init(controller: ControllerNode, broker: BrokerNode) {
        precondition(controller.nodeID == broker.nodeID, "both roles of a process share its node id")
        self.controller = controller
        self.broker = broker
    }

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        var local: [(target: Part, event: NodeEvent)] = []
        switch event {
        case .start, .tick:
            local = [(.controller, event), (.broker, event)]
        case let .syncCompleted(completion):
            // Each sync belongs to one part: the broker's partition logs claim theirs, the rest
            // (the metadata log, Raft's hard state) are the controller's.
            var produced: [NodeEffect] = []
            if !broker.handleSyncCompletionIfOwned(completion, now: now, wallClock: wallClock, effects: &produced) {
                local = [(.controller, event)]
            }
            routeEffects(produced, into: &local, effects: &effects)
        case let .message(from, bytes):
            local = [(Self.part(for: bytes), .message(from: from, bytes: bytes))]
        case .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected, .outboundConnected, .outboundResponse,
             .outboundClosed:
            local = [(.broker, event)]
        }
        var hops = 0
        while !local.isEmpty {
            hops += 1
            guard hops <= Self.maximumLoopbackHops * 2 + 2 else {
                effects.append(.halt(reason: "node \(nodeID): loopback messages do not settle"))
                return
            }
            let (target, next) = local.removeFirst()
            var produced: [NodeEffect] = []
            switch target {
            case .controller: controller.handle(next, now: now, wallClock: wallClock, effects: &produced)
            case .broker: broker.handle(next, now: now, wallClock: wallClock, effects: &produced)
            }
            routeEffects(produced, into: &local, effects: &effects)
        }
    }

    /// What a part sends to this node goes to the other part inside the process.
    private func routeEffects(_ produced: [NodeEffect], into local: inout [(target: Part, event: NodeEvent)],
                              effects: inout [NodeEffect]) {
        for effect in produced {
            if case let .send(destination, bytes) = effect, destination == nodeID {
                local.append((Self.part(for: bytes), .message(from: nodeID, bytes: bytes)))
            } else {
                effects.append(effect)
            }
        }
    }

    enum Part { case controller, broker }

    /// Requests and Raft traffic are the controller's; answers to controller requests, clients'
    /// admin requests (the broker forwards them) and all data-plane traffic (client requests,
    /// follower fetches and their answers) are the broker's.
    static func part(for bytes: [UInt8]) -> Part {
        guard let kind = bytes.first.flatMap(PeerMessage.Kind.init(rawValue:)) else { return .controller }
        switch kind {
        case .raft, .controllerRequest, .fetchMetadata: return .controller
        case .controllerResponse, .notController, .metadataEntries, .kafkaRequest, .kafkaResponse, .adminRequest: return .broker
        }
    }
}
