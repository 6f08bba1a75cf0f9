import SimWorld
import Simulator
import TernCore
import Testing

/// The write-availability rule on hand-written histories: a stall past the bound is caught both
/// while it lasts and when the late acknowledgement arrives; writes resuming in time pass.
@Suite struct WriteAvailabilityCheckerTests {
    let failedAt = Instant.zero + .seconds(20)
    let bound = Duration.seconds(5)
    let follower = TopicPartition(topic: "topic-0", partition: 0)
    let untouched = TopicPartition(topic: "topic-0", partition: 1)

    /// n103 failed at 20 s; it was in `follower`'s ISR, not in `untouched`'s. The producer had
    /// been given values up to 40 for `follower` and 41 for `untouched` before.
    func window() -> WriteAvailabilityWindow {
        WriteAvailabilityWindow(failedBroker: NodeID(103), failedAt: failedAt, bound: bound,
                                partitions: [follower, untouched], failedBrokerInISR: [follower],
                                lastValueSentBefore: [follower: 40, untouched: 41])
    }

    func at(_ milliseconds: Int64) -> Instant { failedAt + .milliseconds(milliseconds) }

    @Test func aStallPastTheBoundIsCaughtWhileItLasts() {
        var window = window()
        window.recordSend(follower, value: 58, at: at(500))
        #expect(window.check(now: at(5_400)) == .ok, "4.9 s of waiting is within the bound")
        guard case let .violation(message) = window.check(now: at(5_600)) else {
            Issue.record("5.1 s without an acknowledgement was not reported")
            return
        }
        #expect(message.contains("topic-0-0") && message.contains("n103 was in its ISR"))
    }

    @Test func aLateFirstAcknowledgementIsCaught() {
        var window = window()
        window.recordSend(follower, value: 58, at: at(500))
        guard case .violation = window.recordAcknowledgement(follower, value: 58, at: at(30_500)) else {
            Issue.record("a first acknowledgement 30 s after the failure was accepted (the replica.lag.time.max.ms stall)")
            return
        }
    }

    @Test func writesResumingWithinTheBoundPass() {
        var window = window()
        window.recordSend(follower, value: 58, at: at(500))
        window.recordSend(untouched, value: 59, at: at(550))
        #expect(window.recordAcknowledgement(untouched, value: 59, at: at(600)) == .ok)
        #expect(window.recordAcknowledgement(follower, value: 58, at: at(3_500)) == .ok)
        #expect(window.check(now: at(60_000)) == .ok, "both partitions wrote again in time")
        #expect(window.longestWait(failedBrokerInISR: true) == .seconds(3))
        #expect(window.longestWait(failedBrokerInISR: false) == .milliseconds(50))
    }

    @Test func acknowledgementsOfRecordsGivenBeforeTheFailureDoNotCountAsResuming() {
        var window = window()
        window.recordSend(follower, value: 40, at: at(10))
        #expect(window.partitionsNotYetWaiting == [follower, untouched], "value 40 was given before the failure")
        #expect(window.recordAcknowledgement(follower, value: 40, at: at(20)) == .ok)
        #expect(window.resumedAfter[follower] == nil, "an acknowledgement of an older record is no resumption")
        window.recordSend(follower, value: 58, at: at(900))
        guard case .violation = window.check(now: at(6_000)) else {
            Issue.record("the stall of the records given after the failure was not reported")
            return
        }
    }

    @Test func aPartitionThatLostItsInSyncReplicasIsNoLongerJudged() {
        var window = window()
        window.recordSend(follower, value: 58, at: at(500))
        window.stopJudging(follower)
        #expect(window.check(now: at(60_000)) == .ok)
        #expect(window.recordAcknowledgement(follower, value: 58, at: at(60_000)) == .ok)
    }

    @Test func onlyAFaultTakingDownOneBrokerOpensAWindow() {
        let brokers = [NodeID(101), NodeID(102), NodeID(103)]
        #expect(WriteAvailabilityChecker.singleBrokerFailed(by: .crash(NodeID(102)), brokers: brokers) == NodeID(102))
        #expect(WriteAvailabilityChecker.singleBrokerFailed(by: .killProcess(NodeID(103)), brokers: brokers) == NodeID(103))
        #expect(WriteAvailabilityChecker.singleBrokerFailed(by: .powerLoss([NodeID(101)]), brokers: brokers) == NodeID(101))
        #expect(WriteAvailabilityChecker.singleBrokerFailed(by: .powerLoss([NodeID(101), NodeID(102)]), brokers: brokers) == nil)
        #expect(WriteAvailabilityChecker.singleBrokerFailed(by: .crash(NodeID(1)), brokers: brokers) == nil, "a controller")
        #expect(WriteAvailabilityChecker.singleBrokerFailed(by: .pause(NodeID(101)), brokers: brokers) == nil)
    }
}
