import LogStorage
import TernCore

/// An in-memory file system for the simulator that models what a crash can do to data that was
/// not synced, in the spirit of TigerBeetle's testing/storage.zig and FoundationDB's simulated
/// files.
///
/// Every file holds a durable image and the ordered list of content operations (writes,
/// truncations) issued since; every directory holds its durable entries and the ordered list of
/// namespace operations (create, rename, remove) issued since. Reads and lookups see the volatile
/// view: durable plus everything pending. A sync remembers which pending operations exist when it
/// is requested and, when it completes after a latency drawn from the seeded generator, makes
/// exactly those durable. A crash (`powerLoss`) keeps a random prefix of each pending list, may
/// tear the last kept write and garble kept unsynced sectors, and never touches durable data.
///
/// Directories: `makeDirectory` links each new directory into its parent like a new file, so a
/// new directory is durable only once its parent is synced with `syncDirectory`, unless
/// `Configuration.directoryCreationIsDurable` is set (then its parent's namespace is made durable
/// at once).
///
/// Time: the disk has its own clock, moved by `advance(to:)`; `nextCompletionTime` tells a
/// scheduler when to wake it. Deterministic: one `DeterministicRandom` given at init decides
/// everything, split into streams per purpose so enabling one fault does not reshuffle the others.
public final class SimDisk: Disk {
    public struct Configuration: Sendable {
        public enum CrashBehavior: Sendable, Equatable {
            /// Keep a random prefix of unsynced operations, tear and garble as configured.
            case adversarial
            /// Drop everything unsynced, tear nothing: a crash restores exactly the durable state.
            case dropUnsynced
        }

        /// How long a `sync` or `syncDirectory` takes, drawn uniformly per request.
        public var syncLatency: ClosedRange<Duration>
        /// Probability that a sync stalls: it takes `syncStallLatency` instead of `syncLatency`
        /// (a device hiccup, a journal commit behind other writers, a saturated queue).
        public var syncStallProbability: Double
        public var syncStallLatency: ClosedRange<Duration>
        /// When true, syncs complete in the order they were requested (a FIFO sync thread); when
        /// false a later sync may complete before an earlier one.
        public var syncsCompleteInRequestOrder: Bool
        /// Probability that a sync fails with EIO; a failed sync makes nothing durable.
        public var syncFailureProbability: Double
        public var crashBehavior: CrashBehavior
        /// Probability that the last write kept by a crash keeps only a prefix of its bytes.
        public var tornWriteProbability: Double
        /// Probability, per unsynced write kept by a crash, that one sector of it is zeroed or filled
        /// with random bytes.
        public var garbleProbability: Double
        public var sectorSize: Int
        public var directoryCreationIsDurable: Bool
        /// Probability that a `read` or `write` throws EIO (a write that throws changes nothing).
        public var readFailureProbability: Double
        public var writeFailureProbability: Double
        /// Writes or truncations past this size throw EFBIG: bounds the memory a node can take.
        public var maximumFileSize: Int64
        /// Requested syncs whose completion has not been polled yet; more is a caller bug.
        public var maximumOutstandingSyncs: Int
        /// Pending operations per file or directory. Past it the oldest half is written back
        /// (becomes durable) as a kernel's dirty-page writeback would, keeping memory bounded.
        public var maximumPendingOperations: Int

