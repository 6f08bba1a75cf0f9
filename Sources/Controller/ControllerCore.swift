import TernCore

/// The active controller's decisions, as a pure value: requests and time in, metadata records and
/// replies out. It never proposes anything its own image would refuse.
///
/// How a composer drives it (the Raft leader is the active controller):
/// 1. On winning the election, once the leader has applied the whole committed log, build one from
///    the image: `ControllerCore(image:configuration:now:)`. Broker sessions are soft state
///    and start afresh (every unfenced broker gets a full session timeout).
/// 2. For each request, `handle(_:now:)`; on each tick, `tick(now:)`.
/// 3. Append the returned records to the Raft log as one batch, then `replay(_:at:)` each of them
///    at the offset it got, before handling anything else: later decisions read `image`, which must
///    include every record already proposed.
/// 4. Send the reply once those records (and all earlier ones) are committed. On losing leadership,
///    drop this value and the pending replies.
public struct ControllerCore: Sendable {
    public let configuration: ControllerConfiguration
    /// The committed image plus the records this controller has proposed since.
    public private(set) var image: MetadataImage
    /// Per registered broker, when its session ends and how far it has applied the metadata log.
    var sessions: [NodeID: BrokerSession]

    public init(image: MetadataImage, configuration: ControllerConfiguration, now: Instant) {
        self.configuration = configuration
        self.image = image
        self.sessions = [:]
        for broker in image.brokers where !broker.isFenced {
            sessions[broker.brokerID] = BrokerSession(brokerEpoch: broker.brokerEpoch,
                                                      deadline: now + configuration.brokerSessionTimeout)
        }
    }

    /// Applies a record appended to the log at `offset` (this controller's own, or one committed
    /// before it became active).
    public mutating func replay(_ record: MetadataRecord, at offset: Offset) throws(MetadataApplyError) {
        try image.apply(record, at: offset)
    }

    /// When the session of `broker` ends without a heartbeat; nil for brokers without one.
    public func sessionDeadline(of broker: NodeID) -> Instant? { sessions[broker]?.deadline }

    /// The earliest session deadline of an unfenced broker: the next time `tick` has work to do.
    public var nextSessionDeadline: Instant? {
        image.brokers.filter { !$0.isFenced }.compactMap { sessions[$0.brokerID]?.deadline }.min()
    }

    /// Dispatches a decoded request to its handler.
    public mutating func handle(_ request: ControllerRequest, now: Instant) -> ControllerResult<ControllerResponse> {
        switch request {
        case let .brokerRegistration(request):
            let result = registerBroker(request, now: now)
            return ControllerResult(records: result.records, reply: .brokerRegistration(result.reply))
        case let .brokerHeartbeat(request):
            let result = heartbeat(request, now: now)
            return ControllerResult(records: result.records, reply: .brokerHeartbeat(result.reply))
        case let .alterPartition(request):
            let result = alterPartition(request)
            return ControllerResult(records: result.records, reply: .alterPartition(result.reply))
        case let .allocateProducerIDs(request):
            let result = allocateProducerIDs(request)
            return ControllerResult(records: result.records, reply: .allocateProducerIDs(result.reply))
        case let .createTopics(request):
            let result = createTopics(request)
            return ControllerResult(records: result.records, reply: .createTopics(result.reply))
        case let .createPartitions(request):
            let result = createPartitions(request)
            return ControllerResult(records: result.records, reply: .createPartitions(result.reply))
        case let .deleteTopics(request):
            let result = deleteTopics(request)
            return ControllerResult(records: result.records, reply: .deleteTopics(result.reply))
        case let .electLeaders(request):
            let result = electLeaders(request)
            return ControllerResult(records: result.records, reply: .electLeaders(result.reply))
        case let .alterConfigs(request):
            let result = alterConfigs(request)
            return ControllerResult(records: result.records, reply: .alterConfigs(result.reply))
        case let .alterPartitionReassignments(request):
            let result = alterPartitionReassignments(request)
            return ControllerResult(records: result.records, reply: .alterPartitionReassignments(result.reply))
        }
    }

    /// Fences brokers whose session expired (moving their leaderships away first), then gives
    /// offline partitions a leader where one has become possible. Returns the records to propose.
    public mutating func tick(now: Instant) -> [MetadataRecord] {
        var builder = ProposalBuilder(image: image)
        let expired = expiredBrokers(now: now)
        for broker in expired {
            appendFencing(of: broker, alsoIneligible: expired, into: &builder)
        }
        appendElectionsForOfflinePartitions(into: &builder)
        return builder.records
    }

