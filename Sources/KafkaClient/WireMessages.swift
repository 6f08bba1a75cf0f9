import KafkaProtocol
import TernCore

// The admin requests the tools send and what they read of the answers (the ApiVersions handshake
// is Client's `KafkaConversation`).

func makeCreateTopicsRequest(_ topics: [NewTopic], timeoutMilliseconds: Int32, validateOnly: Bool) -> KafkaRequest {
    var request = KafkaWire.CreateTopicsRequest()
    request.timeoutMs = timeoutMilliseconds
    request.validateOnly = validateOnly
    request.topics = topics.map { topic in
        var creatable = KafkaWire.CreateTopicsRequest.CreatableTopic()
        creatable.name = topic.name
        creatable.numPartitions = topic.partitionCount
        creatable.replicationFactor = topic.replicationFactor
        creatable.configs = topic.configs.map { entry in
            var config = KafkaWire.CreateTopicsRequest.CreatableTopicConfig()
            config.name = entry.name
            config.value = entry.value
            return config
        }
        return creatable
    }
    return .createTopics(request)
}

func topicResults(fromCreateTopics response: KafkaResponse) -> [TopicOperationResult]? {
    guard case let .createTopics(answer) = response else { return nil }
    return answer.topics.map { TopicOperationResult(name: $0.name, errorCode: $0.errorCode, errorMessage: $0.errorMessage) }
}

/// By name: Tern speaks DeleteTopics up to v4, before the topic-id form of v6.
func makeDeleteTopicsRequest(_ names: [String], timeoutMilliseconds: Int32) -> KafkaRequest {
    var request = KafkaWire.DeleteTopicsRequest()
    request.timeoutMs = timeoutMilliseconds
    request.topicNames = names
    return .deleteTopics(request)
}

func topicResults(fromDeleteTopics response: KafkaResponse) -> [TopicOperationResult]? {
    guard case let .deleteTopics(answer) = response else { return nil }
    return answer.responses.map { TopicOperationResult(name: $0.name, errorCode: $0.errorCode, errorMessage: nil) }
}

func makeDescribeClusterRequest() -> KafkaRequest {
    var request = KafkaWire.DescribeClusterRequest()
    request.includeClusterAuthorizedOperations = false
    return .describeCluster(request)
}

func clusterDescription(fromDescribeCluster response: KafkaResponse) -> (errorCode: Int16, errorMessage: String?, description: ClusterDescription)? {
    guard case let .describeCluster(answer) = response else { return nil }
    let brokers = answer.brokers.map {
        KafkaWire.MetadataResponse.MetadataResponseBroker(nodeId: $0.brokerId, host: $0.host, port: $0.port, rack: $0.rack)
    }
    let description = ClusterDescription(clusterID: answer.clusterId, controllerID: answer.controllerId >= 0 ? NodeID(answer.controllerId) : nil,
                                         brokers: brokers, source: .describeCluster)
    return (answer.errorCode, answer.errorMessage, description)
}
