import Broker
import Controller
import KafkaProtocol
import LogStorage
import SimWorld
import TernCore

/// ListOffsets by timestamp answers what the leader's log holds: for every answer to a lookup by
/// timestamp (or KIP-734's max timestamp, -3), the offset and timestamp are those of the first
/// record at or above the log start and below the high watermark whose timestamp reaches the one
/// asked for (the newest record, for -3), or -1 when no such record is committed. The expected
/// answer is worked out from the segment files as the leader's page cache holds them, record by
/// record, in the same event as the answer: independent of the index the broker searched, and
/// without reading through the log (a read may record corruption, which would change the run).
/// A range the files cannot be read through cleanly (a torn or rotten batch) is left unjudged,
/// as are compressed batches, which the broker answers at batch granularity.
///
/// The high watermark may move later in the event that handled the request (the end of an event
/// rechecks follower positions), so the answer may stand for any high watermark between the one
/// before that event (what the high-watermark checker saw of the same process, topic id and leader
/// epoch; the log start when it saw none) and the one after it. The answer itself may leave in a
/// later event (answers keep request order per connection): it is judged against those two.
public final class TimestampLookupChecker: SimulationChecker {
    public let name = "timestamp-lookups"
    let highWatermarks: HighWatermarkChecker
    private var traffic = ClientTraffic(apis: [.listOffsets])
    private var asked: [ClientExchange: [TopicPartition: Lookup]] = [:]
    /// Answers compared with the files, and answers that could not be (unreadable range).
    public private(set) var checkedAnswers = 0
    public private(set) var uncheckedAnswers = 0

    static let maximumOutstanding = 10_000

    init(highWatermarks: HighWatermarkChecker) {
        self.highWatermarks = highWatermarks
    }

    /// One partition of a lookup as the leader handled it: the time asked for, and the high
    /// watermarks before and after the event that handled it, of the hosting that did.
    struct Lookup {
        let target: Int64
        let topicID: TopicID
        let highWatermarkBefore: Offset
        let highWatermarkAfter: Offset
        /// Retention may delete records before the answer leaves: those lookups cannot be judged.
        let logStartOffset: Offset
    }

    public func afterEvent(_ delivered: DeliveredEvent, in simulation: SimulationView) -> CheckResult {
        if let (exchange, request) = traffic.request(in: delivered, simulation: simulation), case let .listOffsets(listOffsets) = request,
           let broker = brokerPart(of: simulation.node(delivered.nodeID)) {
            let lookups = self.lookups(in: listOffsets, at: delivered.nodeID, broker.dataPlane, incarnation: delivered.incarnation)
            if !lookups.isEmpty {
                precondition(asked.count < Self.maximumOutstanding, "more than \(Self.maximumOutstanding) lookups never answered")
                asked[exchange] = lookups
            }
        }
        for (exchange, response) in traffic.answers(in: delivered) {
            // An answer may leave events after its request was handled (answers keep request
            // order per connection): it is judged against the high watermarks of the handling.
            guard let lookups = asked.removeValue(forKey: exchange), case let .listOffsets(answer) = response,
                  let broker = brokerPart(of: simulation.node(delivered.nodeID)) else { continue }
            for topic in answer.topics {
                for partition in topic.partitions where partition.errorCode == 0 {
                    let topicPartition = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                    guard let lookup = lookups[topicPartition], let replica = broker.dataPlane.replica(for: topicPartition),
                          broker.dataPlane.topicID(of: topicPartition) == lookup.topicID else { continue }
                    guard replica.log.logStartOffset == lookup.logStartOffset else {
                        uncheckedAnswers += 1
                        continue
                    }
                    let records = Self.committedRecords(of: replica.log, below: lookup.highWatermarkAfter,
                                                        on: simulation.disk(of: delivered.nodeID))
                    guard let records else {
                        uncheckedAnswers += 1
                        continue
                    }
                    checkedAnswers += 1
                    let got = partition.offset < 0 ? nil : TimestampedOffset(offset: Offset(partition.offset), timestamp: partition.timestamp)
                    if let problem = Self.problem(got, target: lookup.target, records: records, highWatermarkBefore: lookup.highWatermarkBefore) {
                        return .violation("ListOffsets \(lookup.target) on \(topicPartition) from leader n\(delivered.nodeID): \(problem)")
                    }
                }
            }
        }
        return .ok
    }

