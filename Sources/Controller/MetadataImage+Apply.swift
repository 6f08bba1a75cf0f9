import TernCore

// Each apply function checks the record against the image before changing anything, so a refused
// record leaves the image as it was. The checks are the metadata invariants themselves: epochs only
// grow, the leader is in the ISR, a fenced or shutting-down broker leads nothing.

extension MetadataImage {
    mutating func applyRegistration(_ record: BrokerRegistrationRecord, at offset: Offset) throws(MetadataApplyError) {
        guard record.brokerID.rawValue >= 0 else { throw .invalidBrokerID(record.brokerID) }
        guard record.brokerEpoch > highestBrokerEpoch else {
            throw .brokerEpochNotIncreasing(broker: record.brokerID, highest: highestBrokerEpoch, record: record.brokerEpoch)
        }
        if brokersByID[record.brokerID] != nil { try requireLeadsNothing(record.brokerID) }
        brokersByID[record.brokerID] = BrokerRegistration(
            brokerID: record.brokerID, brokerEpoch: record.brokerEpoch, incarnationID: record.incarnationID,
            endpoints: record.endpoints, rack: record.rack, isFenced: true, inControlledShutdown: false,
            registeredAtOffset: offset, controlledShutdownOffset: nil)
        highestBrokerEpoch = record.brokerEpoch
    }

    mutating func applyFence(_ broker: BrokerAndEpoch) throws(MetadataApplyError) {
        let registration = try registration(matching: broker)
        guard !registration.isFenced else { throw .brokerStateUnchanged(broker: broker.brokerID, reason: "already fenced") }
        try requireLeadsNothing(broker.brokerID)
        brokersByID[broker.brokerID]!.isFenced = true
    }

    mutating func applyUnfence(_ broker: BrokerAndEpoch) throws(MetadataApplyError) {
        let registration = try registration(matching: broker)
        guard registration.isFenced else { throw .brokerStateUnchanged(broker: broker.brokerID, reason: "not fenced") }
        guard !registration.inControlledShutdown else {
            throw .brokerStateUnchanged(broker: broker.brokerID, reason: "in controlled shutdown; it must register again")
        }
        brokersByID[broker.brokerID]!.isFenced = false
    }

    mutating func applyControlledShutdown(_ broker: BrokerAndEpoch, at offset: Offset) throws(MetadataApplyError) {
        let registration = try registration(matching: broker)
        guard !registration.isFenced else { throw .brokerStateUnchanged(broker: broker.brokerID, reason: "fenced") }
        guard !registration.inControlledShutdown else {
            throw .brokerStateUnchanged(broker: broker.brokerID, reason: "already in controlled shutdown")
        }
        try requireLeadsNothing(broker.brokerID)
        brokersByID[broker.brokerID]!.inControlledShutdown = true
        brokersByID[broker.brokerID]!.controlledShutdownOffset = offset
    }

    private func registration(matching broker: BrokerAndEpoch) throws(MetadataApplyError) -> BrokerRegistration {
        guard let registration = brokersByID[broker.brokerID] else { throw .unknownBroker(broker.brokerID) }
        guard registration.brokerEpoch == broker.brokerEpoch else {
            throw .brokerEpochMismatch(broker: broker.brokerID, registered: registration.brokerEpoch, record: broker.brokerEpoch)
        }
        return registration
    }

    private func requireLeadsNothing(_ broker: NodeID) throws(MetadataApplyError) {
        if let led = partitionsLed(by: broker).first { throw .brokerStillLeads(broker: broker, partition: led) }
    }

    // MARK: Topics and partitions

    mutating func applyTopic(_ record: TopicRecord) throws(MetadataApplyError) {
        if let problem = TopicRules.topicNameProblem(record.name) { throw .invalidTopic(name: record.name, reason: problem) }
        guard topicsByName[record.name] == nil else { throw .topicAlreadyExists(record.name) }
        guard !record.topicID.isZero else { throw .invalidTopic(name: record.name, reason: "the topic id is zero") }
        guard topicNamesByID[record.topicID] == nil else { throw .topicIDAlreadyExists(record.topicID) }
        var configs: [String: String] = [:]
        for entry in record.configs {
            if let problem = TopicRules.configProblem(name: entry.name, value: entry.value) {
                throw .invalidConfig(resource: .topic(record.name), name: entry.name, reason: problem)
            }
            guard configs.updateValue(entry.value, forKey: entry.name) == nil else {
                throw .invalidConfig(resource: .topic(record.name), name: entry.name, reason: "set twice")
            }
        }
        topicsByName[record.name] = TopicImage(name: record.name, topicID: record.topicID, partitions: [], configsByName: configs)
        topicNamesByID[record.topicID] = record.name
    }

    mutating func applyPartition(_ record: PartitionRecord) throws(MetadataApplyError) {
        let topic = try topicName(for: record.topicID)
        let expected = Int32(topicsByName[topic]!.partitions.count)
        guard record.partition == expected else {
            throw .partitionNotNext(topic: topic, partition: record.partition, expected: expected)
        }
        let topicPartition = TopicPartition(topic: topic, partition: record.partition)
        guard record.partition < TopicRules.maximumPartitionsPerTopic else {
            throw .invalidAssignment(topicPartition, reason: "more than \(TopicRules.maximumPartitionsPerTopic) partitions")
        }
        let registration = PartitionRegistration(replicas: record.replicas, isr: record.isr, leader: record.leader,
                                                 leaderEpoch: record.leaderEpoch, partitionEpoch: record.partitionEpoch)
        try validate(registration, of: topicPartition)
        guard record.leaderEpoch.rawValue >= 0, record.partitionEpoch.rawValue >= 0 else {
            throw .invalidAssignment(topicPartition, reason: "negative epoch")
        }
        topicsByName[topic]!.partitions.append(registration)
    }

