import TernCore

/// Bounds on what the controller's codecs accept from untrusted bytes. Every count is also checked
/// against the bytes left, so a forged count can never make the decoder allocate ahead of the data.
public enum ControllerCodecLimits {
    /// Longest string (topic names, hosts, config values), in UTF-8 bytes.
    public static let maximumStringBytes = 32_767
    /// Longest list of anything (replicas, topics in a request, partitions in a request).
    public static let maximumListCount = 100_000
}

// The encodings below are shared by the metadata records and the broker↔controller messages:
//   string           unsigned varint byte count, then UTF-8
//   optional string  unsigned varint (byte count + 1), 0 for nil
//   list             unsigned varint element count, then the elements
//   NodeID, epochs   fixed-width big-endian integers
//   UUID             16 bytes

extension ByteWriter {
    mutating func writeCompactString(_ text: String) {
        let utf8 = Array(text.utf8)
        precondition(utf8.count <= ControllerCodecLimits.maximumStringBytes, "string of \(utf8.count) bytes exceeds the codec limit")
        writeUnsignedVarint(UInt32(utf8.count))
        writeBytes(utf8)
    }

    mutating func writeOptionalString(_ text: String?) {
        guard let text else {
            writeUnsignedVarint(0)
            return
        }
        let utf8 = Array(text.utf8)
        precondition(utf8.count <= ControllerCodecLimits.maximumStringBytes, "string of \(utf8.count) bytes exceeds the codec limit")
        writeUnsignedVarint(UInt32(utf8.count + 1))
        writeBytes(utf8)
    }

    mutating func writeCount(_ count: Int) {
        precondition(count <= ControllerCodecLimits.maximumListCount, "list of \(count) elements exceeds the codec limit")
        writeUnsignedVarint(UInt32(count))
    }

    mutating func writeNodeID(_ node: NodeID) { writeInt32(node.rawValue) }

    /// A leader that may be absent, as Kafka carries it: -1 for none.
    mutating func writeOptionalNodeID(_ node: NodeID?) { writeInt32(node?.rawValue ?? -1) }

    mutating func writeNodeIDs(_ nodes: [NodeID]) {
        writeCount(nodes.count)
        for node in nodes { writeNodeID(node) }
    }

    mutating func writeUUID<Identifier: UUIDIdentifier>(_ identifier: Identifier) {
        writeInteger(identifier.high)
        writeInteger(identifier.low)
    }

    mutating func writeList<Element>(_ elements: [Element], _ writeElement: (inout ByteWriter, Element) -> Void) {
        writeCount(elements.count)
        for element in elements { writeElement(&self, element) }
    }
}

extension ByteReader {
    mutating func readCompactString() throws(DecodeError) -> String {
        let start = position
        let count = Int(try readUnsignedVarint())
        guard count <= ControllerCodecLimits.maximumStringBytes else {
            throw .invalidValue(position: start, reason: "string of \(count) bytes exceeds \(ControllerCodecLimits.maximumStringBytes)")
        }
        return try readString(count)
    }

    mutating func readOptionalString() throws(DecodeError) -> String? {
        let start = position
        let countPlusOne = Int(try readUnsignedVarint())
        guard countPlusOne > 0 else { return nil }
        guard countPlusOne - 1 <= ControllerCodecLimits.maximumStringBytes else {
            throw .invalidValue(position: start, reason: "string of \(countPlusOne - 1) bytes exceeds \(ControllerCodecLimits.maximumStringBytes)")
        }
        return try readString(countPlusOne - 1)
    }

    /// A list length, checked against the limit and against the bytes left (each element takes at
    /// least `minimumElementBytes`).
    mutating func readCount(minimumElementBytes: Int) throws(DecodeError) -> Int {
        let start = position
        let count = Int(try readUnsignedVarint())
        guard count <= ControllerCodecLimits.maximumListCount else {
            throw .invalidValue(position: start, reason: "list of \(count) elements exceeds \(ControllerCodecLimits.maximumListCount)")
        }
        guard count * minimumElementBytes <= remaining else {
            throw .truncated(position: position, needed: count * minimumElementBytes, available: remaining)
        }
        return count
    }

    mutating func readNodeID() throws(DecodeError) -> NodeID { NodeID(try readInt32()) }

    /// -1 is "no node"; any other negative id is malformed.
    mutating func readOptionalNodeID() throws(DecodeError) -> NodeID? {
        let start = position
        let raw = try readInt32()
        if raw == -1 { return nil }
        guard raw >= 0 else { throw .invalidValue(position: start, reason: "negative node id \(raw)") }
        return NodeID(raw)
    }

    mutating func readNodeIDs() throws(DecodeError) -> [NodeID] {
        try readList(minimumElementBytes: 4) { (reader: inout ByteReader) throws(DecodeError) in try reader.readNodeID() }
    }

    mutating func readUUID<Identifier: UUIDIdentifier>(_: Identifier.Type = Identifier.self) throws(DecodeError) -> Identifier {
        let high = try readInteger(UInt64.self)
        let low = try readInteger(UInt64.self)
        return Identifier(high: high, low: low)
    }

    mutating func readList<Element>(
        minimumElementBytes: Int,
        _ readElement: (inout ByteReader) throws(DecodeError) -> Element
    ) throws(DecodeError) -> [Element] {
        let count = try readCount(minimumElementBytes: minimumElementBytes)
        var elements: [Element] = []
        elements.reserveCapacity(count)
        for _ in 0..<count { elements.append(try readElement(&self)) }
        return elements
    }

    mutating func readOptionalList<Element>(
        minimumElementBytes: Int,
        _ readElement: (inout ByteReader) throws(DecodeError) -> Element
    ) throws(DecodeError) -> [Element]? {
        guard try readBool() else { return nil }
        return try readList(minimumElementBytes: minimumElementBytes, readElement)
    }

    /// A format version this build can read; newer versions are refused, never guessed at.
    mutating func readVersion(supported: UInt32, of what: String) throws(DecodeError) -> UInt32 {
        let start = position
        let version = try readUnsignedVarint()
        guard version <= supported else {
            throw .invalidValue(position: start, reason: "\(what) version \(version) is newer than supported \(supported)")
        }
        return version
    }

    func requireEnd(of what: String) throws(DecodeError) {
        guard isAtEnd else { throw .invalidValue(position: position, reason: "\(remaining) trailing bytes after \(what)") }
    }
}

extension ByteWriter {
    mutating func writeOptionalList<Element>(_ elements: [Element]?, _ writeElement: (inout ByteWriter, Element) -> Void) {
        guard let elements else {
            writeBool(false)
            return
        }
        writeBool(true)
        writeList(elements, writeElement)
    }
}
