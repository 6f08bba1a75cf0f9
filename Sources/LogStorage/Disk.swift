import TernCore

/// An open file of a `Disk`. Refers to the file itself (like an inode), so it stays valid across
/// renames. Never reused within one `Disk`.
public struct DiskFile: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: DiskFile, rhs: DiskFile) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "file#\(rawValue)" }
}

/// Names one requested sync; handed back with its completion. Allocated by the `Disk`, increasing.
public struct SyncToken: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: SyncToken, rhs: SyncToken) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "sync#\(rawValue)" }
}

/// What went wrong with a disk operation. `code` is an errno (real disk) or a simulated one.
public enum DiskError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound(path: String)
    case alreadyExists(path: String)
    case notOpen(DiskFile)
    case io(operation: String, path: String, code: Int32)

    public var description: String {
        switch self {
        case let .notFound(path): return "no such file or directory: \(path)"
        case let .alreadyExists(path): return "already exists: \(path)"
        case let .notOpen(file): return "\(file) is not open"
        case let .io(operation, path, code): return "\(operation) failed on \(path) (errno \(code))"
        }
    }
}

/// A finished sync: every write, truncation or (for a directory) entry change issued on the target
/// before the request is durable when `result` is success.
public struct SyncCompletion: Sendable, Equatable {
    public let token: SyncToken
    public let result: Result<Void, DiskError>
    public init(token: SyncToken, result: Result<Void, DiskError>) {
        self.token = token
        self.result = result
    }
    public static func == (lhs: SyncCompletion, rhs: SyncCompletion) -> Bool {
        guard lhs.token == rhs.token else { return false }
        switch (lhs.result, rhs.result) {
        case (.success, .success): return true
        case let (.failure(left), .failure(right)): return left == right
        default: return false
        }
    }
}

/// The only way storage reaches files. Reads, writes, truncation and namespace changes are
/// synchronous and act on the page cache: a later read sees them, but a crash may lose them. `sync`
/// and `syncDirectory` are asynchronous: they return a token at once, and the completion comes back
/// through `pollCompletions` (real disk: a sync thread with group commit; simulator: after a drawn
/// latency). A crash keeps what was synced; of the rest it may keep any prefix, torn or garbled.
///
/// A new file's directory entry, a rename and a removal are durable only once the directory is
/// synced, as on Linux file systems.
public protocol Disk: AnyObject {
    /// Creates the directory and any missing parents; no error if it exists.
    func makeDirectory(_ path: String) throws(DiskError)
    /// Entry names in `path`, sorted by their UTF-8 bytes.
    func listDirectory(_ path: String) throws(DiskError) -> [String]
    func fileExists(_ path: String) -> Bool
    /// Removes a file, or an empty directory.
    func remove(_ path: String) throws(DiskError)
    /// Removes the name of an open file and closes it. Its space is freed when the last descriptor
    /// goes, which for a large file can take a while: a real disk lets it go off the caller's
    /// thread, so deleting a 1 GiB segment never stalls an event loop.
    func discard(_ file: DiskFile, at path: String) throws(DiskError)
    /// Atomically replaces `destination` (if present) with `source`.
    func rename(_ source: String, to destination: String) throws(DiskError)

    /// Opens a file for reading and writing; with `create`, makes an empty one if it is missing.
    func open(_ path: String, create: Bool) throws(DiskError) -> DiskFile
    func close(_ file: DiskFile)
    func size(_ file: DiskFile) throws(DiskError) -> Int64
    /// Reads up to `buffer.count` bytes at `position`; returns how many were read (short at end of file).
    func read(_ file: DiskFile, at position: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(DiskError) -> Int
    /// Writes all of `bytes` at `position`, growing the file if needed.
    func write(_ file: DiskFile, at position: Int64, _ bytes: UnsafeRawBufferPointer) throws(DiskError)
    func truncate(_ file: DiskFile, to size: Int64) throws(DiskError)

    /// Requests that the file's data and size become durable.
    func sync(_ file: DiskFile) -> SyncToken
    /// Requests that the directory's entries (creations, renames, removals) become durable.
    func syncDirectory(_ path: String) -> SyncToken
    /// Appends every completion that has finished since the last call, in completion order.
    func pollCompletions(into completions: inout [SyncCompletion])
}

extension Disk {
    public func discard(_ file: DiskFile, at path: String) throws(DiskError) {
        defer { close(file) }
        try remove(path)
    }

    /// Reads exactly `count` bytes at `position` into a new array, or fewer at end of file.
    public func read(_ file: DiskFile, at position: Int64, count: Int) throws(DiskError) -> [UInt8] {
        precondition(count >= 0, "read count must not be negative")
        var bytes = [UInt8](repeating: 0, count: count)
        let outcome = bytes.withUnsafeMutableBytes { buffer in
            Result { () throws(DiskError) -> Int in try read(file, at: position, into: buffer) }
        }
        let got = try outcome.get()
        if got < count { bytes.removeLast(count - got) }
        return bytes
    }

    public func write(_ file: DiskFile, at position: Int64, _ bytes: [UInt8]) throws(DiskError) {
        let outcome = bytes.withUnsafeBytes { buffer in
            Result { () throws(DiskError) in try write(file, at: position, buffer) }
        }
        try outcome.get()
    }
}

/// Joins path components with "/" (the core does not import Foundation).
public func joinPath(_ directory: String, _ name: String) -> String {
    directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

/// The directory part of a path ("." for a bare name).
public func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    if slash == path.startIndex { return "/" }
    return String(path[..<slash])
}
