import CSystem
import Glibc
import LogStorage
import Posix
import Synchronization
import TernCore

/// The real `Disk`: files through Linux system calls, syncs on a dedicated thread with group commit
/// (see `SyncThread`).
///
/// Thread safety: every method may be called from any thread. Reads, writes and truncation run on
/// the caller's thread against the page cache; `sync` and `syncDirectory` only queue a request.
/// `sync` blocks while the sync queue is full (`syncQueueCapacity` requests), which lasts at most
/// until the sync thread takes its next batch, since it takes every pending request at once.
public final class PosixDisk: Disk, Sendable {
    private let files = Mutex(FileTable())
    private let syncThread: SyncThread

    /// Files are created with this mode (before the umask); directories with `directoryMode`.
    public static let fileMode: mode_t = 0o644
    public static let directoryMode: mode_t = 0o755

    /// - Parameters:
    ///   - syncQueueCapacity: requests the sync queue holds before `sync` blocks.
    ///   - maximumUncollectedSyncs: bound on syncs issued and not yet collected by
    ///     `pollCompletions`; exceeding it is a precondition failure (the owner stopped polling).
    public init(syncQueueCapacity: Int = 4_096, maximumUncollectedSyncs: Int = 65_536) throws(DiskError) {
        do throws(SystemCallError) {
            syncThread = try SyncThread(queueCapacity: syncQueueCapacity, maximumUncollectedSyncs: maximumUncollectedSyncs)
        } catch {
            throw .io(operation: error.operation, path: "", code: error.code)
        }
    }

    deinit {
        syncThread.stop()
    }

    /// Finishes every queued sync, then stops the sync thread. Completions already posted can
    /// still be collected; a later `sync` is a precondition failure. Files stay open until they
    /// are closed or the disk is released. Idempotent.
    public func close() {
        syncThread.stop()
    }

    /// An eventfd that is readable while completions wait to be collected, for an epoll loop.
    /// `pollCompletions` resets it. Owned by the disk: do not read or close it.
    public var completionEventDescriptor: Int32 { syncThread.completionEventDescriptor }

    /// Blocks until a completion can be collected or the timeout passes (negative: no timeout).
    /// For tools, tests and benchmarks; an event loop waits on `completionEventDescriptor` instead.
    @discardableResult
    public func waitForCompletions(timeoutMilliseconds: Int32) -> Bool {
        syncThread.waitForCompletions(timeoutMilliseconds: timeoutMilliseconds)
    }

    public var syncStatistics: SyncStatistics { syncThread.statistics }

    // MARK: - Namespace

    public func makeDirectory(_ path: String) throws(DiskError) {
        precondition(!path.isEmpty, "makeDirectory needs a path")
        // The common case (parent exists) costs one mkdir; parents are made only on ENOENT.
        do throws(SystemCallError) {
            _ = try systemCall("mkdir") { mkdir(path, Self.directoryMode) }
        } catch {
            switch error.code {
            case EEXIST:
                guard isDirectory(path) else { throw .alreadyExists(path: path) }
            case ENOENT where parentDirectory(of: path) != path:
                try makeDirectory(parentDirectory(of: path))
                do throws(SystemCallError) {
                    _ = try systemCall("mkdir") { mkdir(path, Self.directoryMode) }
                } catch where error.code == EEXIST && isDirectory(path) {
                    // Made by someone else meanwhile (or the path ends with "/" or "/.").
                } catch {
                    throw error.diskError(path: path)
                }
            default:
                throw error.diskError(path: path)
            }
        }
    }

    private func isDirectory(_ path: String) -> Bool {
        var status = stat()
        guard (try? systemCall("stat", { stat(path, &status) })) != nil else { return false }
        return status.st_mode & S_IFMT == S_IFDIR
    }

