import Controller
import KafkaProtocol
import TernCore

// The requests the front door answers itself, and the mapping of Kafka's admin requests to the
// controller's requests and back.
extension KafkaFrontend {
    // MARK: Answered from the broker's image

    static func apiVersionsResponse(requestedVersion: Int16) -> KafkaWire.ApiVersionsResponse {
        var response = KafkaWire.ApiVersionsResponse()
        response.apiKeys = SupportedAPIVersions.apiVersionsEntries
        if requestedVersion > SupportedAPIVersions.range(of: .apiVersions).upperBound {
            response.errorCode = KafkaErrorCode.unsupportedVersion.rawValue
        }
        return response
    }

    /// Brokers a client can reach: live ones, at their advertised client address.
    private static func liveBrokers(in image: MetadataImage) -> [(id: NodeID, endpoint: BrokerEndpoint?, rack: String?)] {
        image.brokers.filter { !$0.isFenced }.map { registration in
            let endpoint = registration.endpoints.first { $0.listenerName == BrokerEndpoint.clientListenerName }
                ?? registration.endpoints.first
            return (registration.brokerID, endpoint, registration.rack)
        }
    }

    static func describeCluster(_ request: KafkaWire.DescribeClusterRequest, broker: BrokerNode) -> KafkaWire.DescribeClusterResponse {
        var response = KafkaWire.DescribeClusterResponse()
        response.clusterId = broker.configuration.clusterID
        let brokers = liveBrokers(in: broker.dataPlane.image)
        // Like Metadata: admin requests go to the named controller, and every broker forwards them.
        let controller = broker.currentController
        response.controllerId = (brokers.contains { $0.id == controller } ? controller : broker.nodeID).rawValue
        response.brokers = brokers.map { entry in
            var described = KafkaWire.DescribeClusterResponse.DescribeClusterBroker()
            described.brokerId = entry.id.rawValue
            described.host = entry.endpoint?.host ?? ""
            described.port = Int32(entry.endpoint?.port ?? 0)
            described.rack = entry.rack
            return described
        }
        return response
    }

    // MARK: Forwarded to the controller

    static func controllerRequest(for request: KafkaRequest) -> ControllerRequest? {
        switch request {
        case let .createTopics(create):
            return .createTopics(CreateTopicsRequest(topics: create.topics.map { topic in
                CreateTopicsRequest.Topic(
                    name: topic.name, partitionCount: topic.numPartitions, replicationFactor: topic.replicationFactor,
                    assignments: topic.assignments.sorted { $0.partitionIndex < $1.partitionIndex }.map { $0.brokerIds.map(NodeID.init) },
                    configs: topic.configs.compactMap { config in config.value.map { ConfigEntry(name: config.name, value: $0) } })
            }, validateOnly: create.validateOnly))
        case let .deleteTopics(delete):
            return .deleteTopics(DeleteTopicsRequest(names: delete.topicNames))
        case let .createPartitions(create):
            return .createPartitions(CreatePartitionsRequest(topics: create.topics.map { topic in
                CreatePartitionsRequest.Topic(name: topic.name, totalCount: topic.count,
                                              assignments: (topic.assignments ?? []).map { $0.brokerIds.map(NodeID.init) })
            }, validateOnly: create.validateOnly))
        case let .electLeaders(elect):
            guard let type = ElectionType(rawValue: UInt8(clamping: max(0, elect.electionType))) else { return nil }
            let partitions = elect.topicPartitions.map { topics in
                topics.flatMap { topic in topic.partitions.map { TopicPartition(topic: topic.topic, partition: $0) } }
            }
            return .electLeaders(ElectLeadersRequest(electionType: type, partitions: partitions))
        case let .alterPartitionReassignments(alter):
            // A null replica list cancels the partition's reassignment; negative ids name no broker.
            return .alterPartitionReassignments(AlterPartitionReassignmentsRequest(reassignments: alter.topics.flatMap { topic in
                topic.partitions.map { partition in
                    AlterPartitionReassignmentsRequest.Reassignment(
                        topicPartition: TopicPartition(topic: topic.name, partition: partition.partitionIndex),
                        targetReplicas: partition.replicas.map { $0.map(NodeID.init) })
                }
            }))
        default:
            return nil
        }
    }

    static func adminTimeout(of request: KafkaRequest) -> Duration {
        let milliseconds: Int32
        switch request {
        case let .createTopics(create): milliseconds = create.timeoutMs
        case let .deleteTopics(delete): milliseconds = delete.timeoutMs
        case let .createPartitions(create): milliseconds = create.timeoutMs
        case let .electLeaders(elect): milliseconds = elect.timeoutMs
        case let .alterPartitionReassignments(alter): milliseconds = alter.timeoutMs
        default: return defaultRequestTimeout
        }
        return milliseconds > 0 ? .milliseconds(Int64(milliseconds)) : defaultRequestTimeout
    }

