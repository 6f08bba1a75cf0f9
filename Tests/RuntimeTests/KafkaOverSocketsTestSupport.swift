import Broker
import Controller
import Glibc
import KafkaClient
import KafkaProtocol
import NodeKit
import Posix
@testable import Runtime
import Synchronization
import TernCore
import Testing

// A three-node cluster of node hosts serving the Kafka protocol through the brokers' front door,
// and a raw Kafka connection for what a client library would never send (bursts, malformed frames).

/// What a test may see of a node from outside the node's thread.
struct ServingNodeObservation: Sendable {
    var isActiveController = false
    var isServingClients = false
    /// Brokers the node's own broker image holds unfenced.
    var unfencedBrokers: Set<NodeID> = []
    /// Client answers the broker held back for an earlier request of their connection.
    var answersHeldForOrder = 0

    init() {}

    init(of host: NodeHost) {
        isActiveController = host.controller?.isActiveController ?? false
        if let broker = host.broker {
            isServingClients = broker.isServingClients
            unfencedBrokers = Set(broker.image.brokers.filter { !$0.isFenced }.map(\.brokerID))
            answersHeldForOrder = broker.clientAnswersHeldForOrder
        }
    }
}

struct LoopbackClusterError: Error, CustomStringConvertible {
    var description: String
}

/// Three combined broker+controller nodes on ephemeral loopback ports, each serving Kafka clients. `stop()` must be called (the threads outlive the value otherwise).
final class LoopbackCluster {
    static let nodeIDs: Set<NodeID> = [NodeID(1), NodeID(2), NodeID(3)]

    let directory: TemporaryDirectory
    let hosts: [HostThread<ServingNodeObservation>]

    /// Starts the nodes and waits (generously) until every broker serves clients and sees all
    /// three brokers unfenced.
    init() throws {
        directory = TemporaryDirectory(prefix: "tern-sockets")
        let configurations = try NodeHostClusterTests.combinedConfigurations(directory: directory, clusterID: "tern-socket-test")
        var options = NodeHostOptions()
        // TERN_TEST_LOGS=1 shows the nodes' log lines.
        options.logsEnabled = getenv("TERN_TEST_LOGS") != nil
        hosts = configurations.map { configuration in
            HostThread(configuration: configuration, options: options, initialObservation: ServingNodeObservation(),
                       observe: ServingNodeObservation.init(of:))
        }
        let ready = eventually {
            hosts.allSatisfy { host in
                let seen = host.current
                return seen.isServingClients && seen.unfencedBrokers == Self.nodeIDs && host.clientListenAddress != nil
            }
        }
        guard ready else {
            stop()
            throw LoopbackClusterError(description: "the cluster did not start serving: \(hosts.map(\.current)), outcomes \(hosts.map(\.outcome))")
        }
    }

    func stop() {
        for host in hosts { host.withControl { $0.stop() } }
        for host in hosts { _ = host.join() }
    }

    func host(_ id: NodeID) -> HostThread<ServingNodeObservation> { hosts.first { $0.nodeID == id }! }

    func clientAddress(of id: NodeID) -> SocketAddress { host(id).clientListenAddress! }

    func brokerAddress(of id: NodeID) -> BrokerAddress {
        let address = clientAddress(of: id)
        return BrokerAddress(host: address.host, port: address.port)
    }

    var bootstrap: [BrokerAddress] { hosts.map { brokerAddress(of: $0.nodeID) } }

    var activeController: NodeID? { hosts.first { $0.current.isActiveController }?.nodeID }

    var everyNodeRunning: Bool { hosts.allSatisfy { $0.outcome == nil } }

    /// Creates a topic with `replicationFactor` replicas per partition and waits until every
    /// broker's Metadata names a leader and a full ISR for every partition, so that produce and
    /// fetch requests sent next find the leader ready whichever broker they reach.
    @discardableResult
    func createTopic(_ name: String, partitionCount: Int32, replicationFactor: Int16 = 3,
                     configs: [(name: String, value: String)] = []) throws -> KafkaWire.MetadataResponse.MetadataResponseTopic {
        let admin = KafkaAdminClient(bootstrap: bootstrap)
        defer { admin.close() }
        let results = try admin.createTopics([NewTopic(name: name, partitionCount: partitionCount, replicationFactor: replicationFactor,
                                                       configs: configs)])
        guard results.count == 1, results[0].succeeded else {
            throw LoopbackClusterError(description: "creating \(name): \(results.map(\.errorDescription))")
        }
        var seen: KafkaWire.MetadataResponse.MetadataResponseTopic?
        let everyBrokerKnowsIt = eventually {
            hosts.allSatisfy { host in
                guard let topic = try? metadata(of: name, from: host.nodeID) else { return false }
                seen = topic
                return topic.error == .none && topic.partitions.count == Int(partitionCount)
                    && topic.partitions.allSatisfy { $0.leaderID != nil && $0.isrNodes.count == Int(replicationFactor) }
            }
        }
        guard everyBrokerKnowsIt, let seen else {
            throw LoopbackClusterError(description: "topic \(name) never became ready on every broker: \(String(describing: seen))")
        }
        return seen
    }

