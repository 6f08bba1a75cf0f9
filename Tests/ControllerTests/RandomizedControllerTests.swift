@testable import Controller
import TernCore
import Testing

/// A seeded stream of broker and admin traffic against one controller: brokers crash, restart, lag,
/// shut down; leaders shrink and expand ISRs with mostly current and sometimes stale epochs;
/// topics come and go. The harness checks the metadata invariants after every record.
struct RandomScenario {
    var harness: ControllerHarness
    var random: DeterministicRandom
    /// Brokers whose process is down: they send nothing.
    private(set) var stopped: [Int32] = []
    /// Brokers that asked for a controlled shutdown: they keep asking in every heartbeat.
    private(set) var shuttingDown: [Int32] = []
    private(set) var statistics: [String: Int] = [:]
    let brokerPool: [Int32] = [1, 2, 3, 4, 5, 6]
    let topicPool = ["alpha", "beta", "gamma", "delta", "epsilon"]

    init(seed: UInt64, uncleanLeaderElection: Bool = false) {
        harness = ControllerHarness(configuration: ControllerConfiguration(uncleanLeaderElectionEnabled: uncleanLeaderElection),
                                    brokers: [1, 2, 3, 4])
        random = DeterministicRandom(seed: seed)
        stopped = [5, 6]
    }

    mutating func run(steps: Int) {
        for _ in 0..<steps { step() }
    }

    private mutating func count(_ event: String) { statistics[event, default: 0] += 1 }

    private mutating func pick<Element>(_ elements: [Element]) -> Element? {
        elements.isEmpty ? nil : elements[random.int(in: 0...(elements.count - 1))]
    }

    private var upBrokers: [Int32] { brokerPool.filter { !stopped.contains($0) && harness.image.broker(NodeID($0)) != nil } }

    mutating func step() {
        switch random.int(in: 0...99) {
        case 0..<20: heartbeatSomeBroker()
        case 20..<30: advanceTime()
        case 30..<33: crashSomeBroker()
        case 33..<42: restartSomeBroker()
        case 42..<50: createSomeTopic()
        case 50..<53: deleteSomeTopic()
        case 53..<57: growSomeTopic()
        case 57..<75: alterSomePartition()
        case 75..<80: electSomeLeaders()
        case 80..<84: toggleUncleanElection()
        case 84..<88: allocateProducerIDs()
        case 88..<90: shutDownSomeBroker()
        default: harness.commit(harness.controller.tick(now: harness.now))
        }
    }

    private mutating func heartbeatSomeBroker() {
        guard let broker = pick(upBrokers) else { return }
        let behind = random.chance(0.2)
        let offset = behind ? Offset(Int64(random.int(in: 0...max(0, harness.log.count - 1)))) : nil
        let reply = harness.heartbeat(broker, metadataOffset: offset, wantShutDown: shuttingDown.contains(broker),
                                      dataLosses: someDataLoss(of: broker))
        #expect(reply.error == ControllerErrorCode.none)
        if reply.shouldShutDown { stop(broker) }
    }

    /// Now and then a replica of the broker reports a loss (latent corruption or a torn tail),
    /// sometimes one found after it discarded for the loss already recorded.
    private mutating func someDataLoss(of broker: Int32) -> [ReplicaDataLossReport] {
        guard random.chance(0.1) else { return [] }
        let hosted = harness.image.partitions.filter { $0.registration.replicas.contains(NodeID(broker)) }
        guard let entry = pick(hosted) else { return [] }
        let recorded = entry.registration.dataLoss(of: NodeID(broker))
        let acknowledged = recorded.flatMap { random.chance(0.5) ? $0.markedAt : nil } ?? PartitionEpoch(-1)
        count("data loss reported")
        return [ReplicaDataLossReport(replica: ReplicaReference(topicID: entry.topicID, partition: entry.topicPartition.partition),
                                      firstLostOffset: Offset(Int64(random.int(in: 0...100))), acknowledgedLoss: acknowledged)]
    }

    /// Time passes; live brokers heartbeat (those shutting down still asking to).
    private mutating func advanceTime() {
        harness.now += .milliseconds(Int64(random.int(in: 500...4_000)))
        for broker in upBrokers {
            let reply = harness.heartbeat(broker, wantShutDown: shuttingDown.contains(broker))
            if reply.shouldShutDown { stop(broker) }
        }
        harness.commit(harness.controller.tick(now: harness.now))
    }

    private mutating func crashSomeBroker() {
        guard let broker = pick(upBrokers) else { return }
        stop(broker)
        count("crash")
    }

    private mutating func stop(_ broker: Int32) {
        if !stopped.contains(broker) { stopped.append(broker) }
        shuttingDown.removeAll { $0 == broker }
    }

    private mutating func restartSomeBroker() {
        guard let broker = pick(stopped) else { return }
        let reply = harness.register(broker)
        guard reply.error == ControllerErrorCode.none else {
            #expect(reply.error == .duplicateBrokerRegistration)
            count("duplicate registration")
            return
        }
        stopped.removeAll { $0 == broker }
        count("restart")
    }

    private mutating func createSomeTopic() {
        guard let name = pick(topicPool) else { return }
        let request = CreateTopicsRequest(topics: [.init(name: name, partitionCount: Int32(random.int(in: 1...4)),
                                                         replicationFactor: Int16(random.int(in: 1...3)))])
        let reply = harness.run { $0.createTopics(request) }
        if reply.topics[0].error == ControllerErrorCode.none { count("topic created") }
    }

