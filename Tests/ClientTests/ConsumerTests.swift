@testable import Client
import KafkaProtocol
import TernCore
import Testing

/// A consumer plus the scripted broker side.
private struct ConsumerHarness {
    var consumer: Consumer
    var now = startTime
    var records: [ConsumedRecord] = []

    init(start: ConsumerStartPosition) {
        consumer = Consumer(assignments: [(topicPartition0, start)], bootstrapNodes: [NodeID(1)],
                            random: DeterministicRandom(seed: 7))
    }

    /// Answers the first Metadata request: leader 1 at `epoch`.
    mutating func answerMetadata(epoch: Int32, leader: NodeID = NodeID(1)) -> [ClientRequest] {
        let requests = consumer.nextRequests(now: now)
        let metadataRequests = requests.filter { $0.request.apiKey == .metadata }
        #expect(metadataRequests.count == 1)
        for request in metadataRequests {
            consumer.handle(response: .metadata(metadataAnswer(leader: leader, epoch: epoch)), correlation: request.correlation, now: now)
        }
        return requests.filter { $0.request.apiKey != .metadata } + consumer.nextRequests(now: now)
    }

    mutating func answer(_ request: ClientRequest, _ response: KafkaResponse) {
        consumer.handle(response: response, correlation: request.correlation, now: now)
        records += consumer.takeRecords()
    }

    /// What a fetch asks of its partition.
    struct FetchedPartition {
        let fetchOffset: Offset
        let currentLeaderEpoch: LeaderEpoch
    }

    /// The single fetch among `requests`, and its partition.
    func fetch(in requests: [ClientRequest]) -> (ClientRequest, FetchedPartition)? {
        for request in requests {
            guard case let .fetch(fetch) = request.request else { continue }
            let partition = fetch.topics[0].partitions[0]
            return (request, FetchedPartition(fetchOffset: Offset(partition.fetchOffset),
                                              currentLeaderEpoch: LeaderEpoch(partition.currentLeaderEpoch)))
        }
        return nil
    }
}

@Suite struct ConsumerTests {
    @Test func startsAtEarliestAndDeliversInOrderSkippingControlBatches() {
        var harness = ConsumerHarness(start: .earliest)
        let lookups = harness.answerMetadata(epoch: 3)
        guard case let .listOffsets(listOffsets) = lookups.first?.request else { Issue.record("expected ListOffsets"); return }
        #expect(listOffsets.topics[0].partitions[0].timestamp == ListOffsetsTimestamp.earliest)
        #expect(listOffsets.topics[0].partitions[0].currentLeaderEpoch == 3)
        harness.answer(lookups[0], .listOffsets(KafkaWire.ListOffsetsResponse(topics: [.init(name: "events", partitions: [
            .init(partitionIndex: 0, offset: 0, leaderEpoch: 3),
        ])])))

        guard let (request, partition) = harness.fetch(in: harness.consumer.nextRequests(now: harness.now)) else {
            Issue.record("expected a fetch"); return
        }
        #expect(request.destination == NodeID(1))
        #expect(partition.fetchOffset == .zero)
        #expect(partition.currentLeaderEpoch == LeaderEpoch(3))
        let records = storedBatch(baseOffset: 0, epoch: 3, values: ["a", "b", "c"])
            + storedBatch(baseOffset: 3, epoch: 3, values: [], control: true)
            + storedBatch(baseOffset: 4, epoch: 3, values: ["d", "e"])
        harness.answer(request, fetchAnswer(records: records, highWatermark: 6))
        #expect(harness.records.map(\.offset) == [0, 1, 2, 4, 5].map { Offset(Int64($0)) })
        #expect(harness.records.map { String(decoding: $0.value!, as: UTF8.self) } == ["a", "b", "c", "d", "e"])
        #expect(harness.records[0].key == Array("k-a".utf8))
        #expect(harness.consumer.position(of: topicPartition0) == Offset(6))

        // The next fetch continues at the position; a repeated batch is not delivered again.
        guard let (next, nextPartition) = harness.fetch(in: harness.consumer.nextRequests(now: harness.now)) else {
            Issue.record("expected a second fetch"); return
        }
        #expect(nextPartition.fetchOffset == Offset(6))
        harness.answer(next, fetchAnswer(records: storedBatch(baseOffset: 4, epoch: 3, values: ["d", "e"])
            + storedBatch(baseOffset: 6, epoch: 3, values: ["f"]), highWatermark: 7))
        #expect(harness.records.map(\.offset) == [0, 1, 2, 4, 5, 6].map { Offset(Int64($0)) })
    }

    @Test func startsMidBatchAndStopsAtTheHighWatermark() {
        var harness = ConsumerHarness(start: .offset(Offset(1)))
        guard let (request, partition) = harness.fetch(in: harness.answerMetadata(epoch: 1)) else {
            Issue.record("expected a fetch"); return
        }
        #expect(partition.fetchOffset == Offset(1))
        // Offsets 3 and 4 lie at or above the high watermark: not delivered, even if sent. A
        // partial trailing batch is ignored.
        let partial = Array(storedBatch(baseOffset: 5, epoch: 1, values: ["x"]).prefix(40))
        harness.answer(request, fetchAnswer(records: storedBatch(baseOffset: 0, epoch: 1, values: ["a", "b", "c", "d", "e"]) + partial,
                                            highWatermark: 3))
        #expect(harness.records.map(\.offset) == [Offset(1), Offset(2)])
        #expect(harness.consumer.position(of: topicPartition0) == Offset(3))
    }

