import TernCore

// ISR changes from partition leaders (AlterPartition, compare-and-set on the partition epoch) and
// leader elections asked for by an admin (ElectLeaders).

extension ControllerCore {
    public func alterPartition(_ request: AlterPartitionRequest) -> ControllerResult<AlterPartitionResponse> {
        guard let registration = image.broker(request.brokerID) else {
            return ControllerResult(records: [], reply: AlterPartitionResponse(error: .brokerIDNotRegistered))
        }
        guard registration.brokerEpoch == request.brokerEpoch else {
            return ControllerResult(records: [], reply: AlterPartitionResponse(error: .staleBrokerEpoch))
        }
        var builder = ProposalBuilder(image: image)
        var results: [AlterPartitionResponse.PartitionResult] = []
        for item in request.partitions {
            results.append(alterOnePartition(item, requester: request.brokerID, into: &builder))
        }
        return builder.result(AlterPartitionResponse(error: .none, partitions: results))
    }

    private func alterOnePartition(_ item: AlterPartitionRequest.Partition, requester: NodeID,
                                   into builder: inout ProposalBuilder) -> AlterPartitionResponse.PartitionResult {
        guard let current = builder.image.partition(topicID: item.topicID, index: item.partition) else {
            return AlterPartitionResponse.PartitionResult(topicID: item.topicID, partition: item.partition, error: .unknownTopicOrPartition)
        }
        if let error = alterPartitionError(item, current: current, requester: requester, image: builder.image) {
            return partitionResult(item, current, error: error)
        }
        let newISR = item.newISR.map(\.brokerID)
        // A member whose fetches show it discarded the data of its recorded loss and caught up
        // since holds everything again: the record goes.
        let dataLoss = current.dataLoss.filter { loss in
            !item.newISR.contains { $0.brokerID == loss.broker && $0.acknowledgedLoss == loss.markedAt }
        }
        guard newISR != current.isr || dataLoss != current.dataLoss else { return partitionResult(item, current, error: .none) }
        builder.append(.partitionChange(PartitionChangeRecord(
            topicID: item.topicID, partition: item.partition, isr: newISR == current.isr ? nil : newISR,
            leaderEpoch: current.leaderEpoch, partitionEpoch: current.partitionEpoch.next,
            dataLoss: dataLoss == current.dataLoss ? nil : dataLoss)))
        let answered = builder.image.partition(topicID: item.topicID, index: item.partition)!
        // The ISR the leader asked for is committed; a reassignment it completes follows in the
        // same batch, and the leader learns of it from the metadata log like everyone else.
        appendReassignmentCompletionIfReady(topicID: item.topicID, partition: item.partition, into: &builder)
        return partitionResult(item, answered, error: .none)
    }

    /// Kafka's checks, in Kafka's order: the requester's leader epoch, its leadership, the
    /// partition epoch (the compare-and-set), then the shape of the new ISR and the eligibility of
    /// the brokers it adds.
    private func alterPartitionError(_ item: AlterPartitionRequest.Partition, current: PartitionRegistration,
                                     requester: NodeID, image: MetadataImage) -> ControllerErrorCode? {
        guard item.leaderEpoch == current.leaderEpoch else { return .fencedLeaderEpoch }
        guard current.leader == requester else { return .notLeaderOrFollower }
        guard item.partitionEpoch == current.partitionEpoch else { return .invalidUpdateVersion }
        let newISR = item.newISR.map(\.brokerID)
        guard TopicRules.assignmentProblem(replicas: current.replicas, isr: newISR, leader: requester) == nil else {
            return .invalidRequest
        }
        for member in item.newISR where !current.isr.contains(member.brokerID) {
            guard let broker = image.broker(member.brokerID), broker.isActive,
                  member.brokerEpoch.rawValue == -1 || member.brokerEpoch == broker.brokerEpoch else {
                return .ineligibleReplica
            }
            // A replica that lost data joins only on the strength of fetches made after it
            // discarded that data, never on older ones still in flight when it found the loss.
            if let loss = current.dataLoss(of: member.brokerID), member.acknowledgedLoss != loss.markedAt {
                return .ineligibleReplica
            }
        }
        return nil
    }

    private func partitionResult(_ item: AlterPartitionRequest.Partition, _ state: PartitionRegistration,
                                 error: ControllerErrorCode) -> AlterPartitionResponse.PartitionResult {
        AlterPartitionResponse.PartitionResult(topicID: item.topicID, partition: item.partition, error: error,
                                               leader: state.leader, leaderEpoch: state.leaderEpoch, isr: state.isr,
                                               partitionEpoch: state.partitionEpoch, dataLoss: state.dataLoss)
    }

    // MARK: ElectLeaders

    public func electLeaders(_ request: ElectLeadersRequest) -> ControllerResult<ElectLeadersResponse> {
        var builder = ProposalBuilder(image: image)
        var results: [ElectLeadersResponse.PartitionResult] = []
        let targets = request.partitions ?? image.partitions.map(\.topicPartition)
        for topicPartition in targets {
            let error = electLeader(of: topicPartition, type: request.electionType, into: &builder)
            if request.partitions == nil && error == .electionNotNeeded { continue }
            results.append(ElectLeadersResponse.PartitionResult(topicPartition: topicPartition, error: error))
        }
        return builder.result(ElectLeadersResponse(partitions: results))
    }

    private func electLeader(of topicPartition: TopicPartition, type: ElectionType,
                             into builder: inout ProposalBuilder) -> ControllerErrorCode {
        guard let topic = builder.image.topic(named: topicPartition.topic),
              let current = topic.partition(topicPartition.partition) else { return .unknownTopicOrPartition }
        let working = builder.image
        let planner = PartitionChangePlanner(topicID: topic.topicID, partition: topicPartition.partition, current: current,
                                             isEligibleLeader: { mayLead($0, in: working) })
        let change: PartitionChangeRecord?
        switch type {
        case .preferred:
            if current.leader == current.preferredLeader { return .electionNotNeeded }
            change = planner.change(targetISR: nil, election: .preferred)
            guard change != nil else { return .preferredLeaderNotAvailable }
        case .unclean:
            if current.leader != nil { return .electionNotNeeded }
            change = planner.change(targetISR: nil, election: .keepOrElect(unclean: true))
            guard change != nil else { return .eligibleLeadersNotAvailable }
        }
        builder.append(.partitionChange(change!))
        return .none
    }
}
