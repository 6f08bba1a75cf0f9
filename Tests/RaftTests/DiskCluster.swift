import LogStorage
import NodeKit
import Raft
import SimWorld
import Simulator
import TernCore

/// `RaftNode`s on `SimDisk`s, driven one command at a time by transcript tests about durability.
/// A node writes through its disk; the writes become durable only when the transcript says
/// `sync`, and what the node sends leaves only once it has seen its Ready durable (RaftNode's
/// order persist → send). `power-loss` drops everything unsynced and restarts the node from what
/// is durable. Crashes restore exactly the durable state (no torn writes) so that transcripts stay
/// readable; `RandomizedClusterTests` covers adversarial crashes.
///
/// Each node has its own clock, moved only by `tick`; each disk has its own, moved only by
/// `sync`. Besides `TranscriptSafety`, every message a node sends is checked against its disk by
/// `RaftNodeSafetyChecker` (a granted vote is durable when it leaves; no node votes twice in a
/// term; an acknowledged entry is durable).
final class DiskCluster: TranscriptCluster {
    struct Host {
        let disk: SimDisk
        var node: RaftNode
        var now = Instant.zero
        var incarnation = 1
        var applied: [RaftLogEntry] = []
        var lastStatus = ""
    }

    let voters: [NodeID]
    let seed: UInt64
    var hosts: [Host] = []
    var queue: [RaftMessage] = []
    var partitionGroups: [[NodeID]] = []
    var output: [String] = []
    let safety = TranscriptSafety()
    private let sendChecker = RaftNodeSafetyChecker()
    private var sendFailuresReported = 0
    private let configure: (inout RaftConfiguration) -> Void

    static let tickLength = Duration.milliseconds(100)
    /// Sync completions handled per node per `sync`; each may start another write (the atomic
    /// hard-state file takes several steps), so a few rounds are normal and a thousand a bug.
    static let maximumCompletionRounds = 1_000

    /// Starts every node and lets its disk settle, so a transcript starts from durable empty state.
    init(nodeCount: Int, seed: UInt64 = 1, configure: @escaping (inout RaftConfiguration) -> Void = { _ in }) {
        self.voters = (1...nodeCount).map { NodeID(Int32($0)) }
        self.seed = seed
        self.configure = configure
        let root = DeterministicRandom(seed: seed)
        for id in voters {
            let disk = SimDisk(random: root.stream("disk", Int(id.rawValue)), configuration: .benignCrashes)
            hosts.append(Host(disk: disk, node: makeNode(id, disk: disk, incarnation: 1)))
        }
        for id in voters {
            handle(.start, at: id)
            _ = settle(id)
        }
        output = []
    }

    private func makeNode(_ id: NodeID, disk: SimDisk, incarnation: Int) -> RaftNode {
        var raft = RaftConfiguration(nodeID: id, voters: voters)
        raft.electionTimeout = .seconds(1)
        raft.heartbeatInterval = Self.tickLength
        configure(&raft)
        var configuration = RaftNode.Configuration(raft: raft)
        configuration.tickInterval = Self.tickLength
        let environment = NodeEnvironment(nodeID: id, disk: disk, dataDirectory: "/node\(id)",
                                          random: DeterministicRandom(seed: seed).stream("raft-\(id)", incarnation))
        return RaftNode(environment: environment, configuration: configuration)
    }

    func slot(_ id: NodeID) -> Int { Int(id.rawValue) - 1 }
    static func directory(_ id: NodeID) -> String { "/node\(id)/__cluster_metadata-0" }

    // MARK: Commands

    func tick(_ id: NodeID, count: Int) {
        for _ in 0..<count {
            hosts[slot(id)].now += Self.tickLength
            handle(.tick, at: id)
        }
    }

    func propose(_ id: NodeID, _ payload: String) {
        var effects: [NodeEffect] = []
        var outcome: String
        do {
            outcome = "proposed at \(try hosts[slot(id)].node.propose(Array(payload.utf8), now: hosts[slot(id)].now, effects: &effects))"
        } catch {
            outcome = "refused: \(error)"
        }
        afterStep(id, effects)
        output.append("\(id): \(outcome)")
    }

    func transfer(from id: NodeID, to target: NodeID) {
        var effects: [NodeEffect] = []
        var outcome = "transfer to \(target) started"
        do { try hosts[slot(id)].node.transferLeadership(to: target, now: hosts[slot(id)].now, effects: &effects) }
        catch { outcome = "refused: \(error)" }
        afterStep(id, effects)
        output.append("\(id): \(outcome)")
    }

    func receive(_ message: RaftMessage) {
        handle(.message(from: message.from, bytes: RaftMessageCodec.encode(message)), at: message.to)
    }

    /// Completes every write the node's disk has in flight, and every write those completions
    /// start, then says what is durable and how many messages that let go.
    func sync(_ id: NodeID) {
        let queuedBefore = queue.count
        guard settle(id) else {
            output.append("\(id) synced: nothing in flight")
            return
        }
        let released = queue.count - queuedBefore
        output.append("\(id) synced: durable \(durableHardState(id)), \(released) message\(released == 1 ? "" : "s") sent")
    }

