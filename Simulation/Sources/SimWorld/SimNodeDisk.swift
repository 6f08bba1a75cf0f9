import LogStorage
import TernCore

/// The `Disk` a simulated node holds. It forwards to the machine's `SimDisk` and, while the
/// nemesis keeps an EIO window open (`ioErrorProbability > 0`), fails reads, writes, truncations
/// and syncs at that rate. An injected read, write or truncation failure changes nothing; an
/// injected sync failure is reported as failed although the disk may still have made the data
/// durable, which is what Linux allows after an fsync error (the node must treat it as unknown).
///
/// Completions reach the node as `.syncCompleted` events: the scheduler polls the `SimDisk` and
/// passes each completion through `deliverable(_:)`. A node that polls its disk itself breaks the
/// node contract, and is stopped with a message saying so.
package final class SimNodeDisk: Disk {
    let disk: SimDisk
    package var ioErrorProbability: Double = 0
    private var random: DeterministicRandom
    /// Syncs whose completion is reported as failed. Bounded by the disk's outstanding syncs;
    /// only queried and removed from, never walked, so hashing order cannot matter.
    private var syncsToFail: Set<SyncToken> = []
    package private(set) var injectedErrors = 0

    package init(disk: SimDisk, random: DeterministicRandom) {
        self.disk = disk
        self.random = random
    }

    /// Maps a completion polled from the disk to what the node is told.
    package func deliverable(_ completion: SyncCompletion) -> SyncCompletion {
        guard syncsToFail.remove(completion.token) != nil, case .success = completion.result else { return completion }
        return SyncCompletion(token: completion.token,
                              result: .failure(.io(operation: "fsync", path: "(injected)", code: SimErrno.io)))
    }

    /// The process is gone: completions it was waiting for will never be delivered.
    package func processEnded() {
        syncsToFail.removeAll()
    }

    private func injectFailure() -> Bool {
        guard ioErrorProbability > 0, random.chance(ioErrorProbability) else { return false }
        injectedErrors += 1
        return true
    }

    // MARK: Disk

    package func makeDirectory(_ path: String) throws(DiskError) { try disk.makeDirectory(path) }
    package func listDirectory(_ path: String) throws(DiskError) -> [String] { try disk.listDirectory(path) }
    package func fileExists(_ path: String) -> Bool { disk.fileExists(path) }
    package func remove(_ path: String) throws(DiskError) { try disk.remove(path) }
    package func rename(_ source: String, to destination: String) throws(DiskError) { try disk.rename(source, to: destination) }
    package func open(_ path: String, create: Bool) throws(DiskError) -> DiskFile { try disk.open(path, create: create) }
    package func close(_ file: DiskFile) { disk.close(file) }
    package func size(_ file: DiskFile) throws(DiskError) -> Int64 { try disk.size(file) }

    package func read(_ file: DiskFile, at position: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(DiskError) -> Int {
        if injectFailure() { throw .io(operation: "read", path: "\(file)", code: SimErrno.io) }
        return try disk.read(file, at: position, into: buffer)
    }

    package func write(_ file: DiskFile, at position: Int64, _ bytes: UnsafeRawBufferPointer) throws(DiskError) {
        if injectFailure() { throw .io(operation: "write", path: "\(file)", code: SimErrno.io) }
        try disk.write(file, at: position, bytes)
    }

    package func truncate(_ file: DiskFile, to size: Int64) throws(DiskError) {
        if injectFailure() { throw .io(operation: "truncate", path: "\(file)", code: SimErrno.io) }
        try disk.truncate(file, to: size)
    }

    package func sync(_ file: DiskFile) -> SyncToken {
        let token = disk.sync(file)
        if injectFailure() { syncsToFail.insert(token) }
        return token
    }

    package func syncDirectory(_ path: String) -> SyncToken {
        let token = disk.syncDirectory(path)
        if injectFailure() { syncsToFail.insert(token) }
        return token
    }

    package func pollCompletions(into completions: inout [SyncCompletion]) {
        preconditionFailure("a simulated node polled its disk: under the node contract, sync completions arrive as .syncCompleted events")
    }
}

extension SimDisk {
    /// Latent corruption: one sector of synced data in a random file (among those `isCorruptible`
    /// accepts by path) silently changes, as bit rot or a misdirected write would. Reads see it at
    /// once (the page is re-read); pending writes over it still apply on top. Returns the file's
    /// path and the changed byte range, or nil when no file has synced data.
    package func corruptDurableSector(
        using random: inout DeterministicRandom, where isCorruptible: (String) -> Bool
    ) -> (path: String, bytes: Range<Int>)? {
        let candidates = inodes.keys.sorted().compactMap { inodeID -> SimInode? in
            let inode = inodes[inodeID]!
            guard !inode.isDirectory, !inode.durableContent.isEmpty, isCorruptible(inode.lastKnownPath) else { return nil }
            return inode
        }
        guard !candidates.isEmpty else { return nil }
        let inode = candidates[random.int(in: 0...(candidates.count - 1))]
        let sectorSize = configuration.sectorSize
        let sectorCount = (inode.durableContent.count + sectorSize - 1) / sectorSize
        let start = random.int(in: 0...(sectorCount - 1)) * sectorSize
        let end = min(start + sectorSize, inode.durableContent.count)
        var noise = [UInt8](repeating: 0, count: end - start)
        random.fill(&noise)
        noise[0] |= 1  // at least one bit flips, so the corruption is never a no-op
        if inode.durableContentAsWritten == nil { inode.durableContentAsWritten = inode.durableContent }
        inode.durableRewrites += 1
        noteDurableChange(DurableChange(path: inode.lastKnownPath, isEntry: false))
        for position in start..<end { inode.durableContent[position] ^= noise[position - start] }
        var volatile = inode.durableContent
        for operation in inode.pendingContent { operation.change.apply(to: &volatile) }
        inode.volatileContent = volatile
        return (inode.lastKnownPath, start..<end)
    }
}
