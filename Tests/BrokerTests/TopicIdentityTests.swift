import Broker
import Controller
import KafkaProtocol
import LogStorage
import NodeKit
import SimWorld
import Simulator
import TernCore
import Testing

// A topic deleted (and created again under the same name) while a broker was down, or whose
// directory's removal failed halfway: the broker never serves, replicates or counts the old
// topic's records for the new one. One broker's data plane on a SimDisk, fed committed images by
// the test (broker 2 exists only as a name in the replica list).

private let brokerID = NodeID(1)
private let clientID = NodeID(200)
private let topicA = TopicID(high: 1, low: 0xA)
private let topicB = TopicID(high: 2, low: 0xB)
private let orders0 = TopicPartition(topic: "orders", partition: 0)
private let testStart = Instant(nanoseconds: 1_700_000_000_000 * 1_000_000)

/// Forwards to a SimDisk; while `failRemovalsAfter` is set, removals under a moved-aside directory
/// fail with EIO once that many have succeeded (a removal that fails halfway).
private final class FaultyRemovalDisk: Disk {
    let disk: SimDisk
    var failRemovalsAfter: Int?
    var failRenames = false
    private(set) var removalsUnderMovedAside = 0

    init(_ disk: SimDisk) { self.disk = disk }

    func makeDirectory(_ path: String) throws(DiskError) { try disk.makeDirectory(path) }
    func listDirectory(_ path: String) throws(DiskError) -> [String] { try disk.listDirectory(path) }
    func fileExists(_ path: String) -> Bool { disk.fileExists(path) }
    func remove(_ path: String) throws(DiskError) {
        if path.contains("-delete") {
            if let limit = failRemovalsAfter, removalsUnderMovedAside >= limit {
                throw .io(operation: "unlink", path: path, code: 5)
            }
            removalsUnderMovedAside += 1
        }
        try disk.remove(path)
    }
    func rename(_ source: String, to destination: String) throws(DiskError) {
        if failRenames { throw .io(operation: "rename", path: source, code: 5) }
        try disk.rename(source, to: destination)
    }
    func open(_ path: String, create: Bool) throws(DiskError) -> DiskFile { try disk.open(path, create: create) }
    func close(_ file: DiskFile) { disk.close(file) }
    func size(_ file: DiskFile) throws(DiskError) -> Int64 { try disk.size(file) }
    func read(_ file: DiskFile, at position: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(DiskError) -> Int {
        try disk.read(file, at: position, into: buffer)
    }
    func write(_ file: DiskFile, at position: Int64, _ bytes: UnsafeRawBufferPointer) throws(DiskError) {
        try disk.write(file, at: position, bytes)
    }
    func truncate(_ file: DiskFile, to size: Int64) throws(DiskError) { try disk.truncate(file, to: size) }
    func sync(_ file: DiskFile) -> SyncToken { disk.sync(file) }
    func syncDirectory(_ path: String) -> SyncToken { disk.syncDirectory(path) }
    func pollCompletions(into completions: inout [SyncCompletion]) { disk.pollCompletions(into: &completions) }
}

private final class SingleBroker {
    let simDisk: SimDisk
    let disk: FaultyRemovalDisk
    var dataPlane: BrokerDataPlane
    /// The committed metadata log, one record per offset.
    var metadata: [MetadataRecord] = [
        .registerBroker(BrokerRegistrationRecord(brokerID: brokerID, brokerEpoch: BrokerEpoch(1), incarnationID: IncarnationID(high: 1, low: 1),
                                                 endpoints: [], rack: nil)),
        .unfenceBroker(BrokerAndEpoch(brokerID: brokerID, brokerEpoch: BrokerEpoch(1))),
    ]
    var now = testStart
    var responses: [UInt64: KafkaResponse] = [:]
    /// Follower fetches the broker sent to node 2, by correlation id.
    var fetchesSent: [UInt64: KafkaWire.FetchRequest] = [:]
    var nextCorrelationID: UInt64 = 1

    init(seed: UInt64 = 5, crashes: SimDisk.Configuration.CrashBehavior = .dropUnsynced) {
        var configuration = SimDisk.Configuration.benignCrashes
        configuration.crashBehavior = crashes
        simDisk = SimDisk(random: DeterministicRandom(seed: seed), configuration: configuration)
        // The data directory exists durably, as a configured log.dirs does; what is created and
        // renamed in it is durable only once it is synced.
        try! simDisk.makeDirectory("/data")
        _ = simDisk.syncDirectory("/")
        while let due = simDisk.nextCompletionTime { simDisk.advance(to: due) }
        var discarded: [SyncCompletion] = []
        simDisk.pollCompletions(into: &discarded)
        disk = FaultyRemovalDisk(simDisk)
        dataPlane = Self.makeDataPlane(disk)
        applyImage()
    }

