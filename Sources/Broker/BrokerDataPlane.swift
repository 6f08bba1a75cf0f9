import Controller
import KafkaProtocol
import LogStorage
import NodeKit
import TernCore

/// Settings of the broker's data plane (Kafka's names where Kafka has one).
public struct BrokerDataPlaneConfiguration: Sendable {
    /// Defaults for every partition; `min.insync.replicas` is taken from the topic's (or the
    /// cluster's) configuration in the metadata image when set there.
    public var replication = ReplicationConfiguration()
    public var log = LogConfiguration()
    /// `max.message.bytes`
    public var maximumMessageBytes = RecordBatch.defaultMaximumMessageBytes
    /// `replica.fetch.wait.max.ms`: how long the leader may park a follower's fetch that finds
    /// nothing new. A follower with unsynced data asks not to be parked, so the leader learns of
    /// its sync as soon as the sync completes.
    public var replicaFetchWaitMax: Duration = .milliseconds(500)
    /// After an error, or an unparked fetch that returned nothing, a follower waits this long (or
    /// until its own sync completes) before asking the same leader again.
    public var replicaFetchBackoff: Duration = .milliseconds(500)
    /// A follower fetch unanswered for this long is given up and sent again.
    public var replicaFetchTimeout: Duration = .milliseconds(2000)
    /// `replica.fetch.max.bytes` for a whole follower fetch request.
    public var replicaFetchMaxBytes: Int32 = 10 << 20
    /// Pause after a refused or lost AlterPartition or AllocateProducerIDs before trying again.
    public var controllerRetryBackoff: Duration = .milliseconds(200)
    public var controllerRequestTimeout: Duration = .milliseconds(2000)
    /// How often each log writes its recovery point and high watermark.
    public var checkpointInterval: Duration = .seconds(1)
    /// `log.retention.check.interval.ms`: how often a leader deletes what retention allows.
    public var retentionCheckInterval: Duration = .seconds(300)
    /// Bounds on requests waiting inside the broker; beyond them requests are refused at once
    /// (retriably) instead of queueing without limit.
    public var maximumParkedProduceRequests = 1024
    public var maximumParkedInitProducerIDRequests = 256
    public var maximumParkedDeleteRecordsRequests = 256
    /// Long-polling fetches (consumers' and followers') parked at once; past it, fetches are
    /// answered at once, empty if need be.
    public var maximumParkedFetchRequests = 4096
    /// `auto.create.topics.enable`: a Metadata request may create the topics it names.
    public var autoCreateTopicsEnabled = true

    public init() {}
}

/// One partition this broker hosts a replica of.
public final class HostedPartition {
    public let topicPartition: TopicPartition
    public let topicID: TopicID
    /// Which hosting of the partition by this process this is (they count up): a partition
    /// removed and hosted again, or deleted and created again under its name, is a new one.
    let hostingNumber: UInt64
    public let replica: PartitionReplica
    var log: PartitionLog { replica.log }
    /// The idempotence table, equal to what the log holds (see BrokerDataPlane+ProducerState).
    var producerState: ProducerStateTable
    /// The log start the table was built for: a restart of the log (truncateFully) rebuilds it.
    var producerStateLogStart: Offset
    /// The offset of the newest snapshot written (or found) for this log.
    var lastProducerSnapshot = Offset.zero
    /// An ISR change the replica proposed that is not yet sent to the controller.
    var unsentProposal: AlterPartitionProposal?
    var alterPartitionInFlight: InFlightControllerRequest?
    var alterPartitionRetryAt = Instant.zero

    init(topicPartition: TopicPartition, topicID: TopicID, hostingNumber: UInt64, replica: PartitionReplica,
         producerState: ProducerStateTable) {
        self.topicPartition = topicPartition
        self.topicID = topicID
        self.hostingNumber = hostingNumber
        self.replica = replica
        self.producerState = producerState
        self.producerStateLogStart = replica.log.logStartOffset
        self.lastProducerSnapshot = producerState.endOffset
    }
}

struct InFlightControllerRequest {
    let correlationID: UInt64
    let sentAt: Instant
}

