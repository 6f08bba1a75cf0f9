import Broker
import Controller
import KafkaProtocol
import LogStorage
import NodeKit
import SimWorld
import TernCore

/// No record of an earlier incarnation of a topic is ever served, replicated or counted for a
/// later one. The operator deletes the recycled topic and creates it again under the same name
/// (`TopicRecycler`); every record's value names the incarnation it was written to, and the n-th
/// topic of that name in the committed metadata log is incarnation n. Then:
/// - after every broker event, each replica of the topic the broker hosts holds no record of an
///   incarnation earlier than the one it hosts (a directory of a deleted incarnation reopened, or
///   records fetched from a replica of one);
/// - every fetch answer a broker sends holds no record of an incarnation earlier than the one it
///   hosts, and a leader answers a follower's fetch without an error only when the follower
///   asked for the incarnation the leader hosts: otherwise the follower's offsets would count
///   toward the wrong incarnation's high watermark, or its records land in the wrong log;
/// - at the end, every record acknowledged for the incarnation that exists then, by brokers
///   hosting that incarnation, is in its leader's log at its offset with its value, below the
///   high watermark.
///
/// A record of a *later* incarnation in an earlier one's log is not flagged, nor is its
/// acknowledgement held against the later one: a produce request names its topic, not the
/// topic's id (Kafka's Produce before v13), so brokers that have not yet learned of a deletion
/// and re-creation write it to the incarnation they know, acknowledge it, and delete it with that
/// incarnation. The checker tells those acknowledgements apart by the incarnation the answering
/// broker hosted, and counts them (`acknowledgedByAnEarlierIncarnation`).
///
/// For the same reason a produce request that reaches a leader only after the deletion and
/// re-creation (held in a TCP connection through a partition, or a stall, longer than the
/// operator's quiet time) is rightly written to the new incarnation, records tagged with the old
/// one included: a record is allowed in the incarnation a produce request carrying it was
/// delivered to (`writtenIntoALaterIncarnation` counts them), and nowhere else.
///
/// Logs are read through the simulated disk's inspection view, never through `PartitionLog`, so
/// the checker draws no fault and records no corruption: looking does not change the run.
public final class TopicIncarnationChecker: SimulationChecker {
    public let name = "topic-incarnations"
    private let layout: ClusterLayout
    private let metadata: MetadataChecker
    private let topicName: String
    /// Ids of the topics named `topicName`, in the order the metadata log created them.
    private var incarnationIDs: [TopicID] = []
    private var scannedMetadataEntries = 0
    /// Per node and partition, the state of the hosted log when it was last read.
    private var readLogs: [NodeID: [TopicPartition: LogState]] = [:]
    /// Follower fetches in flight: per (follower, correlation id), the incarnation the follower
    /// asked about for each partition, and when it asked.
    /// The consumer's fetches and the operator's produces reach brokers through their front doors.
    private var traffic = ClientTraffic(apis: [.fetch, .produce])
    private var followerFetches: [RequestKey: (sentAt: Instant, incarnations: [Int32: UInt32])] = [:]
    /// Per node, the incarnation it hosted of each partition of the topic when its last event
    /// ended. An event may answer a fetch and then change what it hosts (a combined node's
    /// controller commits a re-creation its broker applies in the same event), so an answer is
    /// judged against what the node hosted at the event's start as well as at its end.
    private var hostedAtEventEnd: [NodeID: [Int32: UInt32]] = [:]
    /// The operator's produce requests a broker received and has not answered: per broker and
    /// correlation id, for each partition, the incarnation the broker hosted when it received them
    /// (the one it wrote the records to) and the records' sequence numbers.
    private var operatorProduces: [RequestKey: (receivedAt: Instant, partitions: [Int32: (incarnation: UInt32, sequences: [UInt64])])] = [:]
    /// Per record sequence number, the incarnations hosted by the brokers that acknowledged it.
    private var acknowledgingIncarnations: [UInt64: Set<UInt32>] = [:]
    public private(set) var acknowledgedByAnEarlierIncarnation = 0
    /// Per record sequence number of the recycled topic, the later incarnation a produce request
    /// carrying it was delivered to, hosted by the broker that received it.
    private var deliveredToALaterIncarnation: [UInt64: UInt32] = [:]
    public var writtenIntoALaterIncarnation: Int { deliveredToALaterIncarnation.count }
    public private(set) var checkedReplicaReads = 0
    public private(set) var checkedAnswers = 0
    public private(set) var incarnationsSeen = 0
    public private(set) var checkedAcknowledgements = 0

