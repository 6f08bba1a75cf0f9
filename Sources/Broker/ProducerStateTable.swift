import KafkaProtocol
import TernCore

// Per-partition idempotent-producer state, with the semantics of Kafka's ProducerStateManager.
//
// The table is derived from the log alone: the leader calls `validate` before appending a client
// batch and `recordAppended` after; followers and recovery call only `recordAppended` for every
// batch they append or replay. Because the leader and the replicas run the same
// `recordAppended` over the same batches, every replica holds the same table, so state survives
// failover; snapshots (ProducerStateSnapshot.swift) bound how much log a restart must replay.

/// The fields of a record batch that producer state depends on.
public struct ProducerBatch: Equatable, Sendable {
    public var producerID: ProducerID
    public var producerEpoch: ProducerEpoch
    /// -1 for control batches and batches without a producer.
    public var baseSequence: Int32
    public var lastOffsetDelta: Int32
    public var maxTimestamp: Int64
    public var isTransactional: Bool
    public var isControl: Bool

    public init(producerID: ProducerID, producerEpoch: ProducerEpoch, baseSequence: Int32, lastOffsetDelta: Int32,
                maxTimestamp: Int64, isTransactional: Bool = false, isControl: Bool = false) {
        self.producerID = producerID
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.lastOffsetDelta = lastOffsetDelta
        self.maxTimestamp = maxTimestamp
        self.isTransactional = isTransactional
        self.isControl = isControl
    }

    public init(_ header: RecordBatchHeader) {
        self.init(producerID: ProducerID(header.producerID), producerEpoch: ProducerEpoch(header.producerEpoch),
                  baseSequence: header.baseSequence, lastOffsetDelta: header.lastOffsetDelta,
                  maxTimestamp: header.maxTimestamp, isTransactional: header.isTransactional,
                  isControl: header.isControl)
    }

    public var hasProducer: Bool { producerID.rawValue >= 0 }

    /// The sequence of the batch's last record. Sequences wrap from Int32.max to 0, as in Kafka's
    /// `DefaultRecordBatch.incrementSequence`.
    public var lastSequence: Int32 { ProducerSequence.advance(baseSequence, by: lastOffsetDelta) }
}

/// Sequence arithmetic, wrapping from Int32.max to 0 as Kafka's producers do.
public enum ProducerSequence {
    public static func advance(_ sequence: Int32, by increment: Int32) -> Int32 {
        precondition(sequence >= 0 && increment >= 0, "sequences and increments are never negative")
        if sequence > Int32.max - increment { return increment - (Int32.max - sequence) - 1 }
        return sequence + increment
    }

    /// Whether `next` directly follows `last`.
    public static func follows(_ next: Int32, after last: Int32) -> Bool {
        Int64(next) == Int64(last) + 1 || (next == 0 && last == Int32.max)
    }
}

/// One appended batch of a producer, as cached for duplicate detection (Kafka's BatchMetadata).
public struct ProducerBatchMetadata: Equatable, Sendable {
    public var firstSequence: Int32
    public var lastSequence: Int32
    public var firstOffset: Offset
    public var lastOffset: Offset
    /// The batch's maxTimestamp, in milliseconds.
    public var timestampMilliseconds: Int64

    public init(firstSequence: Int32, lastSequence: Int32, firstOffset: Offset, lastOffset: Offset, timestampMilliseconds: Int64) {
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.firstOffset = firstOffset
        self.lastOffset = lastOffset
        self.timestampMilliseconds = timestampMilliseconds
    }
}

/// What a partition remembers about one producer id.
public struct ProducerStateEntry: Equatable, Sendable {
    public var producerEpoch: ProducerEpoch
    /// The last `ProducerStateTable.retainedBatchCount` data batches of `producerEpoch`, oldest
    /// first. A new epoch starts with none: older epochs' batches can never be duplicates again.
    public var batches: [ProducerBatchMetadata]
    /// The last offset of the producer's last batch, data or control. Truncation uses it to tell
    /// whether the producer's state could depend on removed offsets.
    public var lastWrittenOffset: Offset

    public init(producerEpoch: ProducerEpoch, batches: [ProducerBatchMetadata], lastWrittenOffset: Offset) {
        self.producerEpoch = producerEpoch
        self.batches = batches
        self.lastWrittenOffset = lastWrittenOffset
    }

    /// The last sequence appended in the current epoch, or nil when the epoch has no data batch yet.
    public var lastSequence: Int32? { batches.last?.lastSequence }