/// The broker's data plane: the partition replicas it hosts (opened and given their roles from
/// the metadata image), the produce, fetch and other data requests from clients, fetching from
/// partition leaders as a follower, and ISR changes sent to the controller.
///
/// It runs inside `BrokerNode`'s event handling and, like it, is deterministic: partitions live
/// in a dictionary for lookup but are always walked in `hostedInOrder` (sorted by name).
public final class BrokerDataPlane {
    public let localID: NodeID
    public let configuration: BrokerDataPlaneConfiguration
    let disk: any Disk
    let dataDirectory: String

    /// The image the replicas were last reconciled with.
    public internal(set) var image = MetadataImage.empty
    /// Where controller requests go and the broker epoch they carry; kept current by `BrokerNode`.
    var controller: NodeID
    var brokerEpoch: BrokerEpoch?
    /// The time of day of the event under way (`BrokerNode` sets it from the shell's wall clock):
    /// what the logs stamp and roll by. Deadlines count in the monotonic `now` instead.
    public internal(set) var wallClock = Instant.zero
    let clusterID: String

    var partitions: [TopicPartition: HostedPartition] = [:]
    /// The hosted partitions sorted by name: every walk goes through this, never the dictionary
    /// (public for checkers, which look at every partition after every event).
    public internal(set) var hostedInOrder: [HostedPartition] = []
    /// The data directory was checked against the image (see `removeStrayDirectories`): partitions
    /// may be opened.
    var hasRemovedStrayDirectories = false
    /// Partition directories moved aside, waiting to be removed (at most one per directory the
    /// data directory holds).
    var directoryRemovals: [DirectoryRemoval] = []
    var nextRemovalRetryAt = Instant.zero
    /// An assigned partition could not be opened (or the data directory read): when to try again.
    var openRetryAt: Instant?

    /// One fetch in flight per leader broker, covering every partition followed from it.
    var replicaFetches: [NodeID: InFlightReplicaFetch] = [:]
    var replicaFetchNotBefore: [NodeID: Instant] = [:]

    var parkedProduces: [UInt64: ParkedProduce] = [:]
    var parkedProduceByTicket: [TopicPartition: [AppendTicket: UInt64]] = [:]
    var nextParkedProduceID: UInt64 = 1
    /// Parked produces settled during this event, answered at its end if nothing else is pending.
    var pendingProduceAnswers: [UInt64] = []

    /// Long-polling fetches waiting for data, in arrival order (ids increase).
    var parkedFetches: [UInt64: ParkedFetch] = [:]
    var nextParkedFetchID: UInt64 = 1
    /// Partitions a parked fetch may be waiting on that changed during this event: a leader
    /// appended or a high watermark moved (membership only, never iterated). Only the parked
    /// fetches naming one of them are read again, not every parked fetch on every append.
    var partitionsWithNewData: Set<TopicPartition> = []
    /// Roles may have changed (a new image): every parked fetch is read again.
    var everyParkedFetchNeedsRecheck = false

    var producerIDBlock: (next: Int64, end: Int64)?
    var parkedInitProducerIDs: [ParkedInitProducerID] = []
    var parkedDeleteRecords: [ParkedDeleteRecords] = []
    /// Answers made during this event, taken by the broker node at its end (`takeAnswers`).
    var answers: [DataPlaneAnswer] = []
    var allocateProducerIDsInFlight: InFlightControllerRequest?
    var allocateProducerIDsRetryAt = Instant.zero
    /// Topics Metadata requests asked to create, not yet sent; and those sent, by correlation id.
    var autoCreationsWanted: [String] = []
    var autoCreationsInFlight: [UInt64: AutoCreation] = [:]

    /// AlterPartition correlation id → partition.
    var alterPartitionRequests: [UInt64: TopicPartition] = [:]
    var nextCorrelationID: UInt64 = 1
    var nextHostingNumber: UInt64 = 0
    var nextCheckpointAt = Instant.zero
    var nextRetentionCheckAt = Instant.zero
    var exitRequested = false
    var highWatermarkMoved = false

    /// Data-plane correlation ids have the top bit set, so an answer to one can never be taken for
    /// an answer to the control plane's requests (which count up in `BrokerNode`).
    public static let correlationIDFlag: UInt64 = 1 << 63

