import Client
import KafkaProtocol
import LogStorage
import NodeKit
import SimWorld
import Simulator
import TernCore
import Testing

@Suite struct GeneratedWorldTests {
    static func layout() -> ClusterLayout {
        var layout = ClusterLayout()
        layout.produceWorkload = true
        return layout
    }

    static func world(seed: UInt64, profile: FaultProfile = .all, choices: GeneratedWorld.Choices = .init()) -> GeneratedWorld {
        var simulation = ClusterSimulation(seed: seed, profile: profile, layout: layout())
        simulation.worldChoices = choices
        return simulation.world
    }

    @Test func theSameSeedDrawsTheSameWorldAndSeedsDrawEveryKind() {
        #expect(Self.world(seed: 7) == Self.world(seed: 7))
        let worlds = (1...60).map { Self.world(seed: $0) }
        #expect(Set(worlds.map(\.storage.kind)) == Set(StorageProfile.Kind.allCases))
        #expect(Set(worlds.map(\.workload.kind)) == Set(WorkloadProfile.Kind.allCases))
        #expect(Set(worlds.map(\.churn.kind)) == Set(ElectionChurnPlan.Kind.allCases))
    }

    /// One stream per dimension: fixing one leaves the others as the seed drew them.
    @Test func fixingOneDimensionLeavesTheOthersAlone() {
        for seed in UInt64(1)...20 {
            let drawn = Self.world(seed: seed)
            let fixed = Self.world(seed: seed, choices: .init(storage: .mixed))
            #expect(fixed.storage.kind == .mixed)
            #expect(fixed.workload == drawn.workload && fixed.churn == drawn.churn)
            let steady = Self.world(seed: seed, choices: .init(workload: .steady))
            #expect(steady.workload.bursts.isEmpty)
            #expect(steady.storage == drawn.storage && steady.churn == drawn.churn)
        }
    }

    @Test func theNarrowWorldIsTheOneBeforeProfiles() {
        let world = Self.world(seed: 3, choices: .narrow)
        #expect(world.storage.nodes.isEmpty)
        #expect(world.workload.bursts.isEmpty)
        #expect(world.churn.bursts.isEmpty)
    }

    @Test func slowDisksAreAMinorityOfControllersAndOfBrokers() {
        let layout = Self.layout()
        for seed in UInt64(1)...30 {
            let storage = Self.world(seed: seed, choices: .init(storage: .slowMinority)).storage
            let slow = storage.nodes.map(\.id)
            #expect(!slow.isEmpty)
            #expect(slow.filter { layout.controllerIDs.contains($0) }.count <= (layout.controllerIDs.count - 1) / 2)
            #expect(slow.filter { layout.brokerIDs.contains($0) }.count <= (layout.brokerIDs.count - 1) / 2)
            for node in storage.nodes {
                #expect(node.latency.syncLatency.lowerBound >= .milliseconds(100))
                #expect(node.latency.syncLatency.upperBound <= .seconds(1))
            }
        }
    }

