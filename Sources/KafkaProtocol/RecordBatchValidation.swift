import TernCore

extension RecordBatch {
    /// Kafka's default `max.message.bytes` (1 MiB plus the 12-byte log overhead).
    public static let defaultMaximumMessageBytes = 1_048_588

    /// Checks the records of one partition of a Produce request (v3+) as a leader checks a batch
    /// from a client (Kafka's ProduceRequest, UnifiedLog and LogValidator), before it assigns
    /// offsets. `bytes` must be exactly one batch. In order:
    ///
    /// 1. header present, magic 2, size ≤ `maximumMessageBytes` (checked before the CRC is computed);
    /// 2. length within the bytes, CRC-32C, `lastOffsetDelta + 1 == recordsCount > 0`, a known
    ///    compression codec, and no bytes after the batch;
    /// 3. baseOffset 0 (the leader assigns offsets), not a control batch (only coordinators write
    ///    transaction markers);
    /// 4. producer fields: a producerId ≥ 0 needs producerEpoch ≥ 0 and baseSequence ≥ 0, a
    ///    producerId below 0 must be -1 (none), and a transactional batch needs a producer;
    /// 5. uncompressed batches only: every record well-formed, record lengths consuming the
    ///    records section exactly, and each record's offsetDelta equal to its index. Compressed
    ///    batches stay opaque (see `RecordBatch`).
    ///
    /// Left to the broker, which has the state for them: sequence and epoch continuity against
    /// the producer's history, timestamp bounds (needs the clock and topic config), keys on
    /// compacted topics, and the request's transactional id matching the transactional bit.
    /// Allocates nothing when the batch is valid.
    public static func validateProduce(_ bytes: [UInt8], maximumMessageBytes: Int) throws(RecordBatchError) -> RecordBatch {
        let header = try RecordBatchHeader.read(bytes)
        guard header.magic == RecordBatchLayout.currentMagic else { throw .unsupportedMagic(header.magic) }
        guard header.totalSize <= maximumMessageBytes else {
            throw .tooLarge(size: header.totalSize, limit: maximumMessageBytes)
        }
        let batch = try RecordBatch(bytes)
        guard bytes.count == header.totalSize else { throw .trailingBytes(count: bytes.count - header.totalSize) }
        guard header.baseOffset == 0 else { throw .invalidBaseOffset(header.baseOffset) }
        guard !header.isControl else { throw .invalidControlBatch("clients may not write control batches") }
        try validateProducerFields(header)
        if !batch.isCompressed {
            var iterator = try batch.recordIterator()
            while let record = try iterator.next() {
                guard record.offsetDelta == record.index else {
                    throw .recordOffsetMismatch(index: record.index, offsetDelta: record.offsetDelta)
                }
            }
        }
        return batch
    }

    static func validateProducerFields(_ header: RecordBatchHeader) throws(RecordBatchError) {
        if header.producerID >= 0 {
            guard header.producerEpoch >= 0 else {
                throw .invalidProducerFields("producerId \(header.producerID) with producerEpoch \(header.producerEpoch)")
            }
            guard header.baseSequence >= 0 else {
                throw .invalidProducerFields("producerId \(header.producerID) with baseSequence \(header.baseSequence)")
            }
        } else {
            guard header.producerID == -1 else {
                throw .invalidProducerFields("producerId \(header.producerID) is neither -1 (none) nor a producer id")
            }
            guard !header.isTransactional else {
                throw .invalidProducerFields("transactional batch without a producerId")
            }
        }
    }
}