    /// Entry names (without "." and ".."), sorted by their UTF-8 bytes. A name that is not valid
    /// UTF-8 is returned with its invalid bytes replaced (Tern only ever creates UTF-8 names).
    public func listDirectory(_ path: String) throws(DiskError) -> [String] {
        let directory: OpaquePointer
        do throws(SystemCallError) {
            directory = try systemCall("opendir") { opendir(path) }
        } catch {
            throw error.diskError(path: path)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            tern_set_errno(0)
            guard let entry = readdir(directory) else {
                let code = tern_errno()
                if code == 0 { break }
                throw SystemCallError(operation: "readdir", code: code).diskError(path: path)
            }
            let name = withUnsafePointer(to: &entry.pointee.d_name) { tuple in
                String(cString: UnsafeRawPointer(tuple).assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        names.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return names
    }

    /// True if anything (file, directory, ...) is at `path`.
    public func fileExists(_ path: String) -> Bool {
        (try? systemCall("access", { access(path, F_OK) })) != nil
    }

    public func remove(_ path: String) throws(DiskError) {
        do throws(SystemCallError) {
            _ = try systemCall("unlink") { unlink(path) }
        } catch where error.code == EISDIR || error.code == EPERM {
            // Linux answers EISDIR for a directory (POSIX allows EPERM): remove it as one.
            do throws(SystemCallError) {
                _ = try systemCall("rmdir") { rmdir(path) }
            } catch let directoryError {
                throw (directoryError.code == ENOTDIR ? error : directoryError).diskError(path: path)
            }
        } catch {
            throw error.diskError(path: path)
        }
    }

    /// Unlinks while the file is still open, so the unlink only drops the name; the sync thread
    /// then closes the descriptor, which is what frees the blocks.
    public func discard(_ file: DiskFile, at path: String) throws(DiskError) {
        let released = files.withLock { table in table.openFiles.removeValue(forKey: file) }
        do throws(SystemCallError) {
            _ = try systemCall("unlink") { unlink(path) }
        } catch {
            throw error.diskError(path: path)
        }
        if let released { syncThread.release(released) }
    }

    public func rename(_ source: String, to destination: String) throws(DiskError) {
        do throws(SystemCallError) {
            _ = try systemCall("rename") { Glibc.rename(source, destination) }
        } catch {
            // ENOENT is nearly always a missing source (a missing destination directory is the
            // rarer cause); other errors name both paths.
            throw error.diskError(path: error.code == ENOENT ? source : "\(source) -> \(destination)")
        }
    }

    // MARK: - Files

    public func open(_ path: String, create: Bool) throws(DiskError) -> DiskFile {
        let flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0)
        let descriptor: Int32
        do throws(SystemCallError) {
            descriptor = try systemCall("open") { Glibc.open(path, flags, Self.fileMode) }
        } catch {
            throw error.diskError(path: path)
        }
        return files.withLock { table in
            let file = DiskFile(rawValue: table.nextFileID)
            table.nextFileID += 1
            table.openFiles[file] = OpenFile(file: file, descriptor: descriptor, path: path)
            return file
        }
    }

    /// Forgets the file. Its descriptor is closed once no queued sync needs it any more. Closing a
    /// file that is not open does nothing.
    public func close(_ file: DiskFile) {
        // Released outside the lock: the last release closes the descriptor (a system call).
        let released = files.withLock { table in table.openFiles.removeValue(forKey: file) }
        _ = released
    }

    public func size(_ file: DiskFile) throws(DiskError) -> Int64 {
        let openFile = try lookUp(file)
        var status = stat()
        do throws(SystemCallError) {
            _ = try systemCall("fstat") { fstat(openFile.descriptor, &status) }
        } catch {
            throw error.diskError(path: openFile.path)
        }
        precondition(status.st_size >= 0, "fstat reported a negative size")
        return Int64(status.st_size)
    }

    public func read(_ file: DiskFile, at position: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(DiskError) -> Int {
        precondition(position >= 0, "read position must not be negative")
        let openFile = try lookUp(file)
        var total = 0
        // pread may return fewer bytes than asked before the end of the file (e.g. beyond 2 GiB
        // per call on Linux); only 0 means end of file.
        while total < buffer.count {
            let count: Int
            do throws(SystemCallError) {
                count = try systemCall("pread") {
                    pread(openFile.descriptor, buffer.baseAddress! + total, buffer.count - total, off_t(position) + off_t(total))
                }
            } catch {
                throw error.diskError(path: openFile.path)
            }
            if count == 0 { break }
            total += count
        }
        assert(total <= buffer.count, "pread read more than asked")
        return total
    }

    public func write(_ file: DiskFile, at position: Int64, _ bytes: UnsafeRawBufferPointer) throws(DiskError) {
        precondition(position >= 0, "write position must not be negative")
        let openFile = try lookUp(file)
        var total = 0
        while total < bytes.count {
            let count: Int
            do throws(SystemCallError) {
                count = try systemCall("pwrite") {
                    pwrite(openFile.descriptor, bytes.baseAddress! + total, bytes.count - total, off_t(position) + off_t(total))
                }
            } catch {
                throw error.diskError(path: openFile.path)
            }
            // pwrite of a non-zero count on a regular file reports 0 only if no space was left.
            if count == 0 { throw .io(operation: "pwrite", path: openFile.path, code: ENOSPC) }
            total += count
        }
        assert(total == bytes.count, "pwrite wrote more than asked")
    }

    public func truncate(_ file: DiskFile, to size: Int64) throws(DiskError) {
        precondition(size >= 0, "truncate size must not be negative")
        let openFile = try lookUp(file)
        do throws(SystemCallError) {
            _ = try systemCall("ftruncate") { ftruncate(openFile.descriptor, off_t(size)) }
        } catch {
            throw error.diskError(path: openFile.path)
        }
    }

    // MARK: - Durability

    public func sync(_ file: DiskFile) -> SyncToken {
        let openFile = files.withLock { table in table.openFiles[file] }
        guard let openFile else { return syncThread.enqueue(.failed(.notOpen(file))) }
        return syncThread.enqueue(.file(openFile))
    }

    public func syncDirectory(_ path: String) -> SyncToken {
        syncThread.enqueue(.directory(path: path))
    }

    /// Never blocks, and makes no system call when nothing has completed.
    public func pollCompletions(into completions: inout [SyncCompletion]) {
        syncThread.collect(into: &completions)
    }

    // MARK: - Internals

    /// The open file, retained for the duration of one operation, so a concurrent `close` cannot
    /// let its descriptor number be reused under the operation.
    private func lookUp(_ file: DiskFile) throws(DiskError) -> OpenFile {
        guard let openFile = files.withLock({ table in table.openFiles[file] }) else { throw .notOpen(file) }
        return openFile
    }

    /// The descriptor behind a file, for tests.
    func descriptor(of file: DiskFile) -> Int32? {
        files.withLock { table in table.openFiles[file]?.descriptor }
    }

    /// Test hooks: hold the sync thread so a test can queue a known group of requests.
    func pauseSyncBatches() { syncThread.pauseBatches() }
    func resumeSyncBatches() { syncThread.resumeBatches() }
}

private struct FileTable {
    var openFiles: [DiskFile: OpenFile] = [:]
    /// Ids are never reused, so a stale `DiskFile` can never reach another file.
    var nextFileID: UInt64 = 1
}

/// An open descriptor, shared by the file table and by every queued sync request for the file: the
/// descriptor is closed when the last of them lets go, so a queued fdatasync can never reach a
/// descriptor number that was closed and given to another file.
final class OpenFile: Sendable {
    let file: DiskFile
    let descriptor: Int32
    /// The path the file was opened with, for error messages (it may have been renamed since).
    let path: String
    /// errno of the first failed fdatasync, 0 while none failed. Written by the sync thread only.
    let syncFailureCode = Atomic<Int32>(0)

    init(file: DiskFile, descriptor: Int32, path: String) {
        precondition(descriptor >= 0, "an open file needs a valid descriptor")
        self.file = file
        self.descriptor = descriptor
        self.path = path
    }

    deinit {
        closeDescriptor(descriptor)
    }
}
