import Broker
import KafkaProtocol
import TernCore
import Testing

@Suite struct ProducerStateSnapshotTests {
    func sampleTable() throws -> ProducerStateTable {
        var leader = ProducerStateLeader()
        leader.produce(try clientBatchHeader(producer: -1, epoch: -1, sequence: -1, records: 2))
        for round in 0..<7 {
            for producer in [3, 1, 2] as [Int64] {
                leader.produce(try clientBatchHeader(producer: producer, epoch: 2, sequence: Int32(round * 2), records: 2,
                                                 timestamp: 1_000 + Int64(round)))
            }
        }
        leader.append(try markerBatchHeader(producer: 4, epoch: 6))
        leader.produce(try clientBatchHeader(producer: Int64.max, epoch: Int16.max, sequence: 0))
        return leader.table
    }

    @Test func roundTrip() throws {
        let table = try sampleTable()
        let bytes = table.encodeSnapshot(at: table.endOffset)
        let decoded = try ProducerStateTable.decodeSnapshot(bytes)
        #expect(decoded == table)
        #expect(decoded.entry(for: ProducerID(1))?.batches.count == ProducerStateTable.retainedBatchCount)
        #expect(decoded.entry(for: ProducerID(4))?.batches.isEmpty == true)
        #expect(decoded.encodeSnapshot(at: decoded.endOffset) == bytes)

        let later = try ProducerStateTable.decodeSnapshot(table.encodeSnapshot(at: table.endOffset + 100))
        #expect(later.endOffset == table.endOffset + 100, "a snapshot at the log end past non-producer batches")

        let empty = ProducerStateTable()
        #expect(try ProducerStateTable.decodeSnapshot(empty.encodeSnapshot(at: .zero)) == empty)
    }

