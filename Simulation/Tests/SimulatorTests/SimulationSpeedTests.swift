import LogStorage
import NodeKit
import SimWorld
import Simulator
import TernCore
import Testing

/// Measures simulation speed with the toy counter nodes and prints it; never asserts timings.
/// For meaningful figures run in release: `swift test -c release --filter SimulationSpeed`.
@Suite struct SimulationSpeed {
    @Test(arguments: [FaultProfile.none, .all])
    func measureEventsPerSecond(profile: FaultProfile) {
        var configuration = SimulationConfiguration.cluster(seed: 1, profile: profile, nodeCount: 5)
        #if DEBUG
        // Debug builds are an order of magnitude slower: keep `swift test` quick.
        configuration.safetyPhaseDuration = .seconds(10)
        configuration.livenessPhaseDuration = .seconds(5)
        #else
        configuration.safetyPhaseDuration = .seconds(60)
        configuration.livenessPhaseDuration = .seconds(20)
        #endif
        configuration.stopWhenConverged = false
        configuration.nemesis.weights[.latentCorruption] = 0
        let clock = ContinuousClock()
        let started = clock.now
        let report = Simulation.run(configuration, checkers: [MonotonicAnnouncementChecker()],
                                    makeNode: counterFactory(configuration))
        let elapsed = clock.now - started
        let wallSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let eventsPerSecond = Double(report.eventsDelivered) / wallSeconds
        let stepsPerSecond = Double(report.schedulerSteps) / wallSeconds
        let speedup = report.simulatedTime.seconds / wallSeconds
        print("""
            \(report)
            speed (\(profile)): \(formatFixed(wallSeconds, places: 3)) s wall, \
            \(Int(eventsPerSecond)) node events/s, \(Int(stepsPerSecond)) scheduler steps/s, \
            \(formatFixed(speedup, places: 1)) simulated s per wall s
            """)
        #expect(report.passed, "\(report)")
    }
}

