import Foundation
import Raft
import Testing
import TernCore

/// Raft scenarios written as transcripts, like etcd's `testdata/*.txt`: each block is a command,
/// a `----` line and the output it must produce. Set RAFT_TRANSCRIPT_REWRITE=1 to regenerate the
/// expected output after a deliberate change (then review the diff).
///
/// Every node's state is checked after every step, and every pair of logs after every command
/// (`TranscriptSafety`): a line starting with `VIOLATION` fails the test even if the expected
/// output has it.
///
/// Commands:
///
///     cluster 3 [disks] [seed=N] [pre-vote=off] [check-quorum=off] [max-append=N]
///     campaign 1 · propose 1 payload · transfer 1 2
///     tick 1 20 · tick 1,2,3 20         (20 ticks of 100ms; the election timeout is 1s–2s)
///     process-ready [1,2] · deliver [1->2 | *->2 | 1->*] · stabilize
///     drop 1->2 · partition {1} {2,3} · heal · crash 2
///     status · log [1,2] · applied [1,2]
///
/// `cluster 3` runs `RaftCore`s whose storage persists each Ready at once (`CoreCluster`);
/// `cluster 3 disks` runs `RaftNode`s on simulated disks (`DiskCluster`), without `campaign` and
/// `process-ready` (a node campaigns when ticked past its election timeout; its Ready completes
/// when its disk has synced it) and with:
///
///     sync 1 · sync 1,2                 (complete every disk write in flight on those nodes)
///     power-loss 2                      (lose what node 2 had not synced, restart it from its disk)
///     crash 2                           (the process dies, the page cache survives)
struct TranscriptTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("testdata")

    static var files: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".txt") }.sorted()
    }

    @Test(arguments: files)
    func transcript(_ name: String) throws {
        let url = Self.directory.appendingPathComponent(name)
        let text = try String(contentsOf: url, encoding: .utf8)
        let blocks = TranscriptBlock.parse(text)
        var runner = TranscriptRunner()
        var rewritten: [String] = []
        for block in blocks {
            let actual = block.command.isEmpty ? [] : runner.run(block.command)
            if let command = block.command.first, !command.isEmpty {
                let violations = actual.filter { $0.hasPrefix(TranscriptSafety.prefix) }
                #expect(violations.isEmpty, "\(name): `\(command)` (line \(block.line)) broke Raft's safety:\n\(violations.joined(separator: "\n"))")
                #expect(actual == block.expected, "\(name): `\(command)` (line \(block.line))\n--- expected\n\(block.expected.joined(separator: "\n"))\n--- actual\n\(actual.joined(separator: "\n"))")
            }
            rewritten.append(block.render(actual: actual))
        }
        if ProcessInfo.processInfo.environment["RAFT_TRANSCRIPT_REWRITE"] == "1" {
            try (rewritten.joined(separator: "\n\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        }
    }
}

struct TranscriptBlock {
    var comments: [String]
    var command: [String]
    var expected: [String]
    var line: Int

    /// Blocks are separated by blank lines; `#` lines before a command are kept as comments.
    static func parse(_ text: String) -> [TranscriptBlock] {
        var blocks: [TranscriptBlock] = []
        var current: [String] = []
        var startLine = 1
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        func flush() {
            guard !current.isEmpty else { return }
            let comments = current.prefix { $0.hasPrefix("#") }
            let rest = current.dropFirst(comments.count)
            if let separator = rest.firstIndex(of: "----") {
                blocks.append(TranscriptBlock(comments: Array(comments), command: Array(rest[..<separator]),
                                              expected: Array(rest[(separator + 1)...]), line: startLine + comments.count))
            } else {
                blocks.append(TranscriptBlock(comments: Array(comments), command: [], expected: [], line: startLine))
            }
            current = []
        }
        for (number, line) in lines.enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                flush()
                startLine = number + 2
            } else {
                current.append(line)
            }
        }
        flush()
        return blocks
    }

    func render(actual: [String]) -> String {
        guard !command.isEmpty else { return comments.joined(separator: "\n") }
        return (comments + command + ["----"] + actual).joined(separator: "\n")
    }
}

struct TranscriptRunner {
    var cluster: (any TranscriptCluster)?

    mutating func run(_ commands: [String]) -> [String] {
        var output: [String] = []
        for command in commands {
            output += run(command)
        }
        return output.isEmpty ? ["ok"] : output
    }