    /// One topic as the broker `id` describes it in Metadata.
    func metadata(of topic: String, from id: NodeID) throws -> KafkaWire.MetadataResponse.MetadataResponseTopic? {
        let admin = KafkaAdminClient(bootstrap: [brokerAddress(of: id)], requestTimeout: .seconds(10))
        defer { admin.close() }
        let (response, _) = try admin.call(apiKey: .metadata, node: admin.network.bootstrapNodes[0]) { _ in
            .metadata(KafkaWire.MetadataRequest(topics: [.init(name: topic)], allowAutoTopicCreation: false))
        }
        guard case let .metadata(answer) = response else { return nil }
        return answer.topics.first { $0.name == topic }
    }

    /// The leader of `topic`'s partition as broker `id`'s Metadata names it.
    func leader(of topic: String, partition: Int32) throws -> NodeID {
        let described = try metadata(of: topic, from: hosts[0].nodeID)
        guard let leader = described?.partitions.first(where: { $0.partitionIndex == partition })?.leaderID else {
            throw LoopbackClusterError(description: "no leader for \(topic)-\(partition): \(String(describing: described))")
        }
        return leader
    }
}

/// One client socket speaking raw Kafka frames. Every wait has a generous deadline and reports
/// `.timedOut` rather than hanging a broken test.
final class RawKafkaConnection {
    enum ReadOutcome: Equatable {
        case frame([UInt8])
        /// The broker closed the connection (end of stream or reset).
        case closedByBroker
        case timedOut
    }

    let descriptor: Int32
    private var received: [UInt8] = []
    private var isClosed = false

    init(to address: SocketAddress) throws {
        descriptor = try connectTCP(to: address)
        // The connect completes in the background: writable means done (or failed, seen at the first write).
        guard waitFor(Int16(POLLOUT), milliseconds: 30_000) else {
            Glibc.close(descriptor)
            throw LoopbackClusterError(description: "connecting to \(address) timed out")
        }
    }

    deinit { Glibc.close(descriptor) }

    /// Writes every byte; false when the broker closed the connection first.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool {
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 {
                written += count
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                guard waitFor(Int16(POLLOUT), milliseconds: 30_000) else { return false }
            } else {
                return false
            }
        }
        return true
    }

    /// The next whole response frame (size prefix removed).
    func readFrame(timeoutMilliseconds: Int32 = 30_000) -> ReadOutcome {
        let deadline = EventLoop.monotonicNow() + .milliseconds(Int64(timeoutMilliseconds))
        while true {
            if let frame = takeBufferedFrame() { return .frame(frame) }
            if isClosed { return .closedByBroker }
            let remaining = deadline - EventLoop.monotonicNow()
            let remainingMilliseconds = Int32(clamping: max(0, remaining.nanoseconds / 1_000_000))
            guard waitFor(Int16(POLLIN), milliseconds: remainingMilliseconds) else { return .timedOut }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if count > 0 {
                received += chunk[..<count]
            } else if count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                // A broker that closes with unread request bytes in its buffer resets the connection.
                isClosed = true
            }
        }
    }

    /// The next frame, decoded as the answer to a request of `apiKey` at `version`.
    func readResponse(_ apiKey: KafkaAPIKey, version: Int16, timeoutMilliseconds: Int32 = 30_000)
        throws -> (correlationID: Int32, response: KafkaResponse) {
        let outcome = readFrame(timeoutMilliseconds: timeoutMilliseconds)
        guard case let .frame(frame) = outcome else {
            throw LoopbackClusterError(description: "expected a \(apiKey) answer, got \(outcome)")
        }
        return try decodeKafkaResponse(frame[...], apiKey: apiKey, apiVersion: version)
    }

    private func takeBufferedFrame() -> [UInt8]? {
        guard received.count >= 4 else { return nil }
        let size = Int(Int32(bitPattern: UInt32(received[0]) << 24 | UInt32(received[1]) << 16 | UInt32(received[2]) << 8 | UInt32(received[3])))
        precondition(size >= 0, "the broker sent a negative frame size")
        guard received.count >= 4 + size else { return nil }
        let frame = Array(received[4..<(4 + size)])
        received.removeFirst(4 + size)
        return frame
    }

    private func waitFor(_ events: Int16, milliseconds: Int32) -> Bool {
        var descriptors = [pollfd(fd: descriptor, events: events, revents: 0)]
        let outcome = poll(&descriptors, 1, milliseconds)
        return outcome > 0
    }
}

