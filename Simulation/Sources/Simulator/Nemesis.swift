import SimWorld
import TernCore

/// A fault (or its healing) the nemesis wants applied `delay` from now.
struct PlannedFault {
    let delay: Duration
    let action: FaultAction
}

/// Draws the safety phase's faults from its own random stream. At each step it picks one fault
/// kind, by weight, among the kinds the profile enables that can apply now, and plans the fault
/// together with its healing (a restart, a resume, the end of a partition or skew). Its choices
/// depend only on the seed, the configuration and the nodes' up/down/paused states, which only
/// the nemesis (and scripted actions) change: the fault schedule is the same whatever the nodes do.
///
/// Invariants it keeps: at most `maximumNodesFaulted` nodes crashed, killed or paused at once
/// (power loss is coordinated and may take more, even all); one partition at a time; one clog
/// episode at a time; at most one skew and one EIO window per node; latent corruption only on a
/// fixed minority of nodes; clients get network faults only.
///
/// A profile that `injectsOneFailure` draws no steps: `planOneBrokerFailure` plans its one fault.
struct Nemesis {
    private var random: DeterministicRandom
    private let configuration: NemesisConfiguration
    private let enabledKinds: [FaultKind]
    private let nodeIDs: [NodeID]
    private let processTargets: [NodeID]
    private let injectsOneFailure: Bool
    let corruptibleNodes: [NodeID]
    private let maximumNodesFaulted: Int
    private var partitionBusyUntil = Instant.zero
    private var clogBusyUntil = Instant.zero
    /// Per node, by position in `nodeIDs`.
    private var skewBusyUntil: [Instant]
    private var ioErrorsBusyUntil: [Instant]

    init(profile: FaultProfile, configuration: NemesisConfiguration, nodes: [NodeSpecification], random: DeterministicRandom) {
        self.random = random
        self.configuration = configuration
        enabledKinds = profile.faultKinds.filter { configuration.weights[$0] > 0 }
        nodeIDs = nodes.map(\.id)
        processTargets = nodes.filter(\.receivesProcessFaults).map(\.id)
        injectsOneFailure = profile.injectsOneFailure
        let minority = max(1, (processTargets.count - 1) / 2)
        maximumNodesFaulted = configuration.maximumNodesFaulted ?? minority
        var choiceRandom = random.stream("corruptible-nodes")
        var shuffled = processTargets.filter { configuration.corruptibleCandidates?.contains($0) ?? true }
        shuffleInPlace(&shuffled, using: &choiceRandom)
        let corruptibleCount = min(configuration.corruptibleNodeCount ?? (processTargets.count - 1) / 2, shuffled.count)
        corruptibleNodes = Array(shuffled.prefix(corruptibleCount)).sorted()
        skewBusyUntil = Array(repeating: .zero, count: nodes.count)
        ioErrorsBusyUntil = Array(repeating: .zero, count: nodes.count)
    }

    /// Whether it draws faults step by step for the whole safety phase.
    var isActive: Bool { !enabledKinds.isEmpty && !injectsOneFailure }

    /// The one fault of a profile that `injectsOneFailure`, planned at the start of the run: a
    /// broker drawn from the seed crashes or is killed at a time drawn from the half to the two
    /// thirds of the safety phase (the cluster has formed, the topics exist and the workload has
    /// written to them; the rest of the phase leaves time to judge the failover). No restart is
    /// planned: the liveness phase restarts it. Nil for other profiles.
    mutating func planOneBrokerFailure(nodes: [NodeSpecification], safetyPhase: Duration) -> PlannedFault? {
        guard injectsOneFailure, safetyPhase > .zero else { return nil }
        let brokers = nodes.filter { $0.receivesProcessFaults && $0.roles.contains(.broker) }.map(\.id)
        let kinds = [FaultKind.nodeCrash, .processKill].filter(enabledKinds.contains)
        guard !brokers.isEmpty, !kinds.isEmpty else { return nil }
        let delay = random.duration(in: (safetyPhase / 2)...(safetyPhase * 2 / 3))
        let broker = pick(brokers)
        let kind = pick(kinds)
        return PlannedFault(delay: delay, action: kind == .nodeCrash ? .crash(broker) : .killProcess(broker))
    }

