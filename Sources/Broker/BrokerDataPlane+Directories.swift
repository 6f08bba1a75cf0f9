import Controller
import LogStorage
import NodeKit
import TernCore

/// A partition directory moved aside (`<topic>-<partition>.<topic id>-delete`) to be removed.
struct DirectoryRemoval {
    let path: String
    /// The data directory's sync that makes the move durable; nil until one is asked for.
    var syncToken: SyncToken?
    /// The move is durable: the contents may go.
    var moveIsDurable = false
}

/// The data directory's namespace: which partition directories stay, and removing the others.
///
/// A partition directory is removed by renaming it aside, syncing the data directory, and only
/// then removing its files. The rename frees the name at once for a topic created again under it,
/// and a crash at any point leaves either the directory under its old name with its
/// `partition.metadata` intact (a crash lost the rename: the next start moves it aside again) or a
/// directory whose name ends in `-delete`, which is never opened and is removed by the next start.
/// Removing files before the rename is durable could leave, after a power loss, a directory under
/// its live name without the file that says whose it is.
extension BrokerDataPlane {
    static let movedAsideSuffix = "-delete"
    /// Moved-aside copies of one directory with one topic id that may wait for removal at once.
    static let maximumMovedAsideNames = 64
    /// The Raft metadata log of a combined node shares the data directory: never a partition's
    /// (the controller refuses a topic of that name).
    static let metadataLogDirectoryPrefix = TopicRules.clusterMetadataTopicName + "-"

    /// At the first image after a start, before any partition is opened, served or fetched: moves
    /// aside every partition directory the image does not assign to this broker under the topic id
    /// it records (deleted topics, topics created again under the same name, replicas moved away
    /// while this broker was down), and removes directories moved aside before. A directory that
    /// records no topic id (written before topic ids were recorded) is kept when the image assigns
    /// a topic of its name here, and is adopted by it when opened; so is one whose topic id cannot
    /// be read, which opens as lost data. Returns false when the data directory could not be read
    /// (nothing may be opened yet).
    func removeStrayDirectories() -> Bool {
        let names: [String]
        do {
            names = try disk.listDirectory(dataDirectory)
        } catch .notFound {
            return true  // a new broker: nothing on disk yet
        } catch {
            return false
        }
        for name in names {
            let path = joinPath(dataDirectory, name)
            if name.hasSuffix(Self.movedAsideSuffix) {
                if !directoryRemovals.contains(where: { $0.path == path }) { directoryRemovals.append(DirectoryRemoval(path: path)) }
            } else if let topicPartition = Self.partitionDirectory(named: name),
                      let found = try? PartitionMetadata.read(directory: path, disk: disk),
                      !belongsHere(topicPartition, found) {
                moveAside(path, topicID: found.recordedTopicID)
            }
        }
        requestRemovalSync()
        return true
    }

    /// Whether the image assigns `topicPartition` to this broker for the topic `found` names.
    private func belongsHere(_ topicPartition: TopicPartition, _ found: PartitionMetadata.Found) -> Bool {
        guard let topic = image.topic(named: topicPartition.topic),
              let registration = topic.partition(topicPartition.partition),
              registration.replicas.contains(localID) else { return false }
        // Recording no topic id, or one that cannot be read, it is kept: it is adopted when
        // opened, or opened as lost data (see `PartitionLog.open`).
        return found.recordedTopicID.map { $0 == topic.topicID.description } ?? true
    }

    /// `<topic>-<partition>` with a topic name Kafka allows; nil for anything else in the directory.
    static func partitionDirectory(named name: String) -> TopicPartition? {
        guard !name.hasPrefix(metadataLogDirectoryPrefix), let dash = name.lastIndex(of: "-"),
              let partition = Int32(name[name.index(after: dash)...]), partition >= 0 else { return nil }
        let topic = String(name[..<dash])
        guard TopicRules.topicNameProblem(topic) == nil else { return nil }
        return TopicPartition(topic: topic, partition: partition)
    }

    /// Renames a partition directory aside; its removal follows the data directory's next sync.
    /// False when the rename failed: the directory keeps its name, and its `partition.metadata`
    /// keeps it from being opened for another topic.
    @discardableResult
    func moveAside(_ path: String, topicID: String?) -> Bool {
        var target = "\(path).\(topicID ?? "no-topic-id")\(Self.movedAsideSuffix)"
        var attempt = 1
        while disk.fileExists(target) {
            // Left by an earlier removal of the same directory: a new name, never a merge.
            attempt += 1
            guard attempt <= Self.maximumMovedAsideNames else { return false }
            target = "\(path).\(topicID ?? "no-topic-id").\(attempt)\(Self.movedAsideSuffix)"
        }
        do {
            try disk.rename(path, to: target)
        } catch {
            return false
        }
        directoryRemovals.append(DirectoryRemoval(path: target))
        return true
    }

    /// Asks for one sync of the data directory covering every move not yet covered by one.
    func requestRemovalSync() {
        guard directoryRemovals.contains(where: { $0.syncToken == nil && !$0.moveIsDurable }) else { return }
        let token = disk.syncDirectory(dataDirectory)
        for index in directoryRemovals.indices where directoryRemovals[index].syncToken == nil && !directoryRemovals[index].moveIsDurable {
            directoryRemovals[index].syncToken = token
        }
    }

    /// A completion of a removal's sync. False when no removal waits for it.
    func handleRemovalSync(_ completion: SyncCompletion) -> Bool {
        var owned = false
        for index in directoryRemovals.indices where directoryRemovals[index].syncToken == completion.token {
            owned = true
            directoryRemovals[index].syncToken = nil
            // A failed sync leaves the move's durability unknown: the next `retryRemovals` asks again.
            if case .success = completion.result { directoryRemovals[index].moveIsDurable = true }
        }
        if owned { removeDurablyMovedDirectories() }
        return owned
    }

    /// Removes the contents of every directory whose move is durable. One that cannot be removed
    /// (a disk error) stays, under its moved-aside name, for a later try or the next start.
    func removeDurablyMovedDirectories() {
        directoryRemovals.removeAll { $0.moveIsDurable && removeDirectory($0.path) }
    }

    /// Removes a partition directory (flat: files only) and its files; true once it is gone.
    private func removeDirectory(_ path: String) -> Bool {
        let names: [String]
        do {
            names = try disk.listDirectory(path)
        } catch .notFound {
            return true
        } catch {
            return false
        }
        do throws(DiskError) {
            for name in names { try disk.remove(joinPath(path, name)) }
            try disk.remove(path)
        } catch {
            return false
        }
        return true
    }

    /// On ticks: asks again for syncs that failed and removes what could not be removed before.
    func retryRemovals(now: Instant) {
        guard !directoryRemovals.isEmpty, now >= nextRemovalRetryAt else { return }
        nextRemovalRetryAt = now + configuration.checkpointInterval
        requestRemovalSync()
        removeDurablyMovedDirectories()
    }
}
