#if canImport(Glibc)
import Glibc
#endif
import Testing

/// The same seed, run by the built `tern` in two separate processes, gives the same trace hash.
/// Swift seeds `Hasher` differently in every process, so this catches any behaviour that depends
/// on dictionary or set order, and any other hidden source of nondeterminism.
@Suite struct SimulationDeterminismTests {
    static let arguments = "simulate --profile all --safety-seconds 15 --liveness-seconds 20"

    @Test func sameSeedSameTraceHashAcrossProcesses() throws {
        let tern = try #require(ternExecutablePath(), "the tern executable is built next to the tests")
        let first = try traceHash(tern, "\(Self.arguments) --seed 11")
        let second = try traceHash(tern, "\(Self.arguments) --seed 11")
        #expect(first == second, "seed 11 gave \(first) and then \(second)")
        let other = try traceHash(tern, "\(Self.arguments) --seed 12")
        #expect(other != first, "different seeds should give different traces")
    }

    /// Runs `tern` and returns the trace hash from its summary.
    func traceHash(_ tern: String, _ arguments: String) throws -> String {
        let output = run("\(tern) \(arguments) 2>&1")
        let line = try #require(output.split(separator: "\n").first { $0.contains("trace hash") },
                                "no trace hash in:\n\(output)")
        let words = line.split(separator: " ")
        let hash = try #require(words.firstIndex(of: "hash").map { words[$0 + 1] })
        return String(hash)
    }

    func run(_ command: String) -> String {
        guard let pipe = popen(command, "r") else { return "" }
        var output = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            output += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        pclose(pipe)
        return output
    }
}
