import TernCore

// The compact binary codec Tern nodes use between themselves for the data-plane requests (in the
// simulator every message goes through it, so it runs under every fault). It is not Kafka's wire
// encoding; that maps the same values field by field.
//
// Message:          API key (1 byte) | codec version (1 byte) | body, and nothing after the body
// Body encodings:
//   integers, ids   fixed-width big-endian (ids as Kafka carries them: -1 for "none")
//   error code      int16, one of `KafkaErrorCode`
//   string          unsigned varint byte count, then UTF-8
//   optional string unsigned varint (byte count + 1), 0 for nil
//   list            unsigned varint element count, then the elements
//   optional list   unsigned varint (count + 1), 0 for nil
//   optional struct presence byte (0 or 1), then the fields
//   records         unsigned varint byte count, then the bytes (empty is a zero count, never nil)

/// Bounds on what the data-plane codec accepts. A decoder checks every count and length against
/// these and against the bytes left before it allocates anything.
public enum DataCodecLimits {
    /// Kafka's own limit on topic names, in UTF-8 bytes.
    public static let maximumTopicNameBytes = 249
    /// Longest other string (hosts, racks, cluster and transactional ids), in UTF-8 bytes; Kafka's
    /// int16-length string limit.
    public static let maximumStringBytes = 32_767
    /// Largest records field of one partition.
    public static let maximumRecordsBytes = 64 * 1024 * 1024
    /// Most partitions in one message, summed over all its topics.
    public static let maximumPartitionsPerMessage = 100_000
    /// Most topics in one message.
    public static let maximumTopicsPerMessage = 100_000
    /// Most brokers in a Metadata response.
    public static let maximumBrokersPerMessage = 10_000
    /// Most replicas (or ISR members, or offline replicas) listed for one partition.
    public static let maximumReplicasPerPartition = 1_000
    /// Most aborted transactions listed for one partition of a Fetch response.
    public static let maximumAbortedTransactionsPerPartition = 100_000
}

/// Which request (or response) a data-plane message carries. The values are Kafka's API keys.
public enum DataAPIKey: UInt8, Sendable, CaseIterable {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case initProducerID = 22
    case offsetForLeaderEpoch = 23
}

/// The version of the compact codec this build writes; it reads this one and every older one.
/// Bump it (and branch on the read version) when a body layout changes, so a rolling upgrade
/// never decodes a newer layout as an older one.
public let dataCodecVersion: UInt8 = 0


// MARK: - Element coding

/// One value of a data-plane message body. `minimumEncodedBytes` is a true lower bound on the
/// encoded size: a list's count is checked against it times the bytes left, so a forged count
/// cannot make the decoder allocate ahead of the data.
protocol DataCodable {
    static var minimumEncodedBytes: Int { get }
    func encode(into writer: inout ByteWriter)
    init(decoding reader: inout DataMessageReader) throws(DecodeError)
}

/// The `Topic` of most requests and responses: a name and its partitions, nothing else. Its
/// encoding is shared; a topic with more fields (Metadata's) writes its own.
protocol NamedTopic: DataCodable {
    associatedtype Partition: DataCodable
    var name: String { get }
    var partitions: [Partition] { get }
    init(name: String, partitions: [Partition])
}

extension NamedTopic {
    static var minimumEncodedBytes: Int { 1 + 1 }

    func encode(into writer: inout ByteWriter) {
        writer.writeTopicName(name)
        writer.writePartitions(partitions)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        let name = try reader.readTopicName()
        self.init(name: name, partitions: try reader.readPartitions())
    }
}

/// A `ByteReader` plus the budget one message shares: the partitions left before
/// `maximumPartitionsPerMessage`, taken by every partition list as it is read.
struct DataMessageReader {
    var bytes: ByteReader
    var partitionsLeft = DataCodecLimits.maximumPartitionsPerMessage

    init(_ bytes: ByteReader) { self.bytes = bytes }

