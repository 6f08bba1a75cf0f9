import KafkaProtocol
import TernCore
import Testing

/// The Kafka wire codec: round trips of every API at its lowest and highest version, golden bytes
/// as real clients send them, and hostile frames refused with typed errors.
@Suite struct KafkaWireTests {
    /// The frame without its 4-byte size prefix, after checking the prefix is right.
    static func body(of frame: [UInt8]) -> ArraySlice<UInt8> {
        precondition(frame.count >= 4)
        let size = frame.loadBigEndian(Int32.self, at: 0)
        #expect(Int(size) == frame.count - 4)
        return frame[4...]
    }

    static func header(_ key: KafkaAPIKey, _ version: Int16, correlationID: Int32 = 42) -> KafkaRequestHeader {
        KafkaRequestHeader(apiKey: key, apiVersion: version, correlationID: correlationID, clientID: "tern-test")
    }

    // MARK: Versions

    /// Every advertised version is generated, and only Fetch has more (the replica fetch version).
    @Test func generatedVersionsMatchTheAdvertisedRanges() {
        #expect(SupportedAPIVersions.generatedRange(of: .fetch) == 4...SupportedAPIVersions.replicaFetchVersion)
        for key in KafkaAPIKey.allCases {
            let advertised = SupportedAPIVersions.generatedRange(of: key)
            let generated: ClosedRange<Int16>
            switch key {
            case .produce: generated = KafkaWire.ProduceRequest.versions
            case .fetch: generated = KafkaWire.FetchRequest.versions
            case .deleteRecords: generated = KafkaWire.DeleteRecordsRequest.versions
            case .alterConfigs: generated = KafkaWire.AlterConfigsRequest.versions
            case .incrementalAlterConfigs: generated = KafkaWire.IncrementalAlterConfigsRequest.versions
            case .listOffsets: generated = KafkaWire.ListOffsetsRequest.versions
            case .metadata: generated = KafkaWire.MetadataRequest.versions
            case .apiVersions: generated = KafkaWire.ApiVersionsRequest.versions
            case .createTopics: generated = KafkaWire.CreateTopicsRequest.versions
            case .deleteTopics: generated = KafkaWire.DeleteTopicsRequest.versions
            case .initProducerID: generated = KafkaWire.InitProducerIdRequest.versions
            case .offsetForLeaderEpoch: generated = KafkaWire.OffsetForLeaderEpochRequest.versions
            case .describeConfigs: generated = KafkaWire.DescribeConfigsRequest.versions
            case .createPartitions: generated = KafkaWire.CreatePartitionsRequest.versions
            case .electLeaders: generated = KafkaWire.ElectLeadersRequest.versions
            case .alterPartitionReassignments: generated = KafkaWire.AlterPartitionReassignmentsRequest.versions
            case .describeCluster: generated = KafkaWire.DescribeClusterRequest.versions
            }
            #expect(generated == advertised, "\(key)")
        }
        #expect(KafkaWireSamples.requests.map(\.apiKey) == KafkaAPIKey.allCases)
        #expect(KafkaWireSamples.responses.map(\.apiKey) == KafkaAPIKey.allCases)
    }

    // MARK: Round trips

    @Test(arguments: KafkaWireSamples.requests)
    func requestRoundTripsAtLowestAndHighestVersion(_ request: KafkaRequest) throws {
        let versions = SupportedAPIVersions.servedRange(of: request.apiKey)
        for version in [versions.lowerBound, versions.upperBound] {
            let header = Self.header(request.apiKey, version)
            let frame = encodeKafkaRequest(request, header: header)
            let decoded = try decodeKafkaRequest(Self.body(of: frame))
            #expect(decoded.header == header)
            // Fields a lower version lacks are lost, so compare re-encoded bytes; at the highest
            // version every sample field exists and the value itself must come back.
            #expect(encodeKafkaRequest(decoded.body, header: header) == frame, "\(request.apiKey) v\(version)")
            if version == versions.upperBound {
                #expect(decoded.body == request, "\(request.apiKey) v\(version)")
            }
        }
    }

