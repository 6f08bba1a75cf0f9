import LogStorage
import NodeKit
@testable import SimWorld
@testable import Simulator
import TernCore
import Testing

/// Records the simulated times at which each node received events, by kind.
final class DeliveryRecorder: SimulationChecker {
    let name = "delivery-recorder"
    private(set) var times: [(node: NodeID, time: Instant, isMessage: Bool, isTick: Bool)] = []

    func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        var isMessage = false
        var isTick = false
        switch delivered.event {
        case .message: isMessage = true
        case .tick: isTick = true
        default: break
        }
        times.append((delivered.nodeID, delivered.time, isMessage, isTick))
        return .ok
    }
}

/// Fails as soon as any node announces a count of at least `limit`.
final class AnnouncementLimitChecker: SimulationChecker {
    let name = "announcement-limit"
    let limit: UInt64
    init(limit: UInt64) { self.limit = limit }

    func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        for case let .send(_, bytes) in delivered.effects where CounterNode.decode(bytes) >= limit {
            return .violation("n\(delivered.nodeID) announced \(CounterNode.decode(bytes)) >= \(limit)")
        }
        return .ok
    }
}

/// In the liveness phase: every link healed, and no message lost to loss or partition any more.
final class HealedNetworkChecker: SimulationChecker {
    let name = "healed-network"
    private var dropsAtLivenessStart: (loss: Int, partition: Int)?
    private(set) var livenessChecks = 0

    func periodically(in simulation: SimulationView) -> CheckResult {
        guard simulation.phase == .liveness else { return .ok }
        livenessChecks += 1
        let statistics = simulation.network.statistics
        guard simulation.network.isHealed else { return .violation("a link is still blocked or clogged in the liveness phase") }
        guard !simulation.network.isDegraded else { return .violation("links still degraded in the liveness phase") }
        for id in simulation.nodeIDs where simulation.status(of: id) != .running {
            return .violation("n\(id) is \(simulation.status(of: id)) in the liveness phase")
        }
        if let before = dropsAtLivenessStart {
            if statistics.droppedByLoss != before.loss || statistics.droppedByPartition != before.partition {
                return .violation("messages lost in the liveness phase")
            }
        } else {
            dropsAtLivenessStart = (statistics.droppedByLoss, statistics.droppedByPartition)
        }
        return .ok
    }
}

@Suite struct SimulationEngineTests {
    @Test func sameSeedSameTraceHashDifferentSeedsDiffer() {
        func run(_ seed: UInt64) -> SimulationReport {
            let configuration = counterConfiguration(seed: seed, profile: .all)
            return Simulation.run(configuration, makeNode: counterFactory(configuration))
        }
        let first = run(7)
        let second = run(7)
        #expect(first.traceHash == second.traceHash)
        #expect(first.eventsDelivered == second.eventsDelivered)
        #expect(first.faultsInjected == second.faultsInjected)
        #expect(first.network == second.network)
        #expect(first.faultsInjected.total > 0)
        let hashes = Set((7...11).map { run($0).traceHash })
        #expect(hashes.count == 5, "five seeds, five different runs")
    }

    @Test func sameSeedSameTraceLines() {
        func lines(_ seed: UInt64) -> [String] {
            var configuration = counterConfiguration(seed: seed, profile: .all)
            configuration.safetyPhaseDuration = .milliseconds(800)
            configuration.livenessPhaseDuration = .milliseconds(200)
            var collected: [String] = []
            _ = Simulation.run(configuration, traceSink: { collected.append($0) }, makeNode: counterFactory(configuration))
            return collected
        }
        let first = lines(3)
        #expect(first == lines(3))
        #expect(first.contains { $0.contains(" n1 start incarnation=1") })
        #expect(first.contains { $0.contains(" message from=n") })
        #expect(first.contains { $0.contains(" sync-completed sync#") })
        #expect(first.count > 500)
    }

