import TernCore

/// Kafka's OffsetForLeaderEpoch request (API key 23): where a leader's log ends for an epoch, so
/// a follower or a consumer can find where its log diverged.
public struct OffsetForLeaderEpochRequest: Equatable, Sendable {
    /// The asking follower; nil for a consumer (Kafka's -1; its -2 "debug" id maps to nil as well).
    public var replicaID: NodeID?
    public var topics: [Topic]

    public init(replicaID: NodeID? = nil, topics: [Topic]) {
        self.replicaID = replicaID
        self.topics = topics
    }

    public struct Topic: Equatable, Sendable {
        public var name: String
        public var partitions: [Partition]
        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    public struct Partition: Equatable, Sendable {
        public var partitionIndex: Int32
        /// The asker's view of the leader epoch; `.none` skips the fencing check.
        public var currentLeaderEpoch: LeaderEpoch
        /// The epoch whose end offset is asked for.
        public var leaderEpoch: LeaderEpoch

        public init(partitionIndex: Int32, currentLeaderEpoch: LeaderEpoch = .none, leaderEpoch: LeaderEpoch) {
            self.partitionIndex = partitionIndex
            self.currentLeaderEpoch = currentLeaderEpoch
            self.leaderEpoch = leaderEpoch
        }
    }
}

/// Kafka's OffsetForLeaderEpoch response.
public struct OffsetForLeaderEpochResponse: Equatable, Sendable {
    public var topics: [Topic]

    public init(topics: [Topic]) { self.topics = topics }

    public struct Topic: Equatable, Sendable {
        public var name: String
        public var partitions: [Partition]
        public init(name: String, partitions: [Partition]) {
            self.name = name
            self.partitions = partitions
        }
    }

    public struct Partition: Equatable, Sendable {
        public var partitionIndex: Int32
        public var errorCode: KafkaErrorCode
        /// The largest epoch the leader knows at or below the requested one (`.none` if none).
        public var leaderEpoch: LeaderEpoch
        /// The start offset of the next higher epoch, or the log end offset for the current one.
        public var endOffset: Offset

        public init(partitionIndex: Int32, errorCode: KafkaErrorCode = .none, leaderEpoch: LeaderEpoch = .none,
                    endOffset: Offset = .unknown) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.leaderEpoch = leaderEpoch
            self.endOffset = endOffset
        }
    }
}

// MARK: - Codec

extension OffsetForLeaderEpochRequest: DataCodable {
    static let minimumEncodedBytes = 4 + 1

    func encode(into writer: inout ByteWriter) {
        precondition(topics.reduce(0) { $0 + $1.partitions.count } <= DataCodecLimits.maximumPartitionsPerMessage,
                     "more partitions than one message may carry")
        writer.writeOptionalNodeID(replicaID)
        writer.writeList(topics, limit: DataCodecLimits.maximumTopicsPerMessage)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        replicaID = try reader.readOptionalNodeID()
        topics = try reader.readList(limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
    }
}

extension OffsetForLeaderEpochRequest.Topic: NamedTopic {}

extension OffsetForLeaderEpochRequest.Partition: DataCodable {
    static let minimumEncodedBytes = 4 + 4 + 4

    func encode(into writer: inout ByteWriter) {
        writer.writeInt32(partitionIndex)
        writer.writeLeaderEpoch(currentLeaderEpoch)
        writer.writeLeaderEpoch(leaderEpoch)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        partitionIndex = try reader.readInt32()
        currentLeaderEpoch = try reader.readLeaderEpoch()
        leaderEpoch = try reader.readLeaderEpoch()
    }
}

extension OffsetForLeaderEpochResponse: DataCodable {
    static let minimumEncodedBytes = 1

    func encode(into writer: inout ByteWriter) {
        precondition(topics.reduce(0) { $0 + $1.partitions.count } <= DataCodecLimits.maximumPartitionsPerMessage,
                     "more partitions than one message may carry")
        writer.writeList(topics, limit: DataCodecLimits.maximumTopicsPerMessage)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        topics = try reader.readList(limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
    }
}

extension OffsetForLeaderEpochResponse.Topic: NamedTopic {}

extension OffsetForLeaderEpochResponse.Partition: DataCodable {
    static let minimumEncodedBytes = 4 + 2 + 4 + 8

    func encode(into writer: inout ByteWriter) {
        writer.writeInt32(partitionIndex)
        writer.writeErrorCode(errorCode)
        writer.writeLeaderEpoch(leaderEpoch)
        writer.writeOffset(endOffset)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        partitionIndex = try reader.readInt32()
        errorCode = try reader.readErrorCode()
        leaderEpoch = try reader.readLeaderEpoch()
        endOffset = try reader.readOffset()
    }
}
