@testable import Controller
import KafkaProtocol
import LogStorage
import TernCore
import Testing

@Suite struct TopicAdminTests {
    @Test func createTopicWithDefaults() {
        var harness = ControllerHarness(configuration: ControllerConfiguration(defaultPartitionCount: 3, defaultReplicationFactor: 2),
                                        brokers: [1, 2, 3])
        let reply = harness.run { $0.createTopics(CreateTopicsRequest(topics: [.init(name: "events")])) }
        let result = reply.topics[0]
        #expect(result.error == ControllerErrorCode.none && result.partitionCount == 3 && result.replicationFactor == 2)
        #expect(!result.topicID.isZero)
        let topic = harness.image.topic(named: "events")!
        #expect(topic.topicID == result.topicID)
        for partition in topic.partitions {
            #expect(partition.replicas.count == 2 && partition.isr == partition.replicas)
            #expect(partition.leader == partition.replicas[0])
            #expect(partition.leaderEpoch == LeaderEpoch(0) && partition.partitionEpoch == PartitionEpoch(0))
        }
    }

    @Test func placementSpreadsReplicasAndLeadersEvenly() {
        var harness = ControllerHarness(brokers: [1, 2, 3, 4, 5])
        harness.createTopic("spread", partitions: 20, replicationFactor: 3)
        let partitions = harness.image.topic(named: "spread")!.partitions
        var leaders: [NodeID: Int] = [:]
        var replicas: [NodeID: Int] = [:]
        for partition in partitions {
            #expect(Set(partition.replicas).count == 3, "distinct replicas")
            leaders[partition.leader!, default: 0] += 1
            for replica in partition.replicas { replicas[replica, default: 0] += 1 }
        }
        #expect(leaders.keys.sorted() == nodes([1, 2, 3, 4, 5]) && leaders.values.allSatisfy { $0 == 4 })
        #expect(replicas.values.allSatisfy { $0 == 12 })
        // Replica sets differ between rounds of the round-robin (the follower shift grows).
        #expect(Set(partitions.map(\.replicas)).count > 5)
    }

    @Test func placementStartsWhereTheTopicNameSays() {
        let brokers = nodes([1, 2, 3, 4, 5, 6, 7])
        let starts = Set(["a", "b", "c", "d", "e", "f", "orders", "payments"].map {
            ReplicaPlacement.assign(topic: $0, firstPartition: 0, partitionCount: 1, replicationFactor: 1, brokers: brokers)[0][0]
        })
        #expect(starts.count > 2, "different topics start on different brokers")
        let once = ReplicaPlacement.assign(topic: "orders", firstPartition: 0, partitionCount: 10, replicationFactor: 3, brokers: brokers)
        let again = ReplicaPlacement.assign(topic: "orders", firstPartition: 0, partitionCount: 10, replicationFactor: 3, brokers: brokers)
        #expect(once == again)
        let continued = ReplicaPlacement.assign(topic: "orders", firstPartition: 4, partitionCount: 6, replicationFactor: 3, brokers: brokers)
        #expect(Array(once[4...]) == continued, "adding partitions continues the same round-robin")
    }

    @Test(arguments: [1, 2, 3, 5, 8])
    func placementAlwaysGivesDistinctReplicas(brokerCount: Int) {
        let brokers = (1...brokerCount).map { NodeID(Int32($0 * 10)) }
        for replicationFactor in 1...brokerCount {
            let assignments = ReplicaPlacement.assign(topic: "t\(brokerCount)", firstPartition: 0, partitionCount: 40,
                                                      replicationFactor: replicationFactor, brokers: brokers)
            #expect(assignments.allSatisfy { Set($0).count == replicationFactor })
        }
    }

