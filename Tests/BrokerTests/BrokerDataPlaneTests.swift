import Broker
import Controller
import KafkaProtocol
import LogStorage
import NodeKit
@testable import SimWorld
@testable import Simulator
import TernCore
import Testing

// End-to-end tests of the broker data plane: three real BrokerNodes on SimDisks, with the test
// playing the controller (a scripted committed metadata log, registration, heartbeats and
// AlterPartition) and the network (instant, in-order delivery).

private let topicName = "orders"
private let topicID = TopicID(high: 7, low: 7)
private let partition0 = TopicPartition(topic: topicName, partition: 0)

private func clientBatch(records: Int, seed: UInt64) -> [UInt8] {
    var random = DeterministicRandom(seed: seed)
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    for index in 0..<records {
        var value = [UInt8](repeating: 0, count: 16)
        random.fill(&value)
        builder.append(key: Array("key-\(index)".utf8), value: value)
    }
    return builder.build()
}

private final class DataPlaneHarness {
    static let controllerID = NodeID(100)
    static let clientID = NodeID(200)
    let brokerIDs = [NodeID(1), NodeID(2), NodeID(3)]
    /// The brokers' monotonic clock.
    var now: Instant
    /// The time of day is `now` shifted by this (zero: the two clocks read the same).
    let wallClockOffset: Duration
    /// `segment.ms` of the brokers' logs, if not the default.
    let segmentMilliseconds: Int64?
    let autoCreateTopics: Bool
    var wallClock: Instant { now + wallClockOffset }
    var brokers: [NodeID: BrokerNode] = [:]
    var disks: [NodeID: SimDisk] = [:]
    /// The committed metadata log, one record per entry (entry offset = index).
    var metadataLog: [MetadataRecord] = []
    var partitionState: PartitionRegistration
    var network: [(from: NodeID, to: NodeID, bytes: [UInt8])] = []
    /// Answers to the requests sent on client connections, by correlation id.
    var responses: [UInt64: KafkaResponse] = [:]
    /// The test's client connection to each broker, opened on first use.
    var clientConnections: [NodeID: ClientConnectionID] = [:]
    /// What each request sent on a client connection was, to read its answer.
    var clientRequests: [Int32: (apiKey: KafkaAPIKey, version: Int16)] = [:]
    /// Answers to admin requests a broker forwarded (nil: the broker gave up).
    var adminAnswers: [UInt64: ControllerResponse?] = [:]
    /// When set, the scripted controller refuses forwarded admin requests this many times first.
    var adminRefusalsLeft = 0
    var adminRequestsSeen = 0
    /// CreateTopics requests the controller got from brokers, in order.
    var createTopicsAsked: [CreateTopicsRequest] = []
    /// The reassignments the scripted controller was asked for.
    var reassignmentsAsked: [AlterPartitionReassignmentsRequest] = []
    /// Fetches (with their long-poll wait) the followers sent.
    var followerFetchWaits: [Int32] = []
    var nextCorrelationID: UInt64 = 1
    /// Messages between brokers this says to hold stay in `heldMessages` (in flight) until released.
    var hold: ((_ from: NodeID, _ to: NodeID) -> Bool)?
    var heldMessages: [(from: NodeID, to: NodeID, bytes: [UInt8])] = []
    var alterPartitionRequests = 0
    /// While set, the scripted controller loses every AlterPartition compare-and-set.
    var refusesAlterPartition = false
    /// The AlterPartition requests received, in order.
    var alterPartitionLog: [AlterPartitionRequest] = []
    /// The data losses each broker's heartbeats reported, in order.
    var reportedLosses: [NodeID: [[ReplicaDataLossReport]]] = [:]

