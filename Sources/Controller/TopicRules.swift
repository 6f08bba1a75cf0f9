import KafkaProtocol
import LogStorage
import TernCore

/// Rules on names, assignments and configuration values that both the image (applying records)
/// and the controller (validating requests) enforce.
public enum TopicRules {
    /// Kafka's limit: the partition directory name `<topic>-<partition>` must fit in 255 bytes.
    public static let maximumTopicNameBytes = 249
    public static let maximumConfigNameBytes = 255
    public static let maximumConfigValueBytes = 4_096
    /// Bounds a request can ask for, so one request cannot make the controller build millions of records.
    public static let maximumPartitionsPerTopic: Int32 = 10_000
    public static let maximumReplicationFactor = 64
    /// KRaft's metadata log; no user topic may take the name.
    public static let clusterMetadataTopicName = "__cluster_metadata"

    /// Why `name` is not a legal topic name, or nil when it is (Kafka's rule: 1 to 249 of
    /// `[a-zA-Z0-9._-]`, and neither `.` nor `..`).
    public static func topicNameProblem(_ name: String) -> String? {
        let utf8 = Array(name.utf8)
        if utf8.isEmpty { return "the name is empty" }
        if utf8.count > maximumTopicNameBytes { return "the name is longer than \(maximumTopicNameBytes) bytes" }
        if name == "." || name == ".." { return "'.' and '..' are not topic names" }
        for byte in utf8 where !isLegalTopicNameByte(byte) {
            return "the name contains a character other than ASCII letters, digits, '.', '_' and '-'"
        }
        return nil
    }

    private static func isLegalTopicNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// Why `replicas`, `isr` and `leader` do not form a valid partition state, or nil. The ISR is
    /// never empty (its last member stays when it dies, so it can come back as a clean leader).
    static func assignmentProblem(replicas: [NodeID], isr: [NodeID], leader: NodeID?) -> String? {
        if replicas.isEmpty { return "no replicas" }
        if replicas.count > maximumReplicationFactor { return "more than \(maximumReplicationFactor) replicas" }
        if replicas.contains(where: { $0.rawValue < 0 }) { return "negative replica id" }
        if Set(replicas).count != replicas.count { return "duplicate replicas \(replicas)" }
        if isr.isEmpty { return "empty ISR" }
        if Set(isr).count != isr.count { return "duplicate ISR members \(isr)" }
        if let outsider = isr.first(where: { !replicas.contains($0) }) { return "ISR member \(outsider) is not a replica" }
        if let leader, !isr.contains(leader) { return "leader \(leader) is not in the ISR \(isr)" }
        return nil
    }

    /// Why a partition's recorded data losses are inconsistent, or nil: one per replica at most,
    /// sorted by broker, each set at or before the partition's current epoch.
    static func dataLossProblem(_ losses: [ReplicaDataLoss], replicas: [NodeID], partitionEpoch: PartitionEpoch) -> String? {
        for (index, loss) in losses.enumerated() {
            if !replicas.contains(loss.broker) { return "data loss of broker \(loss.broker), which is not a replica" }
            if index > 0, losses[index - 1].broker >= loss.broker { return "data losses not sorted by broker" }
            if loss.firstLostOffset.rawValue < 0 { return "data loss from a negative offset" }
            if loss.markedAt > partitionEpoch { return "data loss recorded at partition epoch \(loss.markedAt), after \(partitionEpoch)" }
        }
        return nil
    }

    /// Why the reassignment state of a partition is inconsistent, or nil.
    static func reassignmentProblem(replicas: [NodeID], adding: [NodeID], removing: [NodeID]) -> String? {
        if let outsider = (adding + removing).first(where: { !replicas.contains($0) }) { return "reassigned broker \(outsider) is not a replica" }
        if let both = adding.first(where: { removing.contains($0) }) { return "broker \(both) is both added and removed" }
        if !removing.isEmpty && removing.count >= replicas.count { return "a reassignment would remove every replica" }
        return nil
    }