    public init(localID: NodeID, clusterID: String, configuration: BrokerDataPlaneConfiguration, disk: any Disk,
                dataDirectory: String, controller: NodeID) {
        self.localID = localID
        self.clusterID = clusterID
        self.configuration = configuration
        self.disk = disk
        self.dataDirectory = dataDirectory
        self.controller = controller
    }

    /// The replica of a hosted partition (for inspection by tests and checkers).
    public func replica(for topicPartition: TopicPartition) -> PartitionReplica? { partitions[topicPartition]?.replica }
    /// The id of the topic whose partition is hosted under this name (for inspection by checkers).
    public func topicID(of topicPartition: TopicPartition) -> TopicID? { partitions[topicPartition]?.topicID }
    public var hostedPartitions: [TopicPartition] { hostedInOrder.map(\.topicPartition) }

    func takeCorrelationID() -> UInt64 {
        defer { nextCorrelationID += 1 }
        return Self.correlationIDFlag | nextCorrelationID
    }

    // MARK: Metadata image

    /// Opens a log and creates a replica for each partition assigned to this broker, gives each
    /// the role and ISR the image commits, and stops replicas no longer assigned.
    public func applyImage(_ image: MetadataImage, now: Instant, effects: inout [NodeEffect]) {
        self.image = image
        everyParkedFetchNeedsRecheck = true  // a parked fetch of a partition this broker no longer leads must hear so
        openRetryAt = nil
        guard hasRemovedStrayDirectories || removeStrayDirectories() else {
            openRetryAt = now + Self.openRetryBackoff
            return
        }
        hasRemovedStrayDirectories = true
        var assigned: Set<TopicPartition> = []  // membership only, never iterated
        for entry in image.partitions where entry.registration.replicas.contains(localID) {
            let topicPartition = entry.topicPartition
            if let existing = partitions[topicPartition], existing.topicID != entry.topicID {
                // The topic was deleted and created again under the same name: the old data goes.
                stopHosting(topicPartition, now: now)
            }
            guard let hosted = partitions[topicPartition] ?? openPartition(entry, now: now, effects: &effects) else {
                openRetryAt = now + Self.openRetryBackoff
                continue
            }
            assigned.insert(topicPartition)
            hosted.log.reconfigure(logConfiguration(for: entry.topicID))
            applyRegistration(entry.registration, to: hosted, now: now)
        }
        for hosted in hostedInOrder where !assigned.contains(hosted.topicPartition) {
            // Deleted, or (with reassignment) moved away: either way this broker's copy is no
            // longer part of the partition.
            stopHosting(hosted.topicPartition, now: now)
        }
    }

    /// Pause before trying again to open a partition that could not be opened.
    static let openRetryBackoff = Duration.seconds(1)

    private func openPartition(_ entry: PartitionEntry, now: Instant, effects: inout [NodeEffect]) -> HostedPartition? {
        let directory = joinPath(dataDirectory, entry.topicPartition.description)
        guard (try? disk.makeDirectory(dataDirectory)) != nil else { return nil }
        let log: PartitionLog
        do {
            log = try openLog(directory, topicID: entry.topicID)
        } catch let .topicIDMismatch(_, found, _) {
            // Another topic's directory under this name, whose removal failed or was never seen
            // (see `removeStrayDirectories`): moved aside, a new one takes the name.
            guard moveAside(directory, topicID: found), let fresh = try? openLog(directory, topicID: entry.topicID) else {
                return nil
            }
            requestRemovalSync()
            log = fresh
        } catch {
            // An unreadable disk or topic id: tried again later (a failed sync ends the process instead).
            return nil
        }
        var replication = configuration.replication
        if let minInSync = minInSyncReplicas(for: entry.topicPartition.topic) { replication.minInSyncReplicas = minInSync }
        nextHostingNumber += 1
        let hosted = HostedPartition(topicPartition: entry.topicPartition, topicID: entry.topicID, hostingNumber: nextHostingNumber,
                                     replica: PartitionReplica(localID: localID, log: log, configuration: replication),
                                     producerState: Self.loadProducerState(from: log, disk: disk))
        partitions[entry.topicPartition] = hosted
        hostedInOrder.append(hosted)
        hostedInOrder.sort { $0.topicPartition < $1.topicPartition }
        return hosted
    }

