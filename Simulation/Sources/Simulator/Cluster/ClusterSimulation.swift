import Broker
import Controller
import NodeKit
import SimWorld
import TernCore

/// One simulated run of a Tern cluster: the controller quorum, brokers and an admin client under a
/// fault profile, with the Raft and metadata checkers watching every event. Converged means: a
/// controller is active, every running broker is registered and unfenced in its committed image
/// and knows it, and the admin client created all its topics.
public struct ClusterSimulation {
    public var layout: ClusterLayout
    public var configuration: SimulationConfiguration
    /// Dimensions of the generated world fixed instead of drawn from the seed.
    public var worldChoices = GeneratedWorld.Choices()

    public init(seed: UInt64, profile: FaultProfile, layout: ClusterLayout = ClusterLayout(),
                safetyPhase: Duration = .seconds(60), livenessPhase: Duration = .seconds(30)) {
        var layout = layout
        if layout.produceWorkload, layout.produceDuration == nil { layout.produceDuration = safetyPhase }
        if layout.produceWorkload, layout.operatorActionsDuration == nil { layout.operatorActionsDuration = safetyPhase }
        if layout.plannedShutdownsEnd == nil { layout.plannedShutdownsEnd = safetyPhase }
        if profile.injectsOneFailure {
            // One broker failure and nothing else: no other broker leaves for a controlled
            // shutdown, and no operator moves leaders (a preferred election during the failure
            // sent the producer after the new leader, which the check is not about: seed 77).
            layout.plannedShutdownProbability = 0
            layout.operatorActionsDuration = .zero
        }
        self.layout = layout
        configuration = SimulationConfiguration(seed: seed, profile: profile, nodes: layout.nodes,
                                                safetyPhaseDuration: safetyPhase, livenessPhaseDuration: livenessPhase)
        if layout.plannedShutdownProbability > 0 {
            configuration.plannedShutdowns = PlannedShutdowns(probability: layout.plannedShutdownProbability,
                                                              end: layout.plannedShutdownsEnd.map { .zero + $0 })
        }
        // Latent corruption is repaired by re-fetching a partition from its leader. The metadata
        // quorum does not survive it yet (that needs two checksummed copies of term and vote, and
        // withholding votes until a corrupted log is re-replicated), so its files are spared.
        configuration.nemesis.isCorruptibleFile = { path in !path.contains("__cluster_metadata") }
        // An acks=all write is on min.insync.replicas synced replicas; rot in fewer of them than
        // that leaves an intact copy of every acknowledged record. (Rot in as many is data loss
        // in any replicated log, Kafka's included.)
        configuration.nemesis.corruptibleCandidates = layout.brokerIDs
        configuration.nemesis.corruptibleNodeCount = max(0, layout.minInSyncReplicas - 1)
    }

    public struct Outcome {
        public let report: SimulationReport
        /// Terms in which a Raft leader was seen.
        public let elections: Int
        public let committedRaftEntries: Int
        public let committedMetadataRecords: Int
        public let checkersRun: [String]
        /// Records the producer client had acknowledged when the acknowledged-writes checker ran.
        public var acknowledgedWrites = 0
        /// Operator actions the admin client completed, by kind.
        public var operatorActions: [String: Int] = [:]
        /// Records the consumer client had read when the consumed-records checker ran.
        public var consumedRecords = 0
        /// Fetch answers with records the consumed-records checker held against the brokers' HW.
        public var checkedConsumerFetches = 0
        /// The broker failure the write-availability checker judged, if its precondition held.
        public var writeAvailability: WriteAvailabilityWindow?
        /// The world the run was drawn into (storage, workload, election churn).
        public var world: GeneratedWorld?
        /// What happened to the producer client's records.
        public var producer = ProducerOutcomeSummary()
        /// Churn steps applied and skipped (their target was not there to fault in time).
        public var churnSteps = (taken: 0, skipped: 0)
        /// Batches of acks=all answers, and Raft messages, the durability oracle held against the disks.
        public var durableAcknowledgementsChecked = 0
        public var raftMessagesCheckedAgainstDisk = 0
        /// What the topic-incarnations checker saw of the recycled topic.
        public var recycledTopic = RecycledTopicCounts()
        /// The client that sent malformed frames, when the layout has one.
        public var malformedFrameClient: MalformedFrameClientNode?
        /// Lookups by timestamp the timestamp-lookups checker compared with the leader's files,
        /// and those it could not (a range that did not read cleanly).
        public var timestampLookups = (checked: 0, unchecked: 0)
        /// Topics the topic-creation checker saw created by a Metadata request alone.
        public var automaticallyCreatedTopics = 0
        /// Log start moves of retained topics the retention checker judged, on leaders and followers.
        public var retentionMoves = (leaders: 0, followers: 0)
    }

