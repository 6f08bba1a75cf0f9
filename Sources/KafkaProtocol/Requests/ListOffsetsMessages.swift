import TernCore

/// Kafka's ListOffsets request (API key 2): an offset per partition for a timestamp, or the
/// log's start or end.
public struct ListOffsetsRequest: Equatable, Sendable {
    /// The asking follower; nil for a consumer (Kafka's -1).
    public var replicaID: NodeID?
    /// Under read_committed, "latest" is the last stable offset instead of the high watermark.
    public var isolationLevel: IsolationLevel
    public var topics: [Topic]

    public init(replicaID: NodeID? = nil, isolationLevel: IsolationLevel, topics: [Topic]) {
        self.replicaID = replicaID
        self.isolationLevel = isolationLevel
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
        /// Kafka's special timestamp for the end of the log (high watermark or last stable offset).
        public static let latestTimestamp: Int64 = -1
        /// Kafka's special timestamp for the log start offset.
        public static let earliestTimestamp: Int64 = -2

        public var partitionIndex: Int32
        /// `.none` skips the fencing check.
        public var currentLeaderEpoch: LeaderEpoch
        /// A record timestamp, or `latestTimestamp` / `earliestTimestamp`.
        public var timestampMilliseconds: Int64

        public init(partitionIndex: Int32, currentLeaderEpoch: LeaderEpoch = .none, timestampMilliseconds: Int64) {
            self.partitionIndex = partitionIndex
            self.currentLeaderEpoch = currentLeaderEpoch
            self.timestampMilliseconds = timestampMilliseconds
        }
    }
}

/// Kafka's ListOffsets response.
public struct ListOffsetsResponse: Equatable, Sendable {
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
        /// The found record's timestamp; -1 for the special timestamps.
        public var timestampMilliseconds: Int64
        public var offset: Offset
        /// The epoch of the batch holding `offset`, for the client's truncation checks.
        public var leaderEpoch: LeaderEpoch

        public init(partitionIndex: Int32, errorCode: KafkaErrorCode = .none, timestampMilliseconds: Int64 = -1,
                    offset: Offset = .unknown, leaderEpoch: LeaderEpoch = .none) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.timestampMilliseconds = timestampMilliseconds
            self.offset = offset
            self.leaderEpoch = leaderEpoch
        }
    }
}

// MARK: - Codec

extension ListOffsetsRequest: DataCodable {
    static let minimumEncodedBytes = 4 + 1 + 1

    func encode(into writer: inout ByteWriter) {
        precondition(topics.reduce(0) { $0 + $1.partitions.count } <= DataCodecLimits.maximumPartitionsPerMessage,
                     "more partitions than one message may carry")
        writer.writeOptionalNodeID(replicaID)
        writer.writeInt8(isolationLevel.rawValue)
        writer.writeList(topics, limit: DataCodecLimits.maximumTopicsPerMessage)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        replicaID = try reader.readOptionalNodeID()
        isolationLevel = try reader.readIsolationLevel()
        topics = try reader.readList(limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
    }
}

extension ListOffsetsRequest.Topic: NamedTopic {}

extension ListOffsetsRequest.Partition: DataCodable {
    static let minimumEncodedBytes = 4 + 4 + 8

    func encode(into writer: inout ByteWriter) {
        writer.writeInt32(partitionIndex)
        writer.writeLeaderEpoch(currentLeaderEpoch)
        writer.writeInt64(timestampMilliseconds)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        partitionIndex = try reader.readInt32()
        currentLeaderEpoch = try reader.readLeaderEpoch()
        timestampMilliseconds = try reader.readInt64()
    }
}

extension ListOffsetsResponse: DataCodable {
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

extension ListOffsetsResponse.Topic: NamedTopic {}

extension ListOffsetsResponse.Partition: DataCodable {
    static let minimumEncodedBytes = 4 + 2 + 8 + 8 + 4

    func encode(into writer: inout ByteWriter) {
        writer.writeInt32(partitionIndex)
        writer.writeErrorCode(errorCode)
        writer.writeInt64(timestampMilliseconds)
        writer.writeOffset(offset)
        writer.writeLeaderEpoch(leaderEpoch)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        partitionIndex = try reader.readInt32()
        errorCode = try reader.readErrorCode()
        timestampMilliseconds = try reader.readInt64()
        offset = try reader.readOffset()
        leaderEpoch = try reader.readLeaderEpoch()
    }
}