        public init(
            syncLatency: ClosedRange<Duration> = .microseconds(200)...(.milliseconds(5)),
            syncStallProbability: Double = 0,
            syncStallLatency: ClosedRange<Duration> = .milliseconds(100)...(.seconds(1)),
            syncsCompleteInRequestOrder: Bool = false,
            syncFailureProbability: Double = 0,
            crashBehavior: CrashBehavior = .adversarial,
            tornWriteProbability: Double = 0.5,
            garbleProbability: Double = 0.1,
            sectorSize: Int = 512,
            directoryCreationIsDurable: Bool = false,
            readFailureProbability: Double = 0,
            writeFailureProbability: Double = 0,
            maximumFileSize: Int64 = 1 << 30,
            maximumOutstandingSyncs: Int = 1 << 16,
            maximumPendingOperations: Int = 1 << 14
        ) {
            precondition(syncLatency.lowerBound >= .zero && syncStallLatency.lowerBound >= .zero, "sync latency must not be negative")
            precondition(syncStallProbability >= 0 && syncStallProbability <= 1, "a probability is within 0...1")
            precondition(sectorSize > 0, "sector size must be positive")
            precondition(maximumFileSize > 0 && maximumOutstandingSyncs > 0 && maximumPendingOperations > 1,
                         "disk bounds must be positive")
            self.syncLatency = syncLatency
            self.syncStallProbability = syncStallProbability
            self.syncStallLatency = syncStallLatency
            self.syncsCompleteInRequestOrder = syncsCompleteInRequestOrder
            self.syncFailureProbability = syncFailureProbability
            self.crashBehavior = crashBehavior
            self.tornWriteProbability = tornWriteProbability
            self.garbleProbability = garbleProbability
            self.sectorSize = sectorSize
            self.directoryCreationIsDurable = directoryCreationIsDurable
            self.readFailureProbability = readFailureProbability
            self.writeFailureProbability = writeFailureProbability
            self.maximumFileSize = maximumFileSize
            self.maximumOutstandingSyncs = maximumOutstandingSyncs
            self.maximumPendingOperations = maximumPendingOperations
        }

        /// Crashes restore exactly the durable state (no kept unsynced data, no tearing).
        public static var benignCrashes: Configuration { Configuration(crashBehavior: .dropUnsynced) }
    }

    /// Counters for reports: what the disk did to the node.
    public struct Statistics: Sendable, Equatable {
        public var syncsRequested = 0
        public var syncsSucceeded = 0
        public var syncsFailed = 0
        public var crashes = 0
        public var processKills = 0
        public var unsyncedOperationsKeptByCrashes = 0
        public var unsyncedOperationsLostByCrashes = 0
        public var tornWrites = 0
        public var garbledSectors = 0
        public var writebacks = 0
        public var injectedIOErrors = 0
    }

    struct ScheduledSync: Comparable {
        enum Action {
            case file(SimInodeID, throughSequence: UInt64)
            case directory(SimInodeID, throughSequence: UInt64)
            case fail(DiskError)
        }
        let due: Instant
        let token: SyncToken
        /// Completions of a process that was killed are never delivered to its successor.
        let processGeneration: UInt64
        let action: Action

        static func < (lhs: ScheduledSync, rhs: ScheduledSync) -> Bool {
            (lhs.due, lhs.token) < (rhs.due, rhs.token)
        }
        static func == (lhs: ScheduledSync, rhs: ScheduledSync) -> Bool { lhs.token == rhs.token }
    }

    public let configuration: Configuration
    public private(set) var now: Instant = .zero
    public internal(set) var statistics = Statistics()

    private var latencyRandom: DeterministicRandom
    private var stallRandom: DeterministicRandom
    private var syncFaultRandom: DeterministicRandom
    private var ioFaultRandom: DeterministicRandom
    private var crashRandom: DeterministicRandom

    var inodes: [SimInodeID: SimInode] = [:]
    let rootID = SimInodeID(rawValue: 1)
    private var nextInodeNumber: UInt64 = 2
    var openFiles: [DiskFile: SimInodeID] = [:]
    private var nextHandleNumber: UInt64 = 1
    private var nextTokenNumber: UInt64 = 1
    /// Issue order of every content and namespace operation, shared by all inodes.
    private(set) var lastSequence: UInt64 = 0
    /// Grows whenever what a crash would leave may have changed (data or entries made durable, a
    /// crash, latent corruption): inspection results computed at one version stay true until the
    /// next.
    public internal(set) var durableStateVersion: UInt64 = 0
    /// What each durable change changed, with the `durableStateVersion` it made, oldest first:
    /// for inspectors that keep up with the disk (`durableChanges(after:)`).
    private var durableChangeLog: [(version: UInt64, change: DurableChange)] = []
    /// `durableChangeLog` holds every change made after this version.
    private var durableChangeLogStart: UInt64 = 0
    /// More changes between two looks than this, and an inspector must look everywhere.
    static let durableChangeLogCapacity = 64
    var scheduledSyncs: BoundedHeap<ScheduledSync>
    private var finishedCompletions: [SyncCompletion] = []
    var processGeneration: UInt64 = 0
    private var lastScheduledDue: Instant = .zero
    /// Inodes whose reference count reached zero; freed at the end of the public operation so
    /// that no inode disappears while a loop still walks it.
    var collectionCandidates: [SimInodeID] = []

