import KafkaProtocol
import TernCore

/// Every message between Tern nodes, as it travels: one kind byte, then the body. The simulator
/// sends these bytes too, so the codec runs under every fault.
public enum PeerMessage: Sendable, Equatable {
    /// A Raft message between controllers (the Raft codec's bytes).
    case raft([UInt8])
    /// A broker (or admin) asks the active controller.
    case controllerRequest(correlationID: UInt64, request: ControllerRequest)
    case controllerResponse(correlationID: UInt64, response: ControllerResponse)
    /// The receiver is not the active controller; it names the leader it knows, if any.
    case notController(correlationID: UInt64, leaderHint: NodeID?)
    /// A broker asks for committed metadata entries from `fromOffset` on.
    case fetchMetadata(correlationID: UInt64, fromOffset: Offset)
    /// Committed metadata entries, oldest first, each a batch of records applied together; records
    /// have offsets of their own (as in KRaft), `entry.offset + position`. `committedOffset` is the
    /// offset of the last committed record the sender knows.
    case metadataEntries(correlationID: UInt64, committedOffset: Offset, entries: [MetadataEntry])
    /// A Kafka request from one broker to another (a follower's replica fetch): the whole request
    /// frame, size prefix included, as a client connection carries it.
    case kafkaRequest(correlationID: UInt64, frame: [UInt8])
    /// The answer to a `kafkaRequest`: the whole Kafka response frame, size prefix included.
    case kafkaResponse(correlationID: UInt64, frame: [UInt8])
    /// A client's admin request (CreateTopics and the like) to any broker, which forwards it to
    /// the active controller, as Kafka's brokers do. The answer is a `controllerResponse` with the
    /// same correlation id, or `notController` when no controller answered in time.
    case adminRequest(correlationID: UInt64, request: ControllerRequest)

    public struct MetadataEntry: Sendable, Equatable {
        /// The offset of the first record.
        public var offset: Offset
        public var records: [MetadataRecord]
        public var lastOffset: Offset { offset + Int64(records.count) - 1 }
        public init(offset: Offset, records: [MetadataRecord]) {
            self.offset = offset
            self.records = records
        }
    }

    public enum Kind: UInt8, Sendable {
        case raft = 1, controllerRequest, controllerResponse, notController, fetchMetadata, metadataEntries, kafkaRequest, kafkaResponse,
             adminRequest
    }