    static func adminResponse(_ response: ControllerResponse, to request: KafkaRequest) -> KafkaResponse? {
        switch (response, request) {
        case let (.createTopics(created), .createTopics):
            var wire = KafkaWire.CreateTopicsResponse()
            wire.topics = created.topics.map { topic in
                var result = KafkaWire.CreateTopicsResponse.CreatableTopicResult()
                result.name = topic.name
                result.topicId = topic.topicID.kafkaUUID
                result.errorCode = topic.error.rawValue
                result.errorMessage = topic.message
                result.numPartitions = topic.partitionCount
                result.replicationFactor = topic.replicationFactor
                result.configs = nil
                return result
            }
            return .createTopics(wire)
        case let (.deleteTopics(deleted), .deleteTopics):
            var wire = KafkaWire.DeleteTopicsResponse()
            wire.responses = deleted.topics.map { topic in
                var result = KafkaWire.DeleteTopicsResponse.DeletableTopicResult()
                result.name = topic.name
                result.errorCode = topic.error.rawValue
                return result
            }
            return .deleteTopics(wire)
        case let (.createPartitions(created), .createPartitions):
            var wire = KafkaWire.CreatePartitionsResponse()
            wire.results = created.topics.map { topic in
                var result = KafkaWire.CreatePartitionsResponse.CreatePartitionsTopicResult()
                result.name = topic.name
                result.errorCode = topic.error.rawValue
                result.errorMessage = topic.message
                return result
            }
            return .createPartitions(wire)
        case let (.electLeaders(elected), .electLeaders):
            return .electLeaders(electLeadersResponse(elected.partitions.map { ($0.topicPartition, $0.error.rawValue, $0.message) }))
        case let (.alterConfigs(altered), .alterConfigs), let (.alterConfigs(altered), .incrementalAlterConfigs):
            return alterConfigsResponse(altered.resources.map { ($0.error.rawValue, $0.message) }, to: request)
        case let (.alterPartitionReassignments(altered), .alterPartitionReassignments):
            return .alterPartitionReassignments(reassignmentsResponse(altered.partitions.map { ($0.topicPartition, $0.error.rawValue, $0.message) }))
        default:
            return nil
        }
    }

    /// The same error for everything the request named (no controller answered in time).
    static func adminFailure(_ error: KafkaErrorCode, to request: KafkaRequest) -> KafkaResponse? {
        switch request {
        case let .createTopics(create):
            return adminResponse(.createTopics(CreateTopicsResponse(topics: create.topics.map {
                CreateTopicsResponse.TopicResult(name: $0.name, topicID: .zero, error: ControllerErrorCode(kafka: error), message: nil,
                                                 partitionCount: -1, replicationFactor: -1)
            })), to: request)
        case let .deleteTopics(delete):
            return adminResponse(.deleteTopics(DeleteTopicsResponse(topics: delete.topicNames.map {
                DeleteTopicsResponse.TopicResult(name: $0, error: ControllerErrorCode(kafka: error))
            })), to: request)
        case let .createPartitions(create):
            return adminResponse(.createPartitions(CreatePartitionsResponse(topics: create.topics.map {
                AdminResult(name: $0.name, error: ControllerErrorCode(kafka: error))
            })), to: request)
        case let .electLeaders(elect):
            var response = electLeadersResponse((elect.topicPartitions ?? []).flatMap { topic in
                topic.partitions.map { (TopicPartition(topic: topic.topic, partition: $0), error.rawValue, nil) }
            })
            response.errorCode = error.rawValue
            return .electLeaders(response)
        case .alterConfigs, .incrementalAlterConfigs:
            return alterConfigsResponse(Array(repeating: (error.rawValue, nil), count: resourceCount(of: request)), to: request)
        case let .alterPartitionReassignments(alter):
            var response = reassignmentsResponse(alter.topics.flatMap { topic in
                topic.partitions.map { (TopicPartition(topic: topic.name, partition: $0.partitionIndex), error.rawValue, nil) }
            })
            response.errorCode = error.rawValue
            return .alterPartitionReassignments(response)
        default:
            return nil
        }
    }

    /// Results grouped by topic in the order given (the controller answers partition by partition).
    private static func reassignmentsResponse(_ results: [(TopicPartition, Int16, String?)]) -> KafkaWire.AlterPartitionReassignmentsResponse {
        var byTopic: [KafkaWire.AlterPartitionReassignmentsResponse.ReassignableTopicResponse] = []
        for (topicPartition, code, message) in results {
            let partition = KafkaWire.AlterPartitionReassignmentsResponse.ReassignablePartitionResponse(
                partitionIndex: topicPartition.partition, errorCode: code, errorMessage: message)
            if byTopic.last?.name == topicPartition.topic {
                byTopic[byTopic.count - 1].partitions.append(partition)
            } else {
                byTopic.append(.init(name: topicPartition.topic, partitions: [partition]))
            }
        }
        return KafkaWire.AlterPartitionReassignmentsResponse(errorMessage: nil, responses: byTopic)
    }

    private static func electLeadersResponse(_ results: [(TopicPartition, Int16, String?)]) -> KafkaWire.ElectLeadersResponse {
        var wire = KafkaWire.ElectLeadersResponse()
        var byTopic: [KafkaWire.ElectLeadersResponse.ReplicaElectionResult] = []
        for (topicPartition, code, message) in results {
            var partition = KafkaWire.ElectLeadersResponse.PartitionResult()
            partition.partitionId = topicPartition.partition
            partition.errorCode = code
            partition.errorMessage = message
            if byTopic.last?.topic == topicPartition.topic {
                byTopic[byTopic.count - 1].partitionResult.append(partition)
            } else {
                var topic = KafkaWire.ElectLeadersResponse.ReplicaElectionResult()
                topic.topic = topicPartition.topic
                topic.partitionResult = [partition]
                byTopic.append(topic)
            }
        }
        wire.replicaElectionResults = byTopic
        return wire
    }
}

extension ControllerErrorCode {
    /// The controller's codes are Kafka's; a code it does not use maps to UNKNOWN_SERVER_ERROR.
    init(kafka code: KafkaErrorCode) {
        self = ControllerErrorCode(rawValue: code.rawValue) ?? .unknownServerError
    }
}