    private mutating func deleteSomeTopic() {
        guard let name = pick(harness.image.topicNames) else { return }
        _ = harness.run { $0.deleteTopics(DeleteTopicsRequest(names: [name])) }
    }

    private mutating func growSomeTopic() {
        guard let topic = pick(harness.image.topics) else { return }
        let total = Int32(topic.partitions.count + random.int(in: 1...2))
        _ = harness.run { $0.createPartitions(CreatePartitionsRequest(topics: [.init(name: topic.name, totalCount: total)])) }
    }

    /// The leader of a random partition proposes an ISR: itself plus a random subset of the
    /// other replicas, usually with the current epochs.
    private mutating func alterSomePartition() {
        let led = harness.image.partitions.filter { $0.registration.leader != nil }
        guard let entry = pick(led) else { return }
        let current = entry.registration
        let leader = current.leader!
        var isr = current.replicas.filter { $0 == leader || random.chance(0.6) }
        if random.chance(0.05) { isr.removeAll { $0 == leader } }
        let staleEpoch = random.chance(0.15)
        let request = AlterPartitionRequest(brokerID: leader, brokerEpoch: harness.image.broker(leader)!.brokerEpoch, partitions: [
            .init(topicID: entry.topicID, partition: entry.topicPartition.partition, leaderEpoch: current.leaderEpoch,
                  partitionEpoch: staleEpoch ? PartitionEpoch(current.partitionEpoch.rawValue - 1) : current.partitionEpoch,
                  newISR: isr.map { member in
                      // Sometimes the member's fetches show it discarded its recorded loss.
                      let loss = current.dataLoss(of: member).flatMap { random.chance(0.5) ? $0.markedAt : nil }
                      return .init(brokerID: member, brokerEpoch: harness.image.broker(member)?.brokerEpoch ?? BrokerEpoch(-1),
                                   acknowledgedLoss: loss ?? PartitionEpoch(-1))
                  }),
        ])
        let reply = harness.run { $0.alterPartition(request) }
        let result = reply.partitions[0]
        if staleEpoch { #expect(result.error == .invalidUpdateVersion) }
        if result.error == ControllerErrorCode.none {
            #expect(harness.image.partition(entry.topicPartition)?.isr == isr)
            count("isr change")
            if result.dataLoss.count < current.dataLoss.count { count("data loss cleared") }
        }
    }

    private mutating func electSomeLeaders() {
        let type: ElectionType = random.chance(0.5) ? .preferred : .unclean
        let reply = harness.run { $0.electLeaders(ElectLeadersRequest(electionType: type, partitions: nil)) }
        count("elections \(type)", reply.partitions.filter { $0.error == ControllerErrorCode.none }.count)
        for result in reply.partitions { count("election \(type) \(result.error)") }
    }

    private mutating func count(_ event: String, _ amount: Int) { statistics[event, default: 0] += amount }

    private mutating func toggleUncleanElection() {
        guard let name = pick(harness.image.topicNames) else { return }
        let value = random.chance(0.5) ? "true" : "false"
        _ = harness.run {
            $0.alterConfigs(AlterConfigsRequest(resources: [
                .init(resource: .topic(name), changes: [.init(name: ConfigNames.uncleanLeaderElectionEnable, value: value)]),
            ]))
        }
    }

    private mutating func allocateProducerIDs() {
        guard let broker = pick(upBrokers) else { return }
        let before = harness.image.nextProducerID
        let reply = harness.run { [epoch = harness.epoch(of: broker)] in
            $0.allocateProducerIDs(AllocateProducerIDsRequest(brokerID: NodeID(broker), brokerEpoch: epoch))
        }
        #expect(reply.blockStart == before && harness.image.nextProducerID == ProducerID(before.rawValue + reply.blockSize))
    }

    private mutating func shutDownSomeBroker() {
        guard let broker = pick(upBrokers) else { return }
        let reply = harness.heartbeat(broker, wantShutDown: true)
        if !shuttingDown.contains(broker) { shuttingDown.append(broker) }
        count("shutdown asked")
        if reply.shouldShutDown {
            #expect(harness.image.partitionsLed(by: NodeID(broker)).isEmpty)
            #expect(harness.image.broker(NodeID(broker))!.isFenced)
            stop(broker)
            count("shutdown granted")
        }
    }
}

@Suite struct RandomizedControllerTests {
    @Test(arguments: 1...24)
    func invariantsHoldUnderRandomTraffic(seed: Int) {
        var scenario = RandomScenario(seed: UInt64(seed), uncleanLeaderElection: seed % 3 == 0)
        scenario.run(steps: 500)
        #expect(scenario.harness.log.count > 100)
        // Every record committed so far rebuilds the same image from scratch.
        var rebuilt = MetadataImage.empty
        for (index, record) in scenario.harness.log.enumerated() {
            #expect(throws: Never.self) { try rebuilt.apply(record, at: Offset(Int64(index))) }
        }
        #expect(rebuilt.digest == scenario.harness.image.digest)
    }

    @Test func theScenarioReachesTheInterestingStates() {
        var totals: [String: Int] = [:]
        for seed in 1...12 {
            var scenario = RandomScenario(seed: UInt64(seed))
            scenario.run(steps: 500)
            for (event, count) in scenario.statistics { totals[event, default: 0] += count }
        }
        for event in ["crash", "restart", "topic created", "isr change", "shutdown granted", "elections preferred",
                      "data loss reported", "data loss cleared"] {
            #expect(totals[event, default: 0] > 0, "no \(event) in 12 seeds: \(totals)")
        }
    }
}
