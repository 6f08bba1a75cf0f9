import TernCore

/// Latency and faults of a directed link. Latency is `latencyMinimum` plus a uniform draw up to
/// `latencyJitter`, plus, with `tailProbability`, a draw from `tailLatency` (a retransmission, a
/// full switch buffer).
public struct LinkBehavior: Sendable, Equatable {
    public var latencyMinimum: Duration
    public var latencyJitter: Duration
    public var tailProbability: Double
    public var tailLatency: ClosedRange<Duration>
    public var lossProbability: Double
    /// Probability that a message is delivered twice (the copy with its own latency).
    public var duplicationProbability: Double
    /// Probability that a message may overtake earlier ones on its link. Otherwise a link is FIFO
    /// like a TCP connection: a message is never delivered before one sent earlier on it.
    public var reorderProbability: Double

    public init(
        latencyMinimum: Duration, latencyJitter: Duration,
        tailProbability: Double = 0, tailLatency: ClosedRange<Duration> = .zero...(.zero),
        lossProbability: Double = 0, duplicationProbability: Double = 0, reorderProbability: Double = 0
    ) {
        self.latencyMinimum = latencyMinimum
        self.latencyJitter = latencyJitter
        self.tailProbability = tailProbability
        self.tailLatency = tailLatency
        self.lossProbability = lossProbability
        self.duplicationProbability = duplicationProbability
        self.reorderProbability = reorderProbability
    }

    /// A healthy data-center network: sub-millisecond, FIFO, nothing lost.
    public static let calm = LinkBehavior(latencyMinimum: .microseconds(100), latencyJitter: .microseconds(400))

    /// The network during a `network` or `all` safety phase.
    public static let degraded = LinkBehavior(
        latencyMinimum: .microseconds(100), latencyJitter: .milliseconds(2),
        tailProbability: 0.01, tailLatency: .milliseconds(20)...(.milliseconds(300)),
        lossProbability: 0.02, duplicationProbability: 0.01, reorderProbability: 0.1)

    func validate() {
        precondition(latencyMinimum >= .zero && latencyJitter >= .zero && tailLatency.lowerBound >= .zero,
                     "latencies must not be negative")
        for probability in [tailProbability, lossProbability, duplicationProbability, reorderProbability] {
            precondition(probability >= 0 && probability <= 1, "a probability is within 0...1")
        }
    }
}

public struct NetworkConfiguration: Sendable {
    /// Links in the liveness phase, and in the safety phase of profiles without network faults.
    public var calm: LinkBehavior
    /// Links in the safety phase of profiles with network faults.
    public var degraded: LinkBehavior
    /// Each link's latency (minimum and jitter) is scaled by a factor drawn once per link from
    /// 100% to 100% + this, so links differ as racks and routes do.
    public var linkLatencySpreadPercent: Int64
    /// Messages on a link that are neither delivered nor dropped (in the air or held by a clog).
    /// A send onto a full link is dropped: the bound of every in-flight queue.
    public var maximumInFlightPerLink: Int
    /// A larger message is a node bug (frames are bounded); the run stops with a violation.
    public var maximumMessageBytes: Int

    public init(
        calm: LinkBehavior = .calm, degraded: LinkBehavior = .degraded,
        linkLatencySpreadPercent: Int64 = 100, maximumInFlightPerLink: Int = 1_024,
        maximumMessageBytes: Int = 16 << 20
    ) {
        self.calm = calm
        self.degraded = degraded
        self.linkLatencySpreadPercent = linkLatencySpreadPercent
        self.maximumInFlightPerLink = maximumInFlightPerLink
        self.maximumMessageBytes = maximumMessageBytes
    }

    package func validate() {
        calm.validate()
        degraded.validate()
        precondition(linkLatencySpreadPercent >= 0 && linkLatencySpreadPercent <= 10_000, "latency spread is 0...10000%")
        precondition(maximumInFlightPerLink > 0 && maximumMessageBytes > 0, "network bounds must be positive")
    }
}