    /// A retained batch of the current epoch with exactly this sequence range.
    public func duplicate(of batch: ProducerBatch) -> ProducerBatchMetadata? {
        guard batch.producerEpoch == producerEpoch else { return nil }
        let lastSequence = batch.lastSequence
        return batches.first { $0.firstSequence == batch.baseSequence && $0.lastSequence == lastSequence }
    }
}

/// The leader's decision about a client batch before it is given offsets.
public enum ProducerAppendVerdict: Equatable, Sendable {
    /// A new batch (or one without a producer id): append it, then call `recordAppended`.
    case append
    /// A retry of a batch already in the log: do not append; answer success with these original
    /// offsets, as Kafka does (not DUPLICATE_SEQUENCE_NUMBER).
    case duplicate(firstOffset: Offset, lastOffset: Offset)
    /// Refuse the batch with this error code.
    case reject(KafkaErrorCode)

    /// The code the Produce response carries.
    public var errorCode: KafkaErrorCode {
        if case let .reject(code) = self { return code }
        return .none
    }
}

/// What `truncate(to:)` could do.
public enum ProducerStateTruncation: Equatable, Sendable {
    /// No producer wrote at or after the truncation offset; the table is exact for the shorter log.
    case exact
    /// Some producer's state depends on removed batches and older batches are no longer cached, so
    /// the table was left untouched: rebuild it from the latest snapshot at or below the
    /// truncation offset (`ProducerStateSnapshotFiles.snapshotToLoad`) plus replay up to it.
    case rebuildRequired
}

/// The idempotent-producer state of one partition (Kafka's ProducerStateManager, without
/// transactions). A value type with no IO, clock or randomness: feed it the same batches and it
/// ends in the same state, whatever the replica.
public struct ProducerStateTable: Equatable, Sendable {
    /// Batches cached per producer for duplicate detection; Kafka's client keeps at most 5 in
    /// flight, so a retry is always among the last 5 (`NUM_BATCHES_TO_RETAIN`).
    public static let retainedBatchCount = 5

    public private(set) var producers: [ProducerID: ProducerStateEntry]
    /// The table reflects every batch below this offset (Kafka's mapEndOffset); a snapshot taken
    /// now is a snapshot at this offset or later.
    public private(set) var endOffset: Offset
    /// The table was built from a log that no longer starts at offset 0 (a restart, or a follower
    /// restarting its log at the leader's log start): producers whose batches retention or
    /// DeleteRecords removed are unknown to it although they exist, so it tells an unknown
    /// producer so (UNKNOWN_PRODUCER_ID). A table that saw the whole history (kept in memory
    /// across retention) knows every producer.
    public var mayHaveForgottenProducers = false

    public init(endOffset: Offset = .zero) {
        self.producers = [:]
        self.endOffset = endOffset
    }

    init(producers: [ProducerID: ProducerStateEntry], endOffset: Offset) {
        self.producers = producers
        self.endOffset = endOffset
    }

    public func entry(for producerID: ProducerID) -> ProducerStateEntry? { producers[producerID] }

    /// Known producer ids in ascending order (never dictionary order).
    public var producerIDs: [ProducerID] { producers.keys.sorted() }

    // MARK: Leader validation

    public func validate(_ header: RecordBatchHeader) -> ProducerAppendVerdict {
        validate(ProducerBatch(header))
    }

    /// Checks a client batch against the producer's state, in the order Kafka's UnifiedLog and
    /// ProducerAppendInfo do: duplicates of the current epoch first, then the epoch, then the
    /// sequence. Expects a batch that passed `RecordBatchValidation` (not a control batch).
    public func validate(_ batch: ProducerBatch) -> ProducerAppendVerdict {
        guard batch.hasProducer else { return .append }
        // The batch validator already refuses these; answering here too keeps the sequence
        // arithmetic below free of negative values whatever the caller did.
        guard batch.baseSequence >= 0, batch.lastOffsetDelta >= 0, batch.producerEpoch.rawValue >= 0, !batch.isControl else {
            return .reject(.invalidRecord)
        }
        guard let entry = producers[batch.producerID] else {
            // Unknown producer. Kafka 2.5+ (KIP-360) accepts any sequence here, on the theory that
            // retention may have deleted the producer's batches. Tern does not: the usual cause
            // is that earlier in-flight batches of a new producer failed (e.g. NOT_LEADER) and
            // this later one reached a new leader first, and accepting it would reorder the
            // producer's records (OUT_OF_ORDER_SEQUENCE_NUMBER; clients bump the epoch). A table
            // rebuilt past deleted data may truly have forgotten the producer: it answers
            // UNKNOWN_PRODUCER_ID with the log start, as Kafka did before KIP-360, and a producer
            // whose acknowledged batches all lie below that log start restarts its sequence.
            if batch.baseSequence == 0 { return .append }
            return .reject(mayHaveForgottenProducers ? .unknownProducerID : .outOfOrderSequenceNumber)
        }
        if let original = entry.duplicate(of: batch) {
            return .duplicate(firstOffset: original.firstOffset, lastOffset: original.lastOffset)
        }
        if batch.producerEpoch < entry.producerEpoch { return .reject(.invalidProducerEpoch) }
        if batch.producerEpoch > entry.producerEpoch {
            return batch.baseSequence == 0 ? .append : .reject(.outOfOrderSequenceNumber)
        }
        guard let lastSequence = entry.lastSequence else {
            // The epoch is known only from a transaction marker: its data starts at 0.
            return batch.baseSequence == 0 ? .append : .reject(.outOfOrderSequenceNumber)
        }
        // A retry older than the cached batches lands here too, as in Kafka.
        return ProducerSequence.follows(batch.baseSequence, after: lastSequence) ? .append : .reject(.outOfOrderSequenceNumber)
    }

