import TernCore

/// A registered broker as the metadata log describes it.
public struct BrokerRegistration: Hashable, Sendable {
    public var brokerID: NodeID
    public var brokerEpoch: BrokerEpoch
    public var incarnationID: IncarnationID
    public var endpoints: [BrokerEndpoint]
    public var rack: String?
    /// A fenced broker leads nothing and may not join an ISR. Every registration starts fenced.
    public var isFenced: Bool
    public var inControlledShutdown: Bool
    /// The log offset of this registration's record: the broker has caught up once its applied
    /// metadata reaches it.
    public var registeredAtOffset: Offset
    /// The log offset at which the broker entered controlled shutdown; its shutdown is granted once
    /// the other live brokers have applied the metadata that far (they know the new leaders).
    public var controlledShutdownOffset: Offset?

    /// May lead partitions and join ISRs.
    public var isActive: Bool { !isFenced && !inControlledShutdown }

    public var reference: BrokerAndEpoch { BrokerAndEpoch(brokerID: brokerID, brokerEpoch: brokerEpoch) }
}

/// The replicas, ISR, leader and epochs of one partition.
public struct PartitionRegistration: Hashable, Sendable {
    public var replicas: [NodeID]
    public var isr: [NodeID]
    public var leader: NodeID?
    public var leaderEpoch: LeaderEpoch
    public var partitionEpoch: PartitionEpoch
    /// During a reassignment (KIP-455): replicas being added (they fetch and must join the ISR)
    /// and replicas to remove once every added one has. Both are subsets of `replicas`.
    public var addingReplicas: [NodeID] = []
    public var removingReplicas: [NodeID] = []
    /// Replicas whose storage lost (or may have lost) records they held, by broker id: until the
    /// leader vouches that one has fetched them back, it counts toward nothing and leads only when
    /// no better copy can exist (see `PartitionChangePlanner`).
    public var dataLoss: [ReplicaDataLoss] = []

    public init(replicas: [NodeID], isr: [NodeID], leader: NodeID?, leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch,
                addingReplicas: [NodeID] = [], removingReplicas: [NodeID] = [], dataLoss: [ReplicaDataLoss] = []) {
        self.replicas = replicas
        self.isr = isr
        self.leader = leader
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.addingReplicas = addingReplicas
        self.removingReplicas = removingReplicas
        self.dataLoss = dataLoss
    }

    /// The loss the controller has recorded for `broker`'s replica, if any.
    public func dataLoss(of broker: NodeID) -> ReplicaDataLoss? { dataLoss.first { $0.broker == broker } }

    public var isOffline: Bool { leader == nil }
    public var isReassigning: Bool { !addingReplicas.isEmpty || !removingReplicas.isEmpty }
    /// Where a reassignment takes the partition: the replicas without those being removed.
    public var targetReplicas: [NodeID] { replicas.filter { !removingReplicas.contains($0) } }
    /// Kafka's "preferred leader": the first replica.
    public var preferredLeader: NodeID { replicas[0] }
}

/// A replica's loss of data it held, as the controller recorded it from the broker's report: latent
/// corruption its checksums caught, or an invalid tail after a crash that may have been synced (the
/// two cannot be told apart). Nothing from `firstLostOffset` on may be taken from that copy.
///
/// The broker discards its log from `firstLostOffset` only once the committed metadata carries this
/// record (so no controller elects it, or counts it in sync, as if it still held that data); it then
/// re-fetches, naming `markedAt` in its fetches, and the leader clears the record through
/// AlterPartition once such a fetch shows the replica caught up again.
public struct ReplicaDataLoss: Hashable, Sendable, Comparable {
    public var broker: NodeID
    public var firstLostOffset: Offset
    /// The partition epoch of the change that recorded this loss: identifies it, so a replica's
    /// statement that it discarded "up to loss X" can never be taken for a later loss.
    public var markedAt: PartitionEpoch

    public init(broker: NodeID, firstLostOffset: Offset, markedAt: PartitionEpoch) {
        self.broker = broker
        self.firstLostOffset = firstLostOffset
        self.markedAt = markedAt
    }

    public static func < (left: ReplicaDataLoss, right: ReplicaDataLoss) -> Bool { left.broker < right.broker }
}

/// A topic with its partitions (indexed by partition number) and configuration overrides.
public struct TopicImage: Hashable, Sendable {
    public let name: String
    public let topicID: TopicID
    public internal(set) var partitions: [PartitionRegistration]
    var configsByName: [String: String]

    /// Configuration overrides sorted by name.
    public var configs: [ConfigEntry] {
        configsByName.keys.sorted().map { ConfigEntry(name: $0, value: configsByName[$0]!) }
    }

    public func config(_ name: String) -> String? { configsByName[name] }

    public func partition(_ index: Int32) -> PartitionRegistration? {
        guard index >= 0, Int(index) < partitions.count else { return nil }
        return partitions[Int(index)]
    }
}

/// One partition with its names, as the ordered lookups return them.
public struct PartitionEntry: Hashable, Sendable {
    public var topicID: TopicID
    public var topicPartition: TopicPartition
    public var registration: PartitionRegistration
}

