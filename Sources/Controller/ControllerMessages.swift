import TernCore

// Tern's internal broker↔controller protocol (REFERENCE.md §6: clients never see these APIs, so
// they need not be Kafka's bytes). Error codes are Kafka's numbers, so they read the same in logs.

/// Errors the controller answers with (numbers from Kafka's `Errors.java`).
public enum ControllerErrorCode: Int16, Sendable, CaseIterable, Hashable {
    case unknownServerError = -1
    case none = 0
    case unknownTopicOrPartition = 3
    case notLeaderOrFollower = 6
    case invalidTopic = 17
    case topicAlreadyExists = 36
    case invalidPartitions = 37
    case invalidReplicationFactor = 38
    case invalidReplicaAssignment = 39
    case invalidConfig = 40
    case notController = 41
    case invalidRequest = 42
    case fencedLeaderEpoch = 74
    case staleBrokerEpoch = 77
    case preferredLeaderNotAvailable = 80
    case eligibleLeadersNotAvailable = 83
    case electionNotNeeded = 84
    case noReassignmentInProgress = 85
    case duplicateBrokerRegistration = 101
    case brokerIDNotRegistered = 102
    case inconsistentClusterID = 104
    case ineligibleReplica = 107
    case invalidUpdateVersion = 108
}

// MARK: Broker lifecycle

/// A broker process announces itself at startup (and again whenever its epoch is refused).
public struct BrokerRegistrationRequest: Hashable, Sendable {
    public var brokerID: NodeID
    public var clusterID: String
    /// New at every process start.
    public var incarnationID: IncarnationID
    public var endpoints: [BrokerEndpoint]
    public var rack: String?

    public init(brokerID: NodeID, clusterID: String, incarnationID: IncarnationID, endpoints: [BrokerEndpoint], rack: String? = nil) {
        self.brokerID = brokerID
        self.clusterID = clusterID
        self.incarnationID = incarnationID
        self.endpoints = endpoints
        self.rack = rack
    }
}

public struct BrokerRegistrationResponse: Hashable, Sendable {
    public var error: ControllerErrorCode
    /// The epoch the broker must quote in heartbeats and requests; -1 on error.
    public var brokerEpoch: BrokerEpoch

    public init(error: ControllerErrorCode, brokerEpoch: BrokerEpoch = BrokerEpoch(-1)) {
        self.error = error
        self.brokerEpoch = brokerEpoch
    }
}

/// Sent every `broker.heartbeat.interval.ms`; keeps the broker's session alive.
public struct BrokerHeartbeatRequest: Hashable, Sendable {
    public var brokerID: NodeID
    public var brokerEpoch: BrokerEpoch
    /// The offset of the last metadata record the broker has applied.
    public var metadataOffset: Offset
    /// The broker asks to stay (or become) fenced, for example while it recovers its logs.
    public var wantFence: Bool
    /// The broker asks for a controlled shutdown.
    public var wantShutDown: Bool
    /// Replicas whose log lost, or may have lost, records it held (latent corruption caught by a
    /// checksum, or an invalid tail after a crash), reported until the committed metadata records
    /// each loss: only then does the broker discard that data (see `ReplicaDataLoss`).
    public var dataLosses: [ReplicaDataLossReport]

    public init(brokerID: NodeID, brokerEpoch: BrokerEpoch, metadataOffset: Offset, wantFence: Bool = false,
                wantShutDown: Bool = false, dataLosses: [ReplicaDataLossReport] = []) {
        self.brokerID = brokerID
        self.brokerEpoch = brokerEpoch
        self.metadataOffset = metadataOffset
        self.wantFence = wantFence
        self.wantShutDown = wantShutDown
        self.dataLosses = dataLosses
    }
}

/// One replica of the reporting broker whose log holds nothing trustworthy from `firstLostOffset` on.
public struct ReplicaDataLossReport: Hashable, Sendable, Comparable {
    public var replica: ReplicaReference
    public var firstLostOffset: Offset
    /// The recorded loss (its `markedAt`) this process already discarded its data for, -1 if none:
    /// a loss found after that discard needs a record of its own, even at a higher offset, so that
    /// fetches from before the new discard can be told from those after it.
    public var acknowledgedLoss: PartitionEpoch

    public init(replica: ReplicaReference, firstLostOffset: Offset, acknowledgedLoss: PartitionEpoch = PartitionEpoch(-1)) {
        self.replica = replica
        self.firstLostOffset = firstLostOffset
        self.acknowledgedLoss = acknowledgedLoss
    }

    public static func < (left: ReplicaDataLossReport, right: ReplicaDataLossReport) -> Bool {
        (left.replica, left.firstLostOffset) < (right.replica, right.firstLostOffset)
    }
}

