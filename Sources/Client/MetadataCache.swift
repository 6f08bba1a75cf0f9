import KafkaProtocol
import TernCore

/// Where each partition of interest is led, as the client last learned it.
///
/// Sans-IO: the owner (producer or consumer) asks `nextRequest(now:)` for a Metadata request,
/// sends it under its own correlation and hands back the answer (`apply`) or its loss
/// (`requestFailed`). A partition is marked stale on the errors that say the client's view is
/// wrong, which asks for a refresh no sooner than the backoff allows. A leader epoch never goes
/// backwards: an answer from a broker that has not caught up yet cannot undo a newer leader.
public struct MetadataCache: Sendable {
    public struct Configuration: Sendable {
        /// The wait after a refresh before the next one, so a storm of NOT_LEADER answers makes
        /// one Metadata request per backoff, not one per answer.
        public var refreshBackoff: Duration
        /// The backoff doubles after each refresh that leaves something stale, up to this.
        public var maximumRefreshBackoff: Duration
        /// Refresh everything this often even if nothing looks wrong (Kafka's metadata.max.age.ms).
        public var maximumAge: Duration

        public init(refreshBackoff: Duration = .milliseconds(100), maximumRefreshBackoff: Duration = .seconds(1),
                    maximumAge: Duration = .seconds(300)) {
            precondition(refreshBackoff > .zero && maximumRefreshBackoff >= refreshBackoff, "backoffs must be positive and ordered")
            self.refreshBackoff = refreshBackoff
            self.maximumRefreshBackoff = maximumRefreshBackoff
            self.maximumAge = maximumAge
        }
    }

    public struct PartitionLeader: Equatable, Sendable {
        /// nil while the partition is offline.
        public var leaderID: NodeID?
        /// `.none` when the broker did not say (old brokers); then epochs are not compared.
        public var leaderEpoch: LeaderEpoch
        /// Set by an error that says this view is wrong; cleared by a refresh that answers for it.
        public var isStale: Bool
    }

    public let configuration: Configuration
    /// Nodes to ask before any Metadata answer has named the cluster's brokers.
    public let bootstrapNodes: [NodeID]
    /// Known brokers, by id. Read through `sortedBrokerIDs` so iteration order never decides anything.
    public private(set) var brokers: [NodeID: KafkaWire.MetadataResponse.MetadataResponseBroker] = [:]
    public private(set) var partitions: [TopicPartition: PartitionLeader] = [:]
    /// The topics asked about, sorted and without duplicates (so the request is deterministic).
    public private(set) var topics: [String] = []

    private var random: DeterministicRandom
    private var refreshWanted = true
    private var refreshInFlight = false
    private var earliestNextRefresh = Instant.zero
    private var currentBackoff: Duration
    private var lastRefresh: Instant?

    public init(bootstrapNodes: [NodeID], configuration: Configuration = Configuration(), random: DeterministicRandom) {
        precondition(!bootstrapNodes.isEmpty, "a client needs at least one bootstrap node")
        self.bootstrapNodes = bootstrapNodes
        self.configuration = configuration
        self.random = random
        currentBackoff = configuration.refreshBackoff
    }

    public var sortedBrokerIDs: [NodeID] { brokers.keys.sorted() }

    /// Adds topics to follow; a new topic asks for a refresh at once.
    public mutating func track(topic: String) {
        guard !topics.contains(topic) else { return }
        topics.append(topic)
        topics.sort()
        refreshWanted = true
        earliestNextRefresh = .zero
    }

    /// The leader to send to, or nil while unknown, offline or stale (a refresh is pending).
    public func usableLeader(for topicPartition: TopicPartition) -> (leaderID: NodeID, leaderEpoch: LeaderEpoch)? {
        guard let entry = partitions[topicPartition], !entry.isStale, let leaderID = entry.leaderID else { return nil }
        return (leaderID, entry.leaderEpoch)
    }

    public func leader(for topicPartition: TopicPartition) -> PartitionLeader? { partitions[topicPartition] }

    /// Records an error a broker answered for `topicPartition` to a request sent while the
    /// partition's leader epoch was `requestLeaderEpoch`. Returns true when the error says the
    /// metadata is wrong: the partition is then stale and a refresh is requested. An error about
    /// an epoch older than the one now known is old news and changes nothing.
    @discardableResult
    public mutating func noteError(_ error: KafkaErrorCode, for topicPartition: TopicPartition,
                                   requestLeaderEpoch: LeaderEpoch = .none) -> Bool {
        guard error.invalidatesMetadata else { return false }
        if let known = partitions[topicPartition], requestLeaderEpoch != .none, known.leaderEpoch > requestLeaderEpoch {
            return true
        }
        partitions[topicPartition, default: PartitionLeader(leaderID: nil, leaderEpoch: .none, isStale: true)].isStale = true
        refreshWanted = true
        return true
    }

    /// A request to the partition's leader went unanswered (timeout, closed connection): the
    /// leader may be gone, so the view is stale until a refresh answers for it, as Kafka's
    /// clients request a metadata update on a disconnect.
    public mutating func noteRequestLost(for topicPartition: TopicPartition, requestLeaderEpoch: LeaderEpoch = .none) {
        noteError(.notLeaderOrFollower, for: topicPartition, requestLeaderEpoch: requestLeaderEpoch)
    }

