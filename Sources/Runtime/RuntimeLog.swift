import Glibc
import Posix
import TernCore

/// Log lines on standard error: UTC timestamp with milliseconds, the node id, the message. Each
/// line is one write(2), so lines from several threads (nodes of a test) never interleave.
public struct RuntimeLog: Sendable {
    public let nodeID: NodeID
    /// Tests silence the nodes they run in bulk.
    public let isEnabled: Bool

    public init(nodeID: NodeID, isEnabled: Bool = true) {
        self.nodeID = nodeID
        self.isEnabled = isEnabled
    }

    public func info(_ message: String) {
        guard isEnabled else { return }
        var line = Array("\(Self.timestamp()) [node \(nodeID)] \(message)\n".utf8)
        _ = line.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// Wall-clock time as `YYYY-MM-DDTHH:MM:SS.mmmZ` (for people reading logs; never for deadlines).
    static func timestamp() -> String {
        let nanoseconds = Clocks.wallClockNanoseconds()
        var seconds = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        _ = gmtime_r(&seconds, &parts)
        func padded(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(padded(Int(parts.tm_year) + 1900, 4))-\(padded(Int(parts.tm_mon) + 1, 2))-\(padded(Int(parts.tm_mday), 2))"
            + "T\(padded(Int(parts.tm_hour), 2)):\(padded(Int(parts.tm_min), 2)):\(padded(Int(parts.tm_sec), 2))"
            + ".\(padded(Int(nanoseconds % 1_000_000_000 / 1_000_000), 3))Z"
    }
}
