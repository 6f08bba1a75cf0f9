import LogStorage
import TernCore

// What a crash does to the unsynced state of a `SimDisk` (see `SimDisk.crash(using:)`).
// Every random draw happens in inode-id order, so one seed gives one outcome in every process.

extension SimDisk {
    /// Keeps a random prefix of a file's pending operations, as writeback may have flushed some:
    /// the last kept write may be torn (a strict prefix of its bytes), and each kept write may have
    /// one sector zeroed or filled with noise. Only bytes those unsynced writes covered can be
    /// garbled, so durable bytes nobody overwrote since stay exactly as they were.
    func persistRandomContentPrefix(of inode: SimInode, adversarial: Bool, using random: inout DeterministicRandom) {
        let pending = inode.pendingContent
        guard !pending.isEmpty else { return }
        let keptCount = adversarial ? random.int(in: 0...pending.count) : 0
        var content = inode.durableContent
        // Latent corruption stays in the bytes no kept write covers; every change below lands
        // in both images alike.
        var asWritten = inode.durableContentAsWritten
        var keptWriteRanges: [Range<Int>] = []
        for (index, operation) in pending[..<keptCount].enumerated() {
            switch operation.change {
            case let .write(position, bytes):
                var keptBytes = bytes.count
                if index == keptCount - 1 && random.chance(configuration.tornWriteProbability) {
                    keptBytes = random.int(in: 0...(bytes.count - 1))
                    statistics.tornWrites += 1
                }
                applyWrite(bytes[..<keptBytes], at: position, to: &content)
                if asWritten != nil { applyWrite(bytes[..<keptBytes], at: position, to: &asWritten!) }
                if keptBytes > 0 { keptWriteRanges.append(position..<(position + keptBytes)) }
            case .truncate:
                operation.change.apply(to: &content)
                if asWritten != nil { operation.change.apply(to: &asWritten!) }
            }
        }
        for range in keptWriteRanges where random.chance(configuration.garbleProbability) {
            guard let (start, replacement) = garbleOneSector(within: range, of: &content, using: &random) else { continue }
            if asWritten != nil { asWritten!.replaceSubrange(start..<(start + replacement.count), with: replacement) }
        }
        statistics.unsyncedOperationsKeptByCrashes += keptCount
        statistics.unsyncedOperationsLostByCrashes += pending.count - keptCount
        inode.durableContent = content
        inode.durableContentAsWritten = asWritten
        inode.durableRewrites += 1
        inode.volatileContent = content
        inode.pendingContent = []
    }

    /// Zeroes one sector-aligned piece of `range`, or fills it with noise (half the time each),
    /// clipped to the file's final size. Returns where it changed `content` and to what.
    private func garbleOneSector(within range: Range<Int>, of content: inout [UInt8],
                                 using random: inout DeterministicRandom) -> (start: Int, replacement: [UInt8])? {
        let upper = min(range.upperBound, content.count)
        guard range.lowerBound < upper else { return nil }
        let sectorSize = configuration.sectorSize
        let sector = random.int(in: (range.lowerBound / sectorSize)...((upper - 1) / sectorSize))
        let start = max(sector * sectorSize, range.lowerBound)
        let end = min((sector + 1) * sectorSize, upper)
        var replacement = [UInt8](repeating: 0, count: end - start)
        if random.chance(0.5) { random.fill(&replacement) }
        content.replaceSubrange(start..<end, with: replacement)
        statistics.garbledSectors += 1
        return (start, replacement)
    }

