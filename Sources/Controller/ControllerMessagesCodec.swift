import TernCore

// A controller request or response on the wire (the transport frames it and matches replies to
// requests; this is the body):
//   api key   unsigned varint (ControllerAPIKey)
//   version   unsigned varint (this build writes and reads version 0 of every message)
//   fields    per message, in declaration order (encodings in ControllerCodecSupport.swift)

/// The number each controller API travels under. Numbers are forever: never reuse one.
public enum ControllerAPIKey: UInt32, Sendable, CaseIterable {
    case brokerRegistration = 1
    case brokerHeartbeat = 2
    case alterPartition = 3
    case allocateProducerIDs = 4
    case createTopics = 5
    case createPartitions = 6
    case deleteTopics = 7
    case electLeaders = 8
    case alterConfigs = 9
    case alterPartitionReassignments = 10
}

/// The newest message version this build writes and reads.
public let controllerMessageVersion: UInt32 = 0

extension ControllerRequest {
    public var apiKey: ControllerAPIKey {
        switch self {
        case .brokerRegistration: return .brokerRegistration
        case .brokerHeartbeat: return .brokerHeartbeat
        case .alterPartition: return .alterPartition
        case .allocateProducerIDs: return .allocateProducerIDs
        case .createTopics: return .createTopics
        case .createPartitions: return .createPartitions
        case .deleteTopics: return .deleteTopics
        case .electLeaders: return .electLeaders
        case .alterConfigs: return .alterConfigs
        case .alterPartitionReassignments: return .alterPartitionReassignments
        }
    }

    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        writer.writeUnsignedVarint(apiKey.rawValue)
        writer.writeUnsignedVarint(controllerMessageVersion)
        switch self {
        case let .brokerRegistration(request): request.encode(into: &writer)
        case let .brokerHeartbeat(request): request.encode(into: &writer)
        case let .alterPartition(request): request.encode(into: &writer)
        case let .allocateProducerIDs(request):
            writer.writeNodeID(request.brokerID)
            writer.writeInt64(request.brokerEpoch.rawValue)
        case let .createTopics(request): request.encode(into: &writer)
        case let .createPartitions(request): request.encode(into: &writer)
        case let .deleteTopics(request): writer.writeList(request.names) { writer, name in writer.writeCompactString(name) }
        case let .electLeaders(request): request.encode(into: &writer)
        case let .alterConfigs(request): request.encode(into: &writer)
        case let .alterPartitionReassignments(request): request.encode(into: &writer)
        }
        return writer.take()
    }

    /// Exactly one request filling `bytes`; never traps on malformed input.
    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        var reader = ByteReader(bytes)
        let apiKey = try readAPIKey(from: &reader)
        switch apiKey {
        case .brokerRegistration: self = .brokerRegistration(try BrokerRegistrationRequest.decode(from: &reader))
        case .brokerHeartbeat: self = .brokerHeartbeat(try BrokerHeartbeatRequest.decode(from: &reader))
        case .alterPartition: self = .alterPartition(try AlterPartitionRequest.decode(from: &reader))
        case .allocateProducerIDs:
            let brokerID = try reader.readNodeID()
            let brokerEpoch = BrokerEpoch(try reader.readInt64())
            self = .allocateProducerIDs(AllocateProducerIDsRequest(brokerID: brokerID, brokerEpoch: brokerEpoch))
        case .createTopics: self = .createTopics(try CreateTopicsRequest.decode(from: &reader))
        case .createPartitions: self = .createPartitions(try CreatePartitionsRequest.decode(from: &reader))
        case .deleteTopics:
            let names = try reader.readList(minimumElementBytes: 1) { (reader: inout ByteReader) throws(DecodeError) in
                try reader.readCompactString()
            }
            self = .deleteTopics(DeleteTopicsRequest(names: names))
        case .electLeaders: self = .electLeaders(try ElectLeadersRequest.decode(from: &reader))
        case .alterConfigs: self = .alterConfigs(try AlterConfigsRequest.decode(from: &reader))
        case .alterPartitionReassignments:
            self = .alterPartitionReassignments(try AlterPartitionReassignmentsRequest.decode(from: &reader))
        }
        try reader.requireEnd(of: "controller request")
    }
}

