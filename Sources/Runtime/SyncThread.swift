import CSystem
import Glibc
import LogStorage
import Posix
import Synchronization
import TernCore

/// What one sync request makes durable.
enum SyncTarget: Sendable {
    /// A file's data and size (fdatasync). Holds the open file, so its descriptor stays open until
    /// the request is done even if the file is closed meanwhile.
    case file(OpenFile)
    /// A directory's entries (fsync on the directory, opened for the occasion).
    case directory(path: String)
    /// Failed before reaching the thread (e.g. the file was not open); completed in queue order.
    case failed(DiskError)
    /// A discarded file whose last reference the thread drops, so that freeing its space (on the
    /// descriptor's close) happens there; nothing is synced and no completion is posted.
    case release(OpenFile)
}

struct SyncRequest: Sendable {
    /// Nil for a release, which nobody waits for.
    let token: SyncToken?
    let target: SyncTarget
}

/// Counts of the sync thread's work, for metrics and tests.
public struct SyncStatistics: Sendable, Equatable, CustomStringConvertible {
    /// Times the thread woke up and took every pending request as one group.
    public var batches: UInt64
    public var fdatasyncCalls: UInt64
    /// fsync calls on directories.
    public var directoryFsyncCalls: UInt64
    /// Sync requests whose completion has been posted (successful or not).
    public var completedRequests: UInt64

    public var description: String {
        "batches=\(batches) fdatasync=\(fdatasyncCalls) directoryFsync=\(directoryFsyncCalls) completed=\(completedRequests)"
    }
}

/// A dedicated pthread that makes files and directories durable with group commit.
///
/// Requesters enqueue into a bounded queue; the thread wakes, takes every pending request as one
/// batch, calls fdatasync once per distinct file and fsync once per distinct directory of the
/// batch, then posts one completion per request (in request order) and signals an eventfd. Every
/// request pending when a sync starts is covered by it, so under load one fdatasync serves many
/// requests.
final class SyncThread: Sendable {
    private let requests: BoundedBlockingQueue<SyncRequest>
    /// Completions not yet collected. Bounded: `enqueue` refuses to let more than
    /// `maximumUncollectedSyncs` requests be issued and not yet collected.
    private let completions: Mutex<[SyncCompletion]>
    /// Readable (counter non-zero) exactly while `completions` is non-empty: both change together
    /// under the completions lock. Non-blocking, close-on-exec.
    let completionEventDescriptor: Int32
    private let maximumUncollectedSyncs: UInt64
    private let thread = Mutex<pthread_t?>(nil)

    private let lastIssuedToken = Atomic<UInt64>(0)
    private let collectedCount = Atomic<UInt64>(0)
    private let batchCount = Atomic<UInt64>(0)
    private let fdatasyncCount = Atomic<UInt64>(0)
    private let directoryFsyncCount = Atomic<UInt64>(0)
    private let completedCount = Atomic<UInt64>(0)