    init(now: Instant = Instant(nanoseconds: 1_700_000_000_000 * 1_000_000), wallClockOffset: Duration = .zero,
         segmentMilliseconds: Int64? = nil, autoCreateTopics: Bool = true) throws {
        self.now = now
        self.wallClockOffset = wallClockOffset
        self.segmentMilliseconds = segmentMilliseconds
        self.autoCreateTopics = autoCreateTopics
        partitionState = PartitionRegistration(replicas: brokerIDs, isr: brokerIDs, leader: NodeID(1),
                                               leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))
        for id in brokerIDs {
            metadataLog.append(.registerBroker(BrokerRegistrationRecord(
                brokerID: id, brokerEpoch: BrokerEpoch(Int64(id.rawValue)), incarnationID: IncarnationID(high: 1, low: UInt64(id.rawValue)),
                endpoints: [], rack: nil)))
            metadataLog.append(.unfenceBroker(BrokerAndEpoch(brokerID: id, brokerEpoch: BrokerEpoch(Int64(id.rawValue)))))
        }
        metadataLog.append(.topic(TopicRecord(name: topicName, topicID: topicID,
                                              configs: [ConfigEntry(name: "min.insync.replicas", value: "2")])))
        metadataLog.append(.partition(PartitionRecord(topicID: topicID, partition: 0, replicas: brokerIDs, isr: brokerIDs,
                                                      leader: NodeID(1), leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))))
        for id in brokerIDs {
            var diskConfiguration = SimDisk.Configuration.benignCrashes
            diskConfiguration.directoryCreationIsDurable = true
            disks[id] = SimDisk(random: DeterministicRandom(seed: UInt64(100 + id.rawValue)), configuration: diskConfiguration)
            brokers[id] = makeBroker(id)
        }
        for id in brokerIDs { run(id, .start) }
    }

    func makeBroker(_ id: NodeID) -> BrokerNode {
        var configuration = BrokerConfiguration(brokerID: id, clusterID: "test", controllerVoters: [Self.controllerID])
        if let segmentMilliseconds { configuration.dataPlane.log.segmentMilliseconds = segmentMilliseconds }
        configuration.dataPlane.autoCreateTopicsEnabled = autoCreateTopics
        let environment = NodeEnvironment(nodeID: id, disk: disks[id]!, dataDirectory: "/data",
                                          random: DeterministicRandom(seed: UInt64(id.rawValue)))
        return BrokerNode(configuration: configuration, environment: environment)
    }

    /// A new process of the broker on the same disk (a clean restart: nothing unsynced is lost).
    func restart(_ id: NodeID) {
        clientConnections[id] = nil  // the old process's connections died with it
        brokers[id] = makeBroker(id)
        run(id, .start)
    }

    func broker(_ id: Int32) -> BrokerNode { brokers[NodeID(id)]! }
    func replica(_ id: Int32) -> PartitionReplica? { broker(id).dataPlane.replica(for: partition0) }

    func run(_ id: NodeID, _ event: NodeEvent) {
        var effects: [NodeEffect] = []
        brokers[id]!.handle(event, now: now, wallClock: wallClock, effects: &effects)
        for effect in effects {
            switch effect {
            case let .send(to, bytes): network.append((id, to, bytes))
            case let .reply(_, bytes): readClientAnswers(bytes)
            case let .halt(reason), let .exit(reason): Issue.record("broker \(id) stopped: \(reason)")
            case .log: continue
            case .closeClient, .pauseClientReads, .resumeClientReads, .openOutbound, .sendOutbound, .closeOutbound:
                Issue.record("unexpected effect: \(effect)")
            }
        }
        deliverAll()
    }

    func deliverAll() {
        while !network.isEmpty {
            let (from, to, bytes) = network.removeFirst()
            if to == Self.controllerID {
                answerAsController(from: from, bytes: bytes)
            } else if to == Self.clientID {
                switch try? PeerMessage(decoding: bytes) {
                case let .controllerResponse(correlationID, response)?: adminAnswers[correlationID] = .some(response)
                case let .notController(correlationID, _)?: adminAnswers[correlationID] = .some(nil)
                default: Issue.record("client got an unexpected message")
                }
            } else if let hold, hold(from, to) {
                heldMessages.append((from, to, bytes))
            } else {
                if case let .kafkaRequest(_, frame)? = try? PeerMessage(decoding: bytes),
                   case let .fetch(fetch)? = try? decodeKafkaRequest(frame.dropFirst(4), versions: SupportedAPIVersions.generatedRange(of:)).body {
                    followerFetchWaits.append(fetch.maxWaitMs)
                }
                run(to, .message(from: from, bytes: bytes))
            }
        }
    }

    private func answerAsController(from broker: NodeID, bytes: [UInt8]) {
        guard let message = try? PeerMessage(decoding: bytes) else { Issue.record("undecodable message to the controller"); return }
        let reply: PeerMessage
        switch message {
        case let .fetchMetadata(correlationID, fromOffset):
            let start = Int(max(0, fromOffset.rawValue))
            let entries = metadataLog.indices.dropFirst(start).map { PeerMessage.MetadataEntry(offset: Offset(Int64($0)), records: [metadataLog[$0]]) }
            reply = .metadataEntries(correlationID: correlationID, committedOffset: Offset(Int64(metadataLog.count - 1)), entries: entries)
        case let .controllerRequest(correlationID, .brokerRegistration(request)):
            reply = .controllerResponse(correlationID: correlationID, response: .brokerRegistration(
                BrokerRegistrationResponse(error: .none, brokerEpoch: BrokerEpoch(Int64(request.brokerID.rawValue)))))
        case let .controllerRequest(correlationID, .brokerHeartbeat(request)):
            reportedLosses[request.brokerID, default: []].append(request.dataLosses)
            reply = .controllerResponse(correlationID: correlationID, response: .brokerHeartbeat(
                BrokerHeartbeatResponse(error: .none, isCaughtUp: true, isFenced: false)))
        case let .controllerRequest(correlationID, .alterPartition(request)):
            alterPartitionRequests += 1
            alterPartitionLog.append(request)
            let asked = request.partitions[0]
            var result = AlterPartitionResponse.PartitionResult(topicID: topicID, partition: 0, error: .invalidUpdateVersion,
                                                                leader: partitionState.leader, leaderEpoch: partitionState.leaderEpoch,
                                                                isr: partitionState.isr, partitionEpoch: partitionState.partitionEpoch,
                                                                dataLoss: partitionState.dataLoss)
            if !refusesAlterPartition, asked.leaderEpoch == partitionState.leaderEpoch, asked.partitionEpoch == partitionState.partitionEpoch {
                // As the controller does: a member naming its recorded loss has fetched it back.
                let remaining = partitionState.dataLoss.filter { loss in
                    !asked.newISR.contains { $0.brokerID == loss.broker && $0.acknowledgedLoss == loss.markedAt }
                }
                commit(isr: asked.newISR.map(\.brokerID), dataLoss: remaining == partitionState.dataLoss ? nil : remaining)
                result = AlterPartitionResponse.PartitionResult(topicID: topicID, partition: 0, error: .none,
                                                                leader: partitionState.leader, leaderEpoch: partitionState.leaderEpoch,
                                                                isr: partitionState.isr, partitionEpoch: partitionState.partitionEpoch,
                                                                dataLoss: partitionState.dataLoss)
            }
            reply = .controllerResponse(correlationID: correlationID,
                                        response: .alterPartition(AlterPartitionResponse(error: .none, partitions: [result])))
        case let .controllerRequest(correlationID, .createTopics(request)):
            adminRequestsSeen += 1
            createTopicsAsked.append(request)
            if adminRefusalsLeft > 0 {
                adminRefusalsLeft -= 1
                reply = .notController(correlationID: correlationID, leaderHint: Self.controllerID)
            } else {
                reply = .controllerResponse(correlationID: correlationID, response: .createTopics(CreateTopicsResponse(topics: request.topics.map {
                    CreateTopicsResponse.TopicResult(name: $0.name, topicID: TopicID(high: 9, low: 9), error: .none, message: nil,
                                                     partitionCount: 1, replicationFactor: 3)
                })))
            }
        case let .controllerRequest(correlationID, .alterPartitionReassignments(request)):
            reassignmentsAsked.append(request)
            // As the controller answers: a cancel of a partition that is not moving is refused.
            reply = .controllerResponse(correlationID: correlationID, response: .alterPartitionReassignments(
                AlterPartitionReassignmentsResponse(partitions: request.reassignments.map {
                    .init(topicPartition: $0.topicPartition, error: $0.targetReplicas == nil ? .noReassignmentInProgress : .none)
                })))
        default:
            return
        }
        network.append((Self.controllerID, broker, reply.encoded()))
    }

    func commit(isr: [NodeID]? = nil, leader: NodeID? = nil, dataLoss: [ReplicaDataLoss]? = nil) {
        partitionState.partitionEpoch = partitionState.partitionEpoch.next
        if let isr { partitionState.isr = isr }
        if let dataLoss { partitionState.dataLoss = dataLoss }
        var change = LeaderChange.unchanged
        if let leader {
            partitionState.leader = leader
            partitionState.leaderEpoch = partitionState.leaderEpoch.next
            change = .elected(leader)
        }
        metadataLog.append(.partitionChange(PartitionChangeRecord(
            topicID: topicID, partition: 0, leader: change, isr: isr, leaderEpoch: partitionState.leaderEpoch,
            partitionEpoch: partitionState.partitionEpoch, dataLoss: dataLoss)))
    }

    /// Latent corruption of the first synced sector of broker `id`'s segment, found by a read.
    func corruptAndRead(_ id: Int32) {
        var random = DeterministicRandom(seed: 99)
        let disk = disks[NodeID(id)]!
        let hit = disk.corruptDurableSector(using: &random) { $0.hasSuffix("00000000000000000000.log") }
        #expect(hit?.bytes.lowerBound == 0 || hit != nil)
        let log = replica(id)!.log
        _ = try? log.read(from: log.logStartOffset, maxBytes: 1 << 20, maximumOffset: log.logEndOffset)
    }

    /// Delivers the held messages; what they cause is held again where `hold` still says so.
    func releaseHeld() {
        let released = heldMessages
        heldMessages.removeAll()
        for (from, to, bytes) in released { run(to, .message(from: from, bytes: bytes)) }
    }

    /// Advances time by `duration` in 10 ms steps: disk completions, then ticks.
    func advance(_ duration: Duration, until done: () -> Bool = { false }) {
        let end = now + duration
        while now < end, !done() {
            now = now + .milliseconds(10)
            for id in brokerIDs {
                let disk = disks[id]!
                disk.advance(to: now)
                var completions: [SyncCompletion] = []
                disk.pollCompletions(into: &completions)
                for completion in completions { run(id, .syncCompleted(completion)) }
                run(id, .tick)
            }
        }
    }

    /// Sends `request` on the test's client connection to `broker`, at `version` (the newest
    /// served when nil).
    func send(_ request: KafkaRequest, to broker: NodeID, version asked: Int16? = nil) -> UInt64 {
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        let connection: ClientConnectionID
        if let open = clientConnections[broker] {
            connection = open
        } else {
            connection = ClientConnectionID(rawValue: UInt64(broker.rawValue))
            clientConnections[broker] = connection
            run(broker, .clientConnected(connection))
        }
        let version = asked ?? SupportedAPIVersions.servedRange(of: request.apiKey).upperBound
        clientRequests[Int32(correlationID)] = (request.apiKey, version)
        let header = KafkaRequestHeader(apiKey: request.apiKey.rawValue, apiVersion: version, correlationID: Int32(correlationID),
                                        clientID: "test")
        run(broker, .clientRequest(connection, Array(encodeKafkaRequest(request, header: header).dropFirst(4))))
        return correlationID
    }

    private func readClientAnswers(_ bytes: [UInt8]) {
        for frame in KafkaFraming.splitFrames(bytes) ?? [] {
            guard let correlationID = KafkaFraming.correlationID(ofResponse: frame), let asked = clientRequests[correlationID],
                  let decoded = try? decodeKafkaResponse(frame[...], apiKey: asked.apiKey, apiVersion: asked.version) else {
                Issue.record("an unreadable answer on a client connection")
                continue
            }
            responses[UInt64(correlationID)] = decoded.response
        }
    }

    func sendAdmin(_ request: ControllerRequest, to broker: NodeID) -> UInt64 {
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        network.append((Self.clientID, broker, PeerMessage.adminRequest(correlationID: correlationID, request: request).encoded()))
        deliverAll()
        return correlationID
    }

    func produce(_ batch: [UInt8], to broker: NodeID, topic: String = topicName, acks: Int16 = -1) -> UInt64 {
        send(.produce(KafkaWire.ProduceRequest(acks: acks, timeoutMs: 5_000, topicData: [
            .init(name: topic, partitionData: [.init(index: 0, records: batch)]),
        ])), to: broker)
    }

    func consume(from broker: NodeID, offset: Offset = Offset(0)) -> FetchAnswer? {
        fetchAnswer(sendConsumerFetch(to: broker, offset: offset, maxWaitMilliseconds: 0))
    }

    func sendConsumerFetch(to broker: NodeID, offset: Offset, maxWaitMilliseconds: Int32) -> UInt64 {
        send(.fetch(KafkaWire.FetchRequest(maxWaitMs: maxWaitMilliseconds, minBytes: 1, maxBytes: 1 << 20, topics: [
            .init(topic: topicName, partitions: [.init(partition: 0, fetchOffset: offset.rawValue, partitionMaxBytes: 1 << 20)]),
        ])), to: broker)
    }

    /// The first partition of a fetch answer, in the broker's types.
    struct FetchAnswer {
        let errorCode: KafkaErrorCode
        let highWatermark: Offset
        let records: [UInt8]
    }

    struct ProduceAnswer {
        let errorCode: KafkaErrorCode
        let baseOffset: Offset
    }

    func fetchAnswer(_ correlationID: UInt64) -> FetchAnswer? {
        guard case let .fetch(response)? = responses[correlationID], let partition = response.responses.first?.partitions.first else { return nil }
        return FetchAnswer(errorCode: KafkaErrorCode(rawValue: partition.errorCode) ?? .unknownServerError, highWatermark: Offset(partition.highWatermark),
                           records: partition.records)
    }

    func produceAnswer(_ correlationID: UInt64) -> ProduceAnswer? {
        guard case let .produce(response)? = responses[correlationID],
              let partition = response.responses.first?.partitionResponses.first else { return nil }
        return ProduceAnswer(errorCode: KafkaErrorCode(rawValue: partition.errorCode) ?? .unknownServerError, baseOffset: Offset(partition.baseOffset))
    }
}