    mutating func applyPartitionChange(_ change: PartitionChangeRecord) throws(MetadataApplyError) {
        let topic = try topicName(for: change.topicID)
        let topicPartition = TopicPartition(topic: topic, partition: change.partition)
        guard let current = topicsByName[topic]!.partition(change.partition) else {
            throw .unknownPartition(topic: topic, partition: change.partition)
        }
        var next = current
        next.replicas = change.replicas ?? current.replicas
        next.isr = change.isr ?? current.isr
        next.addingReplicas = change.addingReplicas ?? current.addingReplicas
        next.removingReplicas = change.removingReplicas ?? current.removingReplicas
        // A broker that is no longer a replica has no copy left to distrust.
        next.dataLoss = (change.dataLoss ?? current.dataLoss).filter { next.replicas.contains($0.broker) }
        switch change.leader {
        case .unchanged: break
        case .none: next.leader = nil
        case let .elected(leader): next.leader = leader
        }
        next.leaderEpoch = change.leaderEpoch
        next.partitionEpoch = change.partitionEpoch
        try validateChange(from: current, to: next, of: topicPartition)
        topicsByName[topic]!.partitions[Int(change.partition)] = next
    }

    private func validateChange(from current: PartitionRegistration, to next: PartitionRegistration,
                                of topicPartition: TopicPartition) throws(MetadataApplyError) {
        guard next.partitionEpoch == current.partitionEpoch.next else {
            throw .partitionEpochNotNext(topicPartition, current: current.partitionEpoch, record: next.partitionEpoch)
        }
        guard next.leaderEpoch >= current.leaderEpoch else {
            throw .leaderEpochRegressed(topicPartition, current: current.leaderEpoch, record: next.leaderEpoch)
        }
        if next.leader != current.leader && next.leaderEpoch == current.leaderEpoch {
            throw .leaderChangedWithoutEpochBump(topicPartition, epoch: current.leaderEpoch)
        }
        try validate(next, of: topicPartition)
    }

    private func validate(_ registration: PartitionRegistration, of topicPartition: TopicPartition) throws(MetadataApplyError) {
        if let problem = TopicRules.assignmentProblem(replicas: registration.replicas, isr: registration.isr,
                                                      leader: registration.leader) {
            throw .invalidAssignment(topicPartition, reason: problem)
        }
        if let problem = TopicRules.dataLossProblem(registration.dataLoss, replicas: registration.replicas,
                                                    partitionEpoch: registration.partitionEpoch) {
            throw .invalidAssignment(topicPartition, reason: problem)
        }
        if let problem = TopicRules.reassignmentProblem(replicas: registration.replicas, adding: registration.addingReplicas,
                                                        removing: registration.removingReplicas) {
            throw .invalidAssignment(topicPartition, reason: problem)
        }
        if let leader = registration.leader, !isActive(leader) { throw .ineligibleLeader(topicPartition, leader) }
    }

    private func topicName(for topicID: TopicID) throws(MetadataApplyError) -> String {
        guard let name = topicNamesByID[topicID] else { throw .unknownTopicID(topicID) }
        return name
    }

    mutating func applyRemoveTopic(_ removal: RemoveTopicRecord) throws(MetadataApplyError) {
        let name = try topicName(for: removal.topicID)
        topicsByName[name] = nil
        topicNamesByID[removal.topicID] = nil
    }

    // MARK: Producer ids and configuration

    mutating func applyProducerIDBlock(_ block: ProducerIDBlockRecord) throws(MetadataApplyError) {
        _ = try registration(matching: BrokerAndEpoch(brokerID: block.brokerID, brokerEpoch: block.brokerEpoch))
        guard block.blockStart == nextProducerID else {
            throw .producerIDBlockNotNext(expected: nextProducerID, record: block.blockStart)
        }
        guard block.blockSize > 0 else { throw .invalidProducerIDBlock(reason: "size \(block.blockSize) is not positive") }
        guard block.blockSize <= Int64.max - block.blockStart.rawValue else {
            throw .invalidProducerIDBlock(reason: "the block overflows the producer-id space")
        }
        nextProducerID = block.nextBlockStart
    }

    mutating func applyConfig(_ record: ConfigRecord) throws(MetadataApplyError) {
        if let value = record.value, let problem = TopicRules.configProblem(name: record.name, value: value) {
            throw .invalidConfig(resource: record.resource, name: record.name, reason: problem)
        }
        guard !record.name.isEmpty else { throw .invalidConfig(resource: record.resource, name: record.name, reason: "empty name") }
        switch record.resource {
        case let .topic(name):
            guard topicsByName[name] != nil else { throw .unknownTopicName(name) }
            topicsByName[name]!.configsByName[record.name] = record.value
        case let .broker(node) where node.rawValue < 0:
            throw .invalidBrokerID(node)
        case .cluster, .broker:
            configsByResource[record.resource, default: [:]][record.name] = record.value
            if configsByResource[record.resource]!.isEmpty { configsByResource[record.resource] = nil }
        }
    }
}
