import Client
import KafkaProtocol
import Posix
import TernCore

/// A topic to create. -1 for the count or the factor asks for the broker's default.
public struct NewTopic: Equatable, Sendable {
    public var name: String
    public var partitionCount: Int32
    public var replicationFactor: Int16
    public var configs: [(name: String, value: String)]

    public init(name: String, partitionCount: Int32 = -1, replicationFactor: Int16 = -1, configs: [(name: String, value: String)] = []) {
        self.name = name
        self.partitionCount = partitionCount
        self.replicationFactor = replicationFactor
        self.configs = configs
    }

    public static func == (lhs: NewTopic, rhs: NewTopic) -> Bool {
        lhs.name == rhs.name && lhs.partitionCount == rhs.partitionCount && lhs.replicationFactor == rhs.replicationFactor
            && lhs.configs.map(\.name) == rhs.configs.map(\.name) && lhs.configs.map(\.value) == rhs.configs.map(\.value)
    }
}

/// A broker's verdict on one topic of a CreateTopics or DeleteTopics request.
public struct TopicOperationResult: Equatable, Sendable {
    public var name: String
    public var errorCode: Int16
    public var errorMessage: String?

    public var succeeded: Bool { errorCode == 0 }
    public var errorDescription: String {
        kafkaErrorName(errorCode) + (errorMessage.map { $0.isEmpty ? "" : ": \($0)" } ?? "")
    }
}

/// The cluster as a broker describes it.
public struct ClusterDescription: Equatable, Sendable {
    public enum Source: Equatable, Sendable { case describeCluster, metadata }
    public var clusterID: String?
    public var controllerID: NodeID?
    /// The live brokers (Kafka lists only unfenced ones).
    public var brokers: [KafkaWire.MetadataResponse.MetadataResponseBroker]
    /// Which request answered: DescribeCluster when the broker offers it, else Metadata.
    public var source: Source
}

/// Blocking admin operations for the tools. Metadata goes to any broker (bootstrap addresses in
/// order, then every broker Metadata named); CreateTopics and DeleteTopics go to the broker
/// Metadata names as controller, as librdkafka's admin client does, falling back to any other
/// broker when that one cannot be reached (Tern's brokers forward admin requests).
public final class KafkaAdminClient {
    public let network: KafkaNetworkClient
    public let requestTimeout: Duration
    private var nextToken: UInt64 = 1
    /// The newest Metadata answer, for the controller id and the broker list.
    public private(set) var lastMetadata: KafkaWire.MetadataResponse?

    public init(bootstrap: [BrokerAddress], requestTimeout: Duration = .seconds(30),
                configuration: KafkaNetworkClient.Configuration = .init(clientID: "tern-admin")) {
        network = KafkaNetworkClient(bootstrap: bootstrap, configuration: configuration)
        self.requestTimeout = requestTimeout
    }

    // MARK: Operations

    /// Metadata for `topics` (nil: every topic), from the first broker that answers.
    public func metadata(topics: [String]?) throws(KafkaClientError) -> KafkaWire.MetadataResponse {
        let request = KafkaRequest.metadata(KafkaWire.MetadataRequest(
            topics: topics?.map { KafkaWire.MetadataRequest.MetadataRequestTopic(name: $0) }, allowAutoTopicCreation: false))
        let (response, _) = try callAnyBroker(apiKey: .metadata) { request.atVersion($0) }
        guard case let .metadata(answer) = response else {
            throw .protocolViolation(network.address(of: network.bootstrapNodes[0])!, reason: "a Metadata request answered with \(response)")
        }
        network.learnBrokers(answer.brokers)
        lastMetadata = answer
        return answer
    }

    public func createTopics(_ topics: [NewTopic], timeoutMilliseconds: Int32 = 30_000,
                             validateOnly: Bool = false) throws(KafkaClientError) -> [TopicOperationResult] {
        try callController(apiKey: .createTopics) { _ in
            makeCreateTopicsRequest(topics, timeoutMilliseconds: timeoutMilliseconds, validateOnly: validateOnly)
        } results: { topicResults(fromCreateTopics: $0) }
    }

    public func deleteTopics(_ names: [String], timeoutMilliseconds: Int32 = 30_000) throws(KafkaClientError) -> [TopicOperationResult] {
        try callController(apiKey: .deleteTopics) { _ in
            makeDeleteTopicsRequest(names, timeoutMilliseconds: timeoutMilliseconds)
        } results: { topicResults(fromDeleteTopics: $0) }
    }

