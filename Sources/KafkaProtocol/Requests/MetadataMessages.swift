import TernCore

/// Kafka's Metadata request (API key 3), topics by name.
public struct MetadataRequest: Equatable, Sendable {
    /// The topics asked about; nil asks for all of them (Kafka's null array). An empty list asks
    /// for none, which still answers brokers, cluster id and controller.
    public var topics: [String]?
    /// Create the named topics that do not exist (with the broker's defaults).
    public var allowAutoTopicCreation: Bool

    public init(topics: [String]?, allowAutoTopicCreation: Bool = false) {
        self.topics = topics
        self.allowAutoTopicCreation = allowAutoTopicCreation
    }
}

/// Kafka's Metadata response.
public struct MetadataResponse: Equatable, Sendable {
    public var brokers: [Broker]
    public var clusterID: String?
    /// Where admin clients send CreateTopics and friends; nil (Kafka's -1) stalls them, so a
    /// broker answers some live node.
    public var controllerID: NodeID?
    public var topics: [Topic]

    public init(brokers: [Broker], clusterID: String?, controllerID: NodeID?, topics: [Topic]) {
        self.brokers = brokers
        self.clusterID = clusterID
        self.controllerID = controllerID
        self.topics = topics
    }

    public struct Broker: Equatable, Sendable {
        public var nodeID: NodeID
        public var host: String
        public var port: Int32
        public var rack: String?
        public init(nodeID: NodeID, host: String, port: Int32, rack: String? = nil) {
            self.nodeID = nodeID
            self.host = host
            self.port = port
            self.rack = rack
        }
    }

    public struct Topic: Equatable, Sendable {
        public var errorCode: KafkaErrorCode
        public var name: String
        /// Tern's own topics (consumer offsets, transaction state), hidden from pattern subscriptions.
        public var isInternal: Bool
        public var partitions: [Partition]
        public init(errorCode: KafkaErrorCode = .none, name: String, isInternal: Bool = false, partitions: [Partition]) {
            self.errorCode = errorCode
            self.name = name
            self.isInternal = isInternal
            self.partitions = partitions
        }
    }

    public struct Partition: Equatable, Sendable {
        public var errorCode: KafkaErrorCode
        public var partitionIndex: Int32
        /// nil (Kafka's -1) while the partition is offline.
        public var leaderID: NodeID?
        public var leaderEpoch: LeaderEpoch
        public var replicaNodes: [NodeID]
        public var isrNodes: [NodeID]
        public var offlineReplicas: [NodeID]
        public init(errorCode: KafkaErrorCode = .none, partitionIndex: Int32, leaderID: NodeID?, leaderEpoch: LeaderEpoch,
                    replicaNodes: [NodeID], isrNodes: [NodeID], offlineReplicas: [NodeID] = []) {
            self.errorCode = errorCode
            self.partitionIndex = partitionIndex
            self.leaderID = leaderID
            self.leaderEpoch = leaderEpoch
            self.replicaNodes = replicaNodes
            self.isrNodes = isrNodes
            self.offlineReplicas = offlineReplicas
        }
    }
}

// MARK: - Codec

/// A topic name as a list element.
private struct TopicNameElement: DataCodable {
    static let minimumEncodedBytes = 1
    var name: String

    init(_ name: String) { self.name = name }

    func encode(into writer: inout ByteWriter) { writer.writeTopicName(name) }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        name = try reader.readTopicName()
    }
}

extension MetadataRequest: DataCodable {
    static let minimumEncodedBytes = 1 + 1

    func encode(into writer: inout ByteWriter) {
        writer.writeOptionalList(topics?.map(TopicNameElement.init), limit: DataCodecLimits.maximumTopicsPerMessage)
        writer.writeFlag(allowAutoTopicCreation)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        let names = try reader.readOptionalList(of: TopicNameElement.self, limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
        topics = names?.map(\.name)
        allowAutoTopicCreation = try reader.readFlag()
    }
}

extension MetadataResponse: DataCodable {
    static let minimumEncodedBytes = 1 + 1 + 4 + 1

    func encode(into writer: inout ByteWriter) {
        precondition(topics.reduce(0) { $0 + $1.partitions.count } <= DataCodecLimits.maximumPartitionsPerMessage,
                     "more partitions than one message may carry")
        writer.writeList(brokers, limit: DataCodecLimits.maximumBrokersPerMessage)
        writer.writeOptionalDataString(clusterID)
        writer.writeOptionalNodeID(controllerID)
        writer.writeList(topics, limit: DataCodecLimits.maximumTopicsPerMessage)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        brokers = try reader.readList(limit: DataCodecLimits.maximumBrokersPerMessage, what: "brokers")
        clusterID = try reader.readOptionalString()
        controllerID = try reader.readOptionalNodeID()
        topics = try reader.readList(limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
    }
}

extension MetadataResponse.Broker: DataCodable {
    static let minimumEncodedBytes = 4 + 1 + 4 + 1

    func encode(into writer: inout ByteWriter) {
        writer.writeNodeID(nodeID)
        writer.writeDataString(host)
        writer.writeInt32(port)
        writer.writeOptionalDataString(rack)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        nodeID = try reader.readNodeID()
        host = try reader.readString()
        port = try reader.readInt32()
        rack = try reader.readOptionalString()
    }
}

extension MetadataResponse.Topic: DataCodable {
    static let minimumEncodedBytes = 2 + 1 + 1 + 1

    func encode(into writer: inout ByteWriter) {
        writer.writeErrorCode(errorCode)
        writer.writeTopicName(name)
        writer.writeFlag(isInternal)
        writer.writePartitions(partitions)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        errorCode = try reader.readErrorCode()
        name = try reader.readTopicName()
        isInternal = try reader.readFlag()
        partitions = try reader.readPartitions()
    }
}

extension MetadataResponse.Partition: DataCodable {
    static let minimumEncodedBytes = 2 + 4 + 4 + 4 + 1 + 1 + 1

    func encode(into writer: inout ByteWriter) {
        writer.writeErrorCode(errorCode)
        writer.writeInt32(partitionIndex)
        writer.writeOptionalNodeID(leaderID)
        writer.writeLeaderEpoch(leaderEpoch)
        writer.writeNodeIDs(replicaNodes)
        writer.writeNodeIDs(isrNodes)
        writer.writeNodeIDs(offlineReplicas)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        errorCode = try reader.readErrorCode()
        partitionIndex = try reader.readInt32()
        leaderID = try reader.readOptionalNodeID()
        leaderEpoch = try reader.readLeaderEpoch()
        replicaNodes = try reader.readNodeIDs()
        isrNodes = try reader.readNodeIDs()
        offlineReplicas = try reader.readNodeIDs()
    }
}
