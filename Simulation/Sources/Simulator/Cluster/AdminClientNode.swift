import Client
import Controller
import KafkaProtocol
import NodeKit
import SimWorld
import TernCore

/// An admin client for simulations: creates the workload's topics one after another while the
/// cluster runs, then keeps an operator busy until `operationsEnd`: preferred leader elections,
/// partition reassignments, and a scratch topic created and deleted again, in a cycle (every other
/// scratch topic is created automatically: a Metadata request that allows it, asked until the
/// topic is there, as a producer's first metadata request does); beside the
/// cycle, a topic deleted and created again under the same name over and over, with records
/// written to each incarnation (`TopicRecycler`). Every request (CreateTopics, DeleteTopics,
/// ElectLeaders, AlterPartitionReassignments, Metadata) goes as a Kafka request to a broker's front door,
/// which forwards it to the active controller (as Kafka's admin clients do since KIP-590); on a
/// failure or timeout it asks the next broker. It never crashes (the nemesis leaves clients alone).
public final class AdminClientNode: NodeStateMachine {
    public let nodeID: NodeID
    public var tickInterval: Duration { .milliseconds(100) }
    public private(set) var createdTopics: [String] = []
    /// Operator actions the controller confirmed, by kind ("preferred-election", "reassignment",
    /// "create-topic", "auto-create-topic", "delete-topic", "recreate-topic", "delete-recreated-topic").
    public private(set) var completedOperations: [String: Int] = [:]
    /// The recycled topic: its incarnations and the records acknowledged for them.
    private(set) var recycler: TopicRecycler

    private let brokers: [NodeID]
    private let topicCount: Int
    private let partitionsPerTopic: Int32
    private let replicationFactor: Int16
    private let minInSyncReplicas: Int
    /// Workload topics created with retention settings.
    private let retainedTopics: [String: TopicRetention]
    private let operationsEnd: Instant?
    private var brokerIndex = 0
    /// Above every correlation id the recycler's producers use, so an answer names its owner.
    private var nextCorrelationID: UInt64 = 1 << 62
    private var pending: (correlationID: UInt64, sentAt: Instant, operation: Operation)?
    /// When the next workload-topic creation or cycle step may go.
    private var nextRequestAt = Instant.zero
    /// Position in the operator cycle, and how many scratch topics were made.
    private var cycleStep = 0
    private var scratchTopics = 0
    /// The recycler's records and the operator's requests travel as Kafka frames through the
    /// brokers' front doors.
    private var connections = KafkaClientConnections(clientID: "simulated-admin")
    private var outcomes: [ClientRequestOutcome] = []

    static let requestTimeout = Duration.milliseconds(2_000)
    static let pauseBetweenTopics = Duration.milliseconds(1_500)
    static let pauseBetweenOperations = Duration.milliseconds(2_000)

    enum Operation: Equatable {
        case createWorkloadTopic(String)
        case preferredElection
        case reassign(TopicPartition, to: [NodeID])
        case createScratchTopic(String)
        case autoCreateScratchTopic(String)
        case deleteScratchTopic(String)
        case recycle(TopicRecycler.Request)

        var kind: String {
            switch self {
            case .createWorkloadTopic, .createScratchTopic: return "create-topic"
            case .autoCreateScratchTopic: return "auto-create-topic"
            case .preferredElection: return "preferred-election"
            case .reassign: return "reassignment"
            case .deleteScratchTopic: return "delete-topic"
            case .recycle(.create): return "recreate-topic"
            case .recycle(.delete): return "delete-recreated-topic"
            }
        }
    }