// MARK: Requests and answers

enum RawRequests {
    static let produceVersion: Int16 = 9
    static let fetchVersion: Int16 = 12
    static let metadataVersion: Int16 = 12
    static let apiVersionsVersion: Int16 = 3

    static func frame(_ request: KafkaRequest, version: Int16, correlationID: Int32) -> [UInt8] {
        encodeKafkaRequest(request, header: KafkaRequestHeader(apiKey: request.apiKey, apiVersion: version, correlationID: correlationID,
                                                               clientID: "socket-test"))
    }

    /// One uncompressed batch of `values`, without producer id (not idempotent).
    static func recordBatch(_ values: [String]) -> [UInt8] {
        var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
        for value in values { builder.append(key: nil, value: Array(value.utf8)) }
        return builder.build()
    }

    static func produce(topic: String, partition: Int32, values: [String], acks: Int16) -> KafkaRequest {
        var partitionData = KafkaWire.ProduceRequest.PartitionProduceData()
        partitionData.index = partition
        partitionData.records = recordBatch(values)
        var topicData = KafkaWire.ProduceRequest.TopicProduceData()
        topicData.name = topic
        topicData.partitionData = [partitionData]
        var request = KafkaWire.ProduceRequest()
        request.acks = acks
        request.timeoutMs = 30_000
        request.topicData = [topicData]
        return .produce(request)
    }

    static func fetch(topic: String, partition: Int32, offset: Int64, maxWaitMilliseconds: Int32) -> KafkaRequest {
        var fetchPartition = KafkaWire.FetchRequest.FetchPartition()
        fetchPartition.partition = partition
        fetchPartition.fetchOffset = offset
        fetchPartition.partitionMaxBytes = 1024 * 1024
        var fetchTopic = KafkaWire.FetchRequest.FetchTopic()
        fetchTopic.topic = topic
        fetchTopic.partitions = [fetchPartition]
        var request = KafkaWire.FetchRequest()
        request.replicaId = -1
        request.maxWaitMs = maxWaitMilliseconds
        request.minBytes = 1
        request.maxBytes = 1024 * 1024
        request.topics = [fetchTopic]
        return .fetch(request)
    }

    static func metadata(topics: [String]?) -> KafkaRequest {
        var request = KafkaWire.MetadataRequest()
        request.topics = topics?.map { name in
            var topic = KafkaWire.MetadataRequest.MetadataRequestTopic()
            topic.name = name
            return topic
        }
        request.allowAutoTopicCreation = false
        return .metadata(request)
    }

    static func apiVersions() -> KafkaRequest {
        var request = KafkaWire.ApiVersionsRequest()
        request.clientSoftwareName = "tern-socket-test"
        request.clientSoftwareVersion = "1"
        return .apiVersions(request)
    }

    /// Offset and value of every record in `records` (a fetch answer's record batches).
    static func decodeRecords(_ records: [UInt8]) throws -> [(offset: Int64, value: String)] {
        var decoded: [(offset: Int64, value: String)] = []
        var start = 0
        while start < records.count {
            let batch = try RecordBatch(records, at: start)
            for record in try batch.records() {
                decoded.append((batch.header.baseOffset + Int64(record.offsetDelta), String(decoding: record.value ?? [], as: UTF8.self)))
            }
            start = batch.range.upperBound
        }
        return decoded
    }
}

/// The first partition answer of a Fetch answer.
func firstFetchedPartition(_ response: KafkaResponse) -> KafkaWire.FetchResponse.PartitionData? {
    guard case let .fetch(fetch) = response else { return nil }
    return fetch.responses.first?.partitions.first
}

/// The first partition answer of a Produce answer.
func firstProducedPartition(_ response: KafkaResponse) -> KafkaWire.ProduceResponse.PartitionProduceResponse? {
    guard case let .produce(produce) = response else { return nil }
    return produce.responses.first?.partitionResponses.first
}