/// One partition, by topic id.
public struct ReplicaReference: Hashable, Sendable, Comparable {
    public var topicID: TopicID
    public var partition: Int32

    public init(topicID: TopicID, partition: Int32) {
        self.topicID = topicID
        self.partition = partition
    }

    public static func < (left: ReplicaReference, right: ReplicaReference) -> Bool {
        (left.topicID, left.partition) < (right.topicID, right.partition)
    }
}

public struct BrokerHeartbeatResponse: Hashable, Sendable {
    public var error: ControllerErrorCode
    /// The broker has applied the metadata log up to its own registration.
    public var isCaughtUp: Bool
    public var isFenced: Bool
    /// The controller moved everything away: the broker may stop now.
    public var shouldShutDown: Bool

    public init(error: ControllerErrorCode, isCaughtUp: Bool = false, isFenced: Bool = true, shouldShutDown: Bool = false) {
        self.error = error
        self.isCaughtUp = isCaughtUp
        self.isFenced = isFenced
        self.shouldShutDown = shouldShutDown
    }
}

// MARK: ISR changes

/// A partition leader asks to change its ISR, quoting the epochs it knows (compare-and-set).
public struct AlterPartitionRequest: Hashable, Sendable {
    public var brokerID: NodeID
    public var brokerEpoch: BrokerEpoch
    public var partitions: [Partition]

    public init(brokerID: NodeID, brokerEpoch: BrokerEpoch, partitions: [Partition]) {
        self.brokerID = brokerID
        self.brokerEpoch = brokerEpoch
        self.partitions = partitions
    }

    public struct Partition: Hashable, Sendable {
        public var topicID: TopicID
        public var partition: Int32
        public var leaderEpoch: LeaderEpoch
        public var partitionEpoch: PartitionEpoch
        public var newISR: [ISRMember]

        public init(topicID: TopicID, partition: Int32, leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch, newISR: [ISRMember]) {
            self.topicID = topicID
            self.partition = partition
            self.leaderEpoch = leaderEpoch
            self.partitionEpoch = partitionEpoch
            self.newISR = newISR
        }
    }

    /// An ISR member with the broker epoch the leader saw it fetch with (KIP-903): a broker that
    /// restarted since cannot be added on the strength of its previous incarnation's fetches.
    /// Likewise a replica with a recorded data loss: the leader names the loss (its `markedAt`)
    /// that the member's fetches say it discarded its data for, so only fetches made after that
    /// discard can clear the loss, never older ones still in flight.
    public struct ISRMember: Hashable, Sendable {
        public var brokerID: NodeID
        /// -1 skips the check.
        public var brokerEpoch: BrokerEpoch
        /// The recorded loss the member has discarded its data for and caught up from; -1 if none.
        public var acknowledgedLoss: PartitionEpoch

        public init(brokerID: NodeID, brokerEpoch: BrokerEpoch = BrokerEpoch(-1), acknowledgedLoss: PartitionEpoch = PartitionEpoch(-1)) {
            self.brokerID = brokerID
            self.brokerEpoch = brokerEpoch
            self.acknowledgedLoss = acknowledgedLoss
        }
    }
}

public struct AlterPartitionResponse: Hashable, Sendable {
    /// Set when the whole request is refused (stale broker epoch).
    public var error: ControllerErrorCode
    public var partitions: [PartitionResult]

    public init(error: ControllerErrorCode, partitions: [PartitionResult] = []) {
        self.error = error
        self.partitions = partitions
    }

    /// The partition's state after the request (or as it is, on error).
    public struct PartitionResult: Hashable, Sendable {
        public var topicID: TopicID
        public var partition: Int32
        public var error: ControllerErrorCode
        public var leader: NodeID?
        public var leaderEpoch: LeaderEpoch
        public var isr: [NodeID]
        public var partitionEpoch: PartitionEpoch
        public var dataLoss: [ReplicaDataLoss]

        public init(topicID: TopicID, partition: Int32, error: ControllerErrorCode, leader: NodeID? = nil,
                    leaderEpoch: LeaderEpoch = .none, isr: [NodeID] = [], partitionEpoch: PartitionEpoch = PartitionEpoch(-1),
                    dataLoss: [ReplicaDataLoss] = []) {
            self.topicID = topicID
            self.partition = partition
            self.error = error
            self.leader = leader
            self.leaderEpoch = leaderEpoch
            self.isr = isr
            self.partitionEpoch = partitionEpoch
            self.dataLoss = dataLoss
        }
    }
}

// MARK: Producer ids

