import Glibc
import Posix
@testable import Runtime
import TernCore
import Testing

@Suite struct FramingTests {
    static let limits = TCPConnectionLimits(maximumFrameBytes: 1_024 * 1_024, readPauseOutputBytes: 64 * 1_024,
                                            maximumOutputBytes: 16 * 1_024 * 1_024)

    @Test func framesSplitAcrossReadsAndPackedIntoOneReadAreHandedOutWhole() throws {
        let loop = try EventLoop()
        let server = try TestServer(loop: loop, limits: Self.limits)
        let client = try connectClient(to: server.address)
        defer { close(client) }
        #expect(drive(loop) { server.connections.count == 1 })
        let delegate = server.connections[0].delegate

        // One frame sent a byte at a time, each byte its own read on the server.
        let first = Array("split across reads".utf8)
        for byte in frame(first) {
            writeAll(client, [byte], loop: loop)
            loop.runOnce(maximumWait: .milliseconds(1))
        }
        #expect(drive(loop) { delegate.frames.count == 1 })
        #expect(delegate.frames == [first])

        // Several frames (an empty one among them) in one write, the last one cut in two.
        let packed: [[UInt8]] = [Array("a".utf8), [], Array("three frames".utf8), [UInt8](repeating: 7, count: 100_000)]
        var bytes = packed.flatMap(frame)
        let tail = Array(bytes[(bytes.count - 50_000)...])
        bytes.removeLast(50_000)
        writeAll(client, bytes, loop: loop)
        #expect(drive(loop) { delegate.frames.count == 4 })
        writeAll(client, tail, loop: loop)
        #expect(drive(loop) { delegate.frames.count == 5 })
        #expect(delegate.frames == [first] + packed)
        #expect(delegate.closeReason == nil)
    }

    @Test(arguments: [Int32(-1), Int32.min, Int32(1_024 * 1_024 + 1), Int32.max])
    func aNegativeOrOversizedFrameClosesTheConnectionBeforeAnythingIsAllocated(size: Int32) throws {
        let loop = try EventLoop()
        let server = try TestServer(loop: loop, limits: Self.limits)
        let bad = try connectClient(to: server.address)
        defer { close(bad) }
        let good = try connectClient(to: server.address)
        defer { close(good) }
        #expect(drive(loop) { server.connections.count == 2 })
        let badConnection = server.connections[0]
        let goodConnection = server.connections[1]

        writeAll(bad, sizePrefix(size), loop: loop)
        #expect(drive(loop) { badConnection.delegate.closeReason != nil })
        #expect(badConnection.delegate.closeReason == .invalidFrameSize(size))
        #expect(badConnection.delegate.frames.isEmpty)
        // Only the four size bytes were ever buffered: nothing was reserved for the claimed size.
        #expect(badConnection.connection.highestInputBufferedBytes == 4)
        // The client sees the close.
        #expect(drive(loop) { readAvailable(bad) == nil })

        // The other client is still served.
        writeAll(good, frame(Array("still here".utf8)), loop: loop)
        #expect(drive(loop) { goodConnection.delegate.frames.count == 1 })
        #expect(goodConnection.delegate.frames == [Array("still here".utf8)])
        #expect(goodConnection.delegate.closeReason == nil)
    }

    @Test func aFrameAtTheLimitIsAccepted() throws {
        let loop = try EventLoop()
        let server = try TestServer(loop: loop, limits: Self.limits)
        let client = try connectClient(to: server.address)
        defer { close(client) }
        #expect(drive(loop) { server.connections.count == 1 })
        let payload = [UInt8](repeating: 0xAB, count: Self.limits.maximumFrameBytes)
        writeAll(client, frame(payload), loop: loop)
        #expect(drive(loop) { server.connections[0].delegate.frames.count == 1 })
        #expect(server.connections[0].delegate.frames.first == payload)
    }