    /// Follower fetches unanswered for this long are forgotten (the follower gave up on them long
    /// before), which bounds `followerFetches`.
    static let forgetUnansweredFetchesAfter = Duration.seconds(30)

    struct LogState: Equatable {
        var processIncarnation: Int
        var topicID: TopicID
        var logStartOffset: Offset
        var logEndOffset: Offset
        var sizeInBytes: Int64
        var corruption: Offset?
    }

    /// A request by the node that sent it (a follower's fetch) or received it (a produce).
    struct RequestKey: Hashable {
        let node: NodeID
        let correlationID: UInt64
    }

    /// `metadata` must be registered before this checker: its reference is where incarnations are
    /// counted from.
    public init(layout: ClusterLayout, metadata: MetadataChecker) {
        self.layout = layout
        self.metadata = metadata
        topicName = TopicRecycler.topicName
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        guard let broker = brokerPart(of: simulation.node(delivered.nodeID)) else { return .ok }
        if case let (exchange, .produce(request))? = traffic.request(in: delivered, simulation: simulation),
           exchange.client == ClusterLayout.adminClientID {
            noteOperatorProduce(request, correlationID: exchange.correlation, at: delivered.nodeID, broker.dataPlane, now: simulation.now)
        }
        learnIncarnations()
        let stored = checkHostedLogs(of: delivered.nodeID, broker.dataPlane, incarnation: delivered.incarnation, simulation)
        guard stored == .ok else { return stored }
        let hostedAtStart = hostedAtEventEnd[delivered.nodeID] ?? [:]
        hostedAtEventEnd[delivered.nodeID] = hostedIncarnations(broker.dataPlane)
        for effect in delivered.effects {
            guard case let .send(destination, bytes) = effect, let kind = bytes.first,
                  kind == PeerMessage.Kind.kafkaRequest.rawValue || kind == PeerMessage.Kind.kafkaResponse.rawValue,
                  let message = try? PeerMessage(decoding: bytes) else { continue }
            switch message {
            case let .kafkaRequest(correlationID, frame):
                guard case let .fetch(request)? = try? decodeKafkaRequest(frame.dropFirst(KafkaFraming.sizePrefixBytes),
                                                                          versions: SupportedAPIVersions.generatedRange(of:)).body
                else { continue }
                noteFollowerFetch(request, correlationID: correlationID, from: delivered.nodeID, broker.dataPlane, now: simulation.now)
            case let .kafkaResponse(correlationID, frame):
                guard case let .fetch(response)? = try? decodeKafkaResponse(frame.dropFirst(KafkaFraming.sizePrefixBytes), apiKey: .fetch,
                                                                            apiVersion: SupportedAPIVersions.replicaFetchVersion).response
                else { continue }
                let result = checkAnswer(response, correlationID: correlationID, from: delivered.nodeID, to: destination,
                                         broker.dataPlane, hostedAtStart: hostedAtStart)
                if result != .ok { return result }
            default:
                continue
            }
        }
        for (exchange, answer) in traffic.answers(in: delivered) {
            switch answer {
            case let .fetch(response):
                let result = checkAnswer(response, correlationID: exchange.correlation, from: delivered.nodeID, to: exchange.client,
                                         broker.dataPlane, hostedAtStart: hostedAtStart)
                if result != .ok { return result }
            case let .produce(response) where exchange.client == ClusterLayout.adminClientID:
                noteAcknowledgements(response, correlationID: exchange.correlation, from: delivered.nodeID)
            default:
                continue
            }
        }
        return .ok
    }

    public func periodically(in simulation: SimulationView) -> CheckResult {
        followerFetches = followerFetches.filter { simulation.now - $0.value.sentAt < Self.forgetUnansweredFetchesAfter }
        operatorProduces = operatorProduces.filter { simulation.now - $0.value.receivedAt < Self.forgetUnansweredFetchesAfter }
        return .ok
    }