    static func makeDataPlane(_ disk: any Disk) -> BrokerDataPlane {
        BrokerDataPlane(localID: brokerID, clusterID: "test", configuration: BrokerDataPlaneConfiguration(), disk: disk,
                        dataDirectory: "/data", controller: NodeID(100))
    }

    static func creation(of topicID: TopicID) -> [MetadataRecord] {
        [.topic(TopicRecord(name: orders0.topic, topicID: topicID, configs: [])),
         .partition(PartitionRecord(topicID: topicID, partition: 0, replicas: [brokerID, NodeID(2)], isr: [brokerID], leader: brokerID,
                                    leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0)))]
    }

    /// The partition led by node 2, this broker following.
    static func creationFollowingNode2(of topicID: TopicID) -> [MetadataRecord] {
        [.topic(TopicRecord(name: orders0.topic, topicID: topicID, configs: [])),
         .partition(PartitionRecord(topicID: topicID, partition: 0, replicas: [NodeID(2), brokerID], isr: [NodeID(2), brokerID],
                                    leader: NodeID(2), leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0)))]
    }

    /// Node 2's answer to the follower fetch `correlationID`.
    func answerFetch(_ correlationID: UInt64, _ response: KafkaWire.FetchResponse) {
        var effects: [NodeEffect] = []
        let header = KafkaRequestHeader(apiKey: KafkaAPIKey.fetch.rawValue, apiVersion: SupportedAPIVersions.replicaFetchVersion,
                                        correlationID: Int32(truncatingIfNeeded: correlationID), clientID: nil)
        dataPlane.handleReplicaFetchResponse(encodeKafkaResponse(.fetch(response), for: header), correlationID: correlationID,
                                             from: NodeID(2), now: now)
        dataPlane.finishEvent(now: now, effects: &effects)
        collect(effects)
    }

    static func deletion(of topicID: TopicID) -> [MetadataRecord] { [.removeTopic(RemoveTopicRecord(topicID: topicID))] }

    var image: MetadataImage {
        var image = MetadataImage.empty
        for (offset, record) in metadata.enumerated() { try! image.apply(record, at: Offset(Int64(offset))) }
        return image
    }

    /// Records committed while the broker runs: it applies them at once.
    func commit(_ records: [MetadataRecord]) {
        metadata += records
        applyImage()
    }

    func applyImage() {
        var effects: [NodeEffect] = []
        dataPlane.applyImage(image, now: now, effects: &effects)
        dataPlane.finishEvent(now: now, effects: &effects)
        collect(effects)
    }

    /// `kill -9` and a start on the same disk: the new process applies the committed image.
    func restart() {
        simDisk.killProcess()
        dataPlane = Self.makeDataPlane(disk)
        applyImage()
    }

    /// The broker starts again after the machine lost power (`SimDisk.crash()`).
    func startAfterPowerLoss() {
        dataPlane = Self.makeDataPlane(disk)
        applyImage()
    }

    /// Moves time in 10 ms steps: disk completions, then a tick.
    func run(_ duration: Duration, until done: () -> Bool = { false }) {
        let end = now + duration
        while now < end, !done() {
            now = now + .milliseconds(10)
            simDisk.advance(to: now)
            var completions: [SyncCompletion] = []
            simDisk.pollCompletions(into: &completions)
            var effects: [NodeEffect] = []
            for completion in completions {
                _ = dataPlane.handleSyncCompletion(completion, now: now)
                dataPlane.finishEvent(now: now, effects: &effects)
            }
            dataPlane.tick(now: now, effects: &effects)
            dataPlane.finishEvent(now: now, effects: &effects)
            collect(effects)
        }
    }

    private func collect(_ effects: [NodeEffect]) {
        for answer in dataPlane.takeAnswers() { responses[answer.requester.correlationID] = answer.response }
        for effect in effects {
            switch effect {
            case let .send(to, bytes):
                if to == NodeID(2), case let .kafkaRequest(correlationID, frame)? = try? PeerMessage(decoding: bytes),
                   case let .fetch(fetch)? = try? decodeKafkaRequest(frame.dropFirst(4), versions: SupportedAPIVersions.generatedRange(of:)).body {
                    fetchesSent[correlationID] = fetch
                }
            case let .halt(reason), let .exit(reason):
                Issue.record("the broker stopped: \(reason)")
            case .reply, .closeClient, .pauseClientReads, .resumeClientReads, .openOutbound, .sendOutbound, .closeOutbound, .log:
                Issue.record("no client connection is open: \(effect)")
            }
        }
    }

    /// Hands the data plane `request` from `sender` (a client's pseudo node, or a broker) at
    /// `version` (by default the newest served to clients).
    func request(_ request: KafkaRequest, from sender: NodeID = clientID, version: Int16? = nil) -> UInt64 {
        let correlationID = nextCorrelationID
        nextCorrelationID += 1
        var effects: [NodeEffect] = []
        let requester = DataPlaneRequester(node: sender, correlationID: correlationID,
                                           version: version ?? SupportedAPIVersions.servedRange(of: request.apiKey).upperBound)
        dataPlane.handleRequest(request, from: requester, now: now)
        dataPlane.finishEvent(now: now, effects: &effects)
        collect(effects)
        return correlationID
    }

    /// Writes `values` with acks=all and waits for the answer; returns the base offset.
    @discardableResult
    func produce(_ values: [String]) -> Offset? {
        run(.seconds(2)) { dataPlane.replica(for: orders0)?.log.hasDurabilityBarrier == false }
        var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
        for value in values { builder.append(key: nil, value: Array(value.utf8)) }
        let id = request(.produce(KafkaWire.ProduceRequest(acks: -1, timeoutMs: 5_000, topicData: [
            .init(name: orders0.topic, partitionData: [.init(index: 0, records: builder.build())]),
        ])))
        run(.seconds(2)) { responses[id] != nil }
        guard case let .produce(answer)? = responses[id], let partition = answer.responses.first?.partitionResponses.first,
              partition.errorCode == KafkaErrorCode.none.rawValue else { return nil }
        return Offset(partition.baseOffset)
    }

    /// What a consumer reading from `offset` is served: the values, or the error. A follower
    /// (`asFollower`) fetches as brokers do, naming the topic by `topicID`; a consumer by name.
    func consume(from offset: Offset = Offset(0), topicID: KafkaUUID = .zero, asFollower follower: NodeID? = nil)
        -> (error: KafkaErrorCode, values: [String]) {
        var fetch = KafkaWire.FetchRequest(maxWaitMs: 0, minBytes: 1, maxBytes: 1 << 20, topics: [
            .init(topic: orders0.topic, topicId: topicID, partitions: [.init(partition: 0, fetchOffset: offset.rawValue, partitionMaxBytes: 1 << 20)]),
        ])
        if let follower {
            fetch.replicaState = KafkaWire.FetchRequest.ReplicaState(replicaId: follower.rawValue, replicaEpoch: 2)
        }
        let id = request(.fetch(fetch), from: follower ?? clientID,
                         version: follower == nil ? nil : SupportedAPIVersions.replicaFetchVersion)
        guard case let .fetch(answer)? = responses[id], let partition = answer.responses.first?.partitions.first else {
            return (.unknownServerError, [])
        }
        var values: [String] = []
        var position = 0
        while position < partition.records.count, let batch = try? RecordBatch(partition.records, at: position) {
            position += batch.header.totalSize
            for record in (try? batch.records()) ?? [] { values.append(String(decoding: record.value ?? [], as: UTF8.self)) }
        }
        return (KafkaErrorCode(rawValue: partition.errorCode) ?? .unknownServerError, values)
    }

    /// The values a consumer is served once the leader's high watermark covers `count` records
    /// (after a restart it learns it again from its own synced log).
    func consumeCommitted(_ count: Int) -> [String] {
        run(.seconds(2)) { consume().values.count >= count }
        return consume().values
    }

    /// Entries of the data directory for partition 0 of `orders`, live or moved aside.
    var ordersDirectories: [String] {
        ((try? simDisk.listDirectory("/data")) ?? []).filter { $0.hasPrefix("orders-0") }
    }

    /// Every value stored in the directory's segment files, however the log reads them.
    func storedValues(in directory: String) -> [String] {
        let path = joinPath("/data", directory)
        var values: [String] = []
        for name in (try? simDisk.listDirectory(path)) ?? [] where name.hasSuffix(".log") {
            let bytes = simDisk.volatileContents(of: joinPath(path, name)) ?? []
            var position = 0
            while position < bytes.count, let batch = try? RecordBatch(bytes, at: position) {
                position += batch.header.totalSize
                for record in (try? batch.records()) ?? [] { values.append(String(decoding: record.value ?? [], as: UTF8.self)) }
            }
        }
        return values
    }
}

