import Broker
import Controller
import NodeKit
import Raft
import SimWorld
import TernCore

/// Which processes a simulated cluster has and how each is built: `controllers` dedicated
/// controllers (ids 1...) or `combined` processes with both roles (ids 1...), and `brokers`
/// dedicated brokers (ids 101...; beside combined nodes too, as in cluster-configs/five-node's
/// three combined nodes and two brokers), plus one admin client (id 1000) that creates topics while
/// the cluster runs and, with `produceWorkload`, a producer (id 1001) and a consumer (id 1002)
/// client; with `preferredElectionWindows`, an operator client (id 1003) that churns partition
/// leadership.
public struct ClusterLayout: Sendable {
    public var controllers: Int
    public var brokers: Int
    public var combined: Int
    public var clusterID = "tern-sim"
    public var topics = 6
    public var partitionsPerTopic: Int32 = 3
    /// `unclean.leader.election.enable` as the controllers' default: UNSAFE, a replica outside the
    /// ISR may become leader and lose acknowledged writes.
    public var uncleanLeaderElection = false
    /// What counts toward each partition's high watermark on every broker. `.pageCache` (Kafka's
    /// default) is UNSAFE under coordinated power loss.
    public var durabilityPolicy: DurabilityPolicy = .synced
    /// Chance that the operator shuts a broker process down (controlled; restarted after it),
    /// some time after it starts (`PlannedShutdowns`).
    public var plannedShutdownProbability = 0.3
    /// When planned shutdowns stop beginning (nil: never). A `ClusterSimulation` sets it to the end
    /// of the safety phase: one in the liveness phase kept a cluster on slow disks from converging.
    public var plannedShutdownsEnd: Duration?
    /// Adds a producer client (id 1001) writing a steady stream of records to the admin client's
    /// topics, a consumer client (id 1002) reading every partition of them from offset 0, and the
    /// acknowledged-writes and consumed-records checkers.
    public var produceWorkload: Bool = false
    /// How long the producer client sends new records after it starts (nil: forever). A
    /// `ClusterSimulation` sets it to the safety phase, so the liveness phase can drain every produce.
    public var produceDuration: Duration?
    /// How long the admin client keeps running operator actions (preferred leader elections,
    /// reassignments, creating and deleting a scratch topic, deleting and re-creating the recycled
    /// topic) after creating the topics (nil: none). A
    /// `ClusterSimulation` sets it to the safety phase.
    public var operatorActionsDuration: Duration?
    /// Bursts the producer client writes besides its steady stream (set from a `GeneratedWorld`).
    public var producerBursts: [ProducerBurst] = []
    /// Windows, from its start, in which an operator client (id 1003) asks for preferred leader
    /// elections every `preferredElectionInterval` (election churn, set from a `GeneratedWorld`).
    /// No windows: no such client.
    public var preferredElectionWindows: [ClosedRange<Duration>] = []
    public var preferredElectionInterval = Duration.milliseconds(500)
    /// Adds a client that sends malformed frames to the brokers beside a well-behaved connection
    /// (`MalformedFrameClientNode`).
    public var malformedFrameClient = false

    public init(controllers: Int = 3, brokers: Int = 5, combined: Int = 0) {
        precondition(controllers + combined >= 1, "a cluster needs a controller")
        precondition(controllers == 0 || combined == 0, "mixing dedicated and combined controllers is not modelled")
        self.controllers = controllers
        self.brokers = brokers
        self.combined = combined
    }

    public static let adminClientID = NodeID(1000)
    public static let producerClientID = NodeID(1001)
    public static let consumerClientID = NodeID(1002)
    public static let electionClientID = NodeID(1003)
    public static let malformedFrameClientID = NodeID(1004)

    public var controllerIDs: [NodeID] {
        combined > 0 ? (1...combined).map { NodeID(Int32($0)) } : (1...max(1, controllers)).map { NodeID(Int32($0)) }
    }

    public var brokerIDs: [NodeID] {
        (combined > 0 ? controllerIDs : []) + dedicatedBrokerIDs
    }

    var dedicatedBrokerIDs: [NodeID] { (0..<brokers).map { NodeID(Int32(101 + $0)) } }

    public var nodes: [NodeSpecification] {
        var nodes: [NodeSpecification] = []
        let controllerRoles: NodeRoles = combined > 0 ? [.controller, .broker] : .controller
        nodes += controllerIDs.map { NodeSpecification(id: $0, roles: controllerRoles) }
        nodes += dedicatedBrokerIDs.map { NodeSpecification(id: $0, roles: .broker) }
        nodes.append(NodeSpecification(id: Self.adminClientID, roles: .client))
        if produceWorkload {
            nodes.append(NodeSpecification(id: Self.producerClientID, roles: .client))
            nodes.append(NodeSpecification(id: Self.consumerClientID, roles: .client))
        }
        if !preferredElectionWindows.isEmpty { nodes.append(NodeSpecification(id: Self.electionClientID, roles: .client)) }
        if malformedFrameClient { nodes.append(NodeSpecification(id: Self.malformedFrameClientID, roles: .client)) }
        return nodes
    }