    @Test(arguments: KafkaWireSamples.responses)
    func responseRoundTripsAtLowestAndHighestVersion(_ response: KafkaResponse) throws {
        let versions = SupportedAPIVersions.range(of: response.apiKey)
        for version in [versions.lowerBound, versions.upperBound] {
            let header = Self.header(response.apiKey, version, correlationID: 7)
            let frame = encodeKafkaResponse(response, for: header)
            let (correlationID, decoded) = try decodeKafkaResponse(Self.body(of: frame), apiKey: response.apiKey, apiVersion: version)
            #expect(correlationID == 7)
            #expect(encodeKafkaResponse(decoded, for: header) == frame, "\(response.apiKey) v\(version)")
            if version == versions.upperBound {
                #expect(decoded == response, "\(response.apiKey) v\(version)")
            }
        }
    }

    @Test func everyVersionOfEverySampleReencodesToTheSameBytes() throws {
        for request in KafkaWireSamples.requests {
            for version in SupportedAPIVersions.servedRange(of: request.apiKey) {
                let header = Self.header(request.apiKey, version)
                let frame = encodeKafkaRequest(request, header: header)
                let decoded = try decodeKafkaRequest(Self.body(of: frame))
                #expect(encodeKafkaRequest(decoded.body, header: header) == frame, "\(request.apiKey) v\(version)")
            }
        }
        for response in KafkaWireSamples.responses {
            for version in SupportedAPIVersions.range(of: response.apiKey) {
                let header = Self.header(response.apiKey, version)
                let frame = encodeKafkaResponse(response, for: header)
                let decoded = try decodeKafkaResponse(Self.body(of: frame), apiKey: response.apiKey, apiVersion: version).response
                #expect(encodeKafkaResponse(decoded, for: header) == frame, "\(response.apiKey) v\(version)")
            }
        }
    }

    // MARK: Golden bytes

    /// ApiVersions v3 exactly as librdkafka 2.0.2 sends it first on a connection: request header v2
    /// (classic int16 client id, then an empty tag section) and a compact body.
    @Test func apiVersionsV3RequestAsLibrdkafkaSendsIt() throws {
        var bytes: [UInt8] = [0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01]  // key 18, v3, correlation 1
        bytes += [0x00, 0x07] + Array("rdkafka".utf8)  // client_id: classic int16 length even in header v2
        bytes += [0x00]  // header tags
        bytes += [0x0B] + Array("librdkafka".utf8)  // compact string: length + 1
        bytes += [0x06] + Array("2.0.2".utf8)
        bytes += [0x00]  // body tags
        let decoded = try decodeKafkaRequest(bytes[...])
        #expect(decoded.header == KafkaRequestHeader(apiKey: .apiVersions, apiVersion: 3, correlationID: 1, clientID: "rdkafka"))
        #expect(decoded.body == .apiVersions(.init(clientSoftwareName: "librdkafka", clientSoftwareVersion: "2.0.2")))
        let frame = encodeKafkaRequest(decoded.body, header: decoded.header)
        #expect(Array(Self.body(of: frame)) == bytes)
    }

    @Test func apiVersionsV0Response() throws {
        let response = KafkaResponse.apiVersions(.init(errorCode: 0, apiKeys: [.init(apiKey: 18, minVersion: 0, maxVersion: 4)]))
        let frame = encodeKafkaResponse(response, for: Self.header(.apiVersions, 0, correlationID: 5))
        let expected: [UInt8] = [
            0x00, 0x00, 0x00, 0x10,  // size 16
            0x00, 0x00, 0x00, 0x05,  // correlation id, header v0
            0x00, 0x00,  // error code
            0x00, 0x00, 0x00, 0x01,  // int32 array count
            0x00, 0x12, 0x00, 0x00, 0x00, 0x04,
        ]
        #expect(frame == expected)
    }

    /// ApiVersions v3 is flexible, but its response keeps header v0 (no tag byte after the
    /// correlation id), so a client can read it before it knows the broker's versions.
    @Test func apiVersionsV3ResponseKeepsHeaderV0() throws {
        let response = KafkaResponse.apiVersions(.init(errorCode: 0, apiKeys: []))
        let frame = encodeKafkaResponse(response, for: Self.header(.apiVersions, 3, correlationID: 5))
        // correlation id, error code, compact array (0 + 1), throttle, body tags
        #expect(Array(frame[4...]) == [0, 0, 0, 5, 0, 0, 0x01, 0, 0, 0, 0, 0x00])
    }

