import TernCore

/// How long one machine's syncs take, when it differs from the rest of the cluster: a slow disk
/// (every sync takes long) or a stalling one (most syncs are quick, a few take long).
public struct DiskLatency: Sendable, Equatable, CustomStringConvertible {
    /// Each sync's latency, drawn uniformly, unless it stalls.
    public var syncLatency: ClosedRange<Duration>
    /// Probability that a sync stalls instead, taking `stallLatency`.
    public var stallProbability: Double
    public var stallLatency: ClosedRange<Duration>

    public init(syncLatency: ClosedRange<Duration>, stallProbability: Double = 0,
                stallLatency: ClosedRange<Duration> = .milliseconds(100)...(.seconds(1))) {
        precondition(syncLatency.lowerBound >= .zero && stallLatency.lowerBound >= .zero, "sync latency must not be negative")
        precondition(stallProbability >= 0 && stallProbability <= 1, "a probability is within 0...1")
        self.syncLatency = syncLatency
        self.stallProbability = stallProbability
        self.stallLatency = stallLatency
    }

    package func apply(to configuration: inout SimDisk.Configuration) {
        configuration.syncLatency = syncLatency
        configuration.syncStallProbability = stallProbability
        configuration.syncStallLatency = stallLatency
    }

    /// "syncs 100–640 ms" or "syncs 0.2–5 ms, 2.5% stall 100–1000 ms".
    public var description: String {
        var text = "syncs " + formatMilliseconds(syncLatency)
        if stallProbability > 0 {
            text += ", \(formatFixed(stallProbability * 100, places: 1))% stall " + formatMilliseconds(stallLatency)
        }
        return text
    }
}

/// "0.2–5 ms": a duration range in milliseconds, with one decimal below 10 ms.
package func formatMilliseconds(_ range: ClosedRange<Duration>) -> String {
    func text(_ duration: Duration) -> String {
        let milliseconds = Double(duration.nanoseconds) / 1_000_000
        return milliseconds < 10 ? formatFixed(milliseconds, places: milliseconds == milliseconds.rounded() ? 0 : 1)
                                 : formatFixed(milliseconds, places: 0)
    }
    return text(range.lowerBound) + "–" + text(range.upperBound) + " ms"
}
