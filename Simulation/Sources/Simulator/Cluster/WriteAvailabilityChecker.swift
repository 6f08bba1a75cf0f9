import Controller
import SimWorld
import TernCore

/// Writes resume after a broker fails: once a broker has failed in an otherwise healthy cluster,
/// `acks=all` writes to every partition that keeps enough in-sync replicas are acknowledged again
/// within `broker.session.timeout.ms` (the controller fences the broker and shrinks the ISRs it
/// was in) plus `margin` (metadata propagation and the producer's retries).
///
/// The rule holds only under a precise precondition, checked when the first fault of the run
/// takes effect; if any part of it fails, nothing is judged in that run:
/// - the fault is a machine crash, process kill or power loss of one broker, in the safety phase,
///   and no fault came before it (so the network has no partition, clog or degradation, no
///   node is paused, no clock is skewed, no disk returns errors);
/// - the cluster is healthy at that moment: a controller is active (not the failed node), every
///   broker is registered, unfenced and not shutting down in its committed image, and every
///   broker but the failed one and the producer client is running.
///
/// Judged partitions are the producer's that had an acknowledged write before the failure (writes
/// *resume*: a topic created a moment before, whose producer is still starting, is not judged),
/// led by a broker other than the failed one (a failed leader's partitions wait on the client's
/// request timeout too, which the liveness check bounds), while their committed ISR without the
/// failed broker still has `min.insync.replicas` running, active members and their leader runs
/// (an operator's action may take that away; the partition is then no longer judged). The
/// judgement ends at the next fault, at the failed broker's restart, or with the safety phase.
///
/// Measured per partition: from the moment the producer client is given its first record for it
/// after the failure to the moment the client hears the first acknowledgement of such a record.
/// Both are events of the client, so the measure is exact in simulated time.
public final class WriteAvailabilityChecker: SimulationChecker {
    public let name = "write-availability"
    /// What `broker.session.timeout.ms` does not cover: the fencing records' commit and
    /// propagation to the leaders, a parked produce's timeout and the producer's retry.
    public static let defaultMargin = Duration.seconds(2)

    public let margin: Duration
    /// The window of the run's broker failure, once its precondition held.
    public private(set) var window: WriteAvailabilityWindow?
    private let layout: ClusterLayout
    private var isOpen = false
    private var firstFaultSeen = false
    private var acknowledgementsSeen = 0

    public init(layout: ClusterLayout, margin: Duration = WriteAvailabilityChecker.defaultMargin) {
        self.layout = layout
        self.margin = margin
    }

    public var bound: Duration { layout.controllerConfiguration.brokerSessionTimeout + margin }

    public func faultApplied(_ action: FaultAction, in simulation: SimulationView) {
        if isOpen {
            // Anything else that goes wrong, or the failed broker's return, ends the judgement.
            if !action.isHealing || action == .restart(window!.failedBroker) { isOpen = false }
            return
        }
        guard !action.isHealing, !firstFaultSeen else { return }
        firstFaultSeen = true
        guard let broker = Self.singleBrokerFailed(by: action, brokers: layout.brokerIDs),
              let opened = openWindow(failedBroker: broker, simulation) else { return }
        window = opened
        isOpen = true
        acknowledgementsSeen = producer(simulation)?.acknowledged.count ?? 0
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        guard isOpen, delivered.nodeID == ClusterLayout.producerClientID, let client = producer(simulation) else { return .ok }
        for topicPartition in window!.partitionsNotYetWaiting {
            if let value = client.lastValueSent[topicPartition] {
                window!.recordSend(topicPartition, value: value, at: delivered.time)
            }
        }
        let acknowledged = client.acknowledged
        defer { acknowledgementsSeen = acknowledged.count }
        for write in acknowledged[acknowledgementsSeen...] {
            let result = window!.recordAcknowledgement(write.topicPartition, value: write.value, at: delivered.time)
            if case .violation = result { return result }
        }
        return .ok
    }