/// A broker hosting topic A's partition with three records, durable.
private func brokerWithOldTopic(seed: UInt64 = 5, crashes: SimDisk.Configuration.CrashBehavior = .dropUnsynced) -> SingleBroker {
    let broker = SingleBroker(seed: seed, crashes: crashes)
    broker.commit(SingleBroker.creation(of: topicA))
    #expect(broker.produce(["a0", "a1", "a2"]) == Offset(0))
    broker.run(.seconds(2)) { broker.dataPlane.replica(for: orders0)?.log.isIdle == true }
    return broker
}

@Test func aTopicDeletedWhileTheBrokerWasDownIsRemovedAtItsStart() throws {
    let broker = brokerWithOldTopic()
    broker.simDisk.killProcess()
    broker.metadata += SingleBroker.deletion(of: topicA)  // committed while the broker is down
    broker.restart()
    // Before anything is opened or served, the old directory no longer has its live name.
    #expect(broker.dataPlane.hostedPartitions.isEmpty)
    #expect(!broker.simDisk.fileExists("/data/orders-0"))
    broker.run(.seconds(1)) { broker.ordersDirectories.isEmpty }
    #expect(broker.ordersDirectories.isEmpty, "the moved-aside directory is removed once the move is durable")

    broker.commit(SingleBroker.creation(of: topicB))
    #expect(broker.consume().values.isEmpty)
    #expect(broker.produce(["b0"]) == Offset(0), "the new topic starts at offset 0")
    #expect(broker.consume().values == ["b0"])
}