    var position: Int { bytes.position }

    mutating func readInt8() throws(DecodeError) -> Int8 { try bytes.readInt8() }
    mutating func readInt16() throws(DecodeError) -> Int16 { try bytes.readInt16() }
    mutating func readInt32() throws(DecodeError) -> Int32 { try bytes.readInt32() }
    mutating func readInt64() throws(DecodeError) -> Int64 { try bytes.readInt64() }
    mutating func readOffset() throws(DecodeError) -> Offset { Offset(try bytes.readInt64()) }
    mutating func readLeaderEpoch() throws(DecodeError) -> LeaderEpoch { LeaderEpoch(try bytes.readInt32()) }

    /// Only 0 and 1, so that every accepted message has exactly one encoding of its flags.
    mutating func readFlag() throws(DecodeError) -> Bool {
        let start = position
        switch try bytes.readUInt8() {
        case 0: return false
        case 1: return true
        case let other: throw .invalidValue(position: start, reason: "flag byte \(other) is neither 0 nor 1")
        }
    }

    /// A node id; -1 is "none" and any other negative id is malformed.
    mutating func readOptionalNodeID() throws(DecodeError) -> NodeID? {
        let start = position
        let raw = try bytes.readInt32()
        if raw == -1 { return nil }
        guard raw >= 0 else { throw .invalidValue(position: start, reason: "negative node id \(raw)") }
        return NodeID(raw)
    }

    mutating func readNodeID() throws(DecodeError) -> NodeID {
        let start = position
        guard let node = try readOptionalNodeID() else { throw .invalidValue(position: start, reason: "node id -1 where a node is required") }
        return node
    }

    mutating func readErrorCode() throws(DecodeError) -> KafkaErrorCode {
        let start = position
        let raw = try bytes.readInt16()
        guard let code = KafkaErrorCode(rawValue: raw) else {
            throw .invalidValue(position: start, reason: "unknown error code \(raw)")
        }
        return code
    }

    mutating func readIsolationLevel() throws(DecodeError) -> IsolationLevel {
        let start = position
        let raw = try bytes.readInt8()
        guard let level = IsolationLevel(rawValue: raw) else {
            throw .invalidValue(position: start, reason: "unknown isolation level \(raw)")
        }
        return level
    }

    /// An unsigned varint length or count, checked against `limit` before anything uses it.
    private mutating func readLength(limit: Int, of what: String) throws(DecodeError) -> Int {
        let start = position
        let length = Int(try bytes.readUnsignedVarint())
        guard length <= limit else {
            throw .invalidValue(position: start, reason: "\(what) of \(length) exceeds the limit \(limit)")
        }
        return length
    }

    mutating func readString(maxBytes: Int = DataCodecLimits.maximumStringBytes) throws(DecodeError) -> String {
        let count = try readLength(limit: maxBytes, of: "string bytes")
        return try bytes.readString(count)
    }

    mutating func readTopicName() throws(DecodeError) -> String {
        try readString(maxBytes: DataCodecLimits.maximumTopicNameBytes)
    }

    mutating func readOptionalString() throws(DecodeError) -> String? {
        let countPlusOne = try readLength(limit: DataCodecLimits.maximumStringBytes + 1, of: "string bytes + 1")
        guard countPlusOne > 0 else { return nil }
        return try bytes.readString(countPlusOne - 1)
    }

    /// Records bytes; `readBytes` checks they are all there before copying.
    mutating func readRecords() throws(DecodeError) -> [UInt8] {
        let count = try readLength(limit: DataCodecLimits.maximumRecordsBytes, of: "records bytes")
        return try bytes.readBytes(count)
    }

    /// A count checked against `limit` and against the bytes left, before any allocation.
    private mutating func readCount(limit: Int, minimumElementBytes: Int, of what: String) throws(DecodeError) -> Int {
        let count = try readLength(limit: limit, of: "\(what) count")
        let needed = count * minimumElementBytes  // both bounded, cannot overflow
        guard needed <= bytes.remaining else {
            throw .truncated(position: position, needed: needed, available: bytes.remaining)
        }
        return count
    }

