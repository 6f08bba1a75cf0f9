import Raft
import Testing
import TernCore

/// The message codec: golden bytes pin the format, round trips cover every kind, and random,
/// truncated and mutated inputs must produce a `DecodeError` (or a well-formed message), never a
/// trap or an allocation the input cannot back.
struct RaftMessageCodecTests {
    static let samples: [RaftMessage] = {
        let one = NodeID(1), two = NodeID(2)
        let entries = [
            RaftLogEntry(index: LogIndex(8), term: Term(3), kind: .leaderChange, payload: []),
            RaftLogEntry(index: LogIndex(9), term: Term(4), payload: Array("topic-created".utf8)),
            RaftLogEntry(index: LogIndex(10), term: Term(4), payload: [UInt8](repeating: 0xAB, count: 300)),
        ]
        return [
            RaftMessage(from: one, to: two, term: Term(5), body: .voteRequest(RaftVoteRequest(
                isPreVote: true, lastLogIndex: LogIndex(7), lastLogTerm: Term(3)))),
            RaftMessage(from: one, to: two, term: Term(5), body: .voteRequest(RaftVoteRequest(
                isPreVote: false, lastLogIndex: LogIndex(1 << 40), lastLogTerm: Term(5), isLeadershipTransfer: true))),
            RaftMessage(from: two, to: one, term: Term(5), body: .voteResponse(isPreVote: true, granted: true)),
            RaftMessage(from: two, to: one, term: Term(5), body: .voteResponse(isPreVote: false, granted: false)),
            RaftMessage(from: one, to: two, term: Term(4), body: .appendEntries(RaftAppendEntries(
                previousIndex: LogIndex(7), previousTerm: Term(3), entries: entries, leaderCommit: LogIndex(6)))),
            RaftMessage(from: one, to: two, term: Term(4), body: .appendEntries(RaftAppendEntries(
                previousIndex: .zero, previousTerm: .zero, entries: [], leaderCommit: .zero))),
            RaftMessage(from: two, to: one, term: Term(4), body: .appendAccepted(matchIndex: LogIndex(10))),
            RaftMessage(from: two, to: one, term: Term(4), body: .appendRejected(rejectedIndex: LogIndex(9), hintIndex: LogIndex(5), hintTerm: Term(2))),
            RaftMessage(from: one, to: NodeID(Int32.max), term: .maximum, body: .heartbeat(commitIndex: LogIndex(3))),
            RaftMessage(from: two, to: one, term: Term(4), body: .heartbeatResponse),
            RaftMessage(from: one, to: two, term: Term(4), body: .timeoutNow),
        ]
    }()

    @Test func goldenBytes() throws {
        // magic 'R', version 1, kind 6 (heartbeat), from 1 (zig-zag 2), to 2 (4), term 3, commit 5
        let heartbeat = RaftMessage(from: NodeID(1), to: NodeID(2), term: Term(3), body: .heartbeat(commitIndex: LogIndex(5)))
        #expect(RaftMessageCodec.encode(heartbeat) == [0x52, 0x01, 0x06, 0x02, 0x04, 0x03, 0x05])
        // kind 1 (vote request), flags 1 (pre-vote), last index 200 (varint C8 01), last term 2
        let preVote = RaftMessage(from: NodeID(3), to: NodeID(1), term: Term(2), body: .voteRequest(RaftVoteRequest(
            isPreVote: true, lastLogIndex: LogIndex(200), lastLogTerm: Term(2))))
        #expect(RaftMessageCodec.encode(preVote) == [0x52, 0x01, 0x01, 0x06, 0x02, 0x02, 0x01, 0xC8, 0x01, 0x02])
        // kind 3 (append): previous 4@1, commit 4, one entry: term 2, kind 0, length 2, "hi"
        let append = RaftMessage(from: NodeID(1), to: NodeID(2), term: Term(2), body: .appendEntries(RaftAppendEntries(
            previousIndex: LogIndex(4), previousTerm: Term(1),
            entries: [RaftLogEntry(index: LogIndex(5), term: Term(2), payload: Array("hi".utf8))], leaderCommit: LogIndex(4))))
        let appendBytes: [UInt8] = [0x52, 0x01, 0x03, 0x02, 0x04, 0x02, 0x04, 0x01, 0x04, 0x01, 0x02, 0x00, 0x02, 0x68, 0x69]
        #expect(RaftMessageCodec.encode(append) == appendBytes)
        #expect(try RaftMessageCodec.decode(appendBytes) == append)
    }

    @Test(arguments: samples)
    func roundTrip(_ message: RaftMessage) throws {
        let bytes = RaftMessageCodec.encode(message)
        #expect(RaftMessageCodec.isRaftMessage(bytes))
        #expect(try RaftMessageCodec.decode(bytes) == message)
    }