extension ControllerResponse {
    public var apiKey: ControllerAPIKey {
        switch self {
        case .brokerRegistration: return .brokerRegistration
        case .brokerHeartbeat: return .brokerHeartbeat
        case .alterPartition: return .alterPartition
        case .allocateProducerIDs: return .allocateProducerIDs
        case .createTopics: return .createTopics
        case .createPartitions: return .createPartitions
        case .deleteTopics: return .deleteTopics
        case .electLeaders: return .electLeaders
        case .alterConfigs: return .alterConfigs
        case .alterPartitionReassignments: return .alterPartitionReassignments
        }
    }

    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: 64)
        writer.writeUnsignedVarint(apiKey.rawValue)
        writer.writeUnsignedVarint(controllerMessageVersion)
        switch self {
        case let .brokerRegistration(response):
            writer.writeErrorCode(response.error)
            writer.writeInt64(response.brokerEpoch.rawValue)
        case let .brokerHeartbeat(response):
            writer.writeErrorCode(response.error)
            writer.writeBool(response.isCaughtUp)
            writer.writeBool(response.isFenced)
            writer.writeBool(response.shouldShutDown)
        case let .alterPartition(response): response.encode(into: &writer)
        case let .allocateProducerIDs(response):
            writer.writeErrorCode(response.error)
            writer.writeInt64(response.blockStart.rawValue)
            writer.writeInt64(response.blockSize)
        case let .createTopics(response): response.encode(into: &writer)
        case let .createPartitions(response): writer.writeList(response.topics) { writer, result in result.encode(into: &writer) }
        case let .deleteTopics(response): response.encode(into: &writer)
        case let .electLeaders(response): response.encode(into: &writer)
        case let .alterConfigs(response): response.encode(into: &writer)
        case let .alterPartitionReassignments(response):
            ElectLeadersResponse(partitions: response.partitions).encode(into: &writer)
        }
        return writer.take()
    }

    /// Exactly one response filling `bytes`; never traps on malformed input.
    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        var reader = ByteReader(bytes)
        let apiKey = try readAPIKey(from: &reader)
        switch apiKey {
        case .brokerRegistration:
            let error = try reader.readErrorCode()
            let epoch = BrokerEpoch(try reader.readInt64())
            self = .brokerRegistration(BrokerRegistrationResponse(error: error, brokerEpoch: epoch))
        case .brokerHeartbeat:
            let error = try reader.readErrorCode()
            let isCaughtUp = try reader.readBool()
            let isFenced = try reader.readBool()
            let shouldShutDown = try reader.readBool()
            self = .brokerHeartbeat(BrokerHeartbeatResponse(error: error, isCaughtUp: isCaughtUp, isFenced: isFenced,
                                                            shouldShutDown: shouldShutDown))
        case .alterPartition: self = .alterPartition(try AlterPartitionResponse.decode(from: &reader))
        case .allocateProducerIDs:
            let error = try reader.readErrorCode()
            let start = ProducerID(try reader.readInt64())
            let size = try reader.readInt64()
            self = .allocateProducerIDs(AllocateProducerIDsResponse(error: error, blockStart: start, blockSize: size))
        case .createTopics: self = .createTopics(try CreateTopicsResponse.decode(from: &reader))
        case .createPartitions:
            let topics = try reader.readList(minimumElementBytes: 4) { (reader: inout ByteReader) throws(DecodeError) in
                try AdminResult.decode(from: &reader)
            }
            self = .createPartitions(CreatePartitionsResponse(topics: topics))
        case .deleteTopics: self = .deleteTopics(try DeleteTopicsResponse.decode(from: &reader))
        case .electLeaders: self = .electLeaders(try ElectLeadersResponse.decode(from: &reader))
        case .alterConfigs: self = .alterConfigs(try AlterConfigsResponse.decode(from: &reader))
        case .alterPartitionReassignments:
            self = .alterPartitionReassignments(AlterPartitionReassignmentsResponse(
                partitions: try ElectLeadersResponse.decode(from: &reader).partitions))
        }
        try reader.requireEnd(of: "controller response")
    }
}

