import Broker
import Controller
import SimWorld
import TernCore

/// Follows one partition through a run for debugging a replayed seed (`tern simulate --watch`):
/// writes a line whenever the committed registration, a replica's state, the producer's
/// acknowledgements or the consumer's reads and events for it change. Never reports a violation.
public final class PartitionWatcher: SimulationChecker {
    public let name = "watch"
    private let topicPartition: TopicPartition
    private let layout: ClusterLayout
    private let write: (String) -> Void
    private var lastLines: [NodeID: String] = [:]
    private var lastRegistration = ""
    private var acknowledgedSeen = 0
    private var lastProducerView = ""
    private var consumedSeen = 0
    private var consumerEventsSeen = 0
    private var lastConsumerView = ""

    public init(topicPartition: TopicPartition, layout: ClusterLayout, write: @escaping (String) -> Void) {
        self.topicPartition = topicPartition
        self.layout = layout
        self.write = write
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        let time = formatSeconds(simulation.now)
        watchRegistration(simulation, time: time)
        for id in layout.brokerIDs {
            let line = replicaLine(simulation, id)
            if lastLines[id] != line {
                lastLines[id] = line
                write("\(time) n\(id) \(topicPartition) \(line)")
            }
        }
        if let producer = simulation.node(ClusterLayout.producerClientID, as: ProducerClientNode.self) {
            let known = producer.producer.metadata.leader(for: topicPartition)
            let unfinished = producer.producer.unfinishedPartitions.filter { $0.hasPrefix("\(topicPartition):") }
            let view = "producer \(topicPartition) sees leader \(known?.leaderID.map { "n\($0)" } ?? "none") epoch "
                + "\(known?.leaderEpoch ?? .none)\(known?.isStale == true ? " (stale)" : "") \(unfinished.first ?? "")"
            if view != lastProducerView {
                lastProducerView = view
                write("\(time) \(view)")
            }
            let writes = producer.acknowledged
            if writes.count > acknowledgedSeen {
                for ack in writes[acknowledgedSeen...] where ack.topicPartition == topicPartition {
                    write("\(time) producer \(topicPartition) acknowledged value \(ack.value) at offset \(ack.offset)")
                }
            }
            acknowledgedSeen = writes.count
        }
        if let consumer = simulation.node(ClusterLayout.consumerClientID, as: ConsumerClientNode.self) {
            watchConsumer(consumer, time: time)
        }
        return .ok
    }

    private func watchConsumer(_ consumer: ConsumerClientNode, time: String) {
        let known = consumer.consumer.metadata.leader(for: topicPartition)
        let view = "consumer \(topicPartition) sees leader \(known?.leaderID.map { "n\($0)" } ?? "none") epoch "
            + "\(known?.leaderEpoch ?? .none)\(known?.isStale == true ? " (stale)" : "")"
            + " position \(consumer.position(of: topicPartition).map { "\($0)" } ?? "unknown")"
        if view != lastConsumerView {
            lastConsumerView = view
            write("\(time) \(view)")
        }
        let records = consumer.consumed
        if records.count > consumedSeen {
            for record in records[consumedSeen...] where record.topicPartition == topicPartition {
                write("\(time) consumer \(topicPartition) read \(ConsumedRecordsChecker.describe(record.value)) at offset \(record.offset) (epoch \(record.leaderEpoch))")
            }
            consumedSeen = records.count
        }
        let events = consumer.events
        if events.count > consumerEventsSeen {
            for event in events[consumerEventsSeen...] { write("\(time) consumer event \(event)") }
            consumerEventsSeen = events.count
        }
    }

    private func watchRegistration(_ simulation: SimulationView, time: String) {
        guard let active = activeController(simulation, layout: layout), let registration = active.committedImage.topic(named: topicPartition.topic)?
            .partition(topicPartition.partition) else { return }
        var line = "leader \(registration.leader.map { "n\($0)" } ?? "none") epoch \(registration.leaderEpoch) "
            + "isr \(registration.isr.map { "n\($0)" }) partition-epoch \(registration.partitionEpoch)"
        if !registration.dataLoss.isEmpty {
            line += " lost " + registration.dataLoss.map { "n\($0.broker) from \($0.firstLostOffset) (recorded at \($0.markedAt))" }
                .joined(separator: ", ")
        }
        if line != lastRegistration {
            lastRegistration = line
            write("\(time) controller \(topicPartition) committed \(line)")
        }
    }

    private func replicaLine(_ simulation: SimulationView, _ id: NodeID) -> String {
        guard simulation.status(of: id) != .down else { return "down" }
        guard let replica = brokerPart(of: simulation.node(id))?.dataPlane.replica(for: topicPartition) else { return "not hosted" }
        let log = replica.log
        var line = "\(replica.role) epoch \(replica.leaderEpoch) log \(log.logStartOffset)..<\(log.logEndOffset) "
            + "durable \(log.durableOffset) HW \(log.highWatermark) epochs \(log.leaderEpochs.entries.map { "\($0.epoch)@\($0.startOffset)" })"
        if replica.isLeader { line += " isr \(replica.isr.map { "n\($0)" })" }
        if let corruption = log.corruption { line += " CORRUPT at \(corruption.offset) (\(corruption.reason))" }
        if replica.acknowledgedLoss.rawValue >= 0 { line += " discarded for loss recorded at \(replica.acknowledgedLoss)" }
        if log.failure != nil { line += " FAILED" }
        if log.hasDurabilityBarrier { line += " barrier" }
        let recovery = log.recoveryReport
        if recovery.truncatedBytes > 0 || recovery.segmentsDeleted > 0 {
            line += " (recovery cut \(recovery.truncatedBytes) bytes, \(recovery.segmentsDeleted) segments)"
        }
        return line
    }

    private func formatSeconds(_ instant: Instant) -> String {
        let nanoseconds = instant.nanoseconds
        let fraction = String(nanoseconds % 1_000_000_000)
        return "\(nanoseconds / 1_000_000_000)." + String(repeating: "0", count: 9 - fraction.count) + fraction
    }
}