@Test func aTopicDeletedAndCreatedAgainWhileTheBrokerWasDownStartsEmpty() throws {
    let broker = brokerWithOldTopic()
    broker.simDisk.killProcess()
    broker.metadata += SingleBroker.deletion(of: topicA) + SingleBroker.creation(of: topicB)
    broker.restart()
    let log = try #require(broker.dataPlane.replica(for: orders0)?.log)
    #expect(broker.dataPlane.topicID(of: orders0) == topicB)
    #expect(log.logEndOffset == Offset(0), "the new topic's log is a new directory, not the old one reopened")
    #expect(broker.consume().values.isEmpty)
    #expect(broker.produce(["b0", "b1"]) == Offset(0))
    #expect(broker.consume().values == ["b0", "b1"])
    broker.run(.seconds(1)) { broker.ordersDirectories == ["orders-0"] }
    #expect(broker.ordersDirectories == ["orders-0"])
    let recorded = try PartitionMetadata.read(directory: "/data/orders-0", disk: broker.simDisk)
    #expect(recorded == .topicID(topicB.description))
}

@Test func aCrashHalfwayThroughARemovalNeverLeavesTheOldLogToReopen() throws {
    // The broker deletes A and creates B while running, and the machine loses power 0 to 60 ms
    // later: before the move aside is durable, between it and the removal of the files, or with
    // only some removals on disk. Whatever survives, B starts empty and A's files go.
    var outcomes: Set<String> = []
    for seed in UInt64(1)...40 {
        let broker = brokerWithOldTopic(seed: seed, crashes: .adversarial)
        broker.commit(SingleBroker.deletion(of: topicA) + SingleBroker.creation(of: topicB))
        broker.run(.milliseconds(Int64(seed % 4) * 10))
        broker.simDisk.crash()
        if (try? PartitionMetadata.read(directory: "/data/orders-0", disk: broker.simDisk)) == .topicID(topicA.description) {
            outcomes.insert("the move was lost: the old directory is back under its name")
        } else if broker.ordersDirectories.contains(where: { $0.hasSuffix("-delete") }) {
            outcomes.insert("moved aside, not yet (or not wholly) removed")
        } else {
            outcomes.insert("removed")
        }
        broker.startAfterPowerLoss()
        #expect(broker.dataPlane.topicID(of: orders0) == topicB, "seed \(seed)")
        #expect(broker.dataPlane.replica(for: orders0)?.log.logEndOffset == Offset(0), "seed \(seed): the old log reopened")
        #expect(broker.consume().values.isEmpty, "seed \(seed)")
        broker.run(.seconds(2)) { broker.ordersDirectories == ["orders-0"] }
        #expect(broker.ordersDirectories == ["orders-0"], "seed \(seed): left \(broker.ordersDirectories)")
        #expect(broker.storedValues(in: "orders-0").isEmpty, "seed \(seed)")
    }
    #expect(outcomes.count == 3, "crashes land before the move is durable, before the removal and after it: \(outcomes)")
}

