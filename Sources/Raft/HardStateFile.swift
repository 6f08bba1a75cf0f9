import LogStorage
import TernCore

/// Term and vote in one small file, replaced atomically and durably by LogStorage's
/// `AtomicFileWriter` (temp file, sync, rename, sync directory). A crash leaves the old or the new
/// state, never a mix, and never a vote without its term.
///
/// Writes are serialised. A write requested while one is in flight is coalesced: when the
/// current one ends, the newest requested state is written, under the newest generation, so
/// `durableGeneration >= g` means the state of request `g` (or a newer one) is durable.
///
/// Format (21 bytes): "RAFT" · u8 version (1) · i64 term · i32 votedFor (-1: none) ·
/// u32 CRC-32C of the preceding bytes; big-endian.
struct HardStateFile {
    static let fileName = "quorum-state"
    static let magic: [UInt8] = Array("RAFT".utf8)
    static let version: UInt8 = 1
    static let encodedSize = 21

    private var writer: AtomicFileWriter
    private var waiting: RaftHardState?
    private var generationInFlight: UInt64 = 0
    private(set) var requestedGeneration: UInt64 = 0
    private(set) var durableGeneration: UInt64 = 0

    init(path: String) { writer = AtomicFileWriter(path: path) }

    var path: String { writer.path }

    /// Requests that `state` become durable; returns the generation to wait for.
    mutating func write(_ state: RaftHardState, disk: any Disk) throws(DiskError) -> UInt64 {
        requestedGeneration += 1
        if writer.isIdle {
            try start(state, disk: disk)
        } else {
            waiting = state
        }
        return requestedGeneration
    }

    private mutating func start(_ state: RaftHardState, disk: any Disk) throws(DiskError) {
        waiting = nil
        generationInFlight = requestedGeneration
        _ = try writer.start(contents: Self.encode(state), after: [], disk: disk)
    }

    /// Advances on a sync completion. Returns false if the token is not ours; throws if the sync
    /// failed (fatal for the node).
    mutating func handle(_ completion: SyncCompletion, disk: any Disk) throws(DiskError) -> Bool {
        switch try writer.handle(completion, disk: disk) {
        case .notMine:
            return false
        case .inProgress:
            return true
        case .completed:
            durableGeneration = generationInFlight
            if let waiting { try start(waiting, disk: disk) }
            return true
        }
    }

    // MARK: Format

    static func encode(_ state: RaftHardState) -> [UInt8] {
        var writer = ByteWriter(capacity: encodedSize)
        writer.writeBytes(magic)
        writer.writeUInt8(version)
        writer.writeInt64(state.term.rawValue)
        writer.writeInt32(state.votedFor?.rawValue ?? -1)
        writer.writeUInt32(CRC32C.checksum(writer.bytes))
        return writer.take()
    }

    static func decode(_ bytes: [UInt8]) throws(DecodeError) -> RaftHardState {
        guard bytes.count == encodedSize else {
            throw .invalidValue(position: 0, reason: "\(bytes.count) bytes where \(encodedSize) were expected")
        }
        var reader = ByteReader(bytes)
        guard try reader.readBytes(magic.count) == magic else { throw .invalidValue(position: 0, reason: "bad magic") }
        let version = try reader.readUInt8()
        guard version == Self.version else { throw .invalidValue(position: 4, reason: "unsupported version \(version)") }
        let term = try reader.readInt64()
        let vote = try reader.readInt32()
        let storedChecksum = try reader.readUInt32()
        let computed = CRC32C.checksum(bytes, range: 0..<(encodedSize - 4))
        guard storedChecksum == computed else { throw .invalidValue(position: encodedSize - 4, reason: "CRC-32C mismatch") }
        guard term >= 0, term <= Term.maximum.rawValue, vote >= -1 else { throw .invalidValue(position: 5, reason: "term \(term) or vote \(vote) out of range") }
        return RaftHardState(term: Term(term), votedFor: vote < 0 ? nil : NodeID(vote))
    }

    /// The stored state, or nil if there is none yet (a new node, or a first write that never
    /// became durable, in which case nothing that depended on it was sent).
    static func load(path: String, disk: any Disk) throws(RaftStorageError) -> RaftHardState? {
        guard disk.fileExists(path) else { return nil }
        let bytes: [UInt8]
        do {
            let file = try disk.open(path, create: false)
            defer { disk.close(file) }
            bytes = try disk.read(file, at: 0, count: encodedSize + 1)
        } catch {
            throw .disk(error)
        }
        do {
            return try decode(bytes)
        } catch {
            throw .corruptHardState(path: path, reason: error.description)
        }
    }
}
