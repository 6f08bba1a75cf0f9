import Broker
import Controller
import KafkaProtocol
import LogStorage
import NodeKit
import Raft
import SimWorld
import TernCore

/// Persist before you tell, checked the moment a message leaves a node, against the simulated
/// disks (not against what the nodes believe is durable):
/// - an `acks=all` Produce answer that acknowledges a batch leaves its leader only once the
///   batch has been synced, whole and with the bytes the producer sent, on at least
///   `min.insync.replicas` brokers' disks: counting every broker seen holding it synced at that
///   offset at some moment before the answer (`SyncedCopyWatch`). A synced copy survives
///   crashes; what can take it away afterwards (rot, a discard after the controller recorded the
///   loss) could as well have struck a moment after the answer, and is the loss checkers' business;
/// - a Raft message leaves a controller only once the state it speaks for is synced on that
///   controller's disk: its term (every message but the pre-vote ones, whose terms are
///   hypothetical), the vote a vote request or a granted vote stands for, and the entries an
///   append acknowledgement vouches for.
///
/// A crash then need not land in the window between send and sync for an ordering bug to show:
/// the first message sent too early fails the run. The durable image is what a crash that keeps
/// nothing unsynced leaves (`SimDisk.durableContentsAsWritten`, latent corruption undone: rot is
/// the disk's fault, checked by the loss checkers).
public final class DurabilityOracle: SimulationChecker {
    public let name = "durability"
    /// Batches of `acks=all` answers held against the disks, and Raft messages held against
    /// their sender's disk: a run that checked none proved nothing.
    public private(set) var acknowledgedBatchesChecked = 0
    public private(set) var raftMessagesChecked = 0
    /// Acknowledgements of batches written to a topic the committed metadata has since deleted:
    /// not judged.
    public private(set) var acknowledgementsOfDeletedTopics = 0

    private let minInSyncReplicas: Int
    private let checksAcknowledgements: Bool
    /// A machine's disk outlives its processes.
    private var brokerDisks: [(NodeID, SimDisk)]?
    private var producesInFlight: [ProduceKey: ProduceInFlight] = [:]
    /// Produce requests reach brokers, and their answers leave, through the front doors.
    private var traffic = ClientTraffic(apis: [.produce])
    private var brokerIncarnations: [NodeID: Int] = [:]
    private var syncedCopies: SyncedCopyWatch
    private var raftStates: [NodeID: (diskVersion: UInt64, state: DurableRaftState)] = [:]
    /// Per node, the durable segment files read so far, by path.
    private var segmentScans: [NodeID: [String: SegmentScan]] = [:]

    /// Produce requests delivered and not yet answered; more means answers are going missing.
    static let maximumProducesInFlight = 1 << 16

    /// `checksAcknowledgements`: whether `acks=all` answers promise a sync (the default
    /// durability policy); with page-cache durability only the Raft messages are checked.
    public init(minInSyncReplicas: Int, checksAcknowledgements: Bool = true) {
        precondition(minInSyncReplicas >= 1, "min.insync.replicas is at least 1")
        self.minInSyncReplicas = minInSyncReplicas
        syncedCopies = SyncedCopyWatch(minInSyncReplicas: minInSyncReplicas)
        self.checksAcknowledgements = checksAcknowledgements
    }

    public convenience init(layout: ClusterLayout) {
        self.init(minInSyncReplicas: layout.minInSyncReplicas,
                  checksAcknowledgements: layout.produceWorkload && layout.durabilityPolicy == .synced)
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        let node = delivered.nodeID
        let roles = simulation.roles(of: node)
        let watchesProduce = checksAcknowledgements && roles.contains(.broker)
        guard watchesProduce || roles.contains(.controller) else { return .ok }
        if watchesProduce {
            noteProduceRequest(delivered, in: simulation)
            syncedCopies.look(on: brokerDisks(in: simulation), scans: &segmentScans)
            for (exchange, answer) in traffic.answers(in: delivered) {
                guard case let .produce(response) = answer else { continue }
                let result = checkProduceAnswer(response, exchange, incarnation: delivered.incarnation, in: simulation)
                if case .violation = result { return result }
            }
        }
        for effect in delivered.effects {
            switch effect {
            case let .send(_, bytes):
                guard let kind = bytes.first else { continue }
                var result = CheckResult.ok
                if kind == PeerMessage.Kind.raft.rawValue, roles.contains(.controller) {
                    result = checkRaftMessage(Array(bytes[1...]), from: node, in: simulation)
                }
                if case .violation = result { return result }
            case .halt, .exit:
                return .ok  // the effects after it never ran
            case .reply, .closeClient, .pauseClientReads, .resumeClientReads, .openOutbound, .sendOutbound, .closeOutbound, .log:
                continue
            }
        }
        return .ok
    }