    mutating func readList<Element: DataCodable>(
        of _: Element.Type = Element.self, limit: Int, what: String
    ) throws(DecodeError) -> [Element] {
        let count = try readCount(limit: limit, minimumElementBytes: Element.minimumEncodedBytes, of: what)
        return try readElements(count)
    }

    mutating func readOptionalList<Element: DataCodable>(
        of _: Element.Type = Element.self, limit: Int, what: String
    ) throws(DecodeError) -> [Element]? {
        let countPlusOne = try readCount(limit: limit + 1, minimumElementBytes: 0, of: "\(what) (+1)")
        guard countPlusOne > 0 else { return nil }
        let count = countPlusOne - 1
        let needed = count * Element.minimumEncodedBytes
        guard needed <= bytes.remaining else {
            throw .truncated(position: position, needed: needed, available: bytes.remaining)
        }
        return try readElements(count)
    }

    /// A partition list: its count also comes out of the message's partition budget.
    mutating func readPartitions<Element: DataCodable>(of _: Element.Type = Element.self) throws(DecodeError) -> [Element] {
        let start = position
        let count = try readLength(limit: DataCodecLimits.maximumPartitionsPerMessage, of: "partitions count")
        guard count <= partitionsLeft else {
            throw .invalidValue(position: start, reason: "more than \(DataCodecLimits.maximumPartitionsPerMessage) partitions in one message")
        }
        let needed = count * Element.minimumEncodedBytes
        guard needed <= bytes.remaining else {
            throw .truncated(position: position, needed: needed, available: bytes.remaining)
        }
        partitionsLeft -= count
        return try readElements(count)
    }

    mutating func readNodeIDs() throws(DecodeError) -> [NodeID] {
        let count = try readCount(limit: DataCodecLimits.maximumReplicasPerPartition, minimumElementBytes: 4, of: "replicas")
        var nodes: [NodeID] = []
        nodes.reserveCapacity(count)
        for _ in 0..<count { nodes.append(try readNodeID()) }
        return nodes
    }

    /// An optional struct's presence byte.
    mutating func readOptional<Element: DataCodable>(_: Element.Type = Element.self) throws(DecodeError) -> Element? {
        guard try readFlag() else { return nil }
        return try Element(decoding: &self)
    }

    private mutating func readElements<Element: DataCodable>(_ count: Int) throws(DecodeError) -> [Element] {
        var elements: [Element] = []
        elements.reserveCapacity(count)
        for _ in 0..<count { elements.append(try Element(decoding: &self)) }
        return elements
    }
}

extension ByteWriter {
    mutating func writeOffset(_ offset: Offset) { writeInt64(offset.rawValue) }
    mutating func writeLeaderEpoch(_ epoch: LeaderEpoch) { writeInt32(epoch.rawValue) }
    mutating func writeFlag(_ flag: Bool) { writeUInt8(flag ? 1 : 0) }
    mutating func writeOptionalNodeID(_ node: NodeID?) { writeInt32(node?.rawValue ?? -1) }
    mutating func writeNodeID(_ node: NodeID) {
        precondition(node.rawValue >= 0, "node id \(node) is negative")
        writeInt32(node.rawValue)
    }
    mutating func writeErrorCode(_ code: KafkaErrorCode) { writeInt16(code.rawValue) }

    mutating func writeDataString(_ text: String, maxBytes: Int = DataCodecLimits.maximumStringBytes) {
        let utf8 = text.utf8
        precondition(utf8.count <= maxBytes, "string of \(utf8.count) bytes exceeds the codec limit \(maxBytes)")
        writeUnsignedVarint(UInt32(utf8.count))
        writeBytes(utf8)
    }

    mutating func writeTopicName(_ name: String) { writeDataString(name, maxBytes: DataCodecLimits.maximumTopicNameBytes) }

