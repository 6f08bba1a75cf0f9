import Glibc
import Posix
import Testing

@Suite struct FrameDecoderTests {
    @Test func cutsFramesAcrossReads() throws {
        let decoder = FrameDecoder(maximumFrameBytes: 1_000)
        decoder.append([0, 0, 0, 3, 1, 2])
        #expect(try decoder.nextFrame() == nil)
        decoder.append([3, 0, 0, 0, 0, 0, 0])
        #expect(try decoder.nextFrame() == [1, 2, 3])
        #expect(try decoder.nextFrame() == [])
        #expect(try decoder.nextFrame() == nil)
        #expect(decoder.bufferedBytes == 2)
    }

    @Test func refusesSizesBeforeAllocating() {
        let huge = FrameDecoder(maximumFrameBytes: 1_000)
        huge.append([0x7f, 0xff, 0xff, 0xff])
        #expect(throws: FrameError.tooLarge(sizeBytes: Int(Int32.max), maximumBytes: 1_000)) { try huge.nextFrame() }
        #expect(huge.bufferedBytes == 4, "nothing reserved for the claimed size")
        let negative = FrameDecoder(maximumFrameBytes: 1_000)
        negative.append([0xff, 0xff, 0xff, 0xfe])
        #expect(throws: FrameError.negativeSize(-2)) { try negative.nextFrame() }
    }
}

@Suite struct SocketAddressTests {
    @Test func parsesHostsPortsAndBracketedIPv6() throws {
        #expect(try SocketAddress.parse("127.0.0.1:9092") == SocketAddress(host: "127.0.0.1", port: 9092))
        #expect(try SocketAddress.parse("[::1]:19092") == SocketAddress(host: "::1", port: 19092))
        #expect(SocketAddress(host: "::1", port: 19092).description == "[::1]:19092")
        #expect(throws: SocketAddressError.self) { try SocketAddress.parse("::1:9092") }
        #expect(throws: SocketAddressError.self) { try SocketAddress.parse("localhost:0") }
    }
}

/// Whether this machine has an IPv6 loopback address (a container may have IPv6 disabled).
let hasIPv6Loopback: Bool = {
    guard let socket = try? TCPSocket.listen(on: SocketAddress(host: "::1", port: 0)) else { return false }
    socket.close()
    return true
}()

/// The one socket type of both shells, on IPv4 and IPv6 loopback: listen on an ephemeral port,
/// connect, accept, and move bytes one way.
@Suite struct TCPSocketTests {
    @Test func overIPv4Loopback() throws { try listenConnectAndExchangeBytes(host: "127.0.0.1") }

    @Test(.enabled(if: hasIPv6Loopback, "this machine has no IPv6 loopback"))
    func overIPv6Loopback() throws { try listenConnectAndExchangeBytes(host: "::1") }

    private func listenConnectAndExchangeBytes(host: String) throws {
        let listener = try TCPSocket.listen(on: SocketAddress(host: host, port: 0))
        defer { listener.close() }
        let port = try listener.localPort()
        #expect(port > 0)
        let client = try TCPSocket.startConnect(to: SocketAddress(host: host, port: port))
        defer { client.close() }
        let server = try #require(waitFor { try? listener.accept().get() })
        defer { server.close() }
        #expect(waitFor { client.connectOutcome() == nil ? true : nil } == true)

        let sent: [UInt8] = [0, 0, 0, 2, 0xAB, 0xCD]
        #expect(sent.withUnsafeBytes { try? client.write($0).get() } == sent.count)
        let decoder = FrameDecoder(maximumFrameBytes: 16)
        let frame = waitFor { () -> [UInt8]? in
            var scratch = [UInt8](repeating: 0, count: 64)
            if case let .success(count?) = scratch.withUnsafeMutableBytes({ server.read(into: $0) }), count > 0 {
                decoder.append(Array(scratch[0..<count]))
            }
            return try? decoder.nextFrame()
        }
        #expect(frame == [0xAB, 0xCD])
    }

    @Test func anUnresolvableHostSaysSo() {
        #expect(throws: SocketError.self) { try TCPSocket.resolve(host: "no-such-host.invalid", port: 1) }
    }

    /// Polls `attempt` for up to 5 s (a deadline that only keeps a broken test from hanging).
    private func waitFor<Value>(_ attempt: () throws -> Value?) rethrows -> Value? {
        for _ in 0..<500 {
            if let value = try attempt() { return value }
            usleep(10_000)
        }
        return nil
    }
}