    private mutating func run(_ command: String) -> [String] {
        let words = command.split(separator: " ").map(String.init)
        guard let verb = words.first else { return [] }
        if verb == "cluster" { return makeCluster(words) }
        guard let cluster else { return ["error: no cluster yet"] }
        cluster.output = []
        switch verb {
        case "campaign":
            guard let cluster = cluster as? CoreCluster else { return ["error: a cluster with disks campaigns when ticked"] }
            cluster.campaign(node(words[1]))
        case "propose": cluster.propose(node(words[1]), words.dropFirst(2).joined(separator: " "))
        case "transfer": cluster.transfer(from: node(words[1]), to: node(words[2]))
        case "tick":
            for id in nodes(words[1], in: cluster) { cluster.tick(id, count: Int(words[2])!) }
        case "process-ready":
            guard let cluster = cluster as? CoreCluster else { return ["error: a cluster with disks completes a Ready by sync"] }
            cluster.processReady(words.count > 1 ? nodes(words[1], in: cluster) : nil)
        case "sync", "power-loss":
            guard let cluster = cluster as? DiskCluster else { return ["error: \(verb) needs a cluster with disks"] }
            for id in nodes(words[1], in: cluster) {
                if verb == "sync" { cluster.sync(id) } else { cluster.powerLoss(id) }
            }
        case "deliver":
            if words.count > 1 {
                let (from, to) = link(words[1])
                cluster.deliver { (from == nil || $0.from == from) && (to == nil || $0.to == to) }
            } else {
                cluster.deliver()
            }
        case "stabilize": cluster.stabilize()
        case "drop":
            let (from, to) = link(words[1])
            cluster.drop(from: from, to: to)
        case "partition": cluster.partition(groups(words.dropFirst()))
        case "heal": cluster.heal()
        case "crash": cluster.crash(node(words[1]))
        case "status": cluster.output += cluster.voters.map { "\($0): \(cluster.status($0))" }
        case "log":
            cluster.output += (words.count > 1 ? nodes(words[1], in: cluster) : cluster.voters).map { cluster.logDescription($0) }
        case "applied":
            cluster.output += (words.count > 1 ? nodes(words[1], in: cluster) : cluster.voters).map { cluster.appliedDescription($0) }
        default:
            return ["error: unknown command \(verb)"]
        }
        cluster.checkLogMatching()
        return cluster.output
    }

    private mutating func makeCluster(_ words: [String]) -> [String] {
        let count = Int(words[1])!
        var seed: UInt64 = 1
        var preVote = true
        var checkQuorum = true
        var maximumEntriesPerAppend = 64
        var disks = false
        for option in words.dropFirst(2) {
            let parts = option.split(separator: "=").map(String.init)
            switch parts[0] {
            case "disks": disks = true
            case "seed": seed = UInt64(parts[1])!
            case "pre-vote": preVote = parts[1] != "off"
            case "check-quorum": checkQuorum = parts[1] != "off"
            case "max-append": maximumEntriesPerAppend = Int(parts[1])!
            default: return ["error: unknown option \(option)"]
            }
        }
        let configure = { (configuration: inout RaftConfiguration) in
            configuration.preVote = preVote
            configuration.checkQuorum = checkQuorum
            configuration.maximumEntriesPerAppend = maximumEntriesPerAppend
        }
        cluster = disks ? DiskCluster(nodeCount: count, seed: seed, configure: configure)
                        : CoreCluster(nodeCount: count, seed: seed, configure: configure)
        return ["ok"]
    }

    private func node(_ word: String) -> NodeID { NodeID(Int32(word)!) }

    private func nodes(_ word: String, in cluster: any TranscriptCluster) -> [NodeID] {
        word == "all" ? cluster.voters : word.split(separator: ",").map { NodeID(Int32($0)!) }
    }

    private func link(_ word: String) -> (NodeID?, NodeID?) {
        let parts = word.components(separatedBy: "->")
        return (parts[0] == "*" ? nil : node(parts[0]), parts[1] == "*" ? nil : node(parts[1]))
    }

    /// `{1} {2,3}` → [[1], [2, 3]].
    private func groups<S: Sequence>(_ words: S) -> [[NodeID]] where S.Element == String {
        words.map { word in
            word.trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").map { NodeID(Int32($0)!) }
        }
    }
}
