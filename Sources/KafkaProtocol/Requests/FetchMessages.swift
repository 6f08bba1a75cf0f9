import TernCore

/// Kafka's Fetch request (API key 1), sessionless (Kafka's SessionId 0, epoch -1), topics by name.
/// A follower sets `replicaID` and each partition's `replicaDurableOffset`; a consumer sets neither.
public struct FetchRequest: Equatable, Sendable {
    /// The fetching follower; nil for a consumer (Kafka's -1).
    public var replicaID: NodeID?
    /// The follower's broker epoch (KIP-903 ReplicaEpoch; -1 when unknown): a leader that sees
    /// it change forgets what the previous process of that broker had fetched.
    public var replicaEpoch: BrokerEpoch
    public var maxWaitMilliseconds: Int32
    public var minBytes: Int32
    public var maxBytes: Int32
    public var isolationLevel: IsolationLevel
    public var topics: [Topic]

    public init(replicaID: NodeID? = nil, replicaEpoch: BrokerEpoch = BrokerEpoch(-1), maxWaitMilliseconds: Int32, minBytes: Int32,
                maxBytes: Int32, isolationLevel: IsolationLevel, topics: [Topic]) {
        self.replicaID = replicaID
        self.replicaEpoch = replicaEpoch
        self.maxWaitMilliseconds = maxWaitMilliseconds
        self.minBytes = minBytes
        self.maxBytes = maxBytes
        self.isolationLevel = isolationLevel
        self.topics = topics
    }

    public struct Topic: Equatable, Sendable {
        public var name: String
        /// The id of the topic the fetcher means (Kafka's Fetch v13 `TopicId`): followers send it,
        /// so a leader never answers, or counts the position of, a follower of another topic of
        /// the same name (one deleted and created again). Zero from consumers (Fetch v12 and
        /// before name topics only).
        public var topicID: KafkaUUID
        public var partitions: [Partition]
        public init(name: String, topicID: KafkaUUID = .zero, partitions: [Partition]) {
            self.name = name
            self.topicID = topicID
            self.partitions = partitions
        }
    }

    public struct Partition: Equatable, Sendable {
        public var partitionIndex: Int32
        /// The fetcher's view of the leader epoch; `.none` skips the fencing check.
        public var currentLeaderEpoch: LeaderEpoch
        public var fetchOffset: Offset
        /// The epoch of the follower's last batch, for divergence detection (KIP-320); `.none`
        /// for an empty log or a consumer.
        public var lastFetchedEpoch: LeaderEpoch
        /// The follower's log start offset; `.unknown` from consumers.
        public var logStartOffset: Offset
        public var partitionMaxBytes: Int32
        /// Tern extension: below this offset the follower's log is synced, so the leader may count
        /// it toward the high watermark under the synced durability policy. It is per partition
        /// because each log syncs on its own. `.unknown` from consumers.
        public var replicaDurableOffset: Offset
        /// Tern extension: the recorded data loss of this replica (the partition epoch that recorded
        /// it) whose data the follower has discarded, -1 if none. A fetch naming an older one than
        /// the leader has seen was sent before that discard, and its positions are stale.
        public var replicaAcknowledgedLoss: PartitionEpoch

        public init(partitionIndex: Int32, currentLeaderEpoch: LeaderEpoch = .none, fetchOffset: Offset,
                    lastFetchedEpoch: LeaderEpoch = .none, logStartOffset: Offset = .unknown,
                    partitionMaxBytes: Int32, replicaDurableOffset: Offset = .unknown,
                    replicaAcknowledgedLoss: PartitionEpoch = PartitionEpoch(-1)) {
            self.partitionIndex = partitionIndex
            self.currentLeaderEpoch = currentLeaderEpoch
            self.fetchOffset = fetchOffset
            self.lastFetchedEpoch = lastFetchedEpoch
            self.logStartOffset = logStartOffset
            self.partitionMaxBytes = partitionMaxBytes
            self.replicaDurableOffset = replicaDurableOffset
            self.replicaAcknowledgedLoss = replicaAcknowledgedLoss
        }
    }
}

/// Kafka's Fetch response.
public struct FetchResponse: Equatable, Sendable {
    /// A whole-request error (Kafka v7+); per-partition errors are in the partitions.
    public var errorCode: KafkaErrorCode
    public var topics: [Topic]

