#if canImport(Glibc)
import Glibc
#endif
import Testing

/// `tern simulate --seeds A..B --jobs N` splits a sweep across worker processes: it must report
/// exactly what the same sweep in one process reports, failing seeds and replay lines included.
@Suite struct ParallelSweepTests {
    /// UnsafeSettingsTests' coordinated-power-loss scenario with `--durability page-cache`: some of
    /// these seeds lose committed records (1, 3 and 4 today), so the merge of failures is exercised.
    static let arguments = "simulate --seeds 1..4 --profile crash --safety-seconds 30 --liveness-seconds 30 "
        + "--fault-weights power-loss=1 --fault-interval-ms 5000 --sync-latency-ms 100..300 --durability page-cache"

    @Test func workersReportWhatOneProcessReports() throws {
        let tern = try #require(ternExecutablePath(), "the tern executable is built next to the tests")
        let serial = run("\(tern) \(Self.arguments)")
        let parallel = run("\(tern) \(Self.arguments) --jobs 3")
        #expect(serial.status == 1 && parallel.status == 1, "a sweep with failing seeds exits 1:\n\(serial.output)\n\(parallel.output)")
        let failures = serial.verdicts.filter { $0.hasPrefix("FAIL seed") }
        #expect(!failures.isEmpty, "no seed failed, so the merge of failures went untested (see UnsafeSettingsTests):\n\(serial.output)")
        #expect(parallel.verdicts == serial.verdicts)
        #expect(parallel.output.contains("3 processes"), "the parallel sweep did not say it used 3 processes:\n\(parallel.output)")
    }

    struct Run {
        var output: String
        var status: Int32
        /// Every line but the timing ones (which differ from run to run).
        var verdicts: [String] {
            output.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("profile ") }
        }
    }

    func run(_ command: String) -> Run {
        guard let pipe = popen(command, "r") else { return Run(output: "", status: -1) }
        var output = ""
        var buffer = [CChar](repeating: 0, count: 4096)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            output += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let status = pclose(pipe)
        return Run(output: output, status: (status >> 8) & 0xFF)
    }
}
