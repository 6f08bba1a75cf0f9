/// Which partition a record goes to, as Kafka's default partitioner decides for keyed records,
/// so `tern produce` puts a key where a Java or librdkafka producer (murmur2) would.
public enum KafkaPartitioner {
    /// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed 0x9747b28c, little-endian blocks.
    public static func murmur2(_ bytes: [UInt8]) -> Int32 {
        let multiplier: UInt32 = 0x5bd1_e995
        let shift: UInt32 = 24
        let length = bytes.count
        var hash: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: length)
        var index = 0
        while index + 4 <= length {
            var block = UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16 | UInt32(bytes[index + 3]) << 24
            block = block &* multiplier
            block ^= block >> shift
            block = block &* multiplier
            hash = hash &* multiplier
            hash ^= block
            index += 4
        }
        let remaining = length - index
        if remaining >= 3 { hash ^= UInt32(bytes[index + 2]) << 16 }
        if remaining >= 2 { hash ^= UInt32(bytes[index + 1]) << 8 }
        if remaining >= 1 {
            hash ^= UInt32(bytes[index])
            hash = hash &* multiplier
        }
        hash ^= hash >> 13
        hash = hash &* multiplier
        hash ^= hash >> 15
        return Int32(bitPattern: hash)
    }

    /// `toPositive(murmur2(key)) % partitionCount`, Kafka's choice for a keyed record.
    public static func partition(forKey key: [UInt8], partitionCount: Int32) -> Int32 {
        precondition(partitionCount > 0, "a topic has at least one partition")
        return (murmur2(key) & 0x7fff_ffff) % partitionCount
    }
}
