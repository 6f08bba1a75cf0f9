import TernCore

/// Namespace of the Kafka wire messages generated from Kafka's JSON schemas (see
/// Tools/KafkaProtocolGenerator), e.g. `KafkaWire.ProduceRequest`.
public enum KafkaWire {}

/// Why Kafka wire bytes could not be decoded. Untrusted input produces one of these, never a trap.
/// Positions count from the start of the decoded frame.
public enum KafkaWireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended `needed - available` bytes too early, at byte `position`.
    case truncated(position: Int, needed: Int, available: Int)
    /// A length, count, varint or value the format or a limit does not allow.
    case invalidValue(position: Int, reason: String)
    /// The message ended before the input did.
    case trailingBytes(position: Int, count: Int)

    public var description: String {
        switch self {
        case let .truncated(position, needed, available):
            return "input truncated at byte \(position): needed \(needed) bytes, \(available) left"
        case let .invalidValue(position, reason):
            return "invalid value at byte \(position): \(reason)"
        case let .trailingBytes(position, count):
            return "\(count) trailing bytes after the message at byte \(position)"
        }
    }
}

/// Kafka's UUID: 16 raw bytes on the wire. Tern uses no topic ids, so it is nearly always `.zero`.
public struct KafkaUUID: Hashable, Sendable, CustomStringConvertible {
    public var mostSignificantBits: UInt64
    public var leastSignificantBits: UInt64

    public init(mostSignificantBits: UInt64, leastSignificantBits: UInt64) {
        self.mostSignificantBits = mostSignificantBits
        self.leastSignificantBits = leastSignificantBits
    }

    public static let zero = KafkaUUID(mostSignificantBits: 0, leastSignificantBits: 0)

    public var description: String {
        let high = String(mostSignificantBits, radix: 16)
        let low = String(leastSignificantBits, radix: 16)
        return String(repeating: "0", count: 16 - high.count) + high + String(repeating: "0", count: 16 - low.count) + low
    }
}

/// Limits of the Kafka wire format itself, enforced while decoding.
public enum KafkaWireLimits {
    /// Kafka strings are at most `Int16.max` UTF-8 bytes, compact ones included (Kafka refuses longer).
    public static let maximumStringBytes = Int(Int16.max)
}

/// One tagged field ready to write: its tag and its already encoded value.
public struct KafkaTaggedField: Sendable, Equatable {
    public var tag: UInt32
    public var bytes: [UInt8]

    public init(tag: UInt32, bytes: [UInt8]) {
        self.tag = tag
        self.bytes = bytes
    }
}

// MARK: - Element protocols

/// Something that can be an element of a Kafka array: a generated struct or a primitive.
/// `minimumEncodedBytes` is a true lower bound of one element's size, so a count can be checked
/// against the bytes left before anything is allocated.
public protocol KafkaWireElement: Sendable, Equatable {
    static func minimumEncodedBytes(version: Int16, flexible: Bool) -> Int
    static func decodeElement(from reader: inout KafkaWireReader, version: Int16, flexible: Bool) throws(KafkaWireError) -> Self
    func encodeElement(into writer: inout ByteWriter, version: Int16, flexible: Bool)
}

/// A generated message or nested struct.
public protocol KafkaWireStruct: KafkaWireElement {
    init(decoding reader: inout KafkaWireReader, version: Int16) throws(KafkaWireError)
    func encode(into writer: inout ByteWriter, version: Int16)
    static func minimumEncodedBytes(version: Int16) -> Int
}

extension KafkaWireStruct {
    public static func minimumEncodedBytes(version: Int16, flexible: Bool) -> Int { minimumEncodedBytes(version: version) }
    public static func decodeElement(from reader: inout KafkaWireReader, version: Int16, flexible: Bool) throws(KafkaWireError) -> Self {
        try Self(decoding: &reader, version: version)
    }
    public func encodeElement(into writer: inout ByteWriter, version: Int16, flexible: Bool) {
        encode(into: &writer, version: version)
    }
}

