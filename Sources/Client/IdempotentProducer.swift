import KafkaProtocol
import TernCore

/// Names one record given to `IdempotentProducer.send`; its outcome is reported exactly once.
public struct RecordHandle: TypedInteger {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// How a record ended.
public enum ProduceOutcome: Equatable, Sendable {
    /// Written and acknowledged by the configured acks at `offset`. `.unknown` only when a broker
    /// answered DUPLICATE_SEQUENCE_NUMBER, which says "already written" without the offset.
    case written(offset: Offset)
    /// Not acknowledged. `possiblyWritten` is true when some attempt may have reached the log (a
    /// timeout, or an error after an earlier attempt was lost), so a checker must treat the record
    /// as indeterminate rather than absent.
    case failed(error: KafkaErrorCode, possiblyWritten: Bool)
}

public struct ProduceCompletion: Equatable, Sendable {
    public var handle: RecordHandle
    public var topicPartition: TopicPartition
    public var outcome: ProduceOutcome
}

public enum ProducerSendError: Error, Equatable, Sendable {
    /// `maximumBufferedRecords` are queued, in flight, or completed but not yet taken.
    case bufferFull
    /// The record alone would exceed `batchSizeBytes`.
    case recordTooLarge
    /// The partition hit an error it cannot recover from under this producer id (see
    /// `IdempotentProducer`); a new producer instance is needed for it.
    case partitionFailed(KafkaErrorCode)
    /// The producer could not get a producer id.
    case producerFailed(KafkaErrorCode)
}

/// An idempotent Kafka producer as a sans-IO state machine.
///
/// Records are accumulated into one batch per partition (closed by `batchSizeBytes`,
/// `maximumRecordsPerBatch` or `lingerTime`). Nothing is sent before InitProducerID has given a
/// producer id and epoch. A batch gets its base sequence and its bytes when first sent, and every
/// retry sends exactly those bytes, so the broker recognises a retry of a batch it already wrote
/// (one of its last 5) and answers the original offset instead of writing it twice.
///
/// Order: at most `maximumInFlightPerPartition` (≤ 5, the broker's deduplication window) batches of a
/// partition have been sent since its oldest unacknowledged one, that one included. Answers may
/// come in any order (a lost answer, a slow link), and a batch acknowledged ahead of an older one
/// still counts: the broker remembers the last 5 batches it appended, and the oldest
/// unacknowledged batch must stay among them so that its retry is recognised as a duplicate
/// rather than refused as out of order. When a batch needs a retry (a retriable error, a lost
/// request), the partition sends nothing until every request of it in flight has been answered or
/// abandoned; then it resends all its unacknowledged batches in sequence order, and only after
/// that new ones. An OUT_OF_ORDER_SEQUENCE_NUMBER for an attempt sent while an earlier batch was
/// unacknowledged is the expected echo of that batch's absence (it had failed, or had not arrived
/// yet), even when that batch has been acknowledged since, and is retried the same way.
///
/// Unrecoverable errors: OUT_OF_ORDER_SEQUENCE_NUMBER on the oldest unacknowledged batch,
/// UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH and every non-retriable error fail the partition:
/// its unacknowledged and queued records are reported failed, and later sends to it are refused.
/// librdkafka instead bumps the epoch when it can prove that safe; that needs every partition
/// drained and a "possibly persisted" verdict on each unacknowledged batch, and renumbering
/// sequences without a bump is unsafe (an abandoned request arriving late could be appended under
/// its old sequence). Failing the partition is the simplest choice that never duplicates or
/// reorders; the application recovers by starting a new producer (a new producer id).
///
/// There is no delivery timeout: retriable failures are retried until they succeed (librdkafka's
/// idempotent default of unlimited retries); the buffer bound gives back-pressure instead.
public struct IdempotentProducer: Sendable {
    public struct Configuration: Sendable {
        public var lingerTime: Duration
        public var batchSizeBytes: Int
        public var maximumRecordsPerBatch: Int
        /// Unacknowledged batches per partition; at most 5, the broker's deduplication window.
        public var maximumInFlightPerPartition: Int
        /// Records sent but whose completion has not been taken yet.
        public var maximumBufferedRecords: Int
        /// -1 (all in-sync replicas), 1 or 0 is refused: idempotence needs acks=all.
        public var acks: Int16
        /// How long the broker may wait for replication before answering REQUEST_TIMED_OUT.
        public var brokerAckTimeout: Duration
        /// How long the client waits for any answer before abandoning the request and retrying.
        public var requestTimeout: Duration
        public var retryBackoff: Duration
        public var metadata: MetadataCache.Configuration