    /// Time to the next step: uniform over (0, 2 × mean].
    mutating func nextStepDelay() -> Duration {
        random.duration(in: .nanoseconds(1)...(configuration.meanTimeBetweenFaults * 2))
    }

    /// Plans one fault (and its healing), or nothing when no enabled kind can apply now.
    mutating func step(now: Instant, status: (NodeID) -> NodeStatus) -> [PlannedFault] {
        let applicable = enabledKinds.filter { canApply($0, now: now, status: status) }
        guard !applicable.isEmpty else { return [] }
        let totalWeight = applicable.reduce(0) { $0 + configuration.weights[$1] }
        var draw = Int(random.next(below: UInt64(totalWeight)))
        var chosen = applicable[0]
        for kind in applicable {
            draw -= configuration.weights[kind]
            if draw < 0 { chosen = kind; break }
        }
        return plan(chosen, now: now, status: status)
    }

    private func faultedCount(_ status: (NodeID) -> NodeStatus) -> Int {
        processTargets.filter { status($0) != .running }.count
    }

    private func canApply(_ kind: FaultKind, now: Instant, status: (NodeID) -> NodeStatus) -> Bool {
        switch kind {
        case .partitionSymmetric, .partitionAsymmetric, .isolateNode:
            return nodeIDs.count >= 2 && now >= partitionBusyUntil
        case .linkClog:
            return nodeIDs.count >= 2 && now >= clogBusyUntil
        case .nodeCrash, .processKill, .nodePause:
            return faultedCount(status) < maximumNodesFaulted && processTargets.contains { status($0) == .running }
        case .powerLoss:
            return processTargets.contains { status($0) != .down }
        case .clockSkew:
            return processTargets.contains { skewBusyUntil[position($0)] <= now }
        case .clockJump:
            return !processTargets.isEmpty
        case .latentCorruption:
            return !corruptibleNodes.isEmpty
        case .diskIOErrors:
            return processTargets.contains { status($0) != .down && ioErrorsBusyUntil[position($0)] <= now }
        case .connectionFault:
            return !processTargets.isEmpty
        }
    }

    private mutating func plan(_ kind: FaultKind, now: Instant, status: (NodeID) -> NodeStatus) -> [PlannedFault] {
        switch kind {
        case .partitionSymmetric, .partitionAsymmetric, .isolateNode:
            return planPartition(kind, now: now)
        case .linkClog:
            return planClogEpisode(now: now)
        case .nodeCrash, .processKill:
            let node = pick(processTargets.filter { status($0) == .running })
            let fault: FaultAction = kind == .nodeCrash ? .crash(node) : .killProcess(node)
            return [PlannedFault(delay: .zero, action: fault), PlannedFault(delay: drawRestartDelay(), action: .restart(node))]
        case .nodePause:
            let node = pick(processTargets.filter { status($0) == .running })
            return [PlannedFault(delay: .zero, action: .pause(node)),
                    PlannedFault(delay: drawFaultDuration(), action: .resume(node))]
        case .powerLoss:
            var candidates = processTargets.filter { status($0) != .down }
            shuffleInPlace(&candidates, using: &random)
            let count = random.int(in: min(2, candidates.count)...candidates.count)
            let victims = Array(candidates.prefix(count)).sorted()
            var planned = [PlannedFault(delay: .zero, action: .powerLoss(victims))]
            for node in victims { planned.append(PlannedFault(delay: drawRestartDelay(), action: .restart(node))) }
            return planned
        case .clockSkew:
            let node = pick(processTargets.filter { skewBusyUntil[position($0)] <= now })
            let limit = configuration.maximumClockDriftPartsPerMillion
            var drift = random.int64(in: -limit...limit)
            if drift == 0 { drift = 1 }  // zero would mean "no skew"
            let duration = drawFaultDuration()
            skewBusyUntil[position(node)] = now + duration
            return [PlannedFault(delay: .zero, action: .setClockDrift(node, partsPerMillion: drift)),
                    PlannedFault(delay: duration, action: .setClockDrift(node, partsPerMillion: 0))]
        case .clockJump:
            let node = pick(processTargets)
            let amount = random.int64(in: -configuration.maximumClockJumpBackward.nanoseconds...configuration.maximumClockJumpForward.nanoseconds)
            return [PlannedFault(delay: .zero, action: .jumpClock(node, by: Duration(nanoseconds: amount)))]
        case .latentCorruption:
            return [PlannedFault(delay: .zero, action: .corruptDurableData(pick(corruptibleNodes)))]
        case .diskIOErrors:
            let node = pick(processTargets.filter { status($0) != .down && ioErrorsBusyUntil[position($0)] <= now })
            let duration = drawFaultDuration()
            ioErrorsBusyUntil[position(node)] = now + duration
            return [PlannedFault(delay: .zero, action: .setDiskIOErrors(node, probability: configuration.ioErrorProbability)),
                    PlannedFault(delay: duration, action: .setDiskIOErrors(node, probability: 0))]
        case .connectionFault:
            return planConnectionFault()
        }
    }

