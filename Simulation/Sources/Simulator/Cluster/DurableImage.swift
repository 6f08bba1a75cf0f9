import KafkaProtocol
import LogStorage
import Raft
import SimWorld
import TernCore

/// Which image of a simulated disk a reader looks at.
enum DiskImage: Sendable, Equatable {
    /// What a crash that keeps nothing unsynced leaves, as the node's writes left it (latent
    /// corruption undone: rot is the disk's fault, not a missing sync).
    case durable
    /// What reads see now: the page cache.
    case volatile
}

/// A directory's segment files in one image of a `SimDisk`, read as the durability oracle needs
/// them: record batches by their framing, independently of LogStorage's own reader (an oracle
/// that reused the code it checks would share its bugs).
struct Segment {
    var baseOffset: Int64
    var file: InspectedFile

    /// The segment files (`<20 digits>.log`) of `directory`, ascending by base offset, and the
    /// directory's other files.
    static func files(in directory: String, of disk: SimDisk, image: DiskImage) -> (segments: [Segment], others: [InspectedFile]) {
        let files: [InspectedFile]?
        switch image {
        case .durable: files = disk.durableFilesAsWritten(in: directory)
        case .volatile: files = disk.volatileFiles(in: directory)
        }
        var segments: [Segment] = []
        var others: [InspectedFile] = []
        for file in files ?? [] {
            if let base = baseOffset(fileName: file.name) { segments.append(Segment(baseOffset: base, file: file)) } else { others.append(file) }
        }
        // Names are 20 zero-padded digits: name order is offset order.
        return (segments, others)
    }

    static func baseOffset(fileName name: String) -> Int64? {
        guard name.utf8.count == 24, name.hasSuffix(".log") else { return nil }
        let digits = name.utf8.prefix(20)
        guard digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
        return Int64(String(decoding: digits, as: UTF8.self))
    }
}

/// The framing of one record batch in a segment image.
struct FramedBatch: Equatable {
    var position: Int
    var baseOffset: Int64
    var totalSize: Int
    var partitionLeaderEpoch: Int32
    var checksum: UInt32
    var lastOffsetDelta: Int32

    var nextOffset: Int64 { baseOffset + Int64(lastOffsetDelta) + 1 }

    /// Whether the bytes the CRC covers still match it.
    func checksumMatches(in bytes: [UInt8]) -> Bool {
        CRC32C.checksum(bytes, range: (position + RecordBatchLayout.crcCoveredStart)..<(position + totalSize)) == checksum
    }

    /// Walks the batches of `bytes` from `start` while `body` returns true, stopping at the
    /// first one that is not whole (a torn or short tail) or not framed as a v2 batch.
    static func forEach(in bytes: [UInt8], from start: Int = 0, _ body: (FramedBatch) -> Bool) {
        var position = start
        while position + RecordBatchLayout.headerSize <= bytes.count {
            let length = bytes.loadBigEndian(Int32.self, at: position + RecordBatchLayout.batchLength)
            let totalSize = Int(length) + RecordBatchLayout.logOverhead
            guard totalSize >= RecordBatchLayout.headerSize, totalSize <= bytes.count - position,
                  Int8(bitPattern: bytes[position + RecordBatchLayout.magic]) == RecordBatchLayout.currentMagic else { return }
            let batch = FramedBatch(
                position: position, baseOffset: bytes.loadBigEndian(Int64.self, at: position + RecordBatchLayout.baseOffset),
                totalSize: totalSize,
                partitionLeaderEpoch: bytes.loadBigEndian(Int32.self, at: position + RecordBatchLayout.partitionLeaderEpoch),
                checksum: bytes.loadBigEndian(UInt32.self, at: position + RecordBatchLayout.crc),
                lastOffsetDelta: bytes.loadBigEndian(Int32.self, at: position + RecordBatchLayout.lastOffsetDelta))
            guard batch.lastOffsetDelta >= 0, body(batch) else { return }
            position += totalSize
        }
    }
}

/// A record batch as a producer sent it, which a Produce answer acknowledges. The leader stamps
/// its base offset and leader epoch, which the CRC does not cover; everything else (producer id,
/// sequence, records) the CRC does, so CRC and offset span name the batch on every replica.
public struct ProducedBatch: Hashable, Sendable {
    public var checksum: UInt32
    public var lastOffsetDelta: Int32

    public init(checksum: UInt32, lastOffsetDelta: Int32) {
        self.checksum = checksum
        self.lastOffsetDelta = lastOffsetDelta
    }

