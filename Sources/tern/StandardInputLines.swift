#if canImport(Glibc)
import Glibc
#endif

/// Lines from standard input, read without blocking so the producer keeps its connections
/// served while a person types (or a pipe is slow). A line longer than the bound is an error
/// rather than an unbounded buffer.
struct StandardInputLines {
    static let maximumLineBytes = 1 << 20
    private var pending: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    private(set) var reachedEnd = false

    /// Complete lines available now (at most one read's worth); the last line without a
    /// newline is returned once the input ends.
    mutating func readAvailable() throws(LineTooLong) -> [[UInt8]] {
        guard !reachedEnd else { return [] }
        var descriptor = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) > 0 else { return [] }
        let count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR || errno == EAGAIN { return [] }
            reachedEnd = true
        } else if count == 0 {
            reachedEnd = true
        } else {
            pending.append(contentsOf: chunk[0..<count])
        }
        var lines: [[UInt8]] = []
        var start = 0
        while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
            var end = newline
            if end > start, pending[end - 1] == UInt8(ascii: "\r") { end -= 1 }
            lines.append(Array(pending[start..<end]))
            start = newline + 1
        }
        pending.removeSubrange(0..<start)
        if reachedEnd, !pending.isEmpty {
            lines.append(pending)
            pending.removeAll()
        }
        guard pending.count <= Self.maximumLineBytes else { throw LineTooLong() }
        return lines
    }
}

struct LineTooLong: Error {}
