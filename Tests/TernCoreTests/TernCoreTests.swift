import TernCore
import Testing

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    }

    @Test func hardwareAndTableAgreeOnEveryLengthAndAlignment() {
        var random = DeterministicRandom(seed: 42)
        var bytes = [UInt8](repeating: 0, count: 40_000)
        random.fill(&bytes)
        for length in Array(0..<300) + [4095, 4096, 12_287, 12_288, 12_289, 30_000, 39_990] {
            for start in 0..<3 {
                let slice = Array(bytes[start..<(start + length)])
                #expect(CRC32C.checksum(slice) == CRC32C.portableChecksum(slice), "length \(length) start \(start)")
            }
        }
    }

    @Test func incrementalEqualsWhole() {
        var random = DeterministicRandom(seed: 3)
        var bytes = [UInt8](repeating: 0, count: 50_000)
        random.fill(&bytes)
        let whole = CRC32C.checksum(bytes)
        let split = bytes.withUnsafeBytes { raw in
            CRC32C.update(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<17_001])), UnsafeRawBufferPointer(rebasing: raw[17_001...]))
        }
        #expect(whole == split)
    }
}

@Suite struct RandomTests {
    @Test func sameSeedSameSequenceAndStreamsAreIndependent() {
        var a = DeterministicRandom(seed: 99)
        var b = DeterministicRandom(seed: 99)
        #expect((0..<100).map { _ in a.next() } == (0..<100).map { _ in b.next() })
        let root = DeterministicRandom(seed: 99)
        var network = root.stream("network")
        var disk = root.stream("disk")
        #expect(network.next() != disk.next())
        var again = DeterministicRandom(seed: 99).stream("network")
        var first = root.stream("network")
        #expect(again.next() == first.next(), "a stream depends only on the seed and its label")
        var node1 = root.stream("disk", 1)
        var node2 = root.stream("disk", 2)
        #expect(node1.next() != node2.next())
    }

    @Test func knownFirstOutputPinsTheAlgorithm() {
        // SplitMix64 from 0 is a published sequence; xoshiro256** depends only on it.
        var expander = SplitMix64(seed: 0)
        #expect(expander.next() == 0xE220_A839_7B1D_CDAF)
        #expect(stableHash("") == 0xCBF2_9CE4_8422_2325)
    }

    @Test func boundedDrawsStayInRange() {
        var random = DeterministicRandom(seed: 5)
        for _ in 0..<10_000 {
            #expect(random.next(below: 7) < 7)
            let value = random.int(in: -3...3)
            #expect(value >= -3 && value <= 3)
            let unit = random.unitInterval()
            #expect(unit >= 0 && unit < 1)
        }
        #expect(!random.chance(0) && random.chance(1))
    }
}

@Suite struct ByteReaderWriterTests {
    @Test func integersRoundTripBigEndian() throws {
        var writer = ByteWriter()
        writer.writeInt8(-2)
        writer.writeInt16(-300)
        writer.writeInt32(0x0102_0304)
        writer.writeInt64(-5)
        writer.writeBool(true)
        #expect(Array(writer.bytes[3..<7]) == [1, 2, 3, 4])
        var reader = ByteReader(writer.bytes)
        #expect(try reader.readInt8() == -2)
        #expect(try reader.readInt16() == -300)
        #expect(try reader.readInt32() == 0x0102_0304)
        #expect(try reader.readInt64() == -5)
        #expect(try reader.readBool())
        #expect(reader.isAtEnd)
    }

    @Test func readsPastTheEndThrowInsteadOfTrapping() {
        var reader = ByteReader([1, 2, 3])
        #expect(throws: DecodeError.truncated(position: 0, needed: 4, available: 3)) { try reader.readInt32() }
        #expect(throws: DecodeError.self) { try reader.readBytes(Int(Int32.max)) }
        #expect(throws: DecodeError.self) { try reader.readBytes(-1) }
        #expect(throws: DecodeError.self) { try reader.skip(4) }
        #expect(reader.position == 0, "a failed read consumes nothing")
    }

