import Glibc
import TernCore

/// The shells' clocks, read here and only here; the state machines below get readings as values.
public enum Clocks {
    /// For deadlines and measurements: never jumps.
    public static func monotonicNanoseconds() -> Int64 { read(CLOCK_MONOTONIC) }

    public static func monotonicMilliseconds() -> Int64 { monotonicNanoseconds() / 1_000_000 }

    /// The monotonic clock as an `Instant`: the `now` a node host hands its node.
    public static func monotonicNow() -> Instant { Instant(nanoseconds: monotonicNanoseconds()) }

    /// Unix-epoch wall-clock time: record timestamps, log lines. It may jump.
    public static func wallClockNanoseconds() -> Int64 { read(CLOCK_REALTIME) }

    /// The `now` handed to the sans-IO producer and consumer: the producer stamps records with
    /// `now` in milliseconds, and Kafka record timestamps are Unix-epoch wall-clock time.
    public static func wallClockNow() -> Instant { Instant(nanoseconds: wallClockNanoseconds()) }

    private static func read(_ clock: clockid_t) -> Int64 {
        var now = timespec()
        let outcome = clock_gettime(clock, &now)
        precondition(outcome == 0, "clock_gettime cannot fail on Linux for a clock it knows")
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
