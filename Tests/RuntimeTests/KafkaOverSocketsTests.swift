import Client
import Glibc
import KafkaClient
import KafkaProtocol
import Posix
@testable import Runtime
import TernCore
import Testing

/// The brokers' Kafka front door end to end: real loopback sockets into a three-node in-process
/// cluster of node hosts. Deadlines are generous and only keep a broken test from hanging; nothing asserts
/// how long anything took.
@Suite(.serialized) struct KafkaOverSocketsTests {
    /// One connection, three requests written back to back: an acks=all Produce (which waits for
    /// both followers), a Metadata and an ApiVersions. The node answers Metadata before the
    /// Produce, yet the client receives the answers in request order.
    @Test func pipelinedAnswersArriveInRequestOrder() throws {
        let cluster = try LoopbackCluster()
        defer { cluster.stop() }
        let topic = "pipelined"
        try cluster.createTopic(topic, partitionCount: 1)
        let leader = try cluster.leader(of: topic, partition: 0)
        let heldBefore = cluster.host(leader).current.answersHeldForOrder
        let connection = try RawKafkaConnection(to: cluster.clientAddress(of: leader))

        let burst = RawRequests.frame(RawRequests.produce(topic: topic, partition: 0, values: ["first"], acks: -1),
                                          version: RawRequests.produceVersion, correlationID: 1)
            + RawRequests.frame(RawRequests.metadata(topics: [topic]), version: RawRequests.metadataVersion, correlationID: 2)
            + RawRequests.frame(RawRequests.apiVersions(), version: RawRequests.apiVersionsVersion, correlationID: 3)
        #expect(connection.write(burst))

        var frames: [[UInt8]] = []
        for _ in 0..<3 {
            let outcome = connection.readFrame()
            guard case let .frame(bytes) = outcome else {
                Issue.record("answer \(frames.count + 1) of 3: \(outcome)")
                return
            }
            frames.append(bytes)
        }
        // Every response starts with the correlation id of the request it answers.
        #expect(frames.map { Int32(bitPattern: UInt32($0[0]) << 24 | UInt32($0[1]) << 16 | UInt32($0[2]) << 8 | UInt32($0[3])) } == [1, 2, 3])
        let produced = try decodeKafkaResponse(frames[0][...], apiKey: .produce, apiVersion: RawRequests.produceVersion)
        let described = try decodeKafkaResponse(frames[1][...], apiKey: .metadata, apiVersion: RawRequests.metadataVersion)
        let versions = try decodeKafkaResponse(frames[2][...], apiKey: .apiVersions, apiVersion: RawRequests.apiVersionsVersion)
        let partition = try #require(firstProducedPartition(produced.response))
        #expect(partition.errorCode == 0)
        #expect(partition.baseOffset == 0)
        guard case let .metadata(metadata) = described.response else {
            Issue.record("expected a Metadata answer, got \(described.response)")
            return
        }
        #expect(metadata.topics.map(\.name) == [topic])
        guard case let .apiVersions(apiVersions) = versions.response else {
            Issue.record("expected an ApiVersions answer, got \(versions.response)")
            return
        }
        #expect(apiVersions.errorCode == 0)

        // The reordering really happened inside the broker: the Metadata and ApiVersions answers
        // were ready first and held back for the Produce. (The node publishes what it saw at the
        // end of its loop iteration, possibly after the client already read the answers.)
        #expect(eventually(seconds: 30) { cluster.host(leader).current.answersHeldForOrder - heldBefore == 2 },
                "answers held back: \(cluster.host(leader).current.answersHeldForOrder - heldBefore)")
    }

    /// Each malformed or refused request, on its own connection, makes the broker close that
    /// connection without an answer; the broker keeps serving everyone else. An ApiVersions
    /// above the supported version is the exception Kafka clients rely on: answered in v0 with
    /// UNSUPPORTED_VERSION and the API list, the connection left open.
    @Test func malformedRequestsCloseTheirConnectionAndTheBrokerKeepsServing() throws {
        let cluster = try LoopbackCluster()
        defer { cluster.stop() }
        let target = cluster.clientAddress(of: cluster.hosts[0].nodeID)

        let metadataFrame = RawRequests.frame(RawRequests.metadata(topics: ["some-topic", "another-topic"]),
                                                  version: RawRequests.metadataVersion, correlationID: 7)
        // Half the body, under a size prefix that matches what is sent: a whole frame whose body ends early.
        let truncatedBody = Array(metadataFrame[4...].prefix((metadataFrame.count - 4) / 2))
        var unknownAPIHeader = ByteWriter()
        unknownAPIHeader.writeInt16(999)
        unknownAPIHeader.writeInt16(0)
        unknownAPIHeader.writeInt32(8)
        unknownAPIHeader.writeKafkaNullableString("socket-test", flexible: false, nullable: true)
        var metadataVersion99 = metadataFrame
        metadataVersion99[6] = 0
        metadataVersion99[7] = 99
        let produceVersion2 = RawRequests.frame(RawRequests.produce(topic: "some-topic", partition: 0, values: ["old"], acks: 1),
                                                    version: 2, correlationID: 9)
        let cases: [(name: String, bytes: [UInt8])] = [
            ("truncated body", frame(truncatedBody)),
            ("unknown API key", frame(unknownAPIHeader.take())),
            ("Metadata v99", metadataVersion99),
            ("Produce v2", produceVersion2),
            ("garbage shorter than a header", frame([0xde, 0xad, 0xbe])),
            ("garbage bytes", frame([UInt8](repeating: 0xab, count: 64))),
            ("negative frame size", sizePrefix(-5) + [1, 2, 3]),
            ("frame size over the limit", sizePrefix(Int32.max) + [0, 0, 0, 0]),
        ]
        for (name, bytes) in cases {
            let connection = try RawKafkaConnection(to: target)
            connection.write(bytes)
            let outcome = connection.readFrame()
            #expect(outcome == .closedByBroker, "\(name): \(outcome)")
        }

        let connection = try RawKafkaConnection(to: target)
        connection.write(RawRequests.frame(RawRequests.apiVersions(), version: 9, correlationID: 11))
        // Decoded as v0: the layout a broker answers an unknown ApiVersions version in.
        let refused = try connection.readResponse(.apiVersions, version: 0)
        #expect(refused.correlationID == 11)
        guard case let .apiVersions(refusal) = refused.response else {
            Issue.record("expected an ApiVersions answer, got \(refused.response)")
            return
        }
        #expect(refusal.errorCode == 35)  // UNSUPPORTED_VERSION
        #expect(refusal.apiKeys.map(\.apiKey) == KafkaAPIKey.allCases.map(\.rawValue))
        #expect(refusal.apiKeys.first { $0.apiKey == KafkaAPIKey.apiVersions.rawValue }.map { $0.minVersion...$0.maxVersion } == 0...4)
        // The client retries at a version it found in the list, on the same connection.
        connection.write(RawRequests.frame(RawRequests.apiVersions(), version: RawRequests.apiVersionsVersion, correlationID: 12))
        let accepted = try connection.readResponse(.apiVersions, version: RawRequests.apiVersionsVersion)
        #expect(accepted.correlationID == 12)

        let admin = KafkaAdminClient(bootstrap: [BrokerAddress(host: target.host, port: target.port)])
        defer { admin.close() }
        let metadata = try admin.metadata(topics: nil)
        #expect(Set(metadata.brokers.map(\.nodeID)) == LoopbackCluster.nodeIDs)
        #expect(cluster.everyNodeRunning, "outcomes: \(cluster.hosts.map(\.outcome))")
    }

    /// acks=0: the broker writes the record and sends nothing back, so the next answer on the
    /// connection is the one to the request after it.
    @Test func acksZeroProduceGetsNoAnswerAndIsStored() throws {
        let cluster = try LoopbackCluster()
        defer { cluster.stop() }
        let topic = "fire-and-forget"
        try cluster.createTopic(topic, partitionCount: 1)
        let leader = try cluster.leader(of: topic, partition: 0)
        let connection = try RawKafkaConnection(to: cluster.clientAddress(of: leader))
        // An acks=0 record the leader cannot take yet (a new log refuses appends until its first
        // checkpoint is durable) is dropped unanswered, as in Kafka: first make sure it takes writes.
        for correlationID in Int32(100)..<Int32(160) {
            connection.write(RawRequests.frame(RawRequests.produce(topic: topic, partition: 0, values: ["first"], acks: 1),
                                                   version: RawRequests.produceVersion, correlationID: correlationID))
            let answer = try connection.readResponse(.produce, version: RawRequests.produceVersion)
            if firstProducedPartition(answer.response)?.errorCode == 0 { break }
            usleep(100_000)
        }

        connection.write(RawRequests.frame(RawRequests.produce(topic: topic, partition: 0, values: ["unacknowledged"], acks: 0),
                                               version: RawRequests.produceVersion, correlationID: 1)
                         + RawRequests.frame(RawRequests.apiVersions(), version: RawRequests.apiVersionsVersion, correlationID: 2))
        let first = try connection.readResponse(.apiVersions, version: RawRequests.apiVersionsVersion)
        #expect(first.correlationID == 2)

        // Read both back once committed: a consumer sees only what is below the high watermark,
        // which may cover the first record before the second.
        var stored: [(offset: Int64, value: String)] = []
        for correlationID in Int32(3)..<Int32(60) where stored.count < 2 {
            connection.write(RawRequests.frame(RawRequests.fetch(topic: topic, partition: 0, offset: 0, maxWaitMilliseconds: 500),
                                                   version: RawRequests.fetchVersion, correlationID: correlationID))
            let answer = try connection.readResponse(.fetch, version: RawRequests.fetchVersion)
            #expect(answer.correlationID == correlationID)
            let partition = try #require(firstFetchedPartition(answer.response))
            #expect(partition.errorCode == 0)
            stored = try RawRequests.decodeRecords(partition.records)
        }
        #expect(stored.map(\.offset) == [0, 1])
        #expect(stored.map(\.value) == ["first", "unacknowledged"])
    }

    /// Admin requests sent to a broker that is not the active controller are forwarded to it:
    /// CreateTopics (with configs), DescribeConfigs, CreatePartitions, DeleteTopics; and
    /// DescribeCluster names the three brokers and a controller among them.
    @Test func adminRequestsThroughABrokerThatIsNotTheController() throws {
        let cluster = try LoopbackCluster()
        defer { cluster.stop() }
        let controller = try #require(cluster.activeController)
        let broker = try #require(cluster.hosts.map(\.nodeID).first { $0 != controller })
        let admin = KafkaAdminClient(bootstrap: [cluster.brokerAddress(of: broker)])
        defer { admin.close() }
        // The bootstrap connection only: never redirected to the controller Metadata names.
        let node = admin.network.bootstrapNodes[0]
        let topic = "administered"

        let (created, _) = try admin.call(apiKey: .createTopics, node: node) { _ in
            var request = KafkaWire.CreateTopicsRequest()
            request.timeoutMs = 30_000
            var creatable = KafkaWire.CreateTopicsRequest.CreatableTopic()
            creatable.name = topic
            creatable.numPartitions = 2
            creatable.replicationFactor = 3
            creatable.configs = [("retention.ms", "3600000"), ("min.insync.replicas", "2")].map { name, value in
                var config = KafkaWire.CreateTopicsRequest.CreatableTopicConfig()
                config.name = name
                config.value = value
                return config
            }
            request.topics = [creatable]
            return .createTopics(request)
        }
        guard case let .createTopics(creation) = created else {
            Issue.record("expected a CreateTopics answer, got \(created)")
            return
        }
        #expect(creation.topics.map(\.name) == [topic])
        #expect(creation.topics.map(\.errorCode) == [0], "\(creation.topics.map(\.errorMessage))")
        #expect(eventually { (try? cluster.metadata(of: topic, from: broker))?.partitions.count == 2 })

        let (describedConfigs, _) = try admin.call(apiKey: .describeConfigs, node: node) { _ in
            var resource = KafkaWire.DescribeConfigsRequest.DescribeConfigsResource()
            resource.resourceType = 2  // topic
            resource.resourceName = topic
            resource.configurationKeys = nil  // every config
            var request = KafkaWire.DescribeConfigsRequest()
            request.resources = [resource]
            return .describeConfigs(request)
        }
        guard case let .describeConfigs(configs) = describedConfigs else {
            Issue.record("expected a DescribeConfigs answer, got \(describedConfigs)")
            return
        }
        #expect(configs.results.map(\.errorCode) == [0])
        let values = Dictionary(uniqueKeysWithValues: (configs.results.first?.configs ?? []).map { ($0.name, $0.value) })
        #expect(values["retention.ms"] == "3600000")
        #expect(values["min.insync.replicas"] == "2")

        let (grown, _) = try admin.call(apiKey: .createPartitions, node: node) { _ in
            var growth = KafkaWire.CreatePartitionsRequest.CreatePartitionsTopic()
            growth.name = topic
            growth.count = 4
            growth.assignments = nil
            var request = KafkaWire.CreatePartitionsRequest()
            request.timeoutMs = 30_000
            request.topics = [growth]
            return .createPartitions(request)
        }
        guard case let .createPartitions(growth) = grown else {
            Issue.record("expected a CreatePartitions answer, got \(grown)")
            return
        }
        #expect(growth.results.map(\.errorCode) == [0], "\(growth.results.map(\.errorMessage))")
        #expect(eventually { (try? cluster.metadata(of: topic, from: broker))?.partitions.count == 4 })

        let (described, _) = try admin.call(apiKey: .describeCluster, node: node) { _ in
            .describeCluster(KafkaWire.DescribeClusterRequest())
        }
        guard case let .describeCluster(clusterDescription) = described else {
            Issue.record("expected a DescribeCluster answer, got \(described)")
            return
        }
        #expect(clusterDescription.errorCode == 0)
        #expect(Set(clusterDescription.brokers.map { NodeID($0.brokerId) }) == LoopbackCluster.nodeIDs)
        #expect(clusterDescription.brokers.allSatisfy { $0.port > 0 && !$0.host.isEmpty })
        #expect(LoopbackCluster.nodeIDs.contains(NodeID(clusterDescription.controllerId)))

        let (deleted, _) = try admin.call(apiKey: .deleteTopics, node: node) { _ in
            var request = KafkaWire.DeleteTopicsRequest()
            request.timeoutMs = 30_000
            request.topicNames = [topic]
            return .deleteTopics(request)
        }
        guard case let .deleteTopics(deletion) = deleted else {
            Issue.record("expected a DeleteTopics answer, got \(deleted)")
            return
        }
        #expect(deletion.responses.map(\.name) == [topic])
        #expect(deletion.responses.map(\.errorCode) == [0])
        #expect(eventually { (try? cluster.metadata(of: topic, from: broker))?.error == .unknownTopicOrPartition })
        // The broker that forwarded everything was not the controller while it did.
        #expect(cluster.activeController != broker)
    }

    /// A Fetch at the log end waits (up to its max wait) for data: it is still unanswered when
    /// a Produce is sent on another connection, and its answer carries that record. A Fetch on
    /// an idle partition is answered empty once its short max wait passes.
    @Test func fetchAtTheLogEndWaitsForAProduce() throws {
        let cluster = try LoopbackCluster()
        defer { cluster.stop() }
        let topic = "long-poll"
        try cluster.createTopic(topic, partitionCount: 2)
        let leader = try cluster.leader(of: topic, partition: 0)
        let fetcher = try RawKafkaConnection(to: cluster.clientAddress(of: leader))
        let producer = try RawKafkaConnection(to: cluster.clientAddress(of: leader))

        fetcher.write(RawRequests.frame(RawRequests.fetch(topic: topic, partition: 0, offset: 0, maxWaitMilliseconds: 5_000),
                                            version: RawRequests.fetchVersion, correlationID: 1))
        // A fetch that did not wait would be answered within this short look (empty).
        let earlyAnswer = fetcher.readFrame(timeoutMilliseconds: 300)
        #expect(earlyAnswer == .timedOut, "the fetch was answered before any produce: \(earlyAnswer)")

        producer.write(RawRequests.frame(RawRequests.produce(topic: topic, partition: 0, values: ["awaited"], acks: -1),
                                             version: RawRequests.produceVersion, correlationID: 1))
        let produced = try producer.readResponse(.produce, version: RawRequests.produceVersion)
        #expect(firstProducedPartition(produced.response)?.errorCode == 0)

        let fetched = try fetcher.readResponse(.fetch, version: RawRequests.fetchVersion)
        #expect(fetched.correlationID == 1)
        let partition = try #require(firstFetchedPartition(fetched.response))
        #expect(partition.errorCode == 0)
        let records = try RawRequests.decodeRecords(partition.records)
        #expect(records.map(\.value) == ["awaited"])
        #expect(records.map(\.offset) == [0])

        // Partition 1 gets nothing: the short wait ends with an empty answer.
        let idleLeader = try cluster.leader(of: topic, partition: 1)
        let idleFetcher = try RawKafkaConnection(to: cluster.clientAddress(of: idleLeader))
        idleFetcher.write(RawRequests.frame(RawRequests.fetch(topic: topic, partition: 1, offset: 0, maxWaitMilliseconds: 200),
                                                version: RawRequests.fetchVersion, correlationID: 5))
        let idle = try idleFetcher.readResponse(.fetch, version: RawRequests.fetchVersion)
        #expect(idle.correlationID == 5)
        let idlePartition = try #require(firstFetchedPartition(idle.response))
        #expect(idlePartition.errorCode == 0)
        #expect(idlePartition.records.isEmpty)
        #expect(idlePartition.highWatermark == 0)
    }

    /// 10,000 records through the KafkaClient module's idempotent producer and consumer over real
    /// sockets, to a three-partition topic replicated three times: every record is acknowledged
    /// once and consumed once, in send order within its partition.
    @Test func idempotentProducerAndConsumerRoundTripTenThousandRecords() throws {
        let cluster = try LoopbackCluster()
        defer { cluster.stop() }
        let topic = "round-trip"
        let partitionCount: Int32 = 3
        let recordCount = 10_000
        try cluster.createTopic(topic, partitionCount: partitionCount)

        let producerNetwork = KafkaNetworkClient(bootstrap: cluster.bootstrap, configuration: .init(clientID: "socket-test-producer"))
        defer { producerNetwork.closeAll() }
        var producer = SansIOClientDriver(client: IdempotentProducer(bootstrapNodes: producerNetwork.bootstrapNodes,
                                                                     random: DeterministicRandom(seed: 5)),
                                          network: producerNetwork)
        var sent = 0
        var offsetsByValue: [String: (partition: Int32, offset: Offset)] = [:]
        var failures: [ProduceCompletion] = []
        var valueByHandle: [RecordHandle: String] = [:]
        let allAcknowledged = eventually(seconds: 180) {
            while sent < recordCount {
                let value = "record-\(sent)"
                do {
                    let handle = try producer.client.send(TopicPartition(topic: topic, partition: Int32(sent) % partitionCount),
                                                          key: nil, value: Array(value.utf8), now: Clocks.wallClockNow())
                    valueByHandle[handle] = value
                    sent += 1
                } catch ProducerSendError.bufferFull {
                    break
                } catch {
                    Issue.record("record \(sent) refused: \(error)")
                    return true
                }
            }
            producer.step(maximumWait: .milliseconds(20))
            for completion in producer.client.takeCompletions() {
                guard case let .written(offset) = completion.outcome, let value = valueByHandle[completion.handle] else {
                    failures.append(completion)
                    continue
                }
                offsetsByValue[value] = (completion.topicPartition.partition, offset)
            }
            return sent == recordCount && producer.client.unfinishedRecords == 0
        }
        #expect(allAcknowledged, "\(offsetsByValue.count) acknowledged; last network error: \(String(describing: producer.lastNetworkError))")
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(offsetsByValue.count == recordCount)

        let consumerNetwork = KafkaNetworkClient(bootstrap: cluster.bootstrap, configuration: .init(clientID: "socket-test-consumer"))
        defer { consumerNetwork.closeAll() }
        let assignments = (0..<partitionCount).map { (TopicPartition(topic: topic, partition: $0), ConsumerStartPosition.earliest) }
        var consumer = SansIOClientDriver(client: Consumer(assignments: assignments, bootstrapNodes: consumerNetwork.bootstrapNodes,
                                                           random: DeterministicRandom(seed: 6)),
                                          network: consumerNetwork)
        var consumed: [Int32: [ConsumedRecord]] = [:]
        var consumedCount = 0
        let allConsumed = eventually(seconds: 180) {
            consumer.step(maximumWait: .milliseconds(20))
            for record in consumer.client.takeRecords() {
                consumed[record.topicPartition.partition, default: []].append(record)
                consumedCount += 1
            }
            return consumedCount >= recordCount
        }
        #expect(allConsumed, "\(consumedCount) consumed; events \(consumer.client.takeEvents())")
        #expect(consumedCount == recordCount)
        for partition in 0..<partitionCount {
            let records = consumed[partition] ?? []
            // Round robin: partition p got records p, p+3, p+6, … in that order.
            let expected = stride(from: Int(partition), to: recordCount, by: Int(partitionCount)).map { "record-\($0)" }
            #expect(records.map { String(decoding: $0.value ?? [], as: UTF8.self) } == expected, "partition \(partition)")
            #expect(records.map(\.offset.rawValue) == Array(0..<Int64(expected.count)), "partition \(partition)")
            #expect(records.allSatisfy { offsetsByValue[String(decoding: $0.value ?? [], as: UTF8.self)]?.offset == $0.offset },
                    "partition \(partition): consumed offsets are the acknowledged ones")
        }
    }
}