    /// Creates the eventfd and starts the thread.
    init(queueCapacity: Int, maximumUncollectedSyncs: Int) throws(SystemCallError) {
        precondition(queueCapacity > 0, "the sync queue needs room for at least one request")
        precondition(maximumUncollectedSyncs >= queueCapacity,
                     "uncollected completions must allow at least a full queue")
        requests = BoundedBlockingQueue(capacity: queueCapacity)
        var initialCompletions: [SyncCompletion] = []
        initialCompletions.reserveCapacity(queueCapacity)
        completions = Mutex(initialCompletions)
        self.maximumUncollectedSyncs = UInt64(maximumUncollectedSyncs)
        completionEventDescriptor = try systemCall("eventfd") {
            eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK))
        }
        try start()
    }

    deinit {
        stop()
        closeDescriptor(completionEventDescriptor)
    }

    private func start() throws(SystemCallError) {
        // The thread owns one reference until it exits, released in `syncThreadMain`.
        let context = Unmanaged.passRetained(self).toOpaque()
        var handle = pthread_t()
        let code = pthread_create(&handle, nil, syncThreadMain, context)
        guard code == 0 else {
            Unmanaged<SyncThread>.fromOpaque(context).release()
            throw SystemCallError(operation: "pthread_create", code: code)
        }
        thread.withLock { $0 = handle }
    }

    /// Finishes every queued request, then ends the thread and waits for it. Idempotent. Must not
    /// be called from the sync thread itself.
    func stop() {
        requests.close()
        guard let handle = thread.withLock({ thread in defer { thread = nil }; return thread }) else { return }
        precondition(pthread_equal(handle, pthread_self()) == 0, "the sync thread cannot stop itself")
        let code = pthread_join(handle, nil)
        precondition(code == 0, "pthread_join on the sync thread failed (\(code))")
    }

    /// Queues a request and returns its token, fresh and increasing. Blocks while the queue is
    /// full, which lasts at most until the thread takes its next batch (it takes all pending
    /// requests at once).
    func enqueue(_ target: SyncTarget) -> SyncToken {
        var token = SyncToken(rawValue: 0)
        let accepted = requests.append {
            // Allocated under the queue's lock, so the queue is in token order.
            let issued = lastIssuedToken.add(1, ordering: .relaxed).newValue
            precondition(issued - collectedCount.load(ordering: .relaxed) <= maximumUncollectedSyncs,
                         "more than \(maximumUncollectedSyncs) syncs issued and not collected: call pollCompletions")
            token = SyncToken(rawValue: issued)
            return SyncRequest(token: token, target: target)
        }
        precondition(accepted, "sync requested after the disk was closed")
        return token
    }

    /// Hands the thread the last reference to a discarded file. Blocks like `enqueue` while the
    /// queue is full.
    func release(_ openFile: OpenFile) {
        let accepted = requests.append { SyncRequest(token: nil, target: .release(openFile)) }
        precondition(accepted, "file released after the disk was closed")
    }

    /// Moves every posted completion into `collected`, in completion order, and resets the eventfd.
    /// Never blocks; makes no system call when there is nothing to collect.
    func collect(into collected: inout [SyncCompletion]) {
        let moved = completions.withLock { pending -> Int in
            guard !pending.isEmpty else { return 0 }
            var counter: eventfd_t = 0
            let outcome = eventfd_read(completionEventDescriptor, &counter)
            precondition(outcome == 0, "the completion eventfd must be readable while completions are pending (errno \(tern_errno()))")
            collected.append(contentsOf: pending)
            let count = pending.count
            pending.removeAll(keepingCapacity: true)
            return count
        }
        if moved > 0 { collectedCount.add(UInt64(moved), ordering: .relaxed) }
    }

    var hasCompletions: Bool { completions.withLock { !$0.isEmpty } }

    /// Blocks until a completion is available to collect or the timeout passes (a negative
    /// timeout waits forever). Returns whether a completion is available.
    @discardableResult
    func waitForCompletions(timeoutMilliseconds: Int32) -> Bool {
        let deadlineMilliseconds = Clocks.monotonicMilliseconds() + Int64(timeoutMilliseconds)
        while !hasCompletions {
            var remainingMilliseconds: Int32 = -1
            if timeoutMilliseconds >= 0 {
                let left = deadlineMilliseconds - Clocks.monotonicMilliseconds()
                if left <= 0 { return false }
                remainingMilliseconds = Int32(clamping: left)
            }
            var waiting = pollfd(fd: completionEventDescriptor, events: Int16(POLLIN), revents: 0)
            do {
                _ = try systemCall("poll") { poll(&waiting, 1, remainingMilliseconds) }
            } catch {
                preconditionFailure("poll on the completion eventfd failed: \(error)")
            }
        }
        return true
    }

    var statistics: SyncStatistics {
        SyncStatistics(
            batches: batchCount.load(ordering: .relaxed),
            fdatasyncCalls: fdatasyncCount.load(ordering: .relaxed),
            directoryFsyncCalls: directoryFsyncCount.load(ordering: .relaxed),
            completedRequests: completedCount.load(ordering: .relaxed))
    }

    /// Test hook: while paused the thread takes no batch, so a test can queue a known group.
    func pauseBatches() { requests.setPaused(true) }
    func resumeBatches() { requests.setPaused(false) }

    // MARK: - On the sync thread

    fileprivate func run() {
        var batch: [SyncRequest] = []
        batch.reserveCapacity(requests.capacity)
        var results: [SyncCompletion] = []
        results.reserveCapacity(requests.capacity)
        while requests.takeAll(into: &batch) {
            perform(batch, into: &results)
            // Drop the batch's file references before posting, so a closed file's descriptor is
            // released by the time its owner sees the completion.
            batch.removeAll(keepingCapacity: true)
            // A batch of releases only has nothing to post (an empty post would leave the eventfd
            // readable with nothing to collect).
            if !results.isEmpty { post(&results) }
        }
    }

    /// One fdatasync per distinct file and one fsync per distinct directory, in order of first
    /// appearance; every request of a target gets that target's outcome.
    private func perform(_ batch: [SyncRequest], into results: inout [SyncCompletion]) {
        precondition(!batch.isEmpty, "the sync thread takes a batch only when requests are pending")
        var fileOutcomes: [DiskFile: Result<Void, DiskError>] = [:]
        var directoryOutcomes: [String: Result<Void, DiskError>] = [:]
        for request in batch {
            let outcome: Result<Void, DiskError>
            switch request.target {
            case let .file(openFile):
                if let known = fileOutcomes[openFile.file] {
                    outcome = known
                } else {
                    outcome = synchronizeData(of: openFile)
                    fileOutcomes[openFile.file] = outcome
                }
            case let .directory(path):
                if let known = directoryOutcomes[path] {
                    outcome = known
                } else {
                    outcome = synchronizeDirectory(path)
                    directoryOutcomes[path] = outcome
                }
            case let .failed(error):
                outcome = .failure(error)
            case .release:
                continue
            }
            guard let token = request.token else { preconditionFailure("a sync request always has a token") }
            results.append(SyncCompletion(token: token, result: outcome))
        }
        batchCount.add(1, ordering: .relaxed)
    }

    private func synchronizeData(of openFile: OpenFile) -> Result<Void, DiskError> {
        // After a failed fdatasync Linux may already have marked the lost pages clean, so a later
        // fdatasync could succeed without the data being durable ("fsyncgate"). The first failure
        // therefore sticks to the open file: every later sync of it fails the same way.
        let earlierFailure = openFile.syncFailureCode.load(ordering: .relaxed)
        if earlierFailure != 0 {
            return .failure(.io(operation: "fdatasync", path: openFile.path, code: earlierFailure))
        }
        fdatasyncCount.add(1, ordering: .relaxed)
        do throws(SystemCallError) {
            _ = try systemCall("fdatasync") { fdatasync(openFile.descriptor) }
            return .success(())
        } catch {
            openFile.syncFailureCode.store(error.code, ordering: .relaxed)
            return .failure(error.diskError(path: openFile.path))
        }
    }

    private func synchronizeDirectory(_ path: String) -> Result<Void, DiskError> {
        do throws(SystemCallError) {
            let descriptor = try systemCall("open") {
                Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            }
            defer { closeDescriptor(descriptor) }
            directoryFsyncCount.add(1, ordering: .relaxed)
            _ = try systemCall("fsync") { fsync(descriptor) }
            return .success(())
        } catch {
            return .failure(error.diskError(path: path))
        }
    }

    private func post(_ results: inout [SyncCompletion]) {
        completedCount.add(UInt64(results.count), ordering: .relaxed)
        completions.withLock { pending in
            if pending.isEmpty {
                // The eventfd goes readable on the transition to non-empty; `collect` resets it.
                let outcome = eventfd_write(completionEventDescriptor, 1)
                precondition(outcome == 0, "writing the completion eventfd failed (errno \(tern_errno()))")
            }
            pending.append(contentsOf: results)
        }
        results.removeAll(keepingCapacity: true)
    }
}

