import TernCore

/// Which topic a partition directory belongs to, in `partition.metadata` (Kafka's file name): the
/// topic's id, which a topic deleted and created again under the same name does not share. The
/// directory name says only `<topic>-<partition>`, so without this file a broker that missed a
/// deletion would take the old topic's log for the new one's. Written once, atomically and
/// durably, before the log accepts its first append; never changed. Text, closed by a CRC-32C.
public struct PartitionMetadata: Equatable, Sendable {
    /// The topic id as 32 lowercase hexadecimal digits (LogStorage does not know the id's type).
    public var topicID: String

    public static let fileName = "partition.metadata"
    static let magicLine = "tern-partition-metadata 1"

    public init(topicID: String) {
        precondition(Self.isValidTopicID(topicID), "a topic id is 32 lowercase hexadecimal digits, got '\(topicID)'")
        self.topicID = topicID
    }

    static func isValidTopicID(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.count == 32 && bytes.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
            || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    public func encode() -> [UInt8] {
        let text = Self.magicLine + "\n" + "topic-id \(topicID)\n"
        var bytes = Array(text.utf8)
        bytes += Array("crc32c \(CRC32C.checksum(bytes))\n".utf8)
        return bytes
    }

    /// Why a metadata file could not be read.
    public struct FormatError: Error, Equatable, Sendable, CustomStringConvertible {
        public let reason: String
        public var description: String { reason }
    }

    public static func decode(_ bytes: [UInt8]) throws(FormatError) -> PartitionMetadata {
        guard bytes.count <= 256, let text = String(validating: bytes, as: UTF8.self) else {
            throw FormatError(reason: "not a short UTF-8 text")
        }
        let lines = text.split(ascii: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count == 4, lines[3].isEmpty, lines[0] == magicLine else {
            throw FormatError(reason: "expected '\(magicLine)', a topic id and a checksum")
        }
        let covered = Array((lines[0] + "\n" + lines[1] + "\n").utf8)
        guard lines[2] == "crc32c \(CRC32C.checksum(covered))" else { throw FormatError(reason: "checksum mismatch") }
        let words = lines[1].split(ascii: " ").map(String.init)
        guard words.count == 2, words[0] == "topic-id", isValidTopicID(words[1]) else {
            throw FormatError(reason: "expected 'topic-id <32 hexadecimal digits>', found '\(lines[1])'")
        }
        return PartitionMetadata(topicID: words[1])
    }

    /// What a partition directory says about its topic.
    public enum Found: Equatable, Sendable {
        /// Neither file records a topic: a new directory whose first writes did not reach the
        /// disk (it then holds no data: appends wait for the metadata file), or one written
        /// before topic ids were recorded.
        case absent
        case topicID(String)
        /// `partition.metadata` is missing or damaged, and the checkpoint's copy names the topic:
        /// the file is to be written again.
        case topicIDFromCheckpoint(String)
        /// `partition.metadata` does not decode (rot, or not Tern's) and no checkpoint names the
        /// topic: whose data the directory holds is unknown.
        case unreadable

        /// The topic id either file records, if one does.
        public var recordedTopicID: String? {
            switch self {
            case let .topicID(recorded): return recorded
            case let .topicIDFromCheckpoint(recorded): return recorded
            case .absent, .unreadable: return nil
            }
        }
    }

    /// Reads `partition.metadata` of `directory`, and where it is missing or damaged, the topic id
    /// the checkpoint repeats. Disk errors are thrown: they say nothing of the files.
    public static func read(directory: String, disk: any Disk) throws(DiskError) -> Found {
        let fileBytes = try smallFile(joinPath(directory, fileName), disk: disk, limit: 256)
        let found = decodeFile(fileBytes)
        if case .topicID = found { return found }
        let checkpointBytes = try smallFile(joinPath(directory, PartitionCheckpoint.fileName), disk: disk, limit: 16 << 20)
        guard let bytes = checkpointBytes, let recorded = (try? PartitionCheckpoint.decode(bytes))?.topicID else { return found }
        return .topicIDFromCheckpoint(recorded)
    }

    /// `partition.metadata` alone: `.absent`, `.topicID` or `.unreadable`.
    static func readFile(directory: String, disk: any Disk) throws(DiskError) -> Found {
        decodeFile(try smallFile(joinPath(directory, fileName), disk: disk, limit: 256))
    }

    private static func decodeFile(_ bytes: [UInt8]?) -> Found {
        guard let bytes else { return .absent }
        guard let metadata = try? decode(bytes) else { return .unreadable }
        return .topicID(metadata.topicID)
    }

    /// The bytes of a file (nil if there is none); a file larger than `limit` reads as empty.
    private static func smallFile(_ path: String, disk: any Disk, limit: Int64) throws(DiskError) -> [UInt8]? {
        guard disk.fileExists(path) else { return nil }
        let file = try disk.open(path, create: false)
        defer { disk.close(file) }
        let size = try disk.size(file)
        guard size <= limit else { return [] }
        return try disk.read(file, at: 0, count: Int(size))
    }
}