    @Test func metadataV12ResponseGoldenBytes() throws {
        let response = KafkaResponse.metadata(.init(
            brokers: [.init(nodeId: 1, host: "h", port: 9092, rack: nil)], clusterId: "c", controllerId: 1,
            topics: [.init(errorCode: 0, name: "t", partitions: [
                .init(partitionIndex: 0, leaderId: 1, leaderEpoch: 2, replicaNodes: [1], isrNodes: [1], offlineReplicas: []),
            ])]))
        var expected: [UInt8] = [0, 0, 0, 7, 0x00]  // correlation id, header v1 tags
        expected += [0, 0, 0, 0]  // throttle
        expected += [0x02, 0, 0, 0, 1, 0x02, UInt8(ascii: "h"), 0, 0, 0x23, 0x84, 0x00, 0x00]  // broker, null rack, tags
        expected += [0x02, UInt8(ascii: "c"), 0, 0, 0, 1]  // cluster id, controller id
        expected += [0x02, 0, 0, 0x02, UInt8(ascii: "t")] + [UInt8](repeating: 0, count: 16) + [0x00]  // topic head, uuid, internal
        expected += [0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]  // one partition: error, index, leader, epoch
        expected += [0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1, 0x01, 0x00]  // replicas, isr, offline, tags
        expected += [0x80, 0, 0, 0, 0x00]  // topic authorized operations (default), topic tags
        expected += [0x00]  // top-level tags
        let frame = encodeKafkaResponse(response, for: Self.header(.metadata, 12, correlationID: 7))
        #expect(Array(Self.body(of: frame)) == expected)
        let decoded = try decodeKafkaResponse(expected[...], apiKey: .metadata, apiVersion: 12)
        #expect(decoded.response == response)
    }

    /// The replica fetch carries Tern's own fields as tagged fields: they survive a round trip at
    /// the replica fetch version, and are absent from the bytes where they hold their default, so
    /// a consumer's fetch answer is exactly what Kafka's schema describes.
    @Test func ternTaggedFieldsTravelOnlyWhenSet() throws {
        let version = SupportedAPIVersions.replicaFetchVersion
        let partition = KafkaWire.FetchRequest.FetchPartition(partition: 3, fetchOffset: 10, partitionMaxBytes: 100,
                                                              ternReplicaDurableOffset: 8, ternReplicaAcknowledgedLoss: 2)
        let request = KafkaWire.FetchRequest(replicaState: .init(replicaId: 2, replicaEpoch: 77),
                                             topics: [.init(topicId: KafkaUUID(mostSignificantBits: 1, leastSignificantBits: 2),
                                                            partitions: [partition])])
        var writer = ByteWriter()
        request.encode(into: &writer, version: version)
        var reader = KafkaWireReader(writer.take()[...])
        let decoded = try KafkaWire.FetchRequest(decoding: &reader, version: version)
        #expect(decoded == request)
        #expect(decoded.replicaState?.replicaEpoch == 77)

        var answer = KafkaWire.FetchResponse.PartitionData(partitionIndex: 3, highWatermark: 5)
        var plain = ByteWriter()
        answer.encode(into: &plain, version: 12)
        answer.ternLeaderLogEndOffset = 9
        var extended = ByteWriter()
        answer.encode(into: &extended, version: 12)
        let plainBytes = plain.take()
        let extendedBytes = extended.take()
        #expect(extendedBytes.count > plainBytes.count)
        var extendedReader = KafkaWireReader(extendedBytes[...])
        #expect(try KafkaWire.FetchResponse.PartitionData(decoding: &extendedReader, version: 12).ternLeaderLogEndOffset == 9)
        var plainReader = KafkaWireReader(plainBytes[...])
        #expect(try KafkaWire.FetchResponse.PartitionData(decoding: &plainReader, version: 12).ternLeaderLogEndOffset == -1)
    }

    /// Fetch v11 is the last non-flexible version (response header v0); v12 adds the tag byte.
    @Test func fetchResponseHeaderFollowsFlexibility() throws {
        let response = KafkaResponse.fetch(.init(responses: []))
        let v11 = encodeKafkaResponse(response, for: Self.header(.fetch, 11, correlationID: 9))
        let v12 = encodeKafkaResponse(response, for: Self.header(.fetch, 12, correlationID: 9))
        // v11: correlation, throttle, error, session id, int32 topic count
        #expect(Array(v11[4...]) == [0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        // v12: correlation, header tags, throttle, error, session id, compact topic count, body tags
        #expect(Array(v12[4...]) == [0, 0, 0, 9, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00])
    }

