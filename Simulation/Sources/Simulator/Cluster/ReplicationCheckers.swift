import Broker
import Controller
import KafkaProtocol
import LogStorage
import SimWorld
import TernCore

/// What the current leader of one partition holds, as the replication checker sees it.
public struct LeaderLogSnapshot: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        public var offset: Offset
        public var key: [UInt8]?
        public var value: [UInt8]?
        public init(offset: Offset, key: [UInt8]?, value: [UInt8]?) {
            self.offset = offset
            self.key = key
            self.value = value
        }
    }

    public var leader: NodeID
    public var highWatermark: Offset
    public var logStartOffset: Offset
    /// Every non-control record from the log start to the log end offset, in offset order.
    public var entries: [Entry]

    public init(leader: NodeID, highWatermark: Offset, logStartOffset: Offset = Offset(0), entries: [Entry]) {
        self.leader = leader
        self.highWatermark = highWatermark
        self.logStartOffset = logStartOffset
        self.entries = entries
    }
}

extension LeaderLogSnapshot {
    /// The log of every partition's current leader in the active controller's committed image,
    /// for partitions whose leader is running and leads it (others are left out).
    static func currentLeaders(in simulation: SimulationView, layout: ClusterLayout)
        -> Result<[TopicPartition: LeaderLogSnapshot], AcknowledgedWritesChecker.ReadFailure> {
        guard let active = activeController(simulation, layout: layout) else {
            return .failure(.init(description: "no active controller at the end of the run"))
        }
        var snapshots: [TopicPartition: LeaderLogSnapshot] = [:]
        for partition in active.committedImage.partitions {
            let topicPartition = partition.topicPartition
            guard let leader = partition.registration.leader, let replica = runningReplica(simulation, leader, topicPartition),
                  replica.isLeader else { continue }
            switch AcknowledgedWritesChecker.snapshot(of: replica.log, leader: leader) {
            case let .success(snapshot): snapshots[topicPartition] = snapshot
            case let .failure(failure):
                // Rot the leader's checksums catch but no read has met yet: the first read would,
                // and leadership would move to an intact ISR member (offline replica report). Use
                // that member instead; with none intact the data is lost.
                guard failure.isCorruption,
                      let intact = AcknowledgedWritesChecker.intactSnapshot(
                          partition.registration.isr.filter { $0 != leader }, topicPartition,
                          highWatermark: replica.highWatermark, simulation) else {
                    return .failure(.init(description: "\(topicPartition) on leader n\(leader): \(failure)"))
                }
                snapshots[topicPartition] = intact
            }
        }
        return .success(snapshots)
    }
}

/// Acknowledged writes survive and the producer's order holds, checked once at the end of a run
/// (after the liveness phase converged: a leader everywhere and no produce unfinished):
/// - every record acknowledged with `.written(offset)` is in its partition's current leader's log
///   at that offset, with the acknowledged value, below the leader's high watermark;
/// - per partition, the producer's values appear in the leader's log in strictly increasing order,
///   none twice (idempotence: retries are deduplicated; no reordering).
public final class AcknowledgedWritesChecker: SimulationChecker {
    public let name = "acknowledged-writes"
    public private(set) var acknowledgedCount = 0
    public private(set) var checkedPartitions = 0
    private let layout: ClusterLayout

    public init(layout: ClusterLayout) {
        self.layout = layout
    }

    /// Keeps the count current for runs another checker stops before the end.
    public func periodically(in simulation: SimulationView) -> CheckResult {
        if let client = simulation.node(ClusterLayout.producerClientID, as: ProducerClientNode.self) {
            acknowledgedCount = client.acknowledged.count
        }
        return .ok
    }

    public func atEnd(of simulation: SimulationView) -> CheckResult {
        guard let client = simulation.node(ClusterLayout.producerClientID, as: ProducerClientNode.self) else {
            return .violation("the producer client is not running at the end of the run")
        }
        acknowledgedCount = client.acknowledged.count
        let snapshots: [TopicPartition: LeaderLogSnapshot]
        switch LeaderLogSnapshot.currentLeaders(in: simulation, layout: layout) {
        case let .success(found): snapshots = found
        case let .failure(failure): return .violation(failure.description)
        }
        checkedPartitions = snapshots.count
        // Before convergence a new leader's high watermark may still lag its log (it catches up
        // once the ISR has fetched): presence, value and order are checked, the HW bound is left
        // to the liveness check (which fails the run anyway).
        let converged = ClusterSimulation.isConverged(simulation, layout: layout)
        return Self.check(acknowledged: client.acknowledged, leaderLogs: snapshots, requireBelowHighWatermark: converged,
                          retainedTopics: Set(layout.retainedTopics.keys))
    }

    struct ReadFailure: Error, CustomStringConvertible {
        let description: String
        var isCorruption = false
    }

    /// The first running member of `members` whose log reads cleanly, judged against the leader's HW.
    static func intactSnapshot(_ members: [NodeID], _ topicPartition: TopicPartition, highWatermark: Offset,
                               _ simulation: SimulationView) -> LeaderLogSnapshot? {
        for member in members {
            guard let replica = runningReplica(simulation, member, topicPartition),
                  case var .success(snapshot) = snapshot(of: replica.log, leader: member) else { continue }
            snapshot.highWatermark = highWatermark
            return snapshot
        }
        return nil
    }

