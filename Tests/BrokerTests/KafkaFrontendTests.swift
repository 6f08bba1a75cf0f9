import Broker
import KafkaProtocol
import NodeKit
import TernCore
import Testing

// The Kafka front door as core code: client connections and Kafka frames as node events, answers
// as node effects, with no socket anywhere. One combined node that is its own controller quorum,
// on a SimDisk, driven by the test (`CombinedProcess`, from CombinedNodeTests).

extension CombinedProcess {
    func send(_ request: KafkaRequest, version: Int16, correlationID: Int32, on connection: ClientConnectionID) {
        let frame = encodeKafkaRequest(request, header: KafkaRequestHeader(apiKey: request.apiKey, apiVersion: version,
                                                                           correlationID: correlationID, clientID: "front-door-test"))
        handle(.clientRequest(connection, Array(frame.dropFirst(4))))
    }

    /// The correlation ids of the replies sent on `connection`, in the order they left.
    func replyCorrelationIDs(on connection: ClientConnectionID) -> [Int32] {
        clientEffects.compactMap { effect in
            guard case let .reply(to, frame) = effect, to == connection else { return nil }
            return KafkaFraming.correlationID(ofResponse: frame, at: KafkaFraming.sizePrefixBytes)
        }
    }

    func closed(_ connection: ClientConnectionID) -> Bool { clientEffects.contains(.closeClient(connection)) }
}

private func apiVersionsRequest() -> KafkaRequest {
    var request = KafkaWire.ApiVersionsRequest()
    request.clientSoftwareName = "front-door-test"
    request.clientSoftwareVersion = "1"
    return .apiVersions(request)
}

private func createTopicRequest(_ name: String) -> KafkaRequest {
    var topic = KafkaWire.CreateTopicsRequest.CreatableTopic()
    topic.name = name
    topic.numPartitions = 1
    topic.replicationFactor = 1
    var request = KafkaWire.CreateTopicsRequest()
    request.timeoutMs = 5_000
    request.topics = [topic]
    return .createTopics(request)
}

private func fetchRequest(_ topic: String, maxWaitMilliseconds: Int32) -> KafkaRequest {
    var partition = KafkaWire.FetchRequest.FetchPartition()
    partition.partition = 0
    partition.fetchOffset = 0
    partition.partitionMaxBytes = 1 << 20
    var fetchTopic = KafkaWire.FetchRequest.FetchTopic()
    fetchTopic.topic = topic
    fetchTopic.partitions = [partition]
    var request = KafkaWire.FetchRequest()
    request.replicaId = -1
    request.maxWaitMs = maxWaitMilliseconds
    request.minBytes = 1
    request.maxBytes = 1 << 20
    request.topics = [fetchTopic]
    return .fetch(request)
}

@Suite struct KafkaFrontendTests {
    private static func servingCluster() throws -> CombinedProcess {
        let cluster = CombinedProcess(voters: [NodeID(1)])
        for _ in 0..<20 where cluster.node.broker.isFenced { cluster.run(for: .milliseconds(500)) }
        try #require(cluster.node.broker.isServingClients && !cluster.node.broker.isFenced,
                     "the broker registered with its own controller and was unfenced")
        return cluster
    }

    /// A frame that is not a request closes its own connection, says why in the log, and
    /// nothing else: another connection is answered as before.
    @Test func aMalformedFrameClosesOnlyItsConnection() throws {
        let cluster = try Self.servingCluster()
        let bad = ClientConnectionID(rawValue: 1)
        let good = ClientConnectionID(rawValue: 2)
        cluster.handle(.clientConnected(bad))
        cluster.handle(.clientConnected(good))
        cluster.handle(.clientRequest(bad, [0xFF, 0xFF, 0x00]))
        cluster.send(apiVersionsRequest(), version: 3, correlationID: 5, on: good)
        #expect(cluster.closed(bad))
        #expect(cluster.clientEffects.contains { if case let .log(line) = $0 { line.contains("\(bad)") } else { false } })
        #expect(!cluster.closed(good))
        #expect(cluster.replyCorrelationIDs(on: bad).isEmpty)
        #expect(cluster.replyCorrelationIDs(on: good) == [5])
        #expect(cluster.halts.isEmpty, "\(cluster.halts)")
        #expect(cluster.sent.isEmpty, "a node that is its own quorum sends nothing out")
        cluster.handle(.clientDisconnected(bad))
        #expect(cluster.node.broker.clientConnectionCount == 1)
    }

    /// A long-poll Fetch parked at the log end, then an ApiVersions answered at once: the
    /// ApiVersions answer waits for the Fetch's, and both leave in request order.
    @Test func answersLeaveInRequestOrder() throws {
        let cluster = try Self.servingCluster()
        let connection = ClientConnectionID(rawValue: 7)
        cluster.handle(.clientConnected(connection))
        cluster.send(createTopicRequest("ordered"), version: 5, correlationID: 1, on: connection)
        cluster.run(for: .seconds(2))
        #expect(cluster.replyCorrelationIDs(on: connection) == [1], "the topic was created")

        cluster.send(fetchRequest("ordered", maxWaitMilliseconds: 500), version: 12, correlationID: 2, on: connection)
        cluster.send(apiVersionsRequest(), version: 3, correlationID: 3, on: connection)
        #expect(cluster.replyCorrelationIDs(on: connection) == [1], "the ApiVersions answer waits for the parked Fetch")
        #expect(cluster.node.broker.clientAnswersHeldForOrder == 1)
        cluster.run(for: .seconds(1))
        #expect(cluster.replyCorrelationIDs(on: connection) == [1, 2, 3])
        #expect(!cluster.closed(connection))
    }

    /// A broker not yet serving (its registration not in its image) closes a client's
    /// connection at its first request, sending the client to another bootstrap broker.
    @Test func aBrokerNotYetServingClosesTheConnection() {
        let cluster = CombinedProcess(voters: [NodeID(1)])
        #expect(!cluster.node.broker.isServingClients)
        let connection = ClientConnectionID(rawValue: 1)
        cluster.handle(.clientConnected(connection))
        cluster.send(apiVersionsRequest(), version: 3, correlationID: 1, on: connection)
        #expect(cluster.closed(connection))
        #expect(cluster.replyCorrelationIDs(on: connection).isEmpty)
    }
}

