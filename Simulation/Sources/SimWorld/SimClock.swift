import TernCore

/// The clock one simulated machine shows its node: simulated time plus an offset, plus a drift
/// accumulated since the drift last changed. The scheduler's own time only moves forward; what a
/// node sees may run fast, slow, or jump. With `isMonotonic` a node never sees time go back: the
/// clock holds still instead (a monotonic clock under NTP slewing), so node code that asserts
/// monotonic time stays valid while skew still reaches it.
///
/// The clock belongs to the machine, so it survives process restarts.
public struct SimClock: Sendable, Equatable {
    public private(set) var offset: Duration
    public private(set) var driftPartsPerMillion: Int64 = 0
    /// Simulated instant from which the current drift accumulates.
    private var driftAnchor: Instant = .zero
    private var lastReading: Instant?
    public let isMonotonic: Bool

    public init(offset: Duration, isMonotonic: Bool) {
        self.offset = offset
        self.isMonotonic = isMonotonic
    }

    /// What the clock shows at simulated `now`, without recording it.
    public func reading(at now: Instant) -> Instant {
        let raw = now + offset + accumulatedDrift(at: now)
        guard isMonotonic, let last = lastReading else { return raw }
        return max(raw, last)
    }

    /// What the node sees at `now`; remembered, so a monotonic clock never goes back.
    public mutating func observe(at now: Instant) -> Instant {
        let shown = reading(at: now)
        lastReading = shown
        return shown
    }

    /// Starts running fast (positive) or slow (negative) from `now`; what was accumulated so far
    /// stays in the offset.
    public mutating func setDrift(partsPerMillion: Int64, at now: Instant) {
        precondition(partsPerMillion.magnitude <= 100_000, "clock drift is at most 10%")
        offset = offset + accumulatedDrift(at: now)
        driftAnchor = now
        driftPartsPerMillion = partsPerMillion
    }

    /// Steps the clock by `amount` (negative: backwards).
    public mutating func jump(by amount: Duration) {
        offset = offset + amount
    }

    private func accumulatedDrift(at now: Instant) -> Duration {
        guard driftPartsPerMillion != 0 else { return .zero }
        let elapsed = (now - driftAnchor).nanoseconds
        // Full width, so long runs with large drift cannot overflow.
        let product = elapsed.multipliedFullWidth(by: driftPartsPerMillion)
        let (quotient, _) = Int64(1_000_000).dividingFullWidth(product)
        return Duration(nanoseconds: quotient)
    }
}