    /// Unfenced brokers whose session ended before `now`, by id. A broker without a session (none
    /// was started for it yet) gets one now.
    private mutating func expiredBrokers(now: Instant) -> [NodeID] {
        var expired: [NodeID] = []
        for broker in image.brokers where !broker.isFenced {
            let session = currentSession(of: broker, now: now)
            if now > session.deadline { expired.append(broker.brokerID) }
        }
        return expired
    }

    /// The session of the broker's current registration, started now if there is none.
    mutating func currentSession(of broker: BrokerRegistration, now: Instant) -> BrokerSession {
        if let session = sessions[broker.brokerID], session.brokerEpoch == broker.brokerEpoch { return session }
        let session = BrokerSession(brokerEpoch: broker.brokerEpoch, deadline: now + configuration.brokerSessionTimeout)
        sessions[broker.brokerID] = session
        return session
    }

    // MARK: Shared decisions

    /// Is unclean leader election allowed for `topic`? Topic config, then cluster config, then the
    /// controller's default.
    func uncleanElectionEnabled(for topic: String, in image: MetadataImage) -> Bool {
        let name = ConfigNames.uncleanLeaderElectionEnable
        if let value = image.config(name, for: .topic(topic)), let enabled = TopicRules.parseBoolean(value) { return enabled }
        if let value = image.config(name, for: .cluster), let enabled = TopicRules.parseBoolean(value) { return enabled }
        return configuration.uncleanLeaderElectionEnabled
    }

    /// `min.insync.replicas` of `topic`: topic config, then cluster config, then the controller's
    /// default (`server.properties`, 1 unless set, as in Kafka).
    func minInSyncReplicas(for topic: String, in image: MetadataImage) -> Int {
        let name = ConfigNames.minInsyncReplicas
        let value = image.config(name, for: .topic(topic)) ?? image.config(name, for: .cluster)
        return value.flatMap { Int($0) }.map { max(1, $0) } ?? configuration.defaultMinInSyncReplicas
    }

    /// Takes `broker` out of every ISR it can leave and moves its leaderships to other eligible
    /// brokers (none of `alsoIneligible`). Partitions with no other choice go offline.
    func appendLeadershipAndISRRemoval(of broker: NodeID, alsoIneligible: [NodeID], into builder: inout ProposalBuilder) {
        for entry in builder.image.partitions {
            let current = entry.registration
            guard current.leader == broker || current.isr.contains(broker) else { continue }
            let working = builder.image
            let planner = PartitionChangePlanner(
                topicID: entry.topicID, partition: entry.topicPartition.partition, current: current,
                isEligibleLeader: { candidate in
                    candidate != broker && !alsoIneligible.contains(candidate)
                        && mayLead(candidate, in: working)
                },
                minimumISR: minInSyncReplicas(for: entry.topicPartition.topic, in: working))
            let election = LeaderElection.keepOrElect(unclean: uncleanElectionEnabled(for: entry.topicPartition.topic, in: working))
            if let change = planner.change(targetISR: current.isr.filter { $0 != broker }, election: election) {
                builder.append(.partitionChange(change))
            }
        }
    }

    /// Fences `broker` after handing over its leaderships.
    func appendFencing(of broker: NodeID, alsoIneligible: [NodeID] = [], into builder: inout ProposalBuilder) {
        guard let registration = builder.image.broker(broker), !registration.isFenced else { return }
        appendLeadershipAndISRRemoval(of: broker, alsoIneligible: alsoIneligible, into: &builder)
        builder.append(.fenceBroker(registration.reference))
    }

    /// Gives every leaderless partition the leader its ISR (or, where allowed, its replicas) can
    /// now provide.
    func appendElectionsForOfflinePartitions(into builder: inout ProposalBuilder) {
        for entry in builder.image.partitions where entry.registration.isOffline {
            let working = builder.image
            let planner = PartitionChangePlanner(
                topicID: entry.topicID, partition: entry.topicPartition.partition, current: entry.registration,
                isEligibleLeader: { mayLead($0, in: working) })
            let election = LeaderElection.keepOrElect(unclean: uncleanElectionEnabled(for: entry.topicPartition.topic, in: working))
            if let change = planner.change(targetISR: nil, election: election) {
                builder.append(.partitionChange(change))
            }
        }
    }

    /// An active broker (unfenced, not shutting down). Whether its copy lost data is the
    /// planner's business: it prefers intact copies (see `PartitionChangePlanner`).
    func mayLead(_ broker: NodeID, in image: MetadataImage) -> Bool { image.isActive(broker) }
}

/// The controller's view of one broker registration's liveness: soft state, rebuilt when a new
/// controller becomes active.
struct BrokerSession: Hashable, Sendable {
    var brokerEpoch: BrokerEpoch
    /// A heartbeat after this instant is too late: the broker is fenced on the next tick.
    var deadline: Instant
    /// The highest metadata offset the broker reported applying.
    var reportedMetadataOffset: Offset = .unknown
}