/// Counters for the report. "Dropped" counts every message a node sent that no node received
/// (duplicates count as sent once, as extra deliveries when they arrive).
public struct NetworkStatistics: Sendable, Equatable, CustomStringConvertible {
    public var messagesSent = 0
    public var messagesDelivered = 0
    public var messagesDuplicated = 0
    /// Delivered before a message sent earlier on the same link.
    public var messagesReordered = 0
    /// Times a message reached a clogged link's end and had to wait for the unclog.
    public var messagesHeldByClog = 0
    public var droppedByLoss = 0
    public var droppedByPartition = 0
    public var droppedByFullLink = 0
    public var droppedAtDownNode = 0
    public var droppedByPausedBacklog = 0
    public var droppedUnknownDestination = 0
    /// High-water marks, to show the bounds hold.
    public var maximumInFlightOnOneLink = 0
    public var maximumPausedBacklog = 0
    /// Client connections opened, frames they carried to an end, and connections a gone
    /// process's kernel refused (a reset back to the sender).
    public var connectionsOpened = 0
    public var connectionFramesDelivered = 0
    public var connectionsRefused = 0

    public var messagesDropped: Int {
        droppedByLoss + droppedByPartition + droppedByFullLink + droppedAtDownNode + droppedByPausedBacklog
            + droppedUnknownDestination
    }

    public var description: String {
        "sent \(messagesSent) delivered \(messagesDelivered) dropped \(messagesDropped) "
            + "(loss \(droppedByLoss), partition \(droppedByPartition), full link \(droppedByFullLink), "
            + "down node \(droppedAtDownNode), paused backlog \(droppedByPausedBacklog), "
            + "unknown destination \(droppedUnknownDestination)) duplicated \(messagesDuplicated) "
            + "reordered \(messagesReordered) held by clog \(messagesHeldByClog); client connections \(connectionsOpened) "
            + "(frames \(connectionFramesDelivered), refused \(connectionsRefused))"
    }
}

/// Why the network did not deliver a message.
package enum DropReason: UInt64, CustomStringConvertible {
    case loss = 1, partition, fullLink, downNode, pausedBacklog, unknownDestination

    package var description: String {
        switch self {
        case .loss: return "loss"
        case .partition: return "partition"
        case .fullLink: return "full-link"
        case .downNode: return "down-node"
        case .pausedBacklog: return "paused-backlog"
        case .unknownDestination: return "unknown-destination"
        }
    }
}

/// A message on the wire. Nodes are named by their index in the configuration.
package struct InFlightMessage {
    package let source: Int
    package let destination: Int
    package let bytes: [UInt8]
    /// FNV-1a of `bytes`, computed once at send for the trace.
    package let digest: UInt64
    /// Send order on its link, to count reordering.
    let linkSequence: UInt64
    let isDuplicate: Bool
}

/// What happened to a message reaching the end of its link.
package enum ArrivalOutcome {
    case deliver
    case held
    case dropped(DropReason)
}

/// The simulated network between nodes, in the style of TigerBeetle's packet simulator: a dense
/// matrix of directed links, each with its own random stream, latency scale, partition flag,
/// clog flag and bounded in-flight count. Messages are bytes. The network decides latency, loss,
/// duplication and order when a message is sent, and partition and clog again when it arrives (a
/// partition that starts while a message is in the air drops it). Whether the destination is up
/// or paused is the scheduler's business.
public final class SimNetwork {
    struct Link {
        var random: DeterministicRandom
        let latencyScalePercent: Int64
        var isBlocked = false
        var isClogged = false
        var inFlightCount = 0
        /// Messages that reached the end of the link while it was clogged, in arrival order.
        /// Created at the first clog; never longer than the in-flight bound.
        var held: RingBuffer<InFlightMessage>?
        /// Latest delivery time given to a FIFO message: later FIFO messages never come earlier.
        var lastScheduledDelivery = Instant.zero
        var nextSendSequence: UInt64 = 0
        var highestDeliveredSequence: UInt64?
    }

    public let nodeIDs: [NodeID]
    public let configuration: NetworkConfiguration
    public private(set) var statistics = NetworkStatistics()
    /// True while links behave as `configuration.degraded`.
    public private(set) var isDegraded = false
    private var links: [Link]
    private let nodeCount: Int

    package init(nodeIDs: [NodeID], configuration: NetworkConfiguration, random: DeterministicRandom) {
        configuration.validate()
        self.nodeIDs = nodeIDs
        self.configuration = configuration
        nodeCount = nodeIDs.count
        var links: [Link] = []
        links.reserveCapacity(nodeCount * nodeCount)
        for source in nodeIDs {
            for destination in nodeIDs {
                // Keyed by node ids, not positions: adding a node leaves other links' streams alone.
                let key = Int(source.rawValue) << 32 | Int(UInt32(bitPattern: destination.rawValue))
                var linkRandom = random.stream("link", key)
                let scale = 100 + linkRandom.int64(in: 0...configuration.linkLatencySpreadPercent)
                links.append(Link(random: linkRandom, latencyScalePercent: scale))
            }
        }
        self.links = links
    }

