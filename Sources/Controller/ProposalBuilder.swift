import TernCore

/// Collects the records of one controller decision and applies each to a working copy of the image
/// as it goes, so later steps of the same decision see earlier ones (the second topic of a request
/// sees the first; a leader election sees the broker just fenced).
///
/// Applying every record here also checks the controller's own output against the image's
/// invariants: a record the image refuses is a controller bug, and stops the node.
struct ProposalBuilder {
    private(set) var image: MetadataImage
    private(set) var records: [MetadataRecord] = []
    /// Stand-in offsets for the working image; the real ones come when the records are replayed.
    private var workingOffset: Offset

    init(image: MetadataImage) {
        self.image = image
        self.workingOffset = image.offset
    }

    mutating func append(_ record: MetadataRecord) {
        workingOffset = workingOffset + 1
        do {
            try image.apply(record, at: workingOffset)
        } catch {
            preconditionFailure("the controller proposed a record its own image refuses (\(error)): \(record)")
        }
        records.append(record)
    }

    func result<Reply>(_ reply: Reply) -> ControllerResult<Reply> {
        ControllerResult(records: records, reply: reply)
    }
}

/// How a partition's leader is chosen when its ISR or its brokers change.
enum LeaderElection {
    /// Keep the current leader if it is still eligible and in the ISR; otherwise the first eligible
    /// ISR member in replica order; otherwise, if `unclean`, the first eligible replica (whose log
    /// becomes the truth: acknowledged records may be lost); otherwise no leader.
    case keepOrElect(unclean: Bool)
    /// The first replica, if it is eligible and in the ISR; otherwise no change of leader.
    case preferred
}

/// Kafka's PartitionChangeBuilder, reduced to what Tern needs: the record that takes a partition to
/// a target ISR with a leader chosen by `election`, or nil when nothing changes.
struct PartitionChangePlanner {
    let topicID: TopicID
    let partition: Int32
    let current: PartitionRegistration
    /// May this broker lead? (Unfenced, not shutting down, not about to be fenced.)
    let isEligibleLeader: (NodeID) -> Bool
    /// The ISR does not shrink below this many members (the partition's `min.insync.replicas`).
    var minimumISR = 1
    /// The data losses the change leaves recorded (`current.dataLoss` unless the change records or
    /// clears one).
    var dataLoss: [ReplicaDataLoss]

    init(topicID: TopicID, partition: Int32, current: PartitionRegistration, isEligibleLeader: @escaping (NodeID) -> Bool,
         minimumISR: Int = 1, dataLoss: [ReplicaDataLoss]? = nil) {
        self.topicID = topicID
        self.partition = partition
        self.current = current
        self.isEligibleLeader = isEligibleLeader
        self.minimumISR = minimumISR
        self.dataLoss = dataLoss ?? current.dataLoss
    }

    /// `targetISR` nil keeps the ISR. A target smaller than `minimumISR` keeps the members it
    /// would remove: while the ISR is that small the high watermark stands still, so each of them
    /// holds every committed record, and one of them is the only clean choice of leader when the
    /// others are gone. (Kafka gets there with a separate eligible-leader-replicas set, KIP-966;
    /// keeping them in the ISR gives the same guarantee with one set.) In particular the last
    /// member of an ISR stays in it when it dies, so it can come back as a clean leader.
    func change(targetISR: [NodeID]?, election: LeaderElection) -> PartitionChangeRecord? {
        var isr = targetISR ?? current.isr
        let floor = min(max(1, minimumISR), current.isr.count)
        if isr.count < floor {
            var kept = isr
            for member in current.isr where !kept.contains(member) && kept.count < floor { kept.append(member) }
            isr = current.isr.filter { kept.contains($0) } + isr.filter { !current.isr.contains($0) }
        }
        var leader: NodeID?
        switch election {
        case let .keepOrElect(unclean):
            leader = electClean(isr: isr)
            if leader == nil && unclean, let uncleanLeader = current.replicas.first(where: isEligibleLeader) {
                leader = uncleanLeader
                isr = [uncleanLeader]
            }
        case .preferred:
            let preferred = current.preferredLeader
            let mayLead = isEligibleLeader(preferred) && isr.contains(preferred) && !hasLostData(preferred)
            leader = mayLead ? preferred : current.leader
        }
        return record(isr: isr, leader: leader)
    }

    func hasLostData(_ broker: NodeID) -> Bool { dataLoss.contains { $0.broker == broker } }

    /// An ISR member that lost no data, the current leader first, then in replica order. When every
    /// member lost some, the one whose copy survives furthest: each member held every committed
    /// record before its loss and fewer than `min.insync.replicas` copies can have lost committed
    /// ones, so the furthest surviving copy holds them all — but only if it is compared with every
    /// member (one that cannot be asked now may hold more), so all of them must be eligible.
    private func electClean(isr: [NodeID]) -> NodeID? {
        if let leader = current.leader, isr.contains(leader), isEligibleLeader(leader), !hasLostData(leader) { return leader }
        if let intact = current.replicas.first(where: { isr.contains($0) && isEligibleLeader($0) && !hasLostData($0) }) {
            return intact
        }
        guard !isr.isEmpty, isr.allSatisfy(isEligibleLeader) else { return nil }
        let survivingEnd = { (broker: NodeID) in self.dataLoss.first { $0.broker == broker }?.firstLostOffset ?? .unknown }
        let furthest = isr.map(survivingEnd).max()!
        if let leader = current.leader, isr.contains(leader), survivingEnd(leader) == furthest { return leader }
        return current.replicas.first { isr.contains($0) && survivingEnd($0) == furthest }
    }

    /// The change, or nil when it changes nothing. A leader whose loss this change records starts a
    /// new leader epoch even if it stays: it discards data it may already have served in the old one.
    private func record(isr: [NodeID], leader: NodeID?) -> PartitionChangeRecord? {
        let leaderLoss = leader.flatMap { id in dataLoss.first { $0.broker == id } }
        let leaderLossIsNew = leaderLoss.map { $0 != current.dataLoss(of: $0.broker) } ?? false
        let leaderChanged = leader != current.leader || leaderLossIsNew
        let isrChanged = isr != current.isr
        let dataLossChanged = dataLoss != current.dataLoss
        guard leaderChanged || isrChanged || dataLossChanged else { return nil }
        let leaderChange: LeaderChange = leaderChanged ? (leader.map(LeaderChange.elected) ?? LeaderChange.none) : .unchanged
        return PartitionChangeRecord(
            topicID: topicID, partition: partition, leader: leaderChange, isr: isrChanged ? isr : nil,
            leaderEpoch: leaderChanged ? current.leaderEpoch.next : current.leaderEpoch,
            partitionEpoch: current.partitionEpoch.next, dataLoss: dataLossChanged ? dataLoss : nil)
    }
}
