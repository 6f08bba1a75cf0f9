import TernCore
import Testing

/// The zig-zag varints of the record format (ByteReader/ByteWriter in TernCore).
@Suite struct VarintTests {
    /// Value, then its exact encoding: zig-zag maps 0, -1, 1, -2 ... to 0, 1, 2, 3 ..., then LEB128.
    static let varintCases: [(Int32, [UInt8])] = [
        (0, [0x00]),
        (-1, [0x01]),
        (1, [0x02]),
        (-64, [0x7F]),
        (64, [0x80, 0x01]),
        (Int32.max, [0xFE, 0xFF, 0xFF, 0xFF, 0x0F]),
        (Int32.min, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]),
    ]

    static let varlongCases: [(Int64, [UInt8])] = [
        (0, [0x00]),
        (-1, [0x01]),
        (1, [0x02]),
        (Int64(Int32.max) + 1, [0x80, 0x80, 0x80, 0x80, 0x10]),
        (Int64.max, [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        (Int64.min, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    ]

    @Test(arguments: varintCases)
    func varintEncodesAndDecodes(value: Int32, encoding: [UInt8]) throws {
        var writer = ByteWriter()
        writer.writeVarint(value)
        #expect(writer.bytes == encoding)
        #expect(varintSize(Int64(value)) == encoding.count)
        var reader = ByteReader(encoding)
        #expect(try reader.readVarint() == value)
        #expect(reader.isAtEnd)
    }

    @Test(arguments: varlongCases)
    func varlongEncodesAndDecodes(value: Int64, encoding: [UInt8]) throws {
        var writer = ByteWriter()
        writer.writeVarlong(value)
        #expect(writer.bytes == encoding)
        #expect(varintSize(value) == encoding.count)
        var reader = ByteReader(encoding)
        #expect(try reader.readVarlong() == value)
        #expect(reader.isAtEnd)
    }

    @Test func varintRoundTripsAcrossPowersOfTwo() throws {
        var writer = ByteWriter()
        var values: [Int32] = []
        for shift in 0..<31 {
            let power = Int32(1) << shift
            values += [power - 1, power, -power, -power + 1]
        }
        for value in values { writer.writeVarint(value) }
        var reader = ByteReader(writer.bytes)
        for value in values { #expect(try reader.readVarint() == value) }
        #expect(reader.isAtEnd)
    }

    @Test func sixByteVarintIsMalformed() {
        // Five continuation bytes then a sixth: more than 32 bits.
        var reader = ByteReader([0x80, 0x80, 0x80, 0x80, 0x80, 0x00])
        #expect(throws: DecodeError.malformedVarint(position: 0)) { try reader.readVarint() }
    }

    @Test func fifthVarintByteAbove32BitsIsMalformed() {
        // 0x1F in the fifth byte sets bit 32.
        var reader = ByteReader([0xFF, 0xFF, 0xFF, 0xFF, 0x1F])
        #expect(throws: DecodeError.malformedVarint(position: 0)) { try reader.readVarint() }
    }

    @Test func elevenByteVarlongIsMalformed() {
        var reader = ByteReader([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00])
        #expect(throws: DecodeError.malformedVarint(position: 0)) { try reader.readVarlong() }
    }

    @Test func truncatedVarintThrows() {
        var reader = ByteReader([0x80, 0x80])
        #expect(throws: DecodeError.truncated(position: 2, needed: 1, available: 0)) { try reader.readVarint() }
        var empty = ByteReader([])
        #expect(throws: DecodeError.truncated(position: 0, needed: 1, available: 0)) { try empty.readVarlong() }
    }
}