    /// Every line reads `time subject kind details`: nine-digit seconds, then a node (`n2`), a
    /// link (`n1->n2`) or the cluster (`-`), then a known kind.
    @Test func traceLinesHaveTheDocumentedShape() {
        var configuration = counterConfiguration(seed: 3, profile: .all)
        configuration.safetyPhaseDuration = .seconds(2)
        configuration.livenessPhaseDuration = .milliseconds(200)
        var lines: [String] = []
        _ = Simulation.run(configuration, traceSink: { lines.append($0) }, makeNode: counterFactory(configuration))
        let kinds: Set<String> = ["start", "tick", "message", "sync-completed", "send", "halt", "drop", "duplicate",
                                  "held", "fault", "heal", "phase", "violation", "end"]
        var seenKinds: Set<String> = []
        for line in lines {
            let fields = line.split(separator: " ", maxSplits: 3).map(String.init)
            #expect(fields.count >= 3, "\(line)")
            let time = fields[0].split(separator: ".")
            #expect(time.count == 2 && time[1].count == 9 && time.allSatisfy { $0.allSatisfy(\.isNumber) }, "\(line)")
            let subject = fields[1]
            #expect(subject == "-" || subject.hasPrefix("n"), "\(line)")
            #expect(kinds.contains(fields[2]), "\(line)")
            seenKinds.insert(fields[2])
        }
        #expect(seenKinds.isSuperset(of: ["start", "tick", "message", "sync-completed", "send", "fault", "heal", "phase", "end"]))
        #expect(lines.last?.hasSuffix(" - end end of run") == true)
    }

