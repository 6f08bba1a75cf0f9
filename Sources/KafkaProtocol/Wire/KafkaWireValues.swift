/// Special values of Kafka's wire fields that both ends of a connection interpret.

/// ListOffsets' timestamp field: a record timestamp in milliseconds, or one of these.
public enum ListOffsetsTimestamp {
    /// The offset the next record will get (for read_committed, the last stable offset).
    public static let latest: Int64 = -1
    /// The log start offset.
    public static let earliest: Int64 = -2
    /// The record with the largest timestamp (KIP-734, v7+).
    public static let maxTimestamp: Int64 = -3
    /// The first offset still on the broker's own disk (KIP-405, v8+).
    public static let earliestLocal: Int64 = -4
    /// The last offset copied to tiered storage (KIP-1005, v9+).
    public static let latestTiered: Int64 = -5
}

/// Kafka's `isolation_level` (Fetch, ListOffsets): what a consumer may see of transactional data.
public enum IsolationLevel: Int8, Sendable, CaseIterable {
    /// Up to the high watermark, aborted data included.
    case readUncommitted = 0
    /// Up to the last stable offset, aborted transactions listed for the client to drop.
    case readCommitted = 1
}
