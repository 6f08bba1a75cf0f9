import Controller
import KafkaProtocol
import LogStorage
import TernCore

// Configs as Kafka shows and changes them. DescribeConfigs is answered from the broker's image and
// its own settings: every config Tern applies, with its value and where it comes from (a topic's
// override, the broker's server.properties, or the default), then whatever else was set.
// AlterConfigs and IncrementalAlterConfigs become the controller's AlterConfigs: a metadata record
// per change, which every broker applies to its open logs as the image arrives.

/// One config Tern applies to topics, with its broker-wide synonym.
struct ConfigDefinition: Sendable {
    let name: String
    /// The broker config a topic's value defaults to (the same definition seen from the broker).
    let brokerName: String
    /// Kafka's ConfigType: 1 boolean, 2 string, 3 int, 5 long.
    let type: Int8
    let value: @Sendable (BrokerDataPlaneConfiguration) -> String
}

/// Where a described value comes from (Kafka's ConfigSource).
enum ConfigSource: Int8 {
    case dynamicTopic = 1
    case dynamicBroker = 2
    case dynamicDefaultBroker = 3
    case staticBroker = 4
    case `default` = 5
}

enum ConfigResourceType {
    static let topic: Int8 = 2
    static let broker: Int8 = 4
}

/// IncrementalAlterConfigs' operations.
enum IncrementalConfigOperation: Int8 {
    case set = 0
    case delete = 1
    case append = 2
    case subtract = 3
}

extension KafkaFrontend {
    static let topicConfigDefinitions: [ConfigDefinition] = [
        .init(name: ConfigNames.segmentBytes, brokerName: "log.segment.bytes", type: 3) { String($0.log.segmentBytes) },
        .init(name: ConfigNames.segmentMilliseconds, brokerName: "log.roll.ms", type: 5) { String($0.log.segmentMilliseconds) },
        .init(name: ConfigNames.retentionBytes, brokerName: "log.retention.bytes", type: 5) { String($0.log.retentionBytes) },
        .init(name: ConfigNames.retentionMilliseconds, brokerName: "log.retention.ms", type: 5) { String($0.log.retentionMilliseconds) },
        .init(name: ConfigNames.messageTimestampType, brokerName: "log.message.timestamp.type", type: 2) {
            $0.log.messageTimestampType == .logAppendTime ? "LogAppendTime" : "CreateTime"
        },
        .init(name: ConfigNames.minInsyncReplicas, brokerName: "min.insync.replicas", type: 3) { String($0.replication.minInSyncReplicas) },
    ]

    /// Broker settings from server.properties (read-only: a restart changes them).
    static let brokerConfigDefinitions: [ConfigDefinition] =
        topicConfigDefinitions.map { ConfigDefinition(name: $0.brokerName, brokerName: $0.brokerName, type: $0.type, value: $0.value) } + [
            .init(name: "log.retention.check.interval.ms", brokerName: "log.retention.check.interval.ms", type: 5) {
                String($0.retentionCheckInterval.milliseconds)
            },
            .init(name: "auto.create.topics.enable", brokerName: "auto.create.topics.enable", type: 1) { String($0.autoCreateTopicsEnabled) },
            .init(name: "message.max.bytes", brokerName: "message.max.bytes", type: 3) { String($0.maximumMessageBytes) },
            .init(name: "replica.lag.time.max.ms", brokerName: "replica.lag.time.max.ms", type: 5) {
                String($0.replication.replicaLagTimeMax.milliseconds)
            },
        ]