    /// The nemesis draws from its own stream: nodes that behave differently see the same faults.
    @Test func faultScheduleDoesNotDependOnNodeBehaviour() {
        func faultLines(announceEvery: Int) -> [String] {
            var configuration = counterConfiguration(seed: 21, profile: .all)
            configuration.nemesis.weights[.latentCorruption] = 0  // its target file depends on disk contents
            var lines: [String] = []
            _ = Simulation.run(configuration, traceSink: { line in
                if line.contains(" fault ") || line.contains(" heal ") { lines.append(line) }
            }, makeNode: counterFactory(configuration) { $0.announceEveryTicks = announceEvery })
            return lines
        }
        let lines = faultLines(announceEvery: 3)
        #expect(lines.count > 5)
        #expect(lines == faultLines(announceEvery: 7))
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func networkFaultsHappenAndHealInTheLivenessPhase(seed: UInt64) {
        var configuration = counterConfiguration(seed: seed, profile: .network, nodeCount: 5)
        configuration.safetyPhaseDuration = .seconds(5)
        configuration.livenessPhaseDuration = .seconds(5)
        let convergence = CounterConvergence()
        let healed = HealedNetworkChecker()
        let report = Simulation.run(configuration, checkers: [healed, MonotonicAnnouncementChecker()],
                                    isConverged: convergence.isConverged, makeNode: counterFactory(configuration))
        #expect(report.passed, "\(report)")
        #expect(report.convergedAt != nil)
        #expect(healed.livenessChecks > 0)
        let faults = report.faultsInjected
        #expect(faults[.partitionSymmetric] + faults[.partitionAsymmetric] + faults[.isolateNode] > 0)
        #expect(faults[.linkClog] > 0)
        #expect(faults[.nodeCrash] == 0 && faults[.nodePause] == 0, "the network profile touches no process")
        #expect(report.network.droppedByLoss > 0)
        #expect(report.network.droppedByPartition > 0)
        #expect(report.network.messagesDuplicated > 0)
        #expect(report.network.messagesReordered > 0)
        #expect(report.network.messagesHeldByClog > 0)
    }

    @Test func calmNetworkIsFifoAndLossless() {
        let configuration = counterConfiguration(seed: 5, profile: .none)
        let report = Simulation.run(configuration, makeNode: counterFactory(configuration))
        #expect(report.passed)
        #expect(report.faultsInjected.total == 0)
        #expect(report.network.messagesDropped == 0)
        #expect(report.network.messagesReordered == 0)
        #expect(report.network.messagesDuplicated == 0)
        #expect(report.network.messagesSent == report.network.messagesDelivered)
    }

    @Test func crashAndRestartRecreateTheNodeFromItsDisk() {
        var configuration = counterConfiguration(seed: 11, profile: .none)
        configuration.safetyPhaseDuration = .seconds(4)
        configuration.livenessPhaseDuration = .seconds(1)
        var created: [(id: NodeID, node: CounterNode)] = []
        let factory = counterFactory(configuration)
        let simulation = Simulation(configuration: configuration) { environment in
            let node = factory(environment) as! CounterNode
            created.append((environment.nodeID, node))
            return node
        }
        let monotonic = MonotonicAnnouncementChecker()
        simulation.addChecker(monotonic)
        simulation.schedule(.crash(NodeID(1)), at: .zero + .seconds(1))
        simulation.schedule(.restart(NodeID(1)), at: .zero + .milliseconds(1_300))
        simulation.schedule(.killProcess(NodeID(2)), at: .zero + .seconds(2))
        simulation.schedule(.restart(NodeID(2)), at: .zero + .milliseconds(2_100))
        simulation.schedule(.powerLoss([NodeID(1), NodeID(2), NodeID(3)]), at: .zero + .seconds(3))
        for id in 1...3 { simulation.schedule(.restart(NodeID(Int32(id))), at: .zero + .milliseconds(3_200)) }
        final class StatusProbe: SimulationChecker {
            let name = "status-probe"
            private(set) var nodeOneDownAt: [Instant] = []
            func periodically(in simulation: SimulationView) -> CheckResult {
                if simulation.status(of: NodeID(1)) == .down {
                    guard simulation.node(NodeID(1)) == nil else { return .violation("a down node has a node object") }
                    nodeOneDownAt.append(simulation.now)
                }
                return .ok
            }
        }
        let probe = StatusProbe()
        simulation.addChecker(probe)
        let report = simulation.run()
        #expect(report.passed, "\(report)")
        #expect(probe.nodeOneDownAt.contains(.zero + .milliseconds(1_200)), "down between the crash and the restart")
        #expect(!probe.nodeOneDownAt.contains(.zero + .milliseconds(1_400)))
        #expect(report.faultsInjected[.nodeCrash] == 1)
        #expect(report.faultsInjected[.processKill] == 1)
        #expect(report.faultsInjected[.powerLoss] == 1)
        #expect(report.nodeRestarts == 5)
        #expect(monotonic.startsAfterRestart == 5)
        #expect(created.filter { $0.id == NodeID(1) }.count == 3, "n1: first start, after the crash, after the power loss")
        #expect(created.filter { $0.id == NodeID(2) }.count == 3)
        #expect(created.filter { $0.id == NodeID(3) }.count == 2)
        // Every restarted node found its count on disk, at least what it had announced before.
        let restarted = created.filter { entry in created.first { $0.id == entry.id }!.node !== entry.node }
        #expect(restarted.count == 5)
        for entry in restarted { #expect(entry.node.recoveredCounter > 0) }
        #expect(monotonic.announcements > 100)
    }

    @Test func powerLossReachesAMachineWhoseProcessWasKilled() {
        var configuration = counterConfiguration(seed: 13, profile: .none)
        configuration.safetyPhaseDuration = .seconds(2)
        configuration.livenessPhaseDuration = .milliseconds(200)
        let simulation = Simulation(configuration: configuration, makeNode: counterFactory(configuration))
        simulation.addChecker(MonotonicAnnouncementChecker())
        simulation.schedule(.killProcess(NodeID(1)), at: .zero + .seconds(1))
        simulation.schedule(.powerLoss([NodeID(1)]), at: .zero + .milliseconds(1_050))
        simulation.schedule(.crash(NodeID(1)), at: .zero + .milliseconds(1_100))  // machine already down: nothing
        simulation.schedule(.restart(NodeID(1)), at: .zero + .milliseconds(1_200))
        let report = simulation.run()
        #expect(report.passed, "\(report)")
        #expect(report.faultsInjected[.processKill] == 1)
        #expect(report.faultsInjected[.powerLoss] == 1)
        #expect(report.faultsInjected[.nodeCrash] == 0)
        #expect(report.nodeRestarts == 1)
        let disk = simulation.view.disk(of: NodeID(1)).statistics
        #expect(disk.processKills == 1 && disk.crashes == 1)
        #expect(simulation.view.incarnation(of: NodeID(1)) == 2)
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func crashProfileKeepsAnnouncementsMonotonic(seed: UInt64) {
        var configuration = counterConfiguration(seed: seed, profile: .crash)
        configuration.safetyPhaseDuration = .seconds(6)
        let convergence = CounterConvergence()
        let monotonic = MonotonicAnnouncementChecker()
        let report = Simulation.run(configuration, checkers: [monotonic, HealedNetworkChecker()],
                                    isConverged: convergence.isConverged, makeNode: counterFactory(configuration))
        #expect(report.passed, "\(report)")
        #expect(report.faultsInjected[.nodeCrash] + report.faultsInjected[.processKill] + report.faultsInjected[.powerLoss] > 0)
        #expect(report.nodeRestarts > 0)
        #expect(monotonic.startsAfterRestart == report.nodeRestarts)
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func diskProfileWithoutLatentCorruptionKeepsAnnouncementsMonotonic(seed: UInt64) {
        var configuration = counterConfiguration(seed: seed, profile: .disk)
        configuration.safetyPhaseDuration = .seconds(6)
        configuration.nemesis.weights[.latentCorruption] = 0  // the toy has no replica to repair from
        let convergence = CounterConvergence()
        let report = Simulation.run(configuration, checkers: [MonotonicAnnouncementChecker()],
                                    isConverged: convergence.isConverged, makeNode: counterFactory(configuration))
        #expect(report.passed, "\(report)")
        #expect(report.faultsInjected[.diskIOErrors] > 0)
        #expect(report.injectedDiskErrors > 0)
    }

    /// Latent corruption of synced data is a fault the toy cannot survive (it keeps one copy):
    /// the checker must notice. Shows the corruption really reaches synced bytes.
    @Test func latentCorruptionIsCaughtByTheChecker() {
        var caught = 0
        for seed in UInt64(1)...8 {
            var configuration = counterConfiguration(seed: seed, profile: .disk)
            configuration.safetyPhaseDuration = .seconds(6)
            var weights = FaultKindTable(repeating: 0)
            weights[.latentCorruption] = 4
            weights[.nodeCrash] = 1
            configuration.nemesis.weights = weights
            configuration.nemesis.corruptibleNodeCount = 3
            let report = Simulation.run(configuration, checkers: [MonotonicAnnouncementChecker()],
                                        makeNode: counterFactory(configuration))
            #expect(report.faultsInjected[.latentCorruption] > 0)
            if case .checker("monotonic-announcements") = report.violation?.kind { caught += 1 }
        }
        #expect(caught > 0)
    }

    @Test func pauseDelaysDeliveryUntilResume() {
        var configuration = counterConfiguration(seed: 4, profile: .none)
        configuration.safetyPhaseDuration = .seconds(2)
        configuration.livenessPhaseDuration = .milliseconds(500)
        let recorder = DeliveryRecorder()
        let simulation = Simulation(configuration: configuration, makeNode: counterFactory(configuration))
        simulation.addChecker(recorder)
        let pauseStart = Instant.zero + .seconds(1)
        let pauseEnd = Instant.zero + .milliseconds(1_500)
        simulation.schedule(.pause(NodeID(2)), at: pauseStart)
        simulation.schedule(.resume(NodeID(2)), at: pauseEnd)
        let report = simulation.run()
        #expect(report.passed)
        #expect(report.faultsInjected[.nodePause] == 1)
        let nodeTwo = recorder.times.filter { $0.node == NodeID(2) }
        #expect(!nodeTwo.contains { $0.time > pauseStart && $0.time < pauseEnd }, "nothing reaches a paused node")
        let atResume = nodeTwo.filter { $0.time == pauseEnd }
        // Two peers announce every 50 ms: about 20 messages waited for the resume.
        #expect(atResume.filter(\.isMessage).count >= 15)
        #expect(atResume.filter(\.isTick).count <= 1, "ticks missed while paused coalesce into one")
        #expect(report.network.maximumPausedBacklog >= 15)
        #expect(report.network.messagesDropped == 0)
        // The other nodes kept running through the pause.
        #expect(recorder.times.contains { $0.node == NodeID(1) && $0.time > pauseStart && $0.time < pauseEnd })
    }

    @Test func checkerViolationStopsTheRunAndNamesTheSeed() {
        let configuration = counterConfiguration(seed: 99, profile: .network)
        let report = Simulation.run(configuration, checkers: [AnnouncementLimitChecker(limit: 20)],
                                    makeNode: counterFactory(configuration))
        let violation = try! #require(report.violation)
        #expect(violation.kind == .checker("announcement-limit"))
        #expect(violation.seed == 99)
        #expect(report.description.contains("seed=99"))
        #expect(violation.description.contains("seed=99 profile=network"))
        #expect(report.simulatedTime < .seconds(1), "the first violation stops the run")
    }

    @Test func haltIsReportedWithNodeReasonAndSeed() {
        let configuration = counterConfiguration(seed: 12, profile: .crash)
        let report = Simulation.run(configuration, makeNode: counterFactory(configuration) { $0.haltAtCounter = 15 })
        let violation = try! #require(report.violation)
        #expect(violation.kind == .halt)
        #expect(violation.node != nil)
        #expect(violation.message == "counter reached 15")
        #expect(violation.seed == 12)
        #expect(report.description.contains("FAILED [halt]"))
    }

    @Test func missingConvergenceIsALivenessViolation() {
        let configuration = counterConfiguration(seed: 8, profile: .none)
        let report = Simulation.run(configuration, isConverged: { _ in false }, makeNode: counterFactory(configuration))
        #expect(report.violation?.kind == .liveness)
        #expect(report.simulatedTime == .seconds(6))
    }

    @Test func convergedRunStopsEarly() {
        let configuration = counterConfiguration(seed: 8, profile: .none)
        let report = Simulation.run(configuration, isConverged: { $0.phase == .liveness }, makeNode: counterFactory(configuration))
        #expect(report.passed)
        #expect(report.convergedAt == .zero + .seconds(3), "the check at 3 s runs after the phase change scheduled for 3 s")
        #expect(report.simulatedTime < .seconds(4))
    }

    @Test func boundedQueuesHold() {
        var configuration = counterConfiguration(seed: 6, profile: .none)
        configuration.safetyPhaseDuration = .seconds(2)
        configuration.livenessPhaseDuration = .milliseconds(200)
        configuration.network.maximumInFlightPerLink = 64
        configuration.pausedBacklogCapacity = 100
        final class BoundChecker: SimulationChecker {
            let name = "bounds"
            private(set) var checks = 0
            func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
                checks += 1
                for source in simulation.nodeIDs {
                    for destination in simulation.nodeIDs where simulation.network.inFlightCount(from: source, to: destination) > 64 {
                        return .violation("\(source)->\(destination) holds more than 64 messages")
                    }
                    if simulation.pausedBacklogCount(of: source) > 100 { return .violation("n\(source) backlog over 100") }
                }
                return .ok
            }
        }
        let bounds = BoundChecker()
        let simulation = Simulation(configuration: configuration, makeNode: counterFactory(configuration) { options in
            options.floodDestination = NodeID(2)
            options.floodMessagesPerTick = 40
        })
        simulation.addChecker(bounds)
        let clogged = DirectedLink(from: NodeID(1), to: NodeID(2))
        simulation.schedule(.clog(clogged), at: .zero + .milliseconds(500))
        simulation.schedule(.unclog(clogged), at: .zero + .milliseconds(800))
        simulation.schedule(.pause(NodeID(2)), at: .zero + .milliseconds(1_200))
        simulation.schedule(.resume(NodeID(2)), at: .zero + .milliseconds(1_500))
        let report = simulation.run()
        #expect(report.passed, "\(report)")
        #expect(bounds.checks > 1_000)
        #expect(report.network.maximumInFlightOnOneLink == 64)
        #expect(report.network.droppedByFullLink > 0)
        #expect(report.network.messagesHeldByClog > 0)
        #expect(report.network.maximumPausedBacklog == 100)
        #expect(report.network.droppedByPausedBacklog > 0)
    }

    @Test func oversizedMessageIsABoundViolation() {
        var configuration = counterConfiguration(seed: 2, profile: .none)
        configuration.network.maximumMessageBytes = 4
        let report = Simulation.run(configuration, makeNode: counterFactory(configuration))
        #expect(report.violation?.kind == .bound)
    }

    @Test func clockFaultsReachWhatNodesSee() {
        var configuration = counterConfiguration(seed: 3, profile: .none)
        configuration.safetyPhaseDuration = .seconds(2)
        configuration.livenessPhaseDuration = .milliseconds(100)
        configuration.clockOriginSpread = .zero
        final class ClockRecorder: SimulationChecker {
            let name = "clock"
            private(set) var skews: [(time: Instant, monotonic: Duration, wall: Duration)] = []
            private(set) var monotonicWentBackwards = false
            private(set) var wallClockWentBackwards = false
            private var last: (monotonic: Instant, wall: Instant)?
            func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
                guard delivered.nodeID == NodeID(1) else { return .ok }
                if let last, delivered.nodeTime < last.monotonic { monotonicWentBackwards = true }
                if let last, delivered.wallClock < last.wall { wallClockWentBackwards = true }
                last = (delivered.nodeTime, delivered.wallClock)
                let wallSkew = delivered.wallClock - delivered.time - simulation.configuration.wallClockOrigin
                skews.append((delivered.time, delivered.nodeTime - delivered.time, wallSkew))
                return .ok
            }
        }
        configuration.wallClockSpread = .zero
        let recorder = ClockRecorder()
        let simulation = Simulation(configuration: configuration, makeNode: counterFactory(configuration))
        simulation.addChecker(recorder)
        simulation.schedule(.jumpClock(NodeID(1), by: .milliseconds(300)), at: .zero + .milliseconds(500))
        simulation.schedule(.setClockDrift(NodeID(1), partsPerMillion: 100_000), at: .zero + .seconds(1))
        simulation.schedule(.jumpClock(NodeID(1), by: .milliseconds(-200)), at: .zero + .milliseconds(1_500))
        let report = simulation.run()
        #expect(report.passed)
        #expect(report.faultsInjected[.clockJump] == 2 && report.faultsInjected[.clockSkew] == 1)
        func skew(at time: Instant) -> (monotonic: Duration, wall: Duration) {
            let last = recorder.skews.last { $0.time <= time }!
            return (last.monotonic, last.wall)
        }
        #expect(skew(at: .zero + .milliseconds(400)) == (.zero, .zero))
        // A step moves the time of day only; the monotonic clock never steps.
        #expect(skew(at: .zero + .milliseconds(900)) == (.zero, .milliseconds(300)))
        // 10% fast from 1 s, on both clocks: about 50 ms gained by 1.5 s.
        #expect(skew(at: .zero + .milliseconds(1_490)).monotonic > .milliseconds(40))
        #expect(skew(at: .zero + .milliseconds(1_490)).wall > .milliseconds(340))
        #expect(skew(at: .zero + .milliseconds(1_900)).wall < .milliseconds(300), "the step back")
        #expect(!recorder.monotonicWentBackwards, "a monotonic clock never goes back")
        #expect(recorder.wallClockWentBackwards, "the time of day may")
    }
}

@Suite struct SimClockTests {
    @Test func driftAccumulatesAndJumpsShift() {
        var clock = SimClock(offset: .seconds(5), isMonotonic: true)
        #expect(clock.observe(at: .zero + .seconds(1)) == .zero + .seconds(6))
        clock.setDrift(partsPerMillion: 1_000, at: .zero + .seconds(1))
        #expect(clock.observe(at: .zero + .seconds(11)) == .zero + .seconds(16) + .milliseconds(10))
        clock.setDrift(partsPerMillion: 0, at: .zero + .seconds(11))
        #expect(clock.observe(at: .zero + .seconds(12)) == .zero + .seconds(17) + .milliseconds(10))
        clock.jump(by: .seconds(-1))
        #expect(clock.observe(at: .zero + .seconds(12) + .milliseconds(500)) == .zero + .seconds(17) + .milliseconds(10),
                "held still: a monotonic clock does not go back")
        #expect(clock.observe(at: .zero + .seconds(14)) == .zero + .seconds(18) + .milliseconds(10))
    }

    @Test func nonMonotonicClockGoesBack() {
        var clock = SimClock(offset: .zero, isMonotonic: false)
        _ = clock.observe(at: .zero + .seconds(2))
        clock.jump(by: .seconds(-1))
        #expect(clock.observe(at: .zero + .seconds(2)) == .zero + .seconds(1))
    }
}

@Suite struct EventQueueTests {
    @Test func ordersByTimeThenSequenceAndRefusesPastItsBound() {
        var queue = EventQueue<String>(capacity: 4)
        var accepted: [Bool] = []
        accepted.append(queue.insert("late", time: .zero + .seconds(2), sequence: 0))
        accepted.append(queue.insert("second", time: .zero + .seconds(1), sequence: 2))
        accepted.append(queue.insert("first", time: .zero + .seconds(1), sequence: 1))
        accepted.append(queue.insert("earliest", time: .zero, sequence: 3))
        accepted.append(queue.insert("refused", time: .zero, sequence: 4))
        #expect(accepted == [true, true, true, true, false], "full: the bound holds")
        #expect(queue.count == 4)
        let earliest = queue.popMin()
        #expect(earliest?.payload == "earliest")
        let reused = queue.insert("reuses a slot", time: .zero + .seconds(3), sequence: 5)
        #expect(reused)
        var order: [String] = []
        while let entry = queue.popMin() { order.append(entry.payload) }
        #expect(order == ["first", "second", "late", "reuses a slot"])
        #expect(queue.isEmpty)
    }

    @Test func matchesASortedOrderOnRandomInput() {
        var random = DeterministicRandom(seed: 42)
        var queue = EventQueue<Int>(capacity: 10_000)
        var expected: [(Int64, UInt64)] = []
        var sequence: UInt64 = 0
        for round in 0..<50 {
            for _ in 0..<random.int(in: 0...200) {
                let time = random.int64(in: 0...1_000) + Int64(round) * 10
                let inserted = queue.insert(Int(sequence), time: Instant(nanoseconds: time), sequence: sequence)
                #expect(inserted)
                expected.append((time, sequence))
                sequence += 1
            }
            expected.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            for _ in 0..<random.int(in: 0...150) where !expected.isEmpty {
                let popped = queue.popMin()!
                let want = expected.removeFirst()
                #expect(popped.time.nanoseconds == want.0 && popped.sequence == want.1 && popped.payload == Int(want.1))
            }
        }
        #expect(queue.count == expected.count)
    }
}
