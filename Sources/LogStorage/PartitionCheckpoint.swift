import TernCore

/// The durable state of a partition log besides its segments, kept in one small file written
/// atomically so the four values can never disagree after a crash: where the log starts, how far
/// it is known to be durable (recovery scans from there), the high watermark, and the leader
/// epoch of each range of offsets. Text, one value per line, closed by a CRC-32C of what precedes.
/// A topic partition's checkpoint also repeats its topic id, the second copy of
/// `partition.metadata`: either file alone still says whose the data is.
public struct PartitionCheckpoint: Equatable, Sendable {
    public var logStartOffset: Offset
    public var recoveryPoint: Offset
    public var highWatermark: Offset
    public var leaderEpochs: [LeaderEpochCache.Entry]
    /// 32 lowercase hexadecimal digits; nil for a log of no topic (the metadata log) or one from
    /// before topic ids were recorded.
    public var topicID: String?

    public static let fileName = "partition.checkpoint"
    static let magicLine = "tern-partition-checkpoint 1"

    public init(logStartOffset: Offset, recoveryPoint: Offset, highWatermark: Offset, leaderEpochs: [LeaderEpochCache.Entry],
                topicID: String? = nil) {
        self.logStartOffset = logStartOffset
        self.recoveryPoint = recoveryPoint
        self.highWatermark = highWatermark
        self.leaderEpochs = leaderEpochs
        self.topicID = topicID
    }

    public func encode() -> [UInt8] {
        var text = Self.magicLine + "\n"
        text += "log-start-offset \(logStartOffset)\n"
        text += "recovery-point \(recoveryPoint)\n"
        text += "high-watermark \(highWatermark)\n"
        text += "leader-epochs \(leaderEpochs.count)\n"
        for entry in leaderEpochs { text += "\(entry.epoch) \(entry.startOffset)\n" }
        if let topicID { text += "topic-id \(topicID)\n" }
        var bytes = Array(text.utf8)
        bytes += Array("crc32c \(CRC32C.checksum(bytes))\n".utf8)
        return bytes
    }

    /// Why a checkpoint file could not be read: the line (1-based) and what was wrong with it.
    public struct FormatError: Error, Equatable, Sendable, CustomStringConvertible {
        public let line: Int
        public let reason: String
        public init(line: Int, reason: String) {
            self.line = line
            self.reason = reason
        }
        public var description: String { "line \(line): \(reason)" }
    }

    public static func decode(_ bytes: [UInt8]) throws(FormatError) -> PartitionCheckpoint {
        guard let text = String(validating: bytes, as: UTF8.self) else { throw FormatError(line: 1, reason: "not UTF-8") }
        let lines = text.split(ascii: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == magicLine else { throw FormatError(line: 1, reason: "expected '\(magicLine)'") }
        func value(_ lineIndex: Int, _ key: String) throws(FormatError) -> Int64 {
            guard lineIndex < lines.count else { throw FormatError(line: lineIndex + 1, reason: "missing '\(key)'") }
            let words = lines[lineIndex].split(ascii: " ")
            guard words.count == 2, words[0] == key, let number = Int64(words[1]) else {
                throw FormatError(line: lineIndex + 1, reason: "expected '\(key) <integer>', found '\(lines[lineIndex])'")
            }
            return number
        }
        let logStart = try value(1, "log-start-offset")
        let recovery = try value(2, "recovery-point")
        let highWatermark = try value(3, "high-watermark")
        let count = try value(4, "leader-epochs")
        guard count >= 0, count <= 1_000_000, lines.count >= 6 + Int(count) else {
            throw FormatError(line: 5, reason: "leader epoch count \(count) does not match the file")
        }
        var entries: [LeaderEpochCache.Entry] = []
        for lineIndex in 5..<(5 + Int(count)) {
            let words = lines[lineIndex].split(ascii: " ")
            guard words.count == 2, let epoch = Int32(words[0]), let start = Int64(words[1]), epoch >= 0, start >= 0 else {
                throw FormatError(line: lineIndex + 1, reason: "expected '<epoch> <start offset>', found '\(lines[lineIndex])'")
            }
            entries.append(.init(epoch: LeaderEpoch(epoch), startOffset: Offset(start)))
        }
        var crcLine = 5 + Int(count)
        var topicID: String?
        if crcLine < lines.count, lines[crcLine].hasPrefix("topic-id ") {
            let words = lines[crcLine].split(ascii: " ").map(String.init)
            guard words.count == 2, PartitionMetadata.isValidTopicID(words[1]) else {
                throw FormatError(line: crcLine + 1, reason: "expected 'topic-id <32 hexadecimal digits>', found '\(lines[crcLine])'")
            }
            topicID = words[1]
            crcLine += 1
        }
        let covered = lines[..<crcLine].joined(separator: "\n") + "\n"
        let stored = try value(crcLine, "crc32c")
        guard stored == Int64(CRC32C.checksum(Array(covered.utf8))) else {
            throw FormatError(line: crcLine + 1, reason: "checksum mismatch")
        }
        guard logStart >= 0, recovery >= 0, highWatermark >= 0 else {
            throw FormatError(line: 2, reason: "offsets must not be negative")
        }
        return PartitionCheckpoint(logStartOffset: Offset(logStart), recoveryPoint: Offset(recovery),
                                   highWatermark: Offset(highWatermark), leaderEpochs: entries, topicID: topicID)
    }
}