    @Test func everySingleBitFlipIsRejected() throws {
        let bytes = try sampleTable().encodeSnapshot(at: Offset(1_000))
        for byteIndex in bytes.indices {
            for bit in 0..<8 {
                var damaged = bytes
                damaged[byteIndex] ^= UInt8(1) << UInt8(bit)
                #expect(throws: DecodeError.self, "flip of bit \(bit) in byte \(byteIndex)") {
                    try ProducerStateTable.decodeSnapshot(damaged)
                }
            }
        }
    }

    @Test func everyTruncationAndExtensionIsRejected() throws {
        let bytes = try sampleTable().encodeSnapshot(at: Offset(1_000))
        for length in 0..<bytes.count {
            #expect(throws: DecodeError.self) { try ProducerStateTable.decodeSnapshot(Array(bytes.prefix(length))) }
        }
        #expect(throws: DecodeError.self) { try ProducerStateTable.decodeSnapshot(bytes + [0]) }
    }

    /// Bytes with a correct magic, version and CRC around an arbitrary body: the checks behind the
    /// CRC must hold on their own.
    func sealed(_ body: [UInt8]) -> [UInt8] {
        var bytes = Array("TPST".utf8) + [0, 2, 0, 0, 0, 0] + body
        bytes.storeBigEndian(CRC32C.checksum(bytes, range: 10..<bytes.count), at: 6)
        return bytes
    }

    @Test func wellSealedNonsenseIsRejectedWithoutAllocating() throws {
        func body(offset: Int64, count: Int32, producers: [UInt8] = []) -> [UInt8] {
            var writer = ByteWriter()
            writer.writeInt64(offset)
            writer.writeUInt32(0xB0B)  // boundary checksum
            writer.writeInt32(count)
            writer.writeBytes(producers)
            return writer.take()
        }
        func producer(id: Int64, epoch: Int16 = 0, lastWritten: Int64, batches: [(Int32, Int32, Int64, Int64)] = [],
                      declaredBatches: UInt8? = nil) -> [UInt8] {
            var writer = ByteWriter()
            writer.writeInt64(id)
            writer.writeInt16(epoch)
            writer.writeInt64(lastWritten)
            writer.writeUInt8(declaredBatches ?? UInt8(batches.count))
            for (firstSequence, lastSequence, firstOffset, lastOffset) in batches {
                writer.writeInt32(firstSequence)
                writer.writeInt32(lastSequence)
                writer.writeInt64(firstOffset)
                writer.writeInt64(lastOffset)
                writer.writeInt64(0)
            }
            return writer.take()
        }
        let valid = sealed(body(offset: 10, count: 1, producers: producer(id: 1, lastWritten: 3, batches: [(0, 3, 0, 3)])))
        #expect(try ProducerStateTable.decodeSnapshot(valid).entry(for: ProducerID(1))?.lastSequence == 3)

        let cases: [(String, [UInt8])] = [
            ("huge producer count", sealed(body(offset: 10, count: Int32.max))),
            ("negative producer count", sealed(body(offset: 10, count: -1))),
            ("negative snapshot offset", sealed(body(offset: -1, count: 0))),
            ("huge batch count", sealed(body(offset: 10, count: 1, producers: producer(id: 1, lastWritten: 3, declaredBatches: 255)))),
            ("six batches", sealed(body(offset: 100, count: 1, producers: producer(
                id: 1, lastWritten: 5, batches: (0..<6).map { (Int32($0), Int32($0), Int64($0), Int64($0)) })))),
            ("negative producer id", sealed(body(offset: 10, count: 1, producers: producer(id: -1, lastWritten: 3)))),
            ("negative epoch", sealed(body(offset: 10, count: 1, producers: producer(id: 1, epoch: -1, lastWritten: 3)))),
            ("unsorted ids", sealed(body(offset: 10, count: 2, producers: producer(id: 2, lastWritten: 3) + producer(id: 1, lastWritten: 4)))),
            ("repeated ids", sealed(body(offset: 10, count: 2, producers: producer(id: 1, lastWritten: 3) + producer(id: 1, lastWritten: 4)))),
            ("last write past the snapshot", sealed(body(offset: 10, count: 1, producers: producer(id: 1, lastWritten: 10)))),
            ("sequence and offsets disagree", sealed(body(offset: 10, count: 1, producers: producer(id: 1, lastWritten: 3, batches: [(0, 2, 0, 3)])))),
            ("batch after the last write", sealed(body(offset: 10, count: 1, producers: producer(id: 1, lastWritten: 3, batches: [(0, 4, 0, 4)])))),
            ("batches out of order", sealed(body(offset: 10, count: 1, producers: producer(
                id: 1, lastWritten: 3, batches: [(2, 3, 2, 3), (0, 1, 0, 1)])))),
            ("negative sequence", sealed(body(offset: 10, count: 1, producers: producer(id: 1, lastWritten: 3, batches: [(-1, 0, 2, 3)])))),
            ("wrong version", { var bytes = valid; bytes[5] = 1; return bytes }()),
            ("empty", []),
        ]
        for (name, bytes) in cases {
            #expect(throws: DecodeError.self, "\(name)") { try ProducerStateTable.decodeSnapshot(bytes) }
        }

        var random = DeterministicRandom(seed: 99)
        for length in 0..<300 {
            let garbage = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            #expect(throws: DecodeError.self) { try ProducerStateTable.decodeSnapshot(garbage) }
            #expect(throws: DecodeError.self) { try ProducerStateTable.decodeSnapshot(sealed(garbage)) }
        }
    }

    @Test func encodingIsIndependentOfInsertionOrder() throws {
        // Two histories reaching the same state: the first round, in different producer orders,
        // falls out of the five-batch cache; the later rounds are identical.
        func table(firstRoundOrder: [Int64]) throws -> ProducerStateTable {
            var table = ProducerStateTable()
            var offset = Offset.zero
            for producer in firstRoundOrder {
                table.recordAppended(try clientBatchHeader(producer: producer, epoch: 0, sequence: 0), firstOffset: offset)
                offset = offset + 1
            }
            for round in 1...ProducerStateTable.retainedBatchCount {
                for producer in 0..<64 as Range<Int64> {
                    table.recordAppended(try clientBatchHeader(producer: producer, epoch: 0, sequence: Int32(round)), firstOffset: offset)
                    offset = offset + 1
                }
            }
            return table
        }
        let ascending = try table(firstRoundOrder: Array(0..<64))
        let descending = try table(firstRoundOrder: Array((0..<64).reversed()))
        var random = DeterministicRandom(seed: 5)
        let shuffled = try table(firstRoundOrder: Array(0..<64).shuffled(using: &random))
        #expect(ascending == descending)
        let bytes = ascending.encodeSnapshot(at: ascending.endOffset)
        #expect(descending.encodeSnapshot(at: descending.endOffset) == bytes)
        #expect(shuffled.encodeSnapshot(at: shuffled.endOffset) == bytes)
        #expect(ascending.producerIDs == (0..<64).map { ProducerID($0) })
    }

    @Test func snapshotFileNames() {
        #expect(ProducerStateSnapshotFiles.fileName(for: Offset(42)) == "00000000000000000042.snapshot")
        #expect(ProducerStateSnapshotFiles.fileName(for: Offset(Int64.max)) == "09223372036854775807.snapshot")
        for offset in [0, 1, 4096, Int64.max] as [Int64] {
            #expect(ProducerStateSnapshotFiles.offset(fromFileName: ProducerStateSnapshotFiles.fileName(for: Offset(offset))) == Offset(offset))
        }
        for name in ["42.snapshot", "00000000000000000042.log", "00000000000000000042.snapshot.tmp",
                     "0000000000000000004x.snapshot", "99999999999999999999.snapshot", "-0000000000000000042.snapshot",
                     "+0000000000000000042.snapshot", "leader-epoch-checkpoint", ".snapshot"] {
            #expect(ProducerStateSnapshotFiles.offset(fromFileName: name) == nil, "\(name)")
        }
        let available = [Offset(300), Offset(0), Offset(100), Offset(200)]
        #expect(ProducerStateSnapshotFiles.snapshotToLoad(forLogEndOffset: Offset(250), among: available) == Offset(200))
        #expect(ProducerStateSnapshotFiles.snapshotToLoad(forLogEndOffset: Offset(200), among: available) == Offset(200))
        #expect(ProducerStateSnapshotFiles.snapshotToLoad(forLogEndOffset: Offset(50), among: [Offset(100)]) == nil)
        #expect(ProducerStateSnapshotFiles.snapshotsToDelete(truncatingTo: Offset(150), among: available) == [Offset(200), Offset(300)])
        #expect(ProducerStateSnapshotFiles.snapshotsToDelete(truncatingTo: Offset(300), among: available).isEmpty)
    }
}
