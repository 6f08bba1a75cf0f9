@testable import Controller
import TernCore
import Testing

@Suite struct MetadataRecordCodecTests {
    static let topicID = TopicID(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210)

    /// One record of every type, with optional fields both present and absent.
    static let samples: [MetadataRecord] = [
        .registerBroker(BrokerRegistrationRecord(
            brokerID: NodeID(3), brokerEpoch: BrokerEpoch(42), incarnationID: IncarnationID(high: 7, low: 9),
            endpoints: [BrokerEndpoint(listenerName: "PLAINTEXT", host: "10.0.0.3", port: 9092),
                        BrokerEndpoint(listenerName: "CONTROLLER", host: "ctl-3.example", port: 9093)],
            rack: "rack-a")),
        .registerBroker(BrokerRegistrationRecord(
            brokerID: NodeID(0), brokerEpoch: BrokerEpoch(1), incarnationID: .zero, endpoints: [], rack: nil)),
        .fenceBroker(BrokerAndEpoch(brokerID: NodeID(3), brokerEpoch: BrokerEpoch(42))),
        .unfenceBroker(BrokerAndEpoch(brokerID: NodeID(4), brokerEpoch: BrokerEpoch(43))),
        .beginControlledShutdown(BrokerAndEpoch(brokerID: NodeID(5), brokerEpoch: BrokerEpoch(44))),
        .topic(TopicRecord(name: "orders", topicID: topicID,
                           configs: [ConfigEntry(name: "min.insync.replicas", value: "2"),
                                     ConfigEntry(name: "unclean.leader.election.enable", value: "false")])),
        .topic(TopicRecord(name: "émoji-ü", topicID: topicID, configs: [])),
        .partition(PartitionRecord(topicID: topicID, partition: 7, replicas: nodes([1, 2, 3]), isr: nodes([2, 1]),
                                   leader: NodeID(2), leaderEpoch: LeaderEpoch(5), partitionEpoch: PartitionEpoch(9))),
        .partition(PartitionRecord(topicID: topicID, partition: 0, replicas: nodes([1]), isr: nodes([1]),
                                   leader: nil, leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))),
        .partitionChange(PartitionChangeRecord(topicID: topicID, partition: 1, leader: .elected(NodeID(3)), isr: nodes([3]),
                                               replicas: nodes([3, 4]), leaderEpoch: LeaderEpoch(2), partitionEpoch: PartitionEpoch(3))),
        .partitionChange(PartitionChangeRecord(topicID: topicID, partition: 1, leader: .none,
                                               leaderEpoch: LeaderEpoch(2), partitionEpoch: PartitionEpoch(3))),
        .partitionChange(PartitionChangeRecord(topicID: topicID, partition: 1, leader: .unchanged, isr: [],
                                               leaderEpoch: LeaderEpoch(2), partitionEpoch: PartitionEpoch(3))),
        .producerIDBlock(ProducerIDBlockRecord(brokerID: NodeID(2), brokerEpoch: BrokerEpoch(8),
                                               blockStart: ProducerID(5000), blockSize: 1000)),
        .removeTopic(RemoveTopicRecord(topicID: topicID)),
        .config(ConfigRecord(resource: .topic("orders"), name: "retention.ms", value: "1000")),
        .config(ConfigRecord(resource: .cluster, name: "unclean.leader.election.enable", value: nil)),
        .config(ConfigRecord(resource: .broker(NodeID(2)), name: "log.retention.ms", value: "")),
    ]

    @Test(arguments: samples)
    func roundTrips(record: MetadataRecord) throws {
        let bytes = record.encoded()
        #expect(try MetadataRecord(decoding: bytes) == record)
    }

    @Test func everyRecordTypeIsCovered() {
        let covered = Set(Self.samples.map(\.recordType))
        #expect(covered == Set(MetadataRecordType.allCases))
    }

    /// The layout is part of the on-disk format: type, version, then big-endian fields.
    @Test func fenceRecordGoldenBytes() throws {
        let record = MetadataRecord.fenceBroker(BrokerAndEpoch(brokerID: NodeID(3), brokerEpoch: BrokerEpoch(0x0102)))
        let expected: [UInt8] = [0x02, 0x01, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x01, 0x02]
        #expect(record.encoded() == expected)
        #expect(try MetadataRecord(decoding: expected) == record)
    }

    @Test func partitionRecordGoldenBytes() {
        let record = MetadataRecord.partition(PartitionRecord(
            topicID: TopicID(high: 1, low: 2), partition: 0, replicas: nodes([1, 2]), isr: nodes([1]), leader: nil,
            leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0)))
        let expected: [UInt8] = [0x06, 0x01]
            + [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2] // topic id
            + [0, 0, 0, 0] // partition
            + [0x02, 0, 0, 0, 1, 0, 0, 0, 2] // replicas
            + [0x01, 0, 0, 0, 1] // isr
            + [0xFF, 0xFF, 0xFF, 0xFF] // no leader
            + [0, 0, 0, 0, 0, 0, 0, 0] // epochs
        #expect(record.encoded() == expected)
    }

    @Test(arguments: samples)
    func everyTruncationThrows(record: MetadataRecord) {
        let bytes = record.encoded()
        for length in 0..<bytes.count {
            #expect(throws: DecodeError.self) { try MetadataRecord(decoding: Array(bytes[0..<length])) }
        }
    }

    @Test func trailingBytesAreRefused() {
        let bytes = Self.samples[2].encoded() + [0]
        #expect(throws: DecodeError.self) { try MetadataRecord(decoding: bytes) }
    }

    @Test func unknownTypeAndNewerVersionAreRefused() {
        var unknownType = Self.samples[2].encoded()
        unknownType[0] = 0x63
        #expect(throws: DecodeError.self) { try MetadataRecord(decoding: unknownType) }
        var newerVersion = Self.samples[2].encoded()
        newerVersion[1] = 0x02
        #expect(throws: DecodeError.self) { try MetadataRecord(decoding: newerVersion) }
    }

    /// Metadata logs written before data-loss records (version 0) still replay: their partition
    /// changes leave the recorded losses as they are.
    @Test func versionZeroPartitionChangesDecodeWithoutDataLosses() throws {
        let record = MetadataRecord.partitionChange(PartitionChangeRecord(
            topicID: TopicID(high: 1, low: 2), partition: 3, leader: .elected(NodeID(2)), isr: nodes([2]),
            leaderEpoch: LeaderEpoch(4), partitionEpoch: PartitionEpoch(5), dataLoss: nil))
        var versionZero = record.encoded()
        #expect(versionZero[1] == 0x01 && versionZero.last == 0, "version 1 ends with an absent data-loss list")
        versionZero[1] = 0x00
        versionZero.removeLast()
        #expect(try MetadataRecord(decoding: versionZero) == record)
    }

    /// A forged count far beyond the input fails before anything is allocated for it.
    @Test func forgedCountsFailWithoutAllocating() {
        var writer = ByteWriter()
        writer.writeUnsignedVarint(MetadataRecordType.partition.rawValue)
        writer.writeUnsignedVarint(0)
        writer.writeUUID(Self.topicID)
        writer.writeInt32(0)
        writer.writeUnsignedVarint(99_999) // replicas count, with nothing behind it
        #expect(throws: DecodeError.self) { try MetadataRecord(decoding: writer.bytes) }

        var hugeString = ByteWriter()
        hugeString.writeUnsignedVarint(MetadataRecordType.topic.rawValue)
        hugeString.writeUnsignedVarint(0)
        hugeString.writeUnsignedVarint(UInt32.max) // name length
        #expect(throws: DecodeError.self) { try MetadataRecord(decoding: hugeString.bytes) }
    }

    @Test func invalidUTF8AndBadTagsAreRefused() {
        var badName = ByteWriter()
        badName.writeUnsignedVarint(MetadataRecordType.topic.rawValue)
        badName.writeUnsignedVarint(0)
        badName.writeUnsignedVarint(2)
        badName.writeBytes([0xC3, 0x28])
        #expect(throws: DecodeError.self) { try MetadataRecord(decoding: badName.bytes) }

        var badLeader = Self.samples[10].encoded()
        badLeader[2 + 16 + 4] = 7 // the leader-change tag
        #expect(throws: DecodeError.self) { try MetadataRecord(decoding: badLeader) }
    }

    /// Random bytes, and valid records with random bytes flipped, decode or throw: never trap.
    @Test func garbageNeverTraps() {
        var random = DeterministicRandom(seed: 0xC0DEC)
        var decoded = 0
        for _ in 0..<20_000 {
            var bytes = [UInt8](repeating: 0, count: random.int(in: 0...64))
            random.fill(&bytes)
            if random.chance(0.5), !bytes.isEmpty { bytes[0] = UInt8(random.int(in: 1...10)) }
            if bytes.count > 1 { bytes[1] = random.chance(0.8) ? 0 : bytes[1] }
            if (try? MetadataRecord(decoding: bytes)) != nil { decoded += 1 }
        }
        for _ in 0..<20_000 {
            var bytes = Self.samples[random.int(in: 0...(Self.samples.count - 1))].encoded()
            for _ in 0..<random.int(in: 1...3) {
                bytes[random.int(in: 0...(bytes.count - 1))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            }
            if let record = try? MetadataRecord(decoding: bytes) {
                decoded += 1
                // Whatever decodes re-encodes to something that decodes to the same record.
                #expect((try? MetadataRecord(decoding: record.encoded())) == record)
            }
        }
        #expect(decoded > 0, "some mutated inputs should still decode")
    }
}