    private func openLog(_ directory: String, topicID: TopicID) throws(LogError) -> PartitionLog {
        try PartitionLog.open(directory: directory, topicID: topicID.description, configuration: logConfiguration(for: topicID),
                              disk: disk, wallClock: wallClock)
    }

    /// The broker's log settings with the topic's configs applied, as the image has them now.
    private func logConfiguration(for topicID: TopicID) -> LogConfiguration {
        var logConfiguration = TopicConfigValues.logConfiguration(configuration.log, topic: image.topic(id: topicID))
        logConfiguration.keepsInvalidTailForRepair = true
        return logConfiguration
    }

    private func minInSyncReplicas(for topic: String) -> Int? {
        let name = "min.insync.replicas"
        let value = image.topic(named: topic)?.config(name) ?? image.config(name, for: .broker(localID))
            ?? image.config(name, for: .cluster)
        return value.flatMap { Int($0) }.flatMap { $0 >= 1 ? $0 : nil }
    }

    private func applyRegistration(_ registration: PartitionRegistration, to hosted: HostedPartition, now: Instant) {
        let replica = hosted.replica
        // First the recorded loss, so a leader whose loss it is leads from what survives.
        discardRecordedLoss(registration, of: hosted, now: now)
        let update: ReplicaUpdate
        if registration.leader == localID {
            let ledEpochBefore = replica.isLeader ? replica.leaderEpoch : nil
            update = replica.becomeLeader(leaderEpoch: registration.leaderEpoch, partitionEpoch: registration.partitionEpoch,
                                          replicas: registration.replicas, isr: registration.isr,
                                          dataLoss: registration.dataLoss, now: now)
            if replica.isLeader, ledEpochBefore != replica.leaderEpoch {
                hosted.unsentProposal = nil
                hosted.alterPartitionInFlight = nil
            }
        } else if let leader = registration.leader {
            update = replica.becomeFollower(leader: leader, leaderEpoch: registration.leaderEpoch, now: now)
        } else {
            // Offline: nobody may accept writes until the controller elects a leader.
            update = replica.role == .none ? ReplicaUpdate() : replica.stopReplica()
        }
        if !replica.isLeader { hosted.unsentProposal = nil }
        handle(update, of: hosted, now: now)
        // Eligibility after the role and ISR: a leader deposed by this image must not move its
        // high watermark on the eligibility it brings (counted against its old ISR) first.
        var eligible: [NodeID: BrokerEpoch] = [:]
        for id in registration.replicas {
            if let broker = image.broker(id), broker.isActive { eligible[id] = broker.brokerEpoch }
        }
        handle(replica.updateEligibleBrokers(eligible, now: now), of: hosted, now: now)
    }

    /// The partition is no longer this broker's: its log stops at once (what it had in flight is
    /// dropped) and its directory is moved aside to be removed, freeing the name for a topic
    /// created again under it.
    private func stopHosting(_ topicPartition: TopicPartition, now: Instant) {
        guard let hosted = partitions.removeValue(forKey: topicPartition) else { return }
        hostedInOrder.removeAll { $0 === hosted }
        handle(hosted.replica.stopReplica(), of: hosted, now: now)
        hosted.log.closeForRemoval()
        moveAside(hosted.log.directory, topicID: hosted.topicID.description)
        requestRemovalSync()
    }

    // MARK: Replica updates

    /// Acts on what a replica call changed: answers finished `acks=all` produces, queues ISR
    /// proposals for the controller, and notes high-watermark moves.
    func handle(_ update: ReplicaUpdate, of hosted: HostedPartition, now: Instant) {
        for completion in update.completions {
            completeParkedProduce(hosted.topicPartition, ticket: completion.ticket, error: completion.error,
                                  baseOffset: completion.firstOffset)
        }
        if let proposal = update.proposal { hosted.unsentProposal = proposal }
        if update.highWatermarkChanged {
            highWatermarkMoved = true
            partitionsWithNewData.insert(hosted.topicPartition)
        }
    }

