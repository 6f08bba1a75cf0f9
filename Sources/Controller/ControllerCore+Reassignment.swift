import TernCore

// Partition reassignment (KIP-455): the replica set grows to the union of old and new, the new
// replicas fetch like any follower and join the ISR through the leader's AlterPartition, and once
// every new replica is in the ISR the old ones are removed (leadership moving if it was on one).
// So at no point are there fewer in-sync copies than before.

extension ControllerCore {
    public func alterPartitionReassignments(_ request: AlterPartitionReassignmentsRequest)
        -> ControllerResult<AlterPartitionReassignmentsResponse> {
        var builder = ProposalBuilder(image: image)
        var results: [ElectLeadersResponse.PartitionResult] = []
        for item in request.reassignments {
            let (error, message) = reassign(item, into: &builder)
            results.append(.init(topicPartition: item.topicPartition, error: error, message: message))
        }
        return builder.result(AlterPartitionReassignmentsResponse(partitions: results))
    }

    private func reassign(_ item: AlterPartitionReassignmentsRequest.Reassignment,
                          into builder: inout ProposalBuilder) -> (ControllerErrorCode, String?) {
        guard let topic = builder.image.topic(named: item.topicPartition.topic),
              let current = topic.partition(item.topicPartition.partition) else { return (.unknownTopicOrPartition, nil) }
        let original = current.replicas.filter { !current.addingReplicas.contains($0) }
        guard let target = item.targetReplicas else {
            guard current.isReassigning else { return (.noReassignmentInProgress, nil) }
            appendReassignment(to: original, from: original, current: current, topicID: topic.topicID,
                               partition: item.topicPartition.partition, into: &builder)
            return (.none, nil)
        }
        if let problem = targetProblem(target, in: builder.image) { return (.invalidReplicaAssignment, problem) }
        if target == current.replicas && !current.isReassigning { return (.none, nil) }
        appendReassignment(to: target, from: original, current: current, topicID: topic.topicID,
                           partition: item.topicPartition.partition, into: &builder)
        return (.none, nil)
    }

    private func targetProblem(_ target: [NodeID], in image: MetadataImage) -> String? {
        if target.isEmpty { return "no replicas" }
        if Set(target).count != target.count { return "duplicate replicas \(target)" }
        if target.count > TopicRules.maximumReplicationFactor { return "more than \(TopicRules.maximumReplicationFactor) replicas" }
        if let unknown = target.first(where: { image.broker($0) == nil }) { return "broker \(unknown) is not registered" }
        return nil
    }

    /// Kafka's order: the target first (its first replica becomes the preferred leader), then the
    /// original replicas that are leaving.
    private func appendReassignment(to target: [NodeID], from original: [NodeID], current: PartitionRegistration,
                                    topicID: TopicID, partition: Int32, into builder: inout ProposalBuilder) {
        let replicas = target + original.filter { !target.contains($0) }
        let adding = target.filter { !original.contains($0) }
        let removing = original.filter { !target.contains($0) }
        // A cancelled reassignment's added replicas leave the ISR with it.
        let isr = current.isr.filter { replicas.contains($0) }
        builder.append(.partitionChange(PartitionChangeRecord(
            topicID: topicID, partition: partition, isr: isr == current.isr ? nil : isr, replicas: replicas,
            leaderEpoch: current.leaderEpoch, partitionEpoch: current.partitionEpoch.next,
            addingReplicas: adding, removingReplicas: removing)))
        appendReassignmentCompletionIfReady(topicID: topicID, partition: partition, into: &builder)
    }

    /// Finishes a reassignment whose added replicas are all in the ISR: the replica set becomes
    /// the target, the ISR loses the removed replicas, and a removed leader hands over to the
    /// first eligible target replica in the ISR.
    func appendReassignmentCompletionIfReady(topicID: TopicID, partition: Int32, into builder: inout ProposalBuilder) {
        guard let current = builder.image.partition(topicID: topicID, index: partition), current.isReassigning,
              current.addingReplicas.allSatisfy({ current.isr.contains($0) }) else { return }
        let target = current.targetReplicas
        let isr = current.isr.filter { target.contains($0) }
        guard !isr.isEmpty else { return }  // wait: no target replica in sync yet
        let working = builder.image
        var leader = current.leader
        if let existing = leader, !target.contains(existing) {
            leader = target.first { isr.contains($0) && mayLead($0, in: working) && current.dataLoss(of: $0) == nil }
        }
        let leaderChanged = leader != current.leader
        builder.append(.partitionChange(PartitionChangeRecord(
            topicID: topicID, partition: partition,
            leader: leaderChanged ? (leader.map(LeaderChange.elected) ?? LeaderChange.none) : .unchanged,
            isr: isr, replicas: target,
            leaderEpoch: leaderChanged ? current.leaderEpoch.next : current.leaderEpoch,
            partitionEpoch: current.partitionEpoch.next, addingReplicas: [], removingReplicas: [])))
    }
}
