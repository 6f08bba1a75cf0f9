import TernCore

/// The binary form of `RaftMessage`, versioned and compact (varints), for the controller
/// listener and for the simulator, which sends every message as bytes too.
///
///     u8 magic 0x52 ('R') · u8 version (1) · u8 kind · varint from · varint to · uvarlong term · body
///
/// Bodies (`uvarlong` for every index and term, `u8` flags):
///
///     1 voteRequest      flags(bit0 pre-vote, bit1 transfer) · lastLogIndex · lastLogTerm
///     2 voteResponse     flags(bit0 pre-vote, bit1 granted)
///     3 appendEntries    previousIndex · previousTerm · leaderCommit · uvarint count ·
///                        count × (term · u8 kind · uvarint length · payload)   (indexes implied)
///     4 appendAccepted   matchIndex
///     5 appendRejected   rejectedIndex · hintIndex · hintTerm
///     6 heartbeat        commitIndex
///     7 heartbeatResponse, 8 timeoutNow: empty
///
/// Decoding never traps and never allocates more than the input could hold: the whole message is
/// checked against `maximumMessageBytes`, every count and length against its limit and against
/// the bytes left, and the result against `RaftMessage.isWellFormed`. Trailing bytes are an
/// error. A newer version is refused (the quorum runs one version; upgrades would add a
/// negotiation step).
public enum RaftMessageCodec {
    public static let magic: UInt8 = 0x52
    public static let currentVersion: UInt8 = 1
    public static let maximumEntriesPerMessage = 4_096
    public static let maximumPayloadBytes = 4 << 20
    /// Payload bytes of one append beyond which no further entry is added (the first entry always
    /// goes, so one message holds at most this plus one maximal payload).
    public static let maximumEntryBytesPerMessage = 8 << 20
    public static let maximumMessageBytes = 16 << 20

    enum Kind: UInt8 {
        case voteRequest = 1, voteResponse, appendEntries, appendAccepted, appendRejected, heartbeat,
             heartbeatResponse, timeoutNow
    }

    /// Whether `bytes` claim to be a Raft message (a node may multiplex other protocols on the
    /// same connection and dispatch on the first byte).
    public static func isRaftMessage(_ bytes: [UInt8]) -> Bool { bytes.first == magic }

    public static func encode(_ message: RaftMessage) -> [UInt8] {
        var writer = ByteWriter(capacity: 32)
        encode(message, into: &writer)
        return writer.take()
    }

    public static func encode(_ message: RaftMessage, into writer: inout ByteWriter) {
        precondition(message.isWellFormed, "encoding a malformed message: \(message)")
        let start = writer.count
        writer.writeUInt8(magic)
        writer.writeUInt8(currentVersion)
        writer.writeUInt8(kind(of: message.body).rawValue)
        writer.writeVarint(message.from.rawValue)
        writer.writeVarint(message.to.rawValue)
        writer.writeUnsignedVarlong(UInt64(message.term.rawValue))
        encodeBody(message.body, into: &writer)
        precondition(writer.count - start <= maximumMessageBytes, "message of \(writer.count - start) bytes exceeds the codec limit")
    }

    private static func kind(of body: RaftMessageBody) -> Kind {
        switch body {
        case .voteRequest: return .voteRequest
        case .voteResponse: return .voteResponse
        case .appendEntries: return .appendEntries
        case .appendAccepted: return .appendAccepted
        case .appendRejected: return .appendRejected
        case .heartbeat: return .heartbeat
        case .heartbeatResponse: return .heartbeatResponse
        case .timeoutNow: return .timeoutNow
        }
    }