    // MARK: Applying batches

    /// Records a batch written to the log at `firstOffset` (the leader after appending; followers
    /// and recovery for every batch they append or replay, producer or not, in offset order).
    ///
    /// Never refuses: whatever a leader once accepted must replay to the same state. A batch of
    /// a different epoch resets the producer's cache (Kafka's `maybeUpdateProducerEpoch`); a
    /// control batch (transaction marker) changes only the epoch.
    public mutating func recordAppended(_ header: RecordBatchHeader, firstOffset: Offset) {
        recordAppended(ProducerBatch(header), firstOffset: firstOffset)
    }

    public mutating func recordAppended(_ batch: ProducerBatch, firstOffset: Offset) {
        precondition(batch.lastOffsetDelta >= 0, "a batch covers at least one offset")
        precondition(firstOffset >= endOffset, "batches are recorded in offset order: \(firstOffset) is below \(endOffset)")
        let lastOffset = firstOffset + Int64(batch.lastOffsetDelta)
        endOffset = lastOffset + 1
        guard batch.hasProducer else { return }

        var entry = producers[batch.producerID]
            ?? ProducerStateEntry(producerEpoch: batch.producerEpoch, batches: [], lastWrittenOffset: lastOffset)
        if entry.producerEpoch != batch.producerEpoch {
            entry.producerEpoch = batch.producerEpoch
            entry.batches.removeAll()
        }
        entry.lastWrittenOffset = lastOffset
        if !batch.isControl && batch.baseSequence >= 0 {
            if entry.batches.count == Self.retainedBatchCount { entry.batches.removeFirst() }
            entry.batches.append(ProducerBatchMetadata(
                firstSequence: batch.baseSequence, lastSequence: batch.lastSequence,
                firstOffset: firstOffset, lastOffset: lastOffset, timestampMilliseconds: batch.maxTimestamp))
        }
        producers[batch.producerID] = entry
    }

    /// Notes that the log continues at `offset` without producer batches in between (e.g. a
    /// snapshot is about to be taken at the log end offset).
    public mutating func advanceEndOffset(to offset: Offset) {
        precondition(offset >= endOffset, "the end offset never moves back except by truncation")
        endOffset = offset
    }

    /// `snapshot` (or an empty table) brought forward by the log's batches, using each header's
    /// baseOffset. Batches that start below the snapshot's end offset are already reflected in
    /// it and skipped, so the caller may replay whole segments.
    public static func rebuild<Batches: Sequence>(from snapshot: ProducerStateTable = ProducerStateTable(),
                                                  replaying batches: Batches) -> ProducerStateTable
    where Batches.Element == RecordBatchHeader {
        var table = snapshot
        for header in batches where Offset(header.baseOffset) >= table.endOffset {
            table.recordAppended(header, firstOffset: Offset(header.baseOffset))
        }
        return table
    }

    // MARK: Truncation

    /// The table for the log truncated to `offset` (offsets at and above it removed), when that is
    /// computable from the table alone; see `ProducerStateTruncation`.
    public mutating func truncate(to offset: Offset) -> ProducerStateTruncation {
        guard offset < endOffset else { return .exact }
        // A yes/no question over all entries, so dictionary order cannot matter.
        if producers.values.contains(where: { $0.lastWrittenOffset >= offset }) { return .rebuildRequired }
        endOffset = offset
        return .exact
    }
}