    /// Churn uses only the faults the profile enables; without any it is the operator's alone.
    @Test func churnFaultsFollowTheProfile() {
        let allowed: [FaultProfile: Set<ElectionChurnPlan.Fault>] = [
            .none: [], .network: [.isolate], .crash: [.pause, .kill, .crash], .disk: [.crash],
            .all: [.pause, .isolate, .kill, .crash],
        ]
        for (profile, faults) in allowed {
            for seed in UInt64(1)...20 {
                let churn = Self.world(seed: seed, profile: profile, choices: .init(churn: .on)).churn
                #expect(!churn.bursts.isEmpty)
                let used = Set(churn.bursts.flatMap(\.steps).map(\.fault))
                #expect(used.isSubset(of: faults), "\(profile) seed \(seed) churned with \(used)")
                if faults.isEmpty { #expect(used.isEmpty) }
            }
        }
    }

    /// Every choice reaches the trace, at time zero.
    @Test func theWorldIsWrittenIntoTheTrace() {
        let choices = GeneratedWorld.Choices(storage: .stalls, workload: .bursty, churn: .on)
        let detailed = Self.world(seed: 2, choices: choices).traceLines
        #expect(detailed.contains { $0.hasPrefix("workload burst at") })
        #expect(detailed.contains { $0.hasPrefix("election-churn burst at") })
        var simulation = ClusterSimulation(seed: 2, profile: .none, layout: Self.layout(),
                                           safetyPhase: .milliseconds(200), livenessPhase: .milliseconds(200))
        simulation.worldChoices = choices
        var lines: [String] = []
        _ = simulation.run(traceSink: { lines.append($0) })
        let traced = lines.filter { $0.hasPrefix("0.000000000 - world ") }.map { String($0.dropFirst("0.000000000 - world ".count)) }
        #expect(traced == simulation.world.traceLines)
        #expect(traced.contains { $0.hasPrefix("storage stalls:") })
    }

    /// A burst keeps its partitions at the producer's in-flight limit, and the run keeps every
    /// write.
    @Test func aBurstFillsTheInFlightWindow() {
        var simulation = ClusterSimulation(seed: 1, profile: .none, layout: Self.layout(),
                                           safetyPhase: .seconds(15), livenessPhase: .seconds(20))
        simulation.worldChoices = .init(storage: .uniform, workload: .bursty, churn: .off)
        let outcome = simulation.run()
        #expect(outcome.report.passed, "\(String(describing: outcome.report.violation))")
        #expect(outcome.producer.fullestBurstWindow == 5)
        #expect(outcome.producer.acknowledged == outcome.producer.given)
    }

    /// Churn faults the leaders it aims at, and a churned run still keeps every write.
    @Test func churnFaultsItsTargets() {
        var simulation = ClusterSimulation(seed: 1, profile: .crash, layout: Self.layout(),
                                           safetyPhase: .seconds(30), livenessPhase: .seconds(30))
        simulation.configuration.nemesis.weights = FaultKindTable(repeating: 0)
        simulation.configuration.nemesis.weights[.nodePause] = 1
        simulation.configuration.nemesis.meanTimeBetweenFaults = .seconds(1_000)
        simulation.worldChoices = .init(storage: .uniform, workload: .steady, churn: .on)
        let planned = simulation.world.churn.bursts.reduce(0) { $0 + $1.steps.count }
        #expect(planned > 0)
        let outcome = simulation.run()
        #expect(outcome.report.passed, "\(String(describing: outcome.report.violation))")
        #expect(outcome.churnSteps.taken > 0)
        // Steps still due when the faults stop are dropped with the rest of the safety phase.
        #expect(outcome.churnSteps.taken + outcome.churnSteps.skipped <= planned)
        #expect(outcome.report.faultsInjected[.nodePause] >= outcome.churnSteps.taken)
    }
}

@Suite struct ProducerOutcomeCheckerTests {
    static let partition = TopicPartition(topic: "topic-0", partition: 1)

    @Test func everyRecordAcknowledgedPasses() {
        let summary = ProducerOutcomeSummary(given: 10, acknowledged: 10)
        #expect(ProducerOutcomeChecker.check(failed: [], refused: [], summary: summary) == .ok)
    }

    @Test func aRecordTheProducerGaveUpOnIsAViolation() {
        let failed = [FailedRecord(topicPartition: Self.partition, value: 365, error: .outOfOrderSequenceNumber,
                                   possiblyWritten: true, time: .zero + .seconds(52))]
        let summary = ProducerOutcomeSummary(given: 10, acknowledged: 9, failed: 1)
        guard case let .violation(message) = ProducerOutcomeChecker.check(failed: failed, refused: [], summary: summary) else {
            Issue.record("a failed record passed")
            return
        }
        #expect(message.contains("topic-0-1") && message.contains("value 365") && message.contains("outOfOrderSequenceNumber"))
    }

    @Test func aSendRefusedForAFailedPartitionIsAViolation() {
        let refused = [RefusedRecord(topicPartition: Self.partition, value: 12, error: .partitionFailed(.invalidProducerEpoch),
                                     time: .zero + .seconds(3))]
        let summary = ProducerOutcomeSummary(given: 11, acknowledged: 11, otherRefusals: 1)
        guard case .violation = ProducerOutcomeChecker.check(failed: [], refused: refused, summary: summary) else {
            Issue.record("a refusal for a failed partition passed")
            return
        }
    }

