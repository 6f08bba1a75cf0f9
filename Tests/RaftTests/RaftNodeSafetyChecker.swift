import KafkaProtocol
import LogStorage
import Raft
import SimWorld
import TernCore

/// Raft's safety properties, checked from outside the nodes on every step:
///
/// - Election Safety: at most one leader per term.
/// - State Machine Safety: an index, once committed anywhere, always holds the same entry.
/// - Leader Completeness: a new leader holds every entry committed in an earlier term (a leader
///   of an older term can still be elected late, by a vote that was delayed, and lack entries
///   committed since; it cannot commit anything).
/// - Log Matching: two logs with the same term at an index agree on everything before it.
/// - Persist before send: a message leaves a node only once the term it carries is durable on
///   its disk (but for pre-vote requests and granted pre-votes, whose terms nobody has entered),
///   a vote request or a granted vote only once the vote is durable, and an acknowledged match
///   index only once that many entries are; no node ever votes for two candidates in one term.
final class RaftNodeSafetyChecker {
    private(set) var failures: [String] = []
    private var leaderOfTerm: [Term: NodeID] = [:]
    private var committed: [LogIndex: RaftLogEntry] = [:]
    /// The lowest term in which a node handed out each committed entry: the entry was committed
    /// in that term or earlier, so leaders of later terms must hold it.
    private var committedByTerm: [LogIndex: Term] = [:]
    private var highestCommitted = LogIndex.zero
    private var voteOfTerm: [Term: [NodeID: NodeID]] = [:]
    private(set) var votesChecked = 0
    private(set) var acknowledgementsChecked = 0
    private(set) var termsChecked = 0
    private var durableEntryCache: [String: (key: String, count: Int64)] = [:]

    func fail(_ message: String) {
        if failures.count < 20 && !failures.contains(message) { failures.append(message) }
    }

    func observeRoles(_ nodes: [RaftNode]) {
        for node in nodes where node.isLeader {
            if let known = leaderOfTerm[node.term] {
                if known != node.nodeID { fail("two leaders in term \(node.term): \(known) and \(node.nodeID)") }
                continue
            }
            leaderOfTerm[node.term] = node.nodeID
            checkCompleteness(of: node)
        }
    }

    private func checkCompleteness(of leader: RaftNode) {
        guard let core = leader.core else { return }
        for index in committed.keys.sorted() where committedByTerm[index]! < leader.term && core.entry(at: index) != committed[index] {
            fail("leader \(leader.nodeID) of term \(leader.term) lacks entry \(index), committed by term \(committedByTerm[index]!)")
            return
        }
    }

    /// `term`: the node's term when it handed the entry out.
    func observeCommitted(_ entry: RaftLogEntry, by node: NodeID, inTerm term: Term) {
        committedByTerm[entry.index] = min(committedByTerm[entry.index] ?? term, term)
        if let known = committed[entry.index] {
            if known != entry { fail("node \(node) committed \(entry) at \(entry.index) where \(known) was committed") }
        } else {
            committed[entry.index] = entry
            highestCommitted = max(highestCommitted, entry.index)
        }
    }

    var committedCount: Int { committed.count }

    func checkLogMatching(_ nodes: [RaftNode]) {
        let logs = nodes.compactMap { node in node.core.map { (node.nodeID, $0.entries) } }
        for (position, (first, left)) in logs.enumerated() {
            for (second, right) in logs[(position + 1)...] {
                var agreedPrefix = 0
                for index in stride(from: min(left.count, right.count), to: 0, by: -1)
                where left[index - 1].term == right[index - 1].term {
                    agreedPrefix = index
                    break
                }
                if left[..<agreedPrefix] != right[..<agreedPrefix] {
                    fail("logs of \(first) and \(second) share term at \(agreedPrefix) but differ before it")
                }
            }
        }
    }