    @Test func fencedBrokersAreNotPlacedAndTooFewBrokersIsAnError() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        harness.expireSessions(except: [1, 2])
        harness.createTopic("two", partitions: 4, replicationFactor: 2)
        #expect(harness.image.topic(named: "two")!.partitions.allSatisfy { !$0.replicas.contains(NodeID(3)) })
        let reply = harness.run { $0.createTopics(CreateTopicsRequest(topics: [.init(name: "three", partitionCount: 1, replicationFactor: 3)])) }
        #expect(reply.topics[0].error == .invalidReplicationFactor)
        #expect(harness.image.topic(named: "three") == nil)
    }

    @Test func createTopicsValidatesEachTopicOnItsOwn() {
        var harness = ControllerHarness(brokers: [1, 2])
        harness.createTopic("exists", partitions: 1, replicationFactor: 1)
        let request = CreateTopicsRequest(topics: [
            .init(name: "good", partitionCount: 2, replicationFactor: 2),
            .init(name: "exists", partitionCount: 1, replicationFactor: 1),
            .init(name: "bad name", partitionCount: 1, replicationFactor: 1),
            .init(name: "dup", partitionCount: 1, replicationFactor: 1),
            .init(name: "dup", partitionCount: 1, replicationFactor: 1),
            .init(name: "zero", partitionCount: 0, replicationFactor: 1),
            .init(name: "huge", partitionCount: 1_000_000, replicationFactor: 1),
            .init(name: "rf0", partitionCount: 1, replicationFactor: 0),
            .init(name: "conf", partitionCount: 1, replicationFactor: 1,
                  configs: [ConfigEntry(name: "unclean.leader.election.enable", value: "yes")]),
            .init(name: "conf2", partitionCount: 1, replicationFactor: 1,
                  configs: [ConfigEntry(name: "a", value: "1"), ConfigEntry(name: "a", value: "2")]),
            .init(name: "both", partitionCount: 1, replicationFactor: 1, assignments: [nodes([1])]),
            .init(name: "unregistered", assignments: [nodes([1, 9])]),
            .init(name: "uneven", assignments: [nodes([1, 2]), nodes([1])]),
            .init(name: "dupreplica", assignments: [nodes([1, 1])]),
            .init(name: "..", partitionCount: 1, replicationFactor: 1),
            .init(name: "manual", assignments: [nodes([2, 1]), nodes([1])].prefix(1).map { $0 }),
            .init(name: "__cluster_metadata", partitionCount: 1, replicationFactor: 1),
        ])
        let reply = harness.run { $0.createTopics(request) }
        #expect(reply.topics.map(\.error) == [
            .none, .topicAlreadyExists, .invalidTopic, .invalidRequest, .invalidRequest, .invalidPartitions, .invalidPartitions,
            .invalidReplicationFactor, .invalidConfig, .invalidConfig, .invalidRequest, .invalidReplicaAssignment,
            .invalidReplicaAssignment, .invalidReplicaAssignment, .invalidTopic, .none, .invalidRequest,
        ])
        #expect(harness.image.topicNames == ["exists", "good", "manual"])
        #expect(harness.partition("manual", 0).replicas == nodes([2, 1]) && harness.partition("manual", 0).leader == NodeID(2))
        #expect(reply.topics.filter { $0.error != .none }.allSatisfy { $0.topicID.isZero && $0.message != nil })
    }

    @Test func manualAssignmentWithAFencedReplica() {
        var harness = ControllerHarness(brokers: [1, 2])
        harness.expireSessions(except: [2])
        harness.createTopic("m", assignments: [[1, 2]])
        let partition = harness.partition("m", 0)
        #expect(partition.isr == nodes([2]) && partition.leader == NodeID(2), "fenced replicas start outside the ISR")

        let allFenced = harness.run { $0.createTopics(CreateTopicsRequest(topics: [.init(name: "n", assignments: [nodes([1])])])) }
        #expect(allFenced.topics[0].error == .invalidReplicaAssignment)
    }

    @Test func validateOnlyCreatesNothing() {
        var harness = ControllerHarness(brokers: [1])
        let (reply, records) = harness.runWithRecords {
            $0.createTopics(CreateTopicsRequest(topics: [.init(name: "dry", partitionCount: 3, replicationFactor: 1)], validateOnly: true))
        }
        #expect(reply.topics[0].error == ControllerErrorCode.none && reply.topics[0].partitionCount == 3)
        #expect(records.isEmpty && harness.image.topic(named: "dry") == nil)
    }

    @Test func topicConfigsAreStoredSorted() {
        var harness = ControllerHarness(brokers: [1])
        harness.createTopic("c", partitions: 1, replicationFactor: 1, configs: [
            ConfigEntry(name: "retention.ms", value: "10"), ConfigEntry(name: "min.insync.replicas", value: "1"),
        ])
        #expect(harness.image.topic(named: "c")!.configs.map(\.name) == ["min.insync.replicas", "retention.ms"])
    }

    @Test func createPartitionsGrowsTopics() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        harness.createTopic("g", partitions: 2, replicationFactor: 2)
        let reply = harness.run {
            $0.createPartitions(CreatePartitionsRequest(topics: [
                .init(name: "g", totalCount: 5),
                .init(name: "missing", totalCount: 2),
            ]))
        }
        #expect(reply.topics.map(\.error) == [.none, .unknownTopicOrPartition])
        let topic = harness.image.topic(named: "g")!
        #expect(topic.partitions.count == 5 && topic.partitions.allSatisfy { $0.replicas.count == 2 })

        let refused = harness.run {
            $0.createPartitions(CreatePartitionsRequest(topics: [
                .init(name: "g", totalCount: 5),
                .init(name: "g", totalCount: 7),
            ]))
        }
        #expect(refused.topics.map(\.error) == [.invalidRequest, .invalidRequest])
        let shrink = harness.run { $0.createPartitions(CreatePartitionsRequest(topics: [.init(name: "g", totalCount: 3)])) }
        #expect(shrink.topics[0].error == .invalidPartitions)

        let manual = harness.run {
            $0.createPartitions(CreatePartitionsRequest(topics: [.init(name: "g", totalCount: 6, assignments: [nodes([3, 1])])]))
        }
        #expect(manual.topics[0].error == ControllerErrorCode.none)
        #expect(harness.partition("g", 5).replicas == nodes([3, 1]))
        let wrongWidth = harness.run {
            $0.createPartitions(CreatePartitionsRequest(topics: [.init(name: "g", totalCount: 7, assignments: [nodes([3])])]))
        }
        #expect(wrongWidth.topics[0].error == .invalidReplicaAssignment)
        let dry = harness.runWithRecords { $0.createPartitions(CreatePartitionsRequest(topics: [.init(name: "g", totalCount: 9)], validateOnly: true)) }
        #expect(dry.0.topics[0].error == ControllerErrorCode.none && dry.1.isEmpty)
    }

    @Test func deleteTopicsAndRecreateWithANewID() {
        var harness = ControllerHarness(brokers: [1, 2])
        let first = harness.createTopic("d", partitions: 2, replicationFactor: 2,
                                        configs: [ConfigEntry(name: "retention.ms", value: "1")])
        let reply = harness.run { $0.deleteTopics(DeleteTopicsRequest(names: ["d", "never", "d"])) }
        #expect(reply.topics == [.init(name: "d", topicID: first, error: .none),
                                 .init(name: "never", error: .unknownTopicOrPartition),
                                 .init(name: "d", error: .unknownTopicOrPartition)])
        #expect(harness.image.topic(named: "d") == nil && harness.image.partitions.isEmpty)

        let second = harness.createTopic("d", partitions: 1, replicationFactor: 1)
        #expect(second != first && !second.isZero)
        #expect(harness.image.topic(named: "d")!.configs.isEmpty, "configuration died with the old topic")
    }

    @Test func alterConfigsSetsDeletesAndValidates() {
        var harness = ControllerHarness(brokers: [1])
        harness.createTopic("c", partitions: 1, replicationFactor: 1)
        let reply = harness.run {
            $0.alterConfigs(AlterConfigsRequest(resources: [
                .init(resource: .topic("c"), changes: [.init(name: "retention.ms", value: "5"), .init(name: "segment.bytes", value: "100")]),
                .init(resource: .topic("missing"), changes: [.init(name: "retention.ms", value: "5")]),
                .init(resource: .cluster, changes: [.init(name: "min.insync.replicas", value: "0")]),
                .init(resource: .broker(NodeID(1)), changes: [.init(name: "log.retention.ms", value: "7")]),
            ]))
        }
        #expect(reply.resources.map(\.error) == [.none, .unknownTopicOrPartition, .invalidConfig, .none])
        #expect(harness.image.config("retention.ms", for: .topic("c")) == "5")
        #expect(harness.image.config("log.retention.ms", for: .broker(NodeID(1))) == "7")
        #expect(harness.image.config("min.insync.replicas", for: .cluster) == nil)

        let (_, records) = harness.runWithRecords {
            $0.alterConfigs(AlterConfigsRequest(resources: [
                .init(resource: .topic("c"), changes: [.init(name: "retention.ms", value: "5"), .init(name: "segment.bytes", value: nil)]),
            ]))
        }
        #expect(records == [.config(ConfigRecord(resource: .topic("c"), name: "segment.bytes", value: nil))], "unchanged values propose nothing")
    }

    @Test func handleDispatchesDecodedRequests() throws {
        var harness = ControllerHarness(brokers: [1])
        let bytes = ControllerRequest.createTopics(CreateTopicsRequest(topics: [.init(name: "wire", partitionCount: 1, replicationFactor: 1)])).encoded()
        let request = try ControllerRequest(decoding: bytes)
        let result = harness.controller.handle(request, now: harness.now)
        harness.commit(result.records)
        guard case let .createTopics(reply) = try ControllerResponse(decoding: result.reply.encoded()) else {
            Issue.record("wrong response kind")
            return
        }
        #expect(reply.topics[0].error == ControllerErrorCode.none)
        #expect(harness.image.topic(named: "wire") != nil)
    }
}