    static func describeConfigs(_ request: KafkaWire.DescribeConfigsRequest, image: MetadataImage,
                                configuration: BrokerDataPlaneConfiguration, brokerID: NodeID) -> KafkaWire.DescribeConfigsResponse {
        var response = KafkaWire.DescribeConfigsResponse()
        response.results = request.resources.map { resource in
            var result = KafkaWire.DescribeConfigsResponse.DescribeConfigsResult()
            result.resourceType = resource.resourceType
            result.resourceName = resource.resourceName
            result.errorMessage = nil
            let described: [KafkaWire.DescribeConfigsResponse.DescribeConfigsResourceResult]
            switch configResource(type: resource.resourceType, name: resource.resourceName) {
            case let .topic(name)?:
                guard let topic = image.topic(named: name) else {
                    result.errorCode = KafkaErrorCode.unknownTopicOrPartition.rawValue
                    result.errorMessage = "topic '\(name)' does not exist"
                    return result
                }
                described = describeTopic(topic, configuration: configuration, synonyms: request.includeSynonyms)
            case let .broker(id)? where id == brokerID:
                described = describeBroker(image.configs(for: .broker(id)), source: .dynamicBroker, configuration: configuration)
            case .cluster?:
                described = describeBroker(image.configs(for: .cluster), source: .dynamicDefaultBroker, configuration: configuration)
            case .broker?:
                result.errorCode = KafkaErrorCode.invalidRequest.rawValue
                result.errorMessage = "broker \(resource.resourceName) describes its own configs only: ask it (this is broker \(brokerID))"
                return result
            case nil:
                result.errorCode = KafkaErrorCode.invalidRequest.rawValue
                result.errorMessage = "resource type \(resource.resourceType) named '\(resource.resourceName)' is not supported"
                return result
            }
            // Null asks for every config; so does an empty list (what some clients send).
            let wanted = resource.configurationKeys.flatMap { $0.isEmpty ? nil : Set($0) }
            result.configs = described.filter { wanted?.contains($0.name) ?? true }
            return result
        }
        return response
    }

    /// Every topic config Tern applies, the topic's value or the broker's, then the topic's other entries.
    static func describeTopic(_ topic: TopicImage, configuration: BrokerDataPlaneConfiguration,
                              synonyms: Bool) -> [KafkaWire.DescribeConfigsResponse.DescribeConfigsResourceResult] {
        let defaults = BrokerDataPlaneConfiguration()
        var described = topicConfigDefinitions.map { definition in
            let brokerValue = definition.value(configuration)
            let brokerSource: ConfigSource = brokerValue == definition.value(defaults) ? .default : .staticBroker
            var entry = configEntry(definition.name, value: topic.config(definition.name) ?? brokerValue,
                                    source: topic.config(definition.name) != nil ? .dynamicTopic : brokerSource, type: definition.type)
            if synonyms {
                entry.synonyms = (topic.config(definition.name).map { [(definition.name, $0, ConfigSource.dynamicTopic)] } ?? [])
                    .map { .init(name: $0.0, value: $0.1, source: $0.2.rawValue) }
                    + [.init(name: definition.brokerName, value: brokerValue, source: brokerSource.rawValue)]
            }
            return entry
        }
        let known = Set(topicConfigDefinitions.map(\.name))
        described += topic.configs.filter { !known.contains($0.name) }.map { configEntry($0.name, value: $0.value, source: .dynamicTopic, type: 2) }
        return described
    }

    /// The broker's static settings (read-only), then what was set for it or the cluster.
    static func describeBroker(_ dynamic: [ConfigEntry], source: ConfigSource,
                               configuration: BrokerDataPlaneConfiguration) -> [KafkaWire.DescribeConfigsResponse.DescribeConfigsResourceResult] {
        let defaults = BrokerDataPlaneConfiguration()
        let dynamicNames = Set(dynamic.map(\.name))
        var described = brokerConfigDefinitions.filter { !dynamicNames.contains($0.name) }.map { definition in
            let value = definition.value(configuration)
            var entry = configEntry(definition.name, value: value, source: value == definition.value(defaults) ? .default : .staticBroker,
                                    type: definition.type)
            entry.readOnly = true
            return entry
        }
        described += dynamic.map { configEntry($0.name, value: $0.value, source: source, type: 2) }
        return described
    }

    private static func configEntry(_ name: String, value: String, source: ConfigSource,
                                    type: Int8) -> KafkaWire.DescribeConfigsResponse.DescribeConfigsResourceResult {
        var entry = KafkaWire.DescribeConfigsResponse.DescribeConfigsResourceResult()
        entry.name = name
        entry.value = value
        entry.configSource = source.rawValue
        entry.configType = type
        entry.documentation = nil
        return entry
    }

