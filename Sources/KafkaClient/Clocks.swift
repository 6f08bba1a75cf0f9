// Glibc: the tools' shell reads the real clocks here, and only here; the sans-IO clients in Client
// get readings as values. The simulator never links this module.
#if canImport(Glibc)
import Glibc
#endif
import TernCore

/// The clocks of the tools' shell; the sans-IO clients only ever get their readings as values.
public enum Clocks {
    /// For deadlines and measurements: never jumps.
    public static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        let outcome = clock_gettime(CLOCK_MONOTONIC, &now)
        precondition(outcome == 0, "clock_gettime(CLOCK_MONOTONIC) cannot fail on Linux")
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// The `now` handed to the sans-IO producer and consumer: the producer stamps records with
    /// `now` in milliseconds, and Kafka record timestamps are Unix-epoch wall-clock time.
    public static func wallClockNow() -> Instant {
        var now = timespec()
        let outcome = clock_gettime(CLOCK_REALTIME, &now)
        precondition(outcome == 0, "clock_gettime(CLOCK_REALTIME) cannot fail on Linux")
        return Instant(nanoseconds: Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec))
    }
}
