/// SplitMix64: used only to expand seeds into xoshiro state, as its authors recommend.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}

/// xoshiro256**: the seeded generator every random choice in Tern goes through. The core never
/// uses a global random source; a generator is always passed in, so one seed decides a whole run.
public struct DeterministicRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64
    public let seed: UInt64

    public init(seed: UInt64) {
        self.seed = seed
        var expander = SplitMix64(seed: seed)
        s0 = expander.next(); s1 = expander.next(); s2 = expander.next(); s3 = expander.next()
        precondition(s0 | s1 | s2 | s3 != 0, "xoshiro state must not be all zero")
    }

    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let shifted = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= shifted
        s3 = rotateLeft(s3, 45)
        return result
    }

    /// An independent stream for one component, derived from this generator's seed and a label, so
    /// that adding a component (or drawing more numbers in one) never reshuffles the others.
    public func stream(_ label: String) -> DeterministicRandom {
        DeterministicRandom(seed: mixSeed(seed, stableHash(label)))
    }

    /// An independent stream per numbered instance (node 3's disk, link 2→5...).
    public func stream(_ label: String, _ index: Int) -> DeterministicRandom {
        DeterministicRandom(seed: mixSeed(mixSeed(seed, stableHash(label)), UInt64(bitPattern: Int64(index))))
    }

    /// A uniform integer in `0..<bound` without modulo bias.
    public mutating func next(below bound: UInt64) -> UInt64 {
        precondition(bound > 0, "bound must be positive")
        return next(upperBound: bound)
    }

    public mutating func int(in range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &self)
    }

    public mutating func int64(in range: ClosedRange<Int64>) -> Int64 {
        Int64.random(in: range, using: &self)
    }

    /// True with the given probability (0...1).
    public mutating func chance(_ probability: Double) -> Bool {
        if probability <= 0 { return false }
        if probability >= 1 { return true }
        return unitInterval() < probability
    }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func unitInterval() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    public mutating func duration(in range: ClosedRange<Duration>) -> Duration {
        Duration(nanoseconds: int64(in: range.lowerBound.nanoseconds...range.upperBound.nanoseconds))
    }

    public mutating func fill(_ bytes: inout [UInt8]) {
        var index = 0
        while index < bytes.count {
            var word = next()
            let end = min(index + 8, bytes.count)
            while index < end { bytes[index] = UInt8(truncatingIfNeeded: word); word >>= 8; index += 1 }
        }
    }
}

@inline(__always)
private func rotateLeft(_ value: UInt64, _ count: UInt64) -> UInt64 {
    (value << count) | (value >> (64 - count))
}

private func mixSeed(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var expander = SplitMix64(seed: a ^ (b &* 0x9E37_79B9_7F4A_7C15))
    return expander.next()
}

/// FNV-1a over UTF-8: a hash that is the same in every process, unlike `Hasher`, which Swift seeds
/// per process.
public func stableHash(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01B3
    }
    return hash
}
