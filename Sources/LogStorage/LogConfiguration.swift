import KafkaProtocol
import TernCore

/// Per-partition storage settings, named after Kafka's topic configs.
public struct LogConfiguration: Sendable, Equatable {
    /// `segment.bytes`: roll to a new segment once the active one would exceed this size.
    public var segmentBytes: Int64 = 1 << 30
    /// `segment.ms`: roll once the active segment's first batch is this old.
    public var segmentMilliseconds: Int64 = 7 * 24 * 3_600_000
    /// `index.interval.bytes`: bytes of batches between two sparse offset-index entries.
    public var indexIntervalBytes: Int = 4096
    /// `retention.bytes`: delete the oldest segments while the log is larger (-1: unlimited).
    public var retentionBytes: Int64 = -1
    /// `retention.ms`: delete segments whose newest record is older (-1: forever).
    public var retentionMilliseconds: Int64 = 7 * 24 * 3_600_000
    /// `message.timestamp.type`: with `logAppendTime` the leader stamps each batch it appends
    /// with its wall clock (the batch's max timestamp and timestamp-type bit; records untouched).
    public var messageTimestampType: TimestampType = .createTime
    /// Size of the buffer used to scan segments during recovery and reads.
    public var scanBufferBytes: Int = 1 << 20
    /// What recovery does with an invalid tail past the recovery point. Usually it is a write torn
    /// by a crash and never synced, and is cut (false). But latent corruption of synced data that
    /// the recovery point does not yet cover looks the same; a replica, which may hold records
    /// nobody else has, keeps the tail and reports it as `corruption` (true) until its owner has
    /// made sure another replica holds them and calls `discardFromCorruption()`.
    public var keepsInvalidTailForRepair = false

    public init() {}

    /// Largest segment the 32-bit positions of the offset index can address.
    public static let maximumSegmentBytes: Int64 = Int64(Int32.max)

    public func validated() -> LogConfiguration {
        precondition(segmentBytes > RecordBatchSizeLimits.minimumBatchBytes && segmentBytes <= Self.maximumSegmentBytes,
                     "segment.bytes must be between 62 bytes and 2 GiB")
        precondition(indexIntervalBytes > 0, "index.interval.bytes must be positive")
        precondition(scanBufferBytes >= 4096, "scan buffer must hold at least 4 KiB")
        return self
    }
}

public enum RecordBatchSizeLimits {
    /// A RecordBatch v2 header with no records.
    public static let minimumBatchBytes: Int64 = 61
}
