import KafkaProtocol
import TernCore
import Testing

/// The data-plane requests' compact codec: exact round trips, and hostile bytes refused with a
/// `DecodeError`, never a trap or an allocation ahead of the data.
@Suite struct RequestsCodecTests {
    // MARK: Samples

    static let someRecords: [UInt8] = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 37) }

    static let requests: [DataRequest] = [
        .produce(ProduceRequest(transactionalID: "txn-ü-1", acks: -1, timeoutMilliseconds: 30_000, topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 0, records: someRecords),
                .init(partitionIndex: 7, records: []),
            ]),
            .init(name: String(repeating: "t", count: 249), partitions: []),
        ])),
        .produce(ProduceRequest(acks: 1, timeoutMilliseconds: 0, topics: [])),
        .fetch(FetchRequest(replicaID: NodeID(3), replicaEpoch: BrokerEpoch(9), maxWaitMilliseconds: 500, minBytes: 1, maxBytes: 52_428_800,
                            isolationLevel: .readUncommitted, topics: [
            .init(name: "orders", topicID: KafkaUUID(mostSignificantBits: 0x0123_4567_89AB_CDEF, leastSignificantBits: .max), partitions: [
                .init(partitionIndex: 2, currentLeaderEpoch: LeaderEpoch(9), fetchOffset: Offset(1_234_567_890_123),
                      lastFetchedEpoch: LeaderEpoch(8), logStartOffset: Offset(100), partitionMaxBytes: 1_048_576,
                      replicaDurableOffset: Offset(1_234_567_890_000)),
            ]),
        ])),
        .fetch(FetchRequest(maxWaitMilliseconds: 100, minBytes: 0, maxBytes: .max, isolationLevel: .readCommitted, topics: [
            .init(name: "a", partitions: [.init(partitionIndex: 0, fetchOffset: .zero, partitionMaxBytes: 1)]),
            .init(name: "b", partitions: []),
        ])),
        .metadata(MetadataRequest(topics: nil, allowAutoTopicCreation: true)),
        .metadata(MetadataRequest(topics: [], allowAutoTopicCreation: false)),
        .metadata(MetadataRequest(topics: ["orders", "payments", "ünïcode"], allowAutoTopicCreation: true)),
        .listOffsets(ListOffsetsRequest(replicaID: nil, isolationLevel: .readCommitted, topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 0, currentLeaderEpoch: LeaderEpoch(4), timestampMilliseconds: ListOffsetsRequest.Partition.latestTimestamp),
                .init(partitionIndex: 1, timestampMilliseconds: ListOffsetsRequest.Partition.earliestTimestamp),
                .init(partitionIndex: 2, timestampMilliseconds: 1_700_000_000_123),
            ]),
        ])),
        .offsetForLeaderEpoch(OffsetForLeaderEpochRequest(replicaID: NodeID(2), topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 5, currentLeaderEpoch: LeaderEpoch(12), leaderEpoch: LeaderEpoch(11)),
                .init(partitionIndex: 6, leaderEpoch: .none),
            ]),
        ])),
        .initProducerID(InitProducerIDRequest(transactionTimeoutMilliseconds: -1)),
        .initProducerID(InitProducerIDRequest(transactionalID: "app-7", transactionTimeoutMilliseconds: 60_000,
                                              producerID: ProducerID(4_000_000_001), producerEpoch: ProducerEpoch(32_000))),
    ]

    static let responses: [DataResponse] = [
        .produce(ProduceResponse(topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 0, errorCode: .none, baseOffset: Offset(42), logAppendTimeMilliseconds: 1_700_000_000_000,
                      logStartOffset: Offset(7)),
                .init(partitionIndex: 1, errorCode: .notEnoughReplicas),
                .init(partitionIndex: 2, errorCode: .outOfOrderSequenceNumber, baseOffset: .unknown),
            ]),
        ], throttleTimeMilliseconds: 250)),
        .fetch(FetchResponse(topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 0, highWatermark: Offset(900), lastStableOffset: Offset(880), logStartOffset: Offset(3),
                      leaderLogEndOffset: Offset(950),
                      abortedTransactions: [.init(producerID: ProducerID(77), firstOffset: Offset(860)),
                                            .init(producerID: ProducerID(78), firstOffset: Offset(870))],
                      records: someRecords),
                .init(partitionIndex: 1, errorCode: .none, highWatermark: Offset(10), lastStableOffset: Offset(10),
                      logStartOffset: .zero, divergingEpoch: .init(epoch: LeaderEpoch(5), endOffset: Offset(77)), records: []),
                .init(partitionIndex: 2, errorCode: .notLeaderOrFollower,
                      currentLeader: .init(leaderID: NodeID(4), leaderEpoch: LeaderEpoch(13))),
                .init(partitionIndex: 3, errorCode: .fencedLeaderEpoch, currentLeader: .init(leaderID: nil, leaderEpoch: .none)),
            ]),
        ])),
        .fetch(FetchResponse(errorCode: .unknownServerError, topics: [])),
        .metadata(MetadataResponse(
            brokers: [.init(nodeID: NodeID(1), host: "10.0.0.1", port: 9092, rack: "rack-a"),
                      .init(nodeID: NodeID(2), host: "broker-2.internal", port: 19092)],
            clusterID: "tern-cluster-Zx81", controllerID: NodeID(1),
            topics: [
                .init(name: "orders", partitions: [
                    .init(partitionIndex: 0, leaderID: NodeID(1), leaderEpoch: LeaderEpoch(3), replicaNodes: [NodeID(1), NodeID(2), NodeID(3)],
                          isrNodes: [NodeID(1), NodeID(2)], offlineReplicas: [NodeID(3)]),
                    .init(errorCode: .leaderNotAvailable, partitionIndex: 1, leaderID: nil, leaderEpoch: LeaderEpoch(8),
                          replicaNodes: [NodeID(3)], isrNodes: []),
                ]),
                .init(name: "__consumer_offsets", isInternal: true, partitions: []),
                .init(errorCode: .unknownTopicOrPartition, name: "missing", partitions: []),
            ])),
        .metadata(MetadataResponse(brokers: [], clusterID: nil, controllerID: nil, topics: [])),
        .listOffsets(ListOffsetsResponse(topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 0, timestampMilliseconds: -1, offset: Offset(1_000), leaderEpoch: LeaderEpoch(6)),
                .init(partitionIndex: 1, errorCode: .offsetNotAvailable),
            ]),
        ])),
        .offsetForLeaderEpoch(OffsetForLeaderEpochResponse(topics: [
            .init(name: "orders", partitions: [
                .init(partitionIndex: 5, leaderEpoch: LeaderEpoch(10), endOffset: Offset(5_000)),
                .init(partitionIndex: 6, errorCode: .unknownLeaderEpoch),
            ]),
        ])),
        .initProducerID(InitProducerIDResponse(producerID: ProducerID(1_000), producerEpoch: ProducerEpoch(0))),
        .initProducerID(InitProducerIDResponse(errorCode: .concurrentTransactions)),
    ]

    // MARK: Round trips

    @Test func everyRequestRoundTrips() throws {
        for request in Self.requests {
            let bytes = request.encoded()
            #expect(bytes[0] == request.apiKey.rawValue)
            #expect(bytes[1] == dataCodecVersion)
            #expect(try DataRequest(decoding: bytes) == request)
        }
        #expect(Set(Self.requests.map(\.apiKey)) == Set(DataAPIKey.allCases))
    }

    @Test func everyResponseRoundTrips() throws {
        for response in Self.responses {
            let bytes = response.encoded()
            #expect(bytes[0] == response.apiKey.rawValue)
            #expect(try DataResponse(decoding: bytes) == response)
        }
        #expect(Set(Self.responses.map(\.apiKey)) == Set(DataAPIKey.allCases))
    }

    @Test func emptyRecordsRoundTripAsEmpty() throws {
        let response = DataResponse.fetch(FetchResponse(topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, records: [])])]))
        guard case let .fetch(decoded) = try DataResponse(decoding: response.encoded()) else {
            Issue.record("not a fetch response")
            return
        }
        #expect(decoded.topics[0].partitions[0].records == [])
        #expect(response.encoded().last == 0, "empty records are a zero length")

        let request = DataRequest.produce(ProduceRequest(acks: 0, timeoutMilliseconds: 1, topics: [
            .init(name: "t", partitions: [.init(partitionIndex: 0, records: [])]),
        ]))
        guard case let .produce(decodedRequest) = try DataRequest(decoding: request.encoded()) else {
            Issue.record("not a produce request")
            return
        }
        #expect(decodedRequest.topics[0].partitions[0].records == [])
    }

    // MARK: Hostile bytes

    @Test func everyTruncationThrows() {
        for request in Self.requests {
            let bytes = request.encoded()
            for length in 0..<bytes.count {
                #expect(decodeError { _ = try DataRequest(decoding: Array(bytes[0..<length])) } != nil,
                        "prefix of \(length) of \(bytes.count) bytes of \(request.apiKey)")
            }
        }
        for response in Self.responses {
            let bytes = response.encoded()
            for length in 0..<bytes.count {
                #expect(decodeError { _ = try DataResponse(decoding: Array(bytes[0..<length])) } != nil,
                        "prefix of \(length) of \(bytes.count) bytes of \(response.apiKey)")
            }
        }
    }

    @Test func trailingBytesAreRefused() {
        for request in Self.requests {
            #expect(decodeError { _ = try DataRequest(decoding: request.encoded() + [0]) } != nil)
        }
        for response in Self.responses {
            #expect(decodeError { _ = try DataResponse(decoding: response.encoded() + [0]) } != nil)
        }
    }

    @Test func unknownKeysAndNewerVersionsAreRefused() {
        var bytes = Self.requests[0].encoded()
        bytes[1] = dataCodecVersion + 1
        #expect(isInvalidValue(decodeError { _ = try DataRequest(decoding: bytes) }))
        bytes = Self.responses[0].encoded()
        bytes[0] = 99
        #expect(isInvalidValue(decodeError { _ = try DataResponse(decoding: bytes) }))
    }

    @Test func unknownErrorCodesAndIsolationLevelsAreRefused() {
        // InitProducerId response: key, version, error code (int16) first.
        var bytes = DataResponse.initProducerID(InitProducerIDResponse()).encoded()
        bytes[2] = 0x7F
        #expect(isInvalidValue(decodeError { _ = try DataResponse(decoding: bytes) }))
        // Fetch request: key, version, replica id (4), replica epoch (8), max wait (4), min bytes (4),
        // max bytes (4), isolation level.
        bytes = Self.requests[2].encoded()
        bytes[26] = 2
        #expect(isInvalidValue(decodeError { _ = try DataRequest(decoding: bytes) }))
    }

    @Test func randomBytesNeverTrap() {
        var random = DeterministicRandom(seed: 0x5EED_0001)
        let keys = DataAPIKey.allCases.map(\.rawValue)
        for round in 0..<4_000 {
            var bytes = [UInt8](repeating: 0, count: random.int(in: 0...96))
            random.fill(&bytes)
            // Most inputs get a valid header so the bodies' decoders are reached, not just the key check.
            if bytes.count >= 2, round % 4 != 0 {
                bytes[0] = keys[random.int(in: 0...(keys.count - 1))]
                bytes[1] = dataCodecVersion
            }
            checkStableIfAccepted(bytes)
        }
    }

    @Test func singleByteMutationsNeverTrap() {
        var random = DeterministicRandom(seed: 0x5EED_0002)
        let samples = Self.requests.map { $0.encoded() } + Self.responses.map { $0.encoded() }
        var accepted = 0
        for round in 0..<6_000 {
            var bytes = samples[round % samples.count]
            let index = random.int(in: 0...(bytes.count - 1))
            var replacement = UInt8(truncatingIfNeeded: random.next())
            if replacement == bytes[index] { replacement &+= 1 }
            bytes[index] = replacement
            if checkStableIfAccepted(bytes) { accepted += 1 }
        }
        // Most mutations land in integer fields and still decode: the checks above ran on them.
        #expect(accepted > 1_000)
    }

    // MARK: Limits, checked before allocating

    @Test func listCountsAboveTheLimitAreRefusedBeforeReadingElements() {
        // Produce request: key, version, no transactional id, acks, timeout, then the topics count.
        var writer = ByteWriter()
        writer.writeUInt8(DataAPIKey.produce.rawValue)
        writer.writeUInt8(dataCodecVersion)
        writer.writeUnsignedVarint(0)
        writer.writeInt16(-1)
        writer.writeInt32(1_000)
        writer.writeUnsignedVarint(UInt32(DataCodecLimits.maximumTopicsPerMessage + 1))
        #expect(isInvalidValue(decodeError { _ = try DataRequest(decoding: writer.bytes) }))

        // A count under the limit but beyond what the bytes left could hold is truncated at once.
        writer = ByteWriter()
        writer.writeUInt8(DataAPIKey.metadata.rawValue)
        writer.writeUInt8(dataCodecVersion)
        writer.writeUnsignedVarint(UInt32(DataCodecLimits.maximumTopicsPerMessage))  // count + 1
        guard case .truncated = decodeError({ _ = try DataRequest(decoding: writer.bytes) }) else {
            Issue.record("a forged count was not refused as truncated")
            return
        }

        // A varint over 32 bits never becomes a count.
        writer = ByteWriter()
        writer.writeUInt8(DataAPIKey.listOffsets.rawValue)
        writer.writeUInt8(dataCodecVersion)
        writer.writeBytes([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        #expect(decodeError { _ = try DataResponse(decoding: writer.bytes) } != nil)
    }

    @Test func recordsAboveTheLimitAreRefusedBeforeAllocating() {
        var writer = ByteWriter()
        writer.writeUInt8(DataAPIKey.produce.rawValue)
        writer.writeUInt8(dataCodecVersion)
        writer.writeUnsignedVarint(0)
        writer.writeInt16(1)
        writer.writeInt32(1_000)
        writer.writeUnsignedVarint(1)  // one topic
        writer.writeUnsignedVarint(1)
        writer.writeString("t")
        writer.writeUnsignedVarint(1)  // one partition
        writer.writeInt32(0)
        writer.writeUnsignedVarint(UInt32(DataCodecLimits.maximumRecordsBytes + 1))
        #expect(isInvalidValue(decodeError { _ = try DataRequest(decoding: writer.bytes) }))
    }

    @Test func topicNamesAboveTheLimitAreRefused() {
        let name = String(repeating: "n", count: DataCodecLimits.maximumTopicNameBytes)
        var bytes = DataRequest.metadata(MetadataRequest(topics: [name])).encoded()
        // key, version, count + 1, name length (249 fits one varint byte), name, flag.
        #expect(bytes[3] == UInt8(DataCodecLimits.maximumTopicNameBytes))
        bytes[3] = UInt8(DataCodecLimits.maximumTopicNameBytes + 1)
        bytes.insert(UInt8(ascii: "n"), at: 4)
        #expect(isInvalidValue(decodeError { _ = try DataRequest(decoding: bytes) }))
    }

    @Test func partitionsAreCountedAcrossTopics() throws {
        let firstTopicPartitions = 60_000
        let request = DataRequest.offsetForLeaderEpoch(OffsetForLeaderEpochRequest(topics: [
            .init(name: "a", partitions: (0..<firstTopicPartitions).map {
                .init(partitionIndex: Int32($0), leaderEpoch: LeaderEpoch(1))
            }),
        ]))
        var bytes = request.encoded()
        #expect(try DataRequest(decoding: bytes) == request)
        // key, version, replica id (4 bytes), then the topics count: claim a second topic whose
        // partitions would take the message over the limit, with room enough for all of them.
        #expect(bytes[6] == 1)
        bytes[6] = 2
        var tail = ByteWriter()
        tail.writeUnsignedVarint(1)
        tail.writeString("b")
        tail.writeUnsignedVarint(UInt32(DataCodecLimits.maximumPartitionsPerMessage - firstTopicPartitions + 1))
        bytes += tail.bytes
        bytes += [UInt8](repeating: 0, count: 12 * (DataCodecLimits.maximumPartitionsPerMessage - firstTopicPartitions + 1))
        let error = decodeError { _ = try DataRequest(decoding: bytes) }
        guard case let .invalidValue(_, reason) = error else {
            Issue.record("expected the partition budget to refuse, got \(String(describing: error))")
            return
        }
        #expect(reason.contains("partitions in one message"))
    }

    @Test func negativeNodeIDsOtherThanNoneAreRefused() {
        var bytes = Self.requests[2].encoded()  // a follower fetch: replica id at bytes 2..<6
        bytes.replaceSubrange(2..<6, with: [0xFF, 0xFF, 0xFF, 0xFE])
        #expect(isInvalidValue(decodeError { _ = try DataRequest(decoding: bytes) }))
        bytes.replaceSubrange(2..<6, with: [0xFF, 0xFF, 0xFF, 0xFF])
        guard case let .fetch(consumerFetch) = try? DataRequest(decoding: bytes) else {
            Issue.record("-1 is a consumer fetch")
            return
        }
        #expect(consumerFetch.replicaID == nil)
    }

    // MARK: Helpers

    /// Whatever the decoder accepts must encode and decode to the same value again.
    @discardableResult
    private func checkStableIfAccepted(_ bytes: [UInt8]) -> Bool {
        var accepted = false
        if let request = try? DataRequest(decoding: bytes) {
            #expect((try? DataRequest(decoding: request.encoded())) == request)
            accepted = true
        }
        if let response = try? DataResponse(decoding: bytes) {
            #expect((try? DataResponse(decoding: response.encoded())) == response)
            accepted = true
        }
        return accepted
    }
}

/// The `DecodeError` `body` throws; the decoders' typed throws guarantee no other error type.
private func decodeError(_ body: () throws -> Void) -> DecodeError? {
    do {
        try body()
        return nil
    } catch let error as DecodeError {
        return error
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

private func isInvalidValue(_ error: DecodeError?) -> Bool {
    if case .invalidValue = error { return true }
    return false
}