    /// The batches back to back in a Produce request's records, or nil if they are not framed
    /// as whole v2 batches (the leader refuses those).
    static func batches(in records: [UInt8]) -> [ProducedBatch]? {
        var batches: [ProducedBatch] = []
        var end = 0
        FramedBatch.forEach(in: records) { batch in
            batches.append(ProducedBatch(checksum: batch.checksum, lastOffsetDelta: batch.lastOffsetDelta))
            end = batch.position + batch.totalSize
            return true
        }
        return end == records.count && !batches.isEmpty ? batches : nil
    }

    /// Whether `directory` holds this batch at `baseOffset`, whole and with the bytes its CRC
    /// covers, in the given image of `disk`. Durable segments are read through `scans`, which
    /// resume where the last reading of each file stopped.
    func isHeld(at baseOffset: Offset, in directory: String, on disk: SimDisk, image: DiskImage,
                scans: inout [String: SegmentScan]) -> Bool {
        // Segments are contiguous: the batch lives in the last one starting at or below it. Any
        // earlier one is tried too, in case a crash left stale segment files behind.
        for segment in Segment.files(in: directory, of: disk, image: image).segments.reversed()
        where segment.baseOffset <= baseOffset.rawValue {
            let bytes = segment.file.contents
            let found: FramedBatch?
            if let version = segment.file.version {
                let path = joinPath(directory, segment.file.name)
                var scan = scans.removeValue(forKey: path) ?? SegmentScan(validatesChecksums: false)
                scan.refresh(version: version, bytes: bytes)
                found = scan.batch(at: baseOffset.rawValue)
                scans[path] = scan
            } else {
                found = Self.find(baseOffset.rawValue, in: bytes)
            }
            if let found {
                return found.checksum == checksum && found.lastOffsetDelta == lastOffsetDelta && found.checksumMatches(in: bytes)
            }
        }
        return false
    }

    private static func find(_ baseOffset: Int64, in bytes: [UInt8]) -> FramedBatch? {
        var found: FramedBatch?
        FramedBatch.forEach(in: bytes) { batch in
            if batch.baseOffset == baseOffset { found = batch }
            return batch.baseOffset < baseOffset
        }
        return found
    }
}

/// The durable segments of one directory, each read on through its scan once, to find any number
/// of batches in them by checksum, whatever offsets a leader gave them.
struct ScannedSegments {
    private var segments: [(segment: Segment, scan: SegmentScan)] = []

    /// Reads `directory` in the durable image of `disk`, resuming each segment where `scans`
    /// left it.
    init(directory: String, on disk: SimDisk, scans: inout [String: SegmentScan]) {
        for segment in Segment.files(in: directory, of: disk, image: .durable).segments {
            guard let version = segment.file.version else { continue }
            let path = joinPath(directory, segment.file.name)
            var scan = scans.removeValue(forKey: path) ?? SegmentScan(validatesChecksums: false)
            scan.refresh(version: version, bytes: segment.file.contents)
            scans[path] = scan
            segments.append((segment, scan))
        }
    }

    var isEmpty: Bool { segments.isEmpty }

    /// The base offsets at which the directory holds `batch`, each as `ProducedBatch.isHeld`
    /// judges it: by the batch at that offset in the last segment that has one.
    func baseOffsets(of batch: ProducedBatch) -> [Offset] {
        var offsets: [Offset] = []
        for (segment, scan) in segments {
            for candidate in scan.batches(withChecksum: batch.checksum) where candidate.lastOffsetDelta == batch.lastOffsetDelta {
                let holder = segments.last { $0.segment.baseOffset <= candidate.baseOffset && $0.scan.batch(at: candidate.baseOffset) != nil }
                guard holder?.segment.baseOffset == segment.baseOffset, holder?.scan.batch(at: candidate.baseOffset) == candidate,
                      candidate.checksumMatches(in: segment.file.contents) else { continue }
                offsets.append(Offset(candidate.baseOffset))
            }
        }
        return offsets
    }
}

/// The batches of one durable segment file read so far. While the file only grows (the same
/// `DurableFileVersion.file` and `rewrites`), a refresh reads just the bytes added since, so
/// checking every message against the disks stays cheap as logs grow.
struct SegmentScan {
    /// Stop at the first batch whose CRC fails (as recovery would cut there) rather than only
    /// at broken framing.
    let validatesChecksums: Bool
    private(set) var batches: [FramedBatch] = []
    private var version: DurableFileVersion?
    private var scannedEnd = 0
    /// Looked up only, never walked.
    private var indexByBaseOffset: [Int64: Int] = [:]
    /// Where each checksum occurs, in read order (a batch written twice shares one); looked up
    /// only.
    private var indicesByChecksum: [UInt32: [Int]] = [:]