    public init(errorCode: KafkaErrorCode = .none, topics: [Topic]) {
        self.errorCode = errorCode
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

    /// KIP-320: where the leader's log ends for `epoch`, the largest of its epochs at or below the
    /// follower's last fetched one; the follower truncates there.
    public struct DivergingEpoch: Equatable, Sendable {
        public var epoch: LeaderEpoch
        public var endOffset: Offset
        public init(epoch: LeaderEpoch, endOffset: Offset) {
            self.epoch = epoch
            self.endOffset = endOffset
        }
    }

    /// The leader as this broker knows it, sent with NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH
    /// so the fetcher need not wait for metadata (KIP-951).
    public struct LeaderHint: Equatable, Sendable {
        public var leaderID: NodeID?
        public var leaderEpoch: LeaderEpoch
        public init(leaderID: NodeID?, leaderEpoch: LeaderEpoch) {
            self.leaderID = leaderID
            self.leaderEpoch = leaderEpoch
        }
    }

    /// An aborted transaction overlapping the returned records; read_committed clients drop the
    /// producer's batches from `firstOffset` to its abort marker.
    public struct AbortedTransaction: Equatable, Sendable {
        public var producerID: ProducerID
        public var firstOffset: Offset
        public init(producerID: ProducerID, firstOffset: Offset) {
            self.producerID = producerID
            self.firstOffset = firstOffset
        }
    }

    public struct Partition: Equatable, Sendable {
        public var partitionIndex: Int32
        public var errorCode: KafkaErrorCode
        public var highWatermark: Offset
        public var lastStableOffset: Offset
        public var logStartOffset: Offset
        /// Tern extension: the leader's log end offset, which a follower answered
        /// OFFSET_OUT_OF_RANGE above it truncates to. `.unknown` for consumers.
        public var leaderLogEndOffset: Offset
        public var divergingEpoch: DivergingEpoch?
        public var currentLeader: LeaderHint?
        /// Empty unless the fetch was read_committed and aborted transactions overlap the records.
        public var abortedTransactions: [AbortedTransaction]
        /// Whole stored batches, byte for byte; empty (never null on Kafka's wire) when there are none.
        public var records: [UInt8]

        public init(partitionIndex: Int32, errorCode: KafkaErrorCode = .none, highWatermark: Offset = .unknown,
                    lastStableOffset: Offset = .unknown, logStartOffset: Offset = .unknown,
                    leaderLogEndOffset: Offset = .unknown, divergingEpoch: DivergingEpoch? = nil,
                    currentLeader: LeaderHint? = nil, abortedTransactions: [AbortedTransaction] = [],
                    records: [UInt8] = []) {
            self.partitionIndex = partitionIndex
            self.errorCode = errorCode
            self.highWatermark = highWatermark
            self.lastStableOffset = lastStableOffset
            self.logStartOffset = logStartOffset
            self.leaderLogEndOffset = leaderLogEndOffset
            self.divergingEpoch = divergingEpoch
            self.currentLeader = currentLeader
            self.abortedTransactions = abortedTransactions
            self.records = records
        }
    }
}

// MARK: - Codec

extension FetchRequest: DataCodable {
    static let minimumEncodedBytes = 4 + 8 + 4 + 4 + 4 + 1 + 1

    func encode(into writer: inout ByteWriter) {
        precondition(topics.reduce(0) { $0 + $1.partitions.count } <= DataCodecLimits.maximumPartitionsPerMessage,
                     "more partitions than one message may carry")
        writer.writeOptionalNodeID(replicaID)
        writer.writeInt64(replicaEpoch.rawValue)
        writer.writeInt32(maxWaitMilliseconds)
        writer.writeInt32(minBytes)
        writer.writeInt32(maxBytes)
        writer.writeInt8(isolationLevel.rawValue)
        writer.writeList(topics, limit: DataCodecLimits.maximumTopicsPerMessage)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        replicaID = try reader.readOptionalNodeID()
        replicaEpoch = BrokerEpoch(try reader.readInt64())
        maxWaitMilliseconds = try reader.readInt32()
        minBytes = try reader.readInt32()
        maxBytes = try reader.readInt32()
        isolationLevel = try reader.readIsolationLevel()
        topics = try reader.readList(limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
    }
}

extension FetchRequest.Topic: DataCodable {
    static let minimumEncodedBytes = 1 + 16 + 1

