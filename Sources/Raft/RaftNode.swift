import KafkaProtocol
import LogStorage
import NodeKit
import TernCore

/// A controller-quorum member: a `RaftCore` and the storage shell that carries out its Ready on
/// a `Disk`, still deterministic (no clock, no threads; the disk's sync completions come back as
/// events). It speaks the node contract: peer messages arrive as bytes and leave as `.send`
/// effects; a failing disk becomes `.exit`, state that contradicts itself on disk `.halt`.
///
/// Files, in `<dataDirectory>/__cluster_metadata-0/` as in KRaft: the log segments
/// (`RaftLogStore`) and `quorum-state` (term and vote, `HardStateFile`).
///
/// Durability order: a Ready's hard state and entries are written, synced, and only when both
/// are durable (and every earlier write with them) are its messages sent, its committed entries
/// handed to the application, and the core advanced. One Ready persists at a time; messages
/// that speak for nothing but a durable term (heartbeats and their answers, the leader's
/// appends, rejections, pre-votes) do not wait for it: they leave as soon as the core makes
/// them (`RaftCore.takeMessagesSendableNow`), so a slow sync delays votes and acknowledgements
/// only. On restart the node re-persists the term and vote it read before sending anything:
/// after a process crash the file may have been in the page cache only.
public final class RaftNode: NodeStateMachine {
    public struct Configuration: Sendable {
        public var raft: RaftConfiguration
        public var tickInterval: Duration = .milliseconds(10)
        /// Segment settings of the metadata log (retention is always off).
        public var log = LogConfiguration()
        public var directoryName = "__cluster_metadata-0"
        /// Committed entries waiting for `takeCommittedEntries`; past it the node hands out no
        /// more until the application catches up.
        public var maximumUnappliedEntries = 4_096

        public init(raft: RaftConfiguration) { self.raft = raft }
    }

    /// What is being persisted: one Ready, and the entries not yet written because a truncation
    /// barrier holds appends back.
    private struct Persisting {
        var ready: RaftReady
        var unwrittenEntries: [RaftLogEntry]
        var hardStateGeneration: UInt64
    }

    public let nodeID: NodeID
    public let configuration: Configuration
    public var tickInterval: Duration { configuration.tickInterval }
    public let directory: String

    private let disk: any Disk
    private var random: DeterministicRandom
    public private(set) var core: RaftCore?
    private var store: RaftLogStore?
    /// The time of day of the event under way: what the metadata log's batches are stamped with.
    private var wallClock = Instant.zero
    private var hardStateFile: HardStateFile
    private var persisting: Persisting?
    private var committed: [RaftLogEntry] = []
    /// Syncs of the directories above ours, requested at start: until they complete, a power loss
    /// could unlink the whole directory, votes and entries with it.
    private var directorySyncs: [SyncToken] = []
    /// The write of the term and vote read at start: nothing leaves before it is durable.
    private var startGeneration: UInt64 = 0
    /// Why the node stopped (it then ignores every event); nil while it runs.
    public private(set) var stopReason: String?
    public private(set) var statistics = RaftNodeStatistics()

    public init(environment: NodeEnvironment, configuration: Configuration) {
        precondition(environment.nodeID == configuration.raft.nodeID, "the environment and the configuration disagree on the node id")
        self.nodeID = environment.nodeID
        self.configuration = configuration
        self.disk = environment.disk
        self.random = environment.random.stream("raft")
        self.directory = joinPath(environment.dataDirectory, configuration.directoryName)
        self.hardStateFile = HardStateFile(path: joinPath(directory, HardStateFile.fileName))
    }

    // MARK: State for the application

    public var isLeader: Bool { core?.isLeader ?? false }
    public var leaderID: NodeID? { core?.leaderID }
    public var term: Term { core?.term ?? .zero }
    public var commitIndex: LogIndex { core?.commitIndex ?? .zero }
    public var role: RaftRole { core?.role ?? .follower }
    /// Entries up to here have been handed out through `takeCommittedEntries` (take them first).
    /// It trails `commitIndex`: an entry leaves only once the Ready that carries it completes.
    public var appliedIndex: LogIndex { core?.appliedIndex ?? .zero }

    /// This node leads and has handed out an entry of its own term, hence every entry committed
    /// in earlier terms too: state built from `takeCommittedEntries` is complete, and the node may
    /// act on it (KRaft's active controller starts here). Checking `commitIndex` instead would be
    /// too early: committed entries can still be on their way to the application.
    public var hasAppliedEntryOfCurrentTerm: Bool {
        guard let core, core.isLeader, core.appliedIndex > .zero else { return false }
        return core.term(at: core.appliedIndex) == core.term
    }
    public var isRunning: Bool { core != nil && stopReason == nil }

