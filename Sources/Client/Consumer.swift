import KafkaProtocol
import TernCore

/// Where a partition's consumption starts.
public enum ConsumerStartPosition: Equatable, Sendable {
    /// At `offset`. With the epoch of the record before it (as a committed offset carries), the
    /// position is validated against the leader's log before the first fetch.
    case offset(Offset, lastConsumedEpoch: LeaderEpoch = .none)
    /// The log start offset.
    case earliest
    /// The high watermark: only records written from now on.
    case latest
}

public struct ConsumedRecord: Equatable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Offset
    /// The epoch of the leader that wrote the record's batch.
    public var leaderEpoch: LeaderEpoch
    public var timestampMilliseconds: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [RecordHeader]
}

public enum ConsumerEvent: Equatable, Sendable {
    /// The leader's log ends below the position for the last consumed epoch: records the consumer
    /// delivered from `resetTo` up to `position` were lost from the log. Consumption goes on
    /// from `resetTo`, so offsets from there are delivered again with the log's new contents.
    case truncationDetected(TopicPartition, position: Offset, resetTo: Offset)
    /// The position was invalid (OFFSET_OUT_OF_RANGE, or no epoch to validate against) and was
    /// reset by `autoOffsetReset`; the new offset follows as soon as ListOffsets answers.
    case positionReset(TopicPartition, from: Offset, reason: KafkaErrorCode)
    /// Data the consumer cannot read (compressed batches, corrupt bytes that stay corrupt); the
    /// partition stops rather than skip records silently.
    case partitionStopped(TopicPartition, reason: String)
}

/// A single consumer of explicitly assigned partitions (no group), as a sans-IO state machine.
///
/// Per partition: find the start offset (ListOffsets for earliest/latest), then fetch from the
/// leader with the leader epoch it knows, so a deposed leader refuses (FENCED_LEADER_EPOCH) rather
/// than serve a stale log. When the partition's leader epoch moves, the position is validated
/// with OffsetForLeaderEpoch for the epoch of the last consumed batch (KIP-320): an end offset
/// below the position means the log was truncated under the consumer, which is reported and the
/// position reset to that end offset. Records are delivered in offset order, each once per
/// position (a truncation moves the position back, so offsets may then repeat with new data);
/// control batches are skipped; nothing at or above the answer's high watermark is delivered.
public struct Consumer: Sendable {
    public struct Configuration: Sendable {
        public var maxWait: Duration
        public var minBytes: Int32
        public var maxBytes: Int32
        public var partitionMaxBytes: Int32
        public var isolationLevel: IsolationLevel
        /// Fetching pauses while this many delivered records wait to be taken.
        public var maximumBufferedRecords: Int
        /// Where an invalid position goes: `.earliest` or `.latest`.
        public var autoOffsetReset: ConsumerStartPosition
        public var requestTimeout: Duration
        public var retryBackoff: Duration
        public var metadata: MetadataCache.Configuration

        public init(maxWait: Duration = .milliseconds(500), minBytes: Int32 = 1, maxBytes: Int32 = 50 * 1024 * 1024,
                    partitionMaxBytes: Int32 = 1024 * 1024, isolationLevel: IsolationLevel = .readUncommitted,
                    maximumBufferedRecords: Int = 10_000, autoOffsetReset: ConsumerStartPosition = .earliest,
                    requestTimeout: Duration = .seconds(30), retryBackoff: Duration = .milliseconds(100),
                    metadata: MetadataCache.Configuration = .init()) {
            precondition(autoOffsetReset == .earliest || autoOffsetReset == .latest, "autoOffsetReset is earliest or latest")
            precondition(requestTimeout > maxWait, "the client must wait longer than the broker may park a fetch")
            precondition(maximumBufferedRecords > 0, "the record buffer needs room")
            self.maxWait = maxWait
            self.minBytes = minBytes
            self.maxBytes = maxBytes
            self.partitionMaxBytes = partitionMaxBytes
            self.isolationLevel = isolationLevel
            self.maximumBufferedRecords = maximumBufferedRecords
            self.autoOffsetReset = autoOffsetReset
            self.requestTimeout = requestTimeout
            self.retryBackoff = retryBackoff
            self.metadata = metadata
        }
    }

    enum Phase: Equatable, Sendable {
        /// ListOffsets for the earliest or latest offset.
        case needsOffsetLookup(ConsumerStartPosition)
        case validating
        case fetching
        case stopped
    }

