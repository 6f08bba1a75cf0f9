import KafkaProtocol
import TernCore
import Testing

/// Logical data-plane messages through Kafka's wire and back: logical → wire struct → frame bytes
/// → wire struct → logical, at the lowest and highest version Tern serves. At the lowest version
/// the fields that version lacks come back as Kafka's defaults.
@Suite struct KafkaDataMappingTests {
    struct RequestCase: Sendable, CustomTestStringConvertible {
        var request: DataRequest
        var version: Int16
        var expected: DataRequest
        var testDescription: String { "\(request.apiKey) v\(version)" }
    }

    struct ResponseCase: Sendable, CustomTestStringConvertible {
        var response: DataResponse
        var version: Int16
        var expected: DataResponse
        var testDescription: String { "\(response.apiKey) v\(version)" }
    }

    static let records: [UInt8] = (0..<120).map { UInt8(truncatingIfNeeded: $0 &* 13) }

    static func kafkaKey(_ key: DataAPIKey) -> KafkaAPIKey {
        switch key {
        case .produce: return .produce
        case .fetch: return .fetch
        case .listOffsets: return .listOffsets
        case .metadata: return .metadata
        case .initProducerID: return .initProducerID
        case .offsetForLeaderEpoch: return .offsetForLeaderEpoch
        }
    }

    // MARK: Requests

    static let produce = ProduceRequest(transactionalID: "txn-1", acks: -1, timeoutMilliseconds: 30_000, topics: [
        .init(name: "orders", partitions: [.init(partitionIndex: 0, records: records), .init(partitionIndex: 4, records: [])]),
    ])

    static let fetch = FetchRequest(replicaID: NodeID(3), maxWaitMilliseconds: 500, minBytes: 1, maxBytes: 1_048_576,
                                    isolationLevel: .readCommitted, topics: [
        .init(name: "orders", partitions: [
            .init(partitionIndex: 2, currentLeaderEpoch: LeaderEpoch(9), fetchOffset: Offset(1_234), lastFetchedEpoch: LeaderEpoch(8),
                  logStartOffset: Offset(100), partitionMaxBytes: 65_536),
        ]),
    ])
    static let fetchV4 = FetchRequest(replicaID: NodeID(3), maxWaitMilliseconds: 500, minBytes: 1, maxBytes: 1_048_576,
                                      isolationLevel: .readCommitted, topics: [
        .init(name: "orders", partitions: [.init(partitionIndex: 2, fetchOffset: Offset(1_234), partitionMaxBytes: 65_536)]),
    ])

    static let listOffsets = ListOffsetsRequest(replicaID: nil, isolationLevel: .readCommitted, topics: [
        .init(name: "orders", partitions: [
            .init(partitionIndex: 0, currentLeaderEpoch: LeaderEpoch(4), timestampMilliseconds: ListOffsetsRequest.Partition.latestTimestamp),
            .init(partitionIndex: 1, timestampMilliseconds: 1_700_000_000_000),
        ]),
    ])
    static let listOffsetsV1 = ListOffsetsRequest(replicaID: nil, isolationLevel: .readUncommitted, topics: [
        .init(name: "orders", partitions: [
            .init(partitionIndex: 0, timestampMilliseconds: ListOffsetsRequest.Partition.latestTimestamp),
            .init(partitionIndex: 1, timestampMilliseconds: 1_700_000_000_000),
        ]),
    ])

    static let initProducerID = InitProducerIDRequest(transactionalID: "app-7", transactionTimeoutMilliseconds: 60_000,
                                                      producerID: ProducerID(4_000), producerEpoch: ProducerEpoch(3))

    static let offsetForLeaderEpoch = OffsetForLeaderEpochRequest(replicaID: NodeID(2), topics: [
        .init(name: "orders", partitions: [.init(partitionIndex: 5, currentLeaderEpoch: LeaderEpoch(12), leaderEpoch: LeaderEpoch(11))]),
    ])