/// Entry point of the sync pthread; the context is a retained `SyncThread`.
private func syncThreadMain(_ context: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let context else { preconditionFailure("the sync thread needs its SyncThread") }
    _ = tern_set_thread_name("tern-sync")
    let syncThread = Unmanaged<SyncThread>.fromOpaque(context).takeRetainedValue()
    syncThread.run()
    return nil
}

extension SystemCallError {
    /// ENOENT becomes `.notFound`; anything else `.io` naming the call and the path.
    func diskError(path: String) -> DiskError {
        code == ENOENT ? .notFound(path: path) : .io(operation: operation, path: path, code: code)
    }
}

/// A first-in first-out queue with a fixed capacity, from any number of producer threads to one
/// consumer thread. Producers block while it is full; the consumer takes everything pending at once.
///
/// `Synchronization.Mutex` has no condition variable, so this is a pthread mutex with two
/// condition variables. `@unchecked Sendable` because every stored `var` is read and written only
/// with `mutex` held, and elements are `Sendable`.
final class BoundedBlockingQueue<Element: Sendable>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let becameNonEmpty = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let gainedRoom = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var elements: RingBuffer<Element>
    let capacity: Int
    private var isClosed = false
    private var isPaused = false

    init(capacity: Int) {
        elements = RingBuffer(capacity: capacity)
        self.capacity = capacity
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        precondition(pthread_cond_init(becameNonEmpty, nil) == 0, "pthread_cond_init failed")
        precondition(pthread_cond_init(gainedRoom, nil) == 0, "pthread_cond_init failed")
    }

    deinit {
        pthread_cond_destroy(gainedRoom)
        pthread_cond_destroy(becameNonEmpty)
        pthread_mutex_destroy(mutex)
        gainedRoom.deallocate()
        becameNonEmpty.deallocate()
        mutex.deallocate()
    }

    private func withMutex<Outcome>(_ body: () -> Outcome) -> Outcome {
        precondition(pthread_mutex_lock(mutex) == 0, "pthread_mutex_lock failed")
        defer { precondition(pthread_mutex_unlock(mutex) == 0, "pthread_mutex_unlock failed") }
        return body()
    }

    /// Waits for room, then appends the element `makeElement` builds (it runs with the lock held,
    /// so whatever it numbers is numbered in queue order). Returns false, building nothing, once
    /// the queue is closed.
    func append(_ makeElement: () -> Element) -> Bool {
        withMutex {
            while elements.isFull && !isClosed { pthread_cond_wait(gainedRoom, mutex) }
            guard !isClosed else { return false }
            let appended = elements.append(makeElement())
            precondition(appended, "a queue with room refused an element")
            pthread_cond_signal(becameNonEmpty)
            return true
        }
    }

    /// Waits until elements are pending (and the queue is not paused), then moves all of them into
    /// `taken`. Returns false once the queue is closed and empty: the consumer should stop.
    func takeAll(into taken: inout [Element]) -> Bool {
        withMutex {
            while (elements.isEmpty || isPaused) && !isClosed { pthread_cond_wait(becameNonEmpty, mutex) }
            if elements.isEmpty { return false }
            while let element = elements.popFirst() { taken.append(element) }
            pthread_cond_broadcast(gainedRoom)
            return true
        }
    }

    /// Refuses new elements and wakes everyone; the consumer still drains what is queued.
    func close() {
        withMutex {
            isClosed = true
            pthread_cond_broadcast(becameNonEmpty)
            pthread_cond_broadcast(gainedRoom)
        }
    }

    func setPaused(_ paused: Bool) {
        withMutex {
            isPaused = paused
            pthread_cond_broadcast(becameNonEmpty)
        }
    }
}
