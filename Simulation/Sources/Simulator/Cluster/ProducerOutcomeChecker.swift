import Client
import KafkaProtocol
import SimWorld
import TernCore

/// An idempotent producer in a cluster that keeps a quorum never gives up on a record, and in the
/// end every record it was given is acknowledged.
///
/// "Keeps a quorum" is checkable here: with the safe settings (a replica counts an offset only
/// once it is synced, unclean leader election off) every fault the nemesis injects leaves a
/// quorum of intact copies of everything acknowledged and of every producer's state — crashes,
/// kills and pauses take a minority at once; a coordinated power loss may take every machine but
/// loses only unsynced data, never acknowledged; latent corruption hits fewer replicas than
/// `min.insync.replicas` — and the liveness phase heals everything and answers every produce.
/// So in every profile the producer must never see a fatal error: OUT_OF_ORDER_SEQUENCE_NUMBER
/// on its oldest unacknowledged batch, UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH or any other
/// error that fails a partition (the producer has no delivery timeout: a retriable error is
/// retried until it succeeds). Under an unsafe setting (`--unclean-leader-election`,
/// `--durability page-cache`) the premise does not hold and the checker is expected to fire.
///
/// Checked at the end of the run, after the checkers that name data loss directly (a lost
/// acknowledged write also makes the producer's next sequence look out of order), with the time
/// of the first failure:
/// - no record was reported failed, and no send was refused because its partition or the
///   producer had failed (a full buffer is back-pressure and is only counted);
/// - once converged (every record answered), the records acknowledged are exactly those given.
public final class ProducerOutcomeChecker: SimulationChecker {
    public let name = "producer-outcome"
    public private(set) var summary = ProducerOutcomeSummary()

    private let retainedTopics: Set<String>

    public init(retainedTopics: Set<String> = []) {
        self.retainedTopics = retainedTopics
    }

    public func periodically(in simulation: SimulationView) -> CheckResult {
        if let producer = simulation.node(ClusterLayout.producerClientID, as: ProducerClientNode.self) {
            summary = ProducerOutcomeSummary(producer)
        }
        return .ok
    }

    public func atEnd(of simulation: SimulationView) -> CheckResult {
        guard let producer = simulation.node(ClusterLayout.producerClientID, as: ProducerClientNode.self) else {
            return .violation("the producer client is not running at the end of the run")
        }
        summary = ProducerOutcomeSummary(producer)
        return Self.check(failed: producer.failed, refused: producer.otherRefusals, summary: summary,
                          retainedTopics: retainedTopics)
    }

    /// The pure rule over what the producer client reported.
    ///
    /// One kind of failure is allowed, on `retainedTopics` only (with the records of its partition
    /// failed with it, and the sends refused because of it): a record possibly written and not
    /// yet acknowledged when retention deleted it, given up with UNKNOWN_PRODUCER_ID (a leader
    /// rebuilt past the deletion no longer knows the producer) or OUT_OF_ORDER_SEQUENCE_NUMBER (a
    /// leader that knows its later batches no longer holds this one).
    public static func check(failed: [FailedRecord], refused: [RefusedRecord], summary: ProducerOutcomeSummary,
                             retainedTopics: Set<String> = []) -> CheckResult {
        func excuses(_ record: FailedRecord) -> Bool {
            record.possiblyWritten && retainedTopics.contains(record.topicPartition.topic)
                && (record.error == .unknownProducerID || record.error == .outOfOrderSequenceNumber)
        }
        // The records failed with it (the partition fails as a whole) are excused with it.
        struct PartitionFailure: Hashable { let topicPartition: TopicPartition, error: KafkaErrorCode }
        let excusedFailures = Set(failed.filter(excuses).map { PartitionFailure(topicPartition: $0.topicPartition, error: $0.error) })
        func isExcused(_ record: FailedRecord) -> Bool {
            excusedFailures.contains(PartitionFailure(topicPartition: record.topicPartition, error: record.error))
        }
        let excused = failed.filter(isExcused).count
        let failed = failed.filter { !isExcused($0) }
        if let first = failed.first {
            let written = first.possiblyWritten ? "possibly written" : "not written"
            return .violation("\(first.topicPartition): the idempotent producer gave up on value \(first.value) at "
                + "\(formatFixed((first.time - .zero).seconds, places: 3)) s (client clock) with \(first.error) (\(written)); "
                + "\(failed.count) records failed in all")
        }
        // Sends refused because such a partition had failed are excused with it.
        let refused = refused.filter { record in
            guard case let .partitionFailed(code) = record.error else { return true }
            return !excusedFailures.contains(PartitionFailure(topicPartition: record.topicPartition, error: code))
        }
        if let first = refused.first {
            return .violation("\(first.topicPartition): the producer refused value \(first.value) at "
                + "\(formatFixed((first.time - .zero).seconds, places: 3)) s (client clock): \(first.error)")
        }
        guard summary.unfinished == 0 else { return .ok }  // the liveness check names what is missing
        guard summary.acknowledged + excused == summary.given else {
            return .violation("the producer was given \(summary.given) records and all were answered, "
                + "but \(summary.acknowledged) were acknowledged (\(excused) given up after retention)")
        }
        return .ok
    }
}

/// Counts of what happened to the records the producer client was asked to send.
public struct ProducerOutcomeSummary: Sendable, Equatable, CustomStringConvertible {
    /// Records the producer accepted (refused sends are not given).
    public var given = 0
    public var acknowledged = 0
    public var failed = 0
    public var unfinished = 0
    public var bufferFullRefusals = 0
    public var otherRefusals = 0
    /// The fullest in-flight window a burst's partition reached, and the producer's limit.
    public var fullestBurstWindow = 0
    public var maximumInFlightPerPartition = 0

    public init(given: Int = 0, acknowledged: Int = 0, failed: Int = 0, unfinished: Int = 0,
                bufferFullRefusals: Int = 0, otherRefusals: Int = 0) {
        self.given = given
        self.acknowledged = acknowledged
        self.failed = failed
        self.unfinished = unfinished
        self.bufferFullRefusals = bufferFullRefusals
        self.otherRefusals = otherRefusals
    }

    init(_ producer: ProducerClientNode) {
        self.init(given: Int(producer.nextValue) - producer.refusedSends, acknowledged: producer.acknowledged.count,
                  failed: producer.failed.count, unfinished: producer.unfinishedRecords,
                  bufferFullRefusals: producer.bufferFullRefusals, otherRefusals: producer.refusedSends - producer.bufferFullRefusals)
        fullestBurstWindow = producer.fullestBurstWindow
        maximumInFlightPerPartition = producer.maximumInFlightPerPartition
    }

    public var description: String {
        var text = "\(acknowledged) of \(given) records acknowledged, \(failed) failed"
        if unfinished > 0 { text += ", \(unfinished) unfinished" }
        if bufferFullRefusals > 0 || otherRefusals > 0 {
            text += ", refused \(bufferFullRefusals) (buffer full) + \(otherRefusals) (failed partition or producer)"
        }
        if fullestBurstWindow > 0 {
            text += "; bursts filled \(fullestBurstWindow) of \(maximumInFlightPerPartition) in-flight batches"
        }
        return text
    }
}