    /// A leader named by a broker's answer (KIP-951 `currentLeader`). Taken only when strictly
    /// newer than what is known, so it can clear staleness without a round trip but never regress.
    public mutating func noteLeaderHint(leaderID: NodeID?, leaderEpoch: LeaderEpoch, for topicPartition: TopicPartition) {
        guard let leaderID, leaderEpoch != .none, brokers[leaderID] != nil else { return }
        if let known = partitions[topicPartition], known.leaderEpoch != .none, leaderEpoch <= known.leaderEpoch { return }
        partitions[topicPartition] = PartitionLeader(leaderID: leaderID, leaderEpoch: leaderEpoch, isStale: false)
    }

    /// A Metadata request to send now, if one is due: wanted (stale data, new topics, age) and past
    /// the backoff, with none in flight. The caller must answer with `apply` or `requestFailed`.
    public mutating func nextRequest(now: Instant) -> (destination: NodeID, request: KafkaWire.MetadataRequest)? {
        guard !refreshInFlight, !topics.isEmpty else { return nil }
        if let lastRefresh, now - lastRefresh >= configuration.maximumAge { refreshWanted = true }
        guard refreshWanted, now >= earliestNextRefresh else { return nil }
        // Any broker can answer; a random one spreads the load and routes around a dead node.
        let candidates = brokers.isEmpty ? bootstrapNodes : sortedBrokerIDs
        let destination = candidates[Int(random.next(below: UInt64(candidates.count)))]
        refreshInFlight = true
        refreshWanted = false
        return (destination, KafkaWire.MetadataRequest(topics: topics.map { KafkaWire.MetadataRequest.MetadataRequestTopic(name: $0) },
                                                       allowAutoTopicCreation: false))
    }

    /// When `nextRequest` could next return something, for the owner's wakeup.
    public var nextRefreshTime: Instant? {
        guard !refreshInFlight, !topics.isEmpty else { return nil }
        if refreshWanted { return earliestNextRefresh }
        return lastRefresh.map { $0 + configuration.maximumAge }
    }

    /// The refresh was lost (timeout, closed connection): try again after the backoff.
    public mutating func requestFailed(now: Instant) {
        precondition(refreshInFlight, "a Metadata failure with no refresh in flight")
        refreshInFlight = false
        refreshWanted = true
        scheduleAfterFailure(now: now)
    }

    /// Takes a Metadata answer. Returns the partitions whose leader epoch moved forward (the
    /// consumer validates its position on those), sorted.
    @discardableResult
    public mutating func apply(_ response: KafkaWire.MetadataResponse, now: Instant) -> [TopicPartition] {
        precondition(refreshInFlight, "a Metadata answer with no refresh in flight")
        refreshInFlight = false
        lastRefresh = now
        // Kafka's ids are never negative; a broker that says otherwise is not one to connect to.
        for broker in response.brokers where broker.nodeId >= 0 { brokers[NodeID(broker.nodeId)] = broker }
        var advanced: [TopicPartition] = []
        var stillStale = false
        for topic in response.topics {
            let name = topic.topicName
            guard topics.contains(name) else { continue }
            guard topic.error == .none else {
                // The topic is unknown or being created: keep asking, with backoff.
                stillStale = true
                continue
            }
            for partition in topic.partitions {
                let topicPartition = TopicPartition(topic: name, partition: partition.partitionIndex)
                let offered = PartitionLeader(leaderID: partition.leaderID,
                                              leaderEpoch: LeaderEpoch(partition.leaderEpoch), isStale: false)
                if let known = partitions[topicPartition], known.leaderEpoch != .none, offered.leaderEpoch != .none,
                   offered.leaderEpoch < known.leaderEpoch {
                    // An older view than ours (the answering broker lags): keep ours, and ask
                    // again if ours is no use either.
                    stillStale = stillStale || known.isStale || known.leaderID == nil
                    continue
                }
                if let known = partitions[topicPartition], known.leaderEpoch != .none, offered.leaderEpoch > known.leaderEpoch {
                    advanced.append(topicPartition)
                }
                partitions[topicPartition] = offered
                if offered.leaderID == nil { stillStale = true }
            }
        }
        // A partition marked stale, or without a leader, that the answer did not settle: ask
        // again (a leaderless view left alone would never be refreshed before `maximumAge`).
        if partitions.values.contains(where: { $0.isStale || $0.leaderID == nil }) { stillStale = true }
        if stillStale {
            refreshWanted = true
            scheduleAfterFailure(now: now)
        } else {
            currentBackoff = configuration.refreshBackoff
            earliestNextRefresh = now + configuration.refreshBackoff
        }
        return advanced.sorted()
    }

    private mutating func scheduleAfterFailure(now: Instant) {
        earliestNextRefresh = now + currentBackoff
        currentBackoff = min(currentBackoff * 2, configuration.maximumRefreshBackoff)
    }
}