private func readAPIKey(from reader: inout ByteReader) throws(DecodeError) -> ControllerAPIKey {
    let start = reader.position
    let raw = try reader.readUnsignedVarint()
    guard let apiKey = ControllerAPIKey(rawValue: raw) else {
        throw .invalidValue(position: start, reason: "unknown controller api key \(raw)")
    }
    _ = try reader.readVersion(supported: controllerMessageVersion, of: "controller message")
    return apiKey
}

extension ByteWriter {
    mutating func writeErrorCode(_ code: ControllerErrorCode) { writeInt16(code.rawValue) }
}

extension ByteReader {
    mutating func readErrorCode() throws(DecodeError) -> ControllerErrorCode {
        let start = position
        let raw = try readInt16()
        guard let code = ControllerErrorCode(rawValue: raw) else {
            throw .invalidValue(position: start, reason: "unknown controller error code \(raw)")
        }
        return code
    }

    mutating func readAssignments() throws(DecodeError) -> [[NodeID]] {
        try readList(minimumElementBytes: 1) { (reader: inout ByteReader) throws(DecodeError) in try reader.readNodeIDs() }
    }
}

// MARK: Requests

extension BrokerRegistrationRequest {
    func encode(into writer: inout ByteWriter) {
        writer.writeNodeID(brokerID)
        writer.writeCompactString(clusterID)
        writer.writeUUID(incarnationID)
        writer.writeList(endpoints) { writer, endpoint in endpoint.encode(into: &writer) }
        writer.writeOptionalString(rack)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> BrokerRegistrationRequest {
        let brokerID = try reader.readNodeID()
        let clusterID = try reader.readCompactString()
        let incarnationID: IncarnationID = try reader.readUUID()
        let endpoints = try reader.readList(minimumElementBytes: BrokerEndpoint.minimumEncodedBytes) {
            (reader: inout ByteReader) throws(DecodeError) in try BrokerEndpoint.decode(from: &reader)
        }
        let rack = try reader.readOptionalString()
        return BrokerRegistrationRequest(brokerID: brokerID, clusterID: clusterID, incarnationID: incarnationID,
                                         endpoints: endpoints, rack: rack)
    }
}

extension BrokerHeartbeatRequest {
    func encode(into writer: inout ByteWriter) {
        writer.writeNodeID(brokerID)
        writer.writeInt64(brokerEpoch.rawValue)
        writer.writeInt64(metadataOffset.rawValue)
        writer.writeBool(wantFence)
        writer.writeBool(wantShutDown)
        writer.writeList(dataLosses) { writer, loss in
            writer.writeUUID(loss.replica.topicID)
            writer.writeInt32(loss.replica.partition)
            writer.writeInt64(loss.firstLostOffset.rawValue)
            writer.writeInt32(loss.acknowledgedLoss.rawValue)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> BrokerHeartbeatRequest {
        let brokerID = try reader.readNodeID()
        let brokerEpoch = BrokerEpoch(try reader.readInt64())
        let metadataOffset = Offset(try reader.readInt64())
        let wantFence = try reader.readBool()
        let wantShutDown = try reader.readBool()
        let dataLosses = try reader.readList(minimumElementBytes: 32) { (reader: inout ByteReader) throws(DecodeError) in
            let replica = ReplicaReference(topicID: try reader.readUUID(), partition: try reader.readInt32())
            let firstLostOffset = Offset(try reader.readInt64())
            let acknowledgedLoss = PartitionEpoch(try reader.readInt32())
            return ReplicaDataLossReport(replica: replica, firstLostOffset: firstLostOffset, acknowledgedLoss: acknowledgedLoss)
        }
        return BrokerHeartbeatRequest(brokerID: brokerID, brokerEpoch: brokerEpoch, metadataOffset: metadataOffset,
                                      wantFence: wantFence, wantShutDown: wantShutDown, dataLosses: dataLosses)
    }
}

extension AlterPartitionRequest {
    func encode(into writer: inout ByteWriter) {
        writer.writeNodeID(brokerID)
        writer.writeInt64(brokerEpoch.rawValue)
        writer.writeList(partitions) { writer, partition in
            writer.writeUUID(partition.topicID)
            writer.writeInt32(partition.partition)
            writer.writeInt32(partition.leaderEpoch.rawValue)
            writer.writeInt32(partition.partitionEpoch.rawValue)
            writer.writeList(partition.newISR) { writer, member in
                writer.writeNodeID(member.brokerID)
                writer.writeInt64(member.brokerEpoch.rawValue)
                writer.writeInt32(member.acknowledgedLoss.rawValue)
            }
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> AlterPartitionRequest {
        let brokerID = try reader.readNodeID()
        let brokerEpoch = BrokerEpoch(try reader.readInt64())
        let partitions = try reader.readList(minimumElementBytes: 29) { (reader: inout ByteReader) throws(DecodeError) in
            let topicID: TopicID = try reader.readUUID()
            let partition = try reader.readInt32()
            let leaderEpoch = LeaderEpoch(try reader.readInt32())
            let partitionEpoch = PartitionEpoch(try reader.readInt32())
            let newISR = try reader.readList(minimumElementBytes: 16) { (reader: inout ByteReader) throws(DecodeError) in
                let member = try reader.readNodeID()
                let epoch = BrokerEpoch(try reader.readInt64())
                let acknowledgedLoss = PartitionEpoch(try reader.readInt32())
                return ISRMember(brokerID: member, brokerEpoch: epoch, acknowledgedLoss: acknowledgedLoss)
            }
            return Partition(topicID: topicID, partition: partition, leaderEpoch: leaderEpoch,
                             partitionEpoch: partitionEpoch, newISR: newISR)
        }
        return AlterPartitionRequest(brokerID: brokerID, brokerEpoch: brokerEpoch, partitions: partitions)
    }
}

extension CreateTopicsRequest {
    func encode(into writer: inout ByteWriter) {
        writer.writeList(topics) { writer, topic in
            writer.writeCompactString(topic.name)
            writer.writeInt32(topic.partitionCount)
            writer.writeInt16(topic.replicationFactor)
            writer.writeList(topic.assignments) { writer, replicas in writer.writeNodeIDs(replicas) }
            writer.writeList(topic.configs) { writer, entry in entry.encode(into: &writer) }
        }
        writer.writeBool(validateOnly)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> CreateTopicsRequest {
        let topics = try reader.readList(minimumElementBytes: 9) { (reader: inout ByteReader) throws(DecodeError) in
            let name = try reader.readCompactString()
            let partitionCount = try reader.readInt32()
            let replicationFactor = try reader.readInt16()
            let assignments = try reader.readAssignments()
            let configs = try ConfigEntry.readList(from: &reader)
            return Topic(name: name, partitionCount: partitionCount, replicationFactor: replicationFactor,
                         assignments: assignments, configs: configs)
        }
        let validateOnly = try reader.readBool()
        return CreateTopicsRequest(topics: topics, validateOnly: validateOnly)
    }
}

extension CreatePartitionsRequest {
    func encode(into writer: inout ByteWriter) {
        writer.writeList(topics) { writer, topic in
            writer.writeCompactString(topic.name)
            writer.writeInt32(topic.totalCount)
            writer.writeList(topic.assignments) { writer, replicas in writer.writeNodeIDs(replicas) }
        }
        writer.writeBool(validateOnly)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> CreatePartitionsRequest {
        let topics = try reader.readList(minimumElementBytes: 6) { (reader: inout ByteReader) throws(DecodeError) in
            let name = try reader.readCompactString()
            let totalCount = try reader.readInt32()
            let assignments = try reader.readAssignments()
            return Topic(name: name, totalCount: totalCount, assignments: assignments)
        }
        let validateOnly = try reader.readBool()
        return CreatePartitionsRequest(topics: topics, validateOnly: validateOnly)
    }
}

extension TopicPartition {
    func encode(into writer: inout ByteWriter) {
        writer.writeCompactString(topic)
        writer.writeInt32(partition)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> TopicPartition {
        let topic = try reader.readCompactString()
        let partition = try reader.readInt32()
        return TopicPartition(topic: topic, partition: partition)
    }
}

extension AlterPartitionReassignmentsRequest {
    func encode(into writer: inout ByteWriter) {
        writer.writeList(reassignments) { writer, item in
            item.topicPartition.encode(into: &writer)
            writer.writeOptionalList(item.targetReplicas) { writer, node in writer.writeNodeID(node) }
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> AlterPartitionReassignmentsRequest {
        let items = try reader.readList(minimumElementBytes: 6) { (reader: inout ByteReader) throws(DecodeError) in
            let topicPartition = try TopicPartition.decode(from: &reader)
            let target = try reader.readOptionalList(minimumElementBytes: 4) { (reader: inout ByteReader) throws(DecodeError) in
                try reader.readNodeID()
            }
            return Reassignment(topicPartition: topicPartition, targetReplicas: target)
        }
        return AlterPartitionReassignmentsRequest(reassignments: items)
    }
}

extension ElectLeadersRequest {
    func encode(into writer: inout ByteWriter) {
        writer.writeUInt8(electionType.rawValue)
        writer.writeOptionalList(partitions) { writer, partition in partition.encode(into: &writer) }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> ElectLeadersRequest {
        let start = reader.position
        let rawType = try reader.readUInt8()
        guard let electionType = ElectionType(rawValue: rawType) else {
            throw .invalidValue(position: start, reason: "unknown election type \(rawType)")
        }
        let partitions = try reader.readOptionalList(minimumElementBytes: 5) { (reader: inout ByteReader) throws(DecodeError) in
            try TopicPartition.decode(from: &reader)
        }
        return ElectLeadersRequest(electionType: electionType, partitions: partitions)
    }
}

extension AlterConfigsRequest {
    func encode(into writer: inout ByteWriter) {
        writer.writeList(resources) { writer, resource in
            resource.resource.encode(into: &writer)
            writer.writeList(resource.changes) { writer, change in
                writer.writeCompactString(change.name)
                writer.writeOptionalString(change.value)
            }
        }
        writer.writeBool(validateOnly)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> AlterConfigsRequest {
        let resources = try reader.readList(minimumElementBytes: 2) { (reader: inout ByteReader) throws(DecodeError) in
            let resource = try ConfigResource.decode(from: &reader)
            let changes = try reader.readList(minimumElementBytes: 2) { (reader: inout ByteReader) throws(DecodeError) in
                let name = try reader.readCompactString()
                let value = try reader.readOptionalString()
                return ConfigChange(name: name, value: value)
            }
            return Resource(resource: resource, changes: changes)
        }
        let validateOnly = try reader.readBool()
        return AlterConfigsRequest(resources: resources, validateOnly: validateOnly)
    }
}

// MARK: Responses

extension AlterPartitionResponse {
    func encode(into writer: inout ByteWriter) {
        writer.writeErrorCode(error)
        writer.writeList(partitions) { writer, result in
            writer.writeUUID(result.topicID)
            writer.writeInt32(result.partition)
            writer.writeErrorCode(result.error)
            writer.writeOptionalNodeID(result.leader)
            writer.writeInt32(result.leaderEpoch.rawValue)
            writer.writeNodeIDs(result.isr)
            writer.writeInt32(result.partitionEpoch.rawValue)
            writer.writeList(result.dataLoss) { writer, loss in loss.encode(into: &writer) }
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> AlterPartitionResponse {
        let error = try reader.readErrorCode()
        let partitions = try reader.readList(minimumElementBytes: 36) { (reader: inout ByteReader) throws(DecodeError) in
            let topicID: TopicID = try reader.readUUID()
            let partition = try reader.readInt32()
            let error = try reader.readErrorCode()
            let leader = try reader.readOptionalNodeID()
            let leaderEpoch = LeaderEpoch(try reader.readInt32())
            let isr = try reader.readNodeIDs()
            let partitionEpoch = PartitionEpoch(try reader.readInt32())
            let dataLoss = try reader.readList(minimumElementBytes: ReplicaDataLoss.encodedBytes) {
                (reader: inout ByteReader) throws(DecodeError) in try ReplicaDataLoss.decode(from: &reader)
            }
            return PartitionResult(topicID: topicID, partition: partition, error: error, leader: leader,
                                   leaderEpoch: leaderEpoch, isr: isr, partitionEpoch: partitionEpoch, dataLoss: dataLoss)
        }
        return AlterPartitionResponse(error: error, partitions: partitions)
    }
}

extension CreateTopicsResponse {
    func encode(into writer: inout ByteWriter) {
        writer.writeList(topics) { writer, result in
            writer.writeCompactString(result.name)
            writer.writeUUID(result.topicID)
            writer.writeErrorCode(result.error)
            writer.writeOptionalString(result.message)
            writer.writeInt32(result.partitionCount)
            writer.writeInt16(result.replicationFactor)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> CreateTopicsResponse {
        let topics = try reader.readList(minimumElementBytes: 26) { (reader: inout ByteReader) throws(DecodeError) in
            let name = try reader.readCompactString()
            let topicID: TopicID = try reader.readUUID()
            let error = try reader.readErrorCode()
            let message = try reader.readOptionalString()
            let partitionCount = try reader.readInt32()
            let replicationFactor = try reader.readInt16()
            return TopicResult(name: name, topicID: topicID, error: error, message: message,
                               partitionCount: partitionCount, replicationFactor: replicationFactor)
        }
        return CreateTopicsResponse(topics: topics)
    }
}

extension AdminResult {
    func encode(into writer: inout ByteWriter) {
        writer.writeCompactString(name)
        writer.writeErrorCode(error)
        writer.writeOptionalString(message)
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> AdminResult {
        let name = try reader.readCompactString()
        let error = try reader.readErrorCode()
        let message = try reader.readOptionalString()
        return AdminResult(name: name, error: error, message: message)
    }
}

extension DeleteTopicsResponse {
    func encode(into writer: inout ByteWriter) {
        writer.writeList(topics) { writer, result in
            writer.writeCompactString(result.name)
            writer.writeUUID(result.topicID)
            writer.writeErrorCode(result.error)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> DeleteTopicsResponse {
        let topics = try reader.readList(minimumElementBytes: 19) { (reader: inout ByteReader) throws(DecodeError) in
            let name = try reader.readCompactString()
            let topicID: TopicID = try reader.readUUID()
            let error = try reader.readErrorCode()
            return TopicResult(name: name, topicID: topicID, error: error)
        }
        return DeleteTopicsResponse(topics: topics)
    }
}

extension ElectLeadersResponse {
    func encode(into writer: inout ByteWriter) {
        writer.writeList(partitions) { writer, result in
            result.topicPartition.encode(into: &writer)
            writer.writeErrorCode(result.error)
            writer.writeOptionalString(result.message)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> ElectLeadersResponse {
        let partitions = try reader.readList(minimumElementBytes: 8) { (reader: inout ByteReader) throws(DecodeError) in
            let topicPartition = try TopicPartition.decode(from: &reader)
            let error = try reader.readErrorCode()
            let message = try reader.readOptionalString()
            return PartitionResult(topicPartition: topicPartition, error: error, message: message)
        }
        return ElectLeadersResponse(partitions: partitions)
    }
}

extension AlterConfigsResponse {
    func encode(into writer: inout ByteWriter) {
        writer.writeList(resources) { writer, result in
            result.resource.encode(into: &writer)
            writer.writeErrorCode(result.error)
            writer.writeOptionalString(result.message)
        }
    }

    static func decode(from reader: inout ByteReader) throws(DecodeError) -> AlterConfigsResponse {
        let resources = try reader.readList(minimumElementBytes: 4) { (reader: inout ByteReader) throws(DecodeError) in
            let resource = try ConfigResource.decode(from: &reader)
            let error = try reader.readErrorCode()
            let message = try reader.readOptionalString()
            return ResourceResult(resource: resource, error: error, message: message)
        }
        return AlterConfigsResponse(resources: resources)
    }
}