@Test func aRemovalThatFailsHalfwayIsNeverOpenedAndFinishesLater() throws {
    let broker = brokerWithOldTopic()
    broker.disk.failRemovalsAfter = 1
    broker.commit(SingleBroker.deletion(of: topicA) + SingleBroker.creation(of: topicB))
    broker.run(.milliseconds(500))
    let leftover = try #require(broker.ordersDirectories.first { $0.hasSuffix("-delete") })
    #expect(broker.storedValues(in: leftover) == ["a0", "a1", "a2"], "the first removal went, the segment stayed")
    #expect(broker.consume().values.isEmpty)
    #expect(broker.produce(["b0"]) == Offset(0))

    // Still failing across a restart: the leftover is never taken for a partition.
    broker.restart()
    #expect(broker.dataPlane.topicID(of: orders0) == topicB)
    #expect(broker.consumeCommitted(1) == ["b0"])
    #expect(broker.ordersDirectories.contains(leftover))

    broker.disk.failRemovalsAfter = nil
    broker.run(.seconds(3)) { broker.ordersDirectories == ["orders-0"] }
    #expect(broker.ordersDirectories == ["orders-0"], "retried on a later tick")
}

@Test func aDirectoryOfAnotherTopicThatCannotBeMovedAsideIsNotOpened() throws {
    let broker = brokerWithOldTopic()
    broker.disk.failRenames = true
    broker.commit(SingleBroker.deletion(of: topicA) + SingleBroker.creation(of: topicB))
    // A's directory keeps its name (and its topic id): B refuses it instead of reopening it.
    #expect(broker.dataPlane.replica(for: orders0) == nil)
    #expect(broker.consume().error == .notLeaderOrFollower)
    #expect(broker.storedValues(in: "orders-0") == ["a0", "a1", "a2"])

    broker.disk.failRenames = false
    broker.run(.seconds(2)) { broker.dataPlane.replica(for: orders0) != nil }
    #expect(broker.dataPlane.topicID(of: orders0) == topicB)
    #expect(broker.dataPlane.replica(for: orders0)?.log.logEndOffset == Offset(0))
    #expect(broker.consume().values.isEmpty)
}

@Test func directoriesWithoutATopicIdAreKeptOnlyForATopicAssignedHere() throws {
    let broker = SingleBroker()
    // Written before topic ids were recorded: one for a topic that exists, one for a deleted one.
    for name in ["orders-0", "gone-0"] {
        let log = try PartitionLog.open(directory: joinPath("/data", name), disk: broker.simDisk, wallClock: testStart)
        var batch = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
        batch.append(key: nil, value: Array("\(name) legacy".utf8))
        var bytes = batch.build()
        var completions: [SyncCompletion] = []
        while log.hasDurabilityBarrier, let next = broker.simDisk.nextCompletionTime {
            broker.simDisk.advance(to: next)
            broker.simDisk.pollCompletions(into: &completions)
            for completion in completions { log.handle(completion) }
            completions.removeAll()
        }
        try log.appendAsLeader(&bytes, leaderEpoch: LeaderEpoch(0), wallClock: testStart)
        log.close()
    }
    // Not partition directories: never touched.
    try broker.simDisk.makeDirectory("/data/__cluster_metadata-0")
    try broker.simDisk.makeDirectory("/data/not-a-partition")
    broker.simDisk.killProcess()
    broker.metadata += SingleBroker.creation(of: topicA)
    broker.restart()
    broker.run(.seconds(1)) { !broker.simDisk.fileExists("/data/gone-0") && (try? broker.simDisk.listDirectory("/data").count) == 3 }
    #expect(try broker.simDisk.listDirectory("/data") == ["__cluster_metadata-0", "not-a-partition", "orders-0"])
    #expect(broker.consumeCommitted(1) == ["orders-0 legacy"], "adopted with its data")
    #expect(try PartitionMetadata.read(directory: "/data/orders-0", disk: broker.simDisk) == .topicID(topicA.description))
}

