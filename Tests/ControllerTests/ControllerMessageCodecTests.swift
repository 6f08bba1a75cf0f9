@testable import Controller
import TernCore
import Testing

@Suite struct ControllerMessageCodecTests {
    static let topicID = TopicID(high: 11, low: 12)

    static let requests: [ControllerRequest] = [
        .brokerRegistration(BrokerRegistrationRequest(
            brokerID: NodeID(1), clusterID: "tern-cluster", incarnationID: IncarnationID(high: 1, low: 2),
            endpoints: [BrokerEndpoint(listenerName: "PLAINTEXT", host: "localhost", port: 9092)], rack: "r1")),
        .brokerRegistration(BrokerRegistrationRequest(brokerID: NodeID(2), clusterID: "", incarnationID: .zero, endpoints: [])),
        .brokerHeartbeat(BrokerHeartbeatRequest(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(5), metadataOffset: Offset(77),
                                                wantFence: true, wantShutDown: false)),
        .brokerHeartbeat(BrokerHeartbeatRequest(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(5), metadataOffset: .unknown,
                                                wantShutDown: true)),
        .brokerHeartbeat(BrokerHeartbeatRequest(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(5), metadataOffset: Offset(9),
                                                dataLosses: [
                                                    ReplicaDataLossReport(replica: ReplicaReference(topicID: topicID, partition: 2),
                                                                          firstLostOffset: Offset(17)),
                                                    ReplicaDataLossReport(replica: ReplicaReference(topicID: topicID, partition: 0),
                                                                          firstLostOffset: .zero, acknowledgedLoss: PartitionEpoch(4)),
                                                ])),
        .alterPartition(AlterPartitionRequest(brokerID: NodeID(2), brokerEpoch: BrokerEpoch(3), partitions: [
            .init(topicID: topicID, partition: 4, leaderEpoch: LeaderEpoch(2), partitionEpoch: PartitionEpoch(6),
                  newISR: [.init(brokerID: NodeID(2), brokerEpoch: BrokerEpoch(3)),
                           .init(brokerID: NodeID(1), acknowledgedLoss: PartitionEpoch(5))]),
        ])),
        .allocateProducerIDs(AllocateProducerIDsRequest(brokerID: NodeID(3), brokerEpoch: BrokerEpoch(9))),
        .createTopics(CreateTopicsRequest(topics: [
            .init(name: "a", partitionCount: 3, replicationFactor: 2, configs: [ConfigEntry(name: "min.insync.replicas", value: "2")]),
            .init(name: "b", assignments: [nodes([1, 2]), nodes([2, 3])]),
        ], validateOnly: true)),
        .createPartitions(CreatePartitionsRequest(topics: [.init(name: "a", totalCount: 6),
                                                           .init(name: "b", totalCount: 3, assignments: [nodes([3, 1])])])),
        .deleteTopics(DeleteTopicsRequest(names: ["a", "b"])),
        .electLeaders(ElectLeadersRequest(electionType: .preferred, partitions: nil)),
        .electLeaders(ElectLeadersRequest(electionType: .unclean, partitions: [TopicPartition(topic: "a", partition: 1)])),
        .alterConfigs(AlterConfigsRequest(resources: [
            .init(resource: .topic("a"), changes: [.init(name: "unclean.leader.election.enable", value: "true"),
                                                   .init(name: "retention.ms", value: nil)]),
            .init(resource: .cluster, changes: []),
        ])),
        .alterPartitionReassignments(AlterPartitionReassignmentsRequest(reassignments: [
            .init(topicPartition: TopicPartition(topic: "a", partition: 0), targetReplicas: nodes([4, 2, 3])),
            .init(topicPartition: TopicPartition(topic: "a", partition: 1), targetReplicas: nil),
        ])),
    ]

