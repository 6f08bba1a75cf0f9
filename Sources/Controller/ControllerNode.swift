import NodeKit
import Raft
import TernCore

/// A controller: a Raft voter of the metadata quorum that, while it is the Raft leader, is the
/// active controller. Every decision is a metadata record committed through Raft before anyone is
/// told about it; every controller applies the committed log to `committedImage` and serves it to
/// brokers that follow the metadata log.
///
/// A Raft entry's payload is `firstRecordOffset (i64)` followed by a batch of records: records get
/// offsets of their own, as in KRaft, and a batch is applied whole. Raft's own entries (the empty
/// entry a new leader appends) carry no records.
public final class ControllerNode: NodeStateMachine {
    public struct Configuration: Sendable {
        public var raft: RaftNode.Configuration
        public var controller: ControllerConfiguration
        /// Entries per metadata fetch response.
        public var maximumEntriesPerFetch = 256

        public init(raft: RaftNode.Configuration, controller: ControllerConfiguration) {
            self.raft = raft
            self.controller = controller
        }
    }

    public let configuration: Configuration
    public let raft: RaftNode
    public var nodeID: NodeID { raft.nodeID }
    public var tickInterval: Duration { raft.tickInterval }

    /// The committed metadata log applied in order.
    public private(set) var committedImage = MetadataImage.empty
    /// Committed entries with records, for brokers that fetch them (no snapshots yet: the whole
    /// log stays in memory, as Raft's own entries do).
    public private(set) var committedEntries: [PeerMessage.MetadataEntry] = []
    /// Present while this node is the active controller.
    public private(set) var active: ControllerCore?
    public private(set) var activeTerm: Term?
    /// The time of day of the event under way, handed to Raft (its log's batch timestamps).
    private var wallClock = Instant.zero
    private var nextRecordOffset = Offset.zero
    private var lastProposedIndex = LogIndex(0)
    private var pendingReplies: [PendingReply] = []
    private var raftEffects: [NodeEffect] = []

    struct PendingReply {
        let index: LogIndex
        let destination: NodeID
        let correlationID: UInt64
        let response: ControllerResponse
    }

    /// Bounds the replies waiting for a commit; past it, requests are refused as if not leader.
    static let maximumPendingReplies = 10_000

    public init(environment: NodeEnvironment, configuration: Configuration) {
        self.configuration = configuration
        self.raft = RaftNode(environment: environment, configuration: configuration.raft)
    }