        public init(lingerTime: Duration = .milliseconds(5), batchSizeBytes: Int = 16 * 1024, maximumRecordsPerBatch: Int = 1000,
                    maximumInFlightPerPartition: Int = 5, maximumBufferedRecords: Int = 10_000,
                    brokerAckTimeout: Duration = .seconds(10), requestTimeout: Duration = .seconds(30),
                    retryBackoff: Duration = .milliseconds(100), metadata: MetadataCache.Configuration = .init()) {
            precondition((1...5).contains(maximumInFlightPerPartition), "idempotence allows 1 to 5 in-flight batches per partition")
            precondition(batchSizeBytes > 0 && maximumRecordsPerBatch > 0 && maximumBufferedRecords > 0, "bounds must be positive")
            precondition(requestTimeout > brokerAckTimeout, "the client must wait longer than the broker may")
            self.lingerTime = lingerTime
            self.batchSizeBytes = batchSizeBytes
            self.maximumRecordsPerBatch = maximumRecordsPerBatch
            self.maximumInFlightPerPartition = maximumInFlightPerPartition
            self.maximumBufferedRecords = maximumBufferedRecords
            self.acks = -1
            self.brokerAckTimeout = brokerAckTimeout
            self.requestTimeout = requestTimeout
            self.retryBackoff = retryBackoff
            self.metadata = metadata
        }
    }

    enum BatchState: Equatable, Sendable {
        case inFlight(RequestCorrelation)
        case needsRetry
    }

    struct SentBatch: Sendable {
        /// The batch's records in offset order; only their handles are kept once encoded.
        var handles: [RecordHandle]
        var baseSequence: Int32
        /// Built once, resent byte for byte.
        var bytes: [UInt8]
        var state: BatchState
        /// The partition's leader epoch when last sent, so an error about an older leader does
        /// not invalidate newer metadata.
        var sentLeaderEpoch = LeaderEpoch.none
        /// Some attempt may have reached a broker's log.
        var possiblyWritten = false
        /// The partition's count of batches sent when this one was first sent: orders the window.
        var number = 0
        /// The current attempt went out while an earlier batch was unacknowledged, so the broker
        /// may have refused it only because that batch had not reached it.
        var sentBehindUnacknowledged = false
        /// When a broker first refused this batch as out of order.
        var firstRefusedOutOfOrderAt: Instant?
    }

    /// A batch still taking records. Each record is encoded as it arrives, so its key and value
    /// are copied once and nothing of it but its handle is kept; the header fields that depend on
    /// the producer id and the sequence are filled in when the batch is first sent.
    struct OpenBatch: Sendable {
        var handles: [RecordHandle] = []
        var builder: RecordBatchBuilder
        var estimatedBytes = RecordBatchLayout.headerSize
        var createdAt: Instant

        init(baseTimestampMilliseconds: Int64, capacityBytes: Int, createdAt: Instant) {
            builder = RecordBatchBuilder(baseTimestamp: baseTimestampMilliseconds, capacity: capacityBytes)
            self.createdAt = createdAt
        }

        mutating func append(_ handle: RecordHandle, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader],
                             timestampMilliseconds: Int64, estimatedSize: Int) {
            builder.append(key: key, value: value, headers: headers, timestampDelta: timestampMilliseconds - builder.baseTimestamp)
            handles.append(handle)
            estimatedBytes += estimatedSize
        }
    }

    struct PartitionState: Sendable {
        /// Not yet sent, oldest first; only the last may still take records.
        var queued: [OpenBatch] = []
        /// Sent and not acknowledged, in sequence order.
        var unacknowledged: [SentBatch] = []
        /// Numbers of batches acknowledged while an older batch is still unacknowledged.
        var acknowledgedAhead: [Int] = []
        /// Batches sent so far (first sends only), for `SentBatch.number`.
        var batchesSent = 0
        var nextSequence: Int32 = 0
        /// The last offset of the newest batch acknowledged with its offset.
        var lastAcknowledgedOffset = Offset.unknown
        /// The leader forgot the producer: at the next drain the batches are renumbered.
        var sequencesNeedRestart = false
        /// Epochs this partition moved past the producer's own, one per restart of its sequence
        /// (Kafka's idempotent producers bump the epoch locally, KIP-360): any leader takes
        /// sequence 0 of a newer epoch, whether it remembers the producer or not.
        var epochBumps: Int16 = 0
        var retryNotBefore = Instant.zero
        var failure: KafkaErrorCode?
        /// A retry round has started: the partition drained, waited out the backoff, and is
        /// resending its unacknowledged batches in order. Any new failure closes it (drain again).
        var retryRoundOpen = false
        /// The last queued batch takes no more records (it filled up while waiting, or was flushed).
        var lastQueuedIsClosed = false