    private static func encodeBody(_ body: RaftMessageBody, into writer: inout ByteWriter) {
        switch body {
        case let .voteRequest(request):
            writer.writeUInt8((request.isPreVote ? 1 : 0) | (request.isLeadershipTransfer ? 2 : 0))
            writer.writeUnsignedVarlong(UInt64(request.lastLogIndex.rawValue))
            writer.writeUnsignedVarlong(UInt64(request.lastLogTerm.rawValue))
        case let .voteResponse(isPreVote, granted):
            writer.writeUInt8((isPreVote ? 1 : 0) | (granted ? 2 : 0))
        case let .appendEntries(append):
            precondition(append.entries.count <= maximumEntriesPerMessage, "too many entries for one message")
            writer.writeUnsignedVarlong(UInt64(append.previousIndex.rawValue))
            writer.writeUnsignedVarlong(UInt64(append.previousTerm.rawValue))
            writer.writeUnsignedVarlong(UInt64(append.leaderCommit.rawValue))
            writer.writeUnsignedVarint(UInt32(append.entries.count))
            for entry in append.entries {
                precondition(entry.payload.count <= maximumPayloadBytes, "payload too large for the codec")
                writer.writeUnsignedVarlong(UInt64(entry.term.rawValue))
                writer.writeUInt8(entry.kind.rawValue)
                writer.writeUnsignedVarint(UInt32(entry.payload.count))
                writer.writeBytes(entry.payload)
            }
        case let .appendAccepted(matchIndex):
            writer.writeUnsignedVarlong(UInt64(matchIndex.rawValue))
        case let .appendRejected(rejectedIndex, hintIndex, hintTerm):
            writer.writeUnsignedVarlong(UInt64(rejectedIndex.rawValue))
            writer.writeUnsignedVarlong(UInt64(hintIndex.rawValue))
            writer.writeUnsignedVarlong(UInt64(hintTerm.rawValue))
        case let .heartbeat(commitIndex):
            writer.writeUnsignedVarlong(UInt64(commitIndex.rawValue))
        case .heartbeatResponse, .timeoutNow:
            break
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> RaftMessage {
        guard bytes.count <= maximumMessageBytes else {
            throw .invalidValue(position: 0, reason: "message of \(bytes.count) bytes exceeds \(maximumMessageBytes)")
        }
        var reader = ByteReader(bytes)
        let magicByte = try reader.readUInt8()
        guard magicByte == magic else { throw .invalidValue(position: 0, reason: "not a Raft message (magic \(magicByte))") }
        let version = try reader.readUInt8()
        guard version == currentVersion else { throw .invalidValue(position: 1, reason: "unsupported Raft message version \(version)") }
        let kindPosition = reader.position
        guard let kind = Kind(rawValue: try reader.readUInt8()) else {
            throw .invalidValue(position: kindPosition, reason: "unknown Raft message kind")
        }
        let from = try readNodeID(&reader)
        let to = try readNodeID(&reader)
        let term = Term(try readNonNegative(&reader))
        let body = try decodeBody(kind, term: term, from: &reader)
        guard reader.isAtEnd else {
            throw .invalidValue(position: reader.position, reason: "\(reader.remaining) bytes after the message")
        }
        let message = RaftMessage(from: from, to: to, term: term, body: body)
        guard message.isWellFormed else {
            throw .invalidValue(position: 0, reason: "inconsistent message: \(message)")
        }
        return message
    }

    private static func decodeBody(_ kind: Kind, term: Term, from reader: inout ByteReader) throws(DecodeError) -> RaftMessageBody {
        switch kind {
        case .voteRequest:
            let flags = try readFlags(&reader, allowed: 0b11)
            let lastIndex = LogIndex(try readNonNegative(&reader))
            let lastTerm = Term(try readNonNegative(&reader))
            return .voteRequest(RaftVoteRequest(isPreVote: flags & 1 != 0, lastLogIndex: lastIndex, lastLogTerm: lastTerm,
                                                isLeadershipTransfer: flags & 2 != 0))
        case .voteResponse:
            let flags = try readFlags(&reader, allowed: 0b11)
            return .voteResponse(isPreVote: flags & 1 != 0, granted: flags & 2 != 0)
        case .appendEntries:
            return .appendEntries(try decodeAppend(&reader))
        case .appendAccepted:
            return .appendAccepted(matchIndex: LogIndex(try readNonNegative(&reader)))
        case .appendRejected:
            let rejected = LogIndex(try readNonNegative(&reader))
            let hintIndex = LogIndex(try readNonNegative(&reader))
            let hintTerm = Term(try readNonNegative(&reader))
            return .appendRejected(rejectedIndex: rejected, hintIndex: hintIndex, hintTerm: hintTerm)
        case .heartbeat:
            return .heartbeat(commitIndex: LogIndex(try readNonNegative(&reader)))
        case .heartbeatResponse:
            return .heartbeatResponse
        case .timeoutNow:
            return .timeoutNow
        }
    }

    /// The smallest encoded entry: a one-byte term, the kind, a one-byte zero length.
    private static let minimumEntryBytes = 3

    private static func decodeAppend(_ reader: inout ByteReader) throws(DecodeError) -> RaftAppendEntries {
        let previousIndex = LogIndex(try readNonNegative(&reader))
        let previousTerm = Term(try readNonNegative(&reader))
        let commit = LogIndex(try readNonNegative(&reader))
        let countPosition = reader.position
        let count = Int(try reader.readUnsignedVarint())
        guard count <= maximumEntriesPerMessage, count <= reader.remaining / minimumEntryBytes else {
            throw .invalidValue(position: countPosition, reason: "entry count \(count) exceeds the limit or the bytes left")
        }
        guard previousIndex.rawValue <= Int64.max - Int64(count) else {
            throw .invalidValue(position: countPosition, reason: "entry indexes overflow")
        }
        var entries: [RaftLogEntry] = []
        entries.reserveCapacity(count)
        var index = previousIndex
        for _ in 0..<count {
            index = index.next
            let entryTerm = Term(try readNonNegative(&reader))
            let kindPosition = reader.position
            guard let kind = RaftEntryKind(rawValue: try reader.readUInt8()) else {
                throw .invalidValue(position: kindPosition, reason: "unknown entry kind")
            }
            let lengthPosition = reader.position
            let length = Int(try reader.readUnsignedVarint())
            guard length <= maximumPayloadBytes else {
                throw .invalidValue(position: lengthPosition, reason: "payload of \(length) bytes exceeds \(maximumPayloadBytes)")
            }
            let payload = try reader.readBytes(length)
            entries.append(RaftLogEntry(index: index, term: entryTerm, kind: kind, payload: payload))
        }
        return RaftAppendEntries(previousIndex: previousIndex, previousTerm: previousTerm, entries: entries, leaderCommit: commit)
    }

    private static func readNodeID(_ reader: inout ByteReader) throws(DecodeError) -> NodeID {
        let position = reader.position
        let raw = try reader.readVarint()
        guard raw >= 0 else { throw .invalidValue(position: position, reason: "negative node id \(raw)") }
        return NodeID(raw)
    }

    private static func readNonNegative(_ reader: inout ByteReader) throws(DecodeError) -> Int64 {
        let position = reader.position
        let raw = try reader.readUnsignedVarlong()
        guard raw <= UInt64(Int64.max) else { throw .invalidValue(position: position, reason: "value \(raw) out of range") }
        return Int64(raw)
    }

    private static func readFlags(_ reader: inout ByteReader, allowed: UInt8) throws(DecodeError) -> UInt8 {
        let position = reader.position
        let flags = try reader.readUInt8()
        guard flags & ~allowed == 0 else { throw .invalidValue(position: position, reason: "unknown flags \(flags)") }
        return flags
    }
}