    public var isActiveController: Bool { active != nil }

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        self.wallClock = wallClock
        switch event {
        case .start, .tick, .syncCompleted:
            stepRaft(event, now: now, effects: &effects)
        case let .message(from, bytes):
            guard let message = try? PeerMessage(decoding: bytes) else { return }
            onMessage(message, from: from, now: now, effects: &effects)
        case .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected, .outboundConnected, .outboundResponse,
             .outboundClosed:
            return  // the shell stops a controller-only node at once; it has no client listener
        }
        if case .tick = event, var controller = active {
            let records = controller.tick(now: now)
            active = controller
            if !records.isEmpty { propose(records, reply: nil, now: now, effects: &effects) }
        }
    }

    private func onMessage(_ message: PeerMessage, from sender: NodeID, now: Instant, effects: inout [NodeEffect]) {
        switch message {
        case let .raft(bytes):
            stepRaft(.message(from: sender, bytes: bytes), now: now, effects: &effects)
        case let .controllerRequest(correlationID, request):
            onRequest(request, correlationID: correlationID, from: sender, now: now, effects: &effects)
        case let .fetchMetadata(correlationID, fromOffset):
            effects.append(.send(to: sender, bytes: fetchResponse(correlationID: correlationID, from: fromOffset).encoded()))
        case .controllerResponse, .notController, .metadataEntries, .kafkaRequest, .kafkaResponse, .adminRequest:
            return
        }
    }

    // MARK: Raft

    /// Runs Raft on an event, wraps its messages, then applies what committed and follows
    /// leadership changes.
    private func stepRaft(_ event: NodeEvent, now: Instant, effects: inout [NodeEffect]) {
        raftEffects.removeAll(keepingCapacity: true)
        raft.handle(event, now: now, wallClock: wallClock, effects: &raftEffects)
        forwardRaftEffects(into: &effects)
        afterRaft(now: now, effects: &effects)
    }

    private func forwardRaftEffects(into effects: inout [NodeEffect]) {
        for effect in raftEffects {
            switch effect {
            case let .send(destination, bytes): effects.append(.send(to: destination, bytes: PeerMessage.raft(bytes).encoded()))
            case .halt, .exit, .log: effects.append(effect)
            case .reply, .closeClient, .pauseClientReads, .resumeClientReads, .openOutbound, .sendOutbound, .closeOutbound:
                preconditionFailure("Raft never answers a client: \(effect)")
            }
        }
        raftEffects.removeAll(keepingCapacity: true)
    }

    private func afterRaft(now: Instant, effects: inout [NodeEffect]) {
        for entry in raft.takeCommittedEntries() {
            applyCommitted(entry, effects: &effects)
        }
        followLeadership(now: now)
        sendCommittedReplies(effects: &effects)
    }

    private func applyCommitted(_ entry: RaftLogEntry, effects: inout [NodeEffect]) {
        guard entry.kind == .command, !entry.payload.isEmpty else { return }
        let decoded: (Offset, [MetadataRecord])
        do {
            decoded = try Self.decodePayload(entry.payload)
        } catch {
            effects.append(.halt(reason: "committed entry \(entry.index) does not decode: \(error)"))
            return
        }
        let (firstOffset, records) = decoded
        do {
            for (position, record) in records.enumerated() {
                try committedImage.apply(record, at: firstOffset + Int64(position))
            }
        } catch {
            effects.append(.halt(reason: "committed entry \(entry.index) does not apply: \(error)"))
            return
        }
        committedEntries.append(PeerMessage.MetadataEntry(offset: firstOffset, records: records))
    }

    /// Becomes the active controller once this leader has committed an entry of its own term (so
    /// the committed image holds every earlier decision); stops being it the moment Raft says so.
    private func followLeadership(now: Instant) {
        if let term = activeTerm, !raft.isLeader || raft.term != term {
            active = nil
            activeTerm = nil
            pendingReplies.removeAll()
        }
        // The commit index may run ahead of the entries handed to this node; what counts is that
        // an entry of this term has been applied, so every earlier decision is in the image.
        guard active == nil, raft.isLeader, raft.hasAppliedEntryOfCurrentTerm else { return }
        active = ControllerCore(image: committedImage, configuration: configuration.controller, now: now)
        activeTerm = raft.term
        nextRecordOffset = committedImage.offset + 1
        lastProposedIndex = raft.appliedIndex
    }

    // MARK: Requests

    private func onRequest(_ request: ControllerRequest, correlationID: UInt64, from sender: NodeID, now: Instant,
                           effects: inout [NodeEffect]) {
        guard var controller = active, pendingReplies.count < Self.maximumPendingReplies else {
            effects.append(.send(to: sender, bytes: PeerMessage.notController(correlationID: correlationID,
                                                                              leaderHint: raft.leaderID).encoded()))
            return
        }
        let result = controller.handle(request, now: now)
        active = controller
        let reply = PendingReply(index: lastProposedIndex, destination: sender, correlationID: correlationID, response: result.reply)
        if result.records.isEmpty {
            // Nothing to commit, but the answer reads state proposed earlier: it waits for that.
            pendingReplies.append(reply)
            sendCommittedReplies(effects: &effects)
        } else {
            propose(result.records, reply: reply, now: now, effects: &effects)
        }
    }

    /// Appends records as one entry, replays them into the active controller at their offsets, and
    /// queues the reply for when the entry commits.
    private func propose(_ records: [MetadataRecord], reply: PendingReply?, now: Instant, effects: inout [NodeEffect]) {
        guard var controller = active else { return }
        let payload = Self.encodePayload(firstOffset: nextRecordOffset, records: records)
        let index: LogIndex
        do {
            raftEffects.removeAll(keepingCapacity: true)
            index = try raft.propose(payload, now: now, effects: &raftEffects)
            forwardRaftEffects(into: &effects)
        } catch {
            forwardRaftEffects(into: &effects)
            if let reply {
                effects.append(.send(to: reply.destination, bytes: PeerMessage.notController(
                    correlationID: reply.correlationID, leaderHint: raft.leaderID).encoded()))
            }
            return
        }
        for (position, record) in records.enumerated() {
            do {
                try controller.replay(record, at: nextRecordOffset + Int64(position))
            } catch {
                effects.append(.halt(reason: "controller proposed a record its image refuses: \(error)"))
                return
            }
        }
        active = controller
        nextRecordOffset = nextRecordOffset + Int64(records.count)
        lastProposedIndex = index
        if let reply {
            pendingReplies.append(PendingReply(index: index, destination: reply.destination,
                                               correlationID: reply.correlationID, response: reply.response))
        }
        afterRaft(now: now, effects: &effects)
    }

    private func sendCommittedReplies(effects: inout [NodeEffect]) {
        let committed = raft.commitIndex
        var sent = 0
        for reply in pendingReplies {
            guard reply.index <= committed else { break }
            effects.append(.send(to: reply.destination, bytes: PeerMessage.controllerResponse(
                correlationID: reply.correlationID, response: reply.response).encoded()))
            sent += 1
        }
        pendingReplies.removeFirst(sent)
    }

    // MARK: Metadata fetch

    private func fetchResponse(correlationID: UInt64, from offset: Offset) -> PeerMessage {
        var low = 0
        var high = committedEntries.count
        while low < high {
            let middle = (low + high) / 2
            if committedEntries[middle].lastOffset < offset { low = middle + 1 } else { high = middle }
        }
        let end = min(committedEntries.count, low + configuration.maximumEntriesPerFetch)
        return .metadataEntries(correlationID: correlationID, committedOffset: committedImage.offset,
                                entries: Array(committedEntries[low..<end]))
    }

    // MARK: Payload

    static func encodePayload(firstOffset: Offset, records: [MetadataRecord]) -> [UInt8] {
        var writer = ByteWriter()
        writer.writeInt64(firstOffset.rawValue)
        writer.writeBytes(MetadataRecord.encodeBatch(records))
        return writer.take()
    }

    static func decodePayload(_ payload: [UInt8]) throws(DecodeError) -> (Offset, [MetadataRecord]) {
        var reader = ByteReader(payload)
        let firstOffset = Offset(try reader.readInt64())
        let records = try MetadataRecord.decodeBatch(from: &reader)
        guard reader.isAtEnd else { throw .invalidValue(position: reader.position, reason: "bytes after the records") }
        return (firstOffset, records)
    }
}