        /// Batches sent since the oldest unacknowledged one, that one included.
        var window: Int { unacknowledged.count + acknowledgedAhead.count }

        /// Removes the batch at `index`, acknowledged; keeps it in the window while an older
        /// batch is still unacknowledged.
        mutating func acknowledge(at index: Int) -> SentBatch {
            let batch = unacknowledged.remove(at: index)
            if index > 0 { acknowledgedAhead.append(batch.number) }
            let oldest = unacknowledged.first?.number ?? Int.max
            acknowledgedAhead.removeAll { $0 < oldest }
            return batch
        }

        /// Whether an UNKNOWN_PRODUCER_ID is the leader having forgotten this producer because
        /// retention deleted every batch it had acknowledged: the log now starts past them.
        func wasForgotten(logStartOffset: Offset) -> Bool {
            lastAcknowledgedOffset != .unknown && logStartOffset > lastAcknowledgedOffset
        }

        /// Renumbers the unacknowledged batches from sequence 0 under the partition's next epoch,
        /// in order, to be sent again to a leader that forgot the producer (KIP-360's local epoch
        /// bump); only once nothing is in flight under the old numbers (at the drain).
        /// A batch that may have reached the log may be among what retention deleted: sent again
        /// it could be written twice, so it is given up (returned), with every batch before it
        /// (sent after it, they would be written out of order) and every batch older than one
        /// acknowledged (the broker took them in sequence, so they were written).
        mutating func restartSequences(producerEpoch: ProducerEpoch) -> [SentBatch] {
            let newestAcknowledged = acknowledgedAhead.max() ?? Int.min
            let givenUp = unacknowledged.lastIndex { $0.possiblyWritten || $0.number < newestAcknowledged }
                .map { Array(unacknowledged[...$0]) } ?? []
            unacknowledged.removeFirst(givenUp.count)
            acknowledgedAhead.removeAll()
            epochBumps += 1
            let epoch = producerEpoch.rawValue + epochBumps
            var sequence: Int32 = 0
            for index in unacknowledged.indices {
                unacknowledged[index].baseSequence = sequence
                RecordBatchHeader.assign(producerEpoch: epoch, baseSequence: sequence, in: &unacknowledged[index].bytes)
                unacknowledged[index].state = .needsRetry
                unacknowledged[index].firstRefusedOutOfOrderAt = nil
                sequence = IdempotentProducer.sequence(sequence, advancedBy: Int32(unacknowledged[index].handles.count))
            }
            nextSequence = sequence
            return givenUp
        }

