import Broker
import KafkaProtocol
import TernCore
import Testing

/// The header of a real client batch built by `RecordBatchBuilder` (baseOffset 0, as sent).
func clientBatchHeader(producer: Int64, epoch: Int16, sequence: Int32, records: Int = 1,
                   timestamp: Int64 = 1_000, transactional: Bool = false) throws -> RecordBatchHeader {
    var builder = RecordBatchBuilder(baseTimestamp: timestamp)
    builder.producerID = producer
    builder.producerEpoch = epoch
    builder.baseSequence = sequence
    builder.attributes = RecordBatchAttributes(isTransactional: transactional)
    for index in 0..<records { builder.append(key: nil, value: [UInt8(truncatingIfNeeded: index)]) }
    return try RecordBatchHeader.validateFraming(builder.build())
}

func markerBatchHeader(producer: Int64, epoch: Int16, type: TransactionMarkerType = .commit) throws -> RecordBatchHeader {
    try RecordBatchHeader.validateFraming(
        TransactionMarker(type: type, coordinatorEpoch: 0).batch(producerID: producer, producerEpoch: epoch, timestamp: 1_000))
}

/// A leader's append path: validate, assign the log end offset, record. Keeps the log of
/// appended headers (with their assigned base offsets) for replay.
struct ProducerStateLeader {
    var table = ProducerStateTable()
    var logEndOffset = Offset.zero
    var log: [RecordBatchHeader] = []

    @discardableResult
    mutating func produce(_ header: RecordBatchHeader) -> ProducerAppendVerdict {
        let verdict = table.validate(header)
        if verdict == .append { append(header) }
        return verdict
    }

    /// Appends without validation, as a leader does for its own transaction markers.
    mutating func append(_ header: RecordBatchHeader) {
        var stored = header
        stored.baseOffset = logEndOffset.rawValue
        table.recordAppended(header, firstOffset: logEndOffset)
        log.append(stored)
        logEndOffset = Offset(stored.nextOffset)
    }
}

@Suite struct ProducerStateValidationTests {
    @Test func batchesWithoutProducerAlwaysAppend() throws {
        var leader = ProducerStateLeader()
        for _ in 0..<3 {
            #expect(leader.produce(try clientBatchHeader(producer: -1, epoch: -1, sequence: -1, records: 2)) == .append)
        }
        #expect(leader.table.producerIDs.isEmpty)
        #expect(leader.table.endOffset == Offset(6))
    }

    @Test func newProducerMustStartAtSequenceZero() throws {
        var leader = ProducerStateLeader()
        #expect(leader.produce(try clientBatchHeader(producer: 7, epoch: 0, sequence: 5)) == .reject(.outOfOrderSequenceNumber))
        #expect(leader.table.entry(for: ProducerID(7)) == nil, "a refused batch leaves no trace")
        #expect(leader.produce(try clientBatchHeader(producer: 7, epoch: 0, sequence: 0, records: 3)) == .append)
        let entry = try #require(leader.table.entry(for: ProducerID(7)))
        #expect(entry.producerEpoch == ProducerEpoch(0))
        #expect(entry.lastSequence == 2)
        #expect(entry.lastWrittenOffset == Offset(2))
    }

    @Test func aTableBuiltPastDeletedDataSaysItDoesNotKnowTheProducer() throws {
        var table = ProducerStateTable()
        let later = ProducerBatch(producerID: ProducerID(7), producerEpoch: ProducerEpoch(0), baseSequence: 5, lastOffsetDelta: 0, maxTimestamp: 0)
        #expect(table.validate(later) == .reject(.outOfOrderSequenceNumber))
        table.mayHaveForgottenProducers = true
        #expect(table.validate(later) == .reject(.unknownProducerID))
    }