    /// Committed entries in log order, each once (leader-change entries included: the
    /// application skips them). After a restart they start again from index 1: without
    /// snapshots the application rebuilds its state from the whole log.
    public func takeCommittedEntries() -> [RaftLogEntry] {
        defer { committed.removeAll(keepingCapacity: true) }
        return committed
    }

    // MARK: Events

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        guard stopReason == nil else { return }
        self.wallClock = wallClock
        switch event {
        case .start:
            start(now: now, effects: &effects)
        case .tick:
            core?.tick(now: now)
        case let .message(from, bytes):
            receive(bytes, from: from, now: now)
        case let .syncCompleted(completion):
            handleCompletion(completion, effects: &effects)
        case .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected, .outboundConnected, .outboundResponse,
             .outboundClosed:
            return  // the shell stops a controller; clients never talk to the Raft part
        }
        pump(now: now, effects: &effects)
    }

    /// Proposes a payload (only the leader accepts). Returns its index; the entry is committed
    /// when it comes out of `takeCommittedEntries` with this index and the current term.
    public func propose(_ payload: [UInt8], now: Instant, effects: inout [NodeEffect]) throws(RaftRequestError) -> LogIndex {
        guard isRunning else { throw .notLeader(leaderID: nil) }
        let index = try core!.propose(payload, now: now)
        pump(now: now, effects: &effects)
        return index
    }

    /// Hands leadership to `target` (controlled shutdown of the active controller).
    public func transferLeadership(to target: NodeID, now: Instant, effects: inout [NodeEffect]) throws(RaftRequestError) {
        guard isRunning else { throw .notLeader(leaderID: nil) }
        try core!.step(.transferLeadership(to: target), now: now)
        pump(now: now, effects: &effects)
    }

    // MARK: Start and recovery

    private func start(now: Instant, effects: inout [NodeEffect]) {
        precondition(core == nil, "start is delivered once")
        do throws(RaftStorageError) {
            let store = try RaftLogStore.open(directory: directory, configuration: configuration.log, disk: disk, wallClock: wallClock)
            let entries = try store.loadEntries()
            let stored = try HardStateFile.load(path: hardStateFile.path, disk: disk) ?? .initial
            let hardState = Self.reconcile(stored, lastLogTerm: entries.last?.term ?? .zero)
            self.store = store
            core = RaftCore(configuration: configuration.raft, hardState: hardState, entries: entries, random: random, now: now)
            statistics.recoveredEntries = entries.count
            do { startGeneration = try hardStateFile.write(hardState, disk: disk) } catch { throw .disk(error) }
            directorySyncs = ancestors(of: directory).map { disk.syncDirectory($0) }
        } catch {
            stop(because: "recovery failed: \(error)", error.isCorruption ? .halt : .exit, effects: &effects)
        }
    }

    /// Every directory above `path`, the root included ("/a/b/c" → "/a/b", "/a", "/").
    private func ancestors(of path: String) -> [String] {
        var result: [String] = []
        var current = path
        for _ in 0..<64 {
            let parent = parentDirectory(of: current)
            guard parent != current, parent != "." else { break }
            result.append(parent)
            current = parent
        }
        return result
    }

    /// The log and the hard state are two files synced separately, so after a crash the log may
    /// hold entries of a term whose hard state never became durable. Nothing depending on that
    /// hard state was sent, so adopting the log's term with no vote is safe, and keeps the core's
    /// invariant that the term is at least the last entry's.
    static func reconcile(_ stored: RaftHardState, lastLogTerm: Term) -> RaftHardState {
        guard lastLogTerm > stored.term else { return stored }
        return RaftHardState(term: lastLogTerm, votedFor: nil)
    }

    // MARK: Messages

    private func receive(_ bytes: [UInt8], from sender: NodeID, now: Instant) {
        guard core != nil else { return }
        let message: RaftMessage
        do {
            message = try RaftMessageCodec.decode(bytes)
        } catch {
            statistics.undecodableMessages += 1
            return
        }
        guard message.from == sender else {
            statistics.misattributedMessages += 1
            return
        }
        try? core!.step(.receive(message), now: now)
    }

    // MARK: Disk completions

    private func handleCompletion(_ completion: SyncCompletion, effects: inout [NodeEffect]) {
        guard let store else { return }
        if let position = directorySyncs.firstIndex(of: completion.token) {
            directorySyncs.remove(at: position)
            if case let .failure(error) = completion.result {
                stop(because: "syncing a directory failed: \(error)", .exit, effects: &effects)
            }
            return
        }
        if store.log.handle(completion) {
            if let failure = store.log.failure { stop(because: "metadata log failed: \(failure)", .exit, effects: &effects) }
            return
        }
        do {
            _ = try hardStateFile.handle(completion, disk: disk)
        } catch {
            stop(because: "writing \(hardStateFile.path) failed: \(error)", .exit, effects: &effects)
        }
    }

    // MARK: The Ready pipeline

    /// Moves Readies along as far as durability allows: finish the one in flight if it is
    /// durable, send what needs no persistence, then take the next. Bounded per event; the next
    /// event continues.
    private func pump(now: Instant, effects: inout [NodeEffect]) {
        for _ in 0..<16 {
            guard stopReason == nil, core != nil else { return }
            if persisting != nil {
                writeUnwrittenEntries(now: now, effects: &effects)
                if let current = persisting, isDurable(current) {
                    finish(current, now: now, effects: &effects)
                    persisting = nil
                }
            }
            // Before a Ready is taken: what leaves now must not wait in it.
            sendMessagesSendableNow(effects: &effects)
            guard stopReason == nil, persisting == nil else { return }
            let room = configuration.maximumUnappliedEntries - committed.count
            guard core!.hasReady(applyLimit: room) else { return }
            begin(core!.ready(applyLimit: room), now: now, effects: &effects)
        }
    }

    private func begin(_ ready: RaftReady, now: Instant, effects: inout [NodeEffect]) {
        do throws(RaftStorageError) {
            if let hardState = ready.hardState {
                do { _ = try hardStateFile.write(hardState, disk: disk) } catch { throw .disk(error) }
            }
            if let first = ready.firstEntryIndex { try store!.cut(from: first) }
        } catch {
            stop(because: "persisting failed: \(error)", error.isCorruption ? .halt : .exit, effects: &effects)
            return
        }
        // Every message waits for every hard state requested so far (the one read at start too).
        persisting = Persisting(ready: ready, unwrittenEntries: ready.entries,
                                hardStateGeneration: hardStateFile.requestedGeneration)
        writeUnwrittenEntries(now: now, effects: &effects)
    }

    private func writeUnwrittenEntries(now: Instant, effects: inout [NodeEffect]) {
        guard let current = persisting, !current.unwrittenEntries.isEmpty else { return }
        do {
            guard try store!.append(current.unwrittenEntries, wallClock: wallClock) else { return }
            persisting!.unwrittenEntries = []
        } catch {
            stop(because: "appending to the metadata log failed: \(error)", error.isCorruption ? .halt : .exit, effects: &effects)
        }
    }

    private func isDurable(_ current: Persisting) -> Bool {
        guard let store, current.unwrittenEntries.isEmpty, directorySyncs.isEmpty else { return false }
        return store.durableIndex >= store.lastIndex && hardStateFile.durableGeneration >= current.hardStateGeneration
    }

    private func finish(_ current: Persisting, now: Instant, effects: inout [NodeEffect]) {
        send(current.ready.messages, effects: &effects)
        committed += current.ready.committedEntries
        core!.advance(current.ready, now: now)
    }

    /// Messages that vouch for nothing but a durable term, ahead of the Ready in flight; only
    /// once the state read at start is durable (the core takes that for granted).
    private func sendMessagesSendableNow(effects: inout [NodeEffect]) {
        guard stopReason == nil, directorySyncs.isEmpty, hardStateFile.durableGeneration >= startGeneration else { return }
        let messages = core!.takeMessagesSendableNow()
        statistics.messagesSentAheadOfPersistence += messages.count
        send(messages, effects: &effects)
    }

    private func send(_ messages: [RaftMessage], effects: inout [NodeEffect]) {
        for message in messages {
            effects.append(.send(to: message.to, bytes: RaftMessageCodec.encode(message)))
        }
        statistics.messagesSent += messages.count
    }

    private enum StopKind { case halt, exit }

    /// Stops the node for good. A failed write or sync is an operating error (`.exit`: the page
    /// cache can no longer be trusted; a supervisor restarts the process, which recovers from
    /// disk); state that contradicts itself on disk is `.halt`: restarting cannot help.
    private func stop(because reason: String, _ kind: StopKind, effects: inout [NodeEffect]) {
        guard stopReason == nil else { return }
        stopReason = reason
        switch kind {
        case .halt: effects.append(.halt(reason: reason))
        case .exit: effects.append(.exit(reason: reason))
        }
    }
}

public struct RaftNodeStatistics: Sendable, Equatable {
    public var recoveredEntries = 0
    public var messagesSent = 0
    /// Of `messagesSent`, those that left without waiting for a Ready to be durable.
    public var messagesSentAheadOfPersistence = 0
    public var undecodableMessages = 0
    /// Decoded messages whose sender field disagrees with the connection they came from.
    public var misattributedMessages = 0
    public init() {}
}
