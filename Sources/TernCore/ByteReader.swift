/// Why bytes from outside could not be decoded. Untrusted input only ever produces one of these;
/// it never traps.
public enum DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended `needed - available` bytes too early, at byte `position`.
    case truncated(position: Int, needed: Int, available: Int)
    /// A varint ran over its maximum length.
    case malformedVarint(position: Int)
    /// A length, count or value is outside what the format or a configured limit allows.
    case invalidValue(position: Int, reason: String)

    public var description: String {
        switch self {
        case let .truncated(position, needed, available):
            return "input truncated at byte \(position): needed \(needed) bytes, \(available) left"
        case let .malformedVarint(position):
            return "malformed varint at byte \(position)"
        case let .invalidValue(position, reason):
            return "invalid value at byte \(position): \(reason)"
        }
    }
}

/// Reads big-endian integers, varints and byte runs from a byte array, with every read checked
/// against the end of the input. Reads move the cursor; `peek` functions do not.
public struct ByteReader: Sendable {
    public let bytes: [UInt8]
    public private(set) var position: Int
    public let endIndex: Int

    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
        self.position = 0
        self.endIndex = bytes.count
    }

    /// A reader over `bytes[range]`, positions counted in `bytes`.
    public init(_ bytes: [UInt8], range: Range<Int>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "reader range outside the buffer")
        self.bytes = bytes
        self.position = range.lowerBound
        self.endIndex = range.upperBound
    }

    public var remaining: Int { endIndex - position }
    public var isAtEnd: Bool { position >= endIndex }

    @inline(__always)
    public func require(_ count: Int) throws(DecodeError) {
        guard count >= 0 else { throw .invalidValue(position: position, reason: "negative length \(count)") }
        guard count <= endIndex - position else {
            throw .truncated(position: position, needed: count, available: endIndex - position)
        }
    }

    @inline(__always)
    private func loadBigEndian<T: FixedWidthInteger>(_: T.Type, at index: Int) -> T {
        bytes.withUnsafeBytes { T(bigEndian: $0.loadUnaligned(fromByteOffset: index, as: T.self)) }
    }

    @inline(__always)
    public mutating func readInteger<T: FixedWidthInteger>(_ type: T.Type = T.self) throws(DecodeError) -> T {
        try require(MemoryLayout<T>.size)
        let value = loadBigEndian(T.self, at: position)
        position += MemoryLayout<T>.size
        return value
    }

    public mutating func readInt8() throws(DecodeError) -> Int8 { try readInteger() }
    public mutating func readUInt8() throws(DecodeError) -> UInt8 { try readInteger() }
    public mutating func readInt16() throws(DecodeError) -> Int16 { try readInteger() }
    public mutating func readInt32() throws(DecodeError) -> Int32 { try readInteger() }
    public mutating func readUInt32() throws(DecodeError) -> UInt32 { try readInteger() }
    public mutating func readInt64() throws(DecodeError) -> Int64 { try readInteger() }

    public mutating func readBool() throws(DecodeError) -> Bool {
        let byte = try readUInt8()
        return byte != 0
    }

    /// A big-endian integer at `index` without moving the cursor.
    public func peekInteger<T: FixedWidthInteger>(_ type: T.Type = T.self, at index: Int) throws(DecodeError) -> T {
        guard index >= position, index <= endIndex - MemoryLayout<T>.size else {
            throw .truncated(position: index, needed: MemoryLayout<T>.size, available: max(0, endIndex - index))
        }
        return loadBigEndian(T.self, at: index)
    }

    /// Unsigned LEB128, at most 5 bytes (a 32-bit value).
    public mutating func readUnsignedVarint() throws(DecodeError) -> UInt32 {
        let start = position
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            guard position < endIndex else { throw .truncated(position: position, needed: 1, available: 0) }
            let byte = bytes[position]
            position += 1
            if shift == 28 && byte > 0x0F { throw .malformedVarint(position: start) }
            result |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Unsigned LEB128, at most 10 bytes (a 64-bit value).
    public mutating func readUnsignedVarlong() throws(DecodeError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < endIndex else { throw .truncated(position: position, needed: 1, available: 0) }
            let byte = bytes[position]
            position += 1
            if shift == 63 && byte > 0x01 { throw .malformedVarint(position: start) }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Zig-zag signed varint (the record format's `varint`).
    public mutating func readVarint() throws(DecodeError) -> Int32 {
        let raw = try readUnsignedVarint()
        return Int32(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// Zig-zag signed varlong (the record format's `varlong`).
    public mutating func readVarlong() throws(DecodeError) -> Int64 {
        let raw = try readUnsignedVarlong()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    /// `count` bytes as a new array, after checking they are there (never allocates first).
    public mutating func readBytes(_ count: Int) throws(DecodeError) -> [UInt8] {
        try require(count)
        let result = Array(bytes[position..<(position + count)])
        position += count
        return result
    }

    /// The range of the next `count` bytes in `bytes`, consumed without copying.
    public mutating func readRange(_ count: Int) throws(DecodeError) -> Range<Int> {
        try require(count)
        let range = position..<(position + count)
        position += count
        return range
    }

    public mutating func skip(_ count: Int) throws(DecodeError) {
        try require(count)
        position += count
    }

    /// UTF-8 text of `count` bytes; invalid UTF-8 is an error, not a replacement character.
    public mutating func readString(_ count: Int) throws(DecodeError) -> String {
        let start = position
        let range = try readRange(count)
        guard let text = String(validating: bytes[range], as: UTF8.self) else {
            throw .invalidValue(position: start, reason: "string is not valid UTF-8")
        }
        return text
    }
}