    private mutating func planConnectionFault() -> [PlannedFault] {
        let node = pick(processTargets)
        switch random.int(in: 0...2) {
        case 0: return [PlannedFault(delay: .zero, action: .resetConnections(node))]
        case 1: return [PlannedFault(delay: .zero, action: .blackholeConnections(node))]
        default: return [PlannedFault(delay: .zero, action: .stallConnections(node, for: drawFaultDuration()))]
        }
    }

    private mutating func planPartition(_ kind: FaultKind, now: Instant) -> [PlannedFault] {
        var shuffled = nodeIDs
        shuffleInPlace(&shuffled, using: &random)
        let split = random.int(in: 1...(shuffled.count - 1))
        let first = Array(shuffled[..<split]).sorted()
        let second = Array(shuffled[split...]).sorted()
        let partition: NetworkPartition
        switch kind {
        case .partitionSymmetric: partition = .symmetric([first, second])
        case .partitionAsymmetric: partition = .asymmetric(from: first, to: second)
        default: partition = .isolating(shuffled[0], from: nodeIDs)
        }
        let duration = drawFaultDuration()
        partitionBusyUntil = now + duration
        return [PlannedFault(delay: .zero, action: .partition(partition)),
                PlannedFault(delay: duration, action: .healPartition)]
    }

    /// TigerBeetle-style: clog a few links one at a time, then release them one at a time in a
    /// random order.
    private mutating func planClogEpisode(now: Instant) -> [PlannedFault] {
        var links: [DirectedLink] = []
        for source in nodeIDs {
            for destination in nodeIDs where destination != source { links.append(DirectedLink(from: source, to: destination)) }
        }
        shuffleInPlace(&links, using: &random)
        let count = min(random.int(in: configuration.clogLinksPerEpisode), links.count)
        let clogged = Array(links.prefix(count))
        var releaseOrder = clogged
        shuffleInPlace(&releaseOrder, using: &random)
        var planned: [PlannedFault] = []
        var delay = Duration.zero
        for link in clogged {
            planned.append(PlannedFault(delay: delay, action: .clog(link)))
            delay = delay + random.duration(in: configuration.clogStepInterval)
        }
        for link in releaseOrder {
            delay = delay + random.duration(in: configuration.clogStepInterval)
            planned.append(PlannedFault(delay: delay, action: .unclog(link)))
        }
        clogBusyUntil = now + delay
        return planned
    }

    private func position(_ node: NodeID) -> Int {
        guard let index = nodeIDs.firstIndex(of: node) else { preconditionFailure("unknown node n\(node)") }
        return index
    }

    private mutating func pick<Candidate>(_ candidates: [Candidate]) -> Candidate {
        precondition(!candidates.isEmpty, "the nemesis picks only among applicable candidates")
        return candidates[random.int(in: 0...(candidates.count - 1))]
    }

    private mutating func drawFaultDuration() -> Duration { random.duration(in: configuration.faultDuration) }
    private mutating func drawRestartDelay() -> Duration { random.duration(in: configuration.restartDelay) }
}

/// Fisher–Yates with the given generator, written out so the permutation depends only on the
/// generator (not on the standard library's shuffle algorithm).
func shuffleInPlace<Element>(_ elements: inout [Element], using random: inout DeterministicRandom) {
    guard elements.count > 1 else { return }
    for index in stride(from: elements.count - 1, to: 0, by: -1) {
        let other = Int(random.next(below: UInt64(index + 1)))
        elements.swapAt(index, other)
    }
}