    @Test func varintsRoundTripAtTheBoundaries() throws {
        let values: [Int64] = [0, -1, 1, 63, -64, 64, Int64(Int32.max), Int64(Int32.min), Int64.max, Int64.min]
        var writer = ByteWriter()
        for value in values { writer.writeVarlong(value) }
        for value in values where value >= Int64(Int32.min) && value <= Int64(Int32.max) { writer.writeVarint(Int32(value)) }
        var reader = ByteReader(writer.bytes)
        for value in values { #expect(try reader.readVarlong() == value) }
        for value in values where value >= Int64(Int32.min) && value <= Int64(Int32.max) { #expect(try reader.readVarint() == Int32(value)) }
        #expect(varintSize(-1) == 1 && varintSize(64) == 2 && unsignedVarintSize(UInt64(UInt32.max)) == 5)
    }

    @Test func overlongVarintsAreMalformed() {
        var tooLong = ByteReader([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        #expect(throws: DecodeError.malformedVarint(position: 0)) { try tooLong.readUnsignedVarint() }
        var unterminated = ByteReader([0x80, 0x80])
        #expect(throws: DecodeError.self) { try unterminated.readVarint() }
    }

    @Test func invalidUTF8IsRejected() {
        var reader = ByteReader([0xC3, 0x28])
        #expect(throws: DecodeError.self) { try reader.readString(2) }
    }
}

@Suite struct BoundedCollectionTests {
    @Test func ringBufferRefusesWhenFullAndKeepsOrder() {
        var ring = RingBuffer<Int>(capacity: 3)
        let accepted = [ring.append(1), ring.append(2), ring.append(3)]
        #expect(accepted == [true, true, true])
        let overflow = ring.append(4)
        #expect(!overflow, "a full ring refuses instead of growing")
        let first = ring.popFirst()
        #expect(first == 1)
        let refill = ring.append(5)
        #expect(refill)
        #expect(Array(ring) == [2, 3, 5])
    }

    @Test func heapPopsInOrderWithinItsBound() {
        var heap = BoundedHeap<Int>(capacity: 100)
        var random = DeterministicRandom(seed: 8)
        var inserted: [Int] = []
        for _ in 0..<100 {
            let value = random.int(in: 0...1000)
            inserted.append(value)
            let accepted = heap.insert(value)
            #expect(accepted)
        }
        let overflow = heap.insert(1)
        #expect(!overflow)
        var popped: [Int] = []
        while let value = heap.popMin() { popped.append(value) }
        #expect(popped == inserted.sorted())
    }
}

@Suite struct TimeTests {
    @Test func arithmeticAndFormatting() {
        let start = Instant(nanoseconds: 1_000)
        #expect((start + .milliseconds(2)) - start == .milliseconds(2))
        #expect(Duration.seconds(3).description == "3.000s")
        #expect(Duration.microseconds(1500).description == "1.500ms")
        #expect(formatFixed(-0.5, places: 2) == "-0.50")
        #expect(formatFixed(12.345, places: 1) == "12.3")
    }
}

@Suite struct ASCIISplitTests {
    /// Splitting by bytes agrees with the standard library's split by `Character` wherever the
    /// separator stands alone (no combining mark after it), empty pieces kept or dropped.
    @Test func agreesWithCharacterSplit() {
        let texts = ["", "/", "//", "a", "/a/b/", "a//b", "./x/../y", "tern-partition-metadata 1\ntopic-id 0f\n", "é/ü/日本", "\n\n", "a b  c "]
        for text in texts {
            for separator: Unicode.Scalar in ["/", "\n", " "] {
                for omitting in [true, false] {
                    let expected = text.split(separator: Character(separator), omittingEmptySubsequences: omitting)
                    #expect(text.split(ascii: separator, omittingEmptySubsequences: omitting) == expected,
                            "'\(text)' by \(separator.escaped(asASCII: true)), omitting empty: \(omitting)")
                    #expect(Substring(text).split(ascii: separator, omittingEmptySubsequences: omitting) == expected)
                }
            }
        }
    }

    /// Where a combining mark follows the separator the two differ, by design: bytes split there.
    @Test func splitsBeforeACombiningMarkThatCharactersWouldJoin() {
        let text = "a/\u{301}b"
        #expect(text.split(separator: "/").count == 1)
        #expect(text.split(ascii: "/") == ["a", "\u{301}b"])
    }
}