    init(validatesChecksums: Bool) { self.validatesChecksums = validatesChecksums }

    /// Catches up with the durable `bytes` of the file at `version`.
    mutating func refresh(version current: DurableFileVersion, bytes: [UInt8]) {
        if let version, version.file != current.file || version.rewrites != current.rewrites || current.size < scannedEnd {
            self = SegmentScan(validatesChecksums: validatesChecksums)
        }
        version = current
        guard scannedEnd < bytes.count else { return }
        let validates = validatesChecksums
        var added: [FramedBatch] = []
        FramedBatch.forEach(in: bytes, from: scannedEnd) { batch in
            guard !validates || batch.checksumMatches(in: bytes) else { return false }
            added.append(batch)
            return true
        }
        for batch in added {
            if indexByBaseOffset[batch.baseOffset] == nil { indexByBaseOffset[batch.baseOffset] = batches.count }
            indicesByChecksum[batch.checksum, default: []].append(batches.count)
            batches.append(batch)
        }
        if let last = added.last { scannedEnd = last.position + last.totalSize }
    }

    /// The first batch read with this base offset.
    func batch(at baseOffset: Int64) -> FramedBatch? { indexByBaseOffset[baseOffset].map { batches[$0] } }

    /// Every batch read whose header carries `checksum`.
    func batches(withChecksum checksum: UInt32) -> [FramedBatch] { indicesByChecksum[checksum, default: []].map { batches[$0] } }
}

/// What a controller's disk holds durably of its Raft state: what it would recover after a crash
/// that keeps nothing unsynced.
public struct DurableRaftState: Equatable, Sendable {
    /// The `quorum-state` file (term and vote), nil if there is no durable, well-formed one.
    public var hardState: RaftHardState?
    /// The term of each durable log entry from index 1 on, as far as the log is contiguous, whole
    /// and checksummed.
    public var logTerms: [Term]

    public init(hardState: RaftHardState?, logTerms: [Term]) {
        self.hardState = hardState
        self.logTerms = logTerms
    }

    /// The term a restart would adopt: the stored one, or the last entry's if that is newer
    /// (`RaftNode.reconcile`; with no vote then).
    public var term: Term { max(hardState?.term ?? .zero, logTerms.last ?? .zero) }

    /// The vote a restart would hold in `term`.
    public var votedFor: NodeID? { hardState?.term == term ? hardState?.votedFor : nil }

    /// Reads the state from the durable image of `directory` (`quorum-state` and the segments).
    static func read(from disk: SimDisk, directory: String) -> DurableRaftState {
        var scans: [String: SegmentScan] = [:]
        return read(from: disk, directory: directory, scans: &scans)
    }

    /// The same, resuming each segment where `scans` left it.
    static func read(from disk: SimDisk, directory: String, scans: inout [String: SegmentScan]) -> DurableRaftState {
        let (segments, others) = Segment.files(in: directory, of: disk, image: .durable)
        let hardState = others.first { $0.name == "quorum-state" }.flatMap { decodeHardState($0.contents) }
        var terms: [Term] = []
        var expected: Int64 = 0
        segments: for segment in segments {
            guard segment.baseOffset == expected, let version = segment.file.version else { break }
            let path = joinPath(directory, segment.file.name)
            var scan = scans.removeValue(forKey: path) ?? SegmentScan(validatesChecksums: true)
            scan.refresh(version: version, bytes: segment.file.contents)
            scans[path] = scan
            for batch in scan.batches {
                guard batch.baseOffset == expected else { break segments }
                for _ in 0...Int(batch.lastOffsetDelta) { terms.append(Term(Int64(batch.partitionLeaderEpoch))) }
                expected = batch.nextOffset
            }
        }
        return DurableRaftState(hardState: hardState, logTerms: terms)
    }

    /// The `quorum-state` format ("RAFT", version 1, term i64, vote i32 with -1 for none,
    /// CRC-32C of the rest; big-endian), read here on its own rather than through the module.
    static func decodeHardState(_ bytes: [UInt8]) -> RaftHardState? {
        guard bytes.count == 21, bytes[0..<4].elementsEqual("RAFT".utf8), bytes[4] == 1,
              CRC32C.checksum(bytes, range: 0..<17) == bytes.loadBigEndian(UInt32.self, at: 17) else { return nil }
        let term = bytes.loadBigEndian(Int64.self, at: 5)
        let vote = bytes.loadBigEndian(Int32.self, at: 13)
        guard term >= 0 else { return nil }
        return RaftHardState(term: Term(term), votedFor: vote < 0 ? nil : NodeID(vote))
    }
}
