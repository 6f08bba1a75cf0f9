/// A point in time in integer nanoseconds since an arbitrary origin (process start, or zero in the
/// simulator). The core only ever receives time as a value; it never reads a clock.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static let zero = Instant(nanoseconds: 0)

    public static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
    public static func + (lhs: Instant, rhs: Duration) -> Instant { Instant(nanoseconds: lhs.nanoseconds + rhs.nanoseconds) }
    public static func - (lhs: Instant, rhs: Duration) -> Instant { Instant(nanoseconds: lhs.nanoseconds - rhs.nanoseconds) }
    public static func - (lhs: Instant, rhs: Instant) -> Duration { Duration(nanoseconds: lhs.nanoseconds - rhs.nanoseconds) }
    public static func += (lhs: inout Instant, rhs: Duration) { lhs.nanoseconds += rhs.nanoseconds }

    public var milliseconds: Int64 { nanoseconds / 1_000_000 }
    public var description: String { Duration(nanoseconds: nanoseconds).description }
}

/// A span of time in integer nanoseconds. Shadows `Swift.Duration` inside Tern on purpose: the core
/// needs a plain integer with value semantics that serialises and hashes identically everywhere.
public struct Duration: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = Duration(nanoseconds: 0)
    public static func nanoseconds(_ value: Int64) -> Duration { Duration(nanoseconds: value) }
    public static func microseconds(_ value: Int64) -> Duration { Duration(nanoseconds: value * 1_000) }
    public static func milliseconds(_ value: Int64) -> Duration { Duration(nanoseconds: value * 1_000_000) }
    public static func seconds(_ value: Int64) -> Duration { Duration(nanoseconds: value * 1_000_000_000) }

    public static func < (lhs: Duration, rhs: Duration) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
    public static func + (lhs: Duration, rhs: Duration) -> Duration { Duration(nanoseconds: lhs.nanoseconds + rhs.nanoseconds) }
    public static func - (lhs: Duration, rhs: Duration) -> Duration { Duration(nanoseconds: lhs.nanoseconds - rhs.nanoseconds) }
    public static func * (lhs: Duration, rhs: Int64) -> Duration { Duration(nanoseconds: lhs.nanoseconds * rhs) }
    public static func / (lhs: Duration, rhs: Int64) -> Duration { Duration(nanoseconds: lhs.nanoseconds / rhs) }

    public var milliseconds: Int64 { nanoseconds / 1_000_000 }
    public var seconds: Double { Double(nanoseconds) / 1e9 }

    public var description: String {
        let magnitude = nanoseconds.magnitude
        if magnitude >= 1_000_000_000 { return "\(formatFixed(Double(nanoseconds) / 1e9, places: 3))s" }
        if magnitude >= 1_000_000 { return "\(formatFixed(Double(nanoseconds) / 1e6, places: 3))ms" }
        if magnitude >= 1_000 { return "\(formatFixed(Double(nanoseconds) / 1e3, places: 1))µs" }
        return "\(nanoseconds)ns"
    }
}

/// Fixed-point formatting without Foundation (the core must not import it).
public func formatFixed(_ value: Double, places: Int) -> String {
    precondition(places >= 0 && places <= 9, "formatFixed supports 0 to 9 decimal places")
    guard value.isFinite else { return String(value) }
    var scale: Double = 1
    for _ in 0..<places { scale *= 10 }
    let scaled = (value * scale).rounded()
    let negative = scaled < 0
    let whole = Int64(scaled.magnitude)
    let divisor = Int64(scale)
    let integerPart = whole / divisor
    var text = (negative ? "-" : "") + String(integerPart)
    if places > 0 {
        let fraction = String(whole % divisor)
        text += "." + String(repeating: "0", count: places - fraction.count) + fraction
    }
    return text
}