    mutating func writeOptionalDataString(_ text: String?) {
        guard let text else {
            writeUnsignedVarint(0)
            return
        }
        let utf8 = text.utf8
        precondition(utf8.count <= DataCodecLimits.maximumStringBytes, "string of \(utf8.count) bytes exceeds the codec limit")
        writeUnsignedVarint(UInt32(utf8.count + 1))
        writeBytes(utf8)
    }

    mutating func writeRecords(_ records: [UInt8]) {
        precondition(records.count <= DataCodecLimits.maximumRecordsBytes, "records of \(records.count) bytes exceed the codec limit")
        writeUnsignedVarint(UInt32(records.count))
        writeBytes(records)
    }

    mutating func writeList<Element: DataCodable>(_ elements: [Element], limit: Int) {
        precondition(elements.count <= limit, "list of \(elements.count) elements exceeds the codec limit \(limit)")
        writeUnsignedVarint(UInt32(elements.count))
        for element in elements { element.encode(into: &self) }
    }

    mutating func writeOptionalList<Element: DataCodable>(_ elements: [Element]?, limit: Int) {
        guard let elements else {
            writeUnsignedVarint(0)
            return
        }
        precondition(elements.count <= limit, "list of \(elements.count) elements exceeds the codec limit \(limit)")
        writeUnsignedVarint(UInt32(elements.count + 1))
        for element in elements { element.encode(into: &self) }
    }

    /// The message-wide partition total is the encoder's caller's business (`DataRequest.encoded`
    /// checks it); each list alone is bounded here.
    mutating func writePartitions<Element: DataCodable>(_ elements: [Element]) {
        writeList(elements, limit: DataCodecLimits.maximumPartitionsPerMessage)
    }

    mutating func writeNodeIDs(_ nodes: [NodeID]) {
        precondition(nodes.count <= DataCodecLimits.maximumReplicasPerPartition, "\(nodes.count) replicas exceed the codec limit")
        writeUnsignedVarint(UInt32(nodes.count))
        for node in nodes { writeNodeID(node) }
    }

    mutating func writeOptional<Element: DataCodable>(_ element: Element?) {
        guard let element else {
            writeFlag(false)
            return
        }
        writeFlag(true)
        element.encode(into: &self)
    }
}

// MARK: - Messages

/// A data-plane request between Tern nodes (and from Tern's clients in the simulator).
public enum DataRequest: Equatable, Sendable {
    case produce(ProduceRequest)
    case fetch(FetchRequest)
    case listOffsets(ListOffsetsRequest)
    case metadata(MetadataRequest)
    case initProducerID(InitProducerIDRequest)
    case offsetForLeaderEpoch(OffsetForLeaderEpochRequest)

    public var apiKey: DataAPIKey {
        switch self {
        case .produce: return .produce
        case .fetch: return .fetch
        case .listOffsets: return .listOffsets
        case .metadata: return .metadata
        case .initProducerID: return .initProducerID
        case .offsetForLeaderEpoch: return .offsetForLeaderEpoch
        }
    }