    static let requestCases: [RequestCase] = [
        .init(request: .produce(produce), version: 3, expected: .produce(produce)),
        .init(request: .produce(produce), version: 11, expected: .produce(produce)),
        .init(request: .fetch(fetch), version: 4, expected: .fetch(fetchV4)),
        .init(request: .fetch(fetch), version: 12, expected: .fetch(fetch)),
        .init(request: .listOffsets(listOffsets), version: 1, expected: .listOffsets(listOffsetsV1)),
        .init(request: .listOffsets(listOffsets), version: 7, expected: .listOffsets(listOffsets)),
        // v0 has no auto-creation flag (Kafka creates) and no null array (an empty list asks for all).
        .init(request: .metadata(MetadataRequest(topics: ["a", "b"], allowAutoTopicCreation: false)), version: 0,
              expected: .metadata(MetadataRequest(topics: ["a", "b"], allowAutoTopicCreation: true))),
        .init(request: .metadata(MetadataRequest(topics: nil, allowAutoTopicCreation: true)), version: 0,
              expected: .metadata(MetadataRequest(topics: nil, allowAutoTopicCreation: true))),
        .init(request: .metadata(MetadataRequest(topics: ["a", "b"], allowAutoTopicCreation: false)), version: 12,
              expected: .metadata(MetadataRequest(topics: ["a", "b"], allowAutoTopicCreation: false))),
        .init(request: .metadata(MetadataRequest(topics: nil, allowAutoTopicCreation: false)), version: 12,
              expected: .metadata(MetadataRequest(topics: nil, allowAutoTopicCreation: false))),
        .init(request: .metadata(MetadataRequest(topics: [], allowAutoTopicCreation: false)), version: 12,
              expected: .metadata(MetadataRequest(topics: [], allowAutoTopicCreation: false))),
        .init(request: .initProducerID(initProducerID), version: 0,
              expected: .initProducerID(InitProducerIDRequest(transactionalID: "app-7", transactionTimeoutMilliseconds: 60_000))),
        .init(request: .initProducerID(initProducerID), version: 4, expected: .initProducerID(initProducerID)),
        .init(request: .initProducerID(InitProducerIDRequest(transactionTimeoutMilliseconds: -1)), version: 4,
              expected: .initProducerID(InitProducerIDRequest(transactionTimeoutMilliseconds: -1))),
        .init(request: .offsetForLeaderEpoch(offsetForLeaderEpoch), version: 2,
              expected: .offsetForLeaderEpoch(OffsetForLeaderEpochRequest(replicaID: nil, topics: offsetForLeaderEpoch.topics))),
        .init(request: .offsetForLeaderEpoch(offsetForLeaderEpoch), version: 4, expected: .offsetForLeaderEpoch(offsetForLeaderEpoch)),
    ]

    @Test(arguments: requestCases)
    func requestsTravelOverKafkasWire(_ testCase: RequestCase) throws {
        let header = KafkaRequestHeader(apiKey: Self.kafkaKey(testCase.request.apiKey), apiVersion: testCase.version,
                                        correlationID: 11, clientID: "tern")
        let frame = encodeKafkaRequest(testCase.request.kafkaRequest(version: testCase.version), header: header)
        let decoded = try decodeKafkaRequest(frame[4...])
        #expect(decoded.header == header)
        let logical = try #require(DataRequest(kafka: decoded.body, version: decoded.header.apiVersion))
        #expect(logical == testCase.expected)
        // The logical value still goes through Tern's own codec unchanged.
        #expect(try DataRequest(decoding: logical.encoded()) == logical)
    }

    // MARK: Responses

    static let produceResponse = ProduceResponse(topics: [
        .init(name: "orders", partitions: [
            .init(partitionIndex: 0, errorCode: .none, baseOffset: Offset(42), logAppendTimeMilliseconds: 1_700_000_000_000,
                  logStartOffset: Offset(7)),
            .init(partitionIndex: 1, errorCode: .notEnoughReplicas),
        ]),
    ], throttleTimeMilliseconds: 5)