/// A real node's monotonic clock starts near zero while record timestamps are times of day: the
/// logs roll by `segment.ms` on the wall clock the shell hands the node beside its monotonic
/// `now`, so a segment whose first batch is older than `segment.ms` by the wall clock rolls
/// (comparing the monotonic `now` with a record timestamp, it never did).
@Test func segmentsRollBySegmentMillisecondsOnTheWallClock() throws {
    let cluster = try DataPlaneHarness(now: Instant.zero + .seconds(5), wallClockOffset: .seconds(1_700_000_000),
                                       segmentMilliseconds: 10_000)
    cluster.advance(.seconds(1)) { cluster.brokerIDs.allSatisfy { cluster.broker($0.rawValue).dataPlane.hostedPartitions == [partition0] } }
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }
    func batch(seed: UInt64) -> [UInt8] {
        var builder = RecordBatchBuilder(baseTimestamp: cluster.wallClock.milliseconds)
        builder.append(key: Array("key-\(seed)".utf8), value: [UInt8(seed)])
        return builder.build()
    }
    let first = cluster.produce(batch(seed: 1), to: NodeID(1))
    cluster.advance(.seconds(3)) { cluster.produceAnswer(first) != nil }
    cluster.advance(.seconds(2))
    let second = cluster.produce(batch(seed: 2), to: NodeID(1))
    cluster.advance(.seconds(3)) { cluster.produceAnswer(second) != nil }
    #expect(cluster.replica(1)?.log.segmentCount == 1, "younger than segment.ms: one segment")
    cluster.advance(.seconds(10))
    let third = cluster.produce(batch(seed: 3), to: NodeID(1))
    cluster.advance(.seconds(3)) { cluster.produceAnswer(third) != nil }
    #expect(cluster.produceAnswer(third)?.errorCode == KafkaErrorCode.none)
    #expect(cluster.replica(1)?.log.segmentBaseOffsets == [Offset(0), Offset(2)], "the first batch is past segment.ms")
}

