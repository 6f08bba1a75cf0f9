import LogStorage
import TernCore

// The data model behind `SimDisk`: inodes that each hold a durable image plus the ordered list of
// operations issued since, so that a sync can make an exact prefix durable and a crash can keep a
// random prefix. Kept apart from the `Disk` surface so the crash logic reads on its own.

/// Names one inode of a `SimDisk`. Allocated from a counter, never reused, so iteration in id
/// order is creation order and identical in every process.
struct SimInodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    let rawValue: UInt64
    static func < (lhs: SimInodeID, rhs: SimInodeID) -> Bool { lhs.rawValue < rhs.rawValue }
    var description: String { "inode#\(rawValue)" }
}

/// A change to a file's bytes, as issued through `write` or `truncate`.
enum SimContentChange: Sendable {
    case write(position: Int, bytes: [UInt8])
    case truncate(size: Int)

    func apply(to content: inout [UInt8]) {
        switch self {
        case let .write(position, bytes): applyWrite(bytes[...], at: position, to: &content)
        case let .truncate(size): applyTruncate(to: size, content: &content)
        }
    }

    /// Whether applying it to content of `durableSize` bytes may change any of them (rather
    /// than only add bytes after them).
    func rewrites(durableSize: Int) -> Bool {
        switch self {
        case let .write(position, _): return position < durableSize
        case let .truncate(size): return size < durableSize
        }
    }
}

/// A content change not yet durable. `sequence` is the disk-wide issue order, which a sync
/// request remembers as "everything up to here".
struct SimPendingContentOperation: Sendable {
    let sequence: UInt64
    let change: SimContentChange
}

/// A change to one directory's entries.
enum SimNamespaceChange: Sendable {
    /// Creates `name`, or atomically replaces what it pointed to.
    case link(name: String, inode: SimInodeID)
    case unlink(name: String)
    /// A rename inside one directory: atomic, so a crash shows either the old or the new state.
    case move(from: String, to: String, inode: SimInodeID)

    /// Applies the change to an entry table as it is (no reference counting: volatile tables,
    /// and durable ones during a crash, which recounts afterwards).
    func apply(to entries: inout [String: SimInodeID]) {
        switch self {
        case let .link(name, inode):
            entries[name] = inode
        case let .unlink(name):
            entries[name] = nil
        case let .move(from, to, inode):
            entries[from] = nil
            entries[to] = inode
        }
    }

    /// The entries it changes.
    var names: [String] {
        switch self {
        case let .link(name, _), let .unlink(name): [name]
        case let .move(from, to, _): [from, to]
        }
    }

    /// The inode this change makes an entry point to, if any.
    var linkedInode: SimInodeID? {
        switch self {
        case let .link(_, inode), let .move(_, _, inode): return inode
        case .unlink: return nil
        }
    }
}

/// Points at the namespace operation another one depends on: the unlink half of a rename across
/// directories requires its link half, so the file is never durably in neither directory.
struct SimNamespaceDependency: Sendable {
    let directory: SimInodeID
    let sequence: UInt64
}

struct SimPendingNamespaceOperation: Sendable {
    let sequence: UInt64
    let change: SimNamespaceChange
    let requires: SimNamespaceDependency?
}

/// A file or a directory. A class so that large byte images are mutated in place rather than
/// copied on write through a dictionary.
final class SimInode {
    let id: SimInodeID
    let isDirectory: Bool
    /// The path this inode was last linked under, only for error messages.
    var lastKnownPath: String
    /// Durable entries pointing here + pending namespace operations linking here + open handles
    /// (+1 for the root). At zero the inode can never be reached again and is freed.
    var referenceCount = 0

    // Files.
    var durableContent: [UInt8] = []
    /// `durableContent` with every pending operation applied: what reads see.
    var volatileContent: [UInt8] = []
    var pendingContent: [SimPendingContentOperation] = []
    /// `durableContent` as the writes that made it durable left it, before latent corruption
    /// changed any of it; nil while the file has none (the two are then the same). For checkers
    /// asking what a node synced, as opposed to what rot left of it.
    var durableContentAsWritten: [UInt8]?
    /// Counts the durable changes that may have altered bytes already durable (overwrites,
    /// shrinking truncations, crashes, corruption), as opposed to appending: while it stands
    /// still, durable bytes once seen stay as they were.
    var durableRewrites: UInt64 = 0

