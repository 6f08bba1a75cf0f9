import CSystem
import Glibc
import Posix
import Synchronization
import TernCore

/// One thread's epoll loop: descriptor readiness, deadlines and cross-thread wakeups.
///
/// Level-triggered on purpose: a handler may stop reading before a socket is drained (its input or
/// output bound is reached, or it yields for fairness after a few reads), and a level-triggered
/// epoll reports the descriptor again on the next iteration without the handler having to remember
/// that it left data behind. Interest is narrowed instead (no `readable` while reading is paused,
/// `writable` only while output is pending), so nothing spins.
///
/// Not thread-safe: every method is called on the loop's thread, except `EventLoopWakeup.wake`.
/// Handlers run on that thread and may register, modify and deregister anything, themselves
/// included; an event for a registration removed earlier in the same batch is skipped (tokens are
/// never reused).
public final class EventLoop {
    public struct Interest: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Interest(rawValue: TERN_EPOLL_IN)
        public static let writable = Interest(rawValue: TERN_EPOLL_OUT)
    }

    /// What epoll reported for a descriptor.
    public struct Readiness: OptionSet, Sendable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let readable = Readiness(rawValue: TERN_EPOLL_IN)
        public static let writable = Readiness(rawValue: TERN_EPOLL_OUT)
        public static let error = Readiness(rawValue: TERN_EPOLL_ERROR)
        public static let hangUp = Readiness(rawValue: TERN_EPOLL_HANG_UP)
    }

    public struct RegistrationID: Hashable, Sendable { fileprivate let token: UInt64 }
    public struct TimerID: Hashable, Sendable { fileprivate let sequence: UInt64 }

    private struct Registration {
        let descriptor: Int32
        var interest: Interest
        let handler: (Readiness) -> Void
    }

    private let epollDescriptor: Int32
    private var registrations: [UInt64: Registration] = [:]
    private var nextToken: UInt64 = 1

    private var timerHeap = DeadlineHeap()
    private var timerActions: [UInt64: () -> Void] = [:]
    private var nextTimerSequence: UInt64 = 1
    /// Live timers; scheduling more is a precondition failure (a leak of timers is a bug).
    public let maximumTimers: Int

    /// Wakes the loop from any thread; `onWakeup` runs on the loop thread afterwards.
    public let wakeup: EventLoopWakeup
    public var onWakeup: (() -> Void)?
    /// Runs after every iteration (events and due timers handled).
    public var afterIteration: (() -> Void)?

    private var stopRequested = false
    /// Ready events taken per epoll_wait.
    static let eventsPerWait: Int32 = 256
    private var readyTokens = [UInt64](repeating: 0, count: Int(eventsPerWait))
    private var readyEvents = [UInt32](repeating: 0, count: Int(eventsPerWait))

    public init(maximumTimers: Int = 4_096) throws(SystemCallError) {
        precondition(maximumTimers > 0, "an event loop needs room for a timer")
        self.maximumTimers = maximumTimers
        epollDescriptor = try systemCall("epoll_create1") { tern_epoll_create() }
        do throws(SystemCallError) {
            wakeup = try EventLoopWakeup()
        } catch {
            closeDescriptor(epollDescriptor)
            throw error
        }
        let wakeup = self.wakeup
        _ = try register(wakeup.descriptor, interest: .readable) { [unowned self] _ in
            wakeup.reset()
            self.onWakeup?()
        }
    }

    deinit {
        closeDescriptor(epollDescriptor)
    }

    // MARK: Descriptors

    /// Watches `descriptor` (which the caller keeps owning and closes after `deregister`).
    public func register(_ descriptor: Int32, interest: Interest,
                         handler: @escaping (Readiness) -> Void) throws(SystemCallError) -> RegistrationID {
        let token = nextToken
        nextToken += 1
        _ = try systemCall("epoll_ctl(add)") { tern_epoll_control(epollDescriptor, 0, descriptor, interest.rawValue, token) }
        registrations[token] = Registration(descriptor: descriptor, interest: interest, handler: handler)
        return RegistrationID(token: token)
    }

    public func modify(_ registration: RegistrationID, interest: Interest) {
        guard var entry = registrations[registration.token], entry.interest != interest else { return }
        entry.interest = interest
        registrations[registration.token] = entry
        do throws(SystemCallError) {
            _ = try systemCall("epoll_ctl(mod)") {
                tern_epoll_control(epollDescriptor, 1, entry.descriptor, interest.rawValue, registration.token)
            }
        } catch {
            // Only a descriptor that is not registered or not open fails here: a bug of the caller.
            preconditionFailure("epoll_ctl(mod) on descriptor \(entry.descriptor): \(error)")
        }
    }

    public func interest(of registration: RegistrationID) -> Interest? { registrations[registration.token]?.interest }

    /// Stops watching; must come before the descriptor is closed.
    public func deregister(_ registration: RegistrationID) {
        guard let entry = registrations.removeValue(forKey: registration.token) else { return }
        _ = tern_epoll_control(epollDescriptor, 2, entry.descriptor, 0, registration.token)
    }

    public var registrationCount: Int { registrations.count }

    // MARK: Time

    /// The monotonic clock as the node's `Instant` (nanoseconds since an arbitrary origin).
    public static func monotonicNow() -> Instant { Clocks.monotonicNow() }

    public var now: Instant { Self.monotonicNow() }

    /// Runs `action` once on the loop thread at or after `deadline`.
    @discardableResult
    public func scheduleTimer(at deadline: Instant, _ action: @escaping () -> Void) -> TimerID {
        precondition(timerActions.count < maximumTimers, "more than \(maximumTimers) timers pending")
        let sequence = nextTimerSequence
        nextTimerSequence += 1
        timerActions[sequence] = action
        timerHeap.insert(deadline: deadline, sequence: sequence)
        // Cancelled timers stay in the heap until they come due; rebuild when they dominate it so
        // the heap stays bounded by a multiple of the live timers.
        if timerHeap.count > 2 * max(timerActions.count, 64) {
            timerHeap.removeAll { timerActions[$0] == nil }
        }
        return TimerID(sequence: sequence)
    }

    @discardableResult
    public func scheduleTimer(after delay: Duration, _ action: @escaping () -> Void) -> TimerID {
        scheduleTimer(at: now + delay, action)
    }

    public func cancelTimer(_ timer: TimerID) {
        timerActions[timer.sequence] = nil
    }

    public var pendingTimerCount: Int { timerActions.count }
    /// Heap entries, cancelled ones included (tests check that they stay bounded).
    var timerHeapEntryCount: Int { timerHeap.count }

    // MARK: Running

    /// Makes `run` return after the current iteration.
    public func stop() { stopRequested = true }

    /// Iterates until `stop` is called.
    public func run() {
        stopRequested = false
        while !stopRequested { runOnce() }
    }

    /// One iteration: waits for readiness until the next deadline (at most `maximumWait`), handles
    /// what is ready, then every due timer, then `afterIteration`.
    public func runOnce(maximumWait: Duration? = nil) {
        let timeoutMilliseconds = waitTimeoutMilliseconds(maximumWait: maximumWait)
        let count = readyTokens.withUnsafeMutableBufferPointer { tokens in
            readyEvents.withUnsafeMutableBufferPointer { events in
                tern_epoll_wait(epollDescriptor, tokens.baseAddress, events.baseAddress, Self.eventsPerWait, timeoutMilliseconds)
            }
        }
        if count < 0 {
            let code = tern_errno()
            // A signal interrupting the wait is normal (a debugger, SIGSTOP/SIGCONT); anything
            // else means the epoll descriptor is broken.
            precondition(code == EINTR, "epoll_wait failed (errno \(code))")
        }
        for index in 0..<max(0, Int(count)) {
            guard let registration = registrations[readyTokens[index]] else { continue }
            registration.handler(Readiness(rawValue: readyEvents[index]))
        }
        runDueTimers()
        afterIteration?()
    }

    private func waitTimeoutMilliseconds(maximumWait: Duration?) -> Int32 {
        if stopRequested { return 0 }
        var wait: Duration? = maximumWait
        while let next = timerHeap.minimum, timerActions[next.sequence] == nil { _ = timerHeap.popMinimum() }
        if let next = timerHeap.minimum {
            let untilDeadline = next.deadline - now
            wait = min(wait ?? untilDeadline, untilDeadline)
        }
        guard let wait else { return -1 }
        if wait.nanoseconds <= 0 { return 0 }
        // Rounded up, so the loop never wakes just before a deadline and spins until it.
        let milliseconds = (wait.nanoseconds + 999_999) / 1_000_000
        return Int32(min(milliseconds, Int64(Int32.max)))
    }

    private func runDueTimers() {
        let current = now
        // Timers scheduled by the actions themselves (a tick rescheduling itself) wait for the next
        // iteration, so one iteration runs a bounded number of them.
        var budget = timerHeap.count
        while budget > 0, let next = timerHeap.minimum, next.deadline <= current {
            budget -= 1
            _ = timerHeap.popMinimum()
            guard let action = timerActions.removeValue(forKey: next.sequence) else { continue }
            action()
        }
    }
}