extension Int8: KafkaWireElement {
    public static func minimumEncodedBytes(version: Int16, flexible: Bool) -> Int { 1 }
    public static func decodeElement(from reader: inout KafkaWireReader, version: Int16, flexible: Bool) throws(KafkaWireError) -> Int8 { try reader.readInt8() }
    public func encodeElement(into writer: inout ByteWriter, version: Int16, flexible: Bool) { writer.writeInt8(self) }
}

extension Int16: KafkaWireElement {
    public static func minimumEncodedBytes(version: Int16, flexible: Bool) -> Int { 2 }
    public static func decodeElement(from reader: inout KafkaWireReader, version: Int16, flexible: Bool) throws(KafkaWireError) -> Int16 { try reader.readInt16() }
    public func encodeElement(into writer: inout ByteWriter, version: Int16, flexible: Bool) { writer.writeInt16(self) }
}

extension Int32: KafkaWireElement {
    public static func minimumEncodedBytes(version: Int16, flexible: Bool) -> Int { 4 }
    public static func decodeElement(from reader: inout KafkaWireReader, version: Int16, flexible: Bool) throws(KafkaWireError) -> Int32 { try reader.readInt32() }
    public func encodeElement(into writer: inout ByteWriter, version: Int16, flexible: Bool) { writer.writeInt32(self) }
}

extension Int64: KafkaWireElement {
    public static func minimumEncodedBytes(version: Int16, flexible: Bool) -> Int { 8 }
    public static func decodeElement(from reader: inout KafkaWireReader, version: Int16, flexible: Bool) throws(KafkaWireError) -> Int64 { try reader.readInt64() }
    public func encodeElement(into writer: inout ByteWriter, version: Int16, flexible: Bool) { writer.writeInt64(self) }
}

extension KafkaUUID: KafkaWireElement {
    public static func minimumEncodedBytes(version: Int16, flexible: Bool) -> Int { 16 }
    public static func decodeElement(from reader: inout KafkaWireReader, version: Int16, flexible: Bool) throws(KafkaWireError) -> KafkaUUID { try reader.readUUID() }
    public func encodeElement(into writer: inout ByteWriter, version: Int16, flexible: Bool) { writer.writeKafkaUUID(self) }
}

extension String: KafkaWireElement {
    public static func minimumEncodedBytes(version: Int16, flexible: Bool) -> Int { flexible ? 1 : 2 }
    public static func decodeElement(from reader: inout KafkaWireReader, version: Int16, flexible: Bool) throws(KafkaWireError) -> String {
        try reader.readString(flexible: flexible)
    }
    public func encodeElement(into writer: inout ByteWriter, version: Int16, flexible: Bool) { writer.writeKafkaString(self, flexible: flexible) }
}

// MARK: - Reader

/// Reads Kafka's wire primitives from a slice of a frame without copying it; every read is checked
/// against the end first, and every length or count against the bytes left before allocating.
public struct KafkaWireReader: Sendable {
    public let bytes: ArraySlice<UInt8>
    /// Index into `bytes` (slice indices, not offsets).
    public private(set) var index: Int
    public let endIndex: Int

