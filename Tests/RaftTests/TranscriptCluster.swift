import Raft
import SimWorld
import Simulator
import TernCore

/// What a transcript drives: `RaftCore`s on in-memory storage (`CoreCluster`, which persists a
/// Ready the moment it is handled) or `RaftNode`s on simulated disks (`DiskCluster`, where the
/// transcript decides when a sync completes and when the power goes). Both share one FIFO
/// network whose partitions drop messages when they are delivered.
protocol TranscriptCluster: AnyObject {
    var voters: [NodeID] { get }
    var output: [String] { get set }
    var queue: [RaftMessage] { get set }
    /// Node ids grouped by partition side; empty means fully connected.
    var partitionGroups: [[NodeID]] { get set }
    var safety: TranscriptSafety { get }

    func tick(_ id: NodeID, count: Int)
    func propose(_ id: NodeID, _ payload: String)
    func transfer(from id: NodeID, to target: NodeID)
    /// Hands one message to its destination.
    func receive(_ message: RaftMessage)
    /// Moves everything along until nothing moves (bounded: a livelock is a failure).
    func stabilize()
    func crash(_ id: NodeID)
    func status(_ id: NodeID) -> String
    func logDescription(_ id: NodeID) -> String
    func appliedDescription(_ id: NodeID) -> String
    /// The Raft state of every running node, for the safety checks.
    func observations() -> [RaftSafetyChecker.Observation]
}

extension TranscriptCluster {
    /// Delivers the messages queued now (not those their delivery produces), in order.
    @discardableResult
    func deliver(filter: (RaftMessage) -> Bool = { _ in true }) -> Bool {
        let batch = queue.filter(filter)
        queue = queue.filter { !filter($0) }
        for message in batch {
            guard connected(message.from, message.to) else {
                output.append("dropped \(message)")
                continue
            }
            output.append(message.description)
            receive(message)
        }
        return !batch.isEmpty
    }

    func drop(from: NodeID?, to: NodeID?) {
        let before = queue.count
        queue.removeAll { (from == nil || $0.from == from) && (to == nil || $0.to == to) }
        output.append("dropped \(before - queue.count) messages")
    }

    func partition(_ groups: [[NodeID]]) { partitionGroups = groups }
    func heal() { partitionGroups = [] }

    func connected(_ a: NodeID, _ b: NodeID) -> Bool {
        guard !partitionGroups.isEmpty else { return true }
        return partitionGroups.contains { $0.contains(a) && $0.contains(b) }
    }

    /// Log matching over every pair of logs; run after each transcript command.
    func checkLogMatching() {
        output += safety.report(safety.checker.checkLogMatching(observations()))
    }
}

/// The simulator's `RaftSafetyChecker` watching a transcript: every node's state after every
/// step (election safety, committed entries never change, leader completeness) and every pair of
/// logs after every command (log matching). A violation becomes an output line starting with
/// `VIOLATION`, which fails the transcript whatever its expected output says.
final class TranscriptSafety {
    static let prefix = "VIOLATION"
    let checker = RaftSafetyChecker()
    private var reported: Set<String> = []

    func observe(_ observation: RaftSafetyChecker.Observation) -> [String] {
        report(checker.check(observation))
    }

    /// Each violation once: a broken invariant stays broken for every later step.
    func report(_ result: CheckResult) -> [String] {
        guard case let .violation(reason) = result else { return [] }
        return report(reason)
    }

    func report(_ reason: String) -> [String] {
        guard reported.insert(reason).inserted else { return [] }
        return ["\(Self.prefix): \(reason)"]
    }

    static func observation(of core: RaftCore, incarnation: Int) -> RaftSafetyChecker.Observation {
        RaftSafetyChecker.Observation(node: core.nodeID, incarnation: incarnation, term: core.term, isLeader: core.isLeader,
                                      commitIndex: core.commitIndex, entries: core.entries)
    }
}

/// The status line both clusters print for a node.
func transcriptStatus(of core: RaftCore) -> String {
    let leader = core.leaderID.map { "\($0)" } ?? "none"
    let vote = core.votedFor.map { "\($0)" } ?? "none"
    return "\(core.role) term=\(core.term) vote=\(vote) leader=\(leader) last=\(core.lastIndex) commit=\(core.commitIndex)"
}

func transcriptLog(of core: RaftCore) -> String {
    let terms = core.entries.map { "\($0.term)" }.joined(separator: " ")
    return "\(core.nodeID): log terms [\(terms)] commit=\(core.commitIndex)"
}

func transcriptApplied(_ entries: [RaftLogEntry], of id: NodeID) -> String {
    let applied = entries.filter { $0.kind == .command }
        .map { "\($0.index)@\($0.term):\(String(decoding: $0.payload, as: UTF8.self))" }
    return "\(id): applied [\(applied.joined(separator: " "))]"
}