/// An eventfd that wakes an `EventLoop` from any thread. It owns the descriptor, which stays open
/// as long as any thread holds the wakeup, so a late `wake` never writes to a reused number.
public final class EventLoopWakeup: Sendable {
    let descriptor: Int32

    init() throws(SystemCallError) {
        descriptor = try systemCall("eventfd") { eventfd(0, Int32(EFD_CLOEXEC) | Int32(EFD_NONBLOCK)) }
    }

    deinit { closeDescriptor(descriptor) }

    public func wake() {
        var one: UInt64 = 1
        // EAGAIN means the counter is saturated: the loop is woken anyway.
        _ = withUnsafeBytes(of: &one) { Glibc.write(descriptor, $0.baseAddress, 8) }
    }

    func reset() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { Glibc.read(descriptor, $0.baseAddress, 8) }
    }
}

/// A binary min-heap of (deadline, sequence); the sequence breaks ties in scheduling order.
struct DeadlineHeap {
    struct Entry {
        let deadline: Instant
        let sequence: UInt64
        func precedes(_ other: Entry) -> Bool {
            deadline != other.deadline ? deadline < other.deadline : sequence < other.sequence
        }
    }

    private var entries: [Entry] = []
    var count: Int { entries.count }
    var minimum: Entry? { entries.first }

    mutating func insert(deadline: Instant, sequence: UInt64) {
        entries.append(Entry(deadline: deadline, sequence: sequence))
        siftUp(entries.count - 1)
    }

    mutating func popMinimum() -> Entry? {
        guard !entries.isEmpty else { return nil }
        entries.swapAt(0, entries.count - 1)
        let minimum = entries.removeLast()
        if !entries.isEmpty { siftDown(0) }
        return minimum
    }

    mutating func removeAll(where shouldRemove: (UInt64) -> Bool) {
        entries.removeAll { shouldRemove($0.sequence) }
        for index in stride(from: entries.count / 2 - 1, through: 0, by: -1) { siftDown(index) }
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].precedes(entries[parent]) else { return }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < entries.count else { return }
            var smallest = left
            if left + 1 < entries.count, entries[left + 1].precedes(entries[left]) { smallest = left + 1 }
            guard entries[smallest].precedes(entries[parent]) else { return }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
