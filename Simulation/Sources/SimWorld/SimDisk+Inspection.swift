import LogStorage
import TernCore

// Read-only views of a `SimDisk` for checkers. None of them draws from the disk's fault streams
// or changes anything, so looking never changes a run.

/// Which durable content a checker saw: while a later reading has the same `file` and
/// `rewrites`, every byte below the earlier `size` is still what it was, so a reader may resume
/// where it stopped instead of reading the file again.
public struct DurableFileVersion: Equatable, Sendable {
    /// The file (inode) the path led to: a file replaced under the same name is another file.
    public var file: UInt64
    public var rewrites: UInt64
    public var size: Int
}

/// A change of a disk's durable state (`SimDisk.durableChanges(after:)`).
public struct DurableChange: Sendable, Hashable {
    /// The file whose contents changed, or the entry that was linked, unlinked or renamed (from
    /// or to), under the path its inode or directory was last linked under then (a file in a
    /// directory renamed since keeps the old directory's path).
    public var path: String
    public var isEntry: Bool

    public init(path: String, isEntry: Bool) {
        self.path = path
        self.isEntry = isEntry
    }
}

/// One file of a directory as a checker reads it.
public struct InspectedFile: Sendable {
    public var name: String
    public var contents: [UInt8]
    /// Set for durable readings (see `DurableFileVersion`).
    public var version: DurableFileVersion?
}

extension SimDisk {
    /// What a crash that keeps nothing unsynced would leave at `path`, as the writes that made it
    /// durable left it: latent corruption injected since is undone. It answers "did the node sync
    /// this?", which rot (a fault of the disk, not of the node) must not change. Nil if there is
    /// no durable file there.
    public func durableContentsAsWritten(of path: String) -> [UInt8]? {
        guard let inode = durableLookup(path), !inode.isDirectory else { return nil }
        return inode.durableContentAsWritten ?? inode.durableContent
    }

    /// Every file a crash that keeps nothing unsynced would leave in `directory`, as written
    /// (see `durableContentsAsWritten`), sorted by name; nil if the directory is not durably
    /// there. One path lookup for the whole directory.
    public func durableFilesAsWritten(in directory: String) -> [InspectedFile]? {
        guard let inode = durableLookup(directory), inode.isDirectory else { return nil }
        return inode.durableEntries.keys.sorted(by: utf8Precedes).compactMap { name in
            guard let file = inodes[inode.durableEntries[name]!], !file.isDirectory else { return nil }
            return InspectedFile(name: name, contents: file.durableContentAsWritten ?? file.durableContent,
                                 version: durableVersion(of: file))
        }
    }

    /// Every file in `directory` as reads see it now (durable data plus everything pending),
    /// sorted by name; nil if there is no such directory.
    public func volatileFiles(in directory: String) -> [InspectedFile]? {
        guard let inode = lookup(directory), inode.isDirectory else { return nil }
        return inode.volatileEntries.keys.sorted(by: utf8Precedes).compactMap { name in
            guard let file = inodes[inode.volatileEntries[name]!], !file.isDirectory else { return nil }
            return InspectedFile(name: name, contents: file.volatileContent, version: nil)
        }
    }

    private func durableVersion(of inode: SimInode) -> DurableFileVersion {
        DurableFileVersion(file: inode.id.rawValue, rewrites: inode.durableRewrites, size: inode.durableContent.count)
    }
}