    @Test func nextSequenceMustFollowTheLast() throws {
        var leader = ProducerStateLeader()
        #expect(leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 0, records: 3)) == .append)
        #expect(leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 5)) == .reject(.outOfOrderSequenceNumber), "gap")
        #expect(leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 2)) == .reject(.outOfOrderSequenceNumber),
                "overlapping but not identical to a cached batch")
        #expect(leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 1, records: 2)) == .reject(.outOfOrderSequenceNumber))
        #expect(leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 3, records: 2)) == .append)
        #expect(leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 5)) == .append)
        #expect(leader.table.entry(for: ProducerID(1))?.lastSequence == 5)
    }

    @Test func producersAreIndependent() throws {
        var leader = ProducerStateLeader()
        #expect(leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 0)) == .append)
        #expect(leader.produce(try clientBatchHeader(producer: 2, epoch: 3, sequence: 0)) == .append)
        #expect(leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 1)) == .append)
        #expect(leader.produce(try clientBatchHeader(producer: 2, epoch: 3, sequence: 2)) == .reject(.outOfOrderSequenceNumber))
        #expect(leader.table.producerIDs == [ProducerID(1), ProducerID(2)])
    }

    @Test func duplicatesOfEachOfTheLastFiveBatchesReturnTheirOriginalOffsets() throws {
        var leader = ProducerStateLeader()
        // A non-producer batch first so that offsets and sequences differ.
        leader.produce(try clientBatchHeader(producer: -1, epoch: -1, sequence: -1, records: 4))
        var originals: [(sequence: Int32, first: Offset, last: Offset)] = []
        for index in 0..<7 {
            let sequence = Int32(index * 2)
            let first = leader.logEndOffset
            #expect(leader.produce(try clientBatchHeader(producer: 9, epoch: 1, sequence: sequence, records: 2)) == .append)
            originals.append((sequence, first, first + 1))
        }
        let before = leader.table
        let logEnd = leader.logEndOffset
        for original in originals.suffix(ProducerStateTable.retainedBatchCount) {
            let retry = try clientBatchHeader(producer: 9, epoch: 1, sequence: original.sequence, records: 2)
            #expect(leader.produce(retry) == .duplicate(firstOffset: original.first, lastOffset: original.last))
            #expect(leader.produce(retry).errorCode == .none)
        }
        // Older than the cached five: Kafka cannot tell a retry from a rewind and says out of order.
        for original in originals.prefix(2) {
            let retry = try clientBatchHeader(producer: 9, epoch: 1, sequence: original.sequence, records: 2)
            #expect(leader.produce(retry) == .reject(.outOfOrderSequenceNumber))
        }
        // Same first sequence but a different last one is not a duplicate.
        #expect(leader.produce(try clientBatchHeader(producer: 9, epoch: 1, sequence: 12, records: 1)) == .reject(.outOfOrderSequenceNumber))
        #expect(leader.table == before, "duplicates and refusals change nothing")
        #expect(leader.logEndOffset == logEnd)
    }

    @Test func sequenceWrapsFromInt32MaxToZero() throws {
        #expect(ProducerSequence.advance(Int32.max - 1, by: 2) == 0)
        #expect(ProducerSequence.advance(Int32.max, by: 1) == 0)
        #expect(ProducerSequence.advance(Int32.max - 1, by: 1) == Int32.max)
        #expect(ProducerSequence.advance(5, by: 0) == 5)
        #expect(ProducerSequence.follows(0, after: Int32.max))
        #expect(!ProducerSequence.follows(1, after: Int32.max))
        #expect(!ProducerSequence.follows(Int32.min, after: Int32.max), "no signed overflow")

        // A producer far into its sequence space, known from replay.
        var table = ProducerStateTable()
        table.recordAppended(try clientBatchHeader(producer: 3, epoch: 0, sequence: Int32.max - 3, records: 3), firstOffset: .zero)
        #expect(table.entry(for: ProducerID(3))?.lastSequence == Int32.max - 1)

        let straddling = try clientBatchHeader(producer: 3, epoch: 0, sequence: Int32.max, records: 3)
        #expect(ProducerBatch(straddling).lastSequence == 1)
        #expect(table.validate(straddling) == .append)
        table.recordAppended(straddling, firstOffset: Offset(3))
        #expect(table.validate(straddling) == .duplicate(firstOffset: Offset(3), lastOffset: Offset(5)))
        #expect(table.validate(try clientBatchHeader(producer: 3, epoch: 0, sequence: 2)) == .append)
        #expect(table.validate(try clientBatchHeader(producer: 3, epoch: 0, sequence: 0)) == .reject(.outOfOrderSequenceNumber))

        // Ending exactly on Int32.max: the next batch starts at 0.
        var exact = ProducerStateTable()
        exact.recordAppended(try clientBatchHeader(producer: 4, epoch: 0, sequence: Int32.max - 1, records: 2), firstOffset: .zero)
        #expect(exact.validate(try clientBatchHeader(producer: 4, epoch: 0, sequence: 0)) == .append)
        #expect(exact.validate(try clientBatchHeader(producer: 4, epoch: 0, sequence: Int32.max)) == .reject(.outOfOrderSequenceNumber))
    }

    @Test func epochBumpStartsAtZeroAndFencesTheOldEpoch() throws {
        var leader = ProducerStateLeader()
        let epochZeroFirst = try clientBatchHeader(producer: 5, epoch: 0, sequence: 0, records: 2)
        #expect(leader.produce(epochZeroFirst) == .append)
        #expect(leader.produce(try clientBatchHeader(producer: 5, epoch: 0, sequence: 2)) == .append)

        #expect(leader.produce(try clientBatchHeader(producer: 5, epoch: 1, sequence: 3)) == .reject(.outOfOrderSequenceNumber),
                "a new epoch continuing the old sequence")
        #expect(leader.table.entry(for: ProducerID(5))?.producerEpoch == ProducerEpoch(0))
        #expect(leader.produce(try clientBatchHeader(producer: 5, epoch: 1, sequence: 0)) == .append)
        let entry = try #require(leader.table.entry(for: ProducerID(5)))
        #expect(entry.producerEpoch == ProducerEpoch(1))
        #expect(entry.batches.count == 1, "the old epoch's batches are forgotten")

        #expect(leader.produce(try clientBatchHeader(producer: 5, epoch: 0, sequence: 3)) == .reject(.invalidProducerEpoch))
        #expect(leader.produce(epochZeroFirst) == .reject(.invalidProducerEpoch), "an old-epoch retry is fenced, not a duplicate")
        #expect(leader.produce(try clientBatchHeader(producer: 5, epoch: 1, sequence: 1)) == .append)
        #expect(leader.produce(try clientBatchHeader(producer: 5, epoch: 3, sequence: 0)) == .append, "epochs may skip")
    }

    @Test func transactionMarkersChangeOnlyTheEpoch() throws {
        var leader = ProducerStateLeader()
        #expect(leader.produce(try clientBatchHeader(producer: 8, epoch: 1, sequence: 0, records: 2, transactional: true)) == .append)
        leader.append(try markerBatchHeader(producer: 8, epoch: 1))
        var entry = try #require(leader.table.entry(for: ProducerID(8)))
        #expect(entry.batches.count == 1, "a marker of the same epoch adds no batch")
        #expect(entry.lastSequence == 1)
        #expect(entry.lastWrittenOffset == Offset(2))

        // Tern bumps the epoch at every transaction end: the marker carries the new epoch.
        leader.append(try markerBatchHeader(producer: 8, epoch: 2, type: .abort))
        entry = try #require(leader.table.entry(for: ProducerID(8)))
        #expect(entry.producerEpoch == ProducerEpoch(2))
        #expect(entry.batches.isEmpty)
        #expect(entry.lastSequence == nil)
        #expect(leader.produce(try clientBatchHeader(producer: 8, epoch: 2, sequence: 2)) == .reject(.outOfOrderSequenceNumber))
        #expect(leader.produce(try clientBatchHeader(producer: 8, epoch: 1, sequence: 2)) == .reject(.invalidProducerEpoch))
        #expect(leader.produce(try clientBatchHeader(producer: 8, epoch: 2, sequence: 0, transactional: true)) == .append)
        #expect(leader.table.validate(try markerBatchHeader(producer: 8, epoch: 2)) == .reject(.invalidRecord),
                "clients never send control batches")
    }

    @Test func recordAppendedAcceptsAnyReplayedHistory() throws {
        // Histories a leader validation would refuse today (expired state, a leader with a
        // different view) must still replay without trapping, and the last batch decides.
        var table = ProducerStateTable()
        table.recordAppended(try clientBatchHeader(producer: 2, epoch: 4, sequence: 10), firstOffset: Offset(0))
        table.recordAppended(try clientBatchHeader(producer: 2, epoch: 4, sequence: 50), firstOffset: Offset(1))
        table.recordAppended(try clientBatchHeader(producer: 2, epoch: 3, sequence: 7), firstOffset: Offset(5))
        let entry = try #require(table.entry(for: ProducerID(2)))
        #expect(entry.producerEpoch == ProducerEpoch(3))
        #expect(entry.batches.map(\.firstSequence) == [7])
        #expect(table.endOffset == Offset(6))
    }
}

