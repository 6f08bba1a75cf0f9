import Broker
import Controller
import KafkaProtocol
import LogStorage
import SimWorld
import TernCore

/// Retention deletes only what it may. After every broker event, for each replica of a retained
/// workload topic, a log start that moved forward within one hosting is judged:
/// - never past the replica's high watermark;
/// - on a leader, the move is retention's: with `retention.bytes`, the log left is still at
///   least that large; with `retention.ms`, every committed batch it removed had a max timestamp
///   older than the leader's wall clock minus `retention.ms` (the batches are known from a ledger
///   of committed batches the checker keeps per partition, read from any replica before they go);
/// - on a follower, it never passes the furthest log start a leader of the partition moved to:
///   followers only follow.
/// A restarted replica's recovered log start is a new baseline, not a move. Together with the
/// acknowledged-writes and consumed-records checkers, which let acknowledged records of retained
/// topics be missing only below the leader's log start, this makes every deleted record one that
/// retention was allowed to delete.
public final class RetentionChecker: SimulationChecker {
    public let name = "retention"
    private let rules: [String: TopicRetention]
    private var seen: [NodeID: [TopicPartition: SeenLogStart]] = [:]
    private var ledgers: [TopicPartition: Ledger] = [:]
    /// Log start moves judged, on leaders and on followers: a run that judged none proved nothing.
    public private(set) var leaderMoves = 0
    public private(set) var followerMoves = 0

    private struct SeenLogStart {
        let hosting: ObjectIdentifier
        var logStart: Offset
        var wasLeader: Bool
    }

    /// Committed batches of one topic incarnation's partition, contiguous from `start` to `end`.
    private struct Ledger {
        let topicID: TopicID
        let start: Offset
        var end: Offset
        var batches: [(baseOffset: Offset, lastOffset: Offset, maxTimestamp: Int64)] = []
        /// The furthest log start a leader moved to.
        var leaderLogStart: Offset
    }

    public init(layout: ClusterLayout) {
        rules = layout.retainedTopics
    }

    /// The furthest log start a leader of the partition's current incarnation moved to: a
    /// consumer reset by OFFSET_OUT_OF_RANGE may have skipped anything below it.
    public func furthestLeaderLogStart(of topicPartition: TopicPartition) -> Offset? {
        ledgers[topicPartition]?.leaderLogStart
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        let node = delivered.nodeID
        guard !rules.isEmpty, simulation.roles(of: node).contains(.broker) else { return .ok }
        guard let dataPlane = brokerPart(of: simulation.node(node))?.dataPlane else {
            seen[node] = nil
            return .ok
        }
        for hosted in dataPlane.hostedInOrder {
            guard let rule = rules[hosted.topicPartition.topic] else { continue }
            let topicPartition = hosted.topicPartition
            let log = hosted.replica.log
            if ledgers[topicPartition]?.topicID != hosted.topicID {
                ledgers[topicPartition] = Ledger(topicID: hosted.topicID, start: log.logStartOffset, end: log.logStartOffset,
                                                 leaderLogStart: log.logStartOffset)
            }
            Self.extend(&ledgers[topicPartition]!, from: log)
            let hosting = ObjectIdentifier(hosted)
            let previous = seen[node]?[topicPartition]
            seen[node, default: [:]][topicPartition] = SeenLogStart(hosting: hosting, logStart: log.logStartOffset,
                                                                     wasLeader: hosted.replica.isLeader)
            guard let previous, previous.hosting == hosting, log.logStartOffset > previous.logStart else { continue }
            let move = previous.logStart..<log.logStartOffset
            let place = "\(topicPartition) on n\(node): log start moved \(move.lowerBound) -> \(move.upperBound)"
            if move.upperBound > log.highWatermark {
                return .violation("\(place), past the high watermark \(log.highWatermark)")
            }
            // A replica that led before the event may have run retention in it and then followed
            // (one event can hold a tick and an image): either rule may explain its move.
            let furthest = ledgers[topicPartition]!.leaderLogStart
            let followerProblem = move.upperBound > furthest
                ? "past the furthest log start any leader moved to (\(furthest))" : nil
            if hosted.replica.isLeader || previous.wasLeader {
                if let problem = leaderMoveProblem(move, of: hosted, rule: rule, wallClock: dataPlane.wallClock, in: simulation) {
                    guard !hosted.replica.isLeader, followerProblem == nil else {
                        return .violation("\(place) as leader: \(problem)")
                    }
                    followerMoves += 1
                    continue
                }
                ledgers[topicPartition]!.leaderLogStart = max(furthest, move.upperBound)
                leaderMoves += 1
            } else {
                if let followerProblem { return .violation("\(place) as a follower, \(followerProblem)") }
                followerMoves += 1
            }
        }
        return .ok
    }

    /// Why retention could not have made this move, or nil.
    private func leaderMoveProblem(_ move: Range<Offset>, of hosted: HostedPartition, rule: TopicRetention, wallClock: Instant,
                                   in simulation: SimulationView) -> String? {
        let log = hosted.replica.log
        if rule.retentionBytes >= 0, log.sizeInBytes >= rule.retentionBytes { return nil }
        guard rule.retentionMilliseconds >= 0 else {
            return "only \(log.sizeInBytes) bytes are left, under retention.bytes \(rule.retentionBytes)"
        }
        var ledger = ledgers[hosted.topicPartition]!
        if ledger.end < move.upperBound {
            // Committed and deleted in one event: another replica may still hold the batches.
            for broker in simulation.nodeIDs where simulation.roles(of: broker).contains(.broker) {
                guard let dataPlane = brokerPart(of: simulation.node(broker))?.dataPlane,
                      dataPlane.topicID(of: hosted.topicPartition) == ledger.topicID,
                      let other = dataPlane.replica(for: hosted.topicPartition) else { continue }
                Self.extend(&ledger, from: other.log)
            }
            ledgers[hosted.topicPartition] = ledger
        }
        guard ledger.start <= move.lowerBound, ledger.end >= move.upperBound else {
            return "no replica holds the committed batches it removed (known \(ledger.start)..<\(ledger.end))"
        }
        let limit = wallClock.milliseconds - rule.retentionMilliseconds
        for batch in ledger.batches where batch.lastOffset >= move.lowerBound && batch.baseOffset < move.upperBound {
            if batch.maxTimestamp >= limit {
                return "the batch \(batch.baseOffset)...\(batch.lastOffset) has max timestamp \(batch.maxTimestamp), not older than "
                    + "retention.ms \(rule.retentionMilliseconds) before the broker's wall clock \(wallClock.milliseconds)"
                    + (rule.retentionBytes >= 0 ? ", and \(log.sizeInBytes) bytes are left, under retention.bytes \(rule.retentionBytes)" : "")
            }
        }
        return nil
    }

    /// Adds the committed batches of `log` past the ledger's end (if the log still holds them).
    private static func extend(_ ledger: inout Ledger, from log: PartitionLog) {
        var offset = ledger.end
        guard offset >= log.logStartOffset else { return }
        while offset < log.highWatermark {
            guard let read = try? log.read(from: offset, maxBytes: 1 << 20), read.batchCount > 0 else { return }
            var position = 0
            while position < read.bytes.count, let header = try? RecordBatchHeader.read(read.bytes, at: position) {
                position += header.totalSize
                let last = Offset(header.lastOffset)
                guard last >= ledger.end else { continue }
                guard last < log.highWatermark else { return }
                ledger.batches.append((Offset(header.baseOffset), last, header.maxTimestamp))
                ledger.end = last + 1
            }
            guard read.nextOffset > offset else { return }
            offset = read.nextOffset
        }
    }
}
