import TernCore

// A metadata record on the wire and on disk:
//   record type   unsigned varint (MetadataRecordType)
//   version       unsigned varint (this build writes and reads version 0 of every type)
//   fields        per type, in declaration order (see ControllerCodecSupport.swift for the encodings)
// Decoding untrusted bytes either returns a record or throws `DecodeError`; it never traps.

/// The number each kind of record is stored under. Numbers are forever: never reuse one.
public enum MetadataRecordType: UInt32, Sendable, CaseIterable {
    case registerBroker = 1
    case fenceBroker = 2
    case unfenceBroker = 3
    case beginControlledShutdown = 4
    case topic = 5
    case partition = 6
    case partitionChange = 7
    case producerIDBlock = 8
    case removeTopic = 9
    case config = 10
}

extension MetadataRecord {
    /// The newest record version this build writes and the newest it can read.
    public static let currentVersion: UInt32 = 1

    public var recordType: MetadataRecordType {
        switch self {
        case .registerBroker: return .registerBroker
        case .fenceBroker: return .fenceBroker
        case .unfenceBroker: return .unfenceBroker
        case .beginControlledShutdown: return .beginControlledShutdown
        case .topic: return .topic
        case .partition: return .partition
        case .partitionChange: return .partitionChange
        case .producerIDBlock: return .producerIDBlock
        case .removeTopic: return .removeTopic
        case .config: return .config
        }
    }

    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        encode(into: &writer)
        return writer.take()
    }

    public func encode(into writer: inout ByteWriter) {
        writer.writeUnsignedVarint(recordType.rawValue)
        writer.writeUnsignedVarint(Self.currentVersion)
        switch self {
        case let .registerBroker(record): record.encode(into: &writer)
        case let .fenceBroker(broker), let .unfenceBroker(broker), let .beginControlledShutdown(broker):
            broker.encode(into: &writer)
        case let .topic(record): record.encode(into: &writer)
        case let .partition(record): record.encode(into: &writer)
        case let .partitionChange(record): record.encode(into: &writer)
        case let .producerIDBlock(record): record.encode(into: &writer)
        case let .removeTopic(record): writer.writeUUID(record.topicID)
        case let .config(record): record.encode(into: &writer)
        }
    }

    /// Exactly one record filling `bytes`.
    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        var reader = ByteReader(bytes)
        self = try Self.decode(from: &reader)
        try reader.requireEnd(of: "metadata record")
    }

    public static func decode(from reader: inout ByteReader) throws(DecodeError) -> MetadataRecord {
        let typeStart = reader.position
        let rawType = try reader.readUnsignedVarint()
        guard let type = MetadataRecordType(rawValue: rawType) else {
            throw .invalidValue(position: typeStart, reason: "unknown metadata record type \(rawType)")
        }
        let version = try reader.readVersion(supported: currentVersion, of: "metadata record")
        switch type {
        case .registerBroker: return .registerBroker(try BrokerRegistrationRecord.decode(from: &reader))
        case .fenceBroker: return .fenceBroker(try BrokerAndEpoch.decode(from: &reader))
        case .unfenceBroker: return .unfenceBroker(try BrokerAndEpoch.decode(from: &reader))
        case .beginControlledShutdown: return .beginControlledShutdown(try BrokerAndEpoch.decode(from: &reader))
        case .topic: return .topic(try TopicRecord.decode(from: &reader))
        case .partition: return .partition(try PartitionRecord.decode(from: &reader))
        case .partitionChange: return .partitionChange(try PartitionChangeRecord.decode(from: &reader, version: version))
        case .producerIDBlock: return .producerIDBlock(try ProducerIDBlockRecord.decode(from: &reader))
        case .removeTopic: return .removeTopic(RemoveTopicRecord(topicID: try reader.readUUID()))
        case .config: return .config(try ConfigRecord.decode(from: &reader))
        }
    }
}

