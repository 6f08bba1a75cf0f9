import TernCore

/// Kafka's Produce request (API key 0), the fields Tern uses. Each partition carries whole
/// RecordBatch v2 bytes, opaque here; the leader validates them on append.
public struct ProduceRequest: Equatable, Sendable {
    /// Set by transactional producers; nil for idempotent and plain ones.
    public var transactionalID: String?
    /// 0, 1 or -1 (all), as Kafka carries it; the broker refuses other values (INVALID_REQUIRED_ACKS).
    public var acks: Int16
    public var timeoutMilliseconds: Int32
    public var topics: [Topic]

    public init(transactionalID: String? = nil, acks: Int16, timeoutMilliseconds: Int32, topics: [Topic]) {
        self.transactionalID = transactionalID
        self.acks = acks
        self.timeoutMilliseconds = timeoutMilliseconds
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
        public var records: [UInt8]
        public init(partitionIndex: Int32, records: [UInt8]) {
            self.partitionIndex = partitionIndex
            self.records = records
        }
    }
}

/// Kafka's Produce response.
public struct ProduceResponse: Equatable, Sendable {
    public var topics: [Topic]
    public var throttleTimeMilliseconds: Int32

    public init(topics: [Topic], throttleTimeMilliseconds: Int32 = 0) {
        self.topics = topics
        self.throttleTimeMilliseconds = throttleTimeMilliseconds
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
        public var errorCode: KafkaErrorCode
        /// The offset given to the first record; `.unknown` on error.
        public var baseOffset: Offset
        /// The broker's append time when the topic uses LogAppendTime; -1 with CreateTime.
        public var logAppendTimeMilliseconds: Int64
        public var logStartOffset: Offset

        public init(partitionIndex: Int32, errorCode: KafkaErrorCode, baseOffset: Offset = .unknown,
                    logAppendTimeMilliseconds: Int64 = -1, logStartOffset: Offset = .unknown) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.baseOffset = baseOffset
            self.logAppendTimeMilliseconds = logAppendTimeMilliseconds
            self.logStartOffset = logStartOffset
        }
    }
}

// MARK: - Codec

extension ProduceRequest: DataCodable {
    static let minimumEncodedBytes = 1 + 2 + 4 + 1

    func encode(into writer: inout ByteWriter) {
        precondition(topics.reduce(0) { $0 + $1.partitions.count } <= DataCodecLimits.maximumPartitionsPerMessage,
                     "more partitions than one message may carry")
        writer.writeOptionalDataString(transactionalID)
        writer.writeInt16(acks)
        writer.writeInt32(timeoutMilliseconds)
        writer.writeList(topics, limit: DataCodecLimits.maximumTopicsPerMessage)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        transactionalID = try reader.readOptionalString()
        acks = try reader.readInt16()
        timeoutMilliseconds = try reader.readInt32()
        topics = try reader.readList(limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
    }
}

extension ProduceRequest.Topic: NamedTopic {}

extension ProduceRequest.Partition: DataCodable {
    static let minimumEncodedBytes = 4 + 1

    func encode(into writer: inout ByteWriter) {
        writer.writeInt32(partitionIndex)
        writer.writeRecords(records)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        partitionIndex = try reader.readInt32()
        records = try reader.readRecords()
    }
}

extension ProduceResponse: DataCodable {
    static let minimumEncodedBytes = 1 + 4

    func encode(into writer: inout ByteWriter) {
        precondition(topics.reduce(0) { $0 + $1.partitions.count } <= DataCodecLimits.maximumPartitionsPerMessage,
                     "more partitions than one message may carry")
        writer.writeList(topics, limit: DataCodecLimits.maximumTopicsPerMessage)
        writer.writeInt32(throttleTimeMilliseconds)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        topics = try reader.readList(limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
        throttleTimeMilliseconds = try reader.readInt32()
    }
}

extension ProduceResponse.Topic: NamedTopic {}

extension ProduceResponse.Partition: DataCodable {
    static let minimumEncodedBytes = 4 + 2 + 8 + 8 + 8

    func encode(into writer: inout ByteWriter) {
        writer.writeInt32(partitionIndex)
        writer.writeErrorCode(errorCode)
        writer.writeOffset(baseOffset)
        writer.writeInt64(logAppendTimeMilliseconds)
        writer.writeOffset(logStartOffset)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        partitionIndex = try reader.readInt32()
        errorCode = try reader.readErrorCode()
        baseOffset = try reader.readOffset()
        logAppendTimeMilliseconds = try reader.readInt64()
        logStartOffset = try reader.readOffset()
    }
}
