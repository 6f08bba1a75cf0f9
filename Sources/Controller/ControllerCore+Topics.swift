import TernCore

// Admin requests: CreateTopics, CreatePartitions, DeleteTopics, AlterConfigs. Each topic or
// resource of a request succeeds or fails on its own, as in Kafka; the records of all the
// successful ones form one batch.

/// A refusal with Kafka's error code and a sentence for the operator.
struct AdminRefusal: Error {
    var error: ControllerErrorCode
    var message: String

    init(_ error: ControllerErrorCode, _ message: String) {
        self.error = error
        self.message = message
    }
}

extension ControllerCore {
    // MARK: CreateTopics

    public func createTopics(_ request: CreateTopicsRequest) -> ControllerResult<CreateTopicsResponse> {
        var builder = ProposalBuilder(image: image)
        var results: [CreateTopicsResponse.TopicResult] = []
        let duplicates = namesRequestedTwice(request.topics.map(\.name))
        for topic in request.topics {
            if duplicates.contains(topic.name) {
                results.append(.init(name: topic.name, error: .invalidRequest, message: "the topic is named twice in the request"))
                continue
            }
            do throws(AdminRefusal) {
                results.append(try createTopic(topic, validateOnly: request.validateOnly, into: &builder))
            } catch {
                results.append(.init(name: topic.name, error: error.error, message: error.message))
            }
        }
        return builder.result(CreateTopicsResponse(topics: results))
    }

    private func createTopic(_ topic: CreateTopicsRequest.Topic, validateOnly: Bool,
                             into builder: inout ProposalBuilder) throws(AdminRefusal) -> CreateTopicsResponse.TopicResult {
        if let problem = TopicRules.topicNameProblem(topic.name) { throw AdminRefusal(.invalidTopic, problem) }
        // Kafka's refusal: its partition's directory would be the metadata log's on a combined
        // node (`__cluster_metadata-0`), opened, and removed with the topic.
        guard topic.name != TopicRules.clusterMetadataTopicName else {
            throw AdminRefusal(.invalidRequest, "Creation of internal topic \(TopicRules.clusterMetadataTopicName) is prohibited.")
        }
        guard builder.image.topic(named: topic.name) == nil else {
            throw AdminRefusal(.topicAlreadyExists, "topic '\(topic.name)' already exists")
        }
        let configs = try validatedConfigs(topic.configs)
        let assignments = try assignmentsForNewTopic(topic, image: builder.image)
        let replicationFactor = Int16(assignments[0].count)
        guard !validateOnly else {
            return .init(name: topic.name, error: .none, partitionCount: Int32(assignments.count), replicationFactor: replicationFactor)
        }
        let topicID = newTopicID(named: topic.name, image: builder.image)
        builder.append(.topic(TopicRecord(name: topic.name, topicID: topicID, configs: configs)))
        appendPartitions(topicID: topicID, firstPartition: 0, assignments: assignments, into: &builder)
        return .init(name: topic.name, topicID: topicID, error: .none,
                     partitionCount: Int32(assignments.count), replicationFactor: replicationFactor)
    }

    private func validatedConfigs(_ entries: [ConfigEntry]) throws(AdminRefusal) -> [ConfigEntry] {
        var names: Set<String> = []
        for entry in entries {
            if let problem = TopicRules.configProblem(name: entry.name, value: entry.value) {
                throw AdminRefusal(.invalidConfig, "\(entry.name): \(problem)")
            }
            guard names.insert(entry.name).inserted else { throw AdminRefusal(.invalidConfig, "\(entry.name) is set twice") }
        }
        return entries.sorted()
    }

    private func assignmentsForNewTopic(_ topic: CreateTopicsRequest.Topic, image: MetadataImage) throws(AdminRefusal) -> [[NodeID]] {
        guard topic.assignments.isEmpty else {
            guard topic.partitionCount == -1 && topic.replicationFactor == -1 else {
                throw AdminRefusal(.invalidRequest, "give either assignments or a partition count and replication factor, not both")
            }
            try validateManualAssignments(topic.assignments, image: image)
            return topic.assignments
        }
        let partitionCount = topic.partitionCount == -1 ? configuration.defaultPartitionCount : topic.partitionCount
        guard partitionCount >= 1 && partitionCount <= TopicRules.maximumPartitionsPerTopic else {
            throw AdminRefusal(.invalidPartitions, "the partition count must be between 1 and \(TopicRules.maximumPartitionsPerTopic)")
        }
        let replicationFactor = topic.replicationFactor == -1 ? configuration.defaultReplicationFactor : topic.replicationFactor
        return try placeReplicas(topic: topic.name, firstPartition: 0, partitionCount: partitionCount,
                                 replicationFactor: Int(replicationFactor), image: image)
    }

