import TernCore

/// One sparse index entry: a batch's base offset (relative to the segment's base offset), its byte
/// position in the segment file, and the largest record timestamp in the segment up to and
/// including that batch. Stored as 16 big-endian bytes.
public struct OffsetIndexEntry: Equatable, Sendable {
    public var relativeOffset: UInt32
    public var position: UInt32
    public var maxTimestamp: Int64

    public static let encodedSize = 16

    func encode(into bytes: inout [UInt8]) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: Self.encodedSize))
        bytes.storeBigEndian(relativeOffset, at: start)
        bytes.storeBigEndian(position, at: start + 4)
        bytes.storeBigEndian(maxTimestamp, at: start + 8)
    }

    static func decode(_ bytes: [UInt8], at start: Int) -> OffsetIndexEntry {
        OffsetIndexEntry(relativeOffset: bytes.loadBigEndian(UInt32.self, at: start),
                         position: bytes.loadBigEndian(UInt32.self, at: start + 4),
                         maxTimestamp: bytes.loadBigEndian(Int64.self, at: start + 8))
    }
}

/// The in-memory copy of a segment's sparse offset index. The file is only ever appended to and
/// truncated; entries not yet written are buffered until the next flush.
struct OffsetIndex {
    private(set) var entries: [OffsetIndexEntry] = []
    /// Entries appended since the last `takeUnwritten`, already encoded.
    private var unwritten: [UInt8] = []
    /// Number of entries already written to the file.
    private(set) var writtenCount = 0

    init() {}

    /// Loads entries read from a file. Returns nil when they are not a plausible index for a
    /// segment file of `segmentSize` bytes (a torn or stale index is rebuilt, never trusted).
    static func load(_ bytes: [UInt8], segmentSize: Int64) -> OffsetIndex? {
        guard bytes.count % OffsetIndexEntry.encodedSize == 0 else { return nil }
        var index = OffsetIndex()
        var start = 0
        while start < bytes.count {
            let entry = OffsetIndexEntry.decode(bytes, at: start)
            if let last = index.entries.last {
                guard entry.relativeOffset > last.relativeOffset, entry.position > last.position,
                      entry.maxTimestamp >= last.maxTimestamp else { return nil }
            }
            guard Int64(entry.position) < segmentSize else { return nil }
            index.entries.append(entry)
            start += OffsetIndexEntry.encodedSize
        }
        index.writtenCount = index.entries.count
        return index
    }

    var isEmpty: Bool { entries.isEmpty }
    var last: OffsetIndexEntry? { entries.last }

    mutating func append(_ entry: OffsetIndexEntry) {
        if let last = entries.last {
            precondition(entry.relativeOffset > last.relativeOffset && entry.position > last.position,
                         "offset index entries must strictly increase")
        }
        entries.append(entry)
        entry.encode(into: &unwritten)
    }

    /// The last entry whose offset is at or below `relativeOffset`: where a scan for it starts.
    func floorEntry(relativeOffset: UInt32) -> OffsetIndexEntry? {
        let count = countOfEntries(atOrBelow: relativeOffset)
        return count == 0 ? nil : entries[count - 1]
    }

    /// How many entries start at or below `relativeOffset`.
    func countOfEntries(atOrBelow relativeOffset: UInt32) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].relativeOffset <= relativeOffset { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The last entry whose running largest timestamp is below `timestamp` (they never decrease
    /// along the index, which is what makes it a time index too).
    func lastEntry(withMaxTimestampBelow timestamp: Int64) -> OffsetIndexEntry? {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].maxTimestamp < timestamp { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : entries[low - 1]
    }

    /// The last entry at or before `position` in the segment file.
    func floorEntry(position: UInt32) -> OffsetIndexEntry? {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].position <= position { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : entries[low - 1]
    }

    /// Removes entries for batches at or after byte `position`; returns the file size to truncate
    /// the index file to when some of them were already written.
    mutating func truncate(atPosition position: UInt32) -> Int64? {
        let keep = entries.firstIndex { $0.position >= position } ?? entries.count
        guard keep < entries.count else { return nil }
        entries.removeSubrange(keep...)
        if keep >= writtenCount {
            unwritten.removeSubrange(((keep - writtenCount) * OffsetIndexEntry.encodedSize)...)
            return nil
        }
        unwritten.removeAll()
        writtenCount = keep
        return Int64(keep * OffsetIndexEntry.encodedSize)
    }

    mutating func removeAll() -> Int64? {
        truncate(atPosition: 0)
    }

    /// Encoded entries not yet in the file, and the file position they go to.
    mutating func takeUnwritten() -> (position: Int64, bytes: [UInt8])? {
        guard !unwritten.isEmpty else { return nil }
        let position = Int64(writtenCount * OffsetIndexEntry.encodedSize)
        defer {
            writtenCount = entries.count
            unwritten.removeAll(keepingCapacity: true)
        }
        return (position, unwritten)
    }
}