    @Test func answersGoBackInOrderAndCloseFlushesFirst() throws {
        let loop = try EventLoop()
        let server = try TestServer(loop: loop, limits: Self.limits) { connection, payload in
            connection.enqueueFrame(payload.reversed())
            if payload == Array("bye".utf8) { connection.close(afterFlushing: true) }
        }
        let client = try connectClient(to: server.address)
        defer { close(client) }
        writeAll(client, frame(Array("abc".utf8)) + frame(Array("bye".utf8)), loop: loop)
        var received: [UInt8] = []
        var ended = false
        #expect(drive(loop) {
            if let bytes = readAvailable(client) { received += bytes } else { ended = true }
            return ended
        })
        #expect(received == frame(Array("cba".utf8)) + frame(Array("eyb".utf8)))
        #expect(server.connections[0].delegate.closeReason == .requested)
    }

    @Test func anOutboundConnectionToAClosedPortFails() throws {
        let loop = try EventLoop()
        let port = try reserveLoopbackPorts(1)[0]
        let descriptor = try connectTCP(to: SocketAddress(host: "127.0.0.1", port: port))
        let connection = try TCPConnection(descriptor: descriptor, connecting: true, loop: loop, limits: Self.limits)
        let delegate = RecordingConnectionDelegate()
        connection.delegate = delegate
        #expect(drive(loop) { delegate.closeReason != nil })
        #expect(delegate.closeReason == .failed(operation: "connect", code: ECONNREFUSED))
        #expect(!delegate.connected)
    }
}

@Suite struct BackpressureTests {
    /// An echo server whose client sends without reading: the server stops reading once its
    /// unsent output passes the bound, so its buffers stay bounded however much the client
    /// sends; once the client reads, everything is answered.
    @Test func aClientThatDoesNotReadIsNotReadFromEither() throws {
        let limits = TCPConnectionLimits(maximumFrameBytes: 64 * 1_024, readPauseOutputBytes: 256 * 1_024,
                                         maximumOutputBytes: 8 * 1_024 * 1_024)
        let loop = try EventLoop()
        let server = try TestServer(loop: loop, limits: limits) { connection, payload in
            #expect(connection.enqueueFrame(payload), "below the hard bound nothing is refused")
        }
        let client = try connectClient(to: server.address)
        defer { close(client) }
        #expect(drive(loop) { server.connections.count == 1 })
        let (connection, delegate) = server.connections[0]

        let payload = [UInt8](repeating: 1, count: 16 * 1_024)
        let request = frame(payload)
        // Send until the kernel refuses more: the server must have stopped reading.
        var sentFrames = 0
        var partial = 0
        var stalledIterations = 0
        while stalledIterations < 50 {
            let remaining = request[partial...]
            let count = remaining.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if count > 0 {
                partial += count
                if partial == request.count { sentFrames += 1; partial = 0 }
                stalledIterations = 0
            } else {
                stalledIterations += 1
            }
            loop.runOnce(maximumWait: .milliseconds(2))
        }
        #expect(connection.outputBufferedBytes > limits.readPauseOutputBytes, "the server paused because its output is full")
        // Reading stops at the first frame past the bound: at most one answer beyond it.
        #expect(connection.highestOutputBufferedBytes <= limits.readPauseOutputBytes + request.count)
        #expect(connection.highestInputBufferedBytes <= limits.maximumFrameBytes + 4 + limits.readChunkBytes)
        #expect(delegate.frames.count < sentFrames + (partial > 0 ? 1 : 0))
        if partial > 0 {
            // Finish the frame in progress so every sent frame is whole.
            writeAll(client, Array(request[partial...]), loop: loop)
            sentFrames += 1
        }

        // The client reads: the server drains, reads again and answers everything.
        var received = 0
        #expect(drive(loop) {
            received += readAvailable(client)?.count ?? 0
            return received == sentFrames * request.count
        })
        #expect(delegate.frames.count == sentFrames)
        #expect(delegate.closeReason == nil)
    }

    @Test func pausedReadingHoldsFramesUntilResumed() throws {
        let loop = try EventLoop()
        let server = try TestServer(loop: loop, limits: FramingTests.limits) { connection, _ in connection.pauseReading() }
        let client = try connectClient(to: server.address)
        defer { close(client) }
        writeAll(client, frame([1]) + frame([2]) + frame([3]), loop: loop)
        #expect(drive(loop) { server.connections.first?.delegate.frames.count == 1 })
        let (connection, delegate) = server.connections[0]
        for _ in 0..<20 { loop.runOnce(maximumWait: .milliseconds(1)) }
        #expect(delegate.frames == [[1]], "nothing is handed out while paused")
        connection.resumeReading()
        #expect(delegate.frames == [[1], [2]], "resuming hands out the next buffered frame (which pauses again)")
        connection.resumeReading()
        #expect(delegate.frames == [[1], [2], [3]])
    }
}