    private func placeReplicas(topic: String, firstPartition: Int32, partitionCount: Int32, replicationFactor: Int,
                               image: MetadataImage) throws(AdminRefusal) -> [[NodeID]] {
        guard replicationFactor >= 1 && replicationFactor <= TopicRules.maximumReplicationFactor else {
            throw AdminRefusal(.invalidReplicationFactor, "the replication factor must be between 1 and \(TopicRules.maximumReplicationFactor)")
        }
        let brokers = image.activeBrokerIDs
        guard brokers.count >= replicationFactor else {
            throw AdminRefusal(.invalidReplicationFactor,
                               "replication factor \(replicationFactor) is larger than the \(brokers.count) available brokers")
        }
        return ReplicaPlacement.assign(topic: topic, firstPartition: firstPartition, partitionCount: partitionCount,
                                       replicationFactor: replicationFactor, brokers: brokers)
    }

    /// Kafka's rules: every partition has the same number of distinct, registered replicas, and at
    /// least one of them can lead now.
    private func validateManualAssignments(_ assignments: [[NodeID]], image: MetadataImage) throws(AdminRefusal) {
        guard assignments.count <= Int(TopicRules.maximumPartitionsPerTopic) else {
            throw AdminRefusal(.invalidPartitions, "more than \(TopicRules.maximumPartitionsPerTopic) partitions")
        }
        let replicationFactor = assignments[0].count
        for (index, replicas) in assignments.enumerated() {
            guard replicas.count == replicationFactor else {
                throw AdminRefusal(.invalidReplicaAssignment, "partitions have different numbers of replicas")
            }
            guard !replicas.isEmpty && replicas.count <= TopicRules.maximumReplicationFactor,
                  Set(replicas).count == replicas.count else {
                throw AdminRefusal(.invalidReplicaAssignment, "partition \(index) needs 1 to \(TopicRules.maximumReplicationFactor) distinct replicas")
            }
            guard replicas.allSatisfy({ image.broker($0) != nil }) else {
                throw AdminRefusal(.invalidReplicaAssignment, "partition \(index) names an unregistered broker")
            }
            guard replicas.contains(where: { image.isActive($0) }) else {
                throw AdminRefusal(.invalidReplicaAssignment, "every replica of partition \(index) is fenced or shutting down")
            }
        }
    }

