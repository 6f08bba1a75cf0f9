import Glibc
import Posix
@testable import Runtime
import TernCore

/// Runs the loop until `condition` holds or the (generous) deadline passes; true if it held.
/// The deadline only stops a broken test from hanging: nothing asserts how long anything took.
@discardableResult
func drive(_ loop: EventLoop, seconds: Int64 = 30, until condition: () -> Bool) -> Bool {
    let deadline = EventLoop.monotonicNow() + .seconds(seconds)
    while !condition() {
        if EventLoop.monotonicNow() >= deadline { return false }
        loop.runOnce(maximumWait: .milliseconds(10))
    }
    return true
}

/// A non-blocking client socket connected to `address` (the connect completes while the loop runs).
func connectClient(to address: SocketAddress) throws -> Int32 {
    try connectTCP(to: address)
}

/// Writes every byte, running the loop whenever the socket is full (the server must read).
func writeAll(_ descriptor: Int32, _ bytes: [UInt8], loop: EventLoop) {
    var written = 0
    while written < bytes.count {
        let count = bytes[written...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if count > 0 {
            written += count
        } else {
            loop.runOnce(maximumWait: .milliseconds(10))
        }
    }
}

/// What is readable now on a non-blocking socket; nil at end of stream or on an error.
func readAvailable(_ descriptor: Int32) -> [UInt8]? {
    var collected: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if count > 0 {
            collected += chunk[..<count]
            continue
        }
        if count == 0 { return collected.isEmpty ? nil : collected }
        return errno == EAGAIN || errno == EWOULDBLOCK ? collected : (collected.isEmpty ? nil : collected)
    }
}

func frame(_ payload: [UInt8]) -> [UInt8] {
    withUnsafeBytes(of: Int32(payload.count).bigEndian) { Array($0) } + payload
}

func sizePrefix(_ size: Int32) -> [UInt8] {
    withUnsafeBytes(of: size.bigEndian) { Array($0) }
}

/// Loopback ports free right now, for configurations that must name every node's port before
/// any node starts (controller voters). Bound with SO_REUSEADDR and closed at once, so a node can
/// bind them again.
func reserveLoopbackPorts(_ count: Int) throws -> [UInt16] {
    let loop = try EventLoop()
    let listeners = try (0..<count).map { _ in try TCPListener(address: SocketAddress(host: "127.0.0.1", port: 0), loop: loop) }
    let ports = listeners.map(\.address.port)
    for listener in listeners { listener.close() }
    return ports
}

/// A test delegate that records what a server-side connection sees.
final class RecordingConnectionDelegate: TCPConnectionDelegate {
    var frames: [[UInt8]] = []
    var closeReason: TCPCloseReason?
    var connected = false
    /// Called for each frame (echo servers).
    var onFrame: ((TCPConnection, [UInt8]) -> Void)?

    func connectionDidConnect(_ connection: TCPConnection) { connected = true }

    func connection(_ connection: TCPConnection, didReceiveFrame frame: [UInt8]) {
        frames.append(frame)
        onFrame?(connection, frame)
    }

    func connection(_ connection: TCPConnection, didCloseWith reason: TCPCloseReason) { closeReason = reason }
}

/// A server on an ephemeral loopback port: each accepted connection gets a recording delegate.
final class TestServer {
    let listener: TCPListener
    var connections: [(connection: TCPConnection, delegate: RecordingConnectionDelegate)] = []

    init(loop: EventLoop, limits: TCPConnectionLimits, onFrame: ((TCPConnection, [UInt8]) -> Void)? = nil) throws {
        listener = try TCPListener(address: SocketAddress(host: "127.0.0.1", port: 0), loop: loop)
        listener.onAccept = { [unowned self, unowned loop] descriptor in
            let connection = try! TCPConnection(descriptor: descriptor, connecting: false, loop: loop, limits: limits)
            let delegate = RecordingConnectionDelegate()
            delegate.onFrame = onFrame
            connection.delegate = delegate
            self.connections.append((connection, delegate))
        }
    }

    var address: SocketAddress { listener.address }
}

/// Starts `body` on a new pthread; `join` waits for it.
final class TestThread: Sendable {
    private let handle: pthread_t

    init(_ body: @escaping @Sendable () -> Void) {
        final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var handle = pthread_t()
        let code = pthread_create(&handle, nil, { context in
            let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
            box.body()
            return nil
        }, context)
        precondition(code == 0, "pthread_create failed (\(code))")
        self.handle = handle
    }

    func join() { pthread_join(handle, nil) }
}

func sleepMilliseconds(_ milliseconds: Int) { usleep(UInt32(milliseconds) * 1_000) }