@Test func acksAllIsAnsweredOnlyOnceFollowersHoldTheDataDurably() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.brokerIDs.allSatisfy { cluster.broker($0.rawValue).dataPlane.hostedPartitions == [partition0] } }
    #expect(cluster.replica(1)?.isLeader == true)
    #expect(cluster.replica(2)?.role == .follower(leader: NodeID(1)))
    // A freshly opened log refuses leader appends until its first checkpoint is durable.
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }

    let batch = clientBatch(records: 5, seed: 1)
    let produced = cluster.produce(batch, to: NodeID(1))
    #expect(cluster.produceAnswer(produced) == nil, "acks=all must wait for the followers")

    var durableAtAnswer: [Offset] = []
    cluster.advance(.seconds(3)) {
        guard cluster.produceAnswer(produced) != nil else { return false }
        durableAtAnswer = [2, 3].map { cluster.replica($0)!.log.durableOffset }
        return true
    }
    let answer = try #require(cluster.produceAnswer(produced))
    #expect(answer.errorCode == .none)
    #expect(answer.baseOffset == Offset(0))
    #expect(durableAtAnswer == [Offset(5), Offset(5)], "both followers had synced the batch when it was acknowledged")

    let fetched = try #require(cluster.consume(from: NodeID(1)))
    #expect(fetched.errorCode == .none)
    #expect(fetched.highWatermark == Offset(5))
    let header = try RecordBatchHeader.read(fetched.records)
    #expect(header.baseOffset == 0 && header.lastOffset == 4)

    // A consumer at a follower is sent to the leader.
    #expect(cluster.consume(from: NodeID(2))?.errorCode == .notLeaderOrFollower)

    // The controller moves leadership to broker 2 (as when broker 1 is fenced), dropping 1 from the ISR.
    cluster.advance(.milliseconds(500))
    cluster.commit(isr: [NodeID(2), NodeID(3)], leader: NodeID(2))
    cluster.advance(.seconds(2)) { cluster.replica(2)?.isLeader == true && cluster.replica(1)?.role == .follower(leader: NodeID(2)) }
    #expect(cluster.replica(2)?.isLeader == true)
    #expect(cluster.consume(from: NodeID(1))?.errorCode == .notLeaderOrFollower)

    let fromNewLeader = try #require(cluster.consume(from: NodeID(2)))
    #expect(fromNewLeader.errorCode == .none)
    #expect(fromNewLeader.records == fetched.records, "the new leader serves the acknowledged batch byte for byte")

    // The new leader takes writes, and the old leader catches up and is added back to the ISR.
    let second = cluster.produce(clientBatch(records: 3, seed: 2), to: NodeID(2))
    cluster.advance(.seconds(3)) { cluster.produceAnswer(second) != nil }
    #expect(cluster.produceAnswer(second)?.errorCode == KafkaErrorCode.none)
    #expect(cluster.produceAnswer(second)?.baseOffset == Offset(5))
    cluster.advance(.seconds(3)) { cluster.replica(2)?.isr.contains(NodeID(1)) == true }
    #expect(cluster.replica(2)?.isr == cluster.brokerIDs)
    #expect(cluster.alterPartitionRequests >= 1)
    #expect(cluster.replica(1)?.logEndOffset == Offset(8))
}

