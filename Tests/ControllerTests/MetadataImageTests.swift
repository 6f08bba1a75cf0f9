@testable import Controller
import TernCore
import Testing

@Suite struct MetadataImageTests {
    static let topicA = TopicID(high: 0xA, low: 1)
    static let topicB = TopicID(high: 0xB, low: 2)

    static func registration(_ broker: Int32, epoch: Int64) -> MetadataRecord {
        .registerBroker(BrokerRegistrationRecord(brokerID: NodeID(broker), brokerEpoch: BrokerEpoch(epoch),
                                                 incarnationID: IncarnationID(high: 0, low: UInt64(epoch)),
                                                 endpoints: [], rack: nil))
    }

    static func unfence(_ broker: Int32, epoch: Int64) -> MetadataRecord {
        .unfenceBroker(BrokerAndEpoch(brokerID: NodeID(broker), brokerEpoch: BrokerEpoch(epoch)))
    }

    /// Three live brokers and topic "a" with one partition led by 1.
    static let baseRecords: [MetadataRecord] = [
        registration(1, epoch: 1), registration(2, epoch: 2), registration(3, epoch: 3),
        unfence(1, epoch: 1), unfence(2, epoch: 2), unfence(3, epoch: 3),
        .topic(TopicRecord(name: "a", topicID: topicA, configs: [])),
        .partition(PartitionRecord(topicID: topicA, partition: 0, replicas: nodes([1, 2, 3]), isr: nodes([1, 2, 3]),
                                   leader: NodeID(1), leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))),
    ]

    static func image(_ records: [MetadataRecord]) throws -> MetadataImage {
        var image = MetadataImage.empty
        for (index, record) in records.enumerated() { try image.apply(record, at: Offset(Int64(index))) }
        return image
    }

    static func change(leader: LeaderChange = .unchanged, isr: [Int32]? = nil, leaderEpoch: Int32, partitionEpoch: Int32) -> MetadataRecord {
        .partitionChange(PartitionChangeRecord(topicID: topicA, partition: 0, leader: leader, isr: isr.map(nodes),
                                               leaderEpoch: LeaderEpoch(leaderEpoch), partitionEpoch: PartitionEpoch(partitionEpoch)))
    }

    @Test func applyingBuildsTheImage() throws {
        let image = try Self.image(Self.baseRecords)
        #expect(image.offset == Offset(7))
        #expect(image.brokers.map(\.brokerID) == nodes([1, 2, 3]))
        #expect(image.activeBrokerIDs == nodes([1, 2, 3]))
        #expect(image.broker(NodeID(2))?.registeredAtOffset == Offset(1))
        #expect(image.highestBrokerEpoch == BrokerEpoch(3))
        #expect(image.topic(named: "a")?.topicID == Self.topicA)
        #expect(image.topic(id: Self.topicA)?.name == "a")
        let partition = try #require(image.partition(TopicPartition(topic: "a", partition: 0)))
        #expect(partition.leader == NodeID(1) && partition.isr == nodes([1, 2, 3]))
        #expect(image.partitionsLed(by: NodeID(1)) == [TopicPartition(topic: "a", partition: 0)])
    }

    @Test func partitionChangesApplyWithNewEpochs() throws {
        let image = try Self.image(Self.baseRecords + [
            Self.change(isr: [1, 2], leaderEpoch: 0, partitionEpoch: 1),
            Self.change(leader: .elected(NodeID(2)), leaderEpoch: 1, partitionEpoch: 2),
        ])
        let partition = try #require(image.partition(TopicPartition(topic: "a", partition: 0)))
        #expect(partition == PartitionRegistration(replicas: nodes([1, 2, 3]), isr: nodes([1, 2]), leader: NodeID(2),
                                                   leaderEpoch: LeaderEpoch(1), partitionEpoch: PartitionEpoch(2)))
    }

    @Test func lookupsAreSorted() throws {
        var records = Self.baseRecords
        for (index, name) in ["zeta", "beta", "alpha", "mu"].enumerated() {
            records.append(.topic(TopicRecord(name: name, topicID: TopicID(high: 99, low: UInt64(index)), configs: [
                ConfigEntry(name: "z.key", value: "1"), ConfigEntry(name: "a.key", value: "2"),
            ])))
        }
        records.append(Self.registration(0, epoch: 10))
        let image = try Self.image(records)
        #expect(image.topicNames == ["a", "alpha", "beta", "mu", "zeta"])
        #expect(image.brokers.map(\.brokerID) == nodes([0, 1, 2, 3]))
        #expect(image.configs(for: .topic("zeta")).map(\.name) == ["a.key", "z.key"])
    }

    @Test func configRecordsSetAndRemove() throws {
        let image = try Self.image(Self.baseRecords + [
            .config(ConfigRecord(resource: .cluster, name: "unclean.leader.election.enable", value: "true")),
            .config(ConfigRecord(resource: .topic("a"), name: "retention.ms", value: "5")),
            .config(ConfigRecord(resource: .broker(NodeID(1)), name: "x", value: "y")),
            .config(ConfigRecord(resource: .broker(NodeID(1)), name: "x", value: nil)),
        ])
        #expect(image.config("unclean.leader.election.enable", for: .cluster) == "true")
        #expect(image.config("retention.ms", for: .topic("a")) == "5")
        #expect(image.config("x", for: .broker(NodeID(1))) == nil)
        #expect(image.configuredResources == [.cluster])
    }

    @Test func removingATopicDropsItsPartitionsAndConfig() throws {
        let image = try Self.image(Self.baseRecords + [.removeTopic(RemoveTopicRecord(topicID: Self.topicA))])
        #expect(image.topic(named: "a") == nil && image.topic(id: Self.topicA) == nil)
        #expect(image.partitions.isEmpty)
        #expect(!image.leadsAnyPartition(NodeID(1)))
    }

    /// Each refused record names the broken rule and leaves the image as it was.
    @Test(arguments: [
        (MetadataImageTests.change(isr: [1, 2], leaderEpoch: 0, partitionEpoch: 5), "partition epoch must be the next one"),
        (MetadataImageTests.change(isr: [1, 2], leaderEpoch: 0, partitionEpoch: 0), "partition epoch must grow"),
        (MetadataImageTests.change(leader: .elected(NodeID(2)), leaderEpoch: 0, partitionEpoch: 1), "a new leader needs a new leader epoch"),
        (MetadataImageTests.change(isr: [2, 3], leaderEpoch: 0, partitionEpoch: 1), "the leader must stay in the ISR"),
        (MetadataImageTests.change(isr: [], leaderEpoch: 0, partitionEpoch: 1), "the ISR is never empty"),
        (MetadataImageTests.change(isr: [1, 4], leaderEpoch: 0, partitionEpoch: 1), "the ISR is within the replicas"),
        (.fenceBroker(BrokerAndEpoch(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(1))), "a leader cannot be fenced"),
        (.fenceBroker(BrokerAndEpoch(brokerID: NodeID(2), brokerEpoch: BrokerEpoch(9))), "stale broker epoch"),
        (.beginControlledShutdown(BrokerAndEpoch(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(1))), "a leader cannot shut down"),
        (MetadataImageTests.registration(1, epoch: 9), "a leader cannot re-register"),
        (MetadataImageTests.registration(4, epoch: 3), "broker epochs only grow"),
        (MetadataImageTests.unfence(2, epoch: 2), "already unfenced"),
        (.topic(TopicRecord(name: "a", topicID: TopicID(high: 5, low: 5), configs: [])), "topic names are unique"),
        (.topic(TopicRecord(name: "b", topicID: MetadataImageTests.topicA, configs: [])), "topic ids are unique"),
        (.topic(TopicRecord(name: "bad/name", topicID: MetadataImageTests.topicB, configs: [])), "illegal topic name"),
        (.partition(PartitionRecord(topicID: MetadataImageTests.topicA, partition: 2, replicas: nodes([1]), isr: nodes([1]), leader: NodeID(1),
                                    leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))), "partitions are created in order"),
        (.partition(PartitionRecord(topicID: MetadataImageTests.topicB, partition: 0, replicas: nodes([1]), isr: nodes([1]), leader: NodeID(1),
                                    leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))), "unknown topic id"),
        (.producerIDBlock(ProducerIDBlockRecord(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(1), blockStart: ProducerID(10),
                                                blockSize: 10)), "blocks start where the last ended"),
        (.producerIDBlock(ProducerIDBlockRecord(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(1), blockStart: ProducerID(0),
                                                blockSize: 0)), "blocks are not empty"),
        (.config(ConfigRecord(resource: .topic("nope"), name: "x", value: "1")), "config of an unknown topic"),
        (.config(ConfigRecord(resource: .topic("a"), name: "unclean.leader.election.enable", value: "maybe")), "bad boolean"),
    ] as [(MetadataRecord, String)])
    func refusesRecordsThatBreakInvariants(record: MetadataRecord, rule: String) throws {
        let image = try Self.image(Self.baseRecords)
        var attempt = image
        #expect(throws: MetadataApplyError.self, "\(rule)") { try attempt.apply(record, at: Offset(100)) }
        #expect(attempt == image, "a refused record changes nothing")
    }

    @Test func aLeaderMustBeAnActiveBroker() throws {
        let fenced: [MetadataRecord] = [Self.registration(1, epoch: 1), Self.registration(2, epoch: 2), Self.unfence(1, epoch: 1),
                                        .topic(TopicRecord(name: "a", topicID: Self.topicA, configs: []))]
        var image = try Self.image(fenced)
        let ledByFenced = MetadataRecord.partition(PartitionRecord(
            topicID: Self.topicA, partition: 0, replicas: nodes([2, 1]), isr: nodes([2, 1]), leader: NodeID(2),
            leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0)))
        #expect(throws: MetadataApplyError.ineligibleLeader(TopicPartition(topic: "a", partition: 0), NodeID(2))) {
            try image.apply(ledByFenced, at: Offset(10))
        }
    }

    @Test func offsetsMustIncrease() throws {
        var image = try Self.image(Self.baseRecords)
        #expect(throws: MetadataApplyError.offsetNotIncreasing(offset: Offset(7), imageOffset: Offset(7))) {
            try image.apply(Self.registration(9, epoch: 20), at: Offset(7))
        }
        // Gaps are fine: Raft's own control records take offsets too.
        try image.apply(Self.registration(9, epoch: 20), at: Offset(50))
        #expect(image.offset == Offset(50))
    }

    // MARK: Canonical encoding

    @Test func canonicalEncodingIgnoresDictionaryHistory() throws {
        let topics: [MetadataRecord] = (0..<40).map { index in
            .topic(TopicRecord(name: "t\(index)", topicID: TopicID(high: 7, low: UInt64(index)),
                               configs: [ConfigEntry(name: "k\(index % 5)", value: "v")]))
        }
        let forward = try Self.image(Self.baseRecords + topics)
        let backward = try Self.image(Self.baseRecords + topics.reversed())
        #expect(forward == backward)
        #expect(forward.canonicalEncoding() == backward.canonicalEncoding())
        #expect(forward.digest == backward.digest)

        // Growing and shrinking the dictionaries changes their layout, not the encoding.
        var churned = MetadataImage.empty
        var offset = Offset(0)
        for record in Self.baseRecords + topics.reversed() { try churned.apply(record, at: offset); offset = offset + 1 }
        for index in 0..<200 {
            let id = TopicID(high: 8, low: UInt64(index))
            try churned.apply(.topic(TopicRecord(name: "churn\(index)", topicID: id, configs: [])), at: offset)
            try churned.apply(.removeTopic(RemoveTopicRecord(topicID: id)), at: offset + 1)
            offset = offset + 2
        }
        var reference = forward
        try reference.apply(Self.registration(50, epoch: 50), at: offset)
        try churned.apply(Self.registration(50, epoch: 50), at: offset)
        #expect(churned.canonicalEncoding() == reference.canonicalEncoding())
    }

    @Test func digestSeesEveryChange() throws {
        let base = try Self.image(Self.baseRecords)
        let changed = try base.applying(Self.change(isr: [1, 3], leaderEpoch: 0, partitionEpoch: 1), at: Offset(8))
        let sameButLater = try base.applying(.config(ConfigRecord(resource: .cluster, name: "x", value: nil)), at: Offset(8))
        #expect(base.digest != changed.digest)
        #expect(changed.digest != sameButLater.digest)
        #expect(MetadataImage.empty.digest == stableDigest(MetadataImage.empty.canonicalEncoding()))
    }

    /// The canonical bytes are a format other nodes compare: pin the empty image's.
    @Test func emptyImageGoldenEncoding() {
        let expected: [UInt8] = [0x01] + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 16) + [0, 0, 0]
        #expect(MetadataImage.empty.canonicalEncoding() == expected)
    }
}