    // MARK: Produce answers

    private struct ProduceKey: Hashable {
        var exchange: ClientExchange
        var incarnation: Int
    }

    private struct ProduceInFlight {
        var partitions: [TopicPartition: RequestedPartition]
    }

    private struct RequestedPartition {
        /// Of the partition's log, the same path on every broker.
        var directory: String
        var batches: [ProducedBatch]
        /// The topic the batches were written to: the one the broker hosted under that name when
        /// the request arrived.
        var topicID: TopicID?
    }

    /// Remembers what an `acks=all` Produce request delivered to a broker asks to write (its
    /// answer names only base offsets), and watches where its batches are synced.
    private func noteProduceRequest(_ delivered: DeliveredEvent, in simulation: SimulationView) {
        if brokerIncarnations[delivered.nodeID] != delivered.incarnation {
            // A new process: the old one's requests die unanswered with it.
            brokerIncarnations[delivered.nodeID] = delivered.incarnation
            producesInFlight = producesInFlight.filter { $0.key.exchange.broker != delivered.nodeID }
        }
        guard let (exchange, kafkaRequest) = traffic.request(in: delivered, simulation: simulation),
              case let .produce(request) = kafkaRequest, request.acks == Acks.all.rawValue else { return }
        let key = ProduceKey(exchange: exchange, incarnation: delivered.incarnation)
        var partitions: [TopicPartition: RequestedPartition] = [:]
        let dataPlane = brokerPart(of: simulation.node(delivered.nodeID))?.dataPlane
        for topic in request.topicData {
            for partition in topic.partitionData {
                guard let batches = ProducedBatch.batches(in: partition.records) else { continue }
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.index)
                let directory = partitionDirectory(topicPartition, leader: exchange.broker, in: simulation)
                for batch in batches { syncedCopies.watch(batch, in: directory) }
                partitions[topicPartition] = RequestedPartition(directory: directory, batches: batches,
                                                                 topicID: dataPlane?.topicID(of: topicPartition))
            }
        }
        precondition(producesInFlight.count < Self.maximumProducesInFlight,
                     "more than \(Self.maximumProducesInFlight) acks=all produce requests delivered and never answered")
        producesInFlight[key] = ProduceInFlight(partitions: partitions)
    }

    /// The directory of a partition's log, the same path on every broker.
    private func partitionDirectory(_ topicPartition: TopicPartition, leader: NodeID, in simulation: SimulationView) -> String {
        brokerPart(of: simulation.node(leader))?.dataPlane.replica(for: topicPartition)?.log.directory
            ?? joinPath(simulation.configuration.dataDirectory, topicPartition.description)
    }

    private func checkProduceAnswer(_ response: KafkaWire.ProduceResponse, _ exchange: ClientExchange, incarnation: Int,
                                    in simulation: SimulationView) -> CheckResult {
        let leader = exchange.broker
        guard let request = producesInFlight.removeValue(forKey: ProduceKey(exchange: exchange, incarnation: incarnation)) else {
            return .ok  // not acks=all
        }
        for topic in response.responses {
            for partition in topic.partitionResponses
            where partition.errorCode == KafkaErrorCode.none.rawValue && partition.baseOffset != Offset.unknown.rawValue {
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.index)
                guard let requested = request.partitions[topicPartition] else { continue }
                if let written = requested.topicID, Self.isDeleted(written, in: simulation) {
                    acknowledgementsOfDeletedTopics += 1
                    continue
                }
                let directory = requested.directory
                var baseOffset = Offset(partition.baseOffset)
                for batch in requested.batches {
                    let claim = AcknowledgedBatch(leader: leader, client: exchange.client, correlationID: exchange.correlation,
                                                  topicPartition: topicPartition, baseOffset: baseOffset, batch: batch)
                    acknowledgedBatchesChecked += 1
                    let syncedEarlier = syncedCopies.brokersSeenSynced(batch, in: directory, at: baseOffset)
                    let result = check(claim, directory: directory, disks: brokerDisks(in: simulation), syncedEarlier: syncedEarlier)
                    if case .violation = result { return result }
                    baseOffset = claim.lastOffset + 1
                }
            }
        }
        return .ok
    }

    /// Whether the newest committed metadata has deleted `topicID`. A leader that has not applied
    /// a deletion yet may write and acknowledge a record meant for the topic created again under
    /// the name (a produce request names its topic, not the topic's id: see
    /// `TopicIncarnationChecker`); the deletion took the followers' copies, and there is no
    /// durability left to hold the answer to.
    static func isDeleted(_ topicID: TopicID, in simulation: SimulationView) -> Bool {
        let newest = simulation.nodeIDs.compactMap { controllerPart(of: simulation.node($0))?.committedImage }
            .max { $0.offset < $1.offset }
        return newest.map { $0.topic(id: topicID) == nil } ?? false
    }

    private func brokerDisks(in simulation: SimulationView) -> [(NodeID, SimDisk)] {
        if let brokerDisks { return brokerDisks }
        let disks = simulation.nodeIDs.filter { simulation.roles(of: $0).contains(.broker) }.map { ($0, simulation.disk(of: $0)) }
        brokerDisks = disks
        return disks
    }

    /// One batch an `acks=all` answer acknowledges.
    public struct AcknowledgedBatch: Equatable, Sendable {
        public var leader: NodeID
        public var client: NodeID
        public var correlationID: UInt64
        public var topicPartition: TopicPartition
        public var baseOffset: Offset
        public var batch: ProducedBatch

        public init(leader: NodeID, client: NodeID, correlationID: UInt64, topicPartition: TopicPartition,
                    baseOffset: Offset, batch: ProducedBatch) {
            self.leader = leader
            self.client = client
            self.correlationID = correlationID
            self.topicPartition = topicPartition
            self.baseOffset = baseOffset
            self.batch = batch
        }

        public var lastOffset: Offset { baseOffset + Int64(batch.lastOffsetDelta) }
    }

    /// The acknowledged batch must have been durable in `directory` on at least
    /// `min.insync.replicas` of the brokers' disks: those in `syncedEarlier` (seen holding it
    /// synced at its offset before) and those that hold it now (every broker counts: a copy is a
    /// copy, whatever the ISR says).
    public func check(_ claim: AcknowledgedBatch, directory: String, disks: [(NodeID, SimDisk)],
                      syncedEarlier: Set<NodeID> = []) -> CheckResult {
        func isHeld(on id: NodeID, _ disk: SimDisk, _ image: DiskImage) -> Bool {
            claim.batch.isHeld(at: claim.baseOffset, in: directory, on: disk, image: image, scans: &segmentScans[id, default: [:]])
        }
        var synced = 0
        for (id, disk) in disks where syncedEarlier.contains(id) || isHeld(on: id, disk, .durable) {
            synced += 1
            if synced >= minInSyncReplicas { return .ok }
        }
        let whereHeld = disks.map { id, disk -> String in
            if isHeld(on: id, disk, .durable) { return "n\(id) synced" }
            if syncedEarlier.contains(id) { return "n\(id) synced earlier, since gone" }
            if isHeld(on: id, disk, .volatile) { return "n\(id) page cache only" }
            return "n\(id) absent"
        }
        return .violation("n\(claim.leader) acknowledged \(claim.topicPartition) offsets \(claim.baseOffset)...\(claim.lastOffset) "
            + "(acks=all, correlation \(claim.correlationID) to n\(claim.client)) with the batch synced on \(synced) broker(s), "
            + "fewer than min.insync.replicas \(minInSyncReplicas): \(whereHeld.joined(separator: ", "))")
    }

    // MARK: Raft messages

    private func checkRaftMessage(_ bytes: [UInt8], from sender: NodeID, in simulation: SimulationView) -> CheckResult {
        guard let message = try? RaftMessageCodec.decode(bytes) else { return .ok }  // the Raft checker's concern
        raftMessagesChecked += 1
        let raft = controllerPart(of: simulation.node(sender))?.raft
        let durable = durableRaftState(of: sender, directory: raft?.directory, in: simulation)
        // Within its term a node's log prefix below an acknowledged index never changes, so the
        // current log is what it acknowledged; after a newer term it may have, and only the
        // length is checked.
        var currentTerms: ((LogIndex) -> Term?)?
        if case .appendAccepted = message.body, let core = raft?.core, core.term == message.term {
            currentTerms = { core.term(at: $0) }
        }
        return Self.judge(message, durable: durable, currentTerms: currentTerms)
    }

    private func durableRaftState(of node: NodeID, directory: String?, in simulation: SimulationView) -> DurableRaftState {
        let disk = simulation.disk(of: node)
        if let cached = raftStates[node], cached.diskVersion == disk.durableStateVersion { return cached.state }
        let path = directory ?? joinPath(simulation.configuration.dataDirectory, "__cluster_metadata-0")
        let state = DurableRaftState.read(from: disk, directory: path, scans: &segmentScans[node, default: [:]])
        raftStates[node] = (disk.durableStateVersion, state)
        return state
    }

    /// Whether `message` may leave its sender given what the sender's disk holds durably.
    /// `currentTerms` gives the sender's log terms when it is still in the message's term.
    public static func judge(_ message: RaftMessage, durable: DurableRaftState,
                             currentTerms: ((LogIndex) -> Term?)?) -> CheckResult {
        let sender = message.from
        // Built only for a violation: most messages pass, and appends describe every entry.
        var said: String { "n\(sender) sent \(message.body) to n\(message.to) in term \(message.term)" }
        var held: String {
            "its disk holds \(durable.hardState.map { "\($0)" } ?? "no quorum state") and a log through "
                + "\(durable.logTerms.count)@\(durable.logTerms.last ?? .zero)"
        }
        switch message.body {
        case let .voteRequest(request) where request.isPreVote:
            return .ok  // asks about a term it has not entered
        case let .voteResponse(isPreVote, granted) where isPreVote && granted:
            return .ok  // carries the pre-candidate's hypothetical term
        default:
            break
        }
        guard durable.term >= message.term else {
            return .violation("\(said) before the term was durable: \(held)")
        }
        switch message.body {
        case let .voteRequest(request) where !request.isPreVote:
            if durable.term == message.term && durable.votedFor != sender {
                return .violation("\(said) before its vote for itself was durable: \(held)")
            }
        case .voteResponse(isPreVote: false, granted: true):
            if durable.term == message.term && durable.votedFor != message.to {
                return .violation("\(said) before the vote was durable: \(held)")
            }
        case let .appendAccepted(matchIndex):
            guard durable.logTerms.count >= matchIndex.rawValue else {
                return .violation("\(said) before entries up to \(matchIndex) were durable: \(held)")
            }
            guard let currentTerms else { break }
            // Terms never go down along a Raft log, so two logs agree on a stretch of one
            // durable term when they agree at both its ends: one look per term, not per entry.
            let end = Int(matchIndex.rawValue)
            var start = 0
            while start < end {
                let term = durable.logTerms[start]
                var last = start
                while last + 1 < end && durable.logTerms[last + 1] == term { last += 1 }
                for index in [LogIndex(Int64(start + 1)), LogIndex(Int64(last + 1))] where currentTerms(index) != term {
                    return .violation("\(said), but durable entry \(index) has term \(term) where its log has "
                        + "\(currentTerms(index).map { "\($0)" } ?? "none"): \(held)")
                }
                start = last + 1
            }
        default:
            break
        }
        return .ok
    }
}
