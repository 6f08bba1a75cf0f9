import KafkaProtocol
import TernCore

/// A 128-bit identifier carried as 16 big-endian bytes, like Kafka's `Uuid`. Each kind of
/// identifier is its own type so a topic id can never be passed where an incarnation is expected.
public protocol UUIDIdentifier: Hashable, Comparable, Sendable, CustomStringConvertible {
    var high: UInt64 { get }
    var low: UInt64 { get }
    init(high: UInt64, low: UInt64)
}

extension UUIDIdentifier {
    /// Exactly 16 bytes, most significant first.
    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16, "a UUID is 16 bytes, got \(bytes.count)")
        self.init(high: bytes.loadBigEndian(UInt64.self, at: 0), low: bytes.loadBigEndian(UInt64.self, at: 8))
    }

    public var bytes: [UInt8] {
        var writer = ByteWriter(capacity: 16)
        writer.writeInteger(high)
        writer.writeInteger(low)
        return writer.bytes
    }

    public static var zero: Self { Self(high: 0, low: 0) }
    public var isZero: Bool { high == 0 && low == 0 }

    public static func < (lhs: Self, rhs: Self) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }

    /// 32 lowercase hex digits.
    public var description: String { hex16(high) + hex16(low) }
}

private func hex16(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}

/// A topic's identity, which outlives its name: a topic deleted and re-created under the same name
/// gets a new id, so stale requests for the old one can never touch the new one.
public struct TopicID: UUIDIdentifier {
    public let high: UInt64
    public let low: UInt64
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init(kafka uuid: KafkaUUID) { self.init(high: uuid.mostSignificantBits, low: uuid.leastSignificantBits) }

    /// The id as Kafka's wire protocol carries it.
    public var kafkaUUID: KafkaUUID { KafkaUUID(mostSignificantBits: high, leastSignificantBits: low) }
}

/// A broker process's identity, new at every start: tells a restarted broker apart from a retry of
/// the same process.
public struct IncarnationID: UUIDIdentifier {
    public let high: UInt64
    public let low: UInt64
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
}

/// FNV-1a (64-bit) over bytes: a digest that is the same in every process, unlike `Hasher`.
public func stableDigest(_ bytes: [UInt8]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01B3
    }
    return hash
}

/// A SplitMix64 finaliser: spreads the bits of `value` so that nearby inputs give unrelated outputs.
func mixBits(_ value: UInt64) -> UInt64 {
    var mixed = value &+ 0x9E37_79B9_7F4A_7C15
    mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
    mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
    return mixed ^ (mixed >> 31)
}