    // MARK: Disk

    /// Feeds a sync completion to the log that owns it. False when no hosted log does.
    public func handleSyncCompletion(_ completion: SyncCompletion, now: Instant) -> Bool {
        for hosted in hostedInOrder {
            let durableBefore = hosted.log.durableOffset
            let (handled, update) = hosted.replica.handleSyncCompletion(completion, now: now)
            if handled {
                handle(update, of: hosted, now: now)
                // The leader counts this replica's synced offset only once a fetch reports it:
                // report it now rather than after an idle fetch's pause.
                if case let .follower(leader) = hosted.replica.role, hosted.log.durableOffset > durableBefore {
                    replicaFetchNotBefore[leader] = nil
                }
                return true
            }
        }
        return handleRemovalSync(completion)
    }

    // MARK: Storage failures

    /// Replicas whose log lost (or may have lost) records it held: corruption a checksum caught, or
    /// an invalid tail after a crash (kept by `keepsInvalidTailForRepair`, since it may be synced
    /// data that rotted). Each is reported in every heartbeat, whatever this broker's image says,
    /// until the committed metadata records a loss covering it; only then is the data discarded
    /// (`discardRecordedLoss`), so no controller ever elects or counts this copy as if it still
    /// held it.
    public var dataLossReports: [ReplicaDataLossReport] {
        hostedInOrder.compactMap { hosted in
            let topicPartition = hosted.topicPartition
            guard let corruption = hosted.log.corruption else { return nil }
            let acknowledged = hosted.replica.acknowledgedLoss
            if let recorded = image.partition(topicID: hosted.topicID, index: topicPartition.partition)?.dataLoss(of: localID),
               recorded.firstLostOffset <= corruption.offset, recorded.markedAt != acknowledged {
                return nil  // recorded and not yet discarded: `discardRecordedLoss` takes it from here
            }
            return ReplicaDataLossReport(replica: ReplicaReference(topicID: hosted.topicID, partition: topicPartition.partition),
                                         firstLostOffset: corruption.offset, acknowledgedLoss: acknowledged)
        }
    }

    /// Discards this replica's log from the loss the committed image records for it (once per
    /// recorded loss and process: a restarted process discards again, not knowing what its
    /// predecessor did), then re-fetches, naming the loss in its fetches. A loss found below the
    /// recorded one waits for its own record. A leader gives up what it was doing first: appends
    /// waiting for the high watermark may sit on the data that goes.
    func discardRecordedLoss(_ registration: PartitionRegistration, of hosted: HostedPartition, now: Instant) {
        let replica = hosted.replica
        guard let loss = registration.dataLoss(of: localID), replica.acknowledgedLoss != loss.markedAt else { return }
        if let corruption = hosted.log.corruption, corruption.offset < loss.firstLostOffset { return }
        if replica.isLeader { handle(replica.stopReplica(), of: hosted, now: now) }
        do throws(LogError) {
            try hosted.log.discardFromCorruption()
            try replica.truncate(to: loss.firstLostOffset, wallClock: wallClock)
        } catch {
            return  // the disk failed: `finishEvent` restarts the process, which discards again
        }
        precondition(hosted.log.corruption == nil && hosted.log.logEndOffset <= max(loss.firstLostOffset, hosted.log.logStartOffset),
                     "a discarded loss leaves nothing of the lost data")
        replica.acknowledgedLoss = loss.markedAt
        syncProducerState(hosted)
    }

    // MARK: Timers and end of event