    /// New partitions start with every live replica in the ISR and the first of them leading.
    private func appendPartitions(topicID: TopicID, firstPartition: Int32, assignments: [[NodeID]], into builder: inout ProposalBuilder) {
        for (offset, replicas) in assignments.enumerated() {
            let working = builder.image
            let isr = replicas.filter { working.isActive($0) }
            builder.append(.partition(PartitionRecord(
                topicID: topicID, partition: firstPartition + Int32(offset), replicas: replicas, isr: isr, leader: isr[0],
                leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0))))
        }
    }

    /// A topic id derived from the name and the image offset (which differs every time a topic of
    /// that name is created), avoiding zero and ids in use. Deterministic: replaying the same
    /// requests against the same image gives the same id.
    func newTopicID(named name: String, image: MetadataImage) -> TopicID {
        let nameHash = stableHash(name)
        let offsetBits = UInt64(bitPattern: image.offset.rawValue)
        for attempt in UInt64(0)..<64 {
            let high = mixBits(nameHash ^ mixBits(offsetBits &+ attempt))
            let low = mixBits(high ^ nameHash &+ 0x632B_E59B_D9B4_E019)
            let candidate = TopicID(high: high, low: low)
            if !candidate.isZero && image.topic(id: candidate) == nil { return candidate }
        }
        preconditionFailure("64 topic id candidates for '\(name)' all collided: the id derivation is broken")
    }

    // MARK: CreatePartitions

    public func createPartitions(_ request: CreatePartitionsRequest) -> ControllerResult<CreatePartitionsResponse> {
        var builder = ProposalBuilder(image: image)
        var results: [AdminResult] = []
        let duplicates = namesRequestedTwice(request.topics.map(\.name))
        for topic in request.topics {
            if duplicates.contains(topic.name) {
                results.append(AdminResult(name: topic.name, error: .invalidRequest, message: "the topic is named twice in the request"))
                continue
            }
            do throws(AdminRefusal) {
                try addPartitions(topic, validateOnly: request.validateOnly, into: &builder)
                results.append(AdminResult(name: topic.name, error: .none))
            } catch {
                results.append(AdminResult(name: topic.name, error: error.error, message: error.message))
            }
        }
        return builder.result(CreatePartitionsResponse(topics: results))
    }

    private func addPartitions(_ request: CreatePartitionsRequest.Topic, validateOnly: Bool,
                               into builder: inout ProposalBuilder) throws(AdminRefusal) {
        guard let topic = builder.image.topic(named: request.name) else {
            throw AdminRefusal(.unknownTopicOrPartition, "no topic is named '\(request.name)'")
        }
        let existing = Int32(topic.partitions.count)
        guard request.totalCount > existing && request.totalCount <= TopicRules.maximumPartitionsPerTopic else {
            throw AdminRefusal(.invalidPartitions,
                               "the topic has \(existing) partitions; the new count must be above it and at most \(TopicRules.maximumPartitionsPerTopic)")
        }
        let added = request.totalCount - existing
        let replicationFactor = topic.partitions[0].replicas.count
        let assignments: [[NodeID]]
        if request.assignments.isEmpty {
            assignments = try placeReplicas(topic: request.name, firstPartition: existing, partitionCount: added,
                                            replicationFactor: replicationFactor, image: builder.image)
        } else {
            guard request.assignments.count == Int(added), request.assignments[0].count == replicationFactor else {
                throw AdminRefusal(.invalidReplicaAssignment,
                                   "give \(added) assignments of \(replicationFactor) replicas, one per new partition")
            }
            try validateManualAssignments(request.assignments, image: builder.image)
            assignments = request.assignments
        }
        guard !validateOnly else { return }
        appendPartitions(topicID: topic.topicID, firstPartition: existing, assignments: assignments, into: &builder)
    }

    // MARK: DeleteTopics

    public func deleteTopics(_ request: DeleteTopicsRequest) -> ControllerResult<DeleteTopicsResponse> {
        var builder = ProposalBuilder(image: image)
        var results: [DeleteTopicsResponse.TopicResult] = []
        for name in request.names {
            guard let topic = builder.image.topic(named: name) else {
                results.append(.init(name: name, error: .unknownTopicOrPartition))
                continue
            }
            builder.append(.removeTopic(RemoveTopicRecord(topicID: topic.topicID)))
            results.append(.init(name: name, topicID: topic.topicID, error: .none))
        }
        return builder.result(DeleteTopicsResponse(topics: results))
    }

    // MARK: AlterConfigs

    /// Sets and deletes configuration entries; enabling unclean election takes effect at once for
    /// partitions already offline.
    public func alterConfigs(_ request: AlterConfigsRequest) -> ControllerResult<AlterConfigsResponse> {
        var builder = ProposalBuilder(image: image)
        var results: [AlterConfigsResponse.ResourceResult] = []
        for resource in request.resources {
            do throws(AdminRefusal) {
                try validateConfigChanges(resource, image: builder.image)
                if !request.validateOnly { appendConfigChanges(resource, into: &builder) }
                results.append(.init(resource: resource.resource, error: .none))
            } catch {
                results.append(.init(resource: resource.resource, error: error.error, message: error.message))
            }
        }
        appendElectionsForOfflinePartitions(into: &builder)
        return builder.result(AlterConfigsResponse(resources: results))
    }

    private func validateConfigChanges(_ resource: AlterConfigsRequest.Resource, image: MetadataImage) throws(AdminRefusal) {
        switch resource.resource {
        case let .topic(name):
            guard image.topic(named: name) != nil else { throw AdminRefusal(.unknownTopicOrPartition, "no topic is named '\(name)'") }
        case let .broker(node):
            guard node.rawValue >= 0 else { throw AdminRefusal(.invalidRequest, "broker id \(node) is negative") }
        case .cluster:
            break
        }
        for change in resource.changes {
            guard !change.name.isEmpty else { throw AdminRefusal(.invalidConfig, "empty config name") }
            if let value = change.value, let problem = TopicRules.configProblem(name: change.name, value: value) {
                throw AdminRefusal(.invalidConfig, "\(change.name): \(problem)")
            }
        }
    }

    private func appendConfigChanges(_ resource: AlterConfigsRequest.Resource, into builder: inout ProposalBuilder) {
        for change in resource.changes where builder.image.config(change.name, for: resource.resource) != change.value {
            builder.append(.config(ConfigRecord(resource: resource.resource, name: change.name, value: change.value)))
        }
    }

    /// Names that appear more than once, which Kafka refuses for every occurrence.
    private func namesRequestedTwice(_ names: [String]) -> Set<String> {
        var seen: Set<String> = []
        var twice: Set<String> = []
        for name in names where !seen.insert(name).inserted { twice.insert(name) }
        return twice
    }
}