    /// Why `value` is not acceptable for the configuration entry `name`, or nil. Entries Tern does
    /// not interpret are accepted as they are (brokers read them).
    public static func configProblem(name: String, value: String) -> String? {
        if name.utf8.isEmpty { return "empty config name" }
        if name.utf8.count > maximumConfigNameBytes { return "config name longer than \(maximumConfigNameBytes) bytes" }
        if value.utf8.count > maximumConfigValueBytes { return "config value longer than \(maximumConfigValueBytes) bytes" }
        switch name {
        case ConfigNames.uncleanLeaderElectionEnable:
            return parseBoolean(value) == nil ? "expected true or false, got '\(value)'" : nil
        case ConfigNames.minInsyncReplicas:
            guard let count = Int32(value), count >= 1 else { return "expected an integer of at least 1, got '\(value)'" }
            return nil
        case ConfigNames.messageTimestampType:
            return TopicConfigValues.timestampType(value) == nil ? "expected CreateTime or LogAppendTime, got '\(value)'" : nil
        case ConfigNames.segmentBytes:
            return integerProblem(value, in: (RecordBatchSizeLimits.minimumBatchBytes + 1)...LogConfiguration.maximumSegmentBytes)
        case ConfigNames.segmentMilliseconds:
            return integerProblem(value, in: 1...Int64.max)
        case ConfigNames.retentionMilliseconds, ConfigNames.retentionBytes:
            return integerProblem(value, in: -1...Int64.max)
        default:
            return nil
        }
    }

    private static func integerProblem(_ value: String, in range: ClosedRange<Int64>) -> String? {
        guard let number = Int64(value), range.contains(number) else {
            return "expected an integer between \(range.lowerBound) and \(range.upperBound), got '\(value)'"
        }
        return nil
    }

    /// Kafka parses booleans case-insensitively.
    static func parseBoolean(_ value: String) -> Bool? {
        switch value.lowercased() {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }
}

/// Configuration keys Tern reads, spelled as Kafka spells them.
public enum ConfigNames {
    public static let uncleanLeaderElectionEnable = "unclean.leader.election.enable"
    public static let minInsyncReplicas = "min.insync.replicas"
    public static let messageTimestampType = "message.timestamp.type"
    public static let segmentBytes = "segment.bytes"
    public static let segmentMilliseconds = "segment.ms"
    public static let retentionMilliseconds = "retention.ms"
    public static let retentionBytes = "retention.bytes"
}

/// Topic config values as Kafka spells them.
public enum TopicConfigValues {
    /// `message.timestamp.type`: Kafka's two names, case as Kafka writes them.
    public static func timestampType(_ value: String) -> TimestampType? {
        switch value {
        case "CreateTime": return .createTime
        case "LogAppendTime": return .logAppendTime
        default: return nil
        }
    }

    /// A log's settings with a topic's overrides applied (values the controller validated).
    public static func logConfiguration(_ base: LogConfiguration, topic: TopicImage?) -> LogConfiguration {
        var configuration = base
        guard let topic else { return configuration }
        if let type = topic.config(ConfigNames.messageTimestampType).flatMap(timestampType) { configuration.messageTimestampType = type }
        if let bytes = topic.config(ConfigNames.segmentBytes).flatMap({ Int64($0) }) { configuration.segmentBytes = bytes }
        if let milliseconds = topic.config(ConfigNames.segmentMilliseconds).flatMap({ Int64($0) }) { configuration.segmentMilliseconds = milliseconds }
        if let milliseconds = topic.config(ConfigNames.retentionMilliseconds).flatMap({ Int64($0) }) {
            configuration.retentionMilliseconds = milliseconds
        }
        if let bytes = topic.config(ConfigNames.retentionBytes).flatMap({ Int64($0) }) { configuration.retentionBytes = bytes }
        return configuration
    }
}