    public func atEnd(of simulation: SimulationView) -> CheckResult {
        learnIncarnations()
        guard let admin = simulation.node(ClusterLayout.adminClientID, as: AdminClientNode.self),
              let active = activeController(simulation, layout: layout),
              let current = active.committedImage.topic(named: topicName),
              let incarnation = incarnation(of: current.topicID) else { return .ok }
        let ofCurrent = admin.recycler.acknowledged.filter { $0.value.incarnation == incarnation }
        let acknowledged = ofCurrent.filter { acknowledgingIncarnations[$0.value.sequence] == [incarnation] }
        acknowledgedByAnEarlierIncarnation = ofCurrent.count - acknowledged.count
        checkedAcknowledgements = acknowledged.count
        let leaderLogs: [TopicPartition: LeaderLogSnapshot]
        switch LeaderLogSnapshot.currentLeaders(in: simulation, layout: layout) {
        case let .success(found): leaderLogs = found.filter { $0.key.topic == topicName }
        case let .failure(failure): return .violation(failure.description)
        }
        return Self.check(acknowledged: acknowledged, leaderLogs: leaderLogs,
                          requireBelowHighWatermark: ClusterSimulation.isConverged(simulation, layout: layout))
    }

    // MARK: Incarnations

    private func learnIncarnations() {
        let entries = metadata.reference
        while scannedMetadataEntries < entries.count {
            for case let .topic(record) in entries[scannedMetadataEntries].records where record.name == topicName {
                incarnationIDs.append(record.topicID)
            }
            scannedMetadataEntries += 1
        }
        incarnationsSeen = incarnationIDs.count
    }

    private func incarnation(of topicID: TopicID) -> UInt32? {
        incarnationIDs.firstIndex(of: topicID).map { UInt32($0 + 1) }
    }

    private func hostedIncarnation(_ dataPlane: BrokerDataPlane, _ topicPartition: TopicPartition) -> UInt32? {
        dataPlane.topicID(of: topicPartition).flatMap(incarnation(of:))
    }

    private func hostedIncarnations(_ dataPlane: BrokerDataPlane) -> [Int32: UInt32] {
        var hosted: [Int32: UInt32] = [:]
        for partition in dataPlane.hostedInOrder where partition.topicPartition.topic == topicName {
            hosted[partition.topicPartition.partition] = incarnation(of: partition.topicID)
        }
        return hosted
    }

    // MARK: Stored records

    private func checkHostedLogs(of node: NodeID, _ dataPlane: BrokerDataPlane, incarnation processIncarnation: Int,
                                 _ simulation: SimulationView) -> CheckResult {
        var known = readLogs.removeValue(forKey: node) ?? [:]  // taken out: updated in place, not copied
        defer { readLogs[node] = known }
        for partition in dataPlane.hostedInOrder where partition.topicPartition.topic == topicName {
            let (topicPartition, topicID, replica) = (partition.topicPartition, partition.topicID, partition.replica)
            guard let hosted = incarnation(of: topicID) else { continue }
            let log = replica.log
            let state = LogState(processIncarnation: processIncarnation, topicID: topicID, logStartOffset: log.logStartOffset,
                                 logEndOffset: log.logEndOffset, sizeInBytes: log.sizeInBytes, corruption: log.corruption?.offset)
            guard known[topicPartition] != state else { continue }
            known[topicPartition] = state
            checkedReplicaReads += 1
            let records = Self.records(of: log, on: simulation.disk(of: node))
            let result = Self.checkStored(records, hostedIncarnation: hosted, deliveredLate: deliveredToALaterIncarnation,
                                          where: "\(topicPartition) on n\(node)")
            if result != .ok { return result }
        }
        return .ok
    }

    /// The records a log holds (from its log start to its log end, or to the corruption it has
    /// found: what lies beyond is neither served nor replicated, and goes once the loss is
    /// recorded), read from the files as they are now. Reading stops in a segment at the first
    /// batch that does not check out (a torn tail the log has cut, or rot the log will find): only
    /// records that are whole are judged. A directory whose topic id cannot be read opens as lost
    /// data from its log start, so its records, whatever topic they were, are never judged.
    static func records(of log: PartitionLog, on disk: SimDisk) -> [(offset: Offset, value: [UInt8]?)] {
        var found: [(offset: Offset, value: [UInt8]?)] = []
        let end = min(log.logEndOffset, log.corruption?.offset ?? log.logEndOffset)
        let names = (try? disk.listDirectory(log.directory)) ?? []
        for name in names where name.hasSuffix(".log") {
            guard let bytes = disk.volatileContents(of: joinPath(log.directory, name)) else { continue }
            var position = 0
            while bytes.count - position >= RecordBatchLayout.headerSize, let batch = try? RecordBatch(bytes, at: position) {
                position += batch.header.totalSize
                guard !batch.attributes.isControl, let records = try? batch.records() else { continue }
                for record in records {
                    let offset = Offset(batch.header.baseOffset + Int64(record.offsetDelta))
                    if offset >= log.logStartOffset && offset < end { found.append((offset, record.value)) }
                }
            }
        }
        return found
    }