    struct PartitionState: Sendable {
        var phase: Phase
        var position = Offset.unknown
        /// The epoch of the last consumed batch (or the one ListOffsets named): what
        /// OffsetForLeaderEpoch is asked about.
        var lastConsumedEpoch = LeaderEpoch.none
        /// The leader epoch the position was last known good under.
        var validatedLeaderEpoch = LeaderEpoch.none
        /// A request of this partition in flight, and the leader epoch and offset it was sent with.
        var inFlight: RequestCorrelation?
        var requestLeaderEpoch = LeaderEpoch.none
        var requestOffset = Offset.unknown
        var retryNotBefore = Instant.zero
    }

    enum RequestKind: Sendable {
        case metadata, listOffsets, offsetForLeaderEpoch, fetch
    }

    public let configuration: Configuration
    public private(set) var metadata: MetadataCache
    private var partitionStates: [TopicPartition: PartitionState] = [:]
    private var pending: [RequestCorrelation: (kind: RequestKind, deadline: Instant)] = [:]
    private var correlations = CorrelationAllocator()
    private var records: [ConsumedRecord] = []
    private var events: [ConsumerEvent] = []

    public init(assignments: [(TopicPartition, ConsumerStartPosition)], bootstrapNodes: [NodeID],
                configuration: Configuration = Configuration(), random: DeterministicRandom) {
        self.configuration = configuration
        metadata = MetadataCache(bootstrapNodes: bootstrapNodes, configuration: configuration.metadata,
                                 random: random.stream("consumer-metadata"))
        for (topicPartition, start) in assignments {
            precondition(partitionStates[topicPartition] == nil, "\(topicPartition) assigned twice")
            metadata.track(topic: topicPartition.topic)
            switch start {
            case let .offset(offset, lastConsumedEpoch):
                var state = PartitionState(phase: .fetching)
                state.position = offset
                state.lastConsumedEpoch = lastConsumedEpoch
                partitionStates[topicPartition] = state
            case .earliest, .latest:
                partitionStates[topicPartition] = PartitionState(phase: .needsOffsetLookup(start))
            }
        }
    }

    /// The next offset to deliver, once known.
    public func position(of topicPartition: TopicPartition) -> Offset? {
        guard let state = partitionStates[topicPartition], state.position != .unknown else { return nil }
        if case .needsOffsetLookup = state.phase { return nil }
        return state.position
    }

    /// Records delivered since the last call, in offset order per partition.
    public mutating func takeRecords() -> [ConsumedRecord] {
        defer { records.removeAll(keepingCapacity: true) }
        return records
    }

    public mutating func takeEvents() -> [ConsumerEvent] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    // MARK: Output

