import Controller
import KafkaProtocol
import LogStorage
import TernCore

/// Which writes count toward the high watermark.
public enum DurabilityPolicy: Sendable, Equatable {
    /// An offset counts on a replica only once it is synced there (followers report their durable
    /// offset; the leader uses its log's `durableOffset`). Tern's default: an acknowledged
    /// `acks=all` write survives even a coordinated power loss of every replica.
    case synced
    /// An offset counts once it is in a replica's page cache (log end offsets), as in Kafka's
    /// default. UNSAFE under coordinated power loss: every replica may lose an acknowledged write.
    case pageCache
}

/// Replication settings of a partition (Kafka's names).
public struct ReplicationConfiguration: Sendable, Equatable {
    /// `min.insync.replicas`
    public var minInSyncReplicas: Int = 1
    /// `replica.lag.time.max.ms`
    public var replicaLagTimeMax: Duration = .seconds(30)
    public var durabilityPolicy: DurabilityPolicy = .synced
    /// `replica.fetch.max.bytes`: how much one follower fetch returns (the first batch always whole).
    public var maximumFetchBytes: Int = 1 << 20

    public init(minInSyncReplicas: Int = 1, replicaLagTimeMax: Duration = .seconds(30),
                durabilityPolicy: DurabilityPolicy = .synced, maximumFetchBytes: Int = 1 << 20) {
        precondition(minInSyncReplicas >= 1, "min.insync.replicas is at least 1")
        self.minInSyncReplicas = minInSyncReplicas
        self.replicaLagTimeMax = replicaLagTimeMax
        self.durabilityPolicy = durabilityPolicy
        self.maximumFetchBytes = maximumFetchBytes
    }
}

/// A Produce request's `acks`.
public enum Acks: Int16, Sendable, Equatable {
    case none = 0
    case leader = 1
    case all = -1
}

/// Names one `acks=all` append waiting for the high watermark.
public struct AppendTicket: TypedInteger {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
}

/// What `appendClientBatch` did.
public enum AppendOutcome: Equatable, Sendable {
    /// Appended and answered now (acks 0 or 1, or acks=all already covered by the high watermark).
    case completed(AppendInfo, error: KafkaErrorCode)
    /// Appended with acks=all: the answer comes later as an `AppendCompletion` with this ticket.
    case pending(AppendInfo, AppendTicket)
    /// Not appended. `logError` says why when the log refused it.
    case rejected(KafkaErrorCode, logError: LogError?)
}

/// The answer to an `acks=all` append that was pending.
public struct AppendCompletion: Equatable, Sendable {
    public var ticket: AppendTicket
    public var firstOffset: Offset
    public var lastOffset: Offset
    /// `.none`, `.notEnoughReplicasAfterAppend`, or `.notLeaderOrFollower` (leadership lost).
    public var error: KafkaErrorCode
}

/// An ISR change the leader asks the controller to commit (AlterPartition, compare-and-set on
/// `partitionEpoch`). It takes effect only through `applyCommittedPartitionState`.
public struct AlterPartitionProposal: Equatable, Sendable {
    public var leaderEpoch: LeaderEpoch
    public var partitionEpoch: PartitionEpoch
    public var newISR: [NodeID]
}

/// What a call changed that its caller must act on.
public struct ReplicaUpdate: Equatable, Sendable {
    /// `acks=all` appends now answered.
    public var completions: [AppendCompletion] = []
    /// A new ISR change to send to the controller.
    public var proposal: AlterPartitionProposal?
    /// The high watermark moved (parked consumer fetches may be answered).
    public var highWatermarkChanged = false
    /// The log refused an operation (other than a pending durability barrier, which is retried).
    public var logError: LogError?

    public init() {}
}

/// The role of a replica.
public enum ReplicaRole: Equatable, Sendable {
    case none
    case leader
    case follower(leader: NodeID)
}

/// The per-partition replication state machine of one broker: pure, events in, decisions out.
///
/// As leader it appends client batches, answers follower fetches (with a KIP-320 diverging epoch
/// when the follower's log has left the leader's), keeps the high watermark at the minimum counted
/// offset over the ISR (see `DurabilityPolicy`), completes `acks=all` appends, and proposes ISR
/// shrinks and expansions. As follower it says what to fetch next and applies the answers,
/// truncating by leader epoch, never to its own high watermark.
///
/// The owner routes this log's sync completions through `handleSyncCompletion` (so the leader's
/// durable offset can move the high watermark) and calls `flush()` once per event-loop turn.
public final class PartitionReplica {
    public let localID: NodeID
    public let log: PartitionLog
    public let configuration: ReplicationConfiguration