    /// The pure rule for a hosted log: no record of an incarnation before the hosted one, unless a
    /// produce request carrying it was delivered to the hosted incarnation (`deliveredLate`: by
    /// sequence number, the incarnation such a request reached).
    static func checkStored(_ records: [(offset: Offset, value: [UInt8]?)], hostedIncarnation: UInt32,
                            deliveredLate: [UInt64: UInt32] = [:], where location: String) -> CheckResult {
        for record in records {
            guard let value = IncarnationTaggedValue(decoding: record.value), value.incarnation < hostedIncarnation,
                  deliveredLate[value.sequence] != hostedIncarnation else { continue }
            return .violation("\(location): the replica of incarnation \(hostedIncarnation) holds \(value) at offset \(record.offset) (a deleted incarnation's record)")
        }
        return .ok
    }

    // MARK: Fetches

    private func noteFollowerFetch(_ request: KafkaWire.FetchRequest, correlationID: UInt64, from follower: NodeID,
                                   _ dataPlane: BrokerDataPlane, now: Instant) {
        var incarnations: [Int32: UInt32] = [:]
        for topic in request.topics {
            for partition in topic.partitions {
                // The id the request carries is the incarnation asked for: the follower may move
                // on later in the event that sent it. One that names the topic by name (before
                // Fetch v13) asks for what it hosts.
                if topic.topicId != .zero {
                    guard let asked = incarnation(of: TopicID(kafka: topic.topicId)) else { continue }
                    incarnations[partition.partition] = asked
                } else if topic.topic == topicName {
                    incarnations[partition.partition] = hostedIncarnation(dataPlane, TopicPartition(topic: topicName, partition: partition.partition))
                }
            }
        }
        guard !incarnations.isEmpty else { return }
        followerFetches[RequestKey(node: follower, correlationID: correlationID)] = (now, incarnations)
    }

    private func checkAnswer(_ response: KafkaWire.FetchResponse, correlationID: UInt64, from server: NodeID, to destination: NodeID,
                             _ dataPlane: BrokerDataPlane, hostedAtStart: [Int32: UInt32]) -> CheckResult {
        let asked = followerFetches.removeValue(forKey: RequestKey(node: destination, correlationID: correlationID))
        // A client's answer names the topic; a follower's, the id it asked for.
        for topic in response.responses where topic.topic == topicName || incarnation(of: TopicID(kafka: topic.topicId)) != nil {
            for answer in topic.partitions {
                let topicPartition = TopicPartition(topic: topicName, partition: answer.partitionIndex)
                guard let served = hostedIncarnation(dataPlane, topicPartition) else { continue }
                checkedAnswers += 1
                let result = Self.checkServed(answer, servedIncarnation: served, servedAtEventStart: hostedAtStart[answer.partitionIndex],
                                              deliveredLate: deliveredToALaterIncarnation,
                                              requestedIncarnation: asked?.incarnations[answer.partitionIndex],
                                              where: "\(topicPartition): n\(server) answered n\(destination)")
                if result != .ok { return result }
            }
        }
        return .ok
    }

    /// The pure rule for one partition of a fetch answer: a broker hosting incarnation
    /// `servedIncarnation` serves none of an earlier one, and answers without an error only a
    /// follower that asked for that same incarnation (`requestedIncarnation`, nil for a client or
    /// a follower hosting no known incarnation). A broker whose event began hosting
    /// `servedAtEventStart` may have answered before it moved on, so that incarnation is allowed too.
    static func checkServed(_ answer: KafkaWire.FetchResponse.PartitionData, servedIncarnation: UInt32, servedAtEventStart: UInt32? = nil,
                            deliveredLate: [UInt64: UInt32] = [:], requestedIncarnation: UInt32?, where location: String) -> CheckResult {
        let earliestServed = min(servedIncarnation, servedAtEventStart ?? servedIncarnation)
        if answer.errorCode == KafkaErrorCode.none.rawValue, let requestedIncarnation, requestedIncarnation != servedIncarnation,
           requestedIncarnation != servedAtEventStart {
            return .violation("\(location)'s fetch for incarnation \(requestedIncarnation) without an error, hosting incarnation \(servedIncarnation): the follower's position counts toward the wrong incarnation")
        }
        var position = 0
        let bytes = answer.records
        while bytes.count - position >= RecordBatchLayout.headerSize, let batch = try? RecordBatch(bytes, at: position) {
            position += batch.header.totalSize
            guard let records = try? batch.records() else { continue }
            for record in records {
                guard let value = IncarnationTaggedValue(decoding: record.value), value.incarnation < earliestServed,
                      deliveredLate[value.sequence].map({ $0 != servedIncarnation && $0 != servedAtEventStart }) ?? true else { continue }
                let offset = batch.header.baseOffset + Int64(record.offsetDelta)
                return .violation("\(location) with \(value) at offset \(offset), hosting incarnation \(servedIncarnation) (a deleted incarnation's record served)")
            }
        }
        return .ok
    }