    @Test(arguments: samples)
    func everyTruncationFails(_ message: RaftMessage) {
        let bytes = RaftMessageCodec.encode(message)
        for length in 0..<bytes.count {
            #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(Array(bytes[..<length])) }
        }
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(bytes + [0]) }
    }

    /// Flipping bytes of valid messages: whatever decodes must be well formed and survive a round
    /// trip (varints may have been made overlong, so the bytes themselves can differ); everything
    /// else is a DecodeError.
    @Test func mutationsNeverTrap() throws {
        var random = DeterministicRandom(seed: 99)
        var decoded = 0
        for _ in 0..<20_000 {
            var bytes = RaftMessageCodec.encode(Self.samples[random.int(in: 0...(Self.samples.count - 1))])
            for _ in 0..<random.int(in: 1...4) {
                bytes[random.int(in: 0...(bytes.count - 1))] = UInt8(truncatingIfNeeded: random.next())
            }
            guard let message = try? RaftMessageCodec.decode(bytes) else { continue }
            decoded += 1
            #expect(message.isWellFormed)
            #expect(try RaftMessageCodec.decode(RaftMessageCodec.encode(message)) == message)
        }
        #expect(decoded > 0)
    }

    @Test func randomBytesNeverTrap() {
        var random = DeterministicRandom(seed: 7)
        for _ in 0..<50_000 {
            var bytes = [UInt8](repeating: 0, count: random.int(in: 0...64))
            random.fill(&bytes)
            if !bytes.isEmpty && random.chance(0.7) { bytes[0] = RaftMessageCodec.magic }
            if bytes.count > 1 && random.chance(0.7) { bytes[1] = RaftMessageCodec.currentVersion }
            if let message = try? RaftMessageCodec.decode(bytes) { #expect(message.isWellFormed) }
        }
    }

    @Test func limitsAreCheckedBeforeAllocating() {
        // An append claiming 4096 entries with 3 bytes left.
        let hugeCount: [UInt8] = [0x52, 0x01, 0x03, 0x02, 0x04, 0x02, 0x00, 0x00, 0x00, 0x80, 0x20, 0x01, 0x00, 0x00]
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(hugeCount) }
        // One entry claiming a 2 GiB payload.
        let hugePayload: [UInt8] = [0x52, 0x01, 0x03, 0x02, 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x07]
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(hugePayload) }
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode([UInt8](repeating: 0x52, count: RaftMessageCodec.maximumMessageBytes + 1)) }
    }

    @Test func inconsistentMessagesAreRefused() {
        func encodedAppend(previousTerm: UInt8, entryTerms: [UInt8], messageTerm: UInt8) -> [UInt8] {
            var bytes: [UInt8] = [0x52, 0x01, 0x03, 0x02, 0x04, messageTerm, 0x04, previousTerm, 0x00, UInt8(entryTerms.count)]
            for term in entryTerms { bytes += [term, 0x00, 0x00] }
            return bytes
        }
        #expect((try? RaftMessageCodec.decode(encodedAppend(previousTerm: 1, entryTerms: [1, 2], messageTerm: 2))) != nil)
        // Entry terms going down, beyond the message's term, below the previous term, or zero.
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(encodedAppend(previousTerm: 1, entryTerms: [2, 1], messageTerm: 2)) }
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(encodedAppend(previousTerm: 1, entryTerms: [3], messageTerm: 2)) }
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(encodedAppend(previousTerm: 2, entryTerms: [1], messageTerm: 2)) }
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(encodedAppend(previousTerm: 0, entryTerms: [0], messageTerm: 2)) }
        // Unknown kind, unknown flags, a newer version, a negative node id.
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode([0x52, 0x01, 0x09, 0x02, 0x04, 0x01]) }
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode([0x52, 0x01, 0x02, 0x02, 0x04, 0x01, 0x04]) }
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode([0x52, 0x02, 0x07, 0x02, 0x04, 0x01]) }
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode([0x52, 0x01, 0x07, 0x01, 0x04, 0x01]) }
        // A term beyond what a 32-bit leader epoch can store.
        let hugeTerm = RaftMessageCodec.encode(RaftMessage(from: NodeID(1), to: NodeID(2), term: .maximum, body: .heartbeatResponse))
        #expect(hugeTerm.suffix(5) == [0xFF, 0xFF, 0xFF, 0xFF, 0x07])
        #expect(throws: DecodeError.self) { try RaftMessageCodec.decode(Array(hugeTerm.dropLast()) + [0x08]) }
    }
}