@Suite struct TopicConfigRuleTests {
    @Test func logConfigsAreValidatedAsKafkaSpellsThem() {
        #expect(TopicRules.configProblem(name: "message.timestamp.type", value: "LogAppendTime") == nil)
        #expect(TopicRules.configProblem(name: "message.timestamp.type", value: "CreateTime") == nil)
        #expect(TopicRules.configProblem(name: "message.timestamp.type", value: "logappendtime")?.contains("CreateTime or LogAppendTime") == true)
        #expect(TopicRules.configProblem(name: "segment.bytes", value: "1048576") == nil)
        #expect(TopicRules.configProblem(name: "segment.bytes", value: "10") != nil)
        #expect(TopicRules.configProblem(name: "segment.bytes", value: "4294967296") != nil, "index positions are 32-bit")
        #expect(TopicRules.configProblem(name: "segment.ms", value: "0") != nil)
        #expect(TopicRules.configProblem(name: "segment.ms", value: "60000") == nil)
    }

    @Test func aTopicsOverridesApplyToItsLogs() {
        var harness = ControllerHarness(brokers: [1])
        let request = CreateTopicsRequest(topics: [
            .init(name: "stamped", partitionCount: 1, replicationFactor: 1, configs: [
                ConfigEntry(name: "message.timestamp.type", value: "LogAppendTime"),
                ConfigEntry(name: "segment.bytes", value: "1048576"),
                ConfigEntry(name: "segment.ms", value: "60000"),
            ]),
            .init(name: "plain", partitionCount: 1, replicationFactor: 1),
        ])
        #expect(harness.run { $0.createTopics(request) }.topics.map(\.error) == [.none, .none])
        var base = LogConfiguration()
        base.segmentBytes = 1 << 20 + 1
        let stamped = TopicConfigValues.logConfiguration(base, topic: harness.image.topic(named: "stamped"))
        #expect(stamped.messageTimestampType == .logAppendTime && stamped.segmentBytes == 1_048_576 && stamped.segmentMilliseconds == 60_000)
        #expect(TopicConfigValues.logConfiguration(base, topic: harness.image.topic(named: "plain")) == base, "the broker's defaults stand")
    }
}