    static let responses: [ControllerResponse] = [
        .brokerRegistration(BrokerRegistrationResponse(error: .none, brokerEpoch: BrokerEpoch(12))),
        .brokerRegistration(BrokerRegistrationResponse(error: .duplicateBrokerRegistration)),
        .brokerHeartbeat(BrokerHeartbeatResponse(error: .none, isCaughtUp: true, isFenced: false, shouldShutDown: true)),
        .alterPartition(AlterPartitionResponse(error: .none, partitions: [
            .init(topicID: topicID, partition: 1, error: .none, leader: NodeID(2), leaderEpoch: LeaderEpoch(3),
                  isr: nodes([2, 1]), partitionEpoch: PartitionEpoch(8)),
            .init(topicID: topicID, partition: 2, error: .invalidUpdateVersion),
        ])),
        .allocateProducerIDs(AllocateProducerIDsResponse(error: .none, blockStart: ProducerID(1000), blockSize: 1000)),
        .createTopics(CreateTopicsResponse(topics: [
            .init(name: "a", topicID: topicID, error: .none, partitionCount: 3, replicationFactor: 2),
            .init(name: "b", error: .topicAlreadyExists, message: "exists"),
        ])),
        .createPartitions(CreatePartitionsResponse(topics: [AdminResult(name: "a", error: .invalidPartitions, message: "no")])),
        .deleteTopics(DeleteTopicsResponse(topics: [.init(name: "a", topicID: topicID, error: .none)])),
        .electLeaders(ElectLeadersResponse(partitions: [.init(topicPartition: TopicPartition(topic: "a", partition: 0),
                                                              error: .electionNotNeeded)])),
        .alterConfigs(AlterConfigsResponse(resources: [.init(resource: .broker(NodeID(4)), error: .invalidConfig, message: "bad")])),
        .alterPartitionReassignments(AlterPartitionReassignmentsResponse(partitions: [
            .init(topicPartition: TopicPartition(topic: "a", partition: 0), error: .none),
            .init(topicPartition: TopicPartition(topic: "a", partition: 1), error: .noReassignmentInProgress, message: "none"),
        ])),
    ]

    @Test(arguments: requests)
    func requestRoundTrips(request: ControllerRequest) throws {
        #expect(try ControllerRequest(decoding: request.encoded()) == request)
    }

    @Test(arguments: responses)
    func responseRoundTrips(response: ControllerResponse) throws {
        #expect(try ControllerResponse(decoding: response.encoded()) == response)
    }

    @Test func everyAPIIsCovered() {
        #expect(Set(Self.requests.map(\.apiKey)) == Set(ControllerAPIKey.allCases))
        #expect(Set(Self.responses.map(\.apiKey)) == Set(ControllerAPIKey.allCases))
    }

    @Test func heartbeatGoldenBytes() {
        let request = ControllerRequest.brokerHeartbeat(BrokerHeartbeatRequest(
            brokerID: NodeID(1), brokerEpoch: BrokerEpoch(2), metadataOffset: Offset(3), wantFence: false, wantShutDown: true))
        // ... wantFence, wantShutDown, then the offline replicas (an empty list).
        let expected: [UInt8] = [0x02, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0]
        #expect(request.encoded() == expected)
    }

    @Test func truncationsThrow() {
        for bytes in Self.requests.map({ $0.encoded() }) {
            for length in 0..<bytes.count {
                #expect(throws: DecodeError.self) { try ControllerRequest(decoding: Array(bytes[0..<length])) }
            }
        }
        for bytes in Self.responses.map({ $0.encoded() }) {
            for length in 0..<bytes.count {
                #expect(throws: DecodeError.self) { try ControllerResponse(decoding: Array(bytes[0..<length])) }
            }
        }
    }

    @Test func unknownErrorCodeIsRefused() {
        var bytes = ControllerResponse.brokerRegistration(BrokerRegistrationResponse(error: .none)).encoded()
        bytes[2] = 0x7F // error code high byte
        #expect(throws: DecodeError.self) { try ControllerResponse(decoding: bytes) }
    }

    @Test func garbageNeverTraps() {
        var random = DeterministicRandom(seed: 0xFEED)
        var decoded = 0
        for _ in 0..<20_000 {
            var bytes = [UInt8](repeating: 0, count: random.int(in: 0...80))
            random.fill(&bytes)
            if !bytes.isEmpty { bytes[0] = UInt8(random.int(in: 0...10)) }
            if bytes.count > 1 { bytes[1] = 0 }
            if (try? ControllerRequest(decoding: bytes)) != nil { decoded += 1 }
            if (try? ControllerResponse(decoding: bytes)) != nil { decoded += 1 }
        }
        for _ in 0..<20_000 {
            var bytes = random.chance(0.5)
                ? Self.requests[random.int(in: 0...(Self.requests.count - 1))].encoded()
                : Self.responses[random.int(in: 0...(Self.responses.count - 1))].encoded()
            bytes[random.int(in: 0...(bytes.count - 1))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            if let request = try? ControllerRequest(decoding: bytes) {
                decoded += 1
                #expect((try? ControllerRequest(decoding: request.encoded())) == request)
            }
            if let response = try? ControllerResponse(decoding: bytes) {
                decoded += 1
                #expect((try? ControllerResponse(decoding: response.encoded())) == response)
            }
        }
        #expect(decoded > 0)
    }
}