@Test func aFollowerOfAnotherTopicOfTheSameNameIsRefused() throws {
    let broker = brokerWithOldTopic()
    // A follower that has not yet applied the deletion and re-creation, and one that has applied
    // it before this leader: neither is answered, nor counted.
    #expect(broker.consume(topicID: KafkaUUID(mostSignificantBits: topicB.high, leastSignificantBits: topicB.low),
                           asFollower: NodeID(2)).error == .unknownTopicID)
    let answered = broker.consume(topicID: KafkaUUID(mostSignificantBits: topicA.high, leastSignificantBits: topicA.low), asFollower: NodeID(2))
    #expect(answered.error == .none && answered.values == ["a0", "a1", "a2"])
    #expect(broker.consume().values == ["a0", "a1", "a2"], "a consumer names no topic id")
}

/// Node 2's answer to a follower fetch: two records of topic A at offsets 0 and 1.
private func answerWithTwoRecords() -> KafkaWire.FetchResponse {
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    builder.partitionLeaderEpoch = 0  // as node 2 stamps it, leading epoch 0
    for value in ["a0", "a1"] { builder.append(key: nil, value: Array(value.utf8)) }
    return KafkaWire.FetchResponse(responses: [
        .init(topicId: topicA.kafkaUUID, partitions: [.init(partitionIndex: 0, highWatermark: 2, lastStableOffset: 2, logStartOffset: 0,
                                                            records: builder.build(), ternLeaderLogEndOffset: 2)]),
    ])
}

/// A broker following node 2 for topic A, with its first fetch sent: its correlation id.
private func followerOfNode2(_ broker: SingleBroker) throws -> UInt64 {
    broker.commit([
        .registerBroker(BrokerRegistrationRecord(brokerID: NodeID(2), brokerEpoch: BrokerEpoch(2), incarnationID: IncarnationID(high: 2, low: 2),
                                                 endpoints: [], rack: nil)),
        .unfenceBroker(BrokerAndEpoch(brokerID: NodeID(2), brokerEpoch: BrokerEpoch(2))),
    ] + SingleBroker.creationFollowingNode2(of: topicA))
    broker.run(.seconds(1)) { !broker.fetchesSent.isEmpty }
    let (correlationID, fetch) = try #require(broker.fetchesSent.first)
    #expect(fetch.topics.first?.topicId == topicA.kafkaUUID)
    #expect(fetch.replicaState?.replicaId == brokerID.rawValue)
    return correlationID
}

@Test func aFollowerAppendsWhatItsLeaderAnswers() throws {
    let broker = SingleBroker()
    let correlationID = try followerOfNode2(broker)
    broker.answerFetch(correlationID, answerWithTwoRecords())
    #expect(broker.dataPlane.replica(for: orders0)?.log.logEndOffset == Offset(2))
}

/// A follower's fetch for topic A is answered after the broker applied A's deletion and B's
/// creation under the same name, with the same leader at the same epochs (a new topic starts at
/// epoch 0): the answer's records are A's and must not land in B's log (seed 1822 of network).
@Test func anAnswerToAFetchForADeletedTopicIsNotAppliedToTheTopicCreatedAgain() throws {
    let broker = SingleBroker()
    let correlationID = try followerOfNode2(broker)
    broker.commit(SingleBroker.deletion(of: topicA) + SingleBroker.creationFollowingNode2(of: topicB))
    #expect(broker.dataPlane.topicID(of: orders0) == topicB)
    broker.run(.milliseconds(100)) { broker.dataPlane.replica(for: orders0)?.log.hasDurabilityBarrier == false }
    #expect(broker.fetchesSent.count == 1, "one fetch in flight to a leader at a time")
    broker.answerFetch(correlationID, answerWithTwoRecords())
    #expect(broker.dataPlane.replica(for: orders0)?.log.logEndOffset == Offset(0))
    broker.run(.milliseconds(200))
    #expect(broker.storedValues(in: "orders-0") == [])
    // The next fetch is B's own.
    broker.run(.seconds(1)) { broker.fetchesSent.count >= 2 }
    let next = try #require(broker.fetchesSent.filter { $0.key != correlationID }.first?.value)
    #expect(next.topics.first?.topicId == topicB.kafkaUUID)
}
