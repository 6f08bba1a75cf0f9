@testable import Client
import KafkaProtocol
import TernCore
import Testing

/// A producer plus the scripted broker side: metadata and producer id are answered by `start`.
private struct ProducerHarness {
    var producer: IdempotentProducer
    var now = startTime
    var completions: [ProduceCompletion] = []

    init(lingerTime: Duration = .zero) {
        producer = IdempotentProducer(bootstrapNodes: [NodeID(1)],
                                      configuration: .init(lingerTime: lingerTime, requestTimeout: .seconds(30)),
                                      random: DeterministicRandom(seed: 42))
    }

    /// Sends one record and answers Metadata (leader 1, epoch 1) and InitProducerID (id 1000, epoch 0).
    mutating func start() -> RecordHandle {
        let handle = try! producer.send(topicPartition0, key: nil, value: Array("v0".utf8), now: now)
        let setup = producer.nextRequests(now: now)
        #expect(setup.count == 2)
        for request in setup {
            switch request.request {
            case .metadata:
                producer.handle(response: .metadata(metadataAnswer(leader: NodeID(1), epoch: 1)), correlation: request.correlation, now: now)
            case .initProducerID:
                producer.handle(response: .initProducerID(KafkaWire.InitProducerIdResponse(producerId: 1000, producerEpoch: 0)),
                                correlation: request.correlation, now: now)
            default:
                Issue.record("unexpected request before the producer id: \(request)")
            }
        }
        #expect(producer.producerIdentity?.id == ProducerID(1000))
        return handle
    }

    /// Sends one record per value, each flushed into its own batch.
    mutating func sendSeparately(_ values: [String]) -> [ClientRequest] {
        var sent: [ClientRequest] = []
        for value in values {
            _ = try! producer.send(topicPartition0, key: nil, value: Array(value.utf8), now: now)
            sent += producer.nextRequests(now: now)
        }
        return sent
    }

    mutating func answer(_ request: ClientRequest, _ error: KafkaErrorCode, baseOffset: Int64 = -1, logStartOffset: Int64 = -1) {
        producer.handle(response: produceAnswer(error, baseOffset: baseOffset, logStartOffset: logStartOffset),
                        correlation: request.correlation, now: now)
        completions += producer.takeCompletions()
    }

    mutating func advance(_ duration: Duration) -> [ClientRequest] {
        now = now + duration
        return producer.nextRequests(now: now)
    }

    /// Answers the Metadata refreshes among `requests` (leader 1, epoch 1); returns the others
    /// and what the producer sends next.
    mutating func answeringMetadata(_ requests: [ClientRequest]) -> [ClientRequest] {
        for request in requests where request.request.apiKey == .metadata {
            producer.handle(response: .metadata(metadataAnswer(leader: NodeID(1), epoch: 1)), correlation: request.correlation, now: now)
        }
        return requests.filter { $0.request.apiKey != .metadata } + producer.nextRequests(now: now)
    }
}

@Suite struct IdempotentProducerTests {
    @Test func nothingIsProducedBeforeTheProducerID() {
        var harness = ProducerHarness()
        _ = try! harness.producer.send(topicPartition0, key: nil, value: [1], now: harness.now)
        let requests = harness.producer.nextRequests(now: harness.now)
        #expect(!requests.contains { $0.request.apiKey == .produce })
        #expect(requests.contains { $0.request.apiKey == .initProducerID })
    }

