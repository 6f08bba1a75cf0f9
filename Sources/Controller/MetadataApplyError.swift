import TernCore

/// Why a record cannot be applied to an image. The active controller only proposes records its own
/// image accepts, so a committed log never produces one: seeing one means a broken invariant.
public enum MetadataApplyError: Error, Hashable, Sendable, CustomStringConvertible {
    case offsetNotIncreasing(offset: Offset, imageOffset: Offset)
    case invalidBrokerID(NodeID)
    case unknownBroker(NodeID)
    case brokerEpochMismatch(broker: NodeID, registered: BrokerEpoch, record: BrokerEpoch)
    case brokerEpochNotIncreasing(broker: NodeID, highest: BrokerEpoch, record: BrokerEpoch)
    /// A fence, unfence or shutdown record for a broker already in that state.
    case brokerStateUnchanged(broker: NodeID, reason: String)
    /// A broker that is fenced, re-registers or shuts down must have handed over its leaderships first.
    case brokerStillLeads(broker: NodeID, partition: TopicPartition)
    case invalidTopic(name: String, reason: String)
    case topicAlreadyExists(String)
    case topicIDAlreadyExists(TopicID)
    case unknownTopicID(TopicID)
    case unknownTopicName(String)
    case partitionNotNext(topic: String, partition: Int32, expected: Int32)
    case unknownPartition(topic: String, partition: Int32)
    case invalidAssignment(TopicPartition, reason: String)
    case partitionEpochNotNext(TopicPartition, current: PartitionEpoch, record: PartitionEpoch)
    case leaderEpochRegressed(TopicPartition, current: LeaderEpoch, record: LeaderEpoch)
    case leaderChangedWithoutEpochBump(TopicPartition, epoch: LeaderEpoch)
    /// Only an unfenced broker that is not shutting down may become leader.
    case ineligibleLeader(TopicPartition, NodeID)
    case producerIDBlockNotNext(expected: ProducerID, record: ProducerID)
    case invalidProducerIDBlock(reason: String)
    case invalidConfig(resource: ConfigResource, name: String, reason: String)

    public var description: String {
        switch self {
        case let .offsetNotIncreasing(offset, imageOffset):
            return "record offset \(offset) is not after the image offset \(imageOffset)"
        case let .invalidBrokerID(broker): return "broker id \(broker) is negative"
        case let .unknownBroker(broker): return "broker \(broker) is not registered"
        case let .brokerEpochMismatch(broker, registered, record):
            return "broker \(broker) is registered with epoch \(registered), the record names epoch \(record)"
        case let .brokerEpochNotIncreasing(broker, highest, record):
            return "broker \(broker) registration epoch \(record) is not above the highest epoch \(highest)"
        case let .brokerStateUnchanged(broker, reason): return "broker \(broker): \(reason)"
        case let .brokerStillLeads(broker, partition): return "broker \(broker) still leads \(partition)"
        case let .invalidTopic(name, reason): return "topic '\(name)': \(reason)"
        case let .topicAlreadyExists(name): return "topic '\(name)' already exists"
        case let .topicIDAlreadyExists(id): return "topic id \(id) already exists"
        case let .unknownTopicID(id): return "no topic has id \(id)"
        case let .unknownTopicName(name): return "no topic is named '\(name)'"
        case let .partitionNotNext(topic, partition, expected):
            return "partition \(partition) of '\(topic)' created out of order, expected \(expected)"
        case let .unknownPartition(topic, partition): return "topic '\(topic)' has no partition \(partition)"
        case let .invalidAssignment(partition, reason): return "\(partition): \(reason)"
        case let .partitionEpochNotNext(partition, current, record):
            return "\(partition): partition epoch \(record) does not follow \(current)"
        case let .leaderEpochRegressed(partition, current, record):
            return "\(partition): leader epoch \(record) is below \(current)"
        case let .leaderChangedWithoutEpochBump(partition, epoch):
            return "\(partition): leader changed but the leader epoch stayed \(epoch)"
        case let .ineligibleLeader(partition, broker):
            return "\(partition): broker \(broker) is fenced, shutting down or unknown and cannot lead"
        case let .producerIDBlockNotNext(expected, record):
            return "producer-id block starts at \(record), expected \(expected)"
        case let .invalidProducerIDBlock(reason): return "producer-id block: \(reason)"
        case let .invalidConfig(resource, name, reason): return "config \(name) of \(resource): \(reason)"
        }
    }
}