public struct AllocateProducerIDsRequest: Hashable, Sendable {
    public var brokerID: NodeID
    public var brokerEpoch: BrokerEpoch

    public init(brokerID: NodeID, brokerEpoch: BrokerEpoch) {
        self.brokerID = brokerID
        self.brokerEpoch = brokerEpoch
    }
}

public struct AllocateProducerIDsResponse: Hashable, Sendable {
    public var error: ControllerErrorCode
    /// The block `blockStart ..< blockStart + blockSize` now belongs to the broker.
    public var blockStart: ProducerID
    public var blockSize: Int64

    public init(error: ControllerErrorCode, blockStart: ProducerID = .none, blockSize: Int64 = 0) {
        self.error = error
        self.blockStart = blockStart
        self.blockSize = blockSize
    }
}

// MARK: Admin

public struct CreateTopicsRequest: Hashable, Sendable {
    public var topics: [Topic]
    /// Check everything and answer as if created, without creating.
    public var validateOnly: Bool

    public init(topics: [Topic], validateOnly: Bool = false) {
        self.topics = topics
        self.validateOnly = validateOnly
    }

    public struct Topic: Hashable, Sendable {
        public var name: String
        /// -1: `num.partitions`. Must be -1 when `assignments` is given.
        public var partitionCount: Int32
        /// -1: `default.replication.factor`. Must be -1 when `assignments` is given.
        public var replicationFactor: Int16
        /// Replicas per partition, chosen by the caller; empty: the controller places them.
        public var assignments: [[NodeID]]
        public var configs: [ConfigEntry]

        public init(name: String, partitionCount: Int32 = -1, replicationFactor: Int16 = -1,
                    assignments: [[NodeID]] = [], configs: [ConfigEntry] = []) {
            self.name = name
            self.partitionCount = partitionCount
            self.replicationFactor = replicationFactor
            self.assignments = assignments
            self.configs = configs
        }
    }
}

public struct CreateTopicsResponse: Hashable, Sendable {
    public var topics: [TopicResult]

    public init(topics: [TopicResult]) { self.topics = topics }

    public struct TopicResult: Hashable, Sendable {
        public var name: String
        /// Zero on error and for `validateOnly`.
        public var topicID: TopicID
        public var error: ControllerErrorCode
        public var message: String?
        public var partitionCount: Int32
        public var replicationFactor: Int16

        public init(name: String, topicID: TopicID = .zero, error: ControllerErrorCode, message: String? = nil,
                    partitionCount: Int32 = -1, replicationFactor: Int16 = -1) {
            self.name = name
            self.topicID = topicID
            self.error = error
            self.message = message
            self.partitionCount = partitionCount
            self.replicationFactor = replicationFactor
        }
    }
}

public struct CreatePartitionsRequest: Hashable, Sendable {
    public var topics: [Topic]
    public var validateOnly: Bool

    public init(topics: [Topic], validateOnly: Bool = false) {
        self.topics = topics
        self.validateOnly = validateOnly
    }

    public struct Topic: Hashable, Sendable {
        public var name: String
        /// The partition count after the request; only growing is allowed.
        public var totalCount: Int32
        /// Replicas for each new partition; empty: the controller places them.
        public var assignments: [[NodeID]]

        public init(name: String, totalCount: Int32, assignments: [[NodeID]] = []) {
            self.name = name
            self.totalCount = totalCount
            self.assignments = assignments
        }
    }
}

/// One result per named thing of an admin request.
public struct AdminResult: Hashable, Sendable {
    public var name: String
    public var error: ControllerErrorCode
    public var message: String?

    public init(name: String, error: ControllerErrorCode, message: String? = nil) {
        self.name = name
        self.error = error
        self.message = message
    }
}

public struct CreatePartitionsResponse: Hashable, Sendable {
    public var topics: [AdminResult]
    public init(topics: [AdminResult]) { self.topics = topics }
}

public struct DeleteTopicsRequest: Hashable, Sendable {
    public var names: [String]
    public init(names: [String]) { self.names = names }
}

public struct DeleteTopicsResponse: Hashable, Sendable {
    public var topics: [TopicResult]
    public init(topics: [TopicResult]) { self.topics = topics }

    public struct TopicResult: Hashable, Sendable {
        public var name: String
        public var topicID: TopicID
        public var error: ControllerErrorCode

        public init(name: String, topicID: TopicID = .zero, error: ControllerErrorCode) {
            self.name = name
            self.topicID = topicID
            self.error = error
        }
    }
}

public enum ElectionType: UInt8, Hashable, Sendable {
    /// Move leadership back to the first replica when it is live and in the ISR.
    case preferred = 0
    /// Give an offline partition any live replica as leader, even outside the ISR (may lose data).
    case unclean = 1
}

