import LogStorage
import NodeKit
import SimWorld
import Simulator
import TernCore
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The same seed gives the same trace hash in two separate processes (Swift seeds `Hasher` per
/// process, so any walk over a Dictionary or Set that leaked into behaviour would show here).
/// The test binary runs itself again with `TERN_SIMULATION_HASH_CHILD=1`, filtered to
/// `childPrintsTraceHash`, and compares the hash the child prints with its own.
@Suite struct SimulationCrossProcessTests {
    static let childVariable = "TERN_SIMULATION_HASH_CHILD"
    static let seed: UInt64 = 2_024

    static func traceHash() -> UInt64 {
        let configuration = counterConfiguration(seed: seed, profile: .all)
        return Simulation.run(configuration, makeNode: counterFactory(configuration)).traceHash
    }

    @Test func childPrintsTraceHash() {
        guard getenv(Self.childVariable) != nil else { return }  // only meaningful in the child
        print("TRACE-HASH=\(Self.traceHash())")
    }

    @Test func sameSeedSameTraceHashInAnotherProcess() throws {
        guard getenv(Self.childVariable) == nil else { return }
        let executable = CommandLine.arguments[0]
        try #require(!executable.contains("'"), "the test binary path is quoted for the shell")
        let command = "env -u SWIFT_DETERMINISTIC_HASHING \(Self.childVariable)=1 '\(executable)' "
            + "--testing-library swift-testing --filter childPrintsTraceHash 2>&1"
        let pipe = try #require(popen(command, "r"))
        var childHash: UInt64?
        var buffer = [CChar](repeating: 0, count: 4_096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let marker = "TRACE-HASH="
            if line.hasPrefix(marker) {
                childHash = UInt64(line.dropFirst(marker.count).prefix { $0.isNumber })
            }
        }
        pclose(pipe)
        let hash = try #require(childHash, "the child process printed no trace hash")
        #expect(hash == Self.traceHash())
    }
}