    /// DescribeCluster when the broker offers it (it names the controller the broker knows);
    /// Metadata otherwise, as librdkafka's describe_cluster does.
    public func describeCluster() throws(KafkaClientError) -> ClusterDescription {
        let metadata = try metadata(topics: [])
        if let node = lastAnsweringNode, network.apiVersions(of: node)?.negotiatedVersion(of: .describeCluster) != nil {
            let (response, _) = try call(apiKey: .describeCluster, node: node) { _ in makeDescribeClusterRequest() }
            if let answer = clusterDescription(fromDescribeCluster: response), answer.errorCode == 0 {
                return answer.description
            }
        }
        return ClusterDescription(clusterID: metadata.clusterId, controllerID: metadata.controllerID,
                                  brokers: metadata.brokers, source: .metadata)
    }

    /// DescribeConfigs of one resource; a broker's goes to that broker, which describes its own.
    public func describeConfigs(_ target: ConfigsTarget) throws(KafkaClientError) -> KafkaWire.DescribeConfigsResponse.DescribeConfigsResult {
        let (type, name) = target.resource
        let request = KafkaRequest.describeConfigs(KafkaWire.DescribeConfigsRequest(
            resources: [.init(resourceType: type, resourceName: name, configurationKeys: nil)], includeSynonyms: false))
        let response: KafkaResponse
        if case let .broker(id) = target {
            _ = try metadata(topics: [])
            (response, _) = try call(apiKey: .describeConfigs, node: NodeID(id)) { request.atVersion($0) }
        } else {
            (response, _) = try callAnyBroker(apiKey: .describeConfigs) { request.atVersion($0) }
        }
        guard case let .describeConfigs(answer) = response, let result = answer.results.first else {
            throw .protocolViolation(network.address(of: network.bootstrapNodes[0])!, reason: "DescribeConfigs answered with \(response)")
        }
        return result
    }

    /// IncrementalAlterConfigs of one resource: SET for a value, DELETE for nil. Any broker
    /// forwards it to the controller.
    public func alterConfigs(_ target: ConfigsTarget, changes: [(name: String, value: String?)])
        throws(KafkaClientError) -> KafkaWire.IncrementalAlterConfigsResponse.AlterConfigsResourceResponse {
        let (type, name) = target.resource
        let request = KafkaRequest.incrementalAlterConfigs(KafkaWire.IncrementalAlterConfigsRequest(resources: [
            .init(resourceType: type, resourceName: name, configs: changes.map { change in
                .init(name: change.name, configOperation: change.value == nil ? 1 : 0, value: change.value)
            }),
        ]))
        let (response, _) = try callAnyBroker(apiKey: .incrementalAlterConfigs) { request.atVersion($0) }
        guard case let .incrementalAlterConfigs(answer) = response, let result = answer.responses.first else {
            throw .protocolViolation(network.address(of: network.bootstrapNodes[0])!, reason: "IncrementalAlterConfigs answered with \(response)")
        }
        return result
    }

    public func close() { network.closeAll() }

    // MARK: Calls

    /// The node that answered the last call to any broker; asked first next time.
    private var lastAnsweringNode: NodeID?

    /// Bootstrap addresses first, then every broker a Metadata answer named; the first answer wins.
    private func callAnyBroker(apiKey: KafkaAPIKey, build: @escaping (Int16) -> KafkaRequest) throws(KafkaClientError) -> (KafkaResponse, Int16) {
        var candidates: [NodeID] = []
        if let lastAnsweringNode { candidates.append(lastAnsweringNode) }
        candidates += network.bootstrapNodes
        candidates += (lastMetadata?.brokers.map(\.nodeID) ?? []).sorted()
        var failures: [String] = []
        var tried: [NodeID] = []
        for node in candidates where !tried.contains(node) {
            tried.append(node)
            do {
                let answer = try call(apiKey: apiKey, node: node, build: build)
                lastAnsweringNode = node
                return answer
            } catch {
                failures.append(error.description)
            }
        }
        throw .noBrokerAvailable(reason: Self.uniqueFailures(failures))
    }

