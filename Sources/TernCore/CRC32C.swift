import CChecksum

/// CRC-32C (Castagnoli), the checksum of Kafka's RecordBatch v2 and of every Tern file format.
/// Runs on the CPU's CRC32 instruction when it has one (the C target picks at load time).
public enum CRC32C {
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        tern_crc32c_update(0, bytes.baseAddress, bytes.count)
    }

    public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        tern_crc32c_update(crc, bytes.baseAddress, bytes.count)
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// Checksum of `bytes[range]`, which must lie inside the array.
    public static func checksum(_ bytes: [UInt8], range: Range<Int>) -> UInt32 {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "checksum range outside the buffer")
        return bytes.withUnsafeBytes { checksum(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// The table implementation alone; tests compare it with the hardware path.
    public static func portableChecksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { tern_crc32c_update_portable(0, $0.baseAddress, $0.count) }
    }

    public static var usesHardware: Bool { tern_crc32c_hardware_available() != 0 }
}