    // MARK: Inspection

    public func isBlocked(from source: NodeID, to destination: NodeID) -> Bool {
        links[linkIndex(source, destination)].isBlocked
    }

    public func isClogged(from source: NodeID, to destination: NodeID) -> Bool {
        links[linkIndex(source, destination)].isClogged
    }

    public func inFlightCount(from source: NodeID, to destination: NodeID) -> Int {
        links[linkIndex(source, destination)].inFlightCount
    }

    /// True when no link is blocked or clogged.
    public var isHealed: Bool { !links.contains { $0.isBlocked || $0.isClogged } }

    public var totalInFlight: Int { links.reduce(0) { $0 + $1.inFlightCount } }

    private func linkIndex(_ source: NodeID, _ destination: NodeID) -> Int {
        guard let sourceIndex = nodeIDs.firstIndex(of: source),
              let destinationIndex = nodeIDs.firstIndex(of: destination) else {
            preconditionFailure("no link \(source)->\(destination): unknown node")
        }
        return sourceIndex * nodeCount + destinationIndex
    }

    // MARK: Sending and arriving

    /// Puts a message on the link `source → destination`; `schedule` receives each copy with its
    /// arrival time (none when dropped, two when duplicated). Returns why it was dropped, if it was.
    package func send(
        from source: Int, to destination: Int, bytes: [UInt8], digest: UInt64, now: Instant,
        schedule: (Instant, InFlightMessage) -> Void
    ) -> DropReason? {
        precondition(source < nodeCount && destination < nodeCount, "link endpoints are node indices")
        statistics.messagesSent += 1
        let index = source * nodeCount + destination
        // A node's messages to itself never leave the machine: always calm.
        let behavior = isDegraded && source != destination ? configuration.degraded : configuration.calm
        if links[index].isBlocked {
            statistics.droppedByPartition += 1
            return .partition
        }
        if links[index].random.chance(behavior.lossProbability) {
            statistics.droppedByLoss += 1
            return .loss
        }
        guard links[index].inFlightCount < configuration.maximumInFlightPerLink else {
            statistics.droppedByFullLink += 1
            return .fullLink
        }
        let sequence = links[index].nextSendSequence
        links[index].nextSendSequence += 1
        var arrival = now + drawLatency(behavior, link: index)
        if !links[index].random.chance(behavior.reorderProbability) {
            arrival = max(arrival, links[index].lastScheduledDelivery)
            links[index].lastScheduledDelivery = arrival
        }
        let message = InFlightMessage(
            source: source, destination: destination, bytes: bytes, digest: digest,
            linkSequence: sequence, isDuplicate: false)
        enterLink(index)
        schedule(arrival, message)
        if links[index].random.chance(behavior.duplicationProbability)
            && links[index].inFlightCount < configuration.maximumInFlightPerLink {
            statistics.messagesDuplicated += 1
            let copy = InFlightMessage(
                source: source, destination: destination, bytes: bytes, digest: digest,
                linkSequence: sequence, isDuplicate: true)
            enterLink(index)
            schedule(now + drawLatency(behavior, link: index), copy)
        }
        return nil
    }

    /// A message reached the end of its link: held while the link is clogged, dropped when the
    /// link is now partitioned, else handed on (the scheduler still checks the destination).
    package func arrive(_ message: InFlightMessage) -> ArrivalOutcome {
        let index = message.source * nodeCount + message.destination
        if links[index].isClogged {
            let held = links[index].held!.append(message)
            precondition(held, "held messages are in flight, and in-flight messages are bounded by the held capacity")
            statistics.messagesHeldByClog += 1
            return .held
        }
        links[index].inFlightCount -= 1
        precondition(links[index].inFlightCount >= 0, "a link delivered more than was sent on it")
        if links[index].isBlocked {
            statistics.droppedByPartition += 1
            return .dropped(.partition)
        }
        if !message.isDuplicate {
            if let highest = links[index].highestDeliveredSequence, message.linkSequence < highest {
                statistics.messagesReordered += 1
            }
            links[index].highestDeliveredSequence = max(links[index].highestDeliveredSequence ?? 0, message.linkSequence)
        }
        return .deliver
    }

    /// The scheduler could not hand a delivered message to its node.
    package func recordDrop(_ reason: DropReason) {
        switch reason {
        case .downNode: statistics.droppedAtDownNode += 1
        case .pausedBacklog: statistics.droppedByPausedBacklog += 1
        case .unknownDestination: statistics.droppedUnknownDestination += 1
        case .loss: statistics.droppedByLoss += 1
        case .partition: statistics.droppedByPartition += 1
        case .fullLink: statistics.droppedByFullLink += 1
        }
    }

