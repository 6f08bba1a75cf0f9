import TernCore

/// One entry of the metadata log. Every controller decision is one or more of these, committed
/// through Raft and applied in order, on every controller and broker, to a `MetadataImage`.
public enum MetadataRecord: Hashable, Sendable {
    /// A broker (re)registers: a new broker epoch, fenced until it has caught up.
    case registerBroker(BrokerRegistrationRecord)
    /// The broker may no longer lead or join ISRs (session expired, or it asked to stop).
    case fenceBroker(BrokerAndEpoch)
    /// The broker caught up with the metadata log and may lead again.
    case unfenceBroker(BrokerAndEpoch)
    /// The broker asked to shut down: it leads nothing from here on.
    case beginControlledShutdown(BrokerAndEpoch)
    case topic(TopicRecord)
    case partition(PartitionRecord)
    case partitionChange(PartitionChangeRecord)
    case producerIDBlock(ProducerIDBlockRecord)
    case removeTopic(RemoveTopicRecord)
    case config(ConfigRecord)
}

/// A broker registration as the controller accepted it.
public struct BrokerRegistrationRecord: Hashable, Sendable {
    public var brokerID: NodeID
    public var brokerEpoch: BrokerEpoch
    public var incarnationID: IncarnationID
    public var endpoints: [BrokerEndpoint]
    public var rack: String?

    public init(brokerID: NodeID, brokerEpoch: BrokerEpoch, incarnationID: IncarnationID, endpoints: [BrokerEndpoint], rack: String?) {
        self.brokerID = brokerID
        self.brokerEpoch = brokerEpoch
        self.incarnationID = incarnationID
        self.endpoints = endpoints
        self.rack = rack
    }
}

/// A listener a broker advertises (Kafka's `listeners` / `advertised.listeners` entry).
public struct BrokerEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var listenerName: String
    public var host: String
    public var port: UInt16

    public init(listenerName: String, host: String, port: UInt16) {
        self.listenerName = listenerName
        self.host = host
        self.port = port
    }

    public var description: String { "\(listenerName)://\(host):\(port)" }

    /// The listener clients reach (what Metadata answers carry).
    public static let clientListenerName = "CLIENT"
    /// The listener of controller and replication traffic: other brokers find a leader's
    /// replication address under it in the metadata image.
    public static let internalListenerName = "INTERNAL"
}

/// Names one registration of a broker: records about a broker carry the epoch they were decided
/// for, so a record can never apply to a later incarnation by accident.
public struct BrokerAndEpoch: Hashable, Sendable {
    public var brokerID: NodeID
    public var brokerEpoch: BrokerEpoch

    public init(brokerID: NodeID, brokerEpoch: BrokerEpoch) {
        self.brokerID = brokerID
        self.brokerEpoch = brokerEpoch
    }
}

/// A `name=value` configuration entry.
public struct ConfigEntry: Hashable, Sendable, Comparable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    public static func < (lhs: ConfigEntry, rhs: ConfigEntry) -> Bool { (lhs.name, lhs.value) < (rhs.name, rhs.value) }
}

/// A topic is created: its name, its id, and its configuration overrides (sorted by name).
public struct TopicRecord: Hashable, Sendable {
    public var name: String
    public var topicID: TopicID
    public var configs: [ConfigEntry]

    public init(name: String, topicID: TopicID, configs: [ConfigEntry]) {
        self.name = name
        self.topicID = topicID
        self.configs = configs
    }
}

/// A partition is created (its index is the next one of its topic).
public struct PartitionRecord: Hashable, Sendable {
    public var topicID: TopicID
    public var partition: Int32
    /// In preference order: the first is the preferred leader.
    public var replicas: [NodeID]
    public var isr: [NodeID]
    /// nil: no leader (the partition is offline).
    public var leader: NodeID?
    public var leaderEpoch: LeaderEpoch
    public var partitionEpoch: PartitionEpoch

    public init(topicID: TopicID, partition: Int32, replicas: [NodeID], isr: [NodeID], leader: NodeID?,
                leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch) {
        self.topicID = topicID
        self.partition = partition
        self.replicas = replicas
        self.isr = isr
        self.leader = leader
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
    }
}

/// What a partition change does to the leader.
public enum LeaderChange: Hashable, Sendable {
    case unchanged
    /// The partition goes offline.
    case none
    case elected(NodeID)
}

/// A change of an existing partition. Fields left nil (or `.unchanged`) keep their value; the
/// epochs are the new ones: the partition epoch grows by one at every change, the leader epoch
/// grows whenever the leader changes.
public struct PartitionChangeRecord: Hashable, Sendable {
    public var topicID: TopicID
    public var partition: Int32
    public var leader: LeaderChange
    public var isr: [NodeID]?
    public var replicas: [NodeID]?
    public var leaderEpoch: LeaderEpoch
    public var partitionEpoch: PartitionEpoch
    /// nil: unchanged. Set together with `replicas` by reassignments.
    public var addingReplicas: [NodeID]?
    public var removingReplicas: [NodeID]?
    /// nil: unchanged; otherwise the whole new list, sorted by broker. Losses of brokers that are no
    /// longer replicas are dropped when the record is applied.
    public var dataLoss: [ReplicaDataLoss]?

    public init(topicID: TopicID, partition: Int32, leader: LeaderChange = .unchanged, isr: [NodeID]? = nil,
                replicas: [NodeID]? = nil, leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch,
                addingReplicas: [NodeID]? = nil, removingReplicas: [NodeID]? = nil, dataLoss: [ReplicaDataLoss]? = nil) {
        self.topicID = topicID
        self.partition = partition
        self.leader = leader
        self.isr = isr
        self.replicas = replicas
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.addingReplicas = addingReplicas
        self.removingReplicas = removingReplicas
        self.dataLoss = dataLoss
    }
}

/// A block of producer ids handed to one broker: `blockStart ..< blockStart + blockSize`. The next
/// block starts where this one ends.
public struct ProducerIDBlockRecord: Hashable, Sendable {
    public var brokerID: NodeID
    public var brokerEpoch: BrokerEpoch
    public var blockStart: ProducerID
    public var blockSize: Int64

    public init(brokerID: NodeID, brokerEpoch: BrokerEpoch, blockStart: ProducerID, blockSize: Int64) {
        self.brokerID = brokerID
        self.brokerEpoch = brokerEpoch
        self.blockStart = blockStart
        self.blockSize = blockSize
    }

    public var nextBlockStart: ProducerID { ProducerID(blockStart.rawValue + blockSize) }
}

/// A topic is deleted with its partitions and configuration.
public struct RemoveTopicRecord: Hashable, Sendable {
    public var topicID: TopicID
    public init(topicID: TopicID) { self.topicID = topicID }
}

/// What a configuration entry belongs to.
public enum ConfigResource: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Defaults for the whole cluster (Kafka's broker resource with an empty name).
    case cluster
    case broker(NodeID)
    case topic(String)

    public var description: String {
        switch self {
        case .cluster: return "cluster"
        case let .broker(node): return "broker \(node)"
        case let .topic(name): return "topic \(name)"
        }
    }
}

/// Sets (or, with a nil value, removes) one configuration entry.
public struct ConfigRecord: Hashable, Sendable {
    public var resource: ConfigResource
    public var name: String
    public var value: String?

    public init(resource: ConfigResource, name: String, value: String?) {
        self.resource = resource
        self.name = name
        self.value = value
    }
}