    public struct RecycledTopicCounts: Sendable {
        public var incarnations = 0
        public var checkedAnswers = 0
        public var checkedReplicaReads = 0
        public var checkedAcknowledgements = 0
        public var acknowledgedByAnEarlierIncarnation = 0
        /// Records a late produce request delivered to a later incarnation than they were meant for.
        public var writtenIntoALaterIncarnation = 0
        /// Acknowledged batches the durability oracle left unjudged: written to an incarnation
        /// deleted by the time the answer left.
        public var acknowledgedBatchesOfDeletedIncarnations = 0
    }

    /// The world this simulation runs in: drawn from the seed for the layout and configuration as
    /// they are now, with `worldChoices` fixed.
    public var world: GeneratedWorld {
        GeneratedWorld.draw(seed: configuration.seed, layout: layout, configuration: configuration, choices: worldChoices)
    }

    /// `watch` adds a `PartitionWatcher` writing to `watchSink`.
    public func run(traceSink: ((String) -> Void)? = nil, watch: TopicPartition? = nil,
                    watchSink: @escaping (String) -> Void = { print($0) }) -> Outcome {
        let raft = RaftSafetyChecker()
        let metadata = MetadataChecker()
        let world = self.world
        let layout = world.applied(to: self.layout)
        let configuration = world.applied(to: self.configuration, layout: layout)
        let creations = TopicCreationChecker(metadata: metadata, defaults: layout.controllerConfiguration)
        // After the metadata checker, whose committed image it reads.
        var checkers: [any SimulationChecker] = [raft, metadata, creations]
        let writes = layout.produceWorkload ? AcknowledgedWritesChecker(layout: layout) : nil
        if let writes { checkers.append(writes) }
        let retention = layout.produceWorkload ? RetentionChecker(layout: layout) : nil
        let consumed = layout.produceWorkload ? ConsumedRecordsChecker(layout: layout, retention: retention) : nil
        if let consumed { checkers.append(consumed) }
        if let retention { checkers.append(retention) }
        let availability = layout.produceWorkload ? WriteAvailabilityChecker(layout: layout) : nil
        let highWatermarks = layout.produceWorkload ? HighWatermarkChecker(layout: layout) : nil
        let timestampLookups = highWatermarks.map { TimestampLookupChecker(highWatermarks: $0) }
        if let highWatermarks, let timestampLookups, let availability {
            // The timestamp-lookups checker reads what the high-watermark checker saw before the
            // event, so it runs first.
            checkers += [timestampLookups, highWatermarks, ReplicaConsistencyChecker(layout: layout), availability]
        }
        let incarnations = layout.produceWorkload ? TopicIncarnationChecker(layout: layout, metadata: metadata) : nil
        if let incarnations { checkers.append(incarnations) }
        let durability = DurabilityOracle(layout: layout)
        checkers.append(durability)
        // After the checkers that name data loss: a lost write also breaks the producer's sequence.
        let producerOutcome = layout.produceWorkload ? ProducerOutcomeChecker(retainedTopics: Set(layout.retainedTopics.keys)) : nil
        if let producerOutcome { checkers.append(producerOutcome) }
        if let watch { checkers.append(PartitionWatcher(topicPartition: watch, layout: layout, write: watchSink)) }
        let operations = OperatorActionRecorder()
        checkers.append(operations)
        let churn = world.churn.bursts.isEmpty ? nil : ElectionChurnPlanner(plan: world.churn, layout: layout)
        let report = Simulation.run(configuration, checkers: checkers, faultPlanners: churn.map { [$0] } ?? [],
                                    isConverged: { view in ClusterSimulation.isConverged(view, layout: layout) },
                                    describeNonConvergence: { view in
                                        ClusterSimulation.convergenceProblem(view, layout: layout) ?? "converged at the very end"
                                    },
                                    traceSink: traceSink, makeNode: { layout.makeNode($0) })
        let records = metadata.reference.reduce(0) { $0 + $1.records.count }
        var outcome = Outcome(report: report, elections: raft.leaderTermCount, committedRaftEntries: raft.committed.count,
                              committedMetadataRecords: records,
                              checkersRun: checkers.map(\.name).filter { $0 != "watch" && $0 != "operator-actions" } + ["liveness"],
                              acknowledgedWrites: writes?.acknowledgedCount ?? 0, operatorActions: operations.completed,
                              consumedRecords: consumed?.consumedCount ?? 0, checkedConsumerFetches: consumed?.checkedAnswers ?? 0,
                              writeAvailability: availability?.window,
                              world: world, producer: producerOutcome?.summary ?? ProducerOutcomeSummary(),
                              churnSteps: (churn?.stepsTaken ?? 0, churn?.stepsSkipped ?? 0),
                              durableAcknowledgementsChecked: durability.acknowledgedBatchesChecked,
                              raftMessagesCheckedAgainstDisk: durability.raftMessagesChecked)
        outcome.malformedFrameClient = operations.malformedFrameClient
        outcome.timestampLookups = (timestampLookups?.checkedAnswers ?? 0, timestampLookups?.uncheckedAnswers ?? 0)
        outcome.automaticallyCreatedTopics = creations.automaticallyCreated
        if let retention { outcome.retentionMoves = (retention.leaderMoves, retention.followerMoves) }
        if let incarnations {
            outcome.recycledTopic = RecycledTopicCounts(
                incarnations: incarnations.incarnationsSeen, checkedAnswers: incarnations.checkedAnswers,
                checkedReplicaReads: incarnations.checkedReplicaReads, checkedAcknowledgements: incarnations.checkedAcknowledgements,
                acknowledgedByAnEarlierIncarnation: incarnations.acknowledgedByAnEarlierIncarnation,
                writtenIntoALaterIncarnation: incarnations.writtenIntoALaterIncarnation,
                acknowledgedBatchesOfDeletedIncarnations: durability.acknowledgementsOfDeletedTopics)
        }
        return outcome
    }