    public init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
        self.endIndex = bytes.endIndex
    }

    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    private init(bytes: ArraySlice<UInt8>, index: Int, endIndex: Int) {
        self.bytes = bytes
        self.index = index
        self.endIndex = endIndex
    }

    /// Offset from the start of the input, for error messages.
    public var position: Int { index - bytes.startIndex }
    public var remaining: Int { endIndex - index }
    public var isAtEnd: Bool { index >= endIndex }

    @inline(__always)
    private func require(_ count: Int) throws(KafkaWireError) {
        guard count >= 0 else { throw .invalidValue(position: position, reason: "negative length \(count)") }
        guard count <= endIndex - index else {
            throw .truncated(position: position, needed: count, available: endIndex - index)
        }
    }

    @inline(__always)
    private mutating func readInteger<T: FixedWidthInteger>(_: T.Type) throws(KafkaWireError) -> T {
        try require(MemoryLayout<T>.size)
        let offset = index - bytes.startIndex
        let value = bytes.withUnsafeBytes { T(bigEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        index += MemoryLayout<T>.size
        return value
    }

    public mutating func readInt8() throws(KafkaWireError) -> Int8 { try readInteger(Int8.self) }
    public mutating func readInt16() throws(KafkaWireError) -> Int16 { try readInteger(Int16.self) }
    public mutating func readUInt16() throws(KafkaWireError) -> UInt16 { try readInteger(UInt16.self) }
    public mutating func readInt32() throws(KafkaWireError) -> Int32 { try readInteger(Int32.self) }
    public mutating func readInt64() throws(KafkaWireError) -> Int64 { try readInteger(Int64.self) }
    public mutating func readFloat64() throws(KafkaWireError) -> Double { Double(bitPattern: try readInteger(UInt64.self)) }

    /// Kafka reads any non-zero byte as true; so does Tern.
    public mutating func readBool() throws(KafkaWireError) -> Bool { try readInteger(UInt8.self) != 0 }

    public mutating func readUUID() throws(KafkaWireError) -> KafkaUUID {
        let high = try readInteger(UInt64.self)
        let low = try readInteger(UInt64.self)
        return KafkaUUID(mostSignificantBits: high, leastSignificantBits: low)
    }

    /// Unsigned LEB128 of at most 5 bytes (a 32-bit value).
    public mutating func readUnsignedVarint() throws(KafkaWireError) -> UInt32 {
        let start = position
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            guard index < endIndex else { throw .truncated(position: position, needed: 1, available: 0) }
            let byte = bytes[index]
            index += 1
            if shift == 28 && byte > 0x0F { throw .invalidValue(position: start, reason: "unsigned varint longer than 32 bits") }
            result |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// A string or bytes length: classic as int16/int32 (-1 null), compact as uvarint N+1 (0 null).
    /// Returns nil for null; any other negative length is an error.
    private mutating func readLength(flexible: Bool, classicInt16: Bool) throws(KafkaWireError) -> Int? {
        let start = position
        let length: Int
        if flexible {
            let lengthPlusOne = Int(try readUnsignedVarint())
            if lengthPlusOne == 0 { return nil }
            length = lengthPlusOne - 1
        } else {
            length = classicInt16 ? Int(try readInt16()) : Int(try readInt32())
            if length == -1 { return nil }
        }
        guard length >= 0 else { throw .invalidValue(position: start, reason: "negative length \(length)") }
        return length
    }

    private mutating func readUTF8(_ count: Int) throws(KafkaWireError) -> String {
        let start = position
        guard count <= KafkaWireLimits.maximumStringBytes else {
            throw .invalidValue(position: start, reason: "string of \(count) bytes exceeds \(KafkaWireLimits.maximumStringBytes)")
        }
        try require(count)
        guard let text = String(validating: bytes[index..<(index + count)], as: UTF8.self) else {
            throw .invalidValue(position: start, reason: "string is not valid UTF-8")
        }
        index += count
        return text
    }

    public mutating func readString(flexible: Bool) throws(KafkaWireError) -> String {
        let start = position
        guard let length = try readLength(flexible: flexible, classicInt16: true) else {
            throw .invalidValue(position: start, reason: "null where a string is required")
        }
        return try readUTF8(length)
    }

    /// `nullable` says whether this version allows null; a null where it does not is an error.
    public mutating func readNullableString(flexible: Bool, nullable: Bool) throws(KafkaWireError) -> String? {
        let start = position
        guard let length = try readLength(flexible: flexible, classicInt16: true) else {
            guard nullable else { throw .invalidValue(position: start, reason: "null where a string is required") }
            return nil
        }
        return try readUTF8(length)
    }

    private mutating func readByteRun(_ count: Int) throws(KafkaWireError) -> [UInt8] {
        try require(count)
        let result = Array(bytes[index..<(index + count)])
        index += count
        return result
    }

    public mutating func readBytes(flexible: Bool) throws(KafkaWireError) -> [UInt8] {
        let start = position
        guard let length = try readLength(flexible: flexible, classicInt16: false) else {
            throw .invalidValue(position: start, reason: "null where bytes are required")
        }
        return try readByteRun(length)
    }

    public mutating func readNullableBytes(flexible: Bool, nullable: Bool) throws(KafkaWireError) -> [UInt8]? {
        let start = position
        guard let length = try readLength(flexible: flexible, classicInt16: false) else {
            guard nullable else { throw .invalidValue(position: start, reason: "null where bytes are required") }
            return nil
        }
        return try readByteRun(length)
    }

    /// Records are nullable on the wire; null reads as empty, the same as zero length.
    public mutating func readRecords(flexible: Bool) throws(KafkaWireError) -> [UInt8] {
        guard let length = try readLength(flexible: flexible, classicInt16: false) else { return [] }
        return try readByteRun(length)
    }

    /// An array count, nil for null, checked against the bytes left at `minimumElementBytes` each.
    private mutating func readArrayCount(flexible: Bool, minimumElementBytes: Int) throws(KafkaWireError) -> Int? {
        let start = position
        let count: Int
        if flexible {
            let countPlusOne = Int(try readUnsignedVarint())
            if countPlusOne == 0 { return nil }
            count = countPlusOne - 1
        } else {
            count = Int(try readInt32())
            if count == -1 { return nil }
            guard count >= 0 else { throw .invalidValue(position: start, reason: "negative array count \(count)") }
        }
        // Both factors are below 2^32 and 2^20, so the product cannot overflow Int.
        let needed = count * max(1, minimumElementBytes)
        guard needed <= remaining else {
            throw .invalidValue(position: start, reason: "array count \(count) needs at least \(needed) bytes, \(remaining) left")
        }
        return count
    }

    private mutating func readElements<Element: KafkaWireElement>(_ count: Int, version: Int16, flexible: Bool) throws(KafkaWireError) -> [Element] {
        var elements: [Element] = []
        elements.reserveCapacity(count)
        for _ in 0..<count {
            elements.append(try Element.decodeElement(from: &self, version: version, flexible: flexible))
        }
        return elements
    }

    public mutating func readArray<Element: KafkaWireElement>(
        of _: Element.Type, version: Int16, flexible: Bool
    ) throws(KafkaWireError) -> [Element] {
        let start = position
        guard let count = try readArrayCount(flexible: flexible, minimumElementBytes: Element.minimumEncodedBytes(version: version, flexible: flexible)) else {
            throw .invalidValue(position: start, reason: "null where an array is required")
        }
        return try readElements(count, version: version, flexible: flexible)
    }

    public mutating func readNullableArray<Element: KafkaWireElement>(
        of _: Element.Type, version: Int16, flexible: Bool, nullable: Bool
    ) throws(KafkaWireError) -> [Element]? {
        let start = position
        guard let count = try readArrayCount(flexible: flexible, minimumElementBytes: Element.minimumEncodedBytes(version: version, flexible: flexible)) else {
            guard nullable else { throw .invalidValue(position: start, reason: "null where an array is required") }
            return nil
        }
        return try readElements(count, version: version, flexible: flexible)
    }

    /// The number of tagged fields that follow; each takes at least two bytes (tag and size).
    public mutating func readTaggedFieldCount() throws(KafkaWireError) -> Int {
        let start = position
        let count = Int(try readUnsignedVarint())
        guard count * 2 <= remaining else {
            throw .invalidValue(position: start, reason: "\(count) tagged fields cannot fit in \(remaining) bytes")
        }
        return count
    }

    /// One tagged field's tag and a reader over exactly its value; this reader moves past it.
    public mutating func readTaggedField() throws(KafkaWireError) -> (tag: UInt32, reader: KafkaWireReader) {
        let tag = try readUnsignedVarint()
        let size = Int(try readUnsignedVarint())
        try require(size)
        let field = KafkaWireReader(bytes: bytes, index: index, endIndex: index + size)
        index += size
        return (tag, field)
    }

    /// Skips a whole tagged-field section (a struct with no tagged fields Tern knows of).
    public mutating func skipTaggedFields() throws(KafkaWireError) {
        let count = try readTaggedFieldCount()
        for _ in 0..<count { _ = try readTaggedField() }
    }

    /// Throws unless every byte was consumed.
    public func requireEnd() throws(KafkaWireError) {
        guard isAtEnd else { throw .trailingBytes(position: position, count: remaining) }
    }
}

// MARK: - Writer

extension ByteWriter {
    public mutating func writeKafkaUUID(_ uuid: KafkaUUID) {
        writeInteger(uuid.mostSignificantBits)
        writeInteger(uuid.leastSignificantBits)
    }

    private mutating func writeKafkaLength(_ length: Int, flexible: Bool, classicInt16: Bool) {
        if flexible {
            writeUnsignedVarint(UInt32(length + 1))
        } else if classicInt16 {
            writeInt16(Int16(length))
        } else {
            writeInt32(Int32(length))
        }
    }

    private mutating func writeKafkaNull(flexible: Bool, classicInt16: Bool) {
        if flexible {
            writeUnsignedVarint(0)
        } else if classicInt16 {
            writeInt16(-1)
        } else {
            writeInt32(-1)
        }
    }

    /// Traps on strings over Kafka's limit: Tern only sends strings it accepted or made itself.
    public mutating func writeKafkaString(_ text: String, flexible: Bool) {
        let utf8 = text.utf8
        precondition(utf8.count <= KafkaWireLimits.maximumStringBytes, "string of \(utf8.count) bytes exceeds Kafka's limit")
        writeKafkaLength(utf8.count, flexible: flexible, classicInt16: true)
        writeBytes(utf8)
    }

    /// A nil in a version where the field is not nullable is written as the empty string, which
    /// every peer can read, rather than a null it would refuse.
    public mutating func writeKafkaNullableString(_ text: String?, flexible: Bool, nullable: Bool) {
        guard let text else {
            if nullable { writeKafkaNull(flexible: flexible, classicInt16: true) } else { writeKafkaString("", flexible: flexible) }
            return
        }
        writeKafkaString(text, flexible: flexible)
    }

    public mutating func writeKafkaBytes(_ data: [UInt8], flexible: Bool) {
        precondition(data.count < Int(Int32.max), "bytes field of \(data.count) bytes exceeds Kafka's limit")
        writeKafkaLength(data.count, flexible: flexible, classicInt16: false)
        writeBytes(data)
    }

    public mutating func writeKafkaNullableBytes(_ data: [UInt8]?, flexible: Bool, nullable: Bool) {
        guard let data else {
            if nullable { writeKafkaNull(flexible: flexible, classicInt16: false) } else { writeKafkaBytes([], flexible: flexible) }
            return
        }
        writeKafkaBytes(data, flexible: flexible)
    }

    /// Empty records are zero length, never null: librdkafka cannot parse null records.
    public mutating func writeKafkaRecords(_ records: [UInt8], flexible: Bool) {
        writeKafkaBytes(records, flexible: flexible)
    }

    public mutating func writeKafkaArray<Element: KafkaWireElement>(_ elements: [Element], version: Int16, flexible: Bool) {
        precondition(elements.count < Int(Int32.max), "array of \(elements.count) elements exceeds Kafka's limit")
        writeKafkaLength(elements.count, flexible: flexible, classicInt16: false)
        for element in elements { element.encodeElement(into: &self, version: version, flexible: flexible) }
    }

    /// A nil in a version where the array is not nullable is written empty.
    public mutating func writeKafkaNullableArray<Element: KafkaWireElement>(_ elements: [Element]?, version: Int16, flexible: Bool, nullable: Bool) {
        guard let elements else {
            if nullable { writeKafkaNull(flexible: flexible, classicInt16: false) } else { writeKafkaArray([Element](), version: version, flexible: flexible) }
            return
        }
        writeKafkaArray(elements, version: version, flexible: flexible)
    }

    /// A tagged-field section; `fields` must be in ascending tag order (the generator emits them so).
    public mutating func writeKafkaTaggedFields(_ fields: [KafkaTaggedField]) {
        writeUnsignedVarint(UInt32(fields.count))
        for field in fields {
            writeUnsignedVarint(field.tag)
            writeUnsignedVarint(UInt32(field.bytes.count))
            writeBytes(field.bytes)
        }
    }
}