        /// Adds the record to the open batch, or to a new one when that is closed or full.
        mutating func append(_ handle: RecordHandle, key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader],
                             timestampMilliseconds: Int64, estimatedSize: Int, now: Instant, configuration: Configuration) {
            if !lastQueuedIsClosed, let lastIndex = queued.indices.last, queued[lastIndex].handles.count < configuration.maximumRecordsPerBatch,
               queued[lastIndex].estimatedBytes + estimatedSize <= configuration.batchSizeBytes {
                queued[lastIndex].append(handle, key: key, value: value, headers: headers, timestampMilliseconds: timestampMilliseconds,
                                         estimatedSize: estimatedSize)
                return
            }
            // Start small: a batch that lingers out with a few records should not hold batchSizeBytes.
            var batch = OpenBatch(baseTimestampMilliseconds: timestampMilliseconds,
                                  capacityBytes: min(configuration.batchSizeBytes, 16 * 1024), createdAt: now)
            batch.append(handle, key: key, value: value, headers: headers, timestampMilliseconds: timestampMilliseconds,
                         estimatedSize: estimatedSize)
            queued.append(batch)
            lastQueuedIsClosed = false
        }
    }

    enum ProducerIdentity: Equatable, Sendable {
        case needed(notBefore: Instant)
        case requesting(RequestCorrelation)
        case assigned(ProducerID, ProducerEpoch)
        case failed(KafkaErrorCode)
    }

    enum PendingRequest: Sendable {
        case metadata
        case initProducerID
        case produce([TopicPartition])
    }

    public let configuration: Configuration
    public private(set) var metadata: MetadataCache
    private var random: DeterministicRandom
    private var identity: ProducerIdentity = .needed(notBefore: .zero)
    private var partitionStates: [TopicPartition: PartitionState] = [:]
    private var pending: [RequestCorrelation: (request: PendingRequest, deadline: Instant)] = [:]
    private var correlations = CorrelationAllocator()
    private var nextHandle: UInt64 = 1
    private var completions: [ProduceCompletion] = []
    /// Records given to `send` whose completion has not been taken: the buffer bound.
    private var bufferedRecords = 0

    public init(bootstrapNodes: [NodeID], configuration: Configuration = Configuration(), random: DeterministicRandom) {
        self.configuration = configuration
        self.random = random.stream("producer")
        metadata = MetadataCache(bootstrapNodes: bootstrapNodes, configuration: configuration.metadata,
                                 random: random.stream("producer-metadata"))
    }

    /// The producer id and epoch, once assigned.
    public var producerIdentity: (id: ProducerID, epoch: ProducerEpoch)? {
        if case let .assigned(id, epoch) = identity { return (id, epoch) }
        return nil
    }

    public func failure(of topicPartition: TopicPartition) -> KafkaErrorCode? { partitionStates[topicPartition]?.failure }

    /// Batches of the partition sent since its oldest unacknowledged one, that one included: at
    /// most `maximumInFlightPerPartition`.
    public func window(of topicPartition: TopicPartition) -> Int { partitionStates[topicPartition]?.window ?? 0 }

    /// Records whose outcome is not reported yet (queued or unacknowledged).
    public var unfinishedRecords: Int { bufferedRecords - completions.count }

    /// For diagnostics: each partition with records not yet answered, in partition order.
    public var unfinishedPartitions: [String] {
        partitionStates.keys.sorted().compactMap { topicPartition in
            let state = partitionStates[topicPartition]!
            guard !state.queued.isEmpty || !state.unacknowledged.isEmpty else { return nil }
            let batches = state.unacknowledged.map { batch in
                switch batch.state {
                case .inFlight: return "seq \(batch.baseSequence) in flight"
                case .needsRetry: return "seq \(batch.baseSequence) awaiting retry"
                }
            }
            return "\(topicPartition): \(state.queued.count) queued, [\(batches.joined(separator: ", "))]"
                + (state.failure.map { " failed \($0)" } ?? "")
        }
    }

    // MARK: Input

    /// `timestamp` is the record's CreateTime, the time of day (nil: `now`, for a shell whose
    /// `now` is the wall clock).
    public mutating func send(_ topicPartition: TopicPartition, key: [UInt8]?, value: [UInt8]?,
                              headers: [RecordHeader] = [], timestamp: Instant? = nil, now: Instant) throws(ProducerSendError) -> RecordHandle {
        if case let .failed(error) = identity { throw .producerFailed(error) }
        guard bufferedRecords < configuration.maximumBufferedRecords else { throw .bufferFull }
        let size = Self.estimatedSize(key: key, value: value, headers: headers)
        guard size + RecordBatchLayout.headerSize <= configuration.batchSizeBytes else { throw .recordTooLarge }
        metadata.track(topic: topicPartition.topic)
        if let failure = partitionStates[topicPartition]?.failure { throw .partitionFailed(failure) }

        let handle = RecordHandle(nextHandle)
        nextHandle += 1
        bufferedRecords += 1
        // Mutated in place through the dictionary: a copy of the state would make the append
        // below copy the whole open batch, once per record.
        partitionStates[topicPartition, default: PartitionState()]
            .append(handle, key: key, value: value, headers: headers, timestampMilliseconds: (timestamp ?? now).milliseconds,
                    estimatedSize: size, now: now, configuration: configuration)
        return handle
    }

    /// Lets every open batch go at the next `nextRequests` without waiting out its linger, as
    /// Kafka's `flush()` does (without its waiting): for a caller that will add nothing soon,
    /// such as one that has as many records outstanding as it allows itself.
    public mutating func flush() {
        // By index, not over `keys`: holding the key view while writing would copy the dictionary.
        var index = partitionStates.startIndex
        while index != partitionStates.endIndex {
            if !partitionStates.values[index].queued.isEmpty { partitionStates.values[index].lastQueuedIsClosed = true }
            partitionStates.formIndex(after: &index)
        }
    }

    /// Outcomes reported since the last call, each record's exactly once.
    public mutating func takeCompletions() -> [ProduceCompletion] {
        defer {
            bufferedRecords -= completions.count
            completions.removeAll(keepingCapacity: true)
        }
        return completions
    }

    public mutating func handle(response: KafkaResponse, correlation: RequestCorrelation, now: Instant) {
        // An answer to an abandoned request is dropped: its batches were (or will be) resent with
        // the same bytes, and the resend's answer carries the same outcome.
        guard let entry = pending.removeValue(forKey: correlation) else { return }
        switch (entry.request, response) {
        case let (.metadata, .metadata(answer)):
            metadata.apply(answer, now: now)
        case let (.initProducerID, .initProducerID(answer)):
            handleInitProducerID(answer, correlation: correlation, now: now)
        case let (.produce(partitions), .produce(answer)):
            handleProduce(answer, partitions: partitions, correlation: correlation, now: now)
        default:
            // A mismatched answer is a shell bug or a broken broker; treat it as a lost request.
            fail(entry.request, correlation: correlation, now: now)
        }
    }

    /// The request was lost: timed out, or its connection closed.
    public mutating func handleTimeout(correlation: RequestCorrelation, now: Instant) {
        guard let entry = pending.removeValue(forKey: correlation) else { return }
        fail(entry.request, correlation: correlation, now: now)
    }

    // MARK: Output

    public mutating func nextRequests(now: Instant) -> [ClientRequest] {
        expireRequests(now: now)
        var requests: [ClientRequest] = []
        if let (destination, request) = metadata.nextRequest(now: now) {
            requests.append(register(.metadata, destination: destination, request: .metadata(request), now: now))
        }
        if case let .needed(notBefore) = identity, now >= notBefore {
            let candidates = metadata.brokers.isEmpty ? metadata.bootstrapNodes : metadata.sortedBrokerIDs
            let destination = candidates[Int(random.next(below: UInt64(candidates.count)))]
            let request = KafkaWire.InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: -1)
            let outgoing = register(.initProducerID, destination: destination, request: .initProducerID(request), now: now)
            identity = .requesting(outgoing.correlation)
            requests.append(outgoing)
        }
        guard case let .assigned(producerID, producerEpoch) = identity else { return requests }

        // Rounds of one request per leader with one batch per partition in it (Kafka's rule),
        // until no partition has anything more it may send; at most maximumInFlightPerPartition rounds.
        let sortedPartitions = partitionStates.keys.sorted()
        for _ in 0..<configuration.maximumInFlightPerPartition {
            let round = produceRound(sortedPartitions, producerID: producerID, producerEpoch: producerEpoch, now: now)
            if round.isEmpty { break }
            requests.append(contentsOf: round)
        }
        return requests
    }

    private mutating func produceRound(_ sortedPartitions: [TopicPartition], producerID: ProducerID,
                                       producerEpoch: ProducerEpoch, now: Instant) -> [ClientRequest] {
        var requests: [ClientRequest] = []
        var byDestination: [NodeID: [(TopicPartition, [UInt8])]] = [:]
        var destinations: [NodeID] = []
        var leaderEpochs: [TopicPartition: LeaderEpoch] = [:]
        for topicPartition in sortedPartitions {
            guard let leader = metadata.usableLeader(for: topicPartition),
                  let batch = nextBatchToSend(topicPartition, producerID: producerID, producerEpoch: producerEpoch, now: now)
            else { continue }
            if byDestination[leader.leaderID] == nil { destinations.append(leader.leaderID) }
            byDestination[leader.leaderID, default: []].append((topicPartition, batch))
            leaderEpochs[topicPartition] = leader.leaderEpoch
        }
        for destination in destinations {
            let batches = byDestination[destination]!
            let correlation = correlations.allocate()
            var topics: [KafkaWire.ProduceRequest.TopicProduceData] = []
            for (topicPartition, bytes) in batches {
                let partition = KafkaWire.ProduceRequest.PartitionProduceData(index: topicPartition.partition, records: bytes)
                if topics.last?.name == topicPartition.topic {
                    topics[topics.count - 1].partitionData.append(partition)
                } else {
                    topics.append(KafkaWire.ProduceRequest.TopicProduceData(name: topicPartition.topic, partitionData: [partition]))
                }
                markSent(topicPartition, correlation: correlation, leaderEpoch: leaderEpochs[topicPartition]!)
            }
            let request = KafkaWire.ProduceRequest(transactionalId: nil, acks: configuration.acks,
                                                   timeoutMs: Int32(configuration.brokerAckTimeout.milliseconds), topicData: topics)
            pending[correlation] = (.produce(batches.map(\.0)), now + configuration.requestTimeout)
            requests.append(ClientRequest(destination: destination, request: .produce(request), correlation: correlation))
        }
        return requests
    }

    /// The latest time the shell must call `nextRequests` again (linger, backoff, request deadlines).
    public func nextWakeup() -> Instant? {
        var earliest = metadata.nextRefreshTime
        func consider(_ time: Instant) { earliest = min(earliest ?? time, time) }
        for entry in pending.values { consider(entry.deadline) }
        if case let .needed(notBefore) = identity { consider(notBefore) }
        for state in partitionStates.values where state.failure == nil {
            if state.unacknowledged.contains(where: { $0.state == .needsRetry }) {
                if !state.unacknowledged.contains(where: { $0.state != .needsRetry }) { consider(state.retryNotBefore) }
            } else if let first = state.queued.first, state.window < configuration.maximumInFlightPerPartition {
                let full = state.queued.count > 1 || state.lastQueuedIsClosed || first.handles.count >= configuration.maximumRecordsPerBatch
                consider(full ? first.createdAt : first.createdAt + configuration.lingerTime)
            }
        }
        return earliest
    }

    // MARK: Sending

    /// The bytes of the batch to send next for the partition, if any may go now; see the type's
    /// comment for the order rules.
    private mutating func nextBatchToSend(_ topicPartition: TopicPartition, producerID: ProducerID,
                                          producerEpoch: ProducerEpoch, now: Instant) -> [UInt8]? {
        guard var state = partitionStates[topicPartition], state.failure == nil else { return nil }
        defer { partitionStates[topicPartition] = state }
        if state.sequencesNeedRestart, !state.unacknowledged.contains(where: { $0.state != .needsRetry }) {
            state.sequencesNeedRestart = false
            for batch in state.restartSequences(producerEpoch: producerEpoch) {
                for handle in batch.handles {
                    completions.append(ProduceCompletion(handle: handle, topicPartition: topicPartition,
                                                         outcome: .failed(error: .unknownProducerID, possiblyWritten: true)))
                }
            }
        }
        if let index = state.unacknowledged.firstIndex(where: { $0.state == .needsRetry }) {
            if !state.retryRoundOpen {
                let draining = state.unacknowledged.contains(where: { $0.state != .needsRetry })
                guard !draining, now >= state.retryNotBefore else { return nil }
                state.retryRoundOpen = true
            }
            // Within the round every batch before this one is already resent (in flight).
            return state.unacknowledged[index].bytes
        }
        state.retryRoundOpen = false
        guard state.window < configuration.maximumInFlightPerPartition, let first = state.queued.first else { return nil }
        let full = state.queued.count > 1 || state.lastQueuedIsClosed
            || first.handles.count >= configuration.maximumRecordsPerBatch
        guard full || now >= first.createdAt + configuration.lingerTime else { return nil }
        state.queued.removeFirst()
        if state.queued.isEmpty { state.lastQueuedIsClosed = false }
        let baseSequence = state.nextSequence
        var builder = first.builder
        builder.producerID = producerID.rawValue
        builder.producerEpoch = producerEpoch.rawValue + state.epochBumps
        builder.baseSequence = baseSequence
        let bytes = builder.build()
        state.nextSequence = Self.sequence(baseSequence, advancedBy: Int32(first.handles.count))
        state.unacknowledged.append(SentBatch(handles: first.handles, baseSequence: baseSequence, bytes: bytes, state: .needsRetry,
                                              number: state.batchesSent))
        state.batchesSent += 1
        return bytes
    }

    /// Marks the batch just returned by `nextBatchToSend` as in flight under `correlation`.
    private mutating func markSent(_ topicPartition: TopicPartition, correlation: RequestCorrelation, leaderEpoch: LeaderEpoch) {
        guard let index = partitionStates[topicPartition]!.unacknowledged.firstIndex(where: { $0.state == .needsRetry }) else {
            preconditionFailure("no batch waiting to be sent for \(topicPartition)")
        }
        partitionStates[topicPartition]!.unacknowledged[index].state = .inFlight(correlation)
        partitionStates[topicPartition]!.unacknowledged[index].sentLeaderEpoch = leaderEpoch
        partitionStates[topicPartition]!.unacknowledged[index].sentBehindUnacknowledged = index > 0
    }

    private mutating func register(_ kind: PendingRequest, destination: NodeID, request: KafkaRequest, now: Instant) -> ClientRequest {
        let correlation = correlations.allocate()
        pending[correlation] = (kind, now + configuration.requestTimeout)
        return ClientRequest(destination: destination, request: request, correlation: correlation)
    }

    private mutating func expireRequests(now: Instant) {
        let expired = pending.filter { $0.value.deadline <= now }.keys.sorted()
        for correlation in expired { handleTimeout(correlation: correlation, now: now) }
    }

    // MARK: Answers

    private mutating func handleInitProducerID(_ answer: KafkaWire.InitProducerIdResponse, correlation: RequestCorrelation, now: Instant) {
        guard identity == .requesting(correlation) else { return }
        let error = KafkaErrorCode(wire: answer.errorCode)
        let producerID = ProducerID(answer.producerId)
        let producerEpoch = ProducerEpoch(answer.producerEpoch)
        if error == .none, producerID != .none, producerEpoch != .none {
            identity = .assigned(producerID, producerEpoch)
        } else if error == .none || error.isRetriable {
            identity = .needed(notBefore: now + configuration.retryBackoff)
        } else {
            identity = .failed(error)
            for topicPartition in partitionStates.keys.sorted() { failPartition(topicPartition, error: error) }
        }
    }

    private mutating func handleProduce(_ answer: KafkaWire.ProduceResponse, partitions: [TopicPartition],
                                        correlation: RequestCorrelation, now: Instant) {
        var answers: [TopicPartition: (KafkaErrorCode, Offset, logStart: Offset)] = [:]
        for topic in answer.responses {
            for partition in topic.partitionResponses {
                answers[TopicPartition(topic: topic.name, partition: partition.index)] =
                    (KafkaErrorCode(wire: partition.errorCode), Offset(partition.baseOffset), Offset(partition.logStartOffset))
            }
        }
        for topicPartition in partitions {
            // A partition the broker left out is treated like a lost request for it.
            let (error, baseOffset, logStart) = answers[topicPartition] ?? (.requestTimedOut, .unknown, .unknown)
            handleBatchOutcome(topicPartition, correlation: correlation, error: error, baseOffset: baseOffset,
                               logStartOffset: logStart, now: now)
        }
    }

    private mutating func handleBatchOutcome(_ topicPartition: TopicPartition, correlation: RequestCorrelation,
                                             error: KafkaErrorCode, baseOffset: Offset, logStartOffset: Offset = .unknown,
                                             now: Instant) {
        guard var state = partitionStates[topicPartition],
              let index = state.unacknowledged.firstIndex(where: { $0.state == .inFlight(correlation) }) else { return }
        if error == .outOfOrderSequenceNumber, state.unacknowledged[index].firstRefusedOutOfOrderAt == nil {
            state.unacknowledged[index].firstRefusedOutOfOrderAt = now
        }
        switch error {
        case .none, .duplicateSequenceNumber:
            let batch = state.acknowledge(at: index)
            if error == .none, baseOffset != .unknown {
                state.lastAcknowledgedOffset = max(state.lastAcknowledgedOffset, baseOffset + Int64(batch.handles.count - 1))
            }
            for (position, handle) in batch.handles.enumerated() {
                let offset = error == .none && baseOffset != .unknown ? baseOffset + Int64(position) : .unknown
                completions.append(ProduceCompletion(handle: handle, topicPartition: topicPartition,
                                                     outcome: .written(offset: offset)))
            }
            partitionStates[topicPartition] = state
        case .unknownProducerID where index == 0 && state.wasForgotten(logStartOffset: logStartOffset)
                && (producerIdentity.map { $0.epoch.rawValue < Int16.max - state.epochBumps } ?? false):
            state.unacknowledged[index].state = .needsRetry
            state.sequencesNeedRestart = true
            state.retryRoundOpen = false
            state.retryNotBefore = now
            partitionStates[topicPartition] = state
        case .outOfOrderSequenceNumber where index > 0 || state.unacknowledged[index].sentBehindUnacknowledged,
             .outOfOrderSequenceNumber where mayBeAStaleLeader(refusing: state.unacknowledged[index], now: now),
             .unknownProducerID where index > 0 || state.unacknowledged[index].sentBehindUnacknowledged,
             _ where error.isRetriable:
            // Retriable, or the echo of an earlier batch's absence: resend in order after the drain.
            state.unacknowledged[index].state = .needsRetry
            state.retryRoundOpen = false
            // Only errors that refuse before appending leave the log untouched.
            if error != .notEnoughReplicas && !error.invalidatesMetadata && error != .outOfOrderSequenceNumber && error != .unknownProducerID {
                state.unacknowledged[index].possiblyWritten = true
            }
            state.retryNotBefore = now + configuration.retryBackoff
            partitionStates[topicPartition] = state
            // Tern's Produce answer names no new leader yet (KIP-951), so this waits for a refresh.
            // An out-of-order refusal of the oldest batch came from a broker that may not lead.
            let staleness = error == .outOfOrderSequenceNumber && index == 0 ? KafkaErrorCode.notLeaderOrFollower : error
            metadata.noteError(staleness, for: topicPartition, requestLeaderEpoch: state.unacknowledged[index].sentLeaderEpoch)
        default:
            partitionStates[topicPartition] = state
            failPartition(topicPartition, error: error)
        }
    }

    private mutating func fail(_ request: PendingRequest, correlation: RequestCorrelation, now: Instant) {
        switch request {
        case .metadata:
            metadata.requestFailed(now: now)
        case .initProducerID:
            if identity == .requesting(correlation) { identity = .needed(notBefore: now + configuration.retryBackoff) }
        case let .produce(partitions):
            for topicPartition in partitions {
                guard var state = partitionStates[topicPartition],
                      let index = state.unacknowledged.firstIndex(where: { $0.state == .inFlight(correlation) }) else { continue }
                state.unacknowledged[index].state = .needsRetry
                state.unacknowledged[index].possiblyWritten = true
                state.retryNotBefore = now + configuration.retryBackoff
                state.retryRoundOpen = false
                metadata.noteRequestLost(for: topicPartition, requestLeaderEpoch: state.unacknowledged[index].sentLeaderEpoch)
                partitionStates[topicPartition] = state
            }
        }
    }

    /// Whether an OUT_OF_ORDER_SEQUENCE_NUMBER for the oldest unacknowledged batch may come from a
    /// deposed leader that has not learned of it yet. Its sequence follows batches acknowledged
    /// with acks=all, which every later leader holds (no unclean elections), so a broker missing
    /// them is not the leader: a leader partitioned away with the epoch before, or one the
    /// client's metadata still names. It learns within a session timeout or so; a refusal that
    /// persists for `requestTimeout` is taken at its word (the broker lost the acknowledged
    /// batches), as Kafka's producers take the first one. The first batch of a producer epoch
    /// follows nothing: its refusal is always taken at its word.
    private func mayBeAStaleLeader(refusing batch: SentBatch, now: Instant) -> Bool {
        guard batch.baseSequence != 0, let first = batch.firstRefusedOutOfOrderAt else { return false }
        return now - first < configuration.requestTimeout
    }

    /// Reports every unfinished record of the partition failed and refuses it from now on.
    private mutating func failPartition(_ topicPartition: TopicPartition, error: KafkaErrorCode) {
        guard var state = partitionStates[topicPartition], state.failure == nil else { return }
        state.failure = error
        for batch in state.unacknowledged {
            for handle in batch.handles {
                completions.append(ProduceCompletion(handle: handle, topicPartition: topicPartition,
                                                     outcome: .failed(error: error, possiblyWritten: batch.possiblyWritten)))
            }
        }
        for batch in state.queued {
            for handle in batch.handles {
                completions.append(ProduceCompletion(handle: handle, topicPartition: topicPartition,
                                                     outcome: .failed(error: error, possiblyWritten: false)))
            }
        }
        state.unacknowledged.removeAll()
        state.acknowledgedAhead.removeAll()
        state.queued.removeAll()
        partitionStates[topicPartition] = state
    }

    // MARK: Helpers

    /// Kafka's sequence arithmetic: after Int32.max comes 0.
    static func sequence(_ sequence: Int32, advancedBy count: Int32) -> Int32 {
        let sum = Int64(sequence) + Int64(count)
        return Int32(sum % (Int64(Int32.max) + 1))
    }

    /// An upper bound on a record's encoded size, so a batch never outgrows `batchSizeBytes`.
    static func estimatedSize(key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader]) -> Int {
        // length, attributes, timestamp delta, offset delta, two lengths, header count: ≤ 5+1+10+5+5+5+5.
        var size = 36 + (key?.count ?? 0) + (value?.count ?? 0)
        for header in headers { size += 10 + header.key.utf8.count + (header.value?.count ?? 0) }
        return size
    }
}