    static func isConverged(_ view: SimulationView, layout: ClusterLayout) -> Bool {
        convergenceProblem(view, layout: layout) == nil
    }

    /// The first thing that keeps the cluster from having converged, or nil when it has.
    static func convergenceProblem(_ view: SimulationView, layout: ClusterLayout) -> String? {
        guard let active = activeController(view, layout: layout) else { return "no active controller" }
        for id in layout.brokerIDs where view.status(of: id) == .running {
            guard let broker = brokerPart(of: view.node(id)), broker.brokerEpoch != nil else { return "broker n\(id) is not registered" }
            guard !broker.isFenced, let registration = active.committedImage.broker(id), !registration.isFenced else {
                return "broker n\(id) is fenced"
            }
        }
        guard let client = view.node(ClusterLayout.adminClientID, as: AdminClientNode.self),
              client.createdTopics.count == layout.topics else { return "the admin client has not created every topic" }
        return layout.produceWorkload ? dataPlaneProblem(view, image: active.committedImage) : nil
    }

    /// Every partition has a running leader that leads it at the committed epoch with its high
    /// watermark at its log end, every running replica that lost data has fetched it back, every
    /// running active replica is back in the ISR, the producer has no unfinished record, and the
    /// consumer has read every partition up to its leader's high watermark.
    static func dataPlaneProblem(_ view: SimulationView, image: MetadataImage) -> String? {
        guard let producer = view.node(ClusterLayout.producerClientID, as: ProducerClientNode.self) else {
            return "the producer client is down"
        }
        guard let consumer = view.node(ClusterLayout.consumerClientID, as: ConsumerClientNode.self) else {
            return "the consumer client is down"
        }
        guard producer.unfinishedRecords == 0 else {
            return "the producer has \(producer.unfinishedRecords) unfinished records: "
                + producer.producer.unfinishedPartitions.joined(separator: "; ")
        }
        if let admin = view.node(ClusterLayout.adminClientID, as: AdminClientNode.self), admin.recycler.unfinishedRecords > 0 {
            return "the operator has \(admin.recycler.unfinishedRecords) unfinished records for \(TopicRecycler.topicName)"
        }
        for partition in image.partitions {
            let topicPartition = partition.topicPartition
            guard let leader = partition.registration.leader else { return "\(topicPartition) has no leader" }
            guard !partition.registration.isReassigning else {
                return "\(topicPartition): the reassignment to \(partition.registration.targetReplicas.map { "n\($0)" }) is not done"
            }
            guard view.status(of: leader) == .running,
                  let replica = brokerPart(of: view.node(leader))?.dataPlane.replica(for: topicPartition),
                  replica.isLeader, replica.leaderEpoch == partition.registration.leaderEpoch else {
                return "\(topicPartition): n\(leader) does not lead it at epoch \(partition.registration.leaderEpoch) yet"
            }
            if let loss = partition.registration.dataLoss.first(where: { view.status(of: $0.broker) == .running }) {
                return "\(topicPartition): n\(loss.broker) has not fetched back what it lost from offset \(loss.firstLostOffset)"
            }
            // A replica kept out for good (one that never reports a loss it found, say) would
            // leave the partition one failure closer to losing data without any checker noticing.
            if let outside = partition.registration.replicas.first(where: { id in
                !partition.registration.isr.contains(id) && view.status(of: id) == .running && image.isActive(id)
            }) {
                return "\(topicPartition): n\(outside) is running and active but not back in the ISR \(partition.registration.isr.map { "n\($0)" })"
            }
            guard replica.log.highWatermark == replica.log.logEndOffset else {
                return "\(topicPartition): leader n\(leader)'s high watermark \(replica.log.highWatermark) is below its log end \(replica.log.logEndOffset) (ISR \(partition.registration.isr.map { "n\($0)" }))"
            }
            // The consumer reads the workload's partitions, not the operator's scratch topics.
            guard !consumer.partitions.contains(topicPartition)
                    || (consumer.position(of: topicPartition).map { $0 >= replica.log.highWatermark } ?? false) else {
                let position = consumer.position(of: topicPartition).map { "position \($0)" } ?? "no position"
                return "\(topicPartition): the consumer (\(position)) has not read up to leader n\(leader)'s high watermark \(replica.log.highWatermark)"
            }
        }
        return nil
    }
}

/// Keeps the admin client's count of completed operator actions, and the malformed-frame client
/// (clients never restart), for the run's summary.
final class OperatorActionRecorder: SimulationChecker {
    let name = "operator-actions"
    private(set) var completed: [String: Int] = [:]
    private(set) var malformedFrameClient: MalformedFrameClientNode?

    func periodically(in simulation: SimulationView) -> CheckResult {
        if let admin = simulation.node(ClusterLayout.adminClientID, as: AdminClientNode.self) { completed = admin.completedOperations }
        if simulation.nodeIDs.contains(ClusterLayout.malformedFrameClientID) {
            malformedFrameClient = simulation.node(ClusterLayout.malformedFrameClientID, as: MalformedFrameClientNode.self)
        }
        return .ok
    }
}