    /// Reads a whole log (small in simulations) into a snapshot.
    static func snapshot(of log: PartitionLog, leader: NodeID) -> Result<LeaderLogSnapshot, ReadFailure> {
        var entries: [LeaderLogSnapshot.Entry] = []
        var offset = log.logStartOffset
        while offset < log.logEndOffset {
            let result: LogReadResult
            do { result = try log.read(from: offset, maxBytes: 1 << 20) } catch {
                var isCorruption = false
                if case .corrupt = error { isCorruption = true }
                return .failure(ReadFailure(description: "reading from \(offset) failed: \(error)", isCorruption: isCorruption))
            }
            guard result.batchCount > 0, result.nextOffset > offset else { break }
            var position = 0
            do throws(RecordBatchError) {
                while position < result.bytes.count {
                    let batch = try RecordBatch(result.bytes, at: position)
                    position += batch.header.totalSize
                    if batch.attributes.isControl { continue }
                    let base = batch.header.baseOffset
                    for record in try batch.records() {
                        let recordOffset = Offset(base + Int64(record.offsetDelta))
                        if recordOffset < offset { continue }
                        entries.append(.init(offset: recordOffset, key: record.key, value: record.value))
                    }
                }
            } catch {
                return .failure(ReadFailure(description: "batch at byte \(position) of the read from \(offset) is unreadable: \(error)"))
            }
            offset = result.nextOffset
        }
        return .success(LeaderLogSnapshot(leader: leader, highWatermark: log.highWatermark,
                                          logStartOffset: log.logStartOffset, entries: entries))
    }

    /// The pure core: acknowledged writes against the leaders' logs.
    /// Records of `retainedTopics` below the leader's log start were deleted by retention, which
    /// the retention checker judges.
    public static func check(acknowledged: [AcknowledgedWrite], leaderLogs: [TopicPartition: LeaderLogSnapshot],
                             requireBelowHighWatermark: Bool = true, retainedTopics: Set<String> = []) -> CheckResult {
        var byOffset: [TopicPartition: [Offset: LeaderLogSnapshot.Entry]] = [:]
        for (topicPartition, snapshot) in leaderLogs {
            var map: [Offset: LeaderLogSnapshot.Entry] = [:]
            for entry in snapshot.entries { map[entry.offset] = entry }
            byOffset[topicPartition] = map
        }
        for write in acknowledged {
            let where_ = "\(write.topicPartition): value \(write.value) acknowledged at offset \(write.offset)"
            guard let snapshot = leaderLogs[write.topicPartition] else {
                return .violation("\(where_), but the partition has no readable leader at the end of the run")
            }
            if write.offset == .unknown {
                // Acknowledged as a duplicate without an offset: the value must be somewhere
                // committed (unless retention may have deleted it).
                guard retainedTopics.contains(write.topicPartition.topic) || snapshot.entries.contains(where: {
                    (!requireBelowHighWatermark || $0.offset < snapshot.highWatermark) && ProducerClientNode.sequenceNumber(of: $0.value) == write.value
                }) else {
                    return .violation("\(where_): leader n\(snapshot.leader) holds no committed record with that value (HW \(snapshot.highWatermark))")
                }
                continue
            }
            // Presence first, so that data loss is named as such (in a converged cluster a lost
            // tail also leaves the offset at or above the high watermark).
            if write.offset < snapshot.logStartOffset, retainedTopics.contains(write.topicPartition.topic) { continue }
            guard write.offset >= snapshot.logStartOffset else {
                return .violation("\(where_), but leader n\(snapshot.leader)'s log starts at \(snapshot.logStartOffset)")
            }
            guard let entry = byOffset[write.topicPartition]?[write.offset] else {
                return .violation("\(where_): lost write, leader n\(snapshot.leader) has no record at that offset (its log holds offsets \(snapshot.logStartOffset)..<\((snapshot.entries.last?.offset).map { $0 + 1 } ?? snapshot.logStartOffset), HW \(snapshot.highWatermark))")
            }
            let found = ProducerClientNode.sequenceNumber(of: entry.value)
            guard found == write.value else {
                return .violation("\(where_): lost write, leader n\(snapshot.leader) has value \(found.map(String.init) ?? "\(String(describing: entry.value))") there")
            }
            guard !requireBelowHighWatermark || write.offset < snapshot.highWatermark else {
                return .violation("\(where_), but leader n\(snapshot.leader)'s high watermark is \(snapshot.highWatermark)")
            }
        }
        // Retained topics are at least once: see `ClusterLayout.retainedTopics`.
        for topicPartition in leaderLogs.keys.sorted() where !retainedTopics.contains(topicPartition.topic) {
            let snapshot = leaderLogs[topicPartition]!
            var last: (value: UInt64, offset: Offset)?
            for entry in snapshot.entries {
                guard let value = ProducerClientNode.sequenceNumber(of: entry.value) else { continue }
                if let last, value <= last.value {
                    let kind = value == last.value ? "a duplicate of" : "out of order after"
                    let committed = entry.offset < snapshot.highWatermark ? "committed" : "uncommitted (HW \(snapshot.highWatermark))"
                    return .violation("\(topicPartition) on leader n\(snapshot.leader): value \(value) at offset \(entry.offset) (\(committed)) is \(kind) value \(last.value) at offset \(last.offset)")
                }
                last = (value, entry.offset)
            }
        }
        return .ok
    }
}