    public func tick(now: Instant, effects: inout [NodeEffect]) {
        for hosted in hostedInOrder {
            handle(hosted.replica.tick(now: now), of: hosted, now: now)
            if !hosted.replica.isLeader, let registration = image.partition(topicID: hosted.topicID, index: hosted.topicPartition.partition) {
                // A recorded loss that could not be discarded when the image came (a lower loss
                // found since had to be recorded first, or the disk refused).
                discardRecordedLoss(registration, of: hosted, now: now)
            }
            if let inFlight = hosted.alterPartitionInFlight, now - inFlight.sentAt >= configuration.controllerRequestTimeout {
                alterPartitionFailed(hosted, now: now)
            }
        }
        for leader in replicaFetches.keys.sorted() {
            if let fetch = replicaFetches[leader], now - fetch.sentAt >= configuration.replicaFetchTimeout {
                replicaFetches[leader] = nil
            }
        }
        if let inFlight = allocateProducerIDsInFlight, now - inFlight.sentAt >= configuration.controllerRequestTimeout {
            allocateProducerIDsInFlight = nil
        }
        expireAutoCreations(now: now)
        if let openRetryAt, now >= openRetryAt { applyImage(image, now: now, effects: &effects) }
        retryRemovals(now: now)
        expireParkedProduces(now: now)
        expireParkedInitProducerIDs(now: now)
        settleParkedDeleteRecords(now: now)
        answerParkedFetches(now: now, recheck: .expiredOnly)
        highWatermarkMoved = true  // completions handed out without an update may have moved it
        if now >= nextRetentionCheckAt {
            nextRetentionCheckAt = now + configuration.retentionCheckInterval
            applyRetention()
        }
        if now >= nextCheckpointAt {
            nextCheckpointAt = now + configuration.checkpointInterval
            for hosted in hostedInOrder {
                hosted.log.checkpoint()
                hosted.log.repairDamagedIdentity()
                snapshotProducerStateIfDue(hosted)
            }
        }
    }

    /// Leaders delete the segments retention allows; their followers learn the new log start from
    /// fetch answers and delete the same.
    private func applyRetention() {
        for hosted in hostedInOrder where hosted.replica.isLeader {
            if hosted.log.applyRetention(wallClock: wallClock) > 0 { syncProducerState(hosted) }
        }
    }

    /// Once at the end of every event: sync what was appended (group commit per event), answer
    /// what the high watermark now covers, and send follower fetches and controller requests.
    public func finishEvent(now: Instant, effects: inout [NodeEffect]) {
        for hosted in hostedInOrder {
            let log = hosted.log
            log.flush()
            if let failure = log.failure, !exitRequested {
                // A failed fsync leaves the page cache untrustworthy: restart and recover from disk.
                exitRequested = true
                effects.append(.exit(reason: "broker \(localID): log \(hosted.topicPartition) failed: \(failure)"))
            }
        }
        // Parked follower fetches re-read report positions again, which may move a high
        // watermark: answer them before settling the produces waiting on one.
        // What the re-reads themselves change is left for the next event's check.
        if everyParkedFetchNeedsRecheck {
            everyParkedFetchNeedsRecheck = false
            partitionsWithNewData.removeAll(keepingCapacity: true)
            answerParkedFetches(now: now, recheck: .every)
        } else if !partitionsWithNewData.isEmpty {
            let changed = partitionsWithNewData
            partitionsWithNewData.removeAll(keepingCapacity: true)
            answerParkedFetches(now: now, recheck: .reading(changed))
        }
        if highWatermarkMoved {
            highWatermarkMoved = false
            resolveHighWatermarkWaits()
        }
        sendFinishedProduces()
        settleParkedDeleteRecords(now: now)
        sendReplicaFetches(now: now, effects: &effects)
        sendAlterPartitions(now: now, effects: &effects)
        requestProducerIDBlockIfNeeded(now: now, effects: &effects)
        sendAutoCreations(now: now, effects: &effects)
    }

    // MARK: Controller requests