    @Test func emptyRecordsAreZeroLengthNeverNull() throws {
        let partition = KafkaWire.FetchResponse.PartitionData(partitionIndex: 0, records: [])
        var classic = ByteWriter()
        partition.encode(into: &classic, version: 11)
        #expect(Array(classic.bytes.suffix(4)) == [0, 0, 0, 0])
        var compact = ByteWriter()
        partition.encode(into: &compact, version: 12)
        #expect(Array(compact.bytes.suffix(2)) == [0x01, 0x00])  // length 0 + 1, then tags

        // A null records field from a peer reads as empty.
        var nullRecords = ByteWriter()
        nullRecords.writeInt32(0)  // index
        nullRecords.writeInt32(-1)  // records null
        var reader = KafkaWireReader(nullRecords.bytes)
        let produced = try KafkaWire.ProduceRequest.PartitionProduceData(decoding: &reader, version: 3)
        #expect(produced.records == [])
    }

    // MARK: Negotiation edge cases

    @Test func apiVersionsAboveTheMaximumDecodesEmptyAndIsAnsweredInV0() throws {
        var bytes: [UInt8] = [0x00, 0x12, 0x00, 0x09, 0x00, 0x00, 0x00, 0x03, 0xFF, 0xFF]  // v9, null client id
        bytes += [0x00, 0x05, 0x04, 0xAA, 0xBB]  // whatever a future version carries
        let decoded = try decodeKafkaRequest(bytes[...])
        #expect(decoded.header.apiVersion == 9)
        #expect(decoded.header.clientID == nil)
        #expect(decoded.body == .apiVersions(.init()))
        let answer = KafkaResponse.apiVersions(.init(errorCode: KafkaErrorCode.unsupportedVersion.rawValue,
                                                     apiKeys: [.init(apiKey: 18, minVersion: 0, maxVersion: 4)], throttleTimeMs: 99))
        let frame = encodeKafkaResponse(answer, for: decoded.header)
        #expect(Array(frame[4...]) == [0, 0, 0, 3, 0, 35, 0, 0, 0, 1, 0, 18, 0, 0, 0, 4])  // v0: no throttle time
        // A client that asked for v3 reads the v0 answer.
        let (correlationID, response) = try decodeKafkaResponse(frame[4...], apiKey: .apiVersions, apiVersion: 3)
        #expect(correlationID == 3)
        #expect(response == .apiVersions(.init(errorCode: 35, apiKeys: [.init(apiKey: 18, minVersion: 0, maxVersion: 4)])))
    }

    @Test func produceVersionsZeroToTwoAreRefused() throws {
        for version: Int16 in 0...2 {
            let header = Self.header(.produce, version)
            let frame = encodeKafkaRequest(KafkaWireSamples.requests[0], header: header)
            #expect(throws: KafkaRequestDecodeError.unsupported(header: header)) { try decodeKafkaRequest(Self.body(of: frame)) }
        }
    }