    @Test func leaderEpochChangeValidatesAndDetectsTruncation() {
        var harness = ConsumerHarness(start: .offset(.zero))
        guard let (request, _) = harness.fetch(in: harness.answerMetadata(epoch: 1)) else { Issue.record("expected a fetch"); return }
        harness.answer(request, fetchAnswer(records: storedBatch(baseOffset: 0, epoch: 1, values: ["a", "b", "c", "d"]), highWatermark: 4))
        #expect(harness.consumer.position(of: topicPartition0) == Offset(4))

        // The fetch to the old leader is fenced; the refresh names leader 2 at epoch 2.
        guard let (fenced, _) = harness.fetch(in: harness.consumer.nextRequests(now: harness.now)) else { Issue.record("expected a fetch"); return }
        harness.answer(fenced, fetchAnswer(records: [], highWatermark: -1, error: .fencedLeaderEpoch))
        harness.now = harness.now + .milliseconds(100)
        let afterRefresh = harness.answerMetadata(epoch: 2, leader: NodeID(2))
        guard let validation = afterRefresh.first, case let .offsetForLeaderEpoch(validate) = validation.request else {
            Issue.record("expected OffsetForLeaderEpoch, got \(afterRefresh)"); return
        }
        #expect(validation.destination == NodeID(2))
        #expect(validate.topics[0].partitions[0].leaderEpoch == 1, "the epoch of the last consumed batch")
        #expect(validate.topics[0].partitions[0].currentLeaderEpoch == 2)

        // The new leader's log ends epoch 1 at offset 2: offsets 2 and 3 were truncated.
        harness.answer(validation, .offsetForLeaderEpoch(KafkaWire.OffsetForLeaderEpochResponse(topics: [
            .init(topic: "events", partitions: [
                .init(partition: 0, leaderEpoch: 1, endOffset: 2),
            ]),
        ])))
        #expect(harness.consumer.takeEvents() == [.truncationDetected(topicPartition0, position: Offset(4), resetTo: Offset(2))])
        #expect(harness.consumer.position(of: topicPartition0) == Offset(2))
        guard let (refetch, partition) = harness.fetch(in: harness.consumer.nextRequests(now: harness.now)) else {
            Issue.record("expected a fetch"); return
        }
        #expect(refetch.destination == NodeID(2))
        #expect(partition.fetchOffset == Offset(2))
        #expect(partition.currentLeaderEpoch == LeaderEpoch(2))
        harness.answer(refetch, fetchAnswer(records: storedBatch(baseOffset: 2, epoch: 2, values: ["C"]), highWatermark: 3))
        #expect(harness.records.map(\.offset) == [0, 1, 2, 3, 2].map { Offset(Int64($0)) })
        #expect(harness.records.last?.leaderEpoch == LeaderEpoch(2))
    }

    @Test func validationWithoutTruncationKeepsThePosition() {
        var harness = ConsumerHarness(start: .offset(Offset(4), lastConsumedEpoch: LeaderEpoch(1)))
        let requests = harness.answerMetadata(epoch: 2)
        guard let validation = requests.first, case .offsetForLeaderEpoch = validation.request else {
            Issue.record("a start offset with an epoch is validated first"); return
        }
        harness.answer(validation, .offsetForLeaderEpoch(KafkaWire.OffsetForLeaderEpochResponse(topics: [
            .init(topic: "events", partitions: [
                .init(partition: 0, leaderEpoch: 1, endOffset: 9),
            ]),
        ])))
        #expect(harness.consumer.takeEvents().isEmpty)
        #expect(harness.fetch(in: harness.consumer.nextRequests(now: harness.now))?.1.fetchOffset == Offset(4))
    }

    @Test func lateFetchAnswerAfterTimeoutIsIgnored() {
        var harness = ConsumerHarness(start: .offset(.zero))
        guard let (request, _) = harness.fetch(in: harness.answerMetadata(epoch: 1)) else { Issue.record("expected a fetch"); return }
        harness.consumer.handleTimeout(correlation: request.correlation, now: harness.now)
        harness.answer(request, fetchAnswer(records: storedBatch(baseOffset: 0, epoch: 1, values: ["a"]), highWatermark: 1))
        #expect(harness.records.isEmpty)
        harness.now = harness.now + .milliseconds(100)
        // The lost request may mean a lost leader: metadata first (as Kafka clients do on a
        // disconnect), then the same fetch again.
        #expect(harness.fetch(in: harness.answerMetadata(epoch: 1))?.1.fetchOffset == .zero)
    }

    @Test func offsetOutOfRangeResetsByPolicy() {
        var harness = ConsumerHarness(start: .offset(Offset(50)))
        guard let (request, _) = harness.fetch(in: harness.answerMetadata(epoch: 1)) else { Issue.record("expected a fetch"); return }
        harness.answer(request, fetchAnswer(records: [], highWatermark: 10, error: .offsetOutOfRange))
        #expect(harness.consumer.takeEvents() == [.positionReset(topicPartition0, from: Offset(50), reason: .offsetOutOfRange)])
        let next = harness.consumer.nextRequests(now: harness.now)
        guard case let .listOffsets(lookup) = next.first?.request else { Issue.record("expected ListOffsets"); return }
        #expect(lookup.topics[0].partitions[0].timestamp == ListOffsetsTimestamp.earliest)
    }
}
