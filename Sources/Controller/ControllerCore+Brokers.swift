import TernCore

// Broker lifecycle (DESIGN.md "Replication"): register with a new broker epoch → fenced until
// caught up with the metadata log → unfenced; heartbeats keep the session; silence for
// `broker.session.timeout.ms` fences; a controlled shutdown through the heartbeat moves leadership
// away before the broker is told it may stop.

extension ControllerCore {
    /// Most endpoints one broker may advertise.
    static let maximumEndpointsPerBroker = 64

    public mutating func registerBroker(_ request: BrokerRegistrationRequest, now: Instant) -> ControllerResult<BrokerRegistrationResponse> {
        if let error = registrationError(request, now: now) {
            return ControllerResult(records: [], reply: BrokerRegistrationResponse(error: error))
        }
        var builder = ProposalBuilder(image: image)
        if builder.image.broker(request.brokerID) != nil {
            // A registration starts fenced, so the previous one hands over what it led first.
            appendLeadershipAndISRRemoval(of: request.brokerID, alsoIneligible: [], into: &builder)
        }
        let epoch = BrokerEpoch(image.highestBrokerEpoch.rawValue + 1)
        builder.append(.registerBroker(BrokerRegistrationRecord(
            brokerID: request.brokerID, brokerEpoch: epoch, incarnationID: request.incarnationID,
            endpoints: request.endpoints, rack: request.rack)))
        sessions[request.brokerID] = BrokerSession(brokerEpoch: epoch, deadline: now + configuration.brokerSessionTimeout)
        return builder.result(BrokerRegistrationResponse(error: .none, brokerEpoch: epoch))
    }

    private func registrationError(_ request: BrokerRegistrationRequest, now: Instant) -> ControllerErrorCode? {
        guard request.brokerID.rawValue >= 0 else { return .invalidRequest }
        guard configuration.clusterID.isEmpty || request.clusterID == configuration.clusterID else { return .inconsistentClusterID }
        guard request.endpoints.count <= Self.maximumEndpointsPerBroker else { return .invalidRequest }
        guard let existing = image.broker(request.brokerID) else { return nil }
        // Another live process with the same node.id: refuse until its session runs out (Kafka's
        // rule). A fenced registration leads nothing, so a new process may take over at once (a
        // broker that completed a controlled shutdown restarts without waiting).
        if existing.incarnationID != request.incarnationID && !existing.isFenced && hasLiveSession(existing, now: now) {
            return .duplicateBrokerRegistration
        }
        return nil
    }

    private func hasLiveSession(_ broker: BrokerRegistration, now: Instant) -> Bool {
        guard let session = sessions[broker.brokerID], session.brokerEpoch == broker.brokerEpoch else { return false }
        return now <= session.deadline
    }

    public mutating func heartbeat(_ request: BrokerHeartbeatRequest, now: Instant) -> ControllerResult<BrokerHeartbeatResponse> {
        guard let registration = image.broker(request.brokerID) else {
            return ControllerResult(records: [], reply: BrokerHeartbeatResponse(error: .brokerIDNotRegistered))
        }
        guard registration.brokerEpoch == request.brokerEpoch else {
            return ControllerResult(records: [], reply: BrokerHeartbeatResponse(error: .staleBrokerEpoch))
        }
        touchSession(of: registration, reportedOffset: request.metadataOffset, now: now)
        let isCaughtUp = request.metadataOffset >= registration.registeredAtOffset
        var builder = ProposalBuilder(image: image)
        appendDataLosses(of: request.brokerID, reports: request.dataLosses, into: &builder)
        let shouldShutDown = appendStateTransition(of: registration, request: request, isCaughtUp: isCaughtUp, into: &builder)
        let isFenced = builder.image.broker(request.brokerID)!.isFenced
        return builder.result(BrokerHeartbeatResponse(error: .none, isCaughtUp: isCaughtUp, isFenced: isFenced,
                                                      shouldShutDown: shouldShutDown))
    }

    private mutating func touchSession(of registration: BrokerRegistration, reportedOffset: Offset, now: Instant) {
        var session = currentSession(of: registration, now: now)
        session.deadline = now + configuration.brokerSessionTimeout
        session.reportedMetadataOffset = max(session.reportedMetadataOffset, reportedOffset)
        sessions[registration.brokerID] = session
    }