    @Test func assignsSequencesAndKeepsAtMostFiveInFlight() {
        var harness = ProducerHarness()
        _ = harness.start()
        let first = harness.producer.nextRequests(now: harness.now)
        let more = harness.sendSeparately(["1", "2", "3", "4", "5", "6"])
        let sent = first + more
        #expect(sent.count == 5, "the sixth and seventh batch wait for acknowledgements")
        #expect(sent.map { baseSequence(producedBatch($0)!) } == [0, 1, 2, 3, 4])
        #expect(sent.allSatisfy { $0.destination == NodeID(1) })
        if case let .produce(request) = sent[0].request { #expect(request.acks == -1) }
        let header = try! RecordBatchHeader.read(producedBatch(sent[0])!)
        #expect(header.producerID == 1000 && header.producerEpoch == 0)

        harness.answer(sent[0], .none, baseOffset: 0)
        // The two waiting records were accumulated into one batch with the next sequence.
        let next = harness.producer.nextRequests(now: harness.now)
        #expect(next.count == 1)
        #expect(baseSequence(producedBatch(next[0])!) == 5)
        #expect(try! RecordBatchHeader.read(producedBatch(next[0])!).recordsCount == 2)
        #expect(harness.completions.map(\.outcome) == [.written(offset: Offset(0))])
    }

    @Test func lingerAndBatchSizeCloseBatches() {
        var harness = ProducerHarness(lingerTime: .milliseconds(10))
        _ = harness.start()
        _ = try! harness.producer.send(topicPartition0, key: nil, value: [2], now: harness.now)
        #expect(harness.producer.nextRequests(now: harness.now).isEmpty, "lingering")
        #expect(harness.producer.nextWakeup() == harness.now + .milliseconds(10))
        let sent = harness.advance(.milliseconds(10))
        #expect(sent.count == 1)
        #expect(try! RecordBatchHeader.read(producedBatch(sent[0])!).recordsCount == 2)

        var large = ProducerHarness(lingerTime: .seconds(1))
        _ = large.start()
        // 16 KiB batches: the small first record and two 7 KB ones fill the first batch; the third
        // 7 KB record opens a second one, so the first is full and goes without lingering.
        for _ in 0..<3 { _ = try! large.producer.send(topicPartition0, key: nil, value: [UInt8](repeating: 7, count: 7000), now: large.now) }
        let full = large.producer.nextRequests(now: large.now)
        #expect(full.count == 1)
        #expect(try! RecordBatchHeader.read(producedBatch(full[0])!).recordsCount == 3)
        #expect(large.producer.nextRequests(now: large.now).isEmpty, "one batch in flight is fine; the second lingers")
    }

    @Test(arguments: [KafkaErrorCode.notEnoughReplicas, .notEnoughReplicasAfterAppend, .requestTimedOut, .corruptMessage])
    func retriedBatchKeepsItsSequenceAndBytes(error: KafkaErrorCode) {
        var harness = ProducerHarness()
        _ = harness.start()
        let sent = harness.producer.nextRequests(now: harness.now)
        harness.answer(sent[0], error)
        #expect(harness.completions.isEmpty)
        #expect(harness.advance(.milliseconds(50)).isEmpty, "retry backoff")
        let retry = harness.advance(.milliseconds(50))
        #expect(retry.count == 1)
        #expect(producedBatch(retry[0]) == producedBatch(sent[0]), "byte for byte, so the broker can deduplicate")
        harness.answer(retry[0], .none, baseOffset: 10)
        #expect(harness.completions.map(\.outcome) == [.written(offset: Offset(10))])
    }

    @Test func duplicateAcknowledgementCompletesOnce() {
        var harness = ProducerHarness()
        let handle = harness.start()
        let sent = harness.producer.nextRequests(now: harness.now)
        // The connection drops; the first attempt may or may not have been written.
        harness.producer.handleTimeout(correlation: sent[0].correlation, now: harness.now)
        let retry = harness.answeringMetadata(harness.advance(.milliseconds(100)))
        #expect(producedBatch(retry[0]) == producedBatch(sent[0]))
        // The broker had written the first attempt: both answers carry the original offset.
        harness.answer(sent[0], .none, baseOffset: 3)
        harness.answer(retry[0], .none, baseOffset: 3)
        harness.answer(retry[0], .none, baseOffset: 3)
        #expect(harness.completions == [ProduceCompletion(handle: handle, topicPartition: topicPartition0, outcome: .written(offset: Offset(3)))])
        #expect(harness.producer.unfinishedRecords == 0)
    }

    @Test func requestTimeoutRetriesWithTheSameBytes() {
        var harness = ProducerHarness()
        _ = harness.start()
        let sent = harness.producer.nextRequests(now: harness.now)
        #expect(harness.producer.nextWakeup() == harness.now + .seconds(30))
        let refresh = harness.advance(.seconds(30))
        #expect(refresh.map(\.request.apiKey) == [.metadata], "expired now: the leader may be gone, metadata first")
        harness.producer.handle(response: .metadata(metadataAnswer(leader: NodeID(1), epoch: 1)),
                                correlation: refresh[0].correlation, now: harness.now)
        let retry = harness.advance(.milliseconds(100))
        #expect(retry.count == 1)
        #expect(retry[0].correlation != sent[0].correlation)
        #expect(producedBatch(retry[0]) == producedBatch(sent[0]))
        // The late answer to the abandoned attempt is ignored; the retry's counts.
        harness.answer(sent[0], .none, baseOffset: 0)
        #expect(harness.completions.isEmpty)
        harness.answer(retry[0], .none, baseOffset: 0)
        #expect(harness.completions.count == 1)
    }

    @Test func orderSurvivesALeaderChange() {
        var harness = ProducerHarness()
        _ = harness.start()
        let sent = harness.producer.nextRequests(now: harness.now) + harness.sendSeparately(["1", "2"])
        #expect(sent.map { baseSequence(producedBatch($0)!) } == [0, 1, 2])
        // Leader 1 is deposed: the first batch is refused, the later ones fail on the gap.
        harness.answer(sent[0], .notLeaderOrFollower)
        harness.answer(sent[1], .outOfOrderSequenceNumber)
        // A new record arrives meanwhile; it must not overtake the retries.
        _ = try! harness.producer.send(topicPartition0, key: nil, value: Array("3".utf8), now: harness.now)
        #expect(harness.producer.nextRequests(now: harness.now).filter { $0.request.apiKey == .produce }.isEmpty)
        // Still draining: batch 2 is in flight.
        var requests = harness.advance(.milliseconds(100))
        #expect(requests.filter { $0.request.apiKey == .produce }.isEmpty)
        for request in requests where request.request.apiKey == .metadata {
            harness.producer.handle(response: .metadata(metadataAnswer(leader: NodeID(2), epoch: 2)),
                                    correlation: request.correlation, now: harness.now)
        }
        harness.answer(sent[2], .notLeaderOrFollower)
        requests = harness.advance(.milliseconds(100))
        let produces = requests.filter { $0.request.apiKey == .produce }
        #expect(produces.allSatisfy { $0.destination == NodeID(2) })
        #expect(produces.map { baseSequence(producedBatch($0)!) } == [0, 1, 2, 3])
        #expect(Array(produces.prefix(3)).map { producedBatch($0)! } == sent.map { producedBatch($0)! })
        for (index, request) in produces.enumerated() { harness.answer(request, .none, baseOffset: Int64(index)) }
        #expect(harness.completions.map(\.outcome) == (0..<4).map { .written(offset: Offset(Int64($0))) })
    }

    @Test func outOfOrderOnTheOldestBatchFailsThePartition() {
        var harness = ProducerHarness()
        _ = harness.start()
        let sent = harness.producer.nextRequests(now: harness.now) + harness.sendSeparately(["1"])
        harness.answer(sent[0], .outOfOrderSequenceNumber)
        #expect(harness.completions.count == 2)
        #expect(harness.completions.allSatisfy {
            if case .failed(error: .outOfOrderSequenceNumber, _) = $0.outcome { return true } else { return false }
        })
        #expect(harness.producer.failure(of: topicPartition0) == .outOfOrderSequenceNumber)
        #expect(throws: ProducerSendError.partitionFailed(.outOfOrderSequenceNumber)) {
            try harness.producer.send(topicPartition0, key: nil, value: [1], now: harness.now)
        }
        // The late answer of the second batch changes nothing.
        harness.answer(sent[1], .none, baseOffset: 1)
        #expect(harness.completions.count == 2)
    }

    /// Found by the simulator's producer-outcome checker (seeds 1651 and 2364 of network before
    /// the fix): batch 1 follows batch 0, acknowledged with acks=all, and goes to a broker the
    /// client's metadata names as leader but that was deposed and has not learned it: missing
    /// batch 0, it refuses batch 1 as out of order. Every later leader holds batch 0, so the
    /// refusal says the broker does not lead: the client refreshes its metadata and sends the same
    /// batch again. A refusal that persists for the request timeout is taken at its word.
    @Test func outOfOrderOnTheOldestBatchAfterAnAcknowledgedOneIsRetriedUntilTheRequestTimeout() {
        var harness = ProducerHarness()
        _ = harness.start()
        let first = harness.producer.nextRequests(now: harness.now)
        harness.answer(first[0], .none, baseOffset: 0)
        let sent = harness.sendSeparately(["1"])
        #expect(sent.map { baseSequence(producedBatch($0)!) } == [1])
        harness.answer(sent[0], .outOfOrderSequenceNumber)
        #expect(harness.producer.failure(of: topicPartition0) == nil)
        let afterRefresh = harness.advance(.milliseconds(100))
        #expect(afterRefresh.map(\.request.apiKey) == [.metadata], "the refusing broker may not lead: metadata first")
        var retry = harness.answeringMetadata(afterRefresh)
        if retry.isEmpty { retry = harness.advance(.milliseconds(100)) }
        #expect(retry.count == 1)
        #expect(producedBatch(retry[0]) == producedBatch(sent[0]), "the same batch, byte for byte")

        // The broker keeps refusing for longer than the request timeout: the partition fails.
        var attempt = retry[0]
        for _ in 0..<400 where harness.producer.failure(of: topicPartition0) == nil {
            harness.answer(attempt, .outOfOrderSequenceNumber)
            var next = harness.answeringMetadata(harness.advance(.milliseconds(100)))
            if next.isEmpty { next = harness.answeringMetadata(harness.advance(.milliseconds(100))) }
            guard let produce = next.first(where: { $0.request.apiKey == .produce }) else { break }
            attempt = produce
        }
        #expect(harness.producer.failure(of: topicPartition0) == .outOfOrderSequenceNumber)
        #expect(harness.now - startTime >= .seconds(30))
        #expect(harness.completions.map(\.outcome).last == .failed(error: .outOfOrderSequenceNumber, possiblyWritten: false))
    }

    /// Found by the simulator's producer-outcome checker (`tern simulate --seed 1 --profile all
    /// --narrow-world` before the fix): two requests of a partition went out together, the later
    /// one reached the broker first and was refused as out of order, and its answer came back only
    /// after the earlier batch had been acknowledged. The refusal says the earlier batch was
    /// missing when the later one arrived, not that the sequence has a gap.
    @Test func outOfOrderForABatchSentBehindAnUnacknowledgedOneIsRetriedEvenWhenAnsweredLast() {
        var harness = ProducerHarness()
        _ = harness.start()
        let sent = harness.producer.nextRequests(now: harness.now) + harness.sendSeparately(["1"])
        #expect(sent.map { baseSequence(producedBatch($0)!) } == [0, 1])
        harness.answer(sent[0], .none, baseOffset: 0)
        harness.answer(sent[1], .outOfOrderSequenceNumber)
        #expect(harness.producer.failure(of: topicPartition0) == nil)
        let retry = harness.answeringMetadata(harness.advance(.milliseconds(100)))
        #expect(retry.count == 1)
        #expect(producedBatch(retry[0]) == producedBatch(sent[1]), "the same batch, byte for byte")
        harness.answer(retry[0], .none, baseOffset: 1)
        #expect(harness.completions.map(\.outcome) == [.written(offset: Offset(0)), .written(offset: Offset(1))])
    }

    /// Found by the simulator's producer-outcome checker (`tern simulate --seed 4 --profile all`
    /// before the fix): the answers to the oldest batch's attempts were lost while later batches
    /// were acknowledged, new batches kept going out, and the oldest fell out of the broker's
    /// memory of the producer's last 5 batches, so its retry was refused as out of order.
    @Test func aBatchAcknowledgedAheadOfAnOlderOneKeepsItsPlaceInTheWindow() {
        var harness = ProducerHarness()
        _ = harness.start()
        let sent = harness.producer.nextRequests(now: harness.now) + harness.sendSeparately(["1", "2", "3", "4"])
        #expect(sent.map { baseSequence(producedBatch($0)!) } == [0, 1, 2, 3, 4])
        for (index, request) in sent.enumerated().dropFirst() { harness.answer(request, .none, baseOffset: Int64(index)) }
        #expect(harness.completions.count == 4)
        _ = try! harness.producer.send(topicPartition0, key: nil, value: Array("5".utf8), now: harness.now)
        #expect(harness.producer.nextRequests(now: harness.now).isEmpty,
                "five batches were sent since the oldest unacknowledged one: the sixth waits")
        harness.answer(sent[0], .none, baseOffset: 0)
        let next = harness.producer.nextRequests(now: harness.now)
        #expect(next.map { baseSequence(producedBatch($0)!) } == [5])
    }

    /// A leader rebuilt past deleted data no longer knows the producer: once its log starts
    /// after everything acknowledged, the producer renumbers its unsent-for-sure batches from 0
    /// under the partition's next epoch.
    @Test func unknownProducerAfterRetentionRestartsTheSequence() {
        var harness = ProducerHarness()
        _ = harness.start()
        let first = harness.producer.nextRequests(now: harness.now)
        harness.answer(first[0], .none, baseOffset: 40)
        let sent = harness.sendSeparately(["1", "2"])
        #expect(sent.map { baseSequence(producedBatch($0)!) } == [1, 2])
        harness.answer(sent[0], .unknownProducerID, logStartOffset: 41)
        harness.answer(sent[1], .unknownProducerID, logStartOffset: 41)
        #expect(harness.completions.count == 1, "nothing failed")
        let resent = harness.answeringMetadata(harness.advance(.milliseconds(100)))
        #expect(resent.map { baseSequence(producedBatch($0)!) } == [0, 1])
        #expect(resent.allSatisfy { (try? RecordBatchHeader.read(producedBatch($0)!))?.producerEpoch == 1 },
                "a new epoch, so a leader that still remembers the producer takes sequence 0 too")
        #expect(resent.map { Array(producedBatch($0)!.dropFirst(61)) } == sent.map { Array(producedBatch($0)!.dropFirst(61)) },
                "the same records")
        #expect(resent.allSatisfy { (try? RecordBatch(producedBatch($0)!, at: 0)) != nil }, "checksums resealed")
    }

    @Test func unknownProducerWhoseLogStillHoldsItsWritesFailsThePartition() {
        var harness = ProducerHarness()
        _ = harness.start()
        let first = harness.producer.nextRequests(now: harness.now)
        harness.answer(first[0], .none, baseOffset: 40)
        let sent = harness.sendSeparately(["1"])
        harness.answer(sent[0], .unknownProducerID, logStartOffset: 40)
        #expect(harness.completions.last?.outcome == .failed(error: .unknownProducerID, possiblyWritten: false))
    }

    /// A batch that may have been written before retention deleted it is given up, with what was
    /// sent before it; the batches after it start again at sequence 0.
    @Test func aPossiblyWrittenBatchIsGivenUpWhenTheLeaderForgetsTheProducer() {
        var harness = ProducerHarness()
        _ = harness.start()
        let first = harness.producer.nextRequests(now: harness.now)
        harness.answer(first[0], .none, baseOffset: 40)
        let sent = harness.sendSeparately(["1", "2"])
        harness.producer.handleTimeout(correlation: sent[0].correlation, now: harness.now)
        harness.answer(sent[1], .notLeaderOrFollower)
        var retried = harness.answeringMetadata(harness.advance(.milliseconds(100)))
        #expect(retried.map { baseSequence(producedBatch($0)!) } == [1, 2])
        harness.answer(retried[0], .unknownProducerID, logStartOffset: 60)
        harness.answer(retried[1], .unknownProducerID, logStartOffset: 60)
        retried = harness.answeringMetadata(harness.advance(.milliseconds(100)))
        harness.completions += harness.producer.takeCompletions()
        #expect(harness.completions.last?.outcome == .failed(error: .unknownProducerID, possiblyWritten: true))
        #expect(retried.map { baseSequence(producedBatch($0)!) } == [0])
        harness.answer(retried[0], .none, baseOffset: 60)
        #expect(harness.completions.last?.outcome == .written(offset: Offset(60)))
    }

    @Test func bufferIsBounded() {
        var producer = IdempotentProducer(bootstrapNodes: [NodeID(1)], configuration: .init(maximumBufferedRecords: 2),
                                          random: DeterministicRandom(seed: 1))
        _ = try! producer.send(topicPartition0, key: nil, value: [1], now: startTime)
        _ = try! producer.send(topicPartition0, key: nil, value: [2], now: startTime)
        #expect(throws: ProducerSendError.bufferFull) { try producer.send(topicPartition0, key: nil, value: [3], now: startTime) }
    }
}