    func encode(into writer: inout ByteWriter) {
        writer.writeTopicName(name)
        writer.writeInteger(topicID.mostSignificantBits)
        writer.writeInteger(topicID.leastSignificantBits)
        writer.writePartitions(partitions)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        name = try reader.readTopicName()
        topicID = KafkaUUID(mostSignificantBits: UInt64(bitPattern: try reader.readInt64()),
                            leastSignificantBits: UInt64(bitPattern: try reader.readInt64()))
        partitions = try reader.readPartitions()
    }
}

extension FetchRequest.Partition: DataCodable {
    static let minimumEncodedBytes = 4 + 4 + 8 + 4 + 8 + 4 + 8 + 4

    func encode(into writer: inout ByteWriter) {
        writer.writeInt32(partitionIndex)
        writer.writeLeaderEpoch(currentLeaderEpoch)
        writer.writeOffset(fetchOffset)
        writer.writeLeaderEpoch(lastFetchedEpoch)
        writer.writeOffset(logStartOffset)
        writer.writeInt32(partitionMaxBytes)
        writer.writeOffset(replicaDurableOffset)
        writer.writeInt32(replicaAcknowledgedLoss.rawValue)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        partitionIndex = try reader.readInt32()
        currentLeaderEpoch = try reader.readLeaderEpoch()
        fetchOffset = try reader.readOffset()
        lastFetchedEpoch = try reader.readLeaderEpoch()
        logStartOffset = try reader.readOffset()
        partitionMaxBytes = try reader.readInt32()
        replicaDurableOffset = try reader.readOffset()
        replicaAcknowledgedLoss = PartitionEpoch(try reader.readInt32())
    }
}

extension FetchResponse: DataCodable {
    static let minimumEncodedBytes = 2 + 1

    func encode(into writer: inout ByteWriter) {
        precondition(topics.reduce(0) { $0 + $1.partitions.count } <= DataCodecLimits.maximumPartitionsPerMessage,
                     "more partitions than one message may carry")
        writer.writeErrorCode(errorCode)
        writer.writeList(topics, limit: DataCodecLimits.maximumTopicsPerMessage)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        errorCode = try reader.readErrorCode()
        topics = try reader.readList(limit: DataCodecLimits.maximumTopicsPerMessage, what: "topics")
    }
}

extension FetchResponse.Topic: NamedTopic {}

extension FetchResponse.DivergingEpoch: DataCodable {
    static let minimumEncodedBytes = 4 + 8

    func encode(into writer: inout ByteWriter) {
        writer.writeLeaderEpoch(epoch)
        writer.writeOffset(endOffset)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        epoch = try reader.readLeaderEpoch()
        endOffset = try reader.readOffset()
    }
}

extension FetchResponse.LeaderHint: DataCodable {
    static let minimumEncodedBytes = 4 + 4

    func encode(into writer: inout ByteWriter) {
        writer.writeOptionalNodeID(leaderID)
        writer.writeLeaderEpoch(leaderEpoch)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        leaderID = try reader.readOptionalNodeID()
        leaderEpoch = try reader.readLeaderEpoch()
    }
}

extension FetchResponse.AbortedTransaction: DataCodable {
    static let minimumEncodedBytes = 8 + 8

    func encode(into writer: inout ByteWriter) {
        writer.writeInt64(producerID.rawValue)
        writer.writeOffset(firstOffset)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        producerID = ProducerID(try reader.readInt64())
        firstOffset = try reader.readOffset()
    }
}

extension FetchResponse.Partition: DataCodable {
    static let minimumEncodedBytes = 4 + 2 + 8 + 8 + 8 + 8 + 1 + 1 + 1 + 1

    func encode(into writer: inout ByteWriter) {
        writer.writeInt32(partitionIndex)
        writer.writeErrorCode(errorCode)
        writer.writeOffset(highWatermark)
        writer.writeOffset(lastStableOffset)
        writer.writeOffset(logStartOffset)
        writer.writeOffset(leaderLogEndOffset)
        writer.writeOptional(divergingEpoch)
        writer.writeOptional(currentLeader)
        writer.writeList(abortedTransactions, limit: DataCodecLimits.maximumAbortedTransactionsPerPartition)
        writer.writeRecords(records)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        partitionIndex = try reader.readInt32()
        errorCode = try reader.readErrorCode()
        highWatermark = try reader.readOffset()
        lastStableOffset = try reader.readOffset()
        logStartOffset = try reader.readOffset()
        leaderLogEndOffset = try reader.readOffset()
        divergingEpoch = try reader.readOptional()
        currentLeader = try reader.readOptional()
        abortedTransactions = try reader.readList(limit: DataCodecLimits.maximumAbortedTransactionsPerPartition,
                                                  what: "aborted transactions")
        records = try reader.readRecords()
    }
}
