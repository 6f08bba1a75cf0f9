@testable import Controller
import SimWorld
import Simulator
import TernCore
import Testing

/// The metadata invariants the simulator's checker will hold every node to, checked here after
/// every committed record: the leader is in the ISR and live, the ISR is a non-empty subset of the
/// replicas, and epochs (broker, leader, partition) only grow.
enum MetadataInvariants {
    static func violations(from previous: MetadataImage, to next: MetadataImage) -> [String] {
        var problems: [String] = []
        for entry in next.partitions {
            let partition = entry.registration
            let name = entry.topicPartition.description
            if partition.isr.isEmpty { problems.append("\(name): empty ISR") }
            if !partition.isr.allSatisfy(partition.replicas.contains) { problems.append("\(name): ISR \(partition.isr) not within replicas \(partition.replicas)") }
            if let leader = partition.leader {
                if !partition.isr.contains(leader) { problems.append("\(name): leader \(leader) not in ISR \(partition.isr)") }
                if !next.isActive(leader) { problems.append("\(name): leader \(leader) is fenced or shutting down") }
            }
            guard let before = previous.topic(id: entry.topicID)?.partition(entry.topicPartition.partition) else { continue }
            if partition.leaderEpoch < before.leaderEpoch { problems.append("\(name): leader epoch went back") }
            if partition.partitionEpoch < before.partitionEpoch { problems.append("\(name): partition epoch went back") }
            if partition.leader != before.leader && partition.leaderEpoch <= before.leaderEpoch {
                problems.append("\(name): leader changed without a new leader epoch")
            }
            if let problem = MetadataChecker.electionProblem(from: before, to: partition, isActive: next.isActive) {
                problems.append("\(name): \(problem)")
            }
        }
        for broker in next.brokers {
            if let before = previous.broker(broker.brokerID), broker.brokerEpoch < before.brokerEpoch {
                problems.append("broker \(broker.brokerID): epoch went back")
            }
        }
        if next.highestBrokerEpoch < previous.highestBrokerEpoch { problems.append("highest broker epoch went back") }
        if next.nextProducerID < previous.nextProducerID { problems.append("producer ids went back") }
        return problems
    }
}

/// A controller with a stand-in for Raft: proposed records are committed at once, at consecutive
/// offsets, after a trip through the record codec; the invariants are checked after each.
struct ControllerHarness {
    var controller: ControllerCore
    var now = Instant.zero
    private(set) var log: [MetadataRecord] = []
    /// Incarnations handed to brokers, so tests can restart one as a new process.
    private var incarnationCounter: UInt64 = 0

    init(configuration: ControllerConfiguration = ControllerConfiguration(), brokers: [Int32] = []) {
        controller = ControllerCore(image: .empty, configuration: configuration, now: .zero)
        for broker in brokers { startBroker(broker) }
    }

    var image: MetadataImage { controller.image }
    var nextOffset: Offset { Offset(Int64(log.count)) }

    mutating func commit(_ records: [MetadataRecord], sourceLocation: SourceLocation = #_sourceLocation) {
        for record in records {
            let decoded = try? MetadataRecord(decoding: record.encoded())
            #expect(decoded == record, "record codec round trip", sourceLocation: sourceLocation)
            let before = controller.image
            do {
                try controller.replay(record, at: nextOffset)
            } catch {
                Issue.record("replay refused \(record): \(error)", sourceLocation: sourceLocation)
                return
            }
            log.append(record)
            let problems = MetadataInvariants.violations(from: before, to: controller.image)
            #expect(problems.isEmpty, "after \(record): \(problems)", sourceLocation: sourceLocation)
        }
    }

    /// Runs a handler, commits what it proposes, and returns its reply.
    mutating func run<Reply>(_ handler: (inout ControllerCore) -> ControllerResult<Reply>,
                             sourceLocation: SourceLocation = #_sourceLocation) -> Reply {
        let result = handler(&controller)
        commit(result.records, sourceLocation: sourceLocation)
        return result.reply
    }

    /// Like `run`, also returning the records.
    mutating func runWithRecords<Reply>(_ handler: (inout ControllerCore) -> ControllerResult<Reply>) -> (Reply, [MetadataRecord]) {
        let result = handler(&controller)
        commit(result.records)
        return (result.reply, result.records)
    }

