import TernCore

/// The controller's settings, named after the Kafka `server.properties` keys they stand for.
public struct ControllerConfiguration: Hashable, Sendable {
    /// Registrations naming another cluster are refused; empty accepts any.
    public var clusterID: String
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    public var brokerSessionTimeout: Duration
    /// `num.partitions`: partitions of a topic created without a count.
    public var defaultPartitionCount: Int32
    /// `default.replication.factor`.
    public var defaultReplicationFactor: Int16
    /// `unclean.leader.election.enable`, the cluster default; topics and the cluster config
    /// resource may override it.
    public var uncleanLeaderElectionEnabled: Bool
    /// `min.insync.replicas`, the cluster default; topics and the cluster config resource may
    /// override it. The ISR never shrinks below it, so it must agree with the brokers' default.
    public var defaultMinInSyncReplicas: Int
    /// Producer ids handed to a broker per AllocateProducerIds.
    public var producerIDBlockSize: Int64

    public init(clusterID: String = "",
                brokerSessionTimeout: Duration = .seconds(9),
                defaultPartitionCount: Int32 = 1,
                defaultReplicationFactor: Int16 = 1,
                uncleanLeaderElectionEnabled: Bool = false,
                defaultMinInSyncReplicas: Int = 1,
                producerIDBlockSize: Int64 = 1000) {
        precondition(brokerSessionTimeout > .zero, "broker.session.timeout.ms must be positive")
        precondition(defaultPartitionCount >= 1 && defaultPartitionCount <= TopicRules.maximumPartitionsPerTopic,
                     "num.partitions must be between 1 and \(TopicRules.maximumPartitionsPerTopic)")
        precondition(defaultReplicationFactor >= 1 && Int(defaultReplicationFactor) <= TopicRules.maximumReplicationFactor,
                     "default.replication.factor must be between 1 and \(TopicRules.maximumReplicationFactor)")
        precondition(defaultMinInSyncReplicas >= 1, "min.insync.replicas is at least 1")
        precondition(producerIDBlockSize > 0, "the producer-id block size must be positive")
        self.clusterID = clusterID
        self.brokerSessionTimeout = brokerSessionTimeout
        self.defaultPartitionCount = defaultPartitionCount
        self.defaultReplicationFactor = defaultReplicationFactor
        self.uncleanLeaderElectionEnabled = uncleanLeaderElectionEnabled
        self.defaultMinInSyncReplicas = defaultMinInSyncReplicas
        self.producerIDBlockSize = producerIDBlockSize
    }
}

/// What the controller decided: the records to append to the metadata log (as one batch, in
/// order) and the reply to give once they are committed.
///
/// The reply may describe state that exists only in records not yet committed (its own, or those of
/// earlier results). Send it once every record proposed so far, up to and including these, is
/// committed; if leadership is lost first, drop it (the broker retries with the new controller).
public struct ControllerResult<Reply: Sendable>: Sendable {
    public var records: [MetadataRecord]
    public var reply: Reply

    public init(records: [MetadataRecord], reply: Reply) {
        self.records = records
        self.reply = reply
    }
}

extension ControllerResult: Equatable where Reply: Equatable {}