public struct ElectLeadersRequest: Hashable, Sendable {
    public var electionType: ElectionType
    /// nil: every partition (results then leave out the ones that needed no election).
    public var partitions: [TopicPartition]?

    public init(electionType: ElectionType, partitions: [TopicPartition]?) {
        self.electionType = electionType
        self.partitions = partitions
    }
}

public struct ElectLeadersResponse: Hashable, Sendable {
    public var partitions: [PartitionResult]
    public init(partitions: [PartitionResult]) { self.partitions = partitions }

    public struct PartitionResult: Hashable, Sendable {
        public var topicPartition: TopicPartition
        public var error: ControllerErrorCode
        public var message: String?

        public init(topicPartition: TopicPartition, error: ControllerErrorCode, message: String? = nil) {
            self.topicPartition = topicPartition
            self.error = error
            self.message = message
        }
    }
}

/// Kafka's AlterPartitionReassignments (KIP-455): move partitions to new replica sets. The new
/// replicas are added first; the old ones leave once every new one has joined the ISR.
public struct AlterPartitionReassignmentsRequest: Hashable, Sendable {
    public var reassignments: [Reassignment]
    public init(reassignments: [Reassignment]) { self.reassignments = reassignments }

    public struct Reassignment: Hashable, Sendable {
        public var topicPartition: TopicPartition
        /// The replica set to move to, preferred leader first; nil cancels a reassignment.
        public var targetReplicas: [NodeID]?

        public init(topicPartition: TopicPartition, targetReplicas: [NodeID]?) {
            self.topicPartition = topicPartition
            self.targetReplicas = targetReplicas
        }
    }
}

public struct AlterPartitionReassignmentsResponse: Hashable, Sendable {
    public var partitions: [ElectLeadersResponse.PartitionResult]
    public init(partitions: [ElectLeadersResponse.PartitionResult]) { self.partitions = partitions }
}

/// Kafka's IncrementalAlterConfigs, restricted to set and delete.
public struct AlterConfigsRequest: Hashable, Sendable {
    public var resources: [Resource]
    public var validateOnly: Bool

    public init(resources: [Resource], validateOnly: Bool = false) {
        self.resources = resources
        self.validateOnly = validateOnly
    }

    public struct Resource: Hashable, Sendable {
        public var resource: ConfigResource
        /// Applied in order; a nil value deletes the entry.
        public var changes: [ConfigChange]

        public init(resource: ConfigResource, changes: [ConfigChange]) {
            self.resource = resource
            self.changes = changes
        }
    }

    public struct ConfigChange: Hashable, Sendable {
        public var name: String
        public var value: String?

        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }
}

public struct AlterConfigsResponse: Hashable, Sendable {
    public var resources: [ResourceResult]
    public init(resources: [ResourceResult]) { self.resources = resources }

    public struct ResourceResult: Hashable, Sendable {
        public var resource: ConfigResource
        public var error: ControllerErrorCode
        public var message: String?

        public init(resource: ConfigResource, error: ControllerErrorCode, message: String? = nil) {
            self.resource = resource
            self.error = error
            self.message = message
        }
    }
}

// MARK: Envelopes

/// Every request the controller serves.
public enum ControllerRequest: Hashable, Sendable {
    case brokerRegistration(BrokerRegistrationRequest)
    case brokerHeartbeat(BrokerHeartbeatRequest)
    case alterPartition(AlterPartitionRequest)
    case allocateProducerIDs(AllocateProducerIDsRequest)
    case createTopics(CreateTopicsRequest)
    case createPartitions(CreatePartitionsRequest)
    case deleteTopics(DeleteTopicsRequest)
    case electLeaders(ElectLeadersRequest)
    case alterConfigs(AlterConfigsRequest)
    case alterPartitionReassignments(AlterPartitionReassignmentsRequest)
}

/// The answer to each `ControllerRequest`, same case name.
public enum ControllerResponse: Hashable, Sendable {
    case brokerRegistration(BrokerRegistrationResponse)
    case brokerHeartbeat(BrokerHeartbeatResponse)
    case alterPartition(AlterPartitionResponse)
    case allocateProducerIDs(AllocateProducerIDsResponse)
    case createTopics(CreateTopicsResponse)
    case createPartitions(CreatePartitionsResponse)
    case deleteTopics(DeleteTopicsResponse)
    case electLeaders(ElectLeadersResponse)
    case alterConfigs(AlterConfigsResponse)
    case alterPartitionReassignments(AlterPartitionReassignmentsResponse)
}
