import Glibc
@testable import Runtime
import Synchronization
import TernCore
import Testing

@Suite struct EventLoopTests {
    @Test func timersFireInDeadlineOrderAndCancelledOnesNever() throws {
        let loop = try EventLoop()
        let start = loop.now
        var fired: [Int] = []
        // Scheduled out of order, with a tie (3 and 4 share a deadline: scheduling order decides).
        loop.scheduleTimer(at: start + .milliseconds(30)) { fired.append(5) }
        loop.scheduleTimer(at: start + .milliseconds(10)) { fired.append(2) }
        loop.scheduleTimer(at: start + .milliseconds(20)) { fired.append(3) }
        loop.scheduleTimer(at: start + .milliseconds(20)) { fired.append(4) }
        loop.scheduleTimer(at: start) { fired.append(1) }
        let cancelled = loop.scheduleTimer(at: start + .milliseconds(15)) { fired.append(99) }
        loop.cancelTimer(cancelled)
        #expect(drive(loop) { fired.count == 5 })
        #expect(fired == [1, 2, 3, 4, 5])
        #expect(loop.pendingTimerCount == 0)
        // No timer fires before its deadline.
        #expect(loop.now >= start + .milliseconds(30))
    }

    @Test func aTimerSchedulingItselfRunsOncePerIteration() throws {
        let loop = try EventLoop()
        var count = 0
        func reschedule() {
            loop.scheduleTimer(at: .zero) {
                count += 1
                reschedule()
            }
        }
        reschedule()
        loop.runOnce(maximumWait: .zero)
        #expect(count == 1, "an already-due timer rescheduled from its action waits for the next iteration")
        loop.runOnce(maximumWait: .zero)
        #expect(count == 2)
    }

    @Test func theWaitEndsAtTheNextDeadline() throws {
        let loop = try EventLoop()
        var fired = false
        loop.scheduleTimer(after: .milliseconds(20)) { fired = true }
        // Without a maximum wait, one iteration blocks until the timer is due, then runs it.
        loop.runOnce()
        #expect(fired)
    }

    @Test func cancelledTimersDoNotAccumulate() throws {
        let loop = try EventLoop(maximumTimers: 16)
        for _ in 0..<10_000 {
            let timer = loop.scheduleTimer(after: .seconds(60)) {}
            loop.cancelTimer(timer)
        }
        #expect(loop.pendingTimerCount == 0)
        #expect(loop.timerHeapEntryCount <= 129, "cancelled entries are purged once they dominate the heap")
    }

    @Test func aWakeupFromAnotherThreadEndsTheWait() throws {
        let loop = try EventLoop()
        let wakeup = loop.wakeup
        var woken = false
        loop.onWakeup = { woken = true }
        let thread = TestThread {
            sleepMilliseconds(20)
            wakeup.wake()
        }
        // No timer and no maximum wait: only the wakeup can end this iteration.
        while !woken { loop.runOnce() }
        thread.join()
        #expect(woken)
    }

    @Test func readinessOfARegisteredDescriptorRunsItsHandler() throws {
        let loop = try EventLoop()
        var descriptors: [Int32] = [0, 0]
        #expect(pipe(&descriptors) == 0)
        defer { close(descriptors[0]); close(descriptors[1]) }
        var readiness: EventLoop.Readiness = []
        let registration = try loop.register(descriptors[0], interest: .readable) { readiness = $0 }
        loop.runOnce(maximumWait: .zero)
        #expect(readiness.isEmpty)
        _ = write(descriptors[1], "x", 1)
        #expect(drive(loop) { readiness.contains(.readable) })
        loop.deregister(registration)
        readiness = []
        loop.runOnce(maximumWait: .milliseconds(5))
        #expect(readiness.isEmpty, "a deregistered descriptor is not reported")
    }
}