    private func sendAlterPartitions(now: Instant, effects: inout [NodeEffect]) {
        guard let brokerEpoch else { return }
        for hosted in hostedInOrder {
            guard let proposal = hosted.unsentProposal,
                  hosted.alterPartitionInFlight == nil, now >= hosted.alterPartitionRetryAt else { continue }
            let topicPartition = hosted.topicPartition
            hosted.unsentProposal = nil
            let correlationID = takeCorrelationID()
            hosted.alterPartitionInFlight = InFlightControllerRequest(correlationID: correlationID, sentAt: now)
            alterPartitionRequests[correlationID] = topicPartition
            // KIP-903: each member with the broker epoch it fetched with, so the controller refuses
            // to add a broker whose process has changed since.
            let members = proposal.newISR.map { id in
                id == localID
                    ? AlterPartitionRequest.ISRMember(brokerID: id, brokerEpoch: brokerEpoch, acknowledgedLoss: hosted.replica.acknowledgedLoss)
                    : AlterPartitionRequest.ISRMember(brokerID: id, brokerEpoch: hosted.replica.brokerEpoch(of: id) ?? BrokerEpoch(-1),
                                                      acknowledgedLoss: hosted.replica.vouchedAcknowledgedLoss(of: id))
            }
            let request = AlterPartitionRequest(brokerID: localID, brokerEpoch: brokerEpoch, partitions: [
                AlterPartitionRequest.Partition(topicID: hosted.topicID, partition: topicPartition.partition,
                                                leaderEpoch: proposal.leaderEpoch, partitionEpoch: proposal.partitionEpoch,
                                                newISR: members),
            ])
            effects.append(.send(to: controller, bytes: PeerMessage.controllerRequest(
                correlationID: correlationID, request: .alterPartition(request)).encoded()))
        }
    }

    /// Whether a controller answer is for one of the data plane's requests.
    public static func ownsCorrelationID(_ correlationID: UInt64) -> Bool { correlationID & correlationIDFlag != 0 }

    /// An answer from the controller to a data-plane request.
    public func handleControllerResponse(correlationID: UInt64, response: ControllerResponse, now: Instant,
                                         effects: inout [NodeEffect]) {
        switch response {
        case let .alterPartition(reply):
            guard let topicPartition = alterPartitionRequests.removeValue(forKey: correlationID),
                  let hosted = partitions[topicPartition], hosted.alterPartitionInFlight?.correlationID == correlationID else { return }
            hosted.alterPartitionInFlight = nil
            guard reply.error == .none,
                  let result = reply.partitions.first(where: { $0.topicID == hosted.topicID && $0.partition == topicPartition.partition }),
                  result.error == .none else {
                alterPartitionFailed(hosted, now: now)
                return
            }
            handle(hosted.replica.applyCommittedPartitionState(isr: result.isr, leaderEpoch: result.leaderEpoch,
                                                               partitionEpoch: result.partitionEpoch, dataLoss: result.dataLoss,
                                                               now: now),
                   of: hosted, now: now)
        case let .allocateProducerIDs(reply):
            guard allocateProducerIDsInFlight?.correlationID == correlationID else { return }
            allocateProducerIDsInFlight = nil
            guard reply.error == .none, reply.blockSize > 0 else {
                allocateProducerIDsRetryAt = now + configuration.controllerRetryBackoff
                return
            }
            producerIDBlock = (reply.blockStart.rawValue, reply.blockStart.rawValue + reply.blockSize)
            answerParkedInitProducerIDs()
        case .createTopics:
            forgetAutoCreation(correlationID)
        default:
            return
        }
    }

    /// The controller that was asked is not the active one: the request is lost.
    public func handleNotController(correlationID: UInt64, now: Instant) {
        if let topicPartition = alterPartitionRequests.removeValue(forKey: correlationID), let hosted = partitions[topicPartition],
           hosted.alterPartitionInFlight?.correlationID == correlationID {
            hosted.alterPartitionInFlight = nil
            alterPartitionFailed(hosted, now: now)
        }
        if allocateProducerIDsInFlight?.correlationID == correlationID {
            allocateProducerIDsInFlight = nil
            allocateProducerIDsRetryAt = now + configuration.controllerRetryBackoff
        }
        forgetAutoCreation(correlationID)
    }

    /// The replica proposes again (from its state then) on a later tick, after a pause.
    private func alterPartitionFailed(_ hosted: HostedPartition, now: Instant) {
        if let inFlight = hosted.alterPartitionInFlight { alterPartitionRequests[inFlight.correlationID] = nil }
        hosted.alterPartitionInFlight = nil
        hosted.unsentProposal = nil
        hosted.alterPartitionRetryAt = now + configuration.controllerRetryBackoff
        hosted.replica.proposalFailed()
    }
}