    /// Kafka's resource type and name as a config resource: a topic, a broker, or (a broker
    /// resource with an empty name) the cluster's defaults; nil for anything else.
    static func configResource(type: Int8, name: String) -> ConfigResource? {
        switch type {
        case ConfigResourceType.topic: return .topic(name)
        case ConfigResourceType.broker:
            if name.isEmpty { return .cluster }
            return Int32(name).map { .broker(NodeID($0)) }
        default: return nil
        }
    }

    // MARK: Changes, through the controller

    /// The controller's AlterConfigs for either Kafka request. A resource Tern cannot name is sent
    /// as broker -1, which the controller refuses (INVALID_REQUEST); the answer is matched back
    /// to the request's resources by position. Kafka's AlterConfigs replaces a resource's whole
    /// set: the entries it does not name are deleted.
    static func alterConfigsRequest(for request: KafkaRequest, image: MetadataImage) -> AlterConfigsRequest? {
        let unnamed = ConfigResource.broker(NodeID(-1))
        switch request {
        case let .alterConfigs(alter):
            return AlterConfigsRequest(resources: alter.resources.map { resource in
                let target = configResource(type: resource.resourceType, name: resource.resourceName) ?? unnamed
                let named = Set(resource.configs.map(\.name))
                let removed = image.configs(for: target).filter { !named.contains($0.name) }
                    .map { AlterConfigsRequest.ConfigChange(name: $0.name, value: nil) }
                return .init(resource: target, changes: resource.configs.map { .init(name: $0.name, value: $0.value) } + removed)
            }, validateOnly: alter.validateOnly)
        case let .incrementalAlterConfigs(alter):
            return AlterConfigsRequest(resources: alter.resources.map { resource in
                let target = configResource(type: resource.resourceType, name: resource.resourceName) ?? unnamed
                return .init(resource: target, changes: resource.configs.map { config in
                    .init(name: config.name, value: incrementalValue(config, current: image.config(config.name, for: target)))
                })
            }, validateOnly: alter.validateOnly)
        default:
            return nil
        }
    }

    /// SET and DELETE as they are; APPEND and SUBTRACT on the value as a comma-separated list (a
    /// result that is not a valid value is refused by the controller's validation).
    private static func incrementalValue(_ config: KafkaWire.IncrementalAlterConfigsRequest.AlterableConfig, current: String?) -> String? {
        let items = (current ?? "").split(separator: ",").map(String.init)
        let given = (config.value ?? "").split(separator: ",").map(String.init)
        switch IncrementalConfigOperation(rawValue: config.configOperation) {
        case .set?: return config.value ?? ""
        case .delete?: return nil
        case .append?: return (items + given.filter { !items.contains($0) }).joined(separator: ",")
        case .subtract?: return items.filter { !given.contains($0) }.joined(separator: ",")
        case nil: return config.value  // refused before it is forwarded (`invalidOperation`)
        }
    }

    /// An IncrementalAlterConfigs operation Kafka does not define, which refuses the request.
    static func invalidOperation(in request: KafkaRequest) -> Int8? {
        guard case let .incrementalAlterConfigs(alter) = request else { return nil }
        return alter.resources.lazy.flatMap(\.configs).map(\.configOperation).first { IncrementalConfigOperation(rawValue: $0) == nil }
    }

    static func alterConfigsResponse(_ results: [(code: Int16, message: String?)], to request: KafkaRequest) -> KafkaResponse? {
        switch request {
        case let .alterConfigs(alter):
            var response = KafkaWire.AlterConfigsResponse()
            response.responses = zip(alter.resources, results).map { resource, result in
                .init(errorCode: result.code, errorMessage: result.message, resourceType: resource.resourceType,
                      resourceName: resource.resourceName)
            }
            return .alterConfigs(response)
        case let .incrementalAlterConfigs(alter):
            var response = KafkaWire.IncrementalAlterConfigsResponse()
            response.responses = zip(alter.resources, results).map { resource, result in
                .init(errorCode: result.code, errorMessage: result.message, resourceType: resource.resourceType,
                      resourceName: resource.resourceName)
            }
            return .incrementalAlterConfigs(response)
        default:
            return nil
        }
    }

    static func resourceCount(of request: KafkaRequest) -> Int {
        switch request {
        case let .alterConfigs(alter): return alter.resources.count
        case let .incrementalAlterConfigs(alter): return alter.resources.count
        default: return 0
        }
    }
}
