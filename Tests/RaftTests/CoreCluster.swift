import Raft
import TernCore

/// A few `RaftCore`s wired together by an in-memory network and in-memory storage, driven one
/// command at a time by transcript tests. Storage is synchronous here (a Ready is persisted the
/// moment it is handled), so these tests are about the protocol; `RaftNode` tests cover disks.
///
/// Each node has its own clock, moved only by `tick`, as etcd's interaction tests count ticks per
/// node. The network is one FIFO queue; partitions drop messages when they are delivered.
final class CoreCluster {
    struct Storage {
        var hardState = RaftHardState.initial
        var entries: [RaftLogEntry] = []
    }

    struct Member {
        var core: RaftCore
        var now: Instant
        var storage = Storage()
        var applied: [RaftLogEntry] = []
        var restarts = 0
        var lastStatus = ""
    }

    let voters: [NodeID]
    let seed: UInt64
    var members: [Member] = []
    var queue: [RaftMessage] = []
    /// Node ids grouped by partition side; empty means fully connected.
    var partitionGroups: [[NodeID]] = []
    var output: [String] = []
    var configure: (inout RaftConfiguration) -> Void

    static let tickLength = Duration.milliseconds(100)

    init(nodeCount: Int, seed: UInt64 = 1, configure: @escaping (inout RaftConfiguration) -> Void = { _ in }) {
        self.voters = (1...nodeCount).map { NodeID(Int32($0)) }
        self.seed = seed
        self.configure = configure
        for id in voters {
            members.append(Member(core: makeCore(id, storage: Storage(), restarts: 0, now: .zero), now: .zero))
        }
        for id in voters { members[slot(id)].lastStatus = status(id) }
    }

    func makeCore(_ id: NodeID, storage: Storage, restarts: Int, now: Instant) -> RaftCore {
        var configuration = RaftConfiguration(nodeID: id, voters: voters)
        configuration.electionTimeout = .seconds(1)
        configuration.heartbeatInterval = CoreCluster.tickLength
        configure(&configuration)
        let random = DeterministicRandom(seed: seed).stream("raft-\(id)", restarts)
        return RaftCore(configuration: configuration, hardState: storage.hardState, entries: storage.entries,
                        random: random, now: now)
    }

    func slot(_ id: NodeID) -> Int { Int(id.rawValue) - 1 }
    func core(_ id: NodeID) -> RaftCore { members[slot(id)].core }

    // MARK: Commands

    func campaign(_ id: NodeID) {
        mutate(id) { core, now in try? core.step(.campaign, now: now) }
    }

    func propose(_ id: NodeID, _ payload: String) {
        var outcome = ""
        mutate(id) { core, now in
            do { outcome = "proposed at \(try core.propose(Array(payload.utf8), now: now))" }
            catch { outcome = "refused: \(error)" }
        }
        output.append("\(id): \(outcome)")
    }

    func transfer(from id: NodeID, to target: NodeID) {
        var outcome = "transfer to \(target) started"
        mutate(id) { core, now in
            do { try core.step(.transferLeadership(to: target), now: now) } catch { outcome = "refused: \(error)" }
        }
        output.append("\(id): \(outcome)")
    }

    /// `count` ticks of `tickLength` on node `id`.
    func tick(_ id: NodeID, count: Int) {
        for _ in 0..<count {
            members[slot(id)].now += CoreCluster.tickLength
            mutate(id) { core, now in core.tick(now: now) }
        }
    }

    /// Persists and hands out every node's Ready once; returns whether any node had one.
    @discardableResult
    func processReady(_ ids: [NodeID]? = nil) -> Bool {
        var any = false
        for id in ids ?? voters {
            var member = members[slot(id)]
            guard member.core.hasReady() else { continue }
            any = true
            let ready = member.core.ready()
            if let hardState = ready.hardState { member.storage.hardState = hardState }
            if let first = ready.firstEntryIndex {
                member.storage.entries.removeSubrange(Int(first.rawValue - 1)...)
                member.storage.entries += ready.entries
            }
            queue += ready.messages
            member.applied += ready.committedEntries
            member.core.advance(ready)
            members[slot(id)] = member
            reportStatusChange(id)
        }
        return any
    }

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
            mutate(message.to) { core, now in try? core.step(.receive(message), now: now) }
        }
        return !batch.isEmpty
    }

    /// Ready and deliver until nothing moves (bounded: a livelock is a failure).
    func stabilize() {
        for _ in 0..<1_000 {
            let readied = processReady()
            let delivered = deliver()
            if !readied && !delivered { return }
        }
        output.append("did not stabilize within 1000 rounds")
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

    /// The node loses everything not persisted (its core, queued messages to it) and restarts.
    func crash(_ id: NodeID) {
        var member = members[slot(id)]
        member.restarts += 1
        member.core = makeCore(id, storage: member.storage, restarts: member.restarts, now: member.now)
        member.applied = []
        members[slot(id)] = member
        queue.removeAll { $0.to == id }
        output.append("\(id) restarted: \(status(id))")
        members[slot(id)].lastStatus = status(id)
    }

    // MARK: Output

    func status(_ id: NodeID) -> String {
        let core = core(id)
        let leader = core.leaderID.map { "\($0)" } ?? "none"
        let vote = core.votedFor.map { "\($0)" } ?? "none"
        return "\(core.role) term=\(core.term) vote=\(vote) leader=\(leader) last=\(core.lastIndex) commit=\(core.commitIndex)"
    }

    func logDescription(_ id: NodeID) -> String {
        let terms = core(id).entries.map { "\($0.term)" }.joined(separator: " ")
        return "\(id): log terms [\(terms)] commit=\(core(id).commitIndex)"
    }

    func appliedDescription(_ id: NodeID) -> String {
        let applied = members[slot(id)].applied.filter { $0.kind == .command }
            .map { "\($0.index)@\($0.term):\(String(decoding: $0.payload, as: UTF8.self))" }
        return "\(id): applied [\(applied.joined(separator: " "))]"
    }

    private func mutate(_ id: NodeID, _ change: (inout RaftCore, Instant) -> Void) {
        let now = members[slot(id)].now
        change(&members[slot(id)].core, now)
        reportStatusChange(id)
    }

    private func reportStatusChange(_ id: NodeID) {
        let current = status(id)
        if current != members[slot(id)].lastStatus {
            members[slot(id)].lastStatus = current
            output.append("  \(id): \(current)")
        }
    }
}
