import Controller
import NodeKit
import TernCore

/// An admin client for simulations: creates topics one after another while the cluster runs,
/// finding the active controller by following NOT_CONTROLLER answers and retrying on timeouts,
/// the way Kafka's admin clients do. It never crashes (the nemesis leaves clients alone).
public final class AdminClientNode: NodeStateMachine {
    public let nodeID: NodeID
    public var tickInterval: Duration { .milliseconds(100) }
    public private(set) var createdTopics: [String] = []

    private let controllers: [NodeID]
    private let topicCount: Int
    private let partitionsPerTopic: Int32
    private let replicationFactor: Int16
    private let minInSyncReplicas: Int
    private var controllerIndex = 0
    private var nextCorrelationID: UInt64 = 1
    private var pending: (correlationID: UInt64, sentAt: Instant)?
    private var nextRequestAt = Instant.zero

    static let requestTimeout = Duration.milliseconds(2_000)
    static let pauseBetweenTopics = Duration.milliseconds(1_500)

    init(environment: NodeEnvironment, controllers: [NodeID], topics: Int, partitionsPerTopic: Int32, replicationFactor: Int16,
         minInSyncReplicas: Int) {
        nodeID = environment.nodeID
        self.minInSyncReplicas = minInSyncReplicas
        self.controllers = controllers
        self.topicCount = topics
        self.partitionsPerTopic = partitionsPerTopic
        self.replicationFactor = replicationFactor
    }

    public func handle(_ event: NodeEvent, now: Instant, effects: inout [NodeEffect]) {
        switch event {
        case .start:
            nextRequestAt = now + .seconds(1)
        case .tick:
            if let pending, now - pending.sentAt >= Self.requestTimeout {
                self.pending = nil
                controllerIndex = (controllerIndex + 1) % controllers.count
            }
            if pending == nil, createdTopics.count < topicCount, now >= nextRequestAt { sendCreate(now: now, effects: &effects) }
        case let .message(_, bytes):
            guard let message = try? PeerMessage(decoding: bytes) else { return }
            onMessage(message, now: now)
        case .syncCompleted:
            break
        }
    }

    private var nextTopicName: String { "topic-\(createdTopics.count)" }

    private func sendCreate(now: Instant, effects: inout [NodeEffect]) {
        let request = ControllerRequest.createTopics(CreateTopicsRequest(topics: [
            .init(name: nextTopicName, partitionCount: partitionsPerTopic, replicationFactor: replicationFactor,
                  configs: [ConfigEntry(name: "min.insync.replicas", value: String(minInSyncReplicas))]),
        ]))
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        pending = (correlationID, now)
        effects.append(.send(to: controllers[controllerIndex],
                             bytes: PeerMessage.controllerRequest(correlationID: correlationID, request: request).encoded()))
    }

    private func onMessage(_ message: PeerMessage, now: Instant) {
        switch message {
        case let .controllerResponse(correlationID, .createTopics(response)):
            guard pending?.correlationID == correlationID else { return }
            pending = nil
            let error = response.topics.first?.error ?? .unknownServerError
            if error == .none || error == .topicAlreadyExists {
                createdTopics.append(nextTopicName)
                nextRequestAt = now + Self.pauseBetweenTopics
            } else {
                nextRequestAt = now + .milliseconds(500)
            }
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