    public init(random: DeterministicRandom, configuration: Configuration = Configuration()) {
        self.configuration = configuration
        latencyRandom = random.stream("simdisk.sync-latency")
        stallRandom = random.stream("simdisk.sync-stalls")
        syncFaultRandom = random.stream("simdisk.sync-faults")
        ioFaultRandom = random.stream("simdisk.io-faults")
        crashRandom = random.stream("simdisk.crash")
        scheduledSyncs = BoundedHeap(capacity: configuration.maximumOutstandingSyncs)
        let root = SimInode(id: rootID, isDirectory: true, lastKnownPath: "/")
        root.referenceCount = 1  // the root is always reachable
        inodes[rootID] = root
    }

    // MARK: Clock and completions

    /// Moves the disk's clock forward; syncs due by then complete (their data becomes durable) and
    /// wait for `pollCompletions`.
    public func advance(to instant: Instant) {
        precondition(instant >= now, "the disk clock must not go backwards (\(instant) < \(now))")
        now = instant
        completeDueSyncs()
    }

    /// When the earliest sync still in flight completes (never before `now`), or nil if none is:
    /// the instant a scheduler should `advance(to:)` and then `pollCompletions`. Completions that
    /// have finished but wait to be polled do not count (see `hasCompletionsReady`), so
    /// `while let due = disk.nextCompletionTime { disk.advance(to: due) }` terminates.
    public var nextCompletionTime: Instant? {
        scheduledSyncs.min.map { max($0.due, now) }
    }

    /// True when `pollCompletions` would hand back something at `now`.
    public var hasCompletionsReady: Bool {
        !finishedCompletions.isEmpty || (scheduledSyncs.min.map { $0.due <= now } ?? false)
    }

    /// Syncs requested and not yet polled (including those whose completion will never be
    /// delivered because the process that asked for them was killed).
    public var outstandingSyncCount: Int { scheduledSyncs.count + finishedCompletions.count }

    public func pollCompletions(into completions: inout [SyncCompletion]) {
        completeDueSyncs()
        completions.append(contentsOf: finishedCompletions)
        finishedCompletions.removeAll(keepingCapacity: true)
    }

    private func completeDueSyncs() {
        while let earliest = scheduledSyncs.min, earliest.due <= now {
            _ = scheduledSyncs.popMin()
            let result: Result<Void, DiskError>
            switch earliest.action {
            case let .file(inodeID, throughSequence):
                if let inode = inodes[inodeID] { makeContentDurable(inode, throughSequence: throughSequence) }
                result = .success(())
            case let .directory(inodeID, throughSequence):
                makeNamespaceDurable(inodeID, throughSequence: throughSequence)
                result = .success(())
            case let .fail(error):
                result = .failure(error)
            }
            switch result {
            case .success: statistics.syncsSucceeded += 1
            case .failure: statistics.syncsFailed += 1
            }
            if earliest.processGeneration == processGeneration {
                finishedCompletions.append(SyncCompletion(token: earliest.token, result: result))
            }
        }
        collectGarbage()
    }

    // MARK: Namespace

    public func makeDirectory(_ path: String) throws(DiskError) {
        var current = inodes[rootID]!
        var walked = ""
        for name in simPathComponents(path) {
            walked += "/" + name
            if let childID = current.volatileEntries[name] {
                let child = inodes[childID]!
                guard child.isDirectory else { throw .alreadyExists(path: walked) }
                current = child
            } else {
                let directory = makeInode(isDirectory: true, path: walked)
                let sequence = recordNamespaceChange(.link(name: name, inode: directory.id), in: current)
                if configuration.directoryCreationIsDurable {
                    makeNamespaceDurable(current.id, throughSequence: sequence)
                }
                current = directory
            }
        }
        collectGarbage()
    }

    public func listDirectory(_ path: String) throws(DiskError) -> [String] {
        guard let inode = lookup(path) else { throw .notFound(path: path) }
        guard inode.isDirectory else {
            throw .io(operation: "listDirectory", path: path, code: SimErrno.notDirectory)
        }
        return inode.volatileEntries.keys.sorted(by: utf8Precedes)
    }