    /// The message bytes. Traps on values the codec's limits refuse (a topic name over 249 bytes,
    /// more partitions than `maximumPartitionsPerMessage`...): those are bugs in the sender, and a
    /// receiver would refuse them anyway.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.writeUInt8(apiKey.rawValue)
        writer.writeUInt8(dataCodecVersion)
        switch self {
        case let .produce(request): request.encode(into: &writer)
        case let .fetch(request): request.encode(into: &writer)
        case let .listOffsets(request): request.encode(into: &writer)
        case let .metadata(request): request.encode(into: &writer)
        case let .initProducerID(request): request.encode(into: &writer)
        case let .offsetForLeaderEpoch(request): request.encode(into: &writer)
        }
        return writer.take()
    }

    /// Decodes untrusted bytes: a `DecodeError` for anything malformed, over a limit, of a newer
    /// codec version, or followed by trailing bytes; never a trap.
    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        var reader = DataMessageReader(ByteReader(bytes))
        let key = try readMessageHeader(&reader)
        switch key {
        case .produce: self = .produce(try ProduceRequest(decoding: &reader))
        case .fetch: self = .fetch(try FetchRequest(decoding: &reader))
        case .listOffsets: self = .listOffsets(try ListOffsetsRequest(decoding: &reader))
        case .metadata: self = .metadata(try MetadataRequest(decoding: &reader))
        case .initProducerID: self = .initProducerID(try InitProducerIDRequest(decoding: &reader))
        case .offsetForLeaderEpoch: self = .offsetForLeaderEpoch(try OffsetForLeaderEpochRequest(decoding: &reader))
        }
        try requireEnd(reader)
    }
}

/// The answer to a `DataRequest`, with the same API key.
public enum DataResponse: Equatable, Sendable {
    case produce(ProduceResponse)
    case fetch(FetchResponse)
    case listOffsets(ListOffsetsResponse)
    case metadata(MetadataResponse)
    case initProducerID(InitProducerIDResponse)
    case offsetForLeaderEpoch(OffsetForLeaderEpochResponse)

    public var apiKey: DataAPIKey {
        switch self {
        case .produce: return .produce
        case .fetch: return .fetch
        case .listOffsets: return .listOffsets
        case .metadata: return .metadata
        case .initProducerID: return .initProducerID
        case .offsetForLeaderEpoch: return .offsetForLeaderEpoch
        }
    }

    /// The message bytes; traps on values over the codec's limits, as `DataRequest.encoded` does.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.writeUInt8(apiKey.rawValue)
        writer.writeUInt8(dataCodecVersion)
        switch self {
        case let .produce(response): response.encode(into: &writer)
        case let .fetch(response): response.encode(into: &writer)
        case let .listOffsets(response): response.encode(into: &writer)
        case let .metadata(response): response.encode(into: &writer)
        case let .initProducerID(response): response.encode(into: &writer)
        case let .offsetForLeaderEpoch(response): response.encode(into: &writer)
        }
        return writer.take()
    }

    /// Decodes untrusted bytes, with the same guarantees as `DataRequest.init(decoding:)`.
    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        var reader = DataMessageReader(ByteReader(bytes))
        let key = try readMessageHeader(&reader)
        switch key {
        case .produce: self = .produce(try ProduceResponse(decoding: &reader))
        case .fetch: self = .fetch(try FetchResponse(decoding: &reader))
        case .listOffsets: self = .listOffsets(try ListOffsetsResponse(decoding: &reader))
        case .metadata: self = .metadata(try MetadataResponse(decoding: &reader))
        case .initProducerID: self = .initProducerID(try InitProducerIDResponse(decoding: &reader))
        case .offsetForLeaderEpoch: self = .offsetForLeaderEpoch(try OffsetForLeaderEpochResponse(decoding: &reader))
        }
        try requireEnd(reader)
    }
}

private func readMessageHeader(_ reader: inout DataMessageReader) throws(DecodeError) -> DataAPIKey {
    let keyPosition = reader.position
    let rawKey = try reader.bytes.readUInt8()
    guard let key = DataAPIKey(rawValue: rawKey) else {
        throw .invalidValue(position: keyPosition, reason: "unknown data API key \(rawKey)")
    }
    let versionPosition = reader.position
    let version = try reader.bytes.readUInt8()
    guard version <= dataCodecVersion else {
        throw .invalidValue(position: versionPosition, reason: "data codec version \(version) is newer than supported \(dataCodecVersion)")
    }
    return key
}

private func requireEnd(_ reader: DataMessageReader) throws(DecodeError) {
    guard reader.bytes.isAtEnd else {
        throw .invalidValue(position: reader.position, reason: "\(reader.bytes.remaining) trailing bytes after the message")
    }
}
