import SimWorld
import Simulator
import TernCore
import Testing

/// One broker fails in a healthy cluster (`broker-failure` profile): writes resume within
/// `broker.session.timeout.ms` plus the margin on every partition that keeps enough in-sync
/// replicas. Before leaders stopped waiting for fenced replicas outside the ISR, every one of
/// these seeds failed: the partitions whose ISR held the failed follower waited
/// `replica.lag.time.max.ms` (30 s) for their first acknowledgement.
/// Replay: `tern simulate --seed N --profile broker-failure --safety-seconds 30`.
@Suite struct WriteAvailabilityScenarioTests {
    static let seeds: ClosedRange<UInt64> = 1...3

    @Test(arguments: seeds) func writesResumeAfterOneBrokerFails(seed: UInt64) {
        var layout = ClusterLayout()
        layout.produceWorkload = true
        let simulation = ClusterSimulation(seed: seed, profile: .brokerFailure, layout: layout,
                                           safetyPhase: .seconds(30), livenessPhase: .seconds(30))
        let outcome = simulation.run()
        let replay = "tern simulate --seed \(seed) --profile broker-failure --safety-seconds 30"
        #expect(outcome.report.passed, "seed \(seed): \(String(describing: outcome.report.violation))\nreplay: \(replay)")
        #expect(outcome.report.faultsInjected.total == 1)
        // Not vacuous: the failure was judged, and partitions whose ISR held the failed broker
        // (their leader had to stop waiting for it) wrote again.
        guard let window = outcome.writeAvailability else {
            Issue.record("seed \(seed): the checker's precondition did not hold")
            return
        }
        let resumedWithFailedBroker = window.failedBrokerInISR.filter { window.resumedAfter[$0] != nil }
        #expect(!resumedWithFailedBroker.isEmpty, "seed \(seed): no partition that had n\(window.failedBroker) in its ISR was judged")
    }
}