    /// Sends to the controller (from a fresh Metadata answer), else to any other live broker.
    /// NOT_CONTROLLER on every topic means the controller moved: refresh and try again.
    private func callController(apiKey: KafkaAPIKey, build: @escaping (Int16) -> KafkaRequest,
                                results: (KafkaResponse) -> [TopicOperationResult]?) throws(KafkaClientError) -> [TopicOperationResult] {
        let notController: Int16 = 41
        var failures: [String] = []
        for _ in 0..<3 {
            let metadata = try metadata(topics: [])
            var candidates: [NodeID] = []
            if let controller = metadata.controllerID, network.address(of: controller) != nil { candidates.append(controller) }
            candidates += metadata.brokers.map(\.nodeID).sorted().filter { !candidates.contains($0) }
            if candidates.isEmpty, let lastAnsweringNode { candidates.append(lastAnsweringNode) }
            var movedController = false
            for node in candidates {
                let response: KafkaResponse
                do {
                    (response, _) = try call(apiKey: apiKey, node: node, build: build)
                } catch {
                    failures.append(error.description)
                    continue
                }
                guard let answer = results(response) else {
                    throw .protocolViolation(network.address(of: node)!, reason: "\(apiKey) answered with \(response)")
                }
                if !answer.isEmpty, answer.allSatisfy({ $0.errorCode == notController }) {
                    movedController = true
                    break
                }
                return answer
            }
            if !movedController { break }
        }
        throw .noBrokerAvailable(reason: Self.uniqueFailures(failures))
    }

    /// One request, blocking until its answer, its failure or the request timeout.
    public func call(apiKey: KafkaAPIKey, node: NodeID, build: @escaping (Int16) -> KafkaRequest) throws(KafkaClientError) -> (KafkaResponse, Int16) {
        let token = nextToken
        nextToken += 1
        network.send(OutgoingRequest(apiKey: apiKey, token: token, timeout: requestTimeout, build: build), to: node)
        // The request's own timeout ends the wait; the bound on turns only guards against a bug.
        let deadline = Clocks.monotonicNanoseconds() + requestTimeout.nanoseconds + 5_000_000_000
        while Clocks.monotonicNanoseconds() < deadline {
            for event in network.poll(timeout: .milliseconds(100)) {
                switch event {
                case let .response(eventToken, response, version) where eventToken == token:
                    return (response, version)
                case let .failed(eventToken, error) where eventToken == token:
                    throw error
                default:
                    continue  // an answer to an earlier, abandoned call
                }
            }
        }
        throw .operationTimedOut("\(apiKey) to node \(node)")
    }

    private static func uniqueFailures(_ failures: [String]) -> String {
        var unique: [String] = []
        for failure in failures where !unique.contains(failure) { unique.append(failure) }
        return unique.isEmpty ? "no broker to ask" : unique.joined(separator: "; ")
    }
}

extension KafkaAdminClient {
    /// A partition's offset as ListOffsets answers it: the log start (`earliestTimestamp`) or the
    /// high watermark (`latestTimestamp`), asked of each partition's leader.
    public func offsets(topic: String, partitions: [Int32], timestampMilliseconds: Int64) throws(KafkaClientError) -> [Int32: Offset] {
        var remaining = partitions
        var found: [Int32: Offset] = [:]
        var lastProblem = "no leader known"
        // A leader may move or be missing for a moment (an election): refresh and retry a few times.
        for attempt in 0..<10 {
            if attempt > 0 { _ = network.poll(timeout: .milliseconds(200)) }
            let metadata = try metadata(topics: [topic])
            guard let topicMetadata = metadata.topics.first(where: { $0.name == topic }) else { continue }
            if topicMetadata.error != .none {
                lastProblem = kafkaErrorName(topicMetadata.error)
                continue
            }
            var byLeader: [NodeID: [Int32]] = [:]
            for partition in topicMetadata.partitions where remaining.contains(partition.partitionIndex) {
                if let leader = partition.leaderID { byLeader[leader, default: []].append(partition.partitionIndex) }
            }
            for leader in byLeader.keys.sorted() {
                let indices = byLeader[leader]!.sorted()
                let request = KafkaRequest.listOffsets(KafkaWire.ListOffsetsRequest(replicaId: -1, topics: [
                    .init(name: topic, partitions: indices.map { .init(partitionIndex: $0, timestamp: timestampMilliseconds) }),
                ]))
                let answer: (KafkaResponse, Int16)
                do { answer = try call(apiKey: .listOffsets, node: leader) { _ in request } } catch {
                    lastProblem = error.description
                    continue
                }
                guard case let .listOffsets(offsets) = answer.0 else { continue }
                for partition in offsets.topics.flatMap(\.partitions) {
                    let error = KafkaErrorCode(wire: partition.errorCode)
                    if error == .none, Offset(partition.offset) != .unknown {
                        found[partition.partitionIndex] = Offset(partition.offset)
                    } else {
                        lastProblem = "partition \(partition.partitionIndex): \(kafkaErrorName(error))"
                    }
                }
            }
            remaining.removeAll { found[$0] != nil }
            if remaining.isEmpty { return found }
        }
        throw .operationTimedOut("offsets of \(topic) partitions \(remaining.map(String.init).joined(separator: ",")): \(lastProblem)")
    }
}