    public internal(set) var role: ReplicaRole = .none
    /// The latest leader epoch this replica knows of.
    public internal(set) var leaderEpoch: LeaderEpoch = .none
    public internal(set) var partitionEpoch = PartitionEpoch(-1)
    public internal(set) var replicas: [NodeID] = []
    /// The ISR committed by the controller.
    public internal(set) var isr: [NodeID] = []
    /// The ISR change sent to the controller and not yet answered.
    public internal(set) var pendingProposal: AlterPartitionProposal?
    /// Members a sent AlterPartition would have added although its outcome never came back (its
    /// answer lost or timed out, or a retry refused after the first attempt committed), with the
    /// partition epoch it was based on. The controller may have added them, so they count like
    /// pending additions until the leader learns a committed state of a later partition epoch.
    public internal(set) var unresolvedAdditions: (members: [NodeID], basedOn: PartitionEpoch)?
    /// The log end offset when this replica became leader: where its epoch starts.
    public internal(set) var leaderEpochStartOffset = Offset.unknown
    /// The data losses the controller recorded for this partition's replicas, as the leader last
    /// learned them (see `ReplicaDataLoss`).
    public internal(set) var dataLoss: [ReplicaDataLoss] = []
    /// The recorded loss of this replica (its `markedAt`) whose data this process has discarded;
    /// -1 if none. Followers name it in every fetch.
    public var acknowledgedLoss = PartitionEpoch(-1)
    /// Kafka's ISR eligibility, from the metadata image the broker follows: the brokers that are
    /// registered, unfenced and not in controlled shutdown, with their broker epochs. Nil until
    /// the owner sets it; every replica is then eligible (which waits for more replicas, never
    /// fewer).
    public internal(set) var eligibleBrokerEpochs: [NodeID: BrokerEpoch]?

    var followers: [NodeID: FollowerState] = [:]
    var pendingAppends: [PendingAppend] = []
    var nextTicket: UInt64 = 1
    /// Completions produced by calls that return no `ReplicaUpdate`, handed out by the next one.
    var deferredCompletions: [AppendCompletion] = []

    public init(localID: NodeID, log: PartitionLog, configuration: ReplicationConfiguration = ReplicationConfiguration()) {
        self.localID = localID
        self.log = log
        self.configuration = configuration
    }

    public var isLeader: Bool { role == .leader }
    public var highWatermark: Offset { log.highWatermark }
    public var logEndOffset: Offset { log.logEndOffset }

    /// The ISR used for the high watermark: the committed ISR plus any pending additions (Kafka's
    /// "maximal ISR"), in replica order.
    public var maximalISR: [NodeID] {
        let proposed = (pendingProposal?.newISR ?? []) + (unresolvedAdditions?.members ?? [])
        var members = isr
        for id in proposed where !members.contains(id) { members.append(id) }
        return ordered(members, by: replicas)
    }

    // MARK: Roles

    /// Becomes leader for `leaderEpoch` with the controller's committed state. An older epoch is
    /// ignored; the current one, when already leader, only updates the ISR and partition epoch.
    @discardableResult
    public func becomeLeader(leaderEpoch: LeaderEpoch, partitionEpoch: PartitionEpoch, replicas: [NodeID],
                             isr: [NodeID], dataLoss: [ReplicaDataLoss] = [], now: Instant) -> ReplicaUpdate {
        if leaderEpoch < self.leaderEpoch { return ReplicaUpdate() }
        if leaderEpoch == self.leaderEpoch {
            guard role == .leader else { return ReplicaUpdate() }
            if partitionEpoch > self.partitionEpoch { adoptReplicas(replicas, now: now) }
            return applyCommittedPartitionState(isr: isr, leaderEpoch: leaderEpoch, partitionEpoch: partitionEpoch,
                                                dataLoss: dataLoss, now: now)
        }
        precondition(replicas.contains(localID), "a leader is one of the partition's replicas")
        var update = ReplicaUpdate()
        update.completions = takeDeferred()
        self.role = .leader
        self.leaderEpoch = leaderEpoch
        self.partitionEpoch = partitionEpoch
        self.replicas = replicas
        self.isr = ordered(isr, by: replicas)
        self.dataLoss = dataLoss
        self.pendingProposal = nil
        self.unresolvedAdditions = nil
        self.leaderEpochStartOffset = log.logEndOffset
        followers = [:]
        for id in replicas where id != localID {
            followers[id] = FollowerState(lastCaughtUpTime: isr.contains(id) ? now : nil)
        }
        // An unclean leader may have an empty or short log; it still leads from what it has.
        update.merge(recomputeHighWatermark(now: now))
        return update
    }

    /// A reassignment changed the replica set within the epoch: new replicas are tracked from
    /// scratch (they join the ISR once caught up), removed ones are forgotten.
    func adoptReplicas(_ newReplicas: [NodeID], now: Instant) {
        guard newReplicas != replicas, newReplicas.contains(localID) else { return }
        replicas = newReplicas
        for id in followers.keys.sorted() where !newReplicas.contains(id) { followers[id] = nil }
        for id in newReplicas where id != localID && followers[id] == nil {
            followers[id] = FollowerState(lastCaughtUpTime: nil)
        }
    }