@Test func aFollowerReportsASyncThatCompletedDuringItsFetchWithoutPausing() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.brokerIDs.allSatisfy { cluster.broker($0.rawValue).dataPlane.hostedPartitions == [partition0] } }
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }
    // The leader's answers to follower 2 stay in flight until released.
    cluster.hold = { from, to in from == NodeID(1) && to == NodeID(2) }
    let produced = cluster.produce(clientBatch(records: 5, seed: 7), to: NodeID(1))
    // The data reaches follower 2 at its next fetch; it asks again at once (unsynced data: not parked).
    cluster.advance(.seconds(1)) {
        cluster.releaseHeld()
        return cluster.replica(2)?.log.logEndOffset == Offset(5)
    }
    #expect(cluster.replica(2)?.log.logEndOffset == Offset(5))
    #expect(cluster.replica(2)?.log.durableOffset == Offset(0))
    #expect(!cluster.heldMessages.isEmpty, "follower 2's next fetch is answered, and the answer held")
    // Follower 2's sync completes while that answer (nothing new) is still in flight.
    cluster.advance(.seconds(1)) { cluster.replica(2)?.log.durableOffset == Offset(5) }
    #expect(cluster.produceAnswer(produced) == nil, "the leader has not heard of follower 2's sync yet")
    cluster.hold = nil
    cluster.releaseHeld()
    let released = cluster.now
    cluster.advance(.seconds(1)) { cluster.produceAnswer(produced) != nil }
    #expect(cluster.produceAnswer(produced)?.errorCode == KafkaErrorCode.none)
    #expect(cluster.now - released <= .milliseconds(100), "reported at once, not after the 500 ms fetch backoff")
}

@Test func requestsForUnknownPartitionsAndDuplicatesAnswerAsKafkaDoes() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.replica(1)?.isLeader == true && cluster.replica(3) != nil }
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }

    let unknown = cluster.produce(clientBatch(records: 1, seed: 3), to: NodeID(1), topic: "missing", acks: 1)
    #expect(cluster.produceAnswer(unknown)?.errorCode == .unknownTopicOrPartition)

    // An idempotent batch sent twice is stored once; the retry gets the original offset.
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    builder.producerID = 42
    builder.producerEpoch = 0
    builder.baseSequence = 0
    builder.append(key: nil, value: [1, 2, 3])
    let idempotent = builder.build()
    let first = cluster.produce(idempotent, to: NodeID(1))
    cluster.advance(.seconds(3)) { cluster.produceAnswer(first) != nil }
    let retry = cluster.produce(idempotent, to: NodeID(1))
    cluster.advance(.seconds(1)) { cluster.produceAnswer(retry) != nil }
    #expect(cluster.produceAnswer(first)?.baseOffset == Offset(0))
    #expect(cluster.produceAnswer(retry)?.errorCode == KafkaErrorCode.none)
    #expect(cluster.produceAnswer(retry)?.baseOffset == Offset(0))
    #expect(cluster.replica(1)?.logEndOffset == Offset(1))

    let listed = cluster.send(.listOffsets(KafkaWire.ListOffsetsRequest(replicaId: -1, topics: [
        .init(name: topicName, partitions: [.init(partitionIndex: 0, timestamp: ListOffsetsTimestamp.latest)]),
    ])), to: NodeID(1))
    guard case let .listOffsets(offsets)? = cluster.responses[listed] else { Issue.record("no list offsets answer"); return }
    #expect(offsets.topics[0].partitions[0].offset == 1)

    let metadata = cluster.send(.metadata(KafkaWire.MetadataRequest(topics: nil)), to: NodeID(3))
    guard case let .metadata(described)? = cluster.responses[metadata] else { Issue.record("no metadata answer"); return }
    #expect(described.topics.map(\.name) == [topicName])
    #expect(described.topics[0].partitions[0].leaderId == 1)
}

@Test func deduplicationSurvivesFailoverAndRestartThroughFollowerStateAndSnapshots() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.replica(1)?.isLeader == true && cluster.replica(3) != nil }
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    builder.producerID = 42
    builder.producerEpoch = 0
    builder.baseSequence = 0
    builder.append(key: nil, value: [1, 2, 3])
    let idempotent = builder.build()
    let first = cluster.produce(idempotent, to: NodeID(1))
    cluster.advance(.seconds(3)) { cluster.produceAnswer(first) != nil }
    #expect(cluster.produceAnswer(first)?.baseOffset == Offset(0))

    // Followers keep the table from the batches they fetch, and snapshot it once committed.
    cluster.advance(.seconds(3))
    let snapshot = "/data/orders-0/" + ProducerStateSnapshotFiles.fileName(for: Offset(1))
    #expect(cluster.disks[NodeID(2)]!.fileExists(snapshot), "broker 2 snapshotted its producer state")

    // Broker 2 takes over: the retry is recognised without any rebuild.
    cluster.commit(leader: NodeID(2))
    cluster.advance(.seconds(2)) { cluster.replica(2)?.isLeader == true && cluster.replica(2)?.log.hasDurabilityBarrier == false }
    let retry = cluster.produce(idempotent, to: NodeID(2))
    cluster.advance(.seconds(2)) { cluster.produceAnswer(retry) != nil }
    #expect(cluster.produceAnswer(retry)?.errorCode == KafkaErrorCode.none)
    #expect(cluster.produceAnswer(retry)?.baseOffset == Offset(0), "a duplicate gets its original offset")
    #expect(cluster.replica(2)?.logEndOffset == Offset(1))

    // A restarted broker 2 loads the snapshot and deduplicates again.
    cluster.restart(NodeID(2))
    cluster.advance(.seconds(3)) { cluster.replica(2)?.isLeader == true && cluster.replica(2)?.log.hasDurabilityBarrier == false }
    let again = cluster.produce(idempotent, to: NodeID(2))
    cluster.advance(.seconds(2)) { cluster.produceAnswer(again) != nil }
    #expect(cluster.produceAnswer(again)?.baseOffset == Offset(0))
    #expect(cluster.replica(2)?.logEndOffset == Offset(1))

    // The next sequence is accepted, a gap refused.
    builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    builder.producerID = 42
    builder.producerEpoch = 0
    builder.baseSequence = 5
    builder.append(key: nil, value: [4])
    let gap = cluster.produce(builder.build(), to: NodeID(2))
    cluster.advance(.seconds(1)) { cluster.produceAnswer(gap) != nil }
    #expect(cluster.produceAnswer(gap)?.errorCode == .outOfOrderSequenceNumber)
}