    public func periodically(in simulation: SimulationView) -> CheckResult {
        guard isOpen else { return .ok }
        guard simulation.phase == .safety, let image = activeController(simulation, layout: layout)?.committedImage else {
            // No verdict without a controller: that is not the single failure this rule is about.
            isOpen = false
            return .ok
        }
        for topicPartition in window!.judgedPartitions where !keepsEnoughInSyncReplicas(topicPartition, image, simulation) {
            window!.stopJudging(topicPartition)
        }
        return window!.check(now: simulation.now)
    }

    /// The broker a fault takes down, if it takes down exactly one broker.
    public static func singleBrokerFailed(by action: FaultAction, brokers: [NodeID]) -> NodeID? {
        let victims: [NodeID]
        switch action {
        case let .crash(node), let .killProcess(node): victims = [node]
        case let .powerLoss(nodes): victims = nodes
        default: return nil
        }
        guard victims.count == 1, brokers.contains(victims[0]) else { return nil }
        return victims[0]
    }

    /// The window for `failedBroker` if the cluster was otherwise healthy when it failed.
    private func openWindow(failedBroker: NodeID, _ simulation: SimulationView) -> WriteAvailabilityWindow? {
        guard simulation.phase == .safety, simulation.faultsInjected.total == 1,
              !simulation.configuration.profile.degradesNetwork,
              let active = activeController(simulation, layout: layout), active.nodeID != failedBroker,
              let client = producer(simulation) else { return nil }
        let image = active.committedImage
        for broker in layout.brokerIDs {
            guard image.isActive(broker), broker == failedBroker || simulation.status(of: broker) == .running else { return nil }
        }
        var written: Set<TopicPartition> = []  // membership only, never iterated
        for write in client.acknowledged { written.insert(write.topicPartition) }
        let judged = workloadPartitions.filter { topicPartition in
            guard written.contains(topicPartition), let registration = registration(of: topicPartition, in: image),
                  let leader = registration.leader else { return false }
            return leader != failedBroker && keepsEnoughInSyncReplicas(topicPartition, image, simulation, failedBroker: failedBroker)
        }
        let inISR = judged.filter { registration(of: $0, in: image)?.isr.contains(failedBroker) ?? false }
        return WriteAvailabilityWindow(failedBroker: failedBroker, failedAt: simulation.now, bound: bound,
                                       partitions: judged, failedBrokerInISR: inISR,
                                       lastValueSentBefore: client.lastValueSent)
    }

    private var workloadPartitions: [TopicPartition] {
        (0..<layout.topics).flatMap { topic in
            (0..<layout.partitionsPerTopic).map { TopicPartition(topic: "topic-\(topic)", partition: $0) }
        }
    }

    private func registration(of topicPartition: TopicPartition, in image: MetadataImage) -> PartitionRegistration? {
        image.topic(named: topicPartition.topic)?.partition(topicPartition.partition)
    }

    /// The partition has a running, active leader and, besides the failed broker,
    /// `min.insync.replicas` running, active ISR members.
    private func keepsEnoughInSyncReplicas(_ topicPartition: TopicPartition, _ image: MetadataImage,
                                           _ simulation: SimulationView, failedBroker: NodeID? = nil) -> Bool {
        let failed = failedBroker ?? window!.failedBroker
        guard let registration = registration(of: topicPartition, in: image), let leader = registration.leader,
              leader != failed, simulation.status(of: leader) == .running else { return false }
        let remaining = registration.isr.filter { $0 != failed && simulation.status(of: $0) == .running && image.isActive($0) }
        return remaining.count >= layout.minInSyncReplicas
    }

    private func producer(_ simulation: SimulationView) -> ProducerClientNode? {
        simulation.node(ClusterLayout.producerClientID, as: ProducerClientNode.self)
    }
}