    /// Syncs and delivers until nothing moves.
    func stabilize() {
        for _ in 0..<1_000 {
            var synced = false
            for id in voters where hosts[slot(id)].disk.nextCompletionTime != nil {
                sync(id)
                synced = true
            }
            let delivered = deliver()
            if !synced && !delivered { return }
        }
        output.append("did not stabilize within 1000 rounds")
    }

    /// The machine loses power: whatever the disk had not synced is gone, and so are messages
    /// on their way to the node. It restarts from what is durable.
    func powerLoss(_ id: NodeID) {
        hosts[slot(id)].disk.crash()
        restart(id, reason: "lost power")
    }

    /// The process dies; the page cache (unsynced writes) survives.
    func crash(_ id: NodeID) {
        hosts[slot(id)].disk.killProcess()
        restart(id, reason: "crashed")
    }

    private func restart(_ id: NodeID, reason: String) {
        var host = hosts[slot(id)]
        host.incarnation += 1
        host.node = makeNode(id, disk: host.disk, incarnation: host.incarnation)
        host.applied = []
        hosts[slot(id)] = host
        queue.removeAll { $0.to == id }
        handle(.start, at: id, reportingStatus: false)
        hosts[slot(id)].lastStatus = status(id)
        output.append("\(id) \(reason), restarted: \(status(id))")
    }

    // MARK: Output

    func status(_ id: NodeID) -> String {
        guard let core = hosts[slot(id)].node.core else { return "not running" }
        return transcriptStatus(of: core)
    }

    func logDescription(_ id: NodeID) -> String {
        guard let core = hosts[slot(id)].node.core else { return "\(id): not running" }
        return transcriptLog(of: core)
    }

    func appliedDescription(_ id: NodeID) -> String { transcriptApplied(hosts[slot(id)].applied, of: id) }

    func observations() -> [RaftSafetyChecker.Observation] {
        hosts.compactMap { host in host.node.core.map { TranscriptSafety.observation(of: $0, incarnation: host.incarnation) } }
    }

    /// The term and vote on the node's disk, read as a restart after power loss would read them.
    func durableHardState(_ id: NodeID) -> String {
        let path = Self.directory(id) + "/quorum-state"
        guard let bytes = hosts[slot(id)].disk.durableContents(of: path) else { return "nothing" }
        guard let state = try? HardStateDecoding.decode(bytes) else { return "an undecodable hard state" }
        return "\(state)"
    }

    // MARK: Events

    /// Completes the node's disk writes until none is in flight; returns whether there were any.
    private func settle(_ id: NodeID) -> Bool {
        let disk = hosts[slot(id)].disk
        var any = false
        for _ in 0..<Self.maximumCompletionRounds {
            guard let due = disk.nextCompletionTime else { return any }
            any = true
            disk.advance(to: due)
            var completions: [SyncCompletion] = []
            disk.pollCompletions(into: &completions)
            for completion in completions { handle(.syncCompleted(completion), at: id) }
        }
        preconditionFailure("node \(id)'s disk never settled")
    }

    private func handle(_ event: NodeEvent, at id: NodeID, reportingStatus: Bool = true) {
        var effects: [NodeEffect] = []
        hosts[slot(id)].node.handle(event, now: hosts[slot(id)].now, effects: &effects)
        afterStep(id, effects, reportingStatus: reportingStatus)
    }

    private func afterStep(_ id: NodeID, _ effects: [NodeEffect], reportingStatus: Bool = true) {
        for effect in effects {
            switch effect {
            case let .send(to, bytes):
                sendChecker.observeSend(bytes, from: id, disk: hosts[slot(id)].disk, directory: Self.directory(id))
                for failure in sendChecker.failures.dropFirst(sendFailuresReported) { output += safety.report(failure) }
                sendFailuresReported = sendChecker.failures.count
                guard let message = try? RaftMessageCodec.decode(bytes) else { continue }  // reported by the checker
                precondition(message.to == to, "a message addressed to \(message.to) sent to \(to)")
                queue.append(message)
            case let .halt(reason), let .exit(reason):
                output.append("\(id) stopped: \(reason)")
            case .reply, .closeClient, .pauseClientReads, .resumeClientReads, .openOutbound, .sendOutbound, .closeOutbound, .log:
                output.append("\(id) acted on a client connection: \(effect)")
            }
        }
        hosts[slot(id)].applied += hosts[slot(id)].node.takeCommittedEntries()
        if reportingStatus {
            let current = status(id)
            if current != hosts[slot(id)].lastStatus {
                hosts[slot(id)].lastStatus = current
                output.append("  \(id): \(current)")
            }
        }
        if let core = hosts[slot(id)].node.core {
            output += safety.observe(TranscriptSafety.observation(of: core, incarnation: hosts[slot(id)].incarnation))
        }
    }
}