    /// True for a file or a directory in the volatile view.
    public func fileExists(_ path: String) -> Bool { lookup(path) != nil }

    public func remove(_ path: String) throws(DiskError) {
        let (parent, name) = try lookupParent(path)
        guard let targetID = parent.volatileEntries[name] else { throw .notFound(path: path) }
        let target = inodes[targetID]!
        if target.isDirectory && !target.volatileEntries.isEmpty {
            throw .io(operation: "remove", path: path, code: SimErrno.notEmpty)
        }
        recordNamespaceChange(.unlink(name: name), in: parent)
        collectGarbage()
    }

    public func rename(_ source: String, to destination: String) throws(DiskError) {
        let (sourceParent, sourceName) = try lookupParent(source)
        guard let movingID = sourceParent.volatileEntries[sourceName] else { throw .notFound(path: source) }
        let moving = inodes[movingID]!
        let destinationParent: SimInode
        let destinationName: String
        do {
            (destinationParent, destinationName) = try lookupParent(destination)
        } catch {
            throw .notFound(path: destination)
        }
        if let replacedID = destinationParent.volatileEntries[destinationName] {
            // POSIX: renaming onto another name of the same file does nothing.
            if replacedID == movingID { return }
            let replaced = inodes[replacedID]!
            if moving.isDirectory && !replaced.isDirectory {
                throw .io(operation: "rename", path: destination, code: SimErrno.notDirectory)
            }
            if !moving.isDirectory && replaced.isDirectory {
                throw .io(operation: "rename", path: destination, code: SimErrno.isDirectory)
            }
            if replaced.isDirectory && !replaced.volatileEntries.isEmpty {
                throw .io(operation: "rename", path: destination, code: SimErrno.notEmpty)
            }
        }
        if moving.isDirectory {
            let sourceComponents = simPathComponents(source)
            let destinationComponents = simPathComponents(destination)
            if destinationComponents.starts(with: sourceComponents) {
                throw .io(operation: "rename", path: destination, code: SimErrno.invalidArgument)
            }
        }
        moving.lastKnownPath = destination
        if sourceParent.id == destinationParent.id {
            recordNamespaceChange(.move(from: sourceName, to: destinationName, inode: movingID), in: sourceParent)
        } else {
            // Two halves, so a crash may show the file in both directories, but the unlink never
            // becomes durable without the link (see `SimNamespaceDependency`).
            let linkSequence = recordNamespaceChange(
                .link(name: destinationName, inode: movingID), in: destinationParent)
            recordNamespaceChange(
                .unlink(name: sourceName), in: sourceParent,
                requires: SimNamespaceDependency(directory: destinationParent.id, sequence: linkSequence))
        }
        collectGarbage()
    }

    // MARK: Files

    public func open(_ path: String, create: Bool) throws(DiskError) -> DiskFile {
        let (parent, name) = try lookupParent(path, rootError: .io(operation: "open", path: path, code: SimErrno.isDirectory))
        let inode: SimInode
        if let existingID = parent.volatileEntries[name] {
            inode = inodes[existingID]!
            guard !inode.isDirectory else { throw .io(operation: "open", path: path, code: SimErrno.isDirectory) }
        } else {
            guard create else { throw .notFound(path: path) }
            inode = makeInode(isDirectory: false, path: path)
            recordNamespaceChange(.link(name: name, inode: inode.id), in: parent)
        }
        let handle = DiskFile(rawValue: nextHandleNumber)
        nextHandleNumber += 1
        openFiles[handle] = inode.id
        inode.referenceCount += 1
        return handle
    }

    /// Closing a handle that is not open (for instance one from before a crash) does nothing.
    public func close(_ file: DiskFile) {
        guard let inodeID = openFiles.removeValue(forKey: file) else { return }
        release(inodeID)
        collectGarbage()
    }

    public func size(_ file: DiskFile) throws(DiskError) -> Int64 {
        Int64(try openInode(file).volatileContent.count)
    }