/// The pure core of the write-availability checker: one broker failure and, per judged partition,
/// when writes started waiting and when they were first acknowledged.
public struct WriteAvailabilityWindow: Sendable {
    public let failedBroker: NodeID
    public let failedAt: Instant
    public let bound: Duration
    /// Partitions whose committed ISR held the failed broker when it failed: their leader had to
    /// stop waiting for it.
    public let failedBrokerInISR: [TopicPartition]
    /// Judged partitions, in order.
    public private(set) var judgedPartitions: [TopicPartition]
    /// Per judged partition, the value of the last record the producer was given for it before
    /// the failure: records with greater values were given after it.
    private let lastValueBefore: [TopicPartition: UInt64]
    /// When the producer was given the partition's first record after the failure.
    public private(set) var waitingSince: [TopicPartition: Instant] = [:]
    /// How long each partition waited for its first acknowledgement after the failure.
    public private(set) var resumedAfter: [TopicPartition: Duration] = [:]

    public init(failedBroker: NodeID, failedAt: Instant, bound: Duration, partitions: [TopicPartition],
                failedBrokerInISR: [TopicPartition], lastValueSentBefore: [TopicPartition: UInt64]) {
        self.failedBroker = failedBroker
        self.failedAt = failedAt
        self.bound = bound
        self.judgedPartitions = partitions.sorted()
        self.failedBrokerInISR = failedBrokerInISR.sorted()
        self.lastValueBefore = lastValueSentBefore
    }

    /// Judged partitions without a record given to the producer since the failure.
    public var partitionsNotYetWaiting: [TopicPartition] { judgedPartitions.filter { waitingSince[$0] == nil } }

    /// The longest wait for a first acknowledgement so far, over the partitions whose ISR held
    /// the failed broker (`true`) or the others.
    public func longestWait(failedBrokerInISR inISR: Bool) -> Duration? {
        resumedAfter.filter { failedBrokerInISR.contains($0.key) == inISR }.values.max()
    }

    /// The producer was given `value` for the partition at `time` (the last record of that event).
    public mutating func recordSend(_ topicPartition: TopicPartition, value: UInt64, at time: Instant) {
        guard judgedPartitions.contains(topicPartition), waitingSince[topicPartition] == nil,
              isAfterFailure(value, topicPartition) else { return }
        waitingSince[topicPartition] = time
    }

    /// The producer heard that the record with `value` was written, at `time`.
    public mutating func recordAcknowledgement(_ topicPartition: TopicPartition, value: UInt64, at time: Instant) -> CheckResult {
        guard judgedPartitions.contains(topicPartition), resumedAfter[topicPartition] == nil,
              isAfterFailure(value, topicPartition) else { return .ok }
        let since = waitingSince[topicPartition] ?? failedAt
        let waited = time - since
        resumedAfter[topicPartition] = waited
        guard waited <= bound else {
            return .violation("\(topicPartition): writes waited \(waited) for their first acknowledgement after n\(failedBroker) failed "
                + "at \(failedAt) (waiting from \(since), acknowledged at \(time)), over the \(bound) bound\(isrNote(topicPartition))")
        }
        return .ok
    }

    /// The partition no longer keeps enough in-sync replicas: its writes may rightly stop.
    public mutating func stopJudging(_ topicPartition: TopicPartition) {
        judgedPartitions.removeAll { $0 == topicPartition }
    }

    /// Every judged partition that has waited longer than the bound without an acknowledgement.
    public func check(now: Instant) -> CheckResult {
        for topicPartition in judgedPartitions where resumedAfter[topicPartition] == nil {
            guard let since = waitingSince[topicPartition], now - since > bound else { continue }
            return .violation("\(topicPartition): no write acknowledged for \(now - since) after n\(failedBroker) failed at "
                + "\(failedAt) (waiting from \(since)), over the \(bound) bound\(isrNote(topicPartition))")
        }
        return .ok
    }

    private func isAfterFailure(_ value: UInt64, _ topicPartition: TopicPartition) -> Bool {
        lastValueBefore[topicPartition].map { value > $0 } ?? true
    }

    private func isrNote(_ topicPartition: TopicPartition) -> String {
        failedBrokerInISR.contains(topicPartition) ? " (n\(failedBroker) was in its ISR)" : ""
    }
}
