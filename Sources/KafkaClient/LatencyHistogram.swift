/// Latencies in a fixed number of log-linear buckets, so a million samples cost the same memory
/// as ten: each power of two is split into `subBucketCount` equal buckets, which bounds the
/// relative error of a reported percentile by 1 / `subBucketCount` (under 1.6 %).
///
/// Values are nanoseconds. Percentiles are nearest-rank over the recorded samples and report the
/// upper edge of the bucket holding that rank, clamped to the largest value seen, so a reported
/// p99 is never below the true one by more than the bucket width.
public struct LatencyHistogram: Equatable, Sendable {
    /// Sub-buckets per power of two; a power of two itself so bucket edges are exact shifts.
    public static let subBucketCount = 64
    private static let subBucketBits = 6
    /// Values up to 2^maximumExponent ns (about 78 hours) are kept apart; larger ones share the last bucket.
    private static let maximumExponent = 48

    private var counts: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var minimumNanoseconds: Int64 = .max
    public private(set) var maximumNanoseconds: Int64 = 0
    private var sumNanoseconds: Double = 0

    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketIndex(for: Int64(1) << Self.maximumExponent) + 1)
    }

    public var isEmpty: Bool { count == 0 }

    public var meanNanoseconds: Double { count == 0 ? 0 : sumNanoseconds / Double(count) }

    /// Records one sample; negative values (a clock that went back) count as zero.
    public mutating func record(nanoseconds: Int64, occurrences: UInt64 = 1) {
        guard occurrences > 0 else { return }
        let value = max(nanoseconds, 0)
        counts[Self.bucketIndex(for: value)] += occurrences
        count += occurrences
        minimumNanoseconds = min(minimumNanoseconds, value)
        maximumNanoseconds = max(maximumNanoseconds, value)
        sumNanoseconds += Double(value) * Double(occurrences)
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] += other.counts[index] }
        count += other.count
        minimumNanoseconds = min(minimumNanoseconds, other.minimumNanoseconds)
        maximumNanoseconds = max(maximumNanoseconds, other.maximumNanoseconds)
        sumNanoseconds += other.sumNanoseconds
    }

    /// The nearest-rank percentile for `fraction` in 0...1 (0.99 for p99); 0 when empty.
    public func percentileNanoseconds(_ fraction: Double) -> Int64 {
        precondition(fraction >= 0 && fraction <= 1, "a percentile is a fraction from 0 to 1")
        guard count > 0 else { return 0 }
        let rank = max(UInt64((fraction * Double(count)).rounded(.up)), 1)
        var seen: UInt64 = 0
        for (index, bucketCount) in counts.enumerated() where bucketCount > 0 {
            seen += bucketCount
            if seen >= rank {
                return min(max(Self.upperEdge(ofBucket: index), minimumNanoseconds), maximumNanoseconds)
            }
        }
        return maximumNanoseconds
    }

    /// Values below `subBucketCount` get a bucket each; above, the bucket is chosen by the
    /// position of the highest set bit (the power of two) and the next `subBucketBits` bits.
    static func bucketIndex(for value: Int64) -> Int {
        let clamped = min(value, Int64(1) << maximumExponent)
        if clamped < Int64(subBucketCount) { return Int(clamped) }
        let highestBit = 63 - clamped.leadingZeroBitCount
        let shift = highestBit - subBucketBits
        let subBucket = Int(clamped >> Int64(shift)) - subBucketCount
        return subBucketCount + shift * subBucketCount + subBucket
    }

    /// The largest value that falls into bucket `index`.
    static func upperEdge(ofBucket index: Int) -> Int64 {
        if index < subBucketCount { return Int64(index) }
        let shift = (index - subBucketCount) / subBucketCount
        let subBucket = (index - subBucketCount) % subBucketCount
        let lowerEdge = Int64(subBucketCount + subBucket) << Int64(shift)
        return lowerEdge + (Int64(1) << Int64(shift)) - 1
    }
}