    /// Keeps a random prefix of each directory's pending entry changes. The unlink half of a
    /// cross-directory rename is kept only with its link half (the file may show up in both
    /// directories, never in neither): a directory's prefix is cut before any such unlink whose
    /// link was dropped, until no cut is needed.
    func persistRandomNamespacePrefixes(of directoryIDs: [SimInodeID], adversarial: Bool, using random: inout DeterministicRandom) {
        var keptCounts: [SimInodeID: Int] = [:]
        for directoryID in directoryIDs {
            let pendingCount = inodes[directoryID]!.pendingNamespace.count
            keptCounts[directoryID] = adversarial && pendingCount > 0 ? random.int(in: 0...pendingCount) : 0
        }
        var cutMade = true
        while cutMade {
            cutMade = false
            for directoryID in directoryIDs {
                let pending = inodes[directoryID]!.pendingNamespace
                for index in 0..<keptCounts[directoryID]! {
                    guard let dependency = pending[index].requires,
                          !isKept(dependency, keptCounts: keptCounts) else { continue }
                    keptCounts[directoryID] = index
                    cutMade = true
                    break
                }
            }
        }
        for directoryID in directoryIDs {
            let directory = inodes[directoryID]!
            let keptCount = keptCounts[directoryID]!
            for operation in directory.pendingNamespace[..<keptCount] {
                operation.change.apply(to: &directory.durableEntries)
            }
            statistics.unsyncedOperationsKeptByCrashes += keptCount
            statistics.unsyncedOperationsLostByCrashes += directory.pendingNamespace.count - keptCount
            directory.pendingNamespace = []
            directory.volatileEntries = directory.durableEntries
        }
    }

    private func isKept(_ dependency: SimNamespaceDependency, keptCounts: [SimInodeID: Int]) -> Bool {
        guard let directory = inodes[dependency.directory],
              let index = directory.pendingNamespace.firstIndex(where: { $0.sequence == dependency.sequence })
        else { return true }  // no longer pending: already durable
        return index < keptCounts[dependency.directory]!
    }

    /// After a crash only what the durable root reaches exists; reference counts are rebuilt from
    /// the durable entries (no handles or pending operations are left to count).
    func removeUnreachableInodes() {
        var reachable: Set<SimInodeID> = [rootID]
        var unvisited = [rootID]
        while let inodeID = unvisited.popLast() {
            let inode = inodes[inodeID]!
            for childID in inode.durableEntries.values where reachable.insert(childID).inserted {
                precondition(inodes[childID] != nil, "a durable entry points at a freed \(childID)")
                unvisited.append(childID)
            }
        }
        for inodeID in inodes.keys.sorted() where !reachable.contains(inodeID) {
            inodes[inodeID] = nil
        }
        for inode in inodes.values { inode.referenceCount = 0 }
        inodes[rootID]!.referenceCount = 1
        for inode in inodes.values where inode.isDirectory {
            for childID in inode.durableEntries.values { inodes[childID]!.referenceCount += 1 }
        }
    }

    /// Recounts every reference from scratch and compares with the maintained counts, and checks
    /// that durable + pending equals volatile everywhere. For tests; cost is linear in the disk.
    func checkInvariants() {
        var expected: [SimInodeID: Int] = [rootID: 1]
        for inode in inodes.values where inode.isDirectory {
            for childID in inode.durableEntries.values { expected[childID, default: 0] += 1 }
            for operation in inode.pendingNamespace {
                if let linked = operation.change.linkedInode { expected[linked, default: 0] += 1 }
            }
        }
        for inodeID in openFiles.values { expected[inodeID, default: 0] += 1 }
        for inodeID in inodes.keys.sorted() {
            let inode = inodes[inodeID]!
            precondition(inode.referenceCount == expected[inodeID, default: 0],
                         "\(inodeID) counts \(inode.referenceCount) references, expected \(expected[inodeID, default: 0])")
            precondition(inode.referenceCount > 0, "\(inodeID) is unreferenced but not freed")
            if inode.isDirectory {
                var entries = inode.durableEntries
                for operation in inode.pendingNamespace { operation.change.apply(to: &entries) }
                precondition(entries == inode.volatileEntries, "\(inodeID): durable + pending != volatile entries")
                for childID in inode.volatileEntries.values {
                    precondition(inodes[childID] != nil, "\(inodeID) lists freed \(childID)")
                }
            } else {
                var content = inode.durableContent
                for operation in inode.pendingContent { operation.change.apply(to: &content) }
                precondition(content == inode.volatileContent, "\(inodeID): durable + pending != volatile content")
                if let asWritten = inode.durableContentAsWritten {
                    precondition(asWritten.count == inode.durableContent.count, "\(inodeID): the pre-corruption image has another size")
                }
            }
        }
    }
}
