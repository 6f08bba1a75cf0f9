import Client
import KafkaProtocol
import SimWorld
import Simulator
import TernCore
import Testing

/// The consumed-records checker must be able to fail: each part fed a bad history, next to a good
/// history it accepts.
@Suite struct ConsumedRecordsCheckerTests {
    let partition = TopicPartition(topic: "topic-0", partition: 0)

    func value(_ n: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * (7 - $0))) } }

    func log(_ values: [UInt64], highWatermark: Int64? = nil) -> [TopicPartition: LeaderLogSnapshot] {
        let entries = values.enumerated().map {
            LeaderLogSnapshot.Entry(offset: Offset(Int64($0.offset)), key: Array("p\($0.element)".utf8), value: value($0.element))
        }
        return [partition: LeaderLogSnapshot(leader: NodeID(101), highWatermark: Offset(highWatermark ?? Int64(values.count)), entries: entries)]
    }

    func read(_ pairs: [(offset: Int64, value: UInt64)]) -> [ObservedRecord] {
        pairs.map { ObservedRecord(topicPartition: partition, offset: Offset($0.offset), value: value($0.value)) }
    }

    func acked(_ pairs: [(offset: Int64, value: UInt64)]) -> [AcknowledgedWrite] {
        pairs.map { AcknowledgedWrite(topicPartition: partition, offset: Offset($0.offset), value: $0.value) }
    }

    func isViolation(_ result: CheckResult) -> Bool {
        if case .violation = result { return true }
        return false
    }

    // MARK: At the end

    @Test func aGoodHistoryPasses() {
        let history = [(Int64(0), UInt64(0)), (1, 6), (2, 12)]
        #expect(ConsumedRecordsChecker.check(consumed: read(history), acknowledged: acked(history), leaderLogs: log([0, 6, 12])) == .ok)
        // Read but not (yet) acknowledged: fine; the producer may learn of it later or never.
        #expect(ConsumedRecordsChecker.check(consumed: read(history), acknowledged: acked([(0, 0)]), leaderLogs: log([0, 6, 12])) == .ok)
        #expect(ConsumedRecordsChecker.check(consumed: [], acknowledged: [], leaderLogs: [:]) == .ok)
    }

    @Test func aConsumedRecordMissingFromTheFinalLogIsCaught() {
        // The consumer read offset 2, which the final leader no longer has (truncated away).
        let result = ConsumedRecordsChecker.check(consumed: read([(0, 0), (1, 6), (2, 12)]), acknowledged: [],
                                                  leaderLogs: log([0, 6]))
        #expect(isViolation(result), "a consumed record missing from the leader's log was not reported")
        let unconverged = ConsumedRecordsChecker.check(consumed: read([(0, 0), (1, 6), (2, 12)]), acknowledged: [],
                                                       leaderLogs: log([0, 6]), converged: false)
        #expect(isViolation(unconverged), "a lost consumed record must be reported even without convergence")
    }

    @Test func aConsumedRecordReplacedInTheFinalLogIsCaught() {
        let result = ConsumedRecordsChecker.check(consumed: read([(0, 0), (1, 6)]), acknowledged: [], leaderLogs: log([0, 7]))
        #expect(isViolation(result), "a consumed offset holding another value at the end was not reported")
    }

    @Test func aConsumedRecordAboveTheFinalHighWatermarkIsCaught() {
        let result = ConsumedRecordsChecker.check(consumed: read([(0, 0), (1, 6)]), acknowledged: [],
                                                  leaderLogs: log([0, 6], highWatermark: 1))
        #expect(isViolation(result), "a consumed record at or above the final high watermark was not reported")
    }

    @Test func anAcknowledgedRecordNeverConsumedIsCaught() {
        let result = ConsumedRecordsChecker.check(consumed: read([(0, 0), (1, 6)]), acknowledged: acked([(0, 0), (1, 6), (2, 12)]),
                                                  leaderLogs: log([0, 6, 12]))
        #expect(isViolation(result), "an acknowledged record the consumer never read was not reported")
        // Without convergence the consumer may simply not have caught up: the liveness check judges.
        #expect(ConsumedRecordsChecker.check(consumed: read([(0, 0), (1, 6)]), acknowledged: acked([(2, 12)]),
                                             leaderLogs: log([0, 6, 12]), converged: false) == .ok)
    }

    @Test func anAcknowledgedRecordConsumedWithAnotherValueIsCaught() {
        // The log and the consumer agree on value 7 at offset 1, but the producer was told 6 went there.
        let result = ConsumedRecordsChecker.check(consumed: read([(0, 0), (1, 7)]), acknowledged: acked([(1, 6)]),
                                                  leaderLogs: log([0, 7]))
        #expect(isViolation(result), "an acknowledgement contradicted by what the consumer read was not reported")
    }

    @Test func aDuplicateAcknowledgementWithoutOffsetNeedsTheValueRead() {
        let duplicate = [AcknowledgedWrite(topicPartition: partition, offset: .unknown, value: 6)]
        #expect(ConsumedRecordsChecker.check(consumed: read([(0, 0), (1, 6)]), acknowledged: duplicate, leaderLogs: log([0, 6])) == .ok)
        let result = ConsumedRecordsChecker.check(consumed: read([(0, 0)]), acknowledged: duplicate, leaderLogs: log([0]))
        #expect(isViolation(result), "a value acknowledged as a duplicate but never read was not reported")
    }

    @Test func aConsumedRecordOnAPartitionWithoutLeaderIsCaught() {
        let result = ConsumedRecordsChecker.check(consumed: read([(0, 0)]), acknowledged: [], leaderLogs: [:])
        #expect(isViolation(result), "a consumed record on a partition with no readable leader was not reported")
    }

    // MARK: Order, online

    @Test func offsetsGoingBackwardsAreCaught() {
        var order = ConsumedOrder()
        for record in read([(0, 0), (1, 6), (2, 12)]) { #expect(order.observe(record) == .ok) }
        #expect(isViolation(order.observe(read([(1, 18)])[0])), "an offset read after a higher one was not reported")
    }

    @Test func anOffsetReadTwiceIsCaught() {
        var order = ConsumedOrder()
        for record in read([(0, 0), (1, 6)]) { #expect(order.observe(record) == .ok) }
        #expect(isViolation(order.observe(read([(1, 6)])[0])), "an offset read twice was not reported")
    }

    @Test func valuesOutOfOrderOrTwiceAreCaught() {
        var reordered = ConsumedOrder()
        for record in read([(0, 0), (1, 12)]) { #expect(reordered.observe(record) == .ok) }
        #expect(isViolation(reordered.observe(read([(2, 6)])[0])), "a value lower than the one before was not reported")
        var duplicated = ConsumedOrder()
        for record in read([(0, 0), (1, 6)]) { #expect(duplicated.observe(record) == .ok) }
        #expect(isViolation(duplicated.observe(read([(2, 6)])[0])), "a value read twice at two offsets was not reported")
    }

    /// A retained topic is at least once: a value again at a later offset passes there, never an
    /// offset going back; the acknowledged records retention deleted, or a reset consumer skipped
    /// below the furthest log start a leader had, need not have been read; the same history on a
    /// topic that keeps everything fails.
    @Test func aRetainedTopicIsCheckedAsAtLeastOnce() {
        var order = ConsumedOrder(atLeastOnceTopics: ["topic-0"])
        for record in read([(0, 0), (1, 12), (2, 6)]) { #expect(order.observe(record) == .ok) }
        #expect(isViolation(order.observe(read([(2, 18)])[0])), "offsets still only go forward")
        order.restart(partition)
        #expect(order.observe(read([(1, 6)])[0]) == .ok, "a consumer reset to a lower log start reads from there")

        var logs = log([0, 6, 12, 18])
        logs[partition]!.logStartOffset = Offset(2)
        logs[partition]!.entries.removeFirst(2)
        let acknowledged = acked([(0, 0), (1, 6), (2, 12), (3, 18)])
        let consumed = read([(2, 12), (3, 18)])
        #expect(ConsumedRecordsChecker.check(consumed: consumed, acknowledged: acknowledged, leaderLogs: logs,
                                             retainedTopics: ["topic-0"]) == .ok, "deleted before the consumer read them")
        #expect(isViolation(ConsumedRecordsChecker.check(consumed: consumed, acknowledged: acknowledged, leaderLogs: logs)))
        let skipped = read([(3, 18)])
        #expect(isViolation(ConsumedRecordsChecker.check(consumed: skipped, acknowledged: acknowledged, leaderLogs: logs,
                                                         retainedTopics: ["topic-0"])), "offset 2 is above every log start")
        #expect(ConsumedRecordsChecker.check(consumed: skipped, acknowledged: acknowledged, leaderLogs: logs, retainedTopics: ["topic-0"],
                                             skippedBelow: [partition: Offset(3)]) == .ok, "a reset consumer skipped it")
    }

    @Test func partitionsAreOrderedIndependently() {
        var order = ConsumedOrder()
        let other = TopicPartition(topic: "topic-0", partition: 1)
        #expect(order.observe(ObservedRecord(topicPartition: partition, offset: Offset(5), value: value(30))) == .ok)
        #expect(order.observe(ObservedRecord(topicPartition: other, offset: Offset(0), value: value(1))) == .ok)
        #expect(order.observe(ObservedRecord(topicPartition: partition, offset: Offset(6), value: value(36))) == .ok)
    }

    // MARK: Consumer events

    @Test func everyConsumerEventIsAViolation() {
        #expect(isViolation(ConsumedRecordsChecker.check(event: .truncationDetected(partition, position: Offset(10), resetTo: Offset(7)))))
        #expect(isViolation(ConsumedRecordsChecker.check(event: .positionReset(partition, from: Offset(10), reason: .offsetOutOfRange))))
        #expect(isViolation(ConsumedRecordsChecker.check(event: .partitionStopped(partition, reason: "compressed batch"))))
    }

    // MARK: What brokers serve

    /// Batches of one record each at `offsets`, as a fetch answer holds them.
    func answer(offsets: [Int64], highWatermark: Int64) -> KafkaWire.FetchResponse.PartitionData {
        var bytes: [UInt8] = []
        for offset in offsets {
            var batch = RecordBatchBuilder(baseTimestamp: 0)
            batch.baseOffset = offset
            batch.append(key: nil, value: value(UInt64(offset)))
            bytes += batch.build()
        }
        return KafkaWire.FetchResponse.PartitionData(partitionIndex: 0, highWatermark: highWatermark, lastStableOffset: highWatermark,
                                                     logStartOffset: 0, records: bytes)
    }

    @Test func anAnswerBelowTheHighWatermarkPasses() {
        #expect(ConsumedRecordsChecker.checkServed(answer(offsets: [0, 1, 2], highWatermark: 3), of: partition, by: NodeID(101),
                                                   brokerHighWatermark: Offset(3)) == .ok)
        #expect(ConsumedRecordsChecker.checkServed(answer(offsets: [0, 1], highWatermark: 2), of: partition, by: NodeID(101),
                                                   brokerHighWatermark: Offset(5)) == .ok, "the broker's HW may have moved on since")
    }

    @Test func aBatchServedAtTheHighWatermarkIsCaught() {
        let result = ConsumedRecordsChecker.checkServed(answer(offsets: [0, 1, 2], highWatermark: 2), of: partition, by: NodeID(101),
                                                        brokerHighWatermark: Offset(2))
        #expect(isViolation(result), "a batch at the high watermark served to a consumer was not reported")
    }

    @Test func anAnswerClaimingAHigherHighWatermarkIsCaught() {
        let result = ConsumedRecordsChecker.checkServed(answer(offsets: [0, 1, 2], highWatermark: 3), of: partition, by: NodeID(101),
                                                        brokerHighWatermark: Offset(2))
        #expect(isViolation(result), "an answer whose HW is above the broker's was not reported")
    }
}

@Suite struct ConsumerWorkloadTests {
    @Test func aHealthyClusterHasEveryAcknowledgedWriteConsumed() {
        var layout = ClusterLayout()
        layout.produceWorkload = true
        let simulation = ClusterSimulation(seed: 1, profile: .none, layout: layout, safetyPhase: .seconds(15), livenessPhase: .seconds(20))
        let outcome = simulation.run()
        #expect(outcome.report.passed, "\(String(describing: outcome.report.violation))")
        #expect(outcome.checkersRun.contains("consumed-records"))
        #expect(outcome.consumedRecords >= outcome.acknowledgedWrites && outcome.acknowledgedWrites > 0)
        #expect(outcome.checkedConsumerFetches > 0, "the brokers' answers to the consumer were never checked")
    }
}