    mutating func newIncarnation() -> IncarnationID {
        incarnationCounter += 1
        return IncarnationID(high: 0xC0FFEE, low: incarnationCounter)
    }

    @discardableResult
    mutating func register(_ broker: Int32, incarnation: IncarnationID? = nil) -> BrokerRegistrationResponse {
        let incarnation = incarnation ?? newIncarnation()
        let request = BrokerRegistrationRequest(
            brokerID: NodeID(broker), clusterID: controller.configuration.clusterID, incarnationID: incarnation,
            endpoints: [BrokerEndpoint(listenerName: "PLAINTEXT", host: "broker-\(broker)", port: 9092)], rack: nil)
        let now = self.now
        return run { $0.registerBroker(request, now: now) }
    }

    /// A heartbeat from the broker's current registration, reporting the whole log applied unless told otherwise.
    @discardableResult
    mutating func heartbeat(_ broker: Int32, metadataOffset: Offset? = nil, wantFence: Bool = false,
                            wantShutDown: Bool = false, dataLosses: [ReplicaDataLossReport] = []) -> BrokerHeartbeatResponse {
        let request = BrokerHeartbeatRequest(brokerID: NodeID(broker), brokerEpoch: epoch(of: broker),
                                             metadataOffset: metadataOffset ?? nextOffset - 1,
                                             wantFence: wantFence, wantShutDown: wantShutDown, dataLosses: dataLosses)
        let now = self.now
        return run { $0.heartbeat(request, now: now) }
    }

    /// Registers the broker and heartbeats it until unfenced.
    mutating func startBroker(_ broker: Int32) {
        let registration = register(broker)
        #expect(registration.error == .none)
        let reply = heartbeat(broker)
        #expect(reply.isCaughtUp && !reply.isFenced, "broker \(broker) should be unfenced")
    }

    func epoch(of broker: Int32) -> BrokerEpoch { image.broker(NodeID(broker))?.brokerEpoch ?? BrokerEpoch(-1) }

    /// Moves time on, keeping `alive` brokers' sessions fresh, then ticks.
    mutating func advance(by duration: Duration, keepingAlive alive: [Int32] = []) {
        now += duration
        for broker in alive where image.broker(NodeID(broker)) != nil { heartbeat(broker) }
        let now = self.now
        commit(controller.tick(now: now))
    }

    /// Lets every session except those of `survivors` run out, then ticks: the others are fenced.
    mutating func expireSessions(except survivors: [Int32]) {
        advance(by: controller.configuration.brokerSessionTimeout + .milliseconds(1), keepingAlive: survivors)
    }

    @discardableResult
    mutating func createTopic(_ name: String, partitions: Int32, replicationFactor: Int16,
                              configs: [ConfigEntry] = [], sourceLocation: SourceLocation = #_sourceLocation) -> TopicID {
        let request = CreateTopicsRequest(topics: [.init(name: name, partitionCount: partitions,
                                                         replicationFactor: replicationFactor, configs: configs)])
        let reply = run({ $0.createTopics(request) }, sourceLocation: sourceLocation)
        #expect(reply.topics.first?.error == ControllerErrorCode.none, "create \(name): \(reply)", sourceLocation: sourceLocation)
        return reply.topics.first?.topicID ?? .zero
    }

    /// Creates a topic whose replicas the test chooses.
    @discardableResult
    mutating func createTopic(_ name: String, assignments: [[Int32]], configs: [ConfigEntry] = [],
                              sourceLocation: SourceLocation = #_sourceLocation) -> TopicID {
        let request = CreateTopicsRequest(topics: [.init(name: name, assignments: assignments.map { $0.map(NodeID.init) },
                                                         configs: configs)])
        let reply = run({ $0.createTopics(request) }, sourceLocation: sourceLocation)
        #expect(reply.topics.first?.error == ControllerErrorCode.none, "create \(name): \(reply)", sourceLocation: sourceLocation)
        return reply.topics.first?.topicID ?? .zero
    }

    func partition(_ topic: String, _ index: Int32) -> PartitionRegistration {
        image.partition(TopicPartition(topic: topic, partition: index))!
    }

    /// The whole committed log as bytes, for comparing runs.
    var logDigest: UInt64 { stableDigest(log.flatMap { $0.encoded() }) }
}

func nodes(_ ids: [Int32]) -> [NodeID] { ids.map(NodeID.init) }
