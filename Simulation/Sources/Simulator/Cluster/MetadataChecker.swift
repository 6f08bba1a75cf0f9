import Broker
import Controller
import SimWorld
import TernCore

/// The metadata log as every node sees it:
/// - each controller's committed metadata entries are the same sequence (the reference);
/// - each controller's and each broker's image equals the reference image at the same offset;
/// - in every committed image, a partition's leader is in its ISR and is an unfenced broker;
/// - leader epochs and partition epochs only grow;
/// - a leader elected with a recorded data loss is the furthest surviving copy of an ISR whose
///   every member lost data and could be compared (see `electionProblem`).
public final class MetadataChecker: SimulationChecker {
    public let name = "metadata"
    public private(set) var reference: [PeerMessage.MetadataEntry] = []
    public private(set) var referenceImage = MetadataImage.empty
    private var digestAtOffset: [Offset: UInt64] = [:]
    private var epochs: [PartitionKey: (leader: LeaderEpoch, partition: PartitionEpoch)] = [:]
    private var checkedEntries: [NodeID: (incarnation: Int, count: Int)] = [:]
    /// The image offset last checked per node and role: an image is checked when it moves, not on
    /// every event (a digest covers the whole image).
    private var checkedImageOffsets: [ImageOwner: (incarnation: Int, offset: Offset)] = [:]

    struct ImageOwner: Hashable {
        let node: NodeID
        let isBroker: Bool
    }

    struct PartitionKey: Hashable {
        let topicID: TopicID
        let index: Int32
    }

    public init() {}

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        let node = simulation.node(delivered.nodeID)
        let incarnation = simulation.incarnation(of: delivered.nodeID)
        if let controller = controllerPart(of: node),
           isNew(controller.committedImage.offset, ImageOwner(node: delivered.nodeID, isBroker: false), incarnation) {
            let result = observeController(delivered.nodeID, incarnation: incarnation, entries: controller.committedEntries,
                                           image: controller.committedImage)
            if case .violation = result { return result }
        }
        if let broker = brokerPart(of: node), isNew(broker.image.offset, ImageOwner(node: delivered.nodeID, isBroker: true), incarnation) {
            return checkImage(broker.image, of: "broker n\(delivered.nodeID)")
        }
        return .ok
    }

    private func isNew(_ offset: Offset, _ owner: ImageOwner, _ incarnation: Int) -> Bool {
        if let checked = checkedImageOffsets[owner], checked.incarnation == incarnation, checked.offset == offset { return false }
        checkedImageOffsets[owner] = (incarnation, offset)
        return true
    }

    /// Extends the reference with a controller's newly committed entries (or checks them against it).
    public func observeController(_ node: NodeID, incarnation: Int, entries: [PeerMessage.MetadataEntry],
                                  image: MetadataImage) -> CheckResult {
        var from = 0
        if let checked = checkedEntries[node], checked.incarnation == incarnation { from = checked.count }
        for position in from..<entries.count {
            if position < reference.count {
                guard reference[position] == entries[position] else {
                    return .violation("controller n\(node) committed a different metadata entry at position \(position) (offset \(entries[position].offset))")
                }
            } else {
                if case let .violation(reason) = extendReference(with: entries[position]) { return .violation(reason) }
            }
        }
        checkedEntries[node] = (incarnation, entries.count)
        return checkImage(image, of: "controller n\(node)")
    }

    /// Appends one committed entry to the reference, checking the invariants of the new image.
    public func extendReference(with entry: PeerMessage.MetadataEntry) -> CheckResult {
        guard entry.offset == referenceImage.offset + 1 else {
            return .violation("metadata entry at offset \(entry.offset) does not follow \(referenceImage.offset)")
        }
        var next = referenceImage
        do {
            for (position, record) in entry.records.enumerated() { try next.apply(record, at: entry.offset + Int64(position)) }
        } catch {
            return .violation("committed metadata entry at \(entry.offset) does not apply: \(error)")
        }
        if case let .violation(reason) = checkInvariants(next) { return .violation(reason) }
        reference.append(entry)
        referenceImage = next
        digestAtOffset[next.offset] = next.digest
        return .ok
    }

    /// Leader ∈ ISR and unfenced; epochs never go backwards.
    public func checkInvariants(_ image: MetadataImage) -> CheckResult {
        for partition in image.partitions {
            let registration = partition.registration
            if let leader = registration.leader {
                guard registration.isr.contains(leader) else {
                    return .violation("\(partition.topicPartition): leader n\(leader) is not in its ISR \(registration.isr) at offset \(image.offset)")
                }
                guard let broker = image.broker(leader), !broker.isFenced else {
                    return .violation("\(partition.topicPartition): leader n\(leader) is fenced or unregistered at offset \(image.offset)")
                }
            }
            if let before = referenceImage.topic(id: partition.topicID)?.partition(partition.topicPartition.partition),
               let problem = Self.electionProblem(from: before, to: registration, isActive: image.isActive) {
                return .violation("\(partition.topicPartition): \(problem) at offset \(image.offset)")
            }
            let key = PartitionKey(topicID: partition.topicID, index: partition.topicPartition.partition)
            if let last = epochs[key], registration.leaderEpoch < last.leader || registration.partitionEpoch < last.partition {
                return .violation("\(partition.topicPartition): epochs went back from leader \(last.leader)/partition \(last.partition) to \(registration.leaderEpoch)/\(registration.partitionEpoch)")
            }
            epochs[key] = (registration.leaderEpoch, registration.partitionEpoch)
        }
        return .ok
    }

    /// The clean-election rule around recorded data losses: a leader elected (a new leader epoch)
    /// whose own loss is recorded leads only because every ISR member lost data, each of them
    /// could be compared (active), and its copy survives furthest. Unclean elections (the ISR reset
    /// to the new leader alone) are exempt: they may lose data by definition.
    public static func electionProblem(from before: PartitionRegistration, to after: PartitionRegistration,
                                       isActive: (NodeID) -> Bool) -> String? {
        guard after.leaderEpoch > before.leaderEpoch, let leader = after.leader, let loss = after.dataLoss(of: leader) else { return nil }
        if after.isr == [leader] && before.isr != [leader] { return nil }
        for member in after.isr {
            guard let other = after.dataLoss(of: member) else { return "n\(leader) was elected with a recorded data loss while ISR member n\(member) had none" }
            guard isActive(member) else { return "n\(leader) was elected with a recorded data loss while ISR member n\(member) could not be compared" }
            if other.firstLostOffset > loss.firstLostOffset {
                return "n\(leader) was elected with its copy surviving to \(loss.firstLostOffset) while n\(member)'s survives to \(other.firstLostOffset)"
            }
        }
        return nil
    }

    /// A node's image must be the reference image at its offset.
    public func checkImage(_ image: MetadataImage, of owner: String) -> CheckResult {
        guard image.offset != .unknown else { return .ok }
        guard let expected = digestAtOffset[image.offset] else {
            return .violation("\(owner) has an image at offset \(image.offset), which no committed entry ends at (reference at \(referenceImage.offset))")
        }
        guard image.digest == expected else {
            return .violation("\(owner)'s image at offset \(image.offset) differs from the committed log applied up to it")
        }
        return .ok
    }
}