/// `listeners=CLIENT://[::1]:PORT`: a node listens and serves Kafka on IPv6 loopback, its
/// controller quorum on IPv6 too.
@Suite(.serialized) struct IPv6ListenerTests {
    /// A container may have IPv6 disabled: then there is nothing to listen on.
    static let hasIPv6Loopback: Bool = {
        guard let socket = try? TCPSocket.listen(on: SocketAddress(host: "::1", port: 0)) else { return false }
        socket.close()
        return true
    }()

    @Test(.enabled(if: hasIPv6Loopback, "this machine has no IPv6 loopback"))
    func aNodeServesKafkaOnIPv6Loopback() throws {
        let directory = TemporaryDirectory(prefix: "tern-ipv6")
        let internalPort = try reserveLoopbackPorts(1)[0]
        let configuration = NodeHostStartupTests.singleNodeConfiguration(
            directory: directory, clientListener: SocketAddress(host: "::1", port: 0),
            internalListener: SocketAddress(host: "::1", port: internalPort))
        var options = NodeHostOptions()
        options.logsEnabled = getenv("TERN_TEST_LOGS") != nil
        let host = HostThread(configuration: configuration, options: options, initialObservation: ServingNodeObservation(),
                              observe: ServingNodeObservation.init(of:))
        defer {
            host.withControl { $0.stop() }
            _ = host.join()
        }
        #expect(eventually { host.current.isServingClients && host.clientListenAddress != nil }, "outcome: \(String(describing: host.outcome))")
        let address = try #require(host.clientListenAddress)
        #expect(address.host == "::1" && address.port > 0)
        let connection = try RawKafkaConnection(to: address)
        connection.write(RawRequests.frame(RawRequests.apiVersions(), version: RawRequests.apiVersionsVersion, correlationID: 4))
        let answer = try connection.readResponse(.apiVersions, version: RawRequests.apiVersionsVersion)
        #expect(answer.correlationID == 4)
        guard case let .apiVersions(versions) = answer.response else {
            Issue.record("expected an ApiVersions answer, got \(answer.response)")
            return
        }
        #expect(versions.errorCode == 0 && !versions.apiKeys.isEmpty)
    }
}