    init(environment: NodeEnvironment, brokers: [NodeID], topics: Int, partitionsPerTopic: Int32,
         replicationFactor: Int16, minInSyncReplicas: Int, retainedTopics: [String: TopicRetention] = [:], operationsEnd: Instant?) {
        nodeID = environment.nodeID
        self.retainedTopics = retainedTopics
        self.brokers = brokers
        self.minInSyncReplicas = minInSyncReplicas
        self.topicCount = topics
        self.partitionsPerTopic = partitionsPerTopic
        self.replicationFactor = replicationFactor
        self.operationsEnd = operationsEnd
        recycler = TopicRecycler(brokers: brokers, partitions: partitionsPerTopic, replicationFactor: replicationFactor,
                                 random: environment.random.stream("topic-recycler"))
    }

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        switch event {
        case .start:
            nextRequestAt = now + .seconds(1)
        case .tick:
            if let pending, now - pending.sentAt >= Self.requestTimeout {
                self.pending = nil
                brokerIndex = (brokerIndex + 1) % brokers.count
            }
            if pending == nil, let operation = nextOperation(now: now) {
                send(operation, now: now, effects: &effects)
            }
            connections.expire(now: now, effects: &effects, outcomes: &outcomes)
            deliverOutcomes(now: now)
            sendRecyclerRequests(recycler.tick(now: now, wallClock: wallClock), now: now, effects: &effects)
        case .message:
            break  // it is no node of the cluster: peers send it nothing
        case .outboundConnected, .outboundResponse, .outboundClosed:
            _ = connections.handle(event, now: now, effects: &effects, outcomes: &outcomes)
            deliverOutcomes(now: now)
            sendRecyclerRequests(recycler.requests(now: now), now: now, effects: &effects)
        case .syncCompleted, .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected:
            break
        }
    }

    /// Data answers go to the recycler (a lost data request is left to the recycler's own
    /// timeout); admin answers and failures to the operation waiting for them.
    private func deliverOutcomes(now: Instant) {
        for outcome in outcomes {
            switch outcome {
            case let .answered(correlation, response):
                guard let pending, pending.correlationID == correlation.rawValue else {
                    recycler.handle(response, correlationID: correlation.rawValue, now: now)
                    continue
                }
                self.pending = nil
                finish(pending.operation, succeeded: succeeded(pending.operation, response), now: now)
            case let .failed(correlation):
                guard let pending, pending.correlationID == correlation.rawValue else { continue }
                self.pending = nil
                brokerIndex = (brokerIndex + 1) % brokers.count
                nextRequestAt = now + .milliseconds(100)
            }
        }
        outcomes.removeAll(keepingCapacity: true)
    }

    /// What an answer from the controller (directly or through a broker) means for the operator.
    private func finish(_ operation: Operation, succeeded: Bool, now: Instant) {
        if succeeded {
            completed(operation, now: now)
        } else if case .recycle = operation {
            recycler.refused(now: now)
        } else {
            brokerIndex = (brokerIndex + 1) % brokers.count
            nextRequestAt = now + .milliseconds(500)
        }
    }

    private func nextOperation(now: Instant) -> Operation? {
        if createdTopics.count < topicCount {
            return now >= nextRequestAt ? .createWorkloadTopic("topic-\(createdTopics.count)") : nil
        }
        if let request = recycler.nextRequest(now: now, operationsEnd: operationsEnd) { return .recycle(request) }
        guard let operationsEnd, now < operationsEnd, now >= nextRequestAt else { return nil }
        switch cycleStep % 4 {
        case 0: return .preferredElection
        case 1: return reassignment(number: cycleStep / 4)
        case 2:
            let name = "scratch-\(scratchTopics)"
            return scratchTopics % 2 == 0 ? .createScratchTopic(name) : .autoCreateScratchTopic(name)
        default: return .deleteScratchTopic("scratch-\(scratchTopics)")
        }
    }

    /// Moves one workload partition to the next window of brokers (wrapping around), so replicas
    /// are added and removed while the producer writes to it.
    private func reassignment(number: Int) -> Operation {
        let topicPartition = TopicPartition(topic: "topic-\(number % topicCount)",
                                            partition: Int32(number / topicCount) % partitionsPerTopic)
        let size = min(Int(replicationFactor), brokers.count)
        let target = (0..<size).map { brokers[(number + 1 + $0) % brokers.count] }
        return .reassign(topicPartition, to: target)
    }

    private func send(_ operation: Operation, now: Instant, effects: inout [NodeEffect]) {
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        pending = (correlationID, now, operation)
        let request = kafkaRequest(for: operation)
        let outgoing = OutgoingRequest(apiKey: request.apiKey, token: correlationID, timeout: Self.requestTimeout + .seconds(1)) { _ in
            request
        }
        connections.send(outgoing, to: brokers[brokerIndex], now: now, effects: &effects, outcomes: &outcomes)
    }

    /// The operation as the Kafka admin request a client would send a broker.
    private func kafkaRequest(for operation: Operation) -> KafkaRequest {
        let timeoutMilliseconds = Int32(Self.requestTimeout.milliseconds)
        switch operation {
        case let .createWorkloadTopic(name), let .createScratchTopic(name):
            return createTopics(name, partitions: partitionsPerTopic, replicationFactor: replicationFactor, assignments: [],
                                timeoutMilliseconds: timeoutMilliseconds)
        case let .recycle(.create(assignments)):
            return createTopics(TopicRecycler.topicName, partitions: -1, replicationFactor: -1, assignments: assignments,
                                timeoutMilliseconds: timeoutMilliseconds)
        case .preferredElection:
            var request = KafkaWire.ElectLeadersRequest()
            request.electionType = Int8(ElectionType.preferred.rawValue)
            request.topicPartitions = nil  // every partition
            request.timeoutMs = timeoutMilliseconds
            return .electLeaders(request)
        case let .autoCreateScratchTopic(name):
            var request = KafkaWire.MetadataRequest(topics: [.init(name: name)])
            request.allowAutoTopicCreation = true
            return .metadata(request)
        case let .deleteScratchTopic(name):
            return deleteTopics(name, timeoutMilliseconds: timeoutMilliseconds)
        case .recycle(.delete):
            return deleteTopics(TopicRecycler.topicName, timeoutMilliseconds: timeoutMilliseconds)
        case let .reassign(topicPartition, target):
            return .alterPartitionReassignments(KafkaWire.AlterPartitionReassignmentsRequest(timeoutMs: timeoutMilliseconds, topics: [
                .init(name: topicPartition.topic, partitions: [.init(partitionIndex: topicPartition.partition, replicas: target.map(\.rawValue))]),
            ]))
        }
    }

    private func createTopics(_ name: String, partitions: Int32, replicationFactor: Int16, assignments: [[NodeID]],
                              timeoutMilliseconds: Int32) -> KafkaRequest {
        var topic = KafkaWire.CreateTopicsRequest.CreatableTopic()
        topic.name = name
        topic.numPartitions = partitions
        topic.replicationFactor = replicationFactor
        topic.assignments = assignments.enumerated().map { index, replicas in
            var assignment = KafkaWire.CreateTopicsRequest.CreatableReplicaAssignment()
            assignment.partitionIndex = Int32(index)
            assignment.brokerIds = replicas.map(\.rawValue)
            return assignment
        }
        let configs = [("min.insync.replicas", String(minInSyncReplicas))] + (retainedTopics[name]?.configs ?? [])
        topic.configs = configs.map { name, value in
            var config = KafkaWire.CreateTopicsRequest.CreatableTopicConfig()
            config.name = name
            config.value = value
            return config
        }
        var request = KafkaWire.CreateTopicsRequest()
        request.topics = [topic]
        request.timeoutMs = timeoutMilliseconds
        return .createTopics(request)
    }

    private func deleteTopics(_ name: String, timeoutMilliseconds: Int32) -> KafkaRequest {
        var request = KafkaWire.DeleteTopicsRequest()
        request.topicNames = [name]
        request.timeoutMs = timeoutMilliseconds
        return .deleteTopics(request)
    }

    /// A retry of a request whose answer was lost finds its work done: that counts as success.
    private func succeeded(_ operation: Operation, _ response: KafkaResponse) -> Bool {
        switch (operation, response) {
        case let (.createWorkloadTopic, .createTopics(reply)), let (.createScratchTopic, .createTopics(reply)),
             let (.recycle(.create), .createTopics(reply)):
            let error = reply.topics.first?.errorCode ?? KafkaErrorCode.unknownServerError.rawValue
            return error == KafkaErrorCode.none.rawValue || error == ControllerErrorCode.topicAlreadyExists.rawValue
        case let (.reassign, .alterPartitionReassignments(reply)):
            return reply.errorCode == KafkaErrorCode.none.rawValue
                && reply.responses.first?.partitions.first?.errorCode == KafkaErrorCode.none.rawValue
        case let (.preferredElection, .electLeaders(reply)):
            // Per-partition refusals (leader not available) are the operator's to retry later.
            return reply.errorCode == KafkaErrorCode.none.rawValue
        case let (.autoCreateScratchTopic(name), .metadata(reply)):
            // Created once this broker's image names it; until then it answers LEADER_NOT_AVAILABLE.
            return reply.topics.contains { $0.name == name && $0.errorCode == KafkaErrorCode.none.rawValue && !$0.partitions.isEmpty }
        case let (.deleteScratchTopic, .deleteTopics(reply)), let (.recycle(.delete), .deleteTopics(reply)):
            let error = reply.responses.first?.errorCode ?? KafkaErrorCode.unknownServerError.rawValue
            return error == KafkaErrorCode.none.rawValue || error == KafkaErrorCode.unknownTopicOrPartition.rawValue
        default:
            return false
        }
    }

    private func completed(_ operation: Operation, now: Instant) {
        completedOperations[operation.kind, default: 0] += 1
        switch operation {
        case let .createWorkloadTopic(name):
            createdTopics.append(name)
            nextRequestAt = now + Self.pauseBetweenTopics
            return
        case .deleteScratchTopic:
            scratchTopics += 1
        case .preferredElection, .reassign, .createScratchTopic, .autoCreateScratchTopic:
            break
        case let .recycle(request):
            recycler.confirmed(request)
            return
        }
        cycleStep += 1
        nextRequestAt = now + Self.pauseBetweenOperations
    }

    private func sendRecyclerRequests(_ requests: [(destination: NodeID, correlationID: UInt64, request: KafkaRequest)],
                                      now: Instant, effects: inout [NodeEffect]) {
        for request in requests {
            let clientRequest = ClientRequest(destination: request.destination, request: request.request,
                                              correlation: RequestCorrelation(request.correlationID))
            connections.send(clientRequest, timeout: TopicRecycler.requestTimeout + .seconds(1), now: now, effects: &effects,
                             outcomes: &outcomes)
        }
        // Answers the connections gave at once (a request they could not send) are handled next time.
    }
}