    /// Records each data loss the broker reports that no recorded one already covers (a loss from a
    /// lower offset that the broker has not yet discarded its data for covers it), and in the same change takes the broker out of the ISR where enough
    /// members remain and elects another leader where it led. The broker discards nothing before
    /// it sees the record, so until then no stale image of its own can make it throw away data the
    /// controller still counts on.
    private func appendDataLosses(of broker: NodeID, reports: [ReplicaDataLossReport], into builder: inout ProposalBuilder) {
        for report in reports.sorted() {
            let topicID = report.replica.topicID
            let partition = report.replica.partition
            guard let current = builder.image.partition(topicID: topicID, index: partition), current.replicas.contains(broker),
                  report.firstLostOffset.rawValue >= 0 else { continue }
            if let recorded = current.dataLoss(of: broker), recorded.firstLostOffset <= report.firstLostOffset,
               recorded.markedAt != report.acknowledgedLoss { continue }
            let loss = ReplicaDataLoss(broker: broker, firstLostOffset: report.firstLostOffset, markedAt: current.partitionEpoch.next)
            let working = builder.image
            let topic = working.topic(id: topicID)?.name ?? ""
            let planner = PartitionChangePlanner(
                topicID: topicID, partition: partition, current: current, isEligibleLeader: { mayLead($0, in: working) },
                minimumISR: minInSyncReplicas(for: topic, in: working),
                dataLoss: (current.dataLoss.filter { $0.broker != broker } + [loss]).sorted())
            let election = LeaderElection.keepOrElect(unclean: uncleanElectionEnabled(for: topic, in: working))
            guard let change = planner.change(targetISR: current.isr.filter { $0 != broker }, election: election) else {
                preconditionFailure("recording a new data loss always changes the partition")
            }
            builder.append(.partitionChange(change))
        }
    }

    /// Kafka's BrokerHeartbeatManager state machine. Returns whether the broker may stop now.
    private func appendStateTransition(of registration: BrokerRegistration, request: BrokerHeartbeatRequest,
                                       isCaughtUp: Bool, into builder: inout ProposalBuilder) -> Bool {
        if registration.isFenced {
            // A fenced broker leads nothing, so it may stop at once.
            if registration.inControlledShutdown || request.wantShutDown { return true }
            guard isCaughtUp && !request.wantFence else { return false }
            builder.append(.unfenceBroker(registration.reference))
            appendElectionsForOfflinePartitions(into: &builder)
            return false
        }
        if registration.inControlledShutdown {
            guard controlledShutdownMayComplete(registration) else { return false }
            appendFencing(of: registration.brokerID, into: &builder)
            return true
        }
        if request.wantShutDown {
            // Leadership moves come first: the shutdown record's offset then covers them, and the
            // shutdown completes once the other brokers have applied that far.
            appendLeadershipAndISRRemoval(of: registration.brokerID, alsoIneligible: [], into: &builder)
            builder.append(.beginControlledShutdown(registration.reference))
            return false
        }
        if request.wantFence { appendFencing(of: registration.brokerID, into: &builder) }
        return false
    }

    /// The broker leads nothing, and every other live broker has applied the metadata up to its
    /// shutdown (so clients asking them find the new leaders).
    private func controlledShutdownMayComplete(_ registration: BrokerRegistration) -> Bool {
        guard !image.leadsAnyPartition(registration.brokerID),
              let shutdownOffset = registration.controlledShutdownOffset else { return false }
        for other in image.brokers where other.brokerID != registration.brokerID && other.isActive {
            guard let session = sessions[other.brokerID], session.brokerEpoch == other.brokerEpoch,
                  session.reportedMetadataOffset >= shutdownOffset else { return false }
        }
        return true
    }

    // MARK: Producer ids

    /// Hands the broker the next block of producer ids.
    public func allocateProducerIDs(_ request: AllocateProducerIDsRequest) -> ControllerResult<AllocateProducerIDsResponse> {
        guard let registration = image.broker(request.brokerID) else {
            return ControllerResult(records: [], reply: AllocateProducerIDsResponse(error: .brokerIDNotRegistered))
        }
        guard registration.brokerEpoch == request.brokerEpoch else {
            return ControllerResult(records: [], reply: AllocateProducerIDsResponse(error: .staleBrokerEpoch))
        }
        let start = image.nextProducerID
        let size = configuration.producerIDBlockSize
        guard size <= Int64.max - start.rawValue else {
            // Every producer id has been handed out; Kafka answers the same.
            return ControllerResult(records: [], reply: AllocateProducerIDsResponse(error: .unknownServerError))
        }
        var builder = ProposalBuilder(image: image)
        builder.append(.producerIDBlock(ProducerIDBlockRecord(brokerID: request.brokerID, brokerEpoch: request.brokerEpoch,
                                                              blockStart: start, blockSize: size)))
        return builder.result(AllocateProducerIDsResponse(error: .none, blockStart: start, blockSize: size))
    }
}