    @Test func unknownKeysAndVersionsAreUnsupportedWithTheHeaderRead() throws {
        let unknownKey: [UInt8] = [0x00, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, UInt8(ascii: "x"), 0x01, 0x02]
        #expect(throws: KafkaRequestDecodeError.unsupported(header: KafkaRequestHeader(apiKey: 68, apiVersion: 0, correlationID: 2, clientID: "x"))) {
            try decodeKafkaRequest(unknownKey[...])
        }
        let fetchV13: [UInt8] = [0x00, 0x01, 0x00, 0x0D, 0x00, 0x00, 0x00, 0x02, 0xFF, 0xFF]
        #expect(throws: KafkaRequestDecodeError.unsupported(header: KafkaRequestHeader(apiKey: 1, apiVersion: 13, correlationID: 2, clientID: nil))) {
            try decodeKafkaRequest(fetchV13[...])
        }
    }

    // MARK: Malformed input

    static func malformedReason(_ bytes: [UInt8]) -> String? {
        do {
            _ = try decodeKafkaRequest(bytes[...])
            return nil
        } catch {
            if case let .malformedBody(_, reason) = error { return reason }
            return nil
        }
    }

    @Test func unreadableHeadersAreReported() {
        for bytes: [UInt8] in [[], [0x00, 0x03, 0x00], [0x00, 0x03, 0x00, 0x01, 0, 0, 0, 1, 0x00, 0x09, 0x61]] {
            #expect(throws: KafkaRequestDecodeError.self) { try decodeKafkaRequest(bytes[...]) }
            do {
                _ = try decodeKafkaRequest(bytes[...])
            } catch {
                guard case .unreadableHeader = error else {
                    Issue.record("expected an unreadable header, got \(error)")
                    return
                }
            }
        }
    }

    @Test func everyTruncationOfEverySampleIsATypedError() throws {
        for request in KafkaWireSamples.requests {
            let versions = SupportedAPIVersions.servedRange(of: request.apiKey)
            for version in [versions.lowerBound, versions.upperBound] {
                let frame = Array(Self.body(of: encodeKafkaRequest(request, header: Self.header(request.apiKey, version))))
                let headerBytes = 8 + 2 + 9 + (request.apiKey.isFlexible(version: version) ? 1 : 0)
                for length in headerBytes..<frame.count {
                    #expect(Self.malformedReason(Array(frame[..<length])) != nil, "\(request.apiKey) v\(version) cut at \(length)")
                }
            }
        }
        for response in KafkaWireSamples.responses {
            let version = SupportedAPIVersions.range(of: response.apiKey).upperBound
            let frame = Array(encodeKafkaResponse(response, for: Self.header(response.apiKey, version))[4...])
            for length in 0..<frame.count {
                #expect(throws: KafkaResponseDecodeError.self) {
                    try decodeKafkaResponse(frame[..<length], apiKey: response.apiKey, apiVersion: version)
                }
            }
        }
    }

    /// Kafka's broker ignores what follows a complete request body, and librdkafka relies on it
    /// (this is the all-topics Metadata v12 request librdkafka 2.16 sends, three stray bytes at the end).
    @Test func bytesAfterACompleteRequestBodyAreIgnored() throws {
        let librdkafkaMetadata: [UInt8] = [0x00, 0x03, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x03, 0x00, 0x07] + Array("rdkafka".utf8)
            + [0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        let decoded = try decodeKafkaRequest(librdkafkaMetadata[...])
        guard case let .metadata(metadata) = decoded.body else { Issue.record("not a Metadata request"); return }
        #expect(decoded.header.apiVersion == 12 && decoded.header.clientID == "rdkafka")
        #expect(metadata.topics == nil, "every topic")

        let header = Self.header(.metadata, 4)
        let frame = Array(Self.body(of: encodeKafkaRequest(KafkaWireSamples.requests[3], header: header)))
        #expect(try decodeKafkaRequest((frame + [0x00])[...]) == decodeKafkaRequest(frame[...]))
    }

    /// Produce v3 request header then a body whose topic count is forged.
    static func produceV3(topicCount: Int32) -> [UInt8] {
        var writer = ByteWriter()
        writer.writeInt16(0); writer.writeInt16(3); writer.writeInt32(1); writer.writeInt16(-1)  // header, null client
        writer.writeInt16(-1); writer.writeInt16(1); writer.writeInt32(1000)  // null transactional id, acks, timeout
        writer.writeInt32(topicCount)
        writer.writeBytes([UInt8](repeating: 0, count: 16))
        return writer.bytes
    }

    @Test func negativeAndHugeArrayCountsAreRefusedBeforeAllocating() throws {
        #expect(try #require(Self.malformedReason(Self.produceV3(topicCount: -2))).contains("negative"))
        #expect(try #require(Self.malformedReason(Self.produceV3(topicCount: .max))).contains("array count"))
        #expect(try #require(Self.malformedReason(Self.produceV3(topicCount: 1_000_000))).contains("array count"))
        // -1 (null) where the array is not nullable.
        #expect(try #require(Self.malformedReason(Self.produceV3(topicCount: -1))).contains("null"))

        // Compact count of 2^32 - 1 in a flexible Metadata v12 request.
        var writer = ByteWriter()
        writer.writeInt16(3); writer.writeInt16(12); writer.writeInt32(1); writer.writeInt16(-1); writer.writeUInt8(0)
        writer.writeUnsignedVarint(.max)
        #expect(try #require(Self.malformedReason(writer.bytes)).contains("array count"))
    }

    @Test func hugeAndInvalidStringLengthsAreRefused() throws {
        // Classic string claiming 32767 bytes with 3 left: truncated, not allocated.
        var classic = ByteWriter()
        classic.writeInt16(0); classic.writeInt16(3); classic.writeInt32(1); classic.writeInt16(-1)
        classic.writeInt16(32_767); classic.writeBytes([0x61, 0x62, 0x63])
        #expect(try #require(Self.malformedReason(classic.bytes)).contains("truncated"))

        // Compact string over Kafka's 32767-byte limit.
        var compact = ByteWriter()
        compact.writeInt16(0); compact.writeInt16(9); compact.writeInt32(1); compact.writeInt16(-1); compact.writeUInt8(0)
        compact.writeUnsignedVarint(1_000_001)
        compact.writeBytes([UInt8](repeating: 0x61, count: 64))
        #expect(try #require(Self.malformedReason(compact.bytes)).contains("exceeds"))

        // A client id longer than the frame: the header itself is unreadable.
        let header: [UInt8] = [0, 3, 0, 1, 0, 0, 0, 1, 0x7F, 0xFF, 0x61]
        #expect(throws: KafkaRequestDecodeError.self) { try decodeKafkaRequest(header[...]) }

        // Invalid UTF-8 in a topic name.
        var utf8 = ByteWriter()
        utf8.writeInt16(3); utf8.writeInt16(1); utf8.writeInt32(1); utf8.writeInt16(-1)
        utf8.writeInt32(1); utf8.writeInt16(2); utf8.writeBytes([0xC3, 0x28])
        #expect(try #require(Self.malformedReason(utf8.bytes)).contains("UTF-8"))
    }

    @Test func unknownTaggedFieldsAreSkipped() throws {
        // Metadata v12 request: header tags carry an unknown tag; so do the topic and the body.
        var writer = ByteWriter()
        writer.writeInt16(3); writer.writeInt16(12); writer.writeInt32(77); writer.writeInt16(-1)
        writer.writeBytes([0x01, 0x05, 0x02, 0xAB, 0xCD])  // header: one tag (5), 2 bytes
        writer.writeUnsignedVarint(2)  // one topic
        writer.writeKafkaUUID(.zero)
        writer.writeBytes([0x03]); writer.writeString("ab")
        writer.writeBytes([0x02, 0x07, 0x01, 0xEE, 0x63, 0x00])  // topic: tags 7 and 99 (uvarint 0x63), sizes 1 and 0
        writer.writeBool(true)  // allow auto topic creation
        writer.writeBool(false)  // include topic authorized operations
        writer.writeBytes([0x01, 0x80, 0x01, 0x03, 1, 2, 3])  // body: tag 128, 3 bytes
        let decoded = try decodeKafkaRequest(writer.bytes[...])
        #expect(decoded.body == .metadata(.init(topics: [.init(name: "ab")], allowAutoTopicCreation: true)))

        // A known tag among unknown ones is still read.
        var response = ByteWriter()
        response.writeInt32(4)  // correlation
        response.writeUInt8(0)  // header tags
        response.writeInt32(0); response.writeInt16(0); response.writeInt32(0)  // throttle, error, session
        response.writeUnsignedVarint(2); response.writeBytes([0x02]); response.writeString("t")
        response.writeUnsignedVarint(2)  // one partition
        response.writeInt32(0); response.writeInt16(0); response.writeInt64(5); response.writeInt64(5); response.writeInt64(0)
        response.writeUnsignedVarint(1)  // aborted transactions: empty
        response.writeInt32(-1)  // preferred read replica
        response.writeUnsignedVarint(1)  // records: empty
        response.writeBytes([0x02, 0x00, 0x0D, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0x00, 0x09, 0x00])  // diverging epoch; tag 9 empty
        response.writeUInt8(0)  // topic tags
        response.writeUInt8(0)  // body tags
        let fetch = try decodeKafkaResponse(response.bytes[...], apiKey: .fetch, apiVersion: 12)
        guard case let .fetch(body) = fetch.response else {
            Issue.record("not a fetch response")
            return
        }
        #expect(body.responses.first?.partitions.first?.divergingEpoch == .init(epoch: 3, endOffset: 4))
    }

    @Test func taggedFieldsAtTheirDefaultAreNotWritten() {
        let response = KafkaWire.ApiVersionsResponse(errorCode: 0, apiKeys: [])
        var writer = ByteWriter()
        response.encode(into: &writer, version: 3)
        #expect(writer.bytes == [0, 0, 0x01, 0, 0, 0, 0, 0x00])
        var withEpoch = ByteWriter()
        KafkaWire.ApiVersionsResponse(finalizedFeaturesEpoch: 1).encode(into: &withEpoch, version: 3)
        #expect(withEpoch.bytes == [0, 0, 0x01, 0, 0, 0, 0, 0x01, 0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 1])
    }
}