@Suite struct ProducerStateReplayTests {
    /// A seeded workload: several producers, retries of recent and old batches, gaps, epoch
    /// bumps, markers and non-idempotent batches, through the leader's path.
    func workload(seed: UInt64, steps: Int) throws -> ProducerStateLeader {
        var random = DeterministicRandom(seed: seed)
        var leader = ProducerStateLeader()
        var nextSequence: [Int64: Int32] = [:]
        var epochs: [Int64: Int16] = [:]
        var sent: [RecordBatchHeader] = []
        for _ in 0..<steps {
            let producer = Int64(random.next(below: 4))
            let epoch = epochs[producer, default: 0]
            switch random.next(below: 10) {
            case 0:
                leader.produce(try clientBatchHeader(producer: -1, epoch: -1, sequence: -1, records: 1 + Int(random.next(below: 3))))
            case 1 where !sent.isEmpty:
                leader.produce(sent[Int(random.next(below: UInt64(sent.count)))])  // a retry, maybe too old
            case 2:
                epochs[producer] = epoch + 1
                nextSequence[producer] = 0
                if random.next(below: 2) == 0 { leader.append(try markerBatchHeader(producer: producer, epoch: epoch + 1)) }
            case 3:
                let gap = Int32(1 + random.next(below: 3))
                leader.produce(try clientBatchHeader(producer: producer, epoch: epoch, sequence: nextSequence[producer, default: 0] + gap))
            default:
                let records = 1 + Int(random.next(below: 4))
                let batch = try clientBatchHeader(producer: producer, epoch: epoch, sequence: nextSequence[producer, default: 0],
                                              records: records, timestamp: Int64(random.next(below: 1_000_000)))
                if leader.produce(batch) == .append {
                    nextSequence[producer, default: 0] += Int32(records)
                    sent.append(batch)
                }
            }
        }
        return leader
    }

