import Foundation
import SimWorld
import Simulator
import TernCore
import Testing

/// The acknowledged-writes checker must be able to fail: fabricated bad histories against a good one.
@Suite struct WorkloadAcknowledgedWritesCheckerTests {
    let partition = TopicPartition(topic: "topic-0", partition: 0)

    func value(_ n: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * (7 - $0))) } }

    func log(_ values: [UInt64], highWatermark: Int64? = nil) -> [TopicPartition: LeaderLogSnapshot] {
        let entries = values.enumerated().map {
            LeaderLogSnapshot.Entry(offset: Offset(Int64($0.offset)), key: Array("p\($0.element)".utf8), value: value($0.element))
        }
        return [partition: LeaderLogSnapshot(leader: NodeID(101), highWatermark: Offset(highWatermark ?? Int64(values.count)), entries: entries)]
    }

    func acked(_ pairs: [(offset: Int64, value: UInt64)]) -> [AcknowledgedWrite] {
        pairs.map { AcknowledgedWrite(topicPartition: partition, offset: Offset($0.offset), value: $0.value) }
    }

    @Test func aGoodHistoryPasses() {
        #expect(AcknowledgedWritesChecker.check(acknowledged: acked([(0, 0), (1, 6), (2, 12)]), leaderLogs: log([0, 6, 12])) == .ok)
        #expect(AcknowledgedWritesChecker.check(acknowledged: [], leaderLogs: [:]) == .ok)
    }

    @Test func aLostAcknowledgedWriteIsCaught() {
        guard case .violation = AcknowledgedWritesChecker.check(acknowledged: acked([(0, 0), (1, 6), (2, 12)]), leaderLogs: log([0, 6])) else {
            Issue.record("an acknowledged offset missing from the leader's log was not reported")
            return
        }
    }

    @Test func aDifferentValueAtTheAcknowledgedOffsetIsCaught() {
        guard case .violation = AcknowledgedWritesChecker.check(acknowledged: acked([(1, 6)]), leaderLogs: log([0, 7, 12])) else {
            Issue.record("another value at the acknowledged offset was not reported")
            return
        }
    }

    @Test func anAcknowledgedWriteAboveTheHighWatermarkIsCaught() {
        guard case .violation = AcknowledgedWritesChecker.check(acknowledged: acked([(2, 12)]), leaderLogs: log([0, 6, 12], highWatermark: 2)) else {
            Issue.record("an acknowledged offset at or above the HW was not reported")
            return
        }
    }

    @Test func aDuplicateValueIsCaught() {
        guard case .violation = AcknowledgedWritesChecker.check(acknowledged: acked([(0, 0), (1, 6)]), leaderLogs: log([0, 6, 6, 12])) else {
            Issue.record("a value written twice was not reported")
            return
        }
    }

    @Test func reorderedValuesAreCaught() {
        guard case .violation = AcknowledgedWritesChecker.check(acknowledged: [], leaderLogs: log([0, 12, 6])) else {
            Issue.record("values out of sequence order were not reported")
            return
        }
    }

    @Test func aPartitionWithoutLeaderIsCaught() {
        guard case .violation = AcknowledgedWritesChecker.check(acknowledged: acked([(0, 0)]), leaderLogs: [:]) else {
            Issue.record("an acknowledged write on a partition with no readable leader was not reported")
            return
        }
    }
}

@Suite struct ProduceWorkloadTests {
    static func layout() -> ClusterLayout {
        var layout = ClusterLayout()
        layout.produceWorkload = true
        return layout
    }

    @Test func aHealthyClusterKeepsEveryAcknowledgedWrite() {
        let simulation = ClusterSimulation(seed: 1, profile: .none, layout: Self.layout(), safetyPhase: .seconds(15), livenessPhase: .seconds(20))
        let outcome = simulation.run()
        #expect(outcome.report.passed, "\(String(describing: outcome.report.violation))")
        #expect(outcome.checkersRun.contains("acknowledged-writes"))
        #expect(outcome.acknowledgedWrites > 0)
    }

    /// Exploration under faults: `TERN_PRODUCE_SEEDS="1-5" TERN_PRODUCE_PROFILES="crash,all"` runs
    /// those seeds and prints each outcome; it never fails the suite (findings are reported, not
    /// gated). Without the variables it does nothing.
    @Test func exploreSeedsUnderFaults() {
        let environment = ProcessInfo.processInfo.environment
        guard let seedSpec = environment["TERN_PRODUCE_SEEDS"] else { return }
        let bounds = seedSpec.split(separator: "-").compactMap { UInt64($0) }
        guard let low = bounds.first else { return }
        let high = bounds.last ?? low
        let profiles = (environment["TERN_PRODUCE_PROFILES"] ?? "crash").split(separator: ",").compactMap { FaultProfile(rawValue: String($0)) }
        for profile in profiles {
            for seed in low...high {
                let simulation = ClusterSimulation(seed: seed, profile: profile, layout: Self.layout(),
                                                   safetyPhase: .seconds(30), livenessPhase: .seconds(30))
                let outcome = simulation.run()
                let verdict = outcome.report.violation.map { "FAIL \($0)" } ?? "pass"
                print("produce-explore seed=\(seed) profile=\(profile) acknowledged=\(outcome.acknowledgedWrites) \(verdict)")
            }
        }
    }
}
