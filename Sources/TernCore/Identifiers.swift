/// A distinct integer type for each kind of identifier, so a term can never be passed where a
/// leader epoch is expected. All of them order, hash and print as their raw integer.
public protocol TypedInteger: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible
where RawValue: FixedWidthInteger & Sendable {
    init(rawValue: RawValue)
}

extension TypedInteger {
    public init(_ rawValue: RawValue) { self.init(rawValue: rawValue) }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}

/// A broker or controller node (`node.id`).
public struct NodeID: TypedInteger {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
}

/// Handed out by the controller at each broker registration; fences stale incarnations.
public struct BrokerEpoch: TypedInteger {
    public var rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
}

/// A Raft term of the controller quorum.
public struct Term: TypedInteger {
    public var rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public static let zero = Term(0)
    public var next: Term { Term(rawValue + 1) }
}

/// Bumped by the controller at each partition leader change; stamped into every batch the leader writes.
public struct LeaderEpoch: TypedInteger {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// Kafka's "no epoch" (-1), as carried on the wire.
    public static let none = LeaderEpoch(-1)
    public var next: LeaderEpoch { LeaderEpoch(rawValue + 1) }
}

/// Bumped at every change of a partition's replicas, ISR or leader; the compare-and-set key of AlterPartition.
public struct PartitionEpoch: TypedInteger {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public var next: PartitionEpoch { PartitionEpoch(rawValue + 1) }
}

/// An idempotent or transactional producer.
public struct ProducerID: TypedInteger {
    public var rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public static let none = ProducerID(-1)
}

/// The epoch of a producer id; a newer epoch fences older producers with the same id.
public struct ProducerEpoch: TypedInteger {
    public var rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }
    public static let none = ProducerEpoch(-1)
}

/// A position in a partition log (or the metadata log). Offsets are dense: every record and
/// every control record takes one.
public struct Offset: TypedInteger, Strideable {
    public var rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }
    public static let zero = Offset(0)
    /// Kafka's "unknown offset" (-1), as carried on the wire.
    public static let unknown = Offset(-1)
    public func advanced(by count: Int64) -> Offset { Offset(rawValue + count) }
    public func distance(to other: Offset) -> Int64 { other.rawValue - rawValue }
    public static func + (lhs: Offset, rhs: Int64) -> Offset { Offset(lhs.rawValue + rhs) }
    public static func - (lhs: Offset, rhs: Int64) -> Offset { Offset(lhs.rawValue - rhs) }
    public static func < (lhs: Offset, rhs: Offset) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// A partition of a topic.
public struct TopicPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }
    /// The partition's directory name under a log dir, as Kafka names it.
    public var description: String { "\(topic)-\(partition)" }
}