    public mutating func nextRequests(now: Instant) -> [ClientRequest] {
        expireRequests(now: now)
        var requests: [ClientRequest] = []
        if let (destination, request) = metadata.nextRequest(now: now) {
            let correlation = correlations.allocate()
            pending[correlation] = (.metadata, now + configuration.requestTimeout)
            requests.append(ClientRequest(destination: destination, request: .metadata(request), correlation: correlation))
        }
        // Partitions grouped per leader and per request kind; destinations in first-seen order
        // over sorted partitions, so the output never depends on dictionary order.
        var listOffsets: [NodeID: [(TopicPartition, KafkaWire.ListOffsetsRequest.ListOffsetsPartition)]] = [:]
        var validations: [NodeID: [(TopicPartition, KafkaWire.OffsetForLeaderEpochRequest.OffsetForLeaderPartition)]] = [:]
        var fetches: [NodeID: [(TopicPartition, KafkaWire.FetchRequest.FetchPartition)]] = [:]
        var destinations: [NodeID] = []
        let bufferFull = records.count >= configuration.maximumBufferedRecords
        for topicPartition in partitionStates.keys.sorted() {
            guard var state = partitionStates[topicPartition], state.inFlight == nil, now >= state.retryNotBefore,
                  let leader = metadata.usableLeader(for: topicPartition) else { continue }
            defer { partitionStates[topicPartition] = state }
            if state.phase == .fetching, leader.leaderEpoch != state.validatedLeaderEpoch {
                // A new leader epoch: the log may have been truncated under the position.
                if state.lastConsumedEpoch == .none || leader.leaderEpoch == .none {
                    state.validatedLeaderEpoch = leader.leaderEpoch  // nothing to validate against (librdkafka skips too)
                } else {
                    state.phase = .validating
                }
            }
            let index = topicPartition.partition
            switch state.phase {
            case let .needsOffsetLookup(start):
                let timestamp = start == .latest ? ListOffsetsTimestamp.latest : ListOffsetsTimestamp.earliest
                listOffsets[leader.leaderID, default: []].append((topicPartition, KafkaWire.ListOffsetsRequest.ListOffsetsPartition(
                    partitionIndex: index, currentLeaderEpoch: leader.leaderEpoch.rawValue, timestamp: timestamp)))
            case .validating:
                validations[leader.leaderID, default: []].append((topicPartition, KafkaWire.OffsetForLeaderEpochRequest.OffsetForLeaderPartition(
                    partition: index, currentLeaderEpoch: leader.leaderEpoch.rawValue, leaderEpoch: state.lastConsumedEpoch.rawValue)))
            case .fetching:
                guard !bufferFull else { continue }
                fetches[leader.leaderID, default: []].append((topicPartition, KafkaWire.FetchRequest.FetchPartition(
                    partition: index, currentLeaderEpoch: leader.leaderEpoch.rawValue, fetchOffset: state.position.rawValue,
                    partitionMaxBytes: configuration.partitionMaxBytes)))
            case .stopped:
                continue
            }
            state.requestLeaderEpoch = leader.leaderEpoch
            state.requestOffset = state.position
            if !destinations.contains(leader.leaderID) { destinations.append(leader.leaderID) }
        }
        for destination in destinations {
            if let entries = listOffsets[destination] {
                let request = KafkaWire.ListOffsetsRequest(
                    replicaId: -1, isolationLevel: configuration.isolationLevel.rawValue,
                    topics: Self.group(entries) { KafkaWire.ListOffsetsRequest.ListOffsetsTopic(name: $0, partitions: $1) })
                requests.append(send(.listOffsets(request), kind: .listOffsets, to: destination, partitions: entries.map(\.0), now: now))
            }
            if let entries = validations[destination] {
                let request = KafkaWire.OffsetForLeaderEpochRequest(
                    replicaId: -1, topics: Self.group(entries) { KafkaWire.OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic: $0, partitions: $1) })
                requests.append(send(.offsetForLeaderEpoch(request), kind: .offsetForLeaderEpoch, to: destination,
                                     partitions: entries.map(\.0), now: now))
            }
            if let entries = fetches[destination] {
                // Sessionless (id 0, epoch -1): every fetch names every partition it wants.
                let request = KafkaWire.FetchRequest(
                    replicaId: -1, maxWaitMs: Int32(configuration.maxWait.milliseconds), minBytes: configuration.minBytes,
                    maxBytes: configuration.maxBytes, isolationLevel: configuration.isolationLevel.rawValue, sessionId: 0, sessionEpoch: -1,
                    topics: Self.group(entries) { KafkaWire.FetchRequest.FetchTopic(topic: $0, partitions: $1) })
                requests.append(send(.fetch(request), kind: .fetch, to: destination, partitions: entries.map(\.0), now: now))
            }
        }
        return requests
    }

    /// The latest time the shell must call `nextRequests` again.
    public func nextWakeup() -> Instant? {
        var earliest = metadata.nextRefreshTime
        func consider(_ time: Instant) { earliest = min(earliest ?? time, time) }
        for entry in pending.values { consider(entry.deadline) }
        for state in partitionStates.values where state.inFlight == nil && state.phase != .stopped {
            consider(state.retryNotBefore)
        }
        return earliest
    }

    // MARK: Input

    public mutating func handle(response: KafkaResponse, correlation: RequestCorrelation, now: Instant) {
        guard let entry = pending.removeValue(forKey: correlation) else { return }
        switch (entry.kind, response) {
        case let (.metadata, .metadata(answer)):
            metadata.apply(answer, now: now)
        case let (.listOffsets, .listOffsets(answer)):
            for topic in answer.topics {
                for partition in topic.partitions {
                    handleListOffsets(partition, topicPartition: TopicPartition(topic: topic.name, partition: partition.partitionIndex),
                                      correlation: correlation, now: now)
                }
            }
        case let (.offsetForLeaderEpoch, .offsetForLeaderEpoch(answer)):
            for topic in answer.topics {
                for partition in topic.partitions {
                    handleValidation(partition, topicPartition: TopicPartition(topic: topic.topic, partition: partition.partition),
                                     correlation: correlation, now: now)
                }
            }
        case let (.fetch, .fetch(answer)):
            for topic in answer.responses {
                for partition in topic.partitions {
                    let topicPartition = TopicPartition(topic: topic.topic, partition: partition.partitionIndex)
                    // A whole-request error applies to every partition.
                    var partition = partition
                    if answer.errorCode != KafkaErrorCode.none.rawValue { partition.errorCode = answer.errorCode }
                    handleFetch(partition, topicPartition: topicPartition, correlation: correlation, now: now)
                }
            }
        default:
            break
        }
        // Partitions the answer left out (or a mismatched answer) are retried after the backoff.
        releasePartitions(of: correlation, now: now)
    }

    public mutating func handleTimeout(correlation: RequestCorrelation, now: Instant) {
        guard let entry = pending.removeValue(forKey: correlation) else { return }
        if entry.kind == .metadata { metadata.requestFailed(now: now) }
        for topicPartition in partitionStates.keys.sorted() where partitionStates[topicPartition]!.inFlight == correlation {
            metadata.noteRequestLost(for: topicPartition, requestLeaderEpoch: partitionStates[topicPartition]!.requestLeaderEpoch)
        }
        releasePartitions(of: correlation, now: now)
    }

    // MARK: Answers

    /// Takes the partition's in-flight mark if `correlation` holds it.
    private mutating func claim(_ topicPartition: TopicPartition, correlation: RequestCorrelation) -> PartitionState? {
        guard var state = partitionStates[topicPartition], state.inFlight == correlation else { return nil }
        state.inFlight = nil
        return state
    }

    /// Common error handling: metadata errors mark the partition stale; all errors back off.
    private mutating func noteError(_ error: KafkaErrorCode, _ topicPartition: TopicPartition, state: inout PartitionState,
                                    leaderHint: KafkaWire.FetchResponse.LeaderIdAndEpoch? = nil, now: Instant) {
        metadata.noteError(error, for: topicPartition, requestLeaderEpoch: state.requestLeaderEpoch)
        if let leaderHint {
            metadata.noteLeaderHint(leaderID: leaderHint.leaderId >= 0 ? NodeID(leaderHint.leaderId) : nil,
                                    leaderEpoch: LeaderEpoch(leaderHint.leaderEpoch), for: topicPartition)
        }
        state.retryNotBefore = now + configuration.retryBackoff
    }

    private mutating func handleListOffsets(_ answer: KafkaWire.ListOffsetsResponse.ListOffsetsPartitionResponse,
                                            topicPartition: TopicPartition, correlation: RequestCorrelation, now: Instant) {
        guard var state = claim(topicPartition, correlation: correlation), case .needsOffsetLookup = state.phase else { return }
        defer { partitionStates[topicPartition] = state }
        let error = KafkaErrorCode(wire: answer.errorCode)
        guard error == .none, Offset(answer.offset) != .unknown else {
            noteError(error, topicPartition, state: &state, now: now)
            return
        }
        state.phase = .fetching
        state.position = Offset(answer.offset)
        state.lastConsumedEpoch = LeaderEpoch(answer.leaderEpoch)
        state.validatedLeaderEpoch = state.requestLeaderEpoch
    }

    private mutating func handleValidation(_ answer: KafkaWire.OffsetForLeaderEpochResponse.EpochEndOffset,
                                           topicPartition: TopicPartition, correlation: RequestCorrelation, now: Instant) {
        guard var state = claim(topicPartition, correlation: correlation), state.phase == .validating else { return }
        defer { partitionStates[topicPartition] = state }
        let error = KafkaErrorCode(wire: answer.errorCode)
        guard error == .none else {
            noteError(error, topicPartition, state: &state, now: now)
            return
        }
        state.validatedLeaderEpoch = state.requestLeaderEpoch
        let leaderEpoch = LeaderEpoch(answer.leaderEpoch)
        let endOffset = Offset(answer.endOffset)
        if leaderEpoch == .none || endOffset == .unknown {
            // The leader knows no epoch at or below ours: nothing to anchor the position to.
            events.append(.positionReset(topicPartition, from: state.position, reason: .offsetOutOfRange))
            state.phase = .needsOffsetLookup(configuration.autoOffsetReset)
            return
        }
        state.phase = .fetching
        if endOffset < state.position {
            events.append(.truncationDetected(topicPartition, position: state.position, resetTo: endOffset))
            state.position = endOffset
            state.lastConsumedEpoch = leaderEpoch
        }
    }

    private mutating func handleFetch(_ answer: KafkaWire.FetchResponse.PartitionData, topicPartition: TopicPartition,
                                      correlation: RequestCorrelation, now: Instant) {
        guard var state = claim(topicPartition, correlation: correlation) else { return }
        defer { partitionStates[topicPartition] = state }
        // Data for a position since abandoned (a validation moved it) must not be delivered.
        guard state.phase == .fetching, state.position == state.requestOffset else { return }
        let error = KafkaErrorCode(wire: answer.errorCode)
        switch error {
        case .none:
            deliver(answer, topicPartition: topicPartition, state: &state, now: now)
        case .offsetOutOfRange:
            events.append(.positionReset(topicPartition, from: state.position, reason: .offsetOutOfRange))
            state.phase = .needsOffsetLookup(configuration.autoOffsetReset)
        default:
            noteError(error, topicPartition, state: &state, leaderHint: answer.currentLeader, now: now)
        }
    }

    /// Delivers the answer's records at or above the position, in order, stopping at a partial
    /// trailing batch (allowed by the protocol) and at the high watermark.
    private mutating func deliver(_ answer: KafkaWire.FetchResponse.PartitionData, topicPartition: TopicPartition,
                                  state: inout PartitionState, now: Instant) {
        let bytes = answer.records
        let highWatermark = Offset(answer.highWatermark)
        var cursor = 0
        while bytes.count - cursor >= RecordBatchLayout.headerSize {
            guard let header = try? RecordBatchHeader.read(bytes, at: cursor), header.totalSize <= bytes.count - cursor else {
                return  // a partial trailing batch: fetch it whole next time
            }
            let batch: RecordBatch
            do {
                batch = try RecordBatch(bytes, at: cursor)
            } catch {
                // Corrupt in transit or at rest: fetch again after the backoff (CORRUPT_MESSAGE is retriable).
                state.retryNotBefore = now + configuration.retryBackoff
                return
            }
            cursor += header.totalSize
            let nextOffset = Offset(header.nextOffset)
            if nextOffset <= state.position { continue }
            // Never beyond the high watermark, even if a broker sent more.
            if highWatermark != .unknown, Offset(header.baseOffset) >= highWatermark { return }
            let batchEpoch = LeaderEpoch(header.partitionLeaderEpoch)
            if header.isControl {
                if highWatermark != .unknown, nextOffset > highWatermark { return }
                state.position = nextOffset
                state.lastConsumedEpoch = batchEpoch
                continue
            }
            guard !batch.isCompressed else {
                events.append(.partitionStopped(topicPartition, reason: "compressed batch (\(batch.compression)) at offset \(header.baseOffset)"))
                state.phase = .stopped
                return
            }
            do {
                try batch.forEachRecord { (view: RecordView) throws(RecordBatchError) in
                    let offset = Offset(header.baseOffset + Int64(view.offsetDelta))
                    guard offset >= state.position else { return }
                    guard highWatermark == .unknown || offset < highWatermark else { return }
                    let record = try view.decode(from: bytes)
                    records.append(ConsumedRecord(topicPartition: topicPartition, offset: offset, leaderEpoch: batchEpoch,
                                                  timestampMilliseconds: header.baseTimestamp + record.timestampDelta,
                                                  key: record.key, value: record.value, headers: record.headers))
                    state.position = offset + 1
                    state.lastConsumedEpoch = batchEpoch
                }
            } catch {
                state.retryNotBefore = now + configuration.retryBackoff
                return
            }
            if highWatermark != .unknown, nextOffset > highWatermark { return }
            // Past offsets the batch skips (compaction) too.
            state.position = nextOffset
            state.lastConsumedEpoch = batchEpoch
        }
    }

    // MARK: Helpers

    private mutating func send(_ request: KafkaRequest, kind: RequestKind, to destination: NodeID,
                               partitions: [TopicPartition], now: Instant) -> ClientRequest {
        let correlation = correlations.allocate()
        pending[correlation] = (kind, now + configuration.requestTimeout)
        for topicPartition in partitions { partitionStates[topicPartition]!.inFlight = correlation }
        return ClientRequest(destination: destination, request: request, correlation: correlation)
    }

    private mutating func releasePartitions(of correlation: RequestCorrelation, now: Instant) {
        for topicPartition in partitionStates.keys.sorted() where partitionStates[topicPartition]!.inFlight == correlation {
            partitionStates[topicPartition]!.inFlight = nil
            partitionStates[topicPartition]!.retryNotBefore = now + configuration.retryBackoff
        }
    }

    private mutating func expireRequests(now: Instant) {
        for correlation in pending.filter({ $0.value.deadline <= now }).keys.sorted() {
            handleTimeout(correlation: correlation, now: now)
        }
    }

    /// Groups sorted per-partition entries into per-topic lists, topics in order.
    private static func group<Partition, Topic>(_ entries: [(TopicPartition, Partition)],
                                                 _ makeTopic: (String, [Partition]) -> Topic) -> [Topic] {
        var names: [String] = []
        var partitions: [[Partition]] = []
        for (topicPartition, partition) in entries {
            if names.last == topicPartition.topic {
                partitions[partitions.count - 1].append(partition)
            } else {
                names.append(topicPartition.topic)
                partitions.append([partition])
            }
        }
        return zip(names, partitions).map { makeTopic($0, $1) }
    }
}