    // Directories.
    var durableEntries: [String: SimInodeID] = [:]
    /// `durableEntries` with every pending operation applied: what lookups see.
    var volatileEntries: [String: SimInodeID] = [:]
    var pendingNamespace: [SimPendingNamespaceOperation] = []

    init(id: SimInodeID, isDirectory: Bool, lastKnownPath: String) {
        self.id = id
        self.isDirectory = isDirectory
        self.lastKnownPath = lastKnownPath
    }

    /// Number of pending content operations with `sequence <= limit` (they form a prefix).
    func pendingContentPrefixCount(through limit: UInt64) -> Int {
        var count = 0
        while count < pendingContent.count && pendingContent[count].sequence <= limit { count += 1 }
        return count
    }
}

/// Writes `bytes` at `position`, zero-filling any gap past the end, as a sparse file reads.
func applyWrite(_ bytes: ArraySlice<UInt8>, at position: Int, to content: inout [UInt8]) {
    precondition(position >= 0, "write position must not be negative")
    guard !bytes.isEmpty else { return }
    let end = position + bytes.count
    if content.count < end { content.append(contentsOf: repeatElement(0, count: end - content.count)) }
    content.withUnsafeMutableBufferPointer { destination in
        bytes.withUnsafeBufferPointer { source in
            destination.baseAddress!.advanced(by: position).update(from: source.baseAddress!, count: source.count)
        }
    }
}

func applyTruncate(to size: Int, content: inout [UInt8]) {
    precondition(size >= 0, "truncate size must not be negative")
    if size < content.count {
        content.removeSubrange(size...)
    } else if size > content.count {
        content.append(contentsOf: repeatElement(0, count: size - content.count))
    }
}

/// Splits a path into its components. The simulated disk has no working directory: absolute and
/// relative paths both start at its root, "." is dropped and ".." goes up (never above the root).
func simPathComponents(_ path: String) -> [String] {
    var components: [String] = []
    for part in path.split(ascii: "/") {
        if part == "." { continue }
        if part == ".." {
            if !components.isEmpty { components.removeLast() }
            continue
        }
        components.append(String(part))
    }
    return components
}

/// Orders names by their UTF-8 bytes, as `listDirectory` promises (not by `String`'s Unicode order).
func utf8Precedes(_ left: String, _ right: String) -> Bool {
    left.utf8.lexicographicallyPrecedes(right.utf8)
}

/// errno values the simulated disk reports (Linux numbering, so messages read like the real ones).
enum SimErrno {
    static let io: Int32 = 5
    static let busy: Int32 = 16
    static let notDirectory: Int32 = 20
    static let isDirectory: Int32 = 21
    static let invalidArgument: Int32 = 22
    static let fileTooLarge: Int32 = 27
    static let notEmpty: Int32 = 39
}

/// FNV-1a, 64-bit, fed with fixed-width little-endian integers and length-prefixed byte strings,
/// so that the digest is the same in every process (unlike `Hasher`) and unambiguous.
struct StableDigest {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func combine(byte: UInt8) {
        value ^= UInt64(byte)
        value &*= 0x0000_0100_0000_01B3
    }

    mutating func combine(_ word: UInt64) {
        var remaining = word
        for _ in 0..<8 {
            combine(byte: UInt8(truncatingIfNeeded: remaining))
            remaining >>= 8
        }
    }

    mutating func combine(_ number: Int) { combine(UInt64(bitPattern: Int64(number))) }

    mutating func combine(bytes: [UInt8]) {
        combine(bytes.count)
        for byte in bytes { combine(byte: byte) }
    }

    mutating func combine(string: String) {
        combine(string.utf8.count)
        for byte in string.utf8 { combine(byte: byte) }
    }
}