/// The cluster metadata at one offset of the metadata log: the result of applying every record up
/// to `offset`, in order. Controllers and brokers each hold one; checkers compare them with
/// `canonicalEncoding()` / `digest`. Lookups that return several things return them sorted
/// (brokers by id, topics by name, partitions by index), never in hash order.
public struct MetadataImage: Hashable, Sendable {
    /// The offset of the last applied record; `Offset.unknown` before the first.
    public private(set) var offset: Offset = .unknown
    /// The highest broker epoch ever handed out; new registrations get a higher one.
    public internal(set) var highestBrokerEpoch = BrokerEpoch(0)
    /// Where the next producer-id block starts.
    public internal(set) var nextProducerID = ProducerID(0)
    var brokersByID: [NodeID: BrokerRegistration] = [:]
    var topicsByName: [String: TopicImage] = [:]
    var topicNamesByID: [TopicID: String] = [:]
    /// Cluster and broker configuration; topic configuration lives in its `TopicImage`.
    var configsByResource: [ConfigResource: [String: String]] = [:]

    public init() {}

    public static let empty = MetadataImage()

    // MARK: Brokers

    public func broker(_ id: NodeID) -> BrokerRegistration? { brokersByID[id] }

    /// Every registered broker, by id.
    public var brokers: [BrokerRegistration] { brokersByID.keys.sorted().map { brokersByID[$0]! } }

    /// Brokers that may lead and join ISRs, by id.
    public var activeBrokerIDs: [NodeID] { brokersByID.keys.sorted().filter { brokersByID[$0]!.isActive } }

    public func isActive(_ id: NodeID) -> Bool { brokersByID[id]?.isActive ?? false }

    // MARK: Topics and partitions

    public var topicNames: [String] { topicsByName.keys.sorted() }
    public var topics: [TopicImage] { topicNames.map { topicsByName[$0]! } }
    public var topicCount: Int { topicsByName.count }

    public func topic(named name: String) -> TopicImage? { topicsByName[name] }

    public func topic(id: TopicID) -> TopicImage? {
        guard let name = topicNamesByID[id] else { return nil }
        return topicsByName[name]
    }

    public func partition(_ topicPartition: TopicPartition) -> PartitionRegistration? {
        topicsByName[topicPartition.topic]?.partition(topicPartition.partition)
    }

    public func partition(topicID: TopicID, index: Int32) -> PartitionRegistration? {
        topic(id: topicID)?.partition(index)
    }

    /// Every partition, by topic name then index.
    public var partitions: [PartitionEntry] {
        var entries: [PartitionEntry] = []
        for topic in topics {
            for (index, registration) in topic.partitions.enumerated() {
                entries.append(PartitionEntry(topicID: topic.topicID,
                                              topicPartition: TopicPartition(topic: topic.name, partition: Int32(index)),
                                              registration: registration))
            }
        }
        return entries
    }

    public func partitionsLed(by broker: NodeID) -> [TopicPartition] {
        partitions.filter { $0.registration.leader == broker }.map(\.topicPartition)
    }

    public func leadsAnyPartition(_ broker: NodeID) -> Bool {
        topicsByName.values.contains { topic in topic.partitions.contains { $0.leader == broker } }
    }

    // MARK: Configuration

    public func config(_ name: String, for resource: ConfigResource) -> String? {
        switch resource {
        case let .topic(topicName): return topicsByName[topicName]?.config(name)
        case .cluster, .broker: return configsByResource[resource]?[name]
        }
    }

    /// The entries set for `resource`, by name.
    public func configs(for resource: ConfigResource) -> [ConfigEntry] {
        switch resource {
        case let .topic(topicName): return topicsByName[topicName]?.configs ?? []
        case .cluster, .broker:
            let entries = configsByResource[resource] ?? [:]
            return entries.keys.sorted().map { ConfigEntry(name: $0, value: entries[$0]!) }
        }
    }

    /// Resources with cluster or broker configuration, in order.
    public var configuredResources: [ConfigResource] { configsByResource.keys.sorted() }

    // MARK: Applying records

    /// The image after `record`, which the log holds at `offset`. A record that contradicts the
    /// image (an unknown topic, an epoch going backwards, a fenced leader...) is refused with the
    /// image unchanged: a committed log never contains one, so the caller treats it as fatal.
    public func applying(_ record: MetadataRecord, at offset: Offset) throws(MetadataApplyError) -> MetadataImage {
        var next = self
        try next.apply(record, at: offset)
        return next
    }

    public mutating func apply(_ record: MetadataRecord, at offset: Offset) throws(MetadataApplyError) {
        guard offset > self.offset else { throw .offsetNotIncreasing(offset: offset, imageOffset: self.offset) }
        switch record {
        case let .registerBroker(registration): try applyRegistration(registration, at: offset)
        case let .fenceBroker(broker): try applyFence(broker)
        case let .unfenceBroker(broker): try applyUnfence(broker)
        case let .beginControlledShutdown(broker): try applyControlledShutdown(broker, at: offset)
        case let .topic(topic): try applyTopic(topic)
        case let .partition(partition): try applyPartition(partition)
        case let .partitionChange(change): try applyPartitionChange(change)
        case let .producerIDBlock(block): try applyProducerIDBlock(block)
        case let .removeTopic(removal): try applyRemoveTopic(removal)
        case let .config(config): try applyConfig(config)
        }
        self.offset = offset
    }
}