    /// On a retained topic a possibly written record given up as out of order or unknown (retention
    /// deleted it before its acknowledgement) is excused, with the records and sends its
    /// partition's failure took; the same on a topic that keeps everything, or a record surely
    /// not written, is not.
    @Test func onlyAPossiblyWrittenGiveUpOnARetainedTopicIsExcused() {
        func failure(_ value: UInt64, _ error: KafkaErrorCode, possiblyWritten: Bool) -> FailedRecord {
            FailedRecord(topicPartition: Self.partition, value: value, error: error, possiblyWritten: possiblyWritten, time: .zero + .seconds(9))
        }
        let failed = [failure(5, .outOfOrderSequenceNumber, possiblyWritten: true), failure(6, .outOfOrderSequenceNumber, possiblyWritten: false)]
        let refused = [RefusedRecord(topicPartition: Self.partition, value: 7, error: .partitionFailed(.outOfOrderSequenceNumber),
                                     time: .zero + .seconds(10))]
        let summary = ProducerOutcomeSummary(given: 10, acknowledged: 8, failed: 2, otherRefusals: 1)
        #expect(ProducerOutcomeChecker.check(failed: failed, refused: refused, summary: summary, retainedTopics: ["topic-0"]) == .ok)
        #expect(ProducerOutcomeChecker.check(failed: failed, refused: refused, summary: summary) != .ok, "a topic that keeps everything")
        let notWritten = [failure(5, .unknownProducerID, possiblyWritten: false)]
        #expect(ProducerOutcomeChecker.check(failed: notWritten, refused: [], summary: ProducerOutcomeSummary(given: 10, acknowledged: 9, failed: 1),
                                             retainedTopics: ["topic-0"]) != .ok, "surely not written: nothing excuses it")
        let otherError = [failure(5, .invalidProducerEpoch, possiblyWritten: true)]
        #expect(ProducerOutcomeChecker.check(failed: otherError, refused: [], summary: ProducerOutcomeSummary(given: 10, acknowledged: 9, failed: 1),
                                             retainedTopics: ["topic-0"]) != .ok)
    }

    @Test func aRecordAnsweredButNeverAcknowledgedIsAViolation() {
        let summary = ProducerOutcomeSummary(given: 10, acknowledged: 9)
        guard case .violation = ProducerOutcomeChecker.check(failed: [], refused: [], summary: summary) else {
            Issue.record("a record that vanished from the producer's outcomes passed")
            return
        }
    }

    /// Back-pressure is not a failure, and unfinished records are the liveness check's to name.
    @Test func aFullBufferAndUnfinishedRecordsAreNotViolations() {
        let fullBuffer = ProducerOutcomeSummary(given: 10, acknowledged: 10, bufferFullRefusals: 4)
        #expect(ProducerOutcomeChecker.check(failed: [], refused: [], summary: fullBuffer) == .ok)
        let unfinished = ProducerOutcomeSummary(given: 10, acknowledged: 7, unfinished: 3)
        #expect(ProducerOutcomeChecker.check(failed: [], refused: [], summary: unfinished) == .ok)
    }
}

@Suite struct DiskLatencyTests {
    /// Stalls come from their own stream: a disk that may stall completes every sync it does not
    /// stall exactly when the same disk without stalls would.
    @Test func stallsLeaveTheOtherSyncsAlone() throws {
        func dueTimes(stallProbability: Double) throws -> [Duration] {
            var configuration = SimDisk.Configuration()
            configuration.syncStallProbability = stallProbability
            configuration.syncStallLatency = .seconds(1)...(.seconds(1))
            let disk = SimDisk(random: DeterministicRandom(seed: 9), configuration: configuration)
            let file = try disk.open("/f", create: true)
            var times: [Duration] = []
            for _ in 0..<50 {
                _ = disk.sync(file)
                times.append(disk.nextCompletionTime! - disk.now)
                var completions: [SyncCompletion] = []
                disk.advance(to: disk.nextCompletionTime!)
                disk.pollCompletions(into: &completions)
            }
            return times
        }
        let plain = try dueTimes(stallProbability: 0)
        let stalling = try dueTimes(stallProbability: 0.3)
        #expect(plain.allSatisfy { $0 <= .milliseconds(5) })
        let stalled = stalling.indices.filter { stalling[$0] == .seconds(1) }
        #expect(!stalled.isEmpty && stalled.count < stalling.count)
        for index in stalling.indices where !stalled.contains(index) { #expect(stalling[index] == plain[index]) }
    }
}