@Test func consumerFetchesWaitForDataOrTheirDeadlineAndFollowersLongPoll() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.replica(1)?.isLeader == true && cluster.replica(3) != nil }
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }

    // Idle followers park their fetches at the leader instead of asking every tick.
    cluster.followerFetchWaits.removeAll()
    cluster.advance(.seconds(2))
    #expect(!cluster.followerFetchWaits.isEmpty && cluster.followerFetchWaits.count <= 12,
            "two idle followers with 500 ms long polls fetch a few times in 2 s, not every tick")
    #expect(cluster.followerFetchWaits.allSatisfy { $0 == 500 })

    // A consumer at the end of the log waits; data arriving answers it.
    let waiting = cluster.sendConsumerFetch(to: NodeID(1), offset: Offset(0), maxWaitMilliseconds: 5_000)
    #expect(cluster.fetchAnswer(waiting) == nil, "nothing to read: the fetch is parked")
    let start = cluster.now
    let produced = cluster.produce(clientBatch(records: 4, seed: 9), to: NodeID(1))
    cluster.advance(.seconds(3)) { cluster.fetchAnswer(waiting) != nil }
    let answered = try #require(cluster.fetchAnswer(waiting))
    #expect(answered.errorCode == .none)
    #expect(try RecordBatchHeader.read(answered.records).lastOffset == 3)
    #expect(cluster.now - start < .milliseconds(500), "answered when the data was committed, not at its deadline")
    #expect(cluster.produceAnswer(produced)?.errorCode == KafkaErrorCode.none)

    // With nothing new, the fetch is answered empty once its wait runs out.
    let idle = cluster.sendConsumerFetch(to: NodeID(1), offset: Offset(4), maxWaitMilliseconds: 300)
    cluster.advance(.milliseconds(200))
    #expect(cluster.fetchAnswer(idle) == nil)
    cluster.advance(.milliseconds(200))
    let empty = try #require(cluster.fetchAnswer(idle))
    #expect(empty.errorCode == .none && empty.records.isEmpty && empty.highWatermark == Offset(4))

    // A parked fetch of a partition whose leadership moves is answered with the error at once.
    let moving = cluster.sendConsumerFetch(to: NodeID(1), offset: Offset(4), maxWaitMilliseconds: 5_000)
    cluster.commit(isr: [NodeID(2), NodeID(3)], leader: NodeID(2))
    cluster.advance(.seconds(1)) { cluster.fetchAnswer(moving) != nil }
    #expect(cluster.fetchAnswer(moving)?.errorCode == .notLeaderOrFollower)
}

@Test func adminRequestsAreForwardedToTheControllerAndAnsweredOrGivenUp() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.replica(3) != nil }

    let request = ControllerRequest.createTopics(CreateTopicsRequest(topics: [CreateTopicsRequest.Topic(name: "payments")]))
    cluster.adminRefusalsLeft = 1
    let forwarded = cluster.sendAdmin(request, to: NodeID(3))
    cluster.advance(.seconds(2)) { cluster.adminAnswers[forwarded] != nil }
    guard case let .createTopics(created)?? = cluster.adminAnswers[forwarded] else {
        Issue.record("no CreateTopics answer: \(String(describing: cluster.adminAnswers[forwarded]))")
        return
    }
    #expect(created.topics.map(\.name) == ["payments"])
    #expect(cluster.adminRequestsSeen == 2, "refused once by a controller that was not active, then sent again")

    // A controller that never accepts: the client is told after the forwarding deadline.
    cluster.adminRefusalsLeft = Int.max
    let abandoned = cluster.sendAdmin(request, to: NodeID(2))
    cluster.advance(.seconds(29))
    #expect(cluster.adminAnswers[abandoned] == nil)
    cluster.advance(.seconds(2)) { cluster.adminAnswers[abandoned] != nil }
    #expect(cluster.adminAnswers[abandoned] == .some(nil), "given up with notController")
}

/// A client's AlterPartitionReassignments (API 45) reaches the active controller through any
/// broker's front door, null replicas (a cancel) included, and the controller's per-partition
/// answers come back in Kafka's response.
@Test func partitionReassignmentsAreForwardedFromTheFrontDoor() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.replica(3) != nil }
    let asked = cluster.send(.alterPartitionReassignments(KafkaWire.AlterPartitionReassignmentsRequest(timeoutMs: 5_000, topics: [
        .init(name: topicName, partitions: [.init(partitionIndex: 0, replicas: [3, 1, 2]), .init(partitionIndex: 1, replicas: nil)]),
    ])), to: NodeID(2))
    cluster.advance(.seconds(1)) { cluster.responses[asked] != nil }
    #expect(cluster.reassignmentsAsked == [AlterPartitionReassignmentsRequest(reassignments: [
        .init(topicPartition: partition0, targetReplicas: [NodeID(3), NodeID(1), NodeID(2)]),
        .init(topicPartition: TopicPartition(topic: topicName, partition: 1), targetReplicas: nil),
    ])])
    guard case let .alterPartitionReassignments(answer)? = cluster.responses[asked] else {
        Issue.record("no AlterPartitionReassignments answer: \(String(describing: cluster.responses[asked]))")
        return
    }
    #expect(answer.errorCode == 0)
    #expect(answer.responses.map(\.name) == [topicName])
    #expect(answer.responses.first?.partitions.map(\.errorCode) == [0, ControllerErrorCode.noReassignmentInProgress.rawValue])
}