extension BrokerEndpoint {
    func encode(into writer: inout ByteWriter) {
        writer.writeCompactString(listenerName)
        writer.writeCompactString(host)
        writer.writeInteger(port)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> BrokerEndpoint {
        let listenerName = try reader.readCompactString()
        let host = try reader.readCompactString()
        let port = try reader.readInteger(UInt16.self)
        return BrokerEndpoint(listenerName: listenerName, host: host, port: port)
    }

    /// Two empty strings and a port.
    static let minimumEncodedBytes = 4
}

extension BrokerRegistrationRecord {
    func encode(into writer: inout ByteWriter) {
        writer.writeNodeID(brokerID)
        writer.writeInt64(brokerEpoch.rawValue)
        writer.writeUUID(incarnationID)
        writer.writeList(endpoints) { writer, endpoint in endpoint.encode(into: &writer) }
        writer.writeOptionalString(rack)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> BrokerRegistrationRecord {
        let brokerID = try reader.readNodeID()
        let brokerEpoch = BrokerEpoch(try reader.readInt64())
        let incarnationID: IncarnationID = try reader.readUUID()
        let endpoints = try reader.readList(minimumElementBytes: BrokerEndpoint.minimumEncodedBytes) {
            (reader: inout ByteReader) throws(DecodeError) in try BrokerEndpoint.decode(from: &reader)
        }
        let rack = try reader.readOptionalString()
        return BrokerRegistrationRecord(brokerID: brokerID, brokerEpoch: brokerEpoch, incarnationID: incarnationID,
                                        endpoints: endpoints, rack: rack)
    }
}

extension BrokerAndEpoch {
    func encode(into writer: inout ByteWriter) {
        writer.writeNodeID(brokerID)
        writer.writeInt64(brokerEpoch.rawValue)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> BrokerAndEpoch {
        let brokerID = try reader.readNodeID()
        let brokerEpoch = BrokerEpoch(try reader.readInt64())
        return BrokerAndEpoch(brokerID: brokerID, brokerEpoch: brokerEpoch)
    }
}

extension ConfigEntry {
    func encode(into writer: inout ByteWriter) {
        writer.writeCompactString(name)
        writer.writeCompactString(value)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> ConfigEntry {
        let name = try reader.readCompactString()
        let value = try reader.readCompactString()
        return ConfigEntry(name: name, value: value)
    }

    static func readList(from reader: inout ByteReader) throws(DecodeError) -> [ConfigEntry] {
        try reader.readList(minimumElementBytes: 2) { (reader: inout ByteReader) throws(DecodeError) in
            try ConfigEntry.decode(from: &reader)
        }
    }
}

extension TopicRecord {
    func encode(into writer: inout ByteWriter) {
        writer.writeCompactString(name)
        writer.writeUUID(topicID)
        writer.writeList(configs) { writer, entry in entry.encode(into: &writer) }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TopicRecord {
        let name = try reader.readCompactString()
        let topicID: TopicID = try reader.readUUID()
        let configs = try ConfigEntry.readList(from: &reader)
        return TopicRecord(name: name, topicID: topicID, configs: configs)
    }
}

extension PartitionRecord {
    func encode(into writer: inout ByteWriter) {
        writer.writeUUID(topicID)
        writer.writeInt32(partition)
        writer.writeNodeIDs(replicas)
        writer.writeNodeIDs(isr)
        writer.writeOptionalNodeID(leader)
        writer.writeInt32(leaderEpoch.rawValue)
        writer.writeInt32(partitionEpoch.rawValue)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> PartitionRecord {
        let topicID: TopicID = try reader.readUUID()
        let partition = try reader.readInt32()
        let replicas = try reader.readNodeIDs()
        let isr = try reader.readNodeIDs()
        let leader = try reader.readOptionalNodeID()
        let leaderEpoch = LeaderEpoch(try reader.readInt32())
        let partitionEpoch = PartitionEpoch(try reader.readInt32())
        return PartitionRecord(topicID: topicID, partition: partition, replicas: replicas, isr: isr, leader: leader,
                               leaderEpoch: leaderEpoch, partitionEpoch: partitionEpoch)
    }
}

extension LeaderChange {
    func encode(into writer: inout ByteWriter) {
        switch self {
        case .unchanged: writer.writeUInt8(0)
        case .none: writer.writeUInt8(1)
        case let .elected(node):
            writer.writeUInt8(2)
            writer.writeNodeID(node)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> LeaderChange {
        let start = reader.position
        switch try reader.readUInt8() {
        case 0: return .unchanged
        case 1: return .none
        case 2: return .elected(try reader.readNodeID())
        case let tag: throw .invalidValue(position: start, reason: "unknown leader change tag \(tag)")
        }
    }
}

extension PartitionChangeRecord {
    func encode(into writer: inout ByteWriter) {
        writer.writeUUID(topicID)
        writer.writeInt32(partition)
        leader.encode(into: &writer)
        writer.writeOptionalList(isr) { writer, node in writer.writeNodeID(node) }
        writer.writeOptionalList(replicas) { writer, node in writer.writeNodeID(node) }
        writer.writeInt32(leaderEpoch.rawValue)
        writer.writeInt32(partitionEpoch.rawValue)
        writer.writeOptionalList(addingReplicas) { writer, node in writer.writeNodeID(node) }
        writer.writeOptionalList(removingReplicas) { writer, node in writer.writeNodeID(node) }
        writer.writeOptionalList(dataLoss) { writer, loss in loss.encode(into: &writer) }
    }

    /// Version 0 records (before data-loss marks) leave the losses unchanged.
    static func decode(from reader: inout ByteReader, version: UInt32) throws(DecodeError) -> PartitionChangeRecord {
        let topicID: TopicID = try reader.readUUID()
        let partition = try reader.readInt32()
        let leader = try LeaderChange.decode(from: &reader)
        let isr = try reader.readOptionalList(minimumElementBytes: 4) { (reader: inout ByteReader) throws(DecodeError) in try reader.readNodeID() }
        let replicas = try reader.readOptionalList(minimumElementBytes: 4) { (reader: inout ByteReader) throws(DecodeError) in try reader.readNodeID() }
        let leaderEpoch = LeaderEpoch(try reader.readInt32())
        let partitionEpoch = PartitionEpoch(try reader.readInt32())
        let adding = try reader.readOptionalList(minimumElementBytes: 4) { (reader: inout ByteReader) throws(DecodeError) in try reader.readNodeID() }
        let removing = try reader.readOptionalList(minimumElementBytes: 4) { (reader: inout ByteReader) throws(DecodeError) in try reader.readNodeID() }
        let dataLoss = version >= 1
            ? try reader.readOptionalList(minimumElementBytes: ReplicaDataLoss.encodedBytes) { (reader: inout ByteReader) throws(DecodeError) in
                try ReplicaDataLoss.decode(from: &reader)
            }
            : nil
        return PartitionChangeRecord(topicID: topicID, partition: partition, leader: leader, isr: isr, replicas: replicas,
                                     leaderEpoch: leaderEpoch, partitionEpoch: partitionEpoch,
                                     addingReplicas: adding, removingReplicas: removing, dataLoss: dataLoss)
    }
}

extension ReplicaDataLoss {
    static let encodedBytes = 16

    func encode(into writer: inout ByteWriter) {
        writer.writeNodeID(broker)
        writer.writeInt64(firstLostOffset.rawValue)
        writer.writeInt32(markedAt.rawValue)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> ReplicaDataLoss {
        let broker = try reader.readNodeID()
        let offset = Offset(try reader.readInt64())
        let markedAt = PartitionEpoch(try reader.readInt32())
        return ReplicaDataLoss(broker: broker, firstLostOffset: offset, markedAt: markedAt)
    }
}

extension ProducerIDBlockRecord {
    func encode(into writer: inout ByteWriter) {
        writer.writeNodeID(brokerID)
        writer.writeInt64(brokerEpoch.rawValue)
        writer.writeInt64(blockStart.rawValue)
        writer.writeInt64(blockSize)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> ProducerIDBlockRecord {
        let brokerID = try reader.readNodeID()
        let brokerEpoch = BrokerEpoch(try reader.readInt64())
        let blockStart = ProducerID(try reader.readInt64())
        let blockSize = try reader.readInt64()
        return ProducerIDBlockRecord(brokerID: brokerID, brokerEpoch: brokerEpoch, blockStart: blockStart, blockSize: blockSize)
    }
}

extension ConfigResource {
    func encode(into writer: inout ByteWriter) {
        switch self {
        case .cluster: writer.writeUInt8(0)
        case let .broker(node):
            writer.writeUInt8(1)
            writer.writeNodeID(node)
        case let .topic(name):
            writer.writeUInt8(2)
            writer.writeCompactString(name)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> ConfigResource {
        let start = reader.position
        switch try reader.readUInt8() {
        case 0: return .cluster
        case 1: return .broker(try reader.readNodeID())
        case 2: return .topic(try reader.readCompactString())
        case let tag: throw .invalidValue(position: start, reason: "unknown config resource tag \(tag)")
        }
    }
}

extension ConfigRecord {
    func encode(into writer: inout ByteWriter) {
        resource.encode(into: &writer)
        writer.writeCompactString(name)
        writer.writeOptionalString(value)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> ConfigRecord {
        let resource = try ConfigResource.decode(from: &reader)
        let name = try reader.readCompactString()
        let value = try reader.readOptionalString()
        return ConfigRecord(resource: resource, name: name, value: value)
    }
}
