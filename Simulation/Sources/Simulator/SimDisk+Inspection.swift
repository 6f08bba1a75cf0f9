import LogStorage
import TernCore

// Read-only views of a `SimDisk` for checkers. None of them draws from the disk's fault streams
// or changes anything, so looking never changes a run.

extension SimDisk {
    /// What a crash that keeps nothing unsynced would leave at `path`, as the writes that made it
    /// durable left it: latent corruption injected since is undone. It answers "did the node sync
    /// this?", which rot (a fault of the disk, not of the node) must not change. Nil if there is
    /// no durable file there.
    public func durableContentsAsWritten(of path: String) -> [UInt8]? {
        guard let inode = durableLookup(path), !inode.isDirectory else { return nil }
        return inode.durableContentAsWritten ?? inode.durableContent
    }

    /// What reads of `path` see now (durable data plus everything pending), or nil if there is no
    /// file there.
    public func volatileContents(of path: String) -> [UInt8]? {
        guard let inode = lookup(path), !inode.isDirectory else { return nil }
        return inode.volatileContent
    }

    /// The entries of a directory as lookups see them now, sorted by UTF-8 bytes; nil if it is
    /// not there.
    public func volatileListing(of path: String) -> [String]? {
        guard let inode = lookup(path), inode.isDirectory else { return nil }
        return inode.volatileEntries.keys.sorted(by: utf8Precedes)
    }
}

/// Which durable content a checker saw: while a later reading has the same `file` and
/// `rewrites`, every byte below the earlier `size` is still what it was, so a reader may resume
/// where it stopped instead of reading the file again.
public struct DurableFileVersion: Equatable, Sendable {
    /// The file (inode) the path led to: a file replaced under the same name is another file.
    public var file: UInt64
    public var rewrites: UInt64
    public var size: Int
}

extension SimDisk {
    /// The version of the durable file at `path` (as `durableContentsAsWritten` sees it), or nil
    /// if there is no durable file there.
    public func durableFileVersion(of path: String) -> DurableFileVersion? {
        guard let inode = durableLookup(path), !inode.isDirectory else { return nil }
        return DurableFileVersion(file: inode.id.rawValue, rewrites: inode.durableRewrites, size: inode.durableContent.count)
    }
}
