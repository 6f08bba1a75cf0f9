import Controller
import Raft
import SimWorld
import TernCore

/// Raft's safety properties, watched from outside the nodes:
/// - election safety: at most one leader per term;
/// - committed entries never change, on any node, across restarts;
/// - leader completeness: a node that becomes leader of a term holds every entry committed in an
///   earlier term. Only earlier: a candidate that was paused with a vote grant in flight can
///   still win an old term after a later term committed entries it lacks; it can commit nothing
///   (a quorum has moved on) and steps down at the first message of the later term;
/// - log matching: two logs with an entry of the same index and term agree up to it.
public final class RaftSafetyChecker: SimulationChecker {
    public let name = "raft"
    private(set) var leaderOfTerm: [Term: NodeID] = [:]
    /// Terms in which a leader was seen: the elections of the run.
    public var leaderTermCount: Int { leaderOfTerm.count }
    /// Entry `i` (1-based) of the committed log at `committed[i - 1]`.
    public private(set) var committed: [RaftLogEntry] = []
    /// `committedByTerm[i - 1]`: the lowest term in which a node was seen holding entry `i` as
    /// committed. The entry was committed in that term or an earlier one (a node learns of a
    /// commit from the leader that made it, or from a later one), so every leader of a later
    /// term must hold it.
    private var committedByTerm: [Term] = []
    private var checkedCommitIndex: [NodeID: (incarnation: Int, index: LogIndex)] = [:]
    private var leaderTermSeen: [NodeID: Term] = [:]

    public init() {}

    /// One node's Raft state after an event.
    public struct Observation {
        public var node: NodeID
        public var incarnation: Int
        public var term: Term
        public var isLeader: Bool
        public var commitIndex: LogIndex
        public var entries: [RaftLogEntry]

        public init(node: NodeID, incarnation: Int, term: Term, isLeader: Bool, commitIndex: LogIndex, entries: [RaftLogEntry]) {
            self.node = node
            self.incarnation = incarnation
            self.term = term
            self.isLeader = isLeader
            self.commitIndex = commitIndex
            self.entries = entries
        }
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        guard let observation = Self.observe(delivered.nodeID, in: simulation) else { return .ok }
        return check(observation)
    }

    /// Log matching compares whole logs pairwise, so it runs every tenth period (once a second by
    /// default) and at the end: a violation stays visible until then, and finding it later costs
    /// nothing but time.
    public func periodically(in simulation: SimulationView) -> CheckResult {
        periodsSinceLogMatching += 1
        guard periodsSinceLogMatching >= Self.periodsPerLogMatching else { return .ok }
        periodsSinceLogMatching = 0
        return checkLogMatching(simulation.nodeIDs.compactMap { Self.observe($0, in: simulation) })
    }

    public func atEnd(of simulation: SimulationView) -> CheckResult {
        checkLogMatching(simulation.nodeIDs.compactMap { Self.observe($0, in: simulation) })
    }

    static let periodsPerLogMatching = 10
    private var periodsSinceLogMatching = 0

    static func observe(_ node: NodeID, in simulation: SimulationView) -> Observation? {
        guard let controller = controllerPart(of: simulation.node(node)), let core = controller.raft.core else { return nil }
        return Observation(node: node, incarnation: simulation.incarnation(of: node), term: core.term, isLeader: core.isLeader,
                           commitIndex: core.commitIndex, entries: core.entries)
    }

    /// Election safety, commit stability and leader completeness for one observation.
    public func check(_ observation: Observation) -> CheckResult {
        if observation.isLeader {
            if let other = leaderOfTerm[observation.term], other != observation.node {
                return .violation("two leaders in term \(observation.term): n\(other) and n\(observation.node)")
            }
            leaderOfTerm[observation.term] = observation.node
            if leaderTermSeen[observation.node] != observation.term {
                leaderTermSeen[observation.node] = observation.term
                if case let .violation(reason) = checkCompleteness(observation) { return .violation(reason) }
            }
        }
        return checkCommitted(observation)
    }

    private func checkCompleteness(_ observation: Observation) -> CheckResult {
        for (position, known) in committed.enumerated() where committedByTerm[position] < observation.term {
            guard let held = Self.entry(at: known.index, in: observation.entries), held == known else {
                return .violation("n\(observation.node) leads term \(observation.term) without entry \(known.index) (term \(known.term)), "
                                  + "committed by term \(committedByTerm[position])")
            }
        }
        return .ok
    }

    private func checkCommitted(_ observation: Observation) -> CheckResult {
        var from = LogIndex(1)
        if let checked = checkedCommitIndex[observation.node], checked.incarnation == observation.incarnation {
            from = checked.index.next
        }
        guard from <= observation.commitIndex else { return .ok }
        for index in from.rawValue...observation.commitIndex.rawValue {
            guard let held = Self.entry(at: LogIndex(index), in: observation.entries) else {
                return .violation("n\(observation.node) says \(index) is committed but does not hold it")
            }
            if index <= Int64(committed.count) {
                let position = Int(index - 1)
                let known = committed[position]
                guard known == held else {
                    return .violation("committed entry \(index) changed on n\(observation.node): was term \(known.term), now term \(held.term)")
                }
                committedByTerm[position] = min(committedByTerm[position], observation.term)
            } else {
                precondition(index == Int64(committed.count) + 1, "commit indices are checked in order")
                committed.append(held)
                committedByTerm.append(observation.term)
            }
        }
        checkedCommitIndex[observation.node] = (observation.incarnation, observation.commitIndex)
        return .ok
    }

    /// Log matching over every pair of logs.
    public func checkLogMatching(_ observations: [Observation]) -> CheckResult {
        for (position, left) in observations.enumerated() {
            for right in observations[(position + 1)...] {
                if case let .violation(reason) = Self.compare(left, right) { return .violation(reason) }
            }
        }
        return .ok
    }

    private static func compare(_ left: Observation, _ right: Observation) -> CheckResult {
        let shared = min(left.entries.last?.index.rawValue ?? 0, right.entries.last?.index.rawValue ?? 0)
        var matchedAt: Int64 = 0
        var index = shared
        while index >= 1 {
            if let a = entry(at: LogIndex(index), in: left.entries), let b = entry(at: LogIndex(index), in: right.entries),
               a.term == b.term {
                matchedAt = index
                break
            }
            index -= 1
        }
        guard matchedAt > 0 else { return .ok }
        for index in 1...matchedAt {
            let a = entry(at: LogIndex(index), in: left.entries)
            let b = entry(at: LogIndex(index), in: right.entries)
            guard a == b else {
                return .violation("log matching: n\(left.node) and n\(right.node) agree at \(matchedAt) (term \(left.entries.last?.term ?? .zero)) but differ at \(index)")
            }
        }
        return .ok
    }

    /// Entries are dense from index 1 (no snapshots), so the position is the index.
    private static func entry(at index: LogIndex, in entries: [RaftLogEntry]) -> RaftLogEntry? {
        guard let first = entries.first?.index else { return nil }
        let position = Int(first.distance(to: index))
        guard position >= 0, position < entries.count else { return nil }
        precondition(entries[position].index == index, "Raft entries are dense")
        return entries[position]
    }
}
