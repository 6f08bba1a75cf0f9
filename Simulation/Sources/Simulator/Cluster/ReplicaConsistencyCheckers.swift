import Broker
import Controller
import LogStorage
import SimWorld
import TernCore

/// A leader's high watermark never goes backwards while it leads one epoch: after every event, the
/// node that handled it is compared with what the checker saw of it before (per partition, the
/// topic id, leader epoch and process incarnation it led in, and its high watermark then; a topic
/// created again under the same name starts again at epoch 0).
public final class HighWatermarkChecker: SimulationChecker {
    public let name = "high-watermark"
    private let layout: ClusterLayout
    struct LeaderPosition: Equatable {
        var incarnation: Int
        var topicID: TopicID?
        var leaderEpoch: LeaderEpoch
        var highWatermark: Offset
    }
    private var seen: [NodeID: [TopicPartition: LeaderPosition]] = [:]

    public init(layout: ClusterLayout) {
        self.layout = layout
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        let id = delivered.nodeID
        guard let broker = brokerPart(of: simulation.node(id)) else { return .ok }
        var known = seen.removeValue(forKey: id) ?? [:]  // taken out: updated in place, not copied
        defer { seen[id] = known }
        for hosted in broker.dataPlane.hostedInOrder {
            let (topicPartition, replica) = (hosted.topicPartition, hosted.replica)
            guard replica.isLeader else {
                known[topicPartition] = nil
                continue
            }
            let now = LeaderPosition(incarnation: delivered.incarnation, topicID: hosted.topicID,
                                     leaderEpoch: replica.leaderEpoch, highWatermark: replica.highWatermark)
            if let before = known[topicPartition] {
                if before == now { continue }  // most events move nothing: spare the write
                if let problem = Self.regression(from: before, to: now) {
                    return .violation("\(topicPartition) on leader n\(id): \(problem)")
                }
            }
            known[topicPartition] = now
        }
        return .ok
    }

    /// What the checker saw of a leader after that node's previous event: for a checker that
    /// runs before this one in the same pass, the state before the current event.
    func positionBeforeEvent(of node: NodeID, _ topicPartition: TopicPartition) -> LeaderPosition? {
        seen[node]?[topicPartition]
    }

    /// The pure rule: within one incarnation, topic and leader epoch, the high watermark only grows.
    static func regression(from before: LeaderPosition, to now: LeaderPosition) -> String? {
        guard before.incarnation == now.incarnation, before.topicID == now.topicID, before.leaderEpoch == now.leaderEpoch,
              now.highWatermark < before.highWatermark else { return nil }
        return "high watermark went back from \(before.highWatermark) to \(now.highWatermark) within leader epoch \(now.leaderEpoch)"
    }
}

/// Replicas agree byte for byte below the high watermark: at the end of a run, every running
/// member of each partition's committed ISR (the leader first) holds the same batches from the
/// latest of their log starts up to the leader's high watermark. A copy whose read stops at
/// corruption its checksums caught is left out (it refuses to serve those bytes and re-fetches
/// them once it reports the loss), but at least one must read cleanly; silently different bytes
/// are a violation.
public final class ReplicaConsistencyChecker: SimulationChecker {
    public let name = "replica-consistency"
    private let layout: ClusterLayout
    public private(set) var comparedReplicas = 0

    public init(layout: ClusterLayout) {
        self.layout = layout
    }

    public func atEnd(of simulation: SimulationView) -> CheckResult {
        guard let active = activeController(simulation, layout: layout) else { return .ok }
        for partition in active.committedImage.partitions {
            let topicPartition = partition.topicPartition
            guard let leaderID = partition.registration.leader, let leader = runningReplica(simulation, leaderID, topicPartition),
                  leader.isLeader else { continue }
            let highWatermark = leader.highWatermark
            let members = [leaderID] + partition.registration.isr.filter { $0 != leaderID }
            let copies = members.compactMap { id in runningReplica(simulation, id, topicPartition).map { (id, $0) } }
            let start = copies.map(\.1.log.logStartOffset).max() ?? .zero
            var reference: (id: NodeID, bytes: [UInt8])?
            for (id, replica) in copies {
                switch Self.bytes(of: replica.log, from: start, below: highWatermark) {
                case .failure(.corrupt):
                    continue  // its checksums caught rot: it refuses these bytes and reports itself
                case .failure(.short(let end)):
                    if partition.registration.dataLoss(of: id) != nil { continue }  // recorded as lost: it is re-fetching
                    return .violation("\(topicPartition): ISR member n\(id) ends at \(end), below leader n\(leaderID)'s high watermark \(highWatermark)")
                case let .success(actual):
                    guard let reference else {
                        reference = (id, actual)
                        continue
                    }
                    comparedReplicas += 1
                    if let problem = Self.difference(expected: reference.bytes, actual: actual) {
                        return .violation("\(topicPartition): ISR member n\(id) differs from n\(reference.id) below leader n\(leaderID)'s high watermark \(highWatermark): \(problem)")
                    }
                }
            }
            if reference == nil, highWatermark > start {
                return .violation("\(topicPartition): no ISR member can read the committed records below \(highWatermark)")
            }
        }
        return .ok
    }

    enum ReadProblem: Error, Equatable {
        case corrupt
        case short(end: Offset)
    }

    /// Whole batches from `start` up to `end`, as stored.
    static func bytes(of log: PartitionLog, from start: Offset, below end: Offset) -> Result<[UInt8], ReadProblem> {
        var bytes: [UInt8] = []
        var offset = start
        while offset < end {
            guard offset < log.logEndOffset else { return .failure(.short(end: offset)) }
            let read: LogReadResult
            do { read = try log.read(from: offset, maxBytes: 1 << 20, maximumOffset: end) } catch { return .failure(.corrupt) }
            guard read.batchCount > 0, read.nextOffset > offset else { return .failure(.short(end: offset)) }
            bytes += read.bytes
            offset = read.nextOffset
        }
        return .success(bytes)
    }

    /// The pure comparison: nil when identical, else where they first differ.
    static func difference(expected: [UInt8], actual: [UInt8]) -> String? {
        guard expected != actual else { return nil }
        let common = zip(expected, actual).prefix { $0 == $1 }.count
        return "first difference at byte \(common) of \(expected.count) (replica has \(actual.count))"
    }
}

/// The running controller that is active, if any.
func activeController(_ view: SimulationView, layout: ClusterLayout) -> ControllerNode? {
    layout.controllerIDs.lazy.compactMap { id -> ControllerNode? in
        view.status(of: id) == .running ? controllerPart(of: view.node(id)) : nil
    }.first(where: { $0.isActiveController })
}

/// The node's replica of the partition, if the node is running and hosts one.
func runningReplica(_ view: SimulationView, _ id: NodeID, _ topicPartition: TopicPartition) -> PartitionReplica? {
    guard view.status(of: id) == .running else { return nil }
    return brokerPart(of: view.node(id))?.dataPlane.replica(for: topicPartition)
}
