import SimWorld
import TernCore

/// One direction between two nodes.
public struct DirectedLink: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let source: NodeID
    public let destination: NodeID

    public init(from source: NodeID, to destination: NodeID) {
        self.source = source
        self.destination = destination
    }

    public static func < (lhs: DirectedLink, rhs: DirectedLink) -> Bool {
        (lhs.source, lhs.destination) < (rhs.source, rhs.destination)
    }

    public var description: String { "n\(source)->n\(destination)" }
}

/// A set of directed links that stop carrying messages. At most one partition holds at a time:
/// a new one replaces the previous.
public struct NetworkPartition: Sendable, Equatable, CustomStringConvertible {
    public let kind: FaultKind
    /// Sorted, without self-links.
    public let blockedLinks: [DirectedLink]
    public let description: String

    /// Groups that cannot reach each other in either direction; nodes in no group keep every link.
    public static func symmetric(_ groups: [[NodeID]]) -> NetworkPartition {
        var blocked: [DirectedLink] = []
        for (index, group) in groups.enumerated() {
            for (otherIndex, other) in groups.enumerated() where otherIndex != index {
                for source in group { for destination in other { blocked.append(DirectedLink(from: source, to: destination)) } }
            }
        }
        let text = "symmetric " + groups.map { "{" + $0.map { "n\($0)" }.joined(separator: ",") + "}" }.joined(separator: " | ")
        return NetworkPartition(kind: .partitionSymmetric, blockedLinks: blocked.sorted(), description: text)
    }

    /// `sources` cannot reach `destinations`; the other direction still works.
    public static func asymmetric(from sources: [NodeID], to destinations: [NodeID]) -> NetworkPartition {
        var blocked: [DirectedLink] = []
        for source in sources {
            for destination in destinations where destination != source {
                blocked.append(DirectedLink(from: source, to: destination))
            }
        }
        let text = "asymmetric {" + sources.map { "n\($0)" }.joined(separator: ",") + "} -/-> {"
            + destinations.map { "n\($0)" }.joined(separator: ",") + "}"
        return NetworkPartition(kind: .partitionAsymmetric, blockedLinks: blocked.sorted(), description: text)
    }

    /// `node` cannot reach any of `others` and none of them can reach it.
    public static func isolating(_ node: NodeID, from others: [NodeID]) -> NetworkPartition {
        let rest = others.filter { $0 != node }
        let symmetric = NetworkPartition.symmetric([[node], rest])
        return NetworkPartition(kind: .isolateNode, blockedLinks: symmetric.blockedLinks, description: "isolate n\(node)")
    }

    private init(kind: FaultKind, blockedLinks: [DirectedLink], description: String) {
        self.kind = kind
        self.blockedLinks = blockedLinks
        self.description = description
    }
}

/// Something the nemesis (or a hand-written scenario, through `Simulation.schedule`) does to the
/// cluster. Actions on a node in the wrong state do nothing (crashing a down node, resuming a
/// running one), so overlapping plans stay harmless.
public enum FaultAction: Sendable, Equatable, CustomStringConvertible {
    /// Machine crash: node dropped, `SimDisk.crash()` (unsynced data may be lost, torn, garbled).
    /// Also reaches a machine whose process was killed (its page cache is still there).
    case crash(NodeID)
    /// Process death: node dropped, `SimDisk.killProcess()` (the page cache survives).
    case killProcess(NodeID)
    /// Power loss of several machines at the same instant (`SimDisk.powerLoss()` on each machine
    /// that is up, including those whose process was killed).
    case powerLoss([NodeID])
    /// A fresh node from the factory on the same disk, which gets `.start`. Only for a down node.
    case restart(NodeID)
    case pause(NodeID)
    case resume(NodeID)
    case partition(NetworkPartition)
    case healPartition
    case clog(DirectedLink)
    case unclog(DirectedLink)
    /// The node's clock runs fast (positive) or slow (negative); 0 ends a skew.
    case setClockDrift(NodeID, partsPerMillion: Int64)
    /// The machine's time of day steps (an NTP correction); its monotonic clock does not.
    case jumpClock(NodeID, by: Duration)
    /// Latent corruption of one synced sector on the node's disk.
    case corruptDurableData(NodeID)
    /// Opens (probability > 0) or closes (0) an EIO window on the node's disk.
    case setDiskIOErrors(NodeID, probability: Double)
    /// Every client connection with an end on the node is reset: both ends hear it at once.
    case resetConnections(NodeID)
    /// Every client connection with an end on the node silently stops carrying anything, both
    /// ways, and neither end is told (a firewall forgot them): half-open until a timeout.
    case blackholeConnections(NodeID)
    /// The frames clients are sending to the node stop mid-frame for `duration`.
    case stallConnections(NodeID, for: Duration)

    /// True for actions that undo a fault; only these still run in the liveness phase when the
    /// nemesis scheduled them.
    public var isHealing: Bool {
        switch self {
        case .restart, .resume, .healPartition, .unclog: return true
        case let .setClockDrift(_, partsPerMillion): return partsPerMillion == 0
        case let .setDiskIOErrors(_, probability): return probability == 0
        default: return false
        }
    }

    public var description: String {
        switch self {
        case let .crash(node): return "crash n\(node)"
        case let .killProcess(node): return "kill n\(node)"
        case let .powerLoss(nodes): return "power-loss " + nodes.map { "n\($0)" }.joined(separator: ",")
        case let .restart(node): return "restart n\(node)"
        case let .pause(node): return "pause n\(node)"
        case let .resume(node): return "resume n\(node)"
        case let .partition(partition): return "partition " + partition.description
        case .healPartition: return "heal-partition"
        case let .clog(link): return "clog \(link)"
        case let .unclog(link): return "unclog \(link)"
        case let .setClockDrift(node, partsPerMillion): return "clock-drift n\(node) \(partsPerMillion)ppm"
        case let .jumpClock(node, amount): return "clock-jump n\(node) \(amount)"
        case let .corruptDurableData(node): return "corrupt n\(node)"
        case let .setDiskIOErrors(node, probability): return "io-errors n\(node) p=\(formatFixed(probability, places: 3))"
        case let .resetConnections(node): return "reset-connections n\(node)"
        case let .blackholeConnections(node): return "blackhole-connections n\(node)"
        case let .stallConnections(node, duration): return "stall-connections n\(node) \(duration)"
        }
    }

    /// A stable word per action kind, for the trace hash.
    var traceCode: UInt64 {
        switch self {
        case .crash: return 1
        case .killProcess: return 2
        case .powerLoss: return 3
        case .restart: return 4
        case .pause: return 5
        case .resume: return 6
        case .partition: return 7
        case .healPartition: return 8
        case .clog: return 9
        case .unclog: return 10
        case .setClockDrift: return 11
        case .jumpClock: return 12
        case .corruptDurableData: return 13
        case .setDiskIOErrors: return 14
        case .resetConnections: return 15
        case .blackholeConnections: return 16
        case .stallConnections: return 17
        }
    }
}