    // MARK: Acknowledgements

    /// A produce request from the operator, as the broker that received it wrote it: to the
    /// incarnation it hosted then (an answer may leave only later, after it moved on).
    private func noteOperatorProduce(_ request: KafkaWire.ProduceRequest, correlationID: UInt64, at node: NodeID,
                                     _ dataPlane: BrokerDataPlane, now: Instant) {
        var partitions: [Int32: (incarnation: UInt32, sequences: [UInt64])] = [:]
        for topic in request.topicData where topic.name == topicName {
            for partition in topic.partitionData {
                let topicPartition = TopicPartition(topic: topicName, partition: partition.index)
                guard let hosted = hostedIncarnation(dataPlane, topicPartition) else { continue }
                let values = Self.values(in: partition.records)
                for value in values where value.incarnation < hosted { deliveredToALaterIncarnation[value.sequence] = hosted }
                partitions[partition.index] = (hosted, values.map(\.sequence))
            }
        }
        if !partitions.isEmpty { operatorProduces[RequestKey(node: node, correlationID: correlationID)] = (now, partitions) }
    }

    private func noteAcknowledgements(_ response: KafkaWire.ProduceResponse, correlationID: UInt64, from node: NodeID) {
        guard let received = operatorProduces.removeValue(forKey: RequestKey(node: node, correlationID: correlationID)) else { return }
        for topic in response.responses where topic.name == topicName {
            for answer in topic.partitionResponses where answer.errorCode == KafkaErrorCode.none.rawValue {
                guard let written = received.partitions[answer.index] else { continue }
                for sequence in written.sequences { acknowledgingIncarnations[sequence, default: []].insert(written.incarnation) }
            }
        }
    }

    static func values(in batches: [UInt8]) -> [IncarnationTaggedValue] {
        var found: [IncarnationTaggedValue] = []
        var position = 0
        while batches.count - position >= RecordBatchLayout.headerSize, let batch = try? RecordBatch(batches, at: position) {
            position += batch.header.totalSize
            for record in (try? batch.records()) ?? [] {
                if let value = IncarnationTaggedValue(decoding: record.value) { found.append(value) }
            }
        }
        return found
    }

    // MARK: End of run

    /// The pure rule at the end: each acknowledged record of the current incarnation is in its
    /// partition's leader's log at its offset with its value (below the high watermark once the
    /// cluster has converged).
    static func check(acknowledged: [RecycledTopicWrite], leaderLogs: [TopicPartition: LeaderLogSnapshot],
                      requireBelowHighWatermark: Bool) -> CheckResult {
        for write in acknowledged {
            let location = "\(write.topicPartition): \(write.value) acknowledged at offset \(write.offset)"
            guard let snapshot = leaderLogs[write.topicPartition] else {
                return .violation("\(location), but the partition has no readable leader at the end of the run")
            }
            if write.offset == .unknown {
                // Acknowledged as a duplicate without an offset: the value must be in the log.
                guard snapshot.entries.contains(where: { IncarnationTaggedValue(decoding: $0.value) == write.value }) else {
                    return .violation("\(location): leader n\(snapshot.leader) holds no record with that value")
                }
                continue
            }
            guard let entry = snapshot.entries.first(where: { $0.offset == write.offset }) else {
                return .violation("\(location): lost write, leader n\(snapshot.leader) has no record at that offset")
            }
            guard IncarnationTaggedValue(decoding: entry.value) == write.value else {
                let found = IncarnationTaggedValue(decoding: entry.value).map(\.description) ?? "\(String(describing: entry.value))"
                return .violation("\(location): leader n\(snapshot.leader) has \(found) there")
            }
            if requireBelowHighWatermark, write.offset >= snapshot.highWatermark {
                return .violation("\(location), but leader n\(snapshot.leader)'s high watermark is \(snapshot.highWatermark)")
            }
        }
        return .ok
    }
}