/// Seed 1656 of the 10,000-seed sweep: a follower found corruption while its metadata image still
/// said it was out of the ISR (the controller had just added it back). It decided from that stale
/// image that nobody counted on its copy, discarded it without telling the controller, was later
/// elected with an empty log, and the intact replicas truncated to it.
@Test func aReplicaThatLostDataReportsItWhateverItsImageSaysAndDiscardsOnlyOnceTheLossIsRecorded() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.brokerIDs.allSatisfy { cluster.broker($0.rawValue).dataPlane.hostedPartitions == [partition0] } }
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }
    let produced = cluster.produce(clientBatch(records: 5, seed: 3), to: NodeID(1))
    cluster.advance(.seconds(3)) { cluster.produceAnswer(produced) != nil && cluster.replica(2)?.highWatermark == Offset(5) }
    #expect(cluster.produceAnswer(produced)?.errorCode == KafkaErrorCode.none)

    // Broker 2 learns it left the ISR; the controller adds it back (on the strength of a fetch of
    // 2's the leader re-read), but 2 does not hear of that yet.
    cluster.refusesAlterPartition = true
    cluster.commit(isr: [NodeID(1), NodeID(3)])
    cluster.advance(.seconds(1)) { cluster.broker(2).dataPlane.image.partition(partition0)?.isr == [NodeID(1), NodeID(3)] }
    cluster.hold = { from, to in from == DataPlaneHarness.controllerID && to == NodeID(2) }
    cluster.commit(isr: cluster.brokerIDs)
    cluster.refusesAlterPartition = false
    cluster.advance(.milliseconds(500))
    #expect(cluster.broker(2).dataPlane.image.partition(partition0)?.isr == [NodeID(1), NodeID(3)], "2's image is stale")

    cluster.corruptAndRead(2)
    let corruption = try #require(cluster.replica(2)?.log.corruption)
    cluster.reportedLosses[NodeID(2)] = []
    cluster.advance(.seconds(5))
    let expected = ReplicaDataLossReport(replica: ReplicaReference(topicID: topicID, partition: 0), firstLostOffset: corruption.offset)
    #expect(cluster.reportedLosses[NodeID(2)]?.last == [expected], "reported, though its image says no one counts on it")
    #expect(cluster.replica(2)?.log.corruption != nil && cluster.replica(2)?.logEndOffset == Offset(5),
            "nothing discarded before the controller records the loss")

    // The controller records the loss (keeping 2 in the ISR, as at min.insync.replicas); 2 hears of it.
    let markedAt = cluster.partitionState.partitionEpoch.next
    cluster.commit(dataLoss: [ReplicaDataLoss(broker: NodeID(2), firstLostOffset: corruption.offset, markedAt: markedAt)])
    cluster.hold = nil
    cluster.releaseHeld()
    cluster.advance(.seconds(5)) { cluster.partitionState.dataLoss.isEmpty }
    #expect(cluster.replica(2)?.acknowledgedLoss == markedAt, "2 discarded what it lost and named the loss in its fetches")
    #expect(cluster.partitionState.dataLoss.isEmpty, "the leader vouched that 2 fetched it back")
    let clearing = try #require(cluster.alterPartitionLog.last?.partitions.first?.newISR.first { $0.brokerID == NodeID(2) })
    #expect(clearing.acknowledgedLoss == markedAt)
    let leaderBytes = try #require(cluster.consume(from: NodeID(1))).records
    let followerLog = try #require(cluster.replica(2)?.log)
    #expect(try followerLog.read(from: .zero, maxBytes: 1 << 20, maximumOffset: followerLog.logEndOffset).bytes == leaderBytes)
    cluster.advance(.seconds(3))
    #expect(cluster.reportedLosses[NodeID(2)]?.last == [], "nothing left to report")
}

@Test func listOffsetsFindsRecordsByTimestampBelowTheHighWatermark() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.replica(1)?.isLeader == true && cluster.replica(3) != nil }
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }
    let start: Int64 = 1_700_000_000_000
    for (index, timestamp) in [start, start + 1_000, start + 2_000].enumerated() {
        var builder = RecordBatchBuilder(baseTimestamp: timestamp)
        builder.append(key: nil, value: [UInt8(index)])
        builder.append(key: nil, value: [UInt8(index)], timestampDelta: 500)  // a batch of two: 0/500 ms in
        let produced = cluster.produce(builder.build(), to: NodeID(1))
        cluster.advance(.seconds(3)) { cluster.produceAnswer(produced) != nil }
        #expect(cluster.produceAnswer(produced)?.errorCode == KafkaErrorCode.none)
    }
    func list(_ timestamp: Int64) -> (offset: Int64, timestamp: Int64, leaderEpoch: Int32)? {
        let listed = cluster.send(.listOffsets(KafkaWire.ListOffsetsRequest(replicaId: -1, topics: [
            .init(name: topicName, partitions: [.init(partitionIndex: 0, timestamp: timestamp)]),
        ])), to: NodeID(1))
        guard case let .listOffsets(answer)? = cluster.responses[listed], let partition = answer.topics.first?.partitions.first,
              partition.errorCode == 0 else { return nil }
        return (partition.offset, partition.timestamp, partition.leaderEpoch)
    }
    let epoch = try #require(cluster.replica(1)?.leaderEpoch.rawValue)
    #expect(list(start - 1)! == (0, start, epoch))
    #expect(list(start + 1)! == (1, start + 500, epoch), "the second record of the first batch")
    #expect(list(start + 1_200)! == (3, start + 1_500, epoch))
    #expect(list(start + 2_500)! == (5, start + 2_500, epoch))
    #expect(list(start + 2_501)! == (-1, -1, -1), "nothing that late")
    #expect(list(ListOffsetsTimestamp.maxTimestamp)! == (5, start + 2_500, epoch))
    #expect(list(ListOffsetsTimestamp.earliestLocal)! == (0, -1, epoch))
    #expect(list(ListOffsetsTimestamp.latestTiered)! == (-1, -1, -1), "nothing is tiered")
    #expect(list(ListOffsetsTimestamp.latest)! == (6, -1, epoch))
}