    /// The partitions of a request that look up by time, with what the leader held around it.
    private func lookups(in request: KafkaWire.ListOffsetsRequest, at node: NodeID, _ dataPlane: BrokerDataPlane,
                         incarnation: Int) -> [TopicPartition: Lookup] {
        var lookups: [TopicPartition: Lookup] = [:]
        for topic in request.topics {
            for partition in topic.partitions where partition.timestamp >= 0 || partition.timestamp == ListOffsetsTimestamp.maxTimestamp {
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                guard let replica = dataPlane.replica(for: topicPartition), replica.isLeader,
                      let topicID = dataPlane.topicID(of: topicPartition) else { continue }
                var before = replica.log.logStartOffset
                if let seen = highWatermarks.positionBeforeEvent(of: node, topicPartition), seen.incarnation == incarnation,
                   seen.leaderEpoch == replica.leaderEpoch, seen.topicID == topicID {
                    before = max(before, seen.highWatermark)
                }
                lookups[topicPartition] = Lookup(target: partition.timestamp, topicID: topicID, highWatermarkBefore: before,
                                                 highWatermarkAfter: replica.highWatermark, logStartOffset: replica.log.logStartOffset)
            }
        }
        return lookups
    }

    /// The pure rule: what a lookup may answer, given every committed record in offset order up
    /// to the high watermark after the event, and the high watermark before it. The answer is
    /// right for some high watermark between the two: for a time, the first record reaching it,
    /// or none while that record lay at or above the high watermark; for the max-timestamp
    /// query, the first record holding the largest timestamp of some such prefix.
    static func problem(_ got: TimestampedOffset?, target: Int64, records: [TimestampedOffset],
                        highWatermarkBefore: Offset) -> String? {
        var allowed: [TimestampedOffset?] = []
        if target == ListOffsetsTimestamp.maxTimestamp {
            var newest: TimestampedOffset?
            if records.first.map({ $0.offset >= highWatermarkBefore }) ?? true { allowed.append(nil) }
            for (index, record) in records.enumerated() {
                if record.timestamp > (newest?.timestamp ?? Int64.min) { newest = record }
                let prefixEnd = index + 1 < records.count ? records[index + 1].offset : Offset(Int64.max)
                if prefixEnd >= highWatermarkBefore { allowed.append(newest) }
            }
        } else {
            let first = records.first { $0.timestamp >= target }
            allowed.append(first)
            if first.map({ $0.offset >= highWatermarkBefore }) ?? true { allowed.append(nil) }
        }
        guard !allowed.contains(where: { $0 == got }) else { return nil }
        func describe(_ found: TimestampedOffset?) -> String { found.map { "offset \($0.offset) at \($0.timestamp)" } ?? "none" }
        return "answered \(describe(got)), the committed records allow \(allowed.map(describe).joined(separator: " or ")) "
            + "(\(records.count) records, high watermark \(highWatermarkBefore) before the event)"
    }

    /// The records of `log` from its log start up to the whole batches below `limit`, read from
    /// the segment files as they are now; nil when a batch in that range does not read cleanly or
    /// is compressed.
    static func committedRecords(of log: PartitionLog, below limit: Offset, on disk: SimDisk) -> [TimestampedOffset]? {
        var records: [TimestampedOffset] = []
        var expected = log.logStartOffset
        let names = ((try? disk.listDirectory(log.directory)) ?? []).filter { $0.hasSuffix(".log") }
        for name in names {
            guard let bytes = disk.volatileContents(of: joinPath(log.directory, name)) else { return nil }
            var position = 0
            while bytes.count - position >= RecordBatchLayout.headerSize, expected < limit {
                guard let batch = try? RecordBatch(bytes, at: position) else { break }
                position += batch.header.totalSize
                let header = batch.header
                guard Offset(header.nextOffset) > expected else { continue }
                guard Offset(header.baseOffset) <= expected, Offset(header.nextOffset) <= limit else {
                    // A gap (an unreadable batch) or a batch the high watermark cuts: reads stop here.
                    return Offset(header.nextOffset) > limit && Offset(header.baseOffset) <= expected ? records : nil
                }
                guard header.compression == 0, let batchRecords = try? batch.records() else { return nil }
                for record in batchRecords {
                    let offset = Offset(header.baseOffset + Int64(record.offsetDelta))
                    if offset >= expected { records.append(TimestampedOffset(offset: offset, timestamp: header.baseTimestamp + record.timestampDelta)) }
                }
                expected = Offset(header.nextOffset)
            }
        }
        return expected >= limit ? records : nil
    }
}
