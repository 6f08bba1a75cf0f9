import SimWorld
import TernCore

/// A running hash of everything a run did, equal in every process for equal runs (never
/// `Hasher`, which Swift seeds per process). Each 64-bit word goes through the SplitMix64
/// finalizer together with the state, so order matters and single-bit changes spread.
public struct TraceHash: Sendable, Equatable, CustomStringConvertible {
    public private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    public init() {}

    public mutating func combine(_ word: UInt64) {
        var mixed = (value ^ word) &+ 0x9E37_79B9_7F4A_7C15
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        value = mixed ^ (mixed >> 31)
    }

    public var description: String { hexadecimal(value) }
}

/// FNV-1a over bytes: the digest of a message payload in the trace.
func payloadDigest(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01B3
    }
    return hash
}

/// Sixteen lowercase hex digits.
func hexadecimal(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

/// "12.000345001": seconds with all nine nanosecond digits, so trace lines sort and diff.
func traceTime(_ instant: Instant) -> String {
    let nanoseconds = instant.nanoseconds
    let sign = nanoseconds < 0 ? "-" : ""
    let magnitude = nanoseconds.magnitude
    let fraction = String(magnitude % 1_000_000_000)
    return sign + String(magnitude / 1_000_000_000) + "." + String(repeating: "0", count: 9 - fraction.count) + fraction
}

/// What a trace line is about: one node, one directed link, or the whole cluster.
enum TraceSubject: CustomStringConvertible {
    case node(NodeID)
    case link(NodeID, NodeID)
    case cluster

    var word: UInt64 {
        switch self {
        case let .node(id): return 1 << 62 | UInt64(UInt32(bitPattern: id.rawValue))
        case let .link(source, destination):
            return 2 << 62 | UInt64(UInt32(bitPattern: source.rawValue)) << 31 | UInt64(UInt32(bitPattern: destination.rawValue))
        case .cluster: return 3 << 62
        }
    }

    var description: String {
        switch self {
        case let .node(id): return "n\(id)"
        case let .link(source, destination): return "n\(source)->n\(destination)"
        case .cluster: return "-"
        }
    }
}

/// The kinds of trace records; the raw value goes into the hash.
enum TraceKind: UInt64 {
    case start = 1, tick, message, syncCompleted, send, halt, drop, duplicate, held, fault, heal, phase, violation, end, world
    /// A client connection opened, or a frame sent on one.
    case connection
    /// A node heard something on a client connection.
    case connectionEvent
    /// The operator asked the node for a controlled shutdown.
    case shutdownRequested

    var name: String {
        switch self {
        case .start: return "start"
        case .tick: return "tick"
        case .message: return "message"
        case .syncCompleted: return "sync-completed"
        case .send: return "send"
        case .halt: return "halt"
        case .drop: return "drop"
        case .duplicate: return "duplicate"
        case .held: return "held"
        case .fault: return "fault"
        case .heal: return "heal"
        case .phase: return "phase"
        case .violation: return "violation"
        case .end: return "end"
        case .world: return "world"
        case .connection: return "connection"
        case .connectionEvent: return "connection-event"
        case .shutdownRequested: return "shutdown-requested"
        }
    }
}

/// Records the run: every record goes into the hash as words (time, subject, kind, up to three
/// detail words), and, only when a sink is attached, is also formatted as a readable line
/// `time subject kind details`. Formatting is skipped entirely without a sink, so tracing costs a
/// few multiplications per record in ordinary runs.
struct SimulationTrace {
    private(set) var hash = TraceHash()
    private(set) var recordCount = 0
    let sink: ((String) -> Void)?

    init(sink: ((String) -> Void)?) {
        self.sink = sink
    }

    mutating func record(
        _ time: Instant, _ subject: TraceSubject, _ kind: TraceKind,
        _ first: UInt64 = 0, _ second: UInt64 = 0, _ third: UInt64 = 0,
        details: () -> String = { "" }
    ) {
        recordCount += 1
        hash.combine(UInt64(bitPattern: time.nanoseconds))
        hash.combine(subject.word)
        hash.combine(kind.rawValue)
        hash.combine(first)
        hash.combine(second)
        hash.combine(third)
        guard let sink else { return }
        let text = details()
        sink(traceTime(time) + " " + subject.description + " " + kind.name + (text.isEmpty ? "" : " " + text))
    }
}
