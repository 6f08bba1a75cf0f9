import Broker
import Controller
import NodeKit
import TernCore

/// One simulated run of a Tern cluster: the controller quorum, brokers and an admin client under a
/// fault profile, with the Raft and metadata checkers watching every event. Converged means: a
/// controller is active, every running broker is registered and unfenced in its committed image
/// and knows it, and the admin client created all its topics.
public struct ClusterSimulation {
    public var layout: ClusterLayout
    public var configuration: SimulationConfiguration

    public init(seed: UInt64, profile: FaultProfile, layout: ClusterLayout = ClusterLayout(),
                safetyPhase: Duration = .seconds(60), livenessPhase: Duration = .seconds(30)) {
        var layout = layout
        if layout.produceWorkload, layout.produceDuration == nil { layout.produceDuration = safetyPhase }
        self.layout = layout
        configuration = SimulationConfiguration(seed: seed, profile: profile, nodes: layout.nodes,
                                                safetyPhaseDuration: safetyPhase, livenessPhaseDuration: livenessPhase)
        // Latent corruption is repaired by re-fetching a partition from its leader. The metadata
        // quorum does not survive it yet (that needs two checksummed copies of term and vote, and
        // withholding votes until a corrupted log is re-replicated), so its files are spared.
        configuration.nemesis.isCorruptibleFile = { path in !path.contains("__cluster_metadata") }
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
    }

    public func run(traceSink: ((String) -> Void)? = nil) -> Outcome {
        let raft = RaftSafetyChecker()
        let metadata = MetadataChecker()
        let layout = self.layout
        var checkers: [any SimulationChecker] = [raft, metadata]
        let writes = layout.produceWorkload ? AcknowledgedWritesChecker(layout: layout) : nil
        if let writes { checkers.append(writes) }
        let report = Simulation.run(configuration, checkers: checkers,
                                    isConverged: { view in ClusterSimulation.isConverged(view, layout: layout) },
                                    traceSink: traceSink, makeNode: { layout.makeNode($0) })
        let records = metadata.reference.reduce(0) { $0 + $1.records.count }
        return Outcome(report: report, elections: raft.leaderTermCount, committedRaftEntries: raft.committed.count,
                       committedMetadataRecords: records, checkersRun: checkers.map(\.name) + ["liveness"],
                       acknowledgedWrites: writes?.acknowledgedCount ?? 0)
    }

    static func isConverged(_ view: SimulationView, layout: ClusterLayout) -> Bool {
        let controllers = layout.controllerIDs.compactMap { id -> ControllerNode? in
            guard view.status(of: id) == .running else { return nil }
            return controllerPart(of: view.node(id))
        }
        guard let active = controllers.first(where: { $0.isActiveController }) else { return false }
        for id in layout.brokerIDs where view.status(of: id) == .running {
            guard let broker = brokerPart(of: view.node(id)), broker.brokerEpoch != nil, !broker.isFenced,
                  let registration = active.committedImage.broker(id), !registration.isFenced else { return false }
        }
        guard let client = view.node(ClusterLayout.adminClientID, as: AdminClientNode.self) else { return false }
        guard client.createdTopics.count == layout.topics else { return false }
        return !layout.produceWorkload || isDataPlaneConverged(view, image: active.committedImage)
    }

    /// Every partition has a running leader that leads it at the committed epoch with its high
    /// watermark at its log end, and the producer has no unfinished record.
    static func isDataPlaneConverged(_ view: SimulationView, image: MetadataImage) -> Bool {
        guard let producer = view.node(ClusterLayout.producerClientID, as: ProducerClientNode.self),
              producer.unfinishedRecords == 0 else { return false }
        for partition in image.partitions {
            guard let leader = partition.registration.leader, view.status(of: leader) == .running,
                  let replica = brokerPart(of: view.node(leader))?.dataPlane.replica(for: partition.topicPartition),
                  replica.isLeader, replica.leaderEpoch == partition.registration.leaderEpoch,
                  replica.log.highWatermark == replica.log.logEndOffset else { return false }
        }
        return true
    }
}