    /// Workload topics whose old records the brokers delete: the last one by size, the one before
    /// it by time, each in small segments (twice the producer's batch size) so a run rolls and
    /// deletes many (with three topics or more; the others keep everything).
    ///
    /// They are at least once, as in Kafka: a batch written but not yet acknowledged when
    /// retention deletes it (under long faults, with 4 s retention) may be refused as out of
    /// order, or, by a leader rebuilt past the deletion that no longer knows the producer,
    /// written again. So on these topics the checkers hold presence above the log start, the
    /// high watermark, durability and retention itself, but not value order or uniqueness, and
    /// a possibly written record the producer gives up on is excused.
    public var retainedTopics: [String: TopicRetention] {
        guard topics >= 3 else { return [:] }
        return ["topic-\(topics - 1)": TopicRetention(segmentBytes: 2_048, retentionBytes: 4_096, retentionMilliseconds: -1),
                "topic-\(topics - 2)": TopicRetention(segmentBytes: 2_048, retentionBytes: -1, retentionMilliseconds: 4_000)]
    }

    public var replicationFactor: Int16 { Int16(min(3, brokerIDs.count)) }

    /// `min.insync.replicas` of the topics the admin client creates: Kafka's advice for
    /// replication factor 3 (an acks=all write is then on two replicas at least).
    public var minInSyncReplicas: Int { replicationFactor >= 3 ? 2 : 1 }

    /// Shorter than Kafka's defaults so that a 60 s run sees many sessions expire and recover.
    public var controllerConfiguration: ControllerConfiguration {
        var configuration = ControllerConfiguration(clusterID: clusterID)
        configuration.brokerSessionTimeout = .milliseconds(3_000)
        configuration.defaultReplicationFactor = replicationFactor
        configuration.uncleanLeaderElectionEnabled = uncleanLeaderElection
        return configuration
    }

    /// Builds the process for a node id, as the simulator asks at every (re)start.
    public func makeNode(_ environment: NodeEnvironment) -> any NodeStateMachine {
        let id = environment.nodeID
        if id == Self.adminClientID {
            return AdminClientNode(environment: environment, brokers: brokerIDs, topics: topics,
                                   partitionsPerTopic: partitionsPerTopic, replicationFactor: replicationFactor,
                                   minInSyncReplicas: minInSyncReplicas, retainedTopics: retainedTopics,
                                   operationsEnd: operatorActionsDuration.map { .zero + $0 })
        }
        if id == Self.producerClientID {
            return ProducerClientNode(environment: environment, brokers: brokerIDs, topics: topics,
                                      partitionsPerTopic: partitionsPerTopic, produceDuration: produceDuration,
                                      bursts: producerBursts)
        }
        if id == Self.electionClientID {
            return PreferredElectionClientNode(environment: environment, controllers: controllerIDs,
                                               windows: preferredElectionWindows, interval: preferredElectionInterval)
        }
        if id == Self.malformedFrameClientID {
            return MalformedFrameClientNode(environment: environment, brokers: brokerIDs)
        }
        if id == Self.consumerClientID {
            return ConsumerClientNode(environment: environment, brokers: brokerIDs, topics: topics, partitionsPerTopic: partitionsPerTopic)
        }
        let isController = controllerIDs.contains(id)
        let isBroker = brokerIDs.contains(id)
        if isController && isBroker {
            return CombinedNode(controller: makeController(environment), broker: makeBroker(environment))
        }
        return isController ? makeController(environment) : makeBroker(environment)
    }

    func makeController(_ environment: NodeEnvironment) -> ControllerNode {
        let raft = RaftNode.Configuration(raft: RaftConfiguration(nodeID: environment.nodeID, voters: controllerIDs))
        return ControllerNode(environment: environment,
                              configuration: ControllerNode.Configuration(raft: raft, controller: controllerConfiguration))
    }

    func makeBroker(_ environment: NodeEnvironment) -> BrokerNode {
        var configuration = BrokerConfiguration(brokerID: environment.nodeID, clusterID: clusterID, controllerVoters: controllerIDs)
        configuration.heartbeatInterval = .milliseconds(500)
        configuration.dataPlane.replication.durabilityPolicy = durabilityPolicy
        configuration.dataPlane.retentionCheckInterval = .seconds(1)
        return BrokerNode(configuration: configuration, environment: environment)
    }
}

/// A topic's retention settings (Kafka's topic configs), -1 for no limit.
public struct TopicRetention: Sendable, Equatable {
    public var segmentBytes: Int64
    public var retentionBytes: Int64
    public var retentionMilliseconds: Int64

    /// The topic configs that say it.
    var configs: [(name: String, value: String)] {
        [("segment.bytes", String(segmentBytes)), ("retention.bytes", String(retentionBytes)),
         ("retention.ms", String(retentionMilliseconds))]
    }
}

/// The controller part of a process, if it has one.
public func controllerPart(of node: (any NodeStateMachine)?) -> ControllerNode? {
    if let controller = node as? ControllerNode { return controller }
    return (node as? CombinedNode)?.controller
}

/// The broker part of a process, if it has one.
public func brokerPart(of node: (any NodeStateMachine)?) -> BrokerNode? {
    if let broker = node as? BrokerNode { return broker }
    return (node as? CombinedNode)?.broker
}