    package func recordDelivery() { statistics.messagesDelivered += 1 }

    package func recordConnectionOpened() { statistics.connectionsOpened += 1 }
    package func recordConnectionFrameDelivered() { statistics.connectionFramesDelivered += 1 }
    package func recordConnectionRefused() { statistics.connectionsRefused += 1 }

    /// A node sent to an id that is not in the cluster: counted as sent and dropped.
    package func recordSendToUnknownDestination() {
        statistics.messagesSent += 1
        statistics.droppedUnknownDestination += 1
    }

    package func recordPausedBacklog(_ count: Int) {
        statistics.maximumPausedBacklog = max(statistics.maximumPausedBacklog, count)
    }

    private func enterLink(_ index: Int) {
        links[index].inFlightCount += 1
        statistics.maximumInFlightOnOneLink = max(statistics.maximumInFlightOnOneLink, links[index].inFlightCount)
    }

    private func drawLatency(_ behavior: LinkBehavior, link index: Int) -> Duration {
        let scale = links[index].latencyScalePercent
        var latency = behavior.latencyMinimum * scale / 100
        if behavior.latencyJitter > .zero {
            latency = latency + links[index].random.duration(in: .zero...(behavior.latencyJitter * scale / 100))
        }
        if links[index].random.chance(behavior.tailProbability) {
            latency = latency + links[index].random.duration(in: behavior.tailLatency)
        }
        return latency
    }

    // MARK: Connections

    /// Whether a connection's segment can cross `source → destination` now (TCP retransmits
    /// through a partition or a clog until it heals).
    package func carriesConnectionSegments(from source: Int, to destination: Int) -> Bool {
        let index = source * nodeCount + destination
        return !links[index].isBlocked && !links[index].isClogged
    }

    /// One connection segment's trip over `source → destination`: the link's latency, and a
    /// retransmission timeout for each time the link loses it (TCP delivers late, never not at all).
    /// Order on the connection is the connection's business.
    package func connectionSegmentLatency(from source: Int, to destination: Int) -> Duration {
        let index = source * nodeCount + destination
        let behavior = isDegraded && source != destination ? configuration.degraded : configuration.calm
        var latency = drawLatency(behavior, link: index)
        var retransmissions = 0
        while retransmissions < 6 && links[index].random.chance(behavior.lossProbability) {
            retransmissions += 1
            latency = latency + Self.retransmissionTimeout * Int64(1 << (retransmissions - 1))
        }
        return latency
    }

    /// Linux's minimum TCP retransmission timeout.
    package static let retransmissionTimeout = Duration.milliseconds(200)

    // MARK: Faults

    package func setDegraded(_ degraded: Bool) { isDegraded = degraded }

    /// Replaces the current partition: exactly `blocked` links stop carrying messages.
    package func partition(blocking blocked: [(source: Int, destination: Int)]) {
        healPartition()
        for link in blocked where link.source != link.destination {
            links[link.source * nodeCount + link.destination].isBlocked = true
        }
    }

    package func healPartition() {
        for index in links.indices { links[index].isBlocked = false }
    }

    /// Returns false if the link was already clogged (or is a node's link to itself).
    package func clog(from source: Int, to destination: Int) -> Bool {
        let index = source * nodeCount + destination
        guard source != destination, !links[index].isClogged else { return false }
        links[index].isClogged = true
        if links[index].held == nil {
            links[index].held = RingBuffer(capacity: configuration.maximumInFlightPerLink)
        }
        return true
    }

    /// Releases a clogged link: what waited on it arrives now, in the order it reached the end.
    /// Returns false if the link was not clogged.
    package func unclog(from source: Int, to destination: Int, now: Instant, schedule: (Instant, InFlightMessage) -> Void) -> Bool {
        let index = source * nodeCount + destination
        guard links[index].isClogged else { return false }
        links[index].isClogged = false
        links[index].lastScheduledDelivery = max(links[index].lastScheduledDelivery, now)
        while let message = links[index].held!.popFirst() {
            schedule(now, message)
        }
        return true
    }

    /// Every clogged link, in link order, as (source, destination) indices.
    package func cloggedLinks() -> [(source: Int, destination: Int)] {
        links.indices.filter { links[$0].isClogged }.map { ($0 / nodeCount, $0 % nodeCount) }
    }
}