    public func read(_ file: DiskFile, at position: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(DiskError) -> Int {
        precondition(position >= 0, "read position must not be negative")
        let inode = try openInode(file)
        if ioFaultRandom.chance(configuration.readFailureProbability) {
            statistics.injectedIOErrors += 1
            throw .io(operation: "read", path: inode.lastKnownPath, code: SimErrno.io)
        }
        let content = inode.volatileContent
        guard position < Int64(content.count), buffer.count > 0 else { return 0 }
        let start = Int(position)
        let count = min(buffer.count, content.count - start)
        content.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress!.advanced(by: start), byteCount: count)
        }
        return count
    }

    public func write(_ file: DiskFile, at position: Int64, _ bytes: UnsafeRawBufferPointer) throws(DiskError) {
        precondition(position >= 0, "write position must not be negative")
        let inode = try openInode(file)
        if ioFaultRandom.chance(configuration.writeFailureProbability) {
            statistics.injectedIOErrors += 1
            throw .io(operation: "write", path: inode.lastKnownPath, code: SimErrno.io)
        }
        guard position <= configuration.maximumFileSize - Int64(bytes.count) else {
            throw .io(operation: "write", path: inode.lastKnownPath, code: SimErrno.fileTooLarge)
        }
        guard bytes.count > 0 else { return }  // POSIX: an empty write does not extend the file
        recordContentChange(.write(position: Int(position), bytes: [UInt8](bytes)), in: inode)
    }

    public func truncate(_ file: DiskFile, to size: Int64) throws(DiskError) {
        precondition(size >= 0, "truncate size must not be negative")
        let inode = try openInode(file)
        guard size <= configuration.maximumFileSize else {
            throw .io(operation: "truncate", path: inode.lastKnownPath, code: SimErrno.fileTooLarge)
        }
        recordContentChange(.truncate(size: Int(size)), in: inode)
    }

    // MARK: Sync

    public func sync(_ file: DiskFile) -> SyncToken {
        guard let inodeID = openFiles[file] else {
            return schedule(.fail(.notOpen(file)), due: now)
        }
        let path = inodes[inodeID]!.lastKnownPath
        return scheduleWithLatency(.file(inodeID, throughSequence: lastSequence), operation: "fsync", path: path)
    }

    public func syncDirectory(_ path: String) -> SyncToken {
        guard let directory = lookup(path) else {
            return schedule(.fail(.notFound(path: path)), due: now)
        }
        guard directory.isDirectory else {
            return schedule(.fail(.io(operation: "fsync", path: path, code: SimErrno.notDirectory)), due: now)
        }
        return scheduleWithLatency(.directory(directory.id, throughSequence: lastSequence), operation: "fsync", path: path)
    }

    private func scheduleWithLatency(_ action: ScheduledSync.Action, operation: String, path: String) -> SyncToken {
        var due = now + latencyRandom.duration(in: configuration.syncLatency)
        // Drawn from a stream of its own, so a disk without stalls draws exactly what it did before.
        if configuration.syncStallProbability > 0, stallRandom.chance(configuration.syncStallProbability) {
            due = now + stallRandom.duration(in: configuration.syncStallLatency)
        }
        if configuration.syncsCompleteInRequestOrder { due = max(due, lastScheduledDue) }
        lastScheduledDue = max(lastScheduledDue, due)
        if syncFaultRandom.chance(configuration.syncFailureProbability) {
            return schedule(.fail(.io(operation: operation, path: path, code: SimErrno.io)), due: due)
        }
        return schedule(action, due: due)
    }

    private func schedule(_ action: ScheduledSync.Action, due: Instant) -> SyncToken {
        precondition(outstandingSyncCount < configuration.maximumOutstandingSyncs,
                     "more than \(configuration.maximumOutstandingSyncs) syncs outstanding: completions are not being polled")
        let token = SyncToken(rawValue: nextTokenNumber)
        nextTokenNumber += 1
        statistics.syncsRequested += 1
        let inserted = scheduledSyncs.insert(
            ScheduledSync(due: due, token: token, processGeneration: processGeneration, action: action))
        precondition(inserted, "sync queue bound checked above")
        return token
    }

    // MARK: Inspection (for tests and checkers)

    /// What a crash that keeps nothing unsynced would leave at `path`: resolved through durable
    /// directory entries, durable content. Nil if there is no durable file there.
    public func durableContents(of path: String) -> [UInt8]? {
        guard let inode = durableLookup(path), !inode.isDirectory else { return nil }
        return inode.durableContent
    }

    /// What a read of the file at `path` would see now (durable plus pending), without drawing
    /// from the fault streams: a checker may look without changing the run. Nil if there is no
    /// file there.
    public func volatileContents(of path: String) -> [UInt8]? {
        guard let inode = lookup(path), !inode.isDirectory else { return nil }
        return inode.volatileContent
    }

    /// Durable entries of a directory, sorted by UTF-8 bytes; nil if it is not durably there.
    public func durableListing(of path: String) -> [String]? {
        guard let inode = durableLookup(path), inode.isDirectory else { return nil }
        return inode.durableEntries.keys.sorted(by: utf8Precedes)
    }

    /// Operations issued but not durable yet, over all files and directories.
    public var pendingOperationCount: Int {
        inodes.values.reduce(0) { $0 + $1.pendingContent.count + $1.pendingNamespace.count }
    }

    /// A stable hash of the whole file system, durable images and pending operations alike
    /// (not the clock or the sync queue). Equal in every process for equal histories.
    public func contentDigest() -> UInt64 {
        var digest = StableDigest()
        for inodeID in inodes.keys.sorted() {
            let inode = inodes[inodeID]!
            digest.combine(inodeID.rawValue)
            digest.combine(byte: inode.isDirectory ? 1 : 0)
            if inode.isDirectory {
                let names = inode.durableEntries.keys.sorted(by: utf8Precedes)
                digest.combine(names.count)
                for name in names {
                    digest.combine(string: name)
                    digest.combine(inode.durableEntries[name]!.rawValue)
                }
                digest.combine(inode.pendingNamespace.count)
                for operation in inode.pendingNamespace {
                    digest.combine(operation.sequence)
                    switch operation.change {
                    case let .link(name, target):
                        digest.combine(byte: 1); digest.combine(string: name); digest.combine(target.rawValue)
                    case let .unlink(name):
                        digest.combine(byte: 2); digest.combine(string: name)
                    case let .move(from, to, target):
                        digest.combine(byte: 3); digest.combine(string: from); digest.combine(string: to)
                        digest.combine(target.rawValue)
                    }
                    digest.combine(operation.requires?.sequence ?? 0)
                }
            } else {
                digest.combine(bytes: inode.durableContent)
                digest.combine(inode.pendingContent.count)
                for operation in inode.pendingContent {
                    digest.combine(operation.sequence)
                    switch operation.change {
                    case let .write(position, bytes):
                        digest.combine(byte: 1); digest.combine(position); digest.combine(bytes: bytes)
                    case let .truncate(size):
                        digest.combine(byte: 2); digest.combine(size)
                    }
                }
            }
        }
        return digest.value
    }

    // MARK: Crashes

    /// Power loss (or a kernel crash) with the disk's own crash stream. See `powerLoss(using:)`.
    public func powerLoss() {
        powerLoss(using: &crashRandom)
    }

    /// The machine loses power: see `crash(using:)`, which is the same operation.
    public func powerLoss(using random: inout DeterministicRandom) {
        crash(using: &random)
    }

    /// A crash of the machine with the disk's own crash stream.
    public func crash() {
        crash(using: &crashRandom)
    }

    /// The machine crashes or loses power, and the page cache with it. Syncs due by `now` have
    /// completed (durable, but their completions are never delivered); later ones are dropped.
    /// Every handle becomes invalid. Per file, a random prefix of its unsynced operations
    /// survives (the last kept write possibly torn, kept writes possibly garbled per sector); per
    /// directory, a random prefix of its unsynced entry changes; what is no longer reachable from
    /// the durable root disappears. Durable data is never changed. The disk keeps working: the
    /// restarted node reopens its files.
    public func crash(using random: inout DeterministicRandom) {
        completeDueSyncs()
        statistics.crashes += 1
        noteDurableChange(nil)
        scheduledSyncs = BoundedHeap(capacity: configuration.maximumOutstandingSyncs)
        finishedCompletions.removeAll()
        processGeneration += 1
        openFiles.removeAll()
        collectionCandidates.removeAll()
        let adversarial = configuration.crashBehavior == .adversarial
        let inodeIDs = inodes.keys.sorted()
        for inodeID in inodeIDs where !inodes[inodeID]!.isDirectory {
            persistRandomContentPrefix(of: inodes[inodeID]!, adversarial: adversarial, using: &random)
        }
        persistRandomNamespacePrefixes(
            of: inodeIDs.filter { inodes[$0]!.isDirectory }, adversarial: adversarial, using: &random)
        removeUnreachableInodes()
    }

    /// The node's process dies but the machine does not: the page cache survives, so every
    /// written byte stays (and reaches disk eventually, as far as a later crash is concerned only
    /// through syncs and writeback). Handles become invalid and completions of syncs requested
    /// before are never delivered, though those syncs still make their data durable when due.
    public func killProcess() {
        statistics.processKills += 1
        processGeneration += 1
        finishedCompletions.removeAll()
        for handle in openFiles.keys.sorted() {
            release(openFiles[handle]!)
        }
        openFiles.removeAll()
        collectGarbage()
    }

    // MARK: Internals

    private func makeInode(isDirectory: Bool, path: String) -> SimInode {
        let inode = SimInode(id: SimInodeID(rawValue: nextInodeNumber), isDirectory: isDirectory, lastKnownPath: path)
        nextInodeNumber += 1
        inodes[inode.id] = inode
        return inode
    }

    private func nextSequence() -> UInt64 {
        lastSequence += 1
        return lastSequence
    }

    private func openInode(_ file: DiskFile) throws(DiskError) -> SimInode {
        guard let inodeID = openFiles[file] else { throw .notOpen(file) }
        return inodes[inodeID]!
    }

    /// Resolves a path in the volatile view.
    func lookup(_ path: String) -> SimInode? {
        var current = inodes[rootID]!
        for name in simPathComponents(path) {
            guard current.isDirectory, let childID = current.volatileEntries[name] else { return nil }
            current = inodes[childID]!
        }
        return current
    }

    /// Resolves a path through durable entries only.
    func durableLookup(_ path: String) -> SimInode? {
        var current = inodes[rootID]!
        for name in simPathComponents(path) {
            guard current.isDirectory, let childID = current.durableEntries[name],
                  let child = inodes[childID] else { return nil }
            current = child
        }
        return current
    }

    /// The directory that holds `path` (volatile view) and the entry name within it.
    private func lookupParent(_ path: String, rootError: DiskError? = nil) throws(DiskError) -> (SimInode, String) {
        var components = simPathComponents(path)
        guard let name = components.popLast() else {
            throw rootError ?? .io(operation: "modify", path: path, code: SimErrno.busy)
        }
        var current = inodes[rootID]!
        for component in components {
            guard let childID = current.volatileEntries[component] else { throw .notFound(path: path) }
            current = inodes[childID]!
            guard current.isDirectory else { throw .io(operation: "lookup", path: path, code: SimErrno.notDirectory) }
        }
        return (current, name)
    }

    private func recordContentChange(_ change: SimContentChange, in inode: SimInode) {
        precondition(!inode.isDirectory, "content change on a directory")
        change.apply(to: &inode.volatileContent)
        inode.pendingContent.append(SimPendingContentOperation(sequence: nextSequence(), change: change))
        if inode.pendingContent.count > configuration.maximumPendingOperations {
            statistics.writebacks += 1
            let half = inode.pendingContent[inode.pendingContent.count / 2 - 1].sequence
            makeContentDurable(inode, throughSequence: half)
        }
    }

    @discardableResult
    private func recordNamespaceChange(
        _ change: SimNamespaceChange, in directory: SimInode, requires: SimNamespaceDependency? = nil
    ) -> UInt64 {
        precondition(directory.isDirectory, "namespace change in a file")
        let sequence = nextSequence()
        if let linked = change.linkedInode { inodes[linked]!.referenceCount += 1 }
        change.apply(to: &directory.volatileEntries)
        directory.pendingNamespace.append(SimPendingNamespaceOperation(sequence: sequence, change: change, requires: requires))
        if directory.pendingNamespace.count > configuration.maximumPendingOperations {
            statistics.writebacks += 1
            let half = directory.pendingNamespace[directory.pendingNamespace.count / 2 - 1].sequence
            makeNamespaceDurable(directory.id, throughSequence: half)
        }
        return sequence
    }

    /// Advances `durableStateVersion` for `change` (nil: a change of anything).
    func noteDurableChange(_ change: DurableChange?) {
        durableStateVersion += 1
        guard let change, durableChangeLog.count < Self.durableChangeLogCapacity else {
            durableChangeLog.removeAll(keepingCapacity: true)
            durableChangeLogStart = durableStateVersion
            return
        }
        durableChangeLog.append((durableStateVersion, change))
    }

    /// What changed durably after `version` (a `durableStateVersion` read earlier), newest
    /// first, or nil if the disk no longer knows (a crash changed everything, or too much
    /// changed).
    public func durableChanges(after version: UInt64) -> [DurableChange]? {
        guard version >= durableChangeLogStart else { return nil }
        return durableChangeLog.reversed().prefix { $0.version > version }.map(\.change)
    }

    /// Makes durable every pending content operation of `inode` issued up to `throughSequence`.
    func makeContentDurable(_ inode: SimInode, throughSequence: UInt64) {
        let count = inode.pendingContentPrefixCount(through: throughSequence)
        guard count > 0 else { return }
        for operation in inode.pendingContent[..<count] {
            if operation.change.rewrites(durableSize: inode.durableContent.count) { inode.durableRewrites += 1 }
            operation.change.apply(to: &inode.durableContent)
            if inode.durableContentAsWritten != nil { operation.change.apply(to: &inode.durableContentAsWritten!) }
        }
        inode.pendingContent.removeFirst(count)
        noteDurableChange(DurableChange(path: inode.lastKnownPath, isEntry: false))
    }

    /// Makes durable every pending namespace operation of a directory issued up to
    /// `throughSequence`, and first whatever those depend on in other directories (the journal
    /// commits a cross-directory rename as one transaction).
    func makeNamespaceDurable(_ directoryID: SimInodeID, throughSequence: UInt64) {
        guard let directory = inodes[directoryID] else { return }
        while let first = directory.pendingNamespace.first, first.sequence <= throughSequence {
            directory.pendingNamespace.removeFirst()
            for name in first.change.names { noteDurableChange(DurableChange(path: joinPath(directory.lastKnownPath, name), isEntry: true)) }
            if let dependency = first.requires {
                makeNamespaceDurable(dependency.directory, throughSequence: dependency.sequence)
            }
            applyDurably(first, in: directory)
        }
    }

    /// Applies a namespace operation that leaves the pending list to the durable entries, moving
    /// its reference from "pending" to "durable entry" and releasing entries it replaces.
    func applyDurably(_ operation: SimPendingNamespaceOperation, in directory: SimInode) {
        switch operation.change {
        case let .link(name, inode):
            if let replaced = directory.durableEntries.updateValue(inode, forKey: name) { release(replaced) }
        case let .unlink(name):
            if let removed = directory.durableEntries.removeValue(forKey: name) { release(removed) }
        case let .move(from, to, inode):
            let moved = directory.durableEntries.removeValue(forKey: from)
            precondition(moved == inode, "a durable move must find its source entry")
            if let replaced = directory.durableEntries.updateValue(inode, forKey: to) { release(replaced) }
            release(inode)  // the entry under `from` no longer points at it
        }
        // `link` and `move` held a pending reference that is now the durable entry's: unchanged.
    }

    /// Drops one reference; an inode at zero is freed by the next `collectGarbage`.
    func release(_ inodeID: SimInodeID) {
        guard let inode = inodes[inodeID] else { return }
        precondition(inode.referenceCount > 0, "\(inodeID) released more often than referenced")
        inode.referenceCount -= 1
        if inode.referenceCount == 0 { collectionCandidates.append(inodeID) }
    }

    /// Frees inodes nothing can reach any more (not open, no durable entry, no pending link).
    /// Freeing a directory releases what its entries and pending links pointed to.
    func collectGarbage() {
        while let candidateID = collectionCandidates.popLast() {
            guard let candidate = inodes[candidateID], candidate.referenceCount == 0 else { continue }
            inodes[candidateID] = nil
            if candidate.isDirectory {
                for name in candidate.durableEntries.keys.sorted(by: utf8Precedes) {
                    release(candidate.durableEntries[name]!)
                }
                for operation in candidate.pendingNamespace {
                    if let linked = operation.change.linkedInode { release(linked) }
                }
            }
        }
    }
}