@Test func metadataCreatesTopicsItMayAndRefusesTheRest() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.replica(1)?.isLeader == true }
    func ask(_ names: [String], allow: Bool, version: Int16 = 12) -> [String: KafkaErrorCode] {
        var request = KafkaWire.MetadataRequest(topics: names.map { KafkaWire.MetadataRequest.MetadataRequestTopic(name: $0) })
        request.allowAutoTopicCreation = allow
        let sent = cluster.send(.metadata(request), to: NodeID(2), version: version)
        guard case let .metadata(answer)? = cluster.responses[sent] else { Issue.record("no metadata answer"); return [:] }
        // A name asked twice is answered twice, alike.
        return Dictionary(answer.topics.map { ($0.name ?? "", KafkaErrorCode(wire: $0.errorCode)) }, uniquingKeysWith: { first, _ in first })
    }
    #expect(ask(["not-asked"], allow: false) == ["not-asked": .unknownTopicOrPartition])
    #expect(cluster.createTopicsAsked.isEmpty, "a client that does not allow creation creates nothing")

    #expect(ask(["new-a", "new-b", "new-a", topicName], allow: true)
        == ["new-a": .leaderNotAvailable, "new-b": .leaderNotAvailable, topicName: .none])
    #expect(cluster.createTopicsAsked.map { $0.topics.map(\.name) } == [["new-a", "new-b"]], "one CreateTopics, each name once")
    #expect(cluster.createTopicsAsked.flatMap(\.topics).allSatisfy { $0.partitionCount == -1 && $0.replicationFactor == -1 },
            "the controller's num.partitions and default.replication.factor")

    #expect(ask(["old-client"], allow: false, version: 3) == ["old-client": .leaderNotAvailable], "before v4 creation is implied")
    #expect(ask(["bad name", "__cluster_metadata"], allow: true) == ["bad name": .invalidTopic, "__cluster_metadata": .invalidTopic])
    #expect(cluster.createTopicsAsked.map { $0.topics.map(\.name) } == [["new-a", "new-b"], ["old-client"]])
}

@Test func autoCreationCanBeTurnedOff() throws {
    let cluster = try DataPlaneHarness(autoCreateTopics: false)
    cluster.advance(.seconds(1)) { cluster.replica(1)?.isLeader == true }
    var request = KafkaWire.MetadataRequest(topics: [.init(name: "new-topic")])
    request.allowAutoTopicCreation = true
    let sent = cluster.send(.metadata(request), to: NodeID(2))
    guard case let .metadata(answer)? = cluster.responses[sent] else { Issue.record("no metadata answer"); return }
    #expect(answer.topics.map { KafkaErrorCode(wire: $0.errorCode) } == [.unknownTopicOrPartition])
    #expect(cluster.createTopicsAsked.isEmpty)
}

/// DeleteRecords moves the leader's log start at once, and is answered only once every in-sync
/// follower has learned it from a fetch answer and moved its own (the low watermark); a consumer
/// below it is told OFFSET_OUT_OF_RANGE, and an offset past the high watermark is refused.
@Test func deleteRecordsIsAnsweredOnceEveryInSyncCopyStartsThere() throws {
    let cluster = try DataPlaneHarness()
    cluster.advance(.seconds(1)) { cluster.replica(1)?.isLeader == true && cluster.replica(3) != nil }
    cluster.advance(.seconds(1)) { cluster.replica(1)?.log.hasDurabilityBarrier == false }
    for index in 0..<3 {
        var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
        builder.append(key: nil, value: [UInt8(index)])
        builder.append(key: nil, value: [UInt8(index)])
        let produced = cluster.produce(builder.build(), to: NodeID(1))
        cluster.advance(.seconds(3)) { cluster.produceAnswer(produced) != nil }
    }
    cluster.advance(.seconds(1)) { (1...3).allSatisfy { cluster.replica($0)?.log.highWatermark == Offset(6) } }
    func deleteRecords(before offset: Int64) -> UInt64 {
        cluster.send(.deleteRecords(KafkaWire.DeleteRecordsRequest(topics: [
            .init(name: topicName, partitions: [.init(partitionIndex: 0, offset: offset)]),
        ], timeoutMs: 5_000)), to: NodeID(1))
    }
    func answer(_ correlationID: UInt64) -> (lowWatermark: Int64, error: KafkaErrorCode)? {
        guard case let .deleteRecords(response)? = cluster.responses[correlationID],
              let partition = response.topics.first?.partitions.first else { return nil }
        return (partition.lowWatermark, KafkaErrorCode(rawValue: partition.errorCode) ?? .unknownServerError)
    }
    let deleted = deleteRecords(before: 4)
    #expect(cluster.replica(1)?.log.logStartOffset == Offset(4), "the leader moves at once")
    #expect(answer(deleted) == nil, "the followers still start at 0")
    cluster.advance(.seconds(3)) { answer(deleted) != nil }
    #expect(answer(deleted)! == (4, KafkaErrorCode.none))
    #expect((2...3).allSatisfy { cluster.replica($0)?.log.logStartOffset == Offset(4) })
    #expect(cluster.consume(from: NodeID(1), offset: Offset(2))?.errorCode == .offsetOutOfRange)
    #expect(cluster.consume(from: NodeID(1), offset: Offset(4))?.errorCode == KafkaErrorCode.none)

    let past = deleteRecords(before: 7)
    #expect(answer(past)! == (-1, .offsetOutOfRange))
    let toEnd = deleteRecords(before: -1)
    cluster.advance(.seconds(3)) { answer(toEnd) != nil }
    #expect(answer(toEnd)! == (6, KafkaErrorCode.none), "-1 means the high watermark")
    #expect(cluster.replica(1)?.log.logStartOffset == Offset(6))
}