    /// The metadata image changed which brokers may be in the ISR (a broker was fenced, began a
    /// controlled shutdown, registered again or returned). A leader may then stop waiting for a
    /// caught-up replica outside the ISR.
    @discardableResult
    public func updateEligibleBrokers(_ epochs: [NodeID: BrokerEpoch], now: Instant) -> ReplicaUpdate {
        var update = ReplicaUpdate()
        update.completions = takeDeferred()
        guard epochs != eligibleBrokerEpochs else { return update }
        eligibleBrokerEpochs = epochs
        update.merge(recomputeHighWatermark(now: now))
        return update
    }

    /// Follows `leader` in `leaderEpoch`. An older epoch is ignored. Pending `acks=all` appends
    /// fail with NOT_LEADER_OR_FOLLOWER.
    @discardableResult
    public func becomeFollower(leader: NodeID, leaderEpoch: LeaderEpoch, now: Instant) -> ReplicaUpdate {
        precondition(leader != localID, "use becomeLeader to lead")
        if leaderEpoch < self.leaderEpoch { return ReplicaUpdate() }
        if leaderEpoch == self.leaderEpoch, role == .follower(leader: leader) { return ReplicaUpdate() }
        if leaderEpoch == self.leaderEpoch, role == .leader { return ReplicaUpdate() }
        var update = ReplicaUpdate()
        update.completions = takeDeferred()
        update.completions += failAllPending(with: .notLeaderOrFollower)
        role = .follower(leader: leader)
        self.leaderEpoch = leaderEpoch
        pendingProposal = nil
        unresolvedAdditions = nil
        followers = [:]
        leaderEpochStartOffset = .unknown
        return update
    }

    /// Stops replicating (partition deleted or reassigned away): pending appends fail.
    @discardableResult
    public func stopReplica() -> ReplicaUpdate {
        var update = ReplicaUpdate()
        update.completions = takeDeferred() + failAllPending(with: .notLeaderOrFollower)
        role = .none
        pendingProposal = nil
        unresolvedAdditions = nil
        followers = [:]
        return update
    }

    /// `ids` in replica order, then any not among `replicas` in id order: deterministic.
    func ordered(_ ids: [NodeID], by replicas: [NodeID]) -> [NodeID] {
        var result = replicas.filter { ids.contains($0) }
        for id in ids.sorted() where !result.contains(id) { result.append(id) }
        return result
    }

    // MARK: Durability

    /// Requests a sync of what was appended since the last flush (once per event-loop turn).
    public func flush() { log.flush() }

    /// Feeds one of this log's sync completions; the leader's durable offset may move the high
    /// watermark. `handled` is false when the completion is not this log's.
    public func handleSyncCompletion(_ completion: SyncCompletion, now: Instant) -> (handled: Bool, update: ReplicaUpdate) {
        let handled = log.handle(completion)
        guard handled else { return (false, ReplicaUpdate()) }
        var update = ReplicaUpdate()
        update.completions = takeDeferred()
        if role == .leader { update.merge(recomputeHighWatermark(now: now)) }
        return (true, update)
    }

    func takeDeferred() -> [AppendCompletion] {
        defer { deferredCompletions = [] }
        return deferredCompletions
    }

    func failAllPending(with error: KafkaErrorCode) -> [AppendCompletion] {
        defer { pendingAppends = [] }
        return pendingAppends.map { $0.completion(error) }
    }
}

extension ReplicaUpdate {
    mutating func merge(_ other: ReplicaUpdate) {
        completions += other.completions
        if let proposal = other.proposal { self.proposal = proposal }
        highWatermarkChanged = highWatermarkChanged || other.highWatermarkChanged
        if let error = other.logError { logError = error }
    }
}

/// What the leader knows of one follower.
struct FollowerState {
    /// The follower's log end offset: its last fetch offset (unknown until it fetches in this epoch).
    var logEndOffset = Offset.unknown
    /// The offset below which the follower reported its log durable.
    var durableOffset = Offset.unknown
    /// Last time the follower had everything the leader had (nil: never in this epoch).
    var lastCaughtUpTime: Instant?
    var lastFetchTime: Instant?
    var leaderEndOffsetAtLastFetch = Offset.unknown
    /// The follower's log start offset, as its last fetch reported it (unknown until one does).
    var logStartOffset = Offset.unknown
    /// The broker epoch of the process that fetched last (nil until one says).
    var brokerEpoch: BrokerEpoch?
    /// The highest recorded loss the follower's fetches said it had discarded its data for: a
    /// fetch naming an older one was sent before that discard, and its positions are stale.
    var acknowledgedLoss = PartitionEpoch(-1)

    init(lastCaughtUpTime: Instant?) { self.lastCaughtUpTime = lastCaughtUpTime }
}

/// An `acks=all` append waiting for the high watermark.
struct PendingAppend {
    var ticket: AppendTicket
    var firstOffset: Offset
    var lastOffset: Offset

    func completion(_ error: KafkaErrorCode) -> AppendCompletion {
        AppendCompletion(ticket: ticket, firstOffset: firstOffset, lastOffset: lastOffset, error: error)
    }
}