    @Test(arguments: [1, 2, 3, 42] as [UInt64])
    func stateRebuiltFromTheLogEqualsTheLeaders(seed: UInt64) throws {
        let leader = try workload(seed: seed, steps: 400)
        #expect(leader.table.producerIDs.count > 1)
        let replayed = ProducerStateTable.rebuild(replaying: leader.log)
        #expect(replayed == leader.table)

        // From a snapshot at every batch boundary plus the rest of the log.
        var prefix = ProducerStateTable()
        for (index, header) in leader.log.enumerated() {
            let snapshot = try ProducerStateTable.decodeSnapshot(prefix.encodeSnapshot(at: prefix.endOffset))
            #expect(ProducerStateTable.rebuild(from: snapshot, replaying: leader.log) == leader.table,
                    "whole log replayed over a snapshot: earlier batches are skipped")
            #expect(ProducerStateTable.rebuild(from: snapshot, replaying: leader.log[index...]) == leader.table)
            prefix.recordAppended(header, firstOffset: Offset(header.baseOffset))
        }
    }

    @Test func truncationIsExactOrAsksForARebuild() throws {
        let leader = try workload(seed: 7, steps: 200)
        var snapshots: [Offset: [UInt8]] = [:]
        var prefix = ProducerStateTable()
        for index in stride(from: 0, to: leader.log.count, by: 10) {
            prefix = ProducerStateTable.rebuild(from: prefix, replaying: leader.log[..<index])
            snapshots[prefix.endOffset] = prefix.encodeSnapshot(at: prefix.endOffset)
        }
        var sawRebuild = false
        for (index, header) in leader.log.enumerated() {
            let truncationOffset = Offset(header.baseOffset)
            let expected = ProducerStateTable.rebuild(replaying: leader.log[..<index])
            var truncated = leader.table
            switch truncated.truncate(to: truncationOffset) {
            case .exact:
                #expect(truncated == expected)
            case .rebuildRequired:
                sawRebuild = true
                #expect(truncated == leader.table, "left untouched")
                let available = snapshots.keys.sorted()
                let start = try #require(ProducerStateSnapshotFiles.snapshotToLoad(forLogEndOffset: truncationOffset, among: available))
                let snapshot = try ProducerStateTable.decodeSnapshot(try #require(snapshots[start]))
                let rebuilt = ProducerStateTable.rebuild(from: snapshot, replaying: leader.log[..<index])
                #expect(rebuilt == expected)
                #expect(ProducerStateSnapshotFiles.snapshotsToDelete(truncatingTo: truncationOffset, among: available)
                        == available.filter { $0 > truncationOffset })
            }
        }
        #expect(sawRebuild)
        var tail = leader.table
        #expect(tail.truncate(to: leader.logEndOffset + 10) == .exact)
        #expect(tail == leader.table)
    }

    @Test func truncatingOnlyNonProducerBatchesIsExact() throws {
        var leader = ProducerStateLeader()
        leader.produce(try clientBatchHeader(producer: 1, epoch: 0, sequence: 0))
        leader.produce(try clientBatchHeader(producer: -1, epoch: -1, sequence: -1, records: 3))
        var table = leader.table
        #expect(table.truncate(to: Offset(2)) == .exact)
        #expect(table.endOffset == Offset(2))
        #expect(table.truncate(to: Offset(0)) == .rebuildRequired)
        #expect(table.endOffset == Offset(2))
    }
}
