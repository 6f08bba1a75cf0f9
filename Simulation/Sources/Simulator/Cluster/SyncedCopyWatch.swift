import SimWorld
import TernCore

/// Where the batches of `acks=all` Produce requests have been seen synced, on which brokers and
/// at which offsets, from their first delivery on: an acknowledgement is earned by copies synced
/// at any moment before it leaves, even if one is lost afterwards (rot, or a discard after the
/// controller recorded the loss) before a slow answer goes out.
///
/// A broker's disk changes only as its own events run and as faults strike it, and a synced
/// copy stays until a later event of that broker removes it, so looking after each event at the
/// directories whose durable state changed (`SimDisk.durableChanges(after:)`) sees every copy
/// that was ever synced. A batch stops being looked for once it has been seen synced at one
/// offset on `min.insync.replicas` brokers. Whatever a look misses (a batch forgotten, a copy in
/// a file whose directory was renamed into place) only counts fewer copies, never more.
struct SyncedCopyWatch {
    private struct Key {
        var directory: String
        var batch: ProducedBatch
    }

    /// Per broker seen holding a batch synced, the base offsets it was at then.
    private typealias Sightings = [NodeID: [Offset]]

    /// More batches than this, and the oldest is forgotten: an answer for it counts only the
    /// copies synced when it leaves (stricter, never laxer).
    static let maximumBatchesWatched = 1 << 14

    private let minInSyncReplicas: Int
    /// By directory, then batch.
    private var sightings: [String: [ProducedBatch: Sightings]] = [:]
    private var watchedInOrder = RingBuffer<Key>(capacity: SyncedCopyWatch.maximumBatchesWatched)
    /// The batches not settled yet, by directory: the only ones looked for.
    private var unsettled: [String: Set<ProducedBatch>] = [:]
    /// Per broker (in the order looks name them), the disk's `durableStateVersion` at the last
    /// look; nil before the first.
    private var versionsSeen: [UInt64?] = []

    init(minInSyncReplicas: Int) {
        self.minInSyncReplicas = minInSyncReplicas
    }

    /// Starts watching `batch` in `directory` unless it is watched already. A batch delivered for
    /// the first time is on no disk yet: it is looked for from the next change on.
    mutating func watch(_ batch: ProducedBatch, in directory: String) {
        guard sightings[directory]?[batch] == nil else { return }
        if watchedInOrder.isFull { forget(watchedInOrder.popFirst()!) }
        watchedInOrder.append(Key(directory: directory, batch: batch))
        sightings[directory, default: [:]][batch] = [:]
        unsettled[directory, default: []].insert(batch)
    }

    /// Records where each broker's disk now holds synced the unsettled batches it was not seen
    /// holding, in the directories whose durable state changed since the last look. `brokers`
    /// are the same, in the same order, at every look.
    mutating func look(on brokers: [(NodeID, SimDisk)], scans: inout [NodeID: [String: SegmentScan]]) {
        if versionsSeen.isEmpty { versionsSeen = Array(repeating: nil, count: brokers.count) }
        precondition(versionsSeen.count == brokers.count, "the brokers looked at change")
        for (index, (broker, disk)) in brokers.enumerated() where versionsSeen[index] != disk.durableStateVersion {
            let changes = unsettled.isEmpty ? [] : versionsSeen[index].flatMap { disk.durableChanges(after: $0) }
            versionsSeen[index] = disk.durableStateVersion
            guard changes?.isEmpty != true else { continue }
            look(on: broker, disk, in: changes, scans: &scans[broker, default: [:]])
        }
    }

    /// Looks in the directories `changes` may have added copies to (nil: in every one).
    private mutating func look(on broker: NodeID, _ disk: SimDisk, in changes: [DurableChange]?, scans: inout [String: SegmentScan]) {
        var settled: [Key] = []
        for (directory, batches) in unsettled where changes?.contains(where: { Self.mayAddCopies($0, in: directory) }) ?? true {
            let known = sightings[directory, default: [:]]
            let sought = batches.filter { known[$0]?[broker] == nil }
            guard !sought.isEmpty else { continue }
            let segments = ScannedSegments(directory: directory, on: disk, scans: &scans)
            guard !segments.isEmpty else { continue }
            for batch in sought {
                let offsets = segments.baseOffsets(of: batch)
                guard !offsets.isEmpty else { continue }
                sightings[directory]![batch]![broker] = offsets
                if isSettled(sightings[directory]![batch]!, by: offsets) { settled.append(Key(directory: directory, batch: batch)) }
            }
        }
        for key in settled { stopLooking(for: key) }
    }

    /// Whether `change` may have made a batch durable in `directory`: new contents of one of its
    /// segment files or an entry for one, or an entry of the directory itself or of one above it.
    /// Called for every change and directory, so it allocates nothing.
    static func mayAddCopies(_ change: DurableChange, in directory: String) -> Bool {
        let path = change.path.utf8
        let directoryLength = directory.utf8.count
        if path.count > directoryLength {
            let segmentName = 20 + ".log".utf8.count
            guard path.count == directoryLength + 1 + segmentName, change.path.hasSuffix(".log"), change.path.hasPrefix(directory) else {
                return false
            }
            let name = path.suffix(segmentName)
            return path.dropFirst(directoryLength).first == UInt8(ascii: "/")
                && name.prefix(20).allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        }
        guard change.isEntry, directory.hasPrefix(change.path) else { return false }
        return path.count == directoryLength || directory.utf8.dropFirst(path.count).first == UInt8(ascii: "/")
    }

    /// The brokers seen holding `batch` synced at `baseOffset` in `directory`.
    func brokersSeenSynced(_ batch: ProducedBatch, in directory: String, at baseOffset: Offset) -> Set<NodeID> {
        guard let seen = sightings[directory]?[batch] else { return [] }
        return Set(seen.filter { $0.value.contains(baseOffset) }.keys)
    }

    /// Whether one of the `offsets` just seen is now seen on enough brokers: an answer naming it
    /// is earned, and looking further would change nothing.
    private func isSettled(_ seen: Sightings, by offsets: [Offset]) -> Bool {
        offsets.contains { offset in seen.values.count { $0.contains(offset) } >= minInSyncReplicas }
    }

    private mutating func stopLooking(for key: Key) {
        unsettled[key.directory]?.remove(key.batch)
        if unsettled[key.directory]?.isEmpty == true { unsettled[key.directory] = nil }
    }

    private mutating func forget(_ key: Key) {
        sightings[key.directory]?[key.batch] = nil
        if sightings[key.directory]?.isEmpty == true { sightings[key.directory] = nil }
        stopLooking(for: key)
    }
}