extension CombinedProcess {
    /// The answer on `connection` to the request with `correlationID`, decoded.
    func answer(to correlationID: Int32, apiKey: KafkaAPIKey, version: Int16, on connection: ClientConnectionID) -> KafkaResponse? {
        for case let .reply(to, frame) in clientEffects where to == connection
            && KafkaFraming.correlationID(ofResponse: frame, at: KafkaFraming.sizePrefixBytes) == correlationID {
            return try? decodeKafkaResponse(Array(frame.dropFirst(KafkaFraming.sizePrefixBytes))[...], apiKey: apiKey, apiVersion: version).response
        }
        return nil
    }
}

/// Topic configs through the front door: IncrementalAlterConfigs sets, deletes and appends to a
/// list; the legacy AlterConfigs replaces the whole set; DescribeConfigs shows every config Tern
/// applies with its source; and the hosted log takes the new settings at once.
@Test func topicConfigsChangeThroughTheFrontDoorAndReachTheLog() throws {
    let cluster = CombinedProcess(voters: [NodeID(1)])
    for _ in 0..<20 where cluster.node.broker.isFenced { cluster.run(for: .milliseconds(500)) }
    let connection = ClientConnectionID(rawValue: 9)
    cluster.handle(.clientConnected(connection))
    cluster.send(createTopicRequest("configured"), version: 5, correlationID: 1, on: connection)
    cluster.run(for: .seconds(2))
    func incremental(_ configs: [(String, Int8, String?)], correlationID: Int32) -> Int16? {
        cluster.send(.incrementalAlterConfigs(KafkaWire.IncrementalAlterConfigsRequest(resources: [
            .init(resourceType: 2, resourceName: "configured", configs: configs.map { .init(name: $0.0, configOperation: $0.1, value: $0.2) }),
        ])), version: 1, correlationID: correlationID, on: connection)
        cluster.run(for: .seconds(1))
        guard case let .incrementalAlterConfigs(answer)? = cluster.answer(to: correlationID, apiKey: .incrementalAlterConfigs,
                                                                            version: 1, on: connection) else { return nil }
        return answer.responses.first?.errorCode
    }
    func described(correlationID: Int32) -> [String: (value: String?, source: Int8)] {
        cluster.send(.describeConfigs(KafkaWire.DescribeConfigsRequest(resources: [.init(resourceType: 2, resourceName: "configured")])),
                     version: 4, correlationID: correlationID, on: connection)
        guard case let .describeConfigs(answer)? = cluster.answer(to: correlationID, apiKey: .describeConfigs, version: 4, on: connection)
        else { return [:] }
        return Dictionary(uniqueKeysWithValues: (answer.results.first?.configs ?? []).map { ($0.name, ($0.value, $0.configSource)) })
    }

    #expect(incremental([("retention.ms", 0, "60000"), ("cleanup.policy", 0, "delete")], correlationID: 2) == 0)
    #expect(incremental([("cleanup.policy", 2, "compact"), ("retention.ms", 1, nil)], correlationID: 3) == 0)
    var configs = described(correlationID: 4)
    #expect(configs["cleanup.policy"]?.value == "delete,compact" && configs["cleanup.policy"]?.source == 1, "APPEND to a list")
    #expect(configs["retention.ms"]?.value == "604800000" && configs["retention.ms"]?.source == 5, "deleted: back to the default")
    #expect(configs["segment.bytes"]?.source == 5 && configs["min.insync.replicas"] != nil)
    #expect(incremental([("segment.bytes", 0, "10")], correlationID: 5) == 40, "INVALID_CONFIG")
    #expect(incremental([("segment.bytes", 7, "10")], correlationID: 6) == KafkaErrorCode.invalidRequest.rawValue, "no such operation")

    #expect(incremental([("retention.bytes", 0, "123456")], correlationID: 7) == 0)
    let log = try #require(cluster.node.broker.dataPlane.replica(for: TopicPartition(topic: "configured", partition: 0))?.log)
    #expect(log.configuration.retentionBytes == 123_456, "the open log took the new value")

    cluster.send(.alterConfigs(KafkaWire.AlterConfigsRequest(resources: [
        .init(resourceType: 2, resourceName: "configured", configs: [.init(name: "segment.ms", value: "60000")]),
    ])), version: 2, correlationID: 8, on: connection)
    cluster.run(for: .seconds(1))
    configs = described(correlationID: 9)
    #expect(configs["segment.ms"]?.value == "60000" && configs["cleanup.policy"] == nil && configs["retention.bytes"]?.source == 5,
            "AlterConfigs replaces the whole set")
    #expect(log.configuration.retentionBytes == -1 && log.configuration.segmentMilliseconds == 60_000)
}