    static func fetchResponse(highVersion: Bool) -> FetchResponse {
        FetchResponse(errorCode: highVersion ? .unknownServerError : .none, topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 0, highWatermark: Offset(10), lastStableOffset: Offset(9),
                      logStartOffset: highVersion ? Offset(1) : .unknown,
                      divergingEpoch: highVersion ? .init(epoch: LeaderEpoch(3), endOffset: Offset(8)) : nil,
                      abortedTransactions: [.init(producerID: ProducerID(77), firstOffset: Offset(3))], records: records),
                .init(partitionIndex: 1, errorCode: .notLeaderOrFollower, highWatermark: .unknown, lastStableOffset: .unknown,
                      logStartOffset: highVersion ? Offset(0) : .unknown,
                      currentLeader: highVersion ? .init(leaderID: NodeID(2), leaderEpoch: LeaderEpoch(6)) : nil),
                .init(partitionIndex: 2, errorCode: .fencedLeaderEpoch, logStartOffset: .unknown,
                      currentLeader: highVersion ? .init(leaderID: nil, leaderEpoch: .none) : nil),
            ]),
        ])
    }

    static let listOffsetsResponse = ListOffsetsResponse(topics: [
        .init(name: "orders", partitions: [
            .init(partitionIndex: 0, timestampMilliseconds: -1, offset: Offset(1_000), leaderEpoch: LeaderEpoch(4)),
            .init(partitionIndex: 1, errorCode: .fencedLeaderEpoch),
        ]),
    ])
    static let listOffsetsResponseV1 = ListOffsetsResponse(topics: [
        .init(name: "orders", partitions: [
            .init(partitionIndex: 0, timestampMilliseconds: -1, offset: Offset(1_000)),
            .init(partitionIndex: 1, errorCode: .fencedLeaderEpoch),
        ]),
    ])

    static func metadataResponse(highVersion: Bool) -> MetadataResponse {
        MetadataResponse(
            brokers: [.init(nodeID: NodeID(1), host: "127.0.0.1", port: 19092, rack: highVersion ? "r1" : nil),
                      .init(nodeID: NodeID(2), host: "127.0.0.1", port: 19093)],
            clusterID: highVersion ? "tern-cluster" : nil, controllerID: highVersion ? NodeID(1) : nil,
            topics: [
                .init(name: "orders", isInternal: false, partitions: [
                    .init(partitionIndex: 0, leaderID: NodeID(1), leaderEpoch: highVersion ? LeaderEpoch(3) : .none,
                          replicaNodes: [NodeID(1), NodeID(2)], isrNodes: [NodeID(1)], offlineReplicas: highVersion ? [NodeID(2)] : []),
                    .init(errorCode: .leaderNotAvailable, partitionIndex: 1, leaderID: nil, leaderEpoch: highVersion ? LeaderEpoch(1) : .none,
                          replicaNodes: [NodeID(2)], isrNodes: []),
                ]),
                .init(errorCode: .unknownTopicOrPartition, name: "missing", partitions: []),
                .init(name: "__consumer_offsets", isInternal: highVersion, partitions: []),
            ])
    }

    static let offsetForLeaderEpochResponse = OffsetForLeaderEpochResponse(topics: [
        .init(name: "orders", partitions: [
            .init(partitionIndex: 5, leaderEpoch: LeaderEpoch(11), endOffset: Offset(900)),
            .init(partitionIndex: 6, errorCode: .fencedLeaderEpoch),
        ]),
    ])

    static let responseCases: [ResponseCase] = [
        .init(response: .produce(produceResponse), version: 3, expected: .produce(ProduceResponse(topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 0, errorCode: .none, baseOffset: Offset(42), logAppendTimeMilliseconds: 1_700_000_000_000),
                .init(partitionIndex: 1, errorCode: .notEnoughReplicas),
            ]),
        ], throttleTimeMilliseconds: 5))),
        .init(response: .produce(produceResponse), version: 11, expected: .produce(produceResponse)),
        .init(response: .fetch(fetchResponse(highVersion: true)), version: 4, expected: .fetch(fetchResponse(highVersion: false))),
        .init(response: .fetch(fetchResponse(highVersion: true)), version: 12, expected: .fetch(fetchResponse(highVersion: true))),
        .init(response: .listOffsets(listOffsetsResponse), version: 1, expected: .listOffsets(listOffsetsResponseV1)),
        .init(response: .listOffsets(listOffsetsResponse), version: 7, expected: .listOffsets(listOffsetsResponse)),
        .init(response: .metadata(metadataResponse(highVersion: true)), version: 0, expected: .metadata(metadataResponse(highVersion: false))),
        .init(response: .metadata(metadataResponse(highVersion: true)), version: 12, expected: .metadata(metadataResponse(highVersion: true))),
        .init(response: .initProducerID(InitProducerIDResponse(errorCode: .none, producerID: ProducerID(1_000), producerEpoch: ProducerEpoch(2))),
              version: 0, expected: .initProducerID(InitProducerIDResponse(errorCode: .none, producerID: ProducerID(1_000), producerEpoch: ProducerEpoch(2)))),
        .init(response: .initProducerID(InitProducerIDResponse(errorCode: .none, producerID: ProducerID(1_000), producerEpoch: ProducerEpoch(2))),
              version: 4, expected: .initProducerID(InitProducerIDResponse(errorCode: .none, producerID: ProducerID(1_000), producerEpoch: ProducerEpoch(2)))),
        .init(response: .offsetForLeaderEpoch(offsetForLeaderEpochResponse), version: 2, expected: .offsetForLeaderEpoch(offsetForLeaderEpochResponse)),
        .init(response: .offsetForLeaderEpoch(offsetForLeaderEpochResponse), version: 4, expected: .offsetForLeaderEpoch(offsetForLeaderEpochResponse)),
    ]

    @Test(arguments: responseCases)
    func responsesTravelOverKafkasWire(_ testCase: ResponseCase) throws {
        let key = Self.kafkaKey(testCase.response.apiKey)
        let header = KafkaRequestHeader(apiKey: key, apiVersion: testCase.version, correlationID: 12, clientID: nil)
        let frame = encodeKafkaResponse(testCase.response.kafkaResponse(version: testCase.version), for: header)
        let (correlationID, wire) = try decodeKafkaResponse(frame[4...], apiKey: key, apiVersion: testCase.version)
        #expect(correlationID == 12)
        let logical = try #require(DataResponse(kafka: wire, version: testCase.version))
        #expect(logical == testCase.expected)
        #expect(try DataResponse(decoding: logical.encoded()) == logical)
    }

    // MARK: Kafka defaults and edges

    @Test func brokerAnswersCarryKafkasDefaults() {
        guard case let .fetch(fetch) = DataResponse.fetch(Self.fetchResponse(highVersion: true)).kafkaResponse(version: 12) else {
            Issue.record("not a fetch response")
            return
        }
        #expect(fetch.sessionId == 0)
        #expect(fetch.responses[0].partitions.allSatisfy { $0.preferredReadReplica == -1 })
        #expect(fetch.responses[0].partitions[1].records == [])  // zero length on the wire, never null
        #expect(fetch.responses[0].partitions[2].currentLeader == .init(leaderId: -1, leaderEpoch: -1))

        guard case let .metadata(metadata) = DataResponse.metadata(Self.metadataResponse(highVersion: true)).kafkaResponse(version: 12) else {
            Issue.record("not a metadata response")
            return
        }
        #expect(metadata.topics.allSatisfy { $0.topicId == .zero })  // all-zero ids keep librdkafka off Fetch v13+
        #expect(metadata.topics[0].partitions[1].leaderId == -1)
        let noController = MetadataResponse(brokers: [], clusterID: nil, controllerID: nil, topics: [])
        guard case let .metadata(empty) = DataResponse.metadata(noController).kafkaResponse(version: 12) else { return }
        #expect(empty.controllerId == -1)

        guard case let .fetch(consumerFetch) = DataRequest.fetch(Self.fetch).kafkaRequest(version: 12) else { return }
        #expect(consumerFetch.sessionId == 0 && consumerFetch.sessionEpoch == -1)
        guard case let .listOffsets(consumerListOffsets) = DataRequest.listOffsets(Self.listOffsets).kafkaRequest(version: 7) else { return }
        #expect(consumerListOffsets.replicaId == -1)
    }

    @Test func otherAPIsAndUnrepresentableValuesDoNotMap() {
        #expect(DataRequest(kafka: .apiVersions(.init()), version: 3) == nil)
        #expect(DataRequest(kafka: .createTopics(.init()), version: 7) == nil)
        #expect(DataRequest(kafka: .fetch(.init(isolationLevel: 2)), version: 12) == nil)
        #expect(DataResponse(kafka: .describeCluster(.init()), version: 1) == nil)
        let negativeReplica = KafkaWire.MetadataResponse(topics: [.init(name: "t", partitions: [.init(leaderId: 1, replicaNodes: [1, -3])])])
        #expect(DataResponse(kafka: .metadata(negativeReplica), version: 12) == nil)
    }

    @Test func kafkaDebugReplicaIDsAndUnknownErrorCodesMapToTheirNearestMeaning() throws {
        let debugReplica = KafkaWire.OffsetForLeaderEpochRequest(replicaId: -2, topics: [])
        #expect(DataRequest(kafka: .offsetForLeaderEpoch(debugReplica), version: 4) == .offsetForLeaderEpoch(.init(replicaID: nil, topics: [])))
        let futureError = KafkaWire.InitProducerIdResponse(errorCode: 32_000, producerId: -1, producerEpoch: -1)
        #expect(DataResponse(kafka: .initProducerID(futureError), version: 4) == .initProducerID(.init(errorCode: .unknownServerError)))
        let nullAborted = KafkaWire.FetchResponse(responses: [.init(topic: "t", partitions: [.init(abortedTransactions: nil)])])
        guard case let .fetch(fetch) = try #require(DataResponse(kafka: .fetch(nullAborted), version: 12)) else { return }
        #expect(fetch.topics[0].partitions[0].abortedTransactions == [])
    }
}
