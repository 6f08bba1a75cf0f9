import Raft
import SimWorld
import Simulator
import TernCore

/// A few `RaftCore`s wired together by an in-memory network and in-memory storage, driven one
/// command at a time by transcript tests. Storage is synchronous here (a Ready is persisted the
/// moment it is handled), so these tests are about the protocol; `DiskCluster` covers disks.
///
/// Each node has its own clock, moved only by `tick`, as etcd's interaction tests count ticks per
/// node. The network is one FIFO queue; partitions drop messages when they are delivered.
final class CoreCluster: TranscriptCluster {
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
    var partitionGroups: [[NodeID]] = []
    var output: [String] = []
    let safety = TranscriptSafety()
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
            member.core.advance(ready, now: member.now)
            members[slot(id)] = member
            reportStatusChange(id)
        }
        return any
    }

    func receive(_ message: RaftMessage) {
        mutate(message.to) { core, now in try? core.step(.receive(message), now: now) }
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
        output += safety.observe(observation(id))
    }

    // MARK: Output

    func status(_ id: NodeID) -> String { transcriptStatus(of: core(id)) }
    func logDescription(_ id: NodeID) -> String { transcriptLog(of: core(id)) }
    func appliedDescription(_ id: NodeID) -> String { transcriptApplied(members[slot(id)].applied, of: id) }

    func observations() -> [RaftSafetyChecker.Observation] { voters.map(observation) }

    private func observation(_ id: NodeID) -> RaftSafetyChecker.Observation {
        TranscriptSafety.observation(of: core(id), incarnation: members[slot(id)].restarts + 1)
    }

    private func mutate(_ id: NodeID, _ change: (inout RaftCore, Instant) -> Void) {
        let now = members[slot(id)].now
        change(&members[slot(id)].core, now)
        reportStatusChange(id)
    }

    /// Prints the node's status if it changed, then checks its state.
    private func reportStatusChange(_ id: NodeID) {
        let current = status(id)
        if current != members[slot(id)].lastStatus {
            members[slot(id)].lastStatus = current
            output.append("  \(id): \(current)")
        }
        output += safety.observe(observation(id))
    }
}