    /// Bounds what a peer may claim before anything is allocated for it.
    static let maximumEntriesPerMessage = 4096
    static let maximumRecordsPerEntry = 65_536

    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        switch self {
        case let .raft(bytes):
            writer.writeUInt8(Kind.raft.rawValue)
            writer.writeBytes(bytes)
        case let .controllerRequest(correlationID, request):
            writer.writeUInt8(Kind.controllerRequest.rawValue)
            writer.writeInteger(correlationID)
            writer.writeBytes(request.encoded())
        case let .controllerResponse(correlationID, response):
            writer.writeUInt8(Kind.controllerResponse.rawValue)
            writer.writeInteger(correlationID)
            writer.writeBytes(response.encoded())
        case let .notController(correlationID, leaderHint):
            writer.writeUInt8(Kind.notController.rawValue)
            writer.writeInteger(correlationID)
            writer.writeInt32(leaderHint?.rawValue ?? -1)
        case let .fetchMetadata(correlationID, fromOffset):
            writer.writeUInt8(Kind.fetchMetadata.rawValue)
            writer.writeInteger(correlationID)
            writer.writeInt64(fromOffset.rawValue)
        case let .metadataEntries(correlationID, committedOffset, entries):
            writer.writeUInt8(Kind.metadataEntries.rawValue)
            writer.writeInteger(correlationID)
            writer.writeInt64(committedOffset.rawValue)
            writer.writeUnsignedVarint(UInt32(entries.count))
            for entry in entries {
                writer.writeInt64(entry.offset.rawValue)
                writer.writeBytes(MetadataRecord.encodeBatch(entry.records))
            }
        case let .kafkaRequest(correlationID, frame):
            writer.writeUInt8(Kind.kafkaRequest.rawValue)
            writer.writeInteger(correlationID)
            writer.writeBytes(frame)
        case let .kafkaResponse(correlationID, frame):
            writer.writeUInt8(Kind.kafkaResponse.rawValue)
            writer.writeInteger(correlationID)
            writer.writeBytes(frame)
        case let .adminRequest(correlationID, request):
            writer.writeUInt8(Kind.adminRequest.rawValue)
            writer.writeInteger(correlationID)
            writer.writeBytes(request.encoded())
        }
        return writer.take()
    }

    public init(decoding bytes: [UInt8]) throws(DecodeError) {
        var reader = ByteReader(bytes)
        let kindByte = try reader.readUInt8()
        guard let kind = Kind(rawValue: kindByte) else {
            throw .invalidValue(position: 0, reason: "unknown peer message kind \(kindByte)")
        }
        switch kind {
        case .raft:
            self = .raft(try reader.readBytes(reader.remaining))
        case .controllerRequest:
            let correlationID: UInt64 = try reader.readInteger()
            self = .controllerRequest(correlationID: correlationID,
                                      request: try ControllerRequest(decoding: try reader.readBytes(reader.remaining)))
        case .controllerResponse:
            let correlationID: UInt64 = try reader.readInteger()
            self = .controllerResponse(correlationID: correlationID,
                                       response: try ControllerResponse(decoding: try reader.readBytes(reader.remaining)))
        case .notController:
            let correlationID: UInt64 = try reader.readInteger()
            let hint = try reader.readInt32()
            self = .notController(correlationID: correlationID, leaderHint: hint >= 0 ? NodeID(hint) : nil)
        case .fetchMetadata:
            let correlationID: UInt64 = try reader.readInteger()
            self = .fetchMetadata(correlationID: correlationID, fromOffset: Offset(try reader.readInt64()))
        case .metadataEntries:
            self = try Self.decodeMetadataEntries(&reader)
        case .kafkaRequest:
            let correlationID: UInt64 = try reader.readInteger()
            self = .kafkaRequest(correlationID: correlationID, frame: try reader.readBytes(reader.remaining))
        case .kafkaResponse:
            let correlationID: UInt64 = try reader.readInteger()
            self = .kafkaResponse(correlationID: correlationID, frame: try reader.readBytes(reader.remaining))
        case .adminRequest:
            let correlationID: UInt64 = try reader.readInteger()
            self = .adminRequest(correlationID: correlationID,
                                 request: try ControllerRequest(decoding: try reader.readBytes(reader.remaining)))
        }
        guard reader.isAtEnd else {
            throw .invalidValue(position: reader.position, reason: "\(reader.remaining) bytes after the message")
        }
    }

    private static func decodeMetadataEntries(_ reader: inout ByteReader) throws(DecodeError) -> PeerMessage {
        let correlationID: UInt64 = try reader.readInteger()
        let committed = Offset(try reader.readInt64())
        let count = Int(try reader.readUnsignedVarint())
        guard count <= maximumEntriesPerMessage else {
            throw .invalidValue(position: reader.position, reason: "\(count) metadata entries exceed \(maximumEntriesPerMessage)")
        }
        var entries: [MetadataEntry] = []
        for _ in 0..<count {
            let offset = Offset(try reader.readInt64())
            entries.append(MetadataEntry(offset: offset, records: try MetadataRecord.decodeBatch(from: &reader)))
        }
        return .metadataEntries(correlationID: correlationID, committedOffset: committed, entries: entries)
    }
}

extension MetadataRecord {
    /// The payload of one metadata log entry: records applied together, so a reader never sees a
    /// half-made decision (a broker fenced but its partitions not yet moved).
    public static func encodeBatch(_ records: [MetadataRecord]) -> [UInt8] {
        var writer = ByteWriter()
        writer.writeUnsignedVarint(UInt32(records.count))
        for record in records { record.encode(into: &writer) }
        return writer.take()
    }

    public static func decodeBatch(from reader: inout ByteReader) throws(DecodeError) -> [MetadataRecord] {
        let count = Int(try reader.readUnsignedVarint())
        guard count <= PeerMessage.maximumRecordsPerEntry else {
            throw .invalidValue(position: reader.position, reason: "\(count) records in one entry exceed the limit")
        }
        var records: [MetadataRecord] = []
        for _ in 0..<count { records.append(try MetadataRecord.decode(from: &reader)) }
        return records
    }

    public static func decodeBatch(_ bytes: [UInt8]) throws(DecodeError) -> [MetadataRecord] {
        var reader = ByteReader(bytes)
        let records = try decodeBatch(from: &reader)
        guard reader.isAtEnd else { throw .invalidValue(position: reader.position, reason: "bytes after the records") }
        return records
    }
}