    /// Looks at a message as it leaves `sender`, against what `sender`'s disk holds durably.
    func observeSend(_ bytes: [UInt8], from sender: NodeID, disk: SimDisk, directory: String) {
        guard let message = try? RaftMessageCodec.decode(bytes) else {
            fail("node \(sender) sent bytes that do not decode")
            return
        }
        let durable = disk.durableContents(of: directory + "/quorum-state").flatMap { try? HardStateDecoding.decode($0) }
        checkTerm(of: message, durable: durable)
        switch message.body {
        case .voteResponse(isPreVote: false, granted: true):
            votesChecked += 1
            recordVote(by: sender, for: message.to, term: message.term)
            if durable?.term != message.term || durable?.votedFor != message.to {
                fail("node \(sender) granted its vote for \(message.to) in term \(message.term) before it was durable (durable: \(String(describing: durable)))")
            }
        case let .voteRequest(request) where !request.isPreVote:
            if durable?.term != message.term || durable?.votedFor != sender {
                fail("node \(sender) asked for votes in term \(message.term) before its own vote was durable (durable: \(String(describing: durable)))")
            }
        case let .appendAccepted(matchIndex):
            acknowledgementsChecked += 1
            let durable = durableEntryCount(disk: disk, directory: directory)
            if durable < matchIndex.rawValue {
                fail("node \(sender) acknowledged \(matchIndex) with only \(durable) entries durable")
            }
        default:
            break
        }
    }

    /// A term a message carries is one its sender has entered, durably: a crash must not take
    /// the sender back behind what a peer heard from it.
    private func checkTerm(of message: RaftMessage, durable: RaftHardState?) {
        switch message.body {
        case let .voteRequest(request) where request.isPreVote: return
        case .voteResponse(isPreVote: true, granted: true): return
        default: break
        }
        termsChecked += 1
        let durableTerm = durable?.term ?? .zero
        if durableTerm < message.term {
            fail("node \(message.from) sent \(message.body) in term \(message.term) with term \(durableTerm) durable")
        }
    }

    private func recordVote(by voter: NodeID, for candidate: NodeID, term: Term) {
        if let earlier = voteOfTerm[term]?[voter], earlier != candidate {
            fail("node \(voter) voted for \(earlier) and \(candidate) in term \(term)")
        }
        voteOfTerm[term, default: [:]][voter] = candidate
    }

    /// Entries from offset 0 that a crash keeping nothing unsynced would leave, by reading the
    /// durable image of the segment files. Cached per disk state.
    private func durableEntryCount(disk: SimDisk, directory: String) -> Int64 {
        let key = "\(disk.statistics.syncsSucceeded)/\(disk.statistics.crashes)/\(disk.statistics.processKills)"
        if let cached = durableEntryCache[directory], cached.key == key { return cached.count }
        let names = (disk.durableListing(of: directory) ?? []).filter { $0.hasSuffix(".log") }.sorted()
        var expected: Int64 = 0
        scan: for name in names {
            guard let bytes = disk.durableContents(of: directory + "/" + name) else { continue }
            var position = 0
            while position < bytes.count {
                guard let header = try? RecordBatchHeader.validateFraming(bytes, at: position),
                      header.baseOffset == expected else { break scan }
                expected = header.nextOffset
                position += header.totalSize
            }
        }
        durableEntryCache[directory] = (key, expected)
        return expected
    }
}

/// The quorum-state format, decoded independently of the module's own reader.
enum HardStateDecoding {
    struct Malformed: Error {}

    static func decode(_ bytes: [UInt8]) throws -> RaftHardState {
        guard bytes.count == 21, Array(bytes[0..<4]) == Array("RAFT".utf8), bytes[4] == 1,
              CRC32C.checksum(bytes, range: 0..<17) == bytes.loadBigEndian(UInt32.self, at: 17) else { throw Malformed() }
        let vote = bytes.loadBigEndian(Int32.self, at: 13)
        return RaftHardState(term: Term(bytes.loadBigEndian(Int64.self, at: 5)), votedFor: vote < 0 ? nil : NodeID(vote))
    }
}
