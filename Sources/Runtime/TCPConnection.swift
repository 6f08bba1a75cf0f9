import CSystem
import Glibc
import Posix
import TernCore

/// Limits of one connection. Every buffer has a bound.
public struct TCPConnectionLimits: Sendable {
    /// Largest frame (the size field's value) accepted; a larger or negative size closes the
    /// connection before anything is allocated for it.
    public var maximumFrameBytes: Int
    /// Reading stops while more than this many bytes wait to be sent (the peer is not reading
    /// its answers), and resumes once the output drains below it. `Int.max`: never.
    public var readPauseOutputBytes: Int
    /// `enqueue` refuses bytes that would take the output past this.
    public var maximumOutputBytes: Int
    /// Bytes asked of the kernel per read, and reads per readiness event (fairness between
    /// connections: level-triggered epoll reports the rest on the next iteration).
    public var readChunkBytes = 64 * 1024
    public var readsPerEvent = 16

    public init(maximumFrameBytes: Int, readPauseOutputBytes: Int, maximumOutputBytes: Int) {
        precondition(maximumFrameBytes >= 0 && maximumFrameBytes <= Int(Int32.max), "frame sizes are int32")
        precondition(maximumOutputBytes > 0, "a connection needs room for output")
        self.maximumFrameBytes = maximumFrameBytes
        self.readPauseOutputBytes = readPauseOutputBytes
        self.maximumOutputBytes = maximumOutputBytes
    }
}

/// Why a connection closed.
public enum TCPCloseReason: Sendable, Equatable, CustomStringConvertible {
    /// The other side closed it.
    case endOfStream
    /// This side asked (after flushing what was queued).
    case requested
    /// A frame's size field was negative or above the limit.
    case invalidFrameSize(Int32)
    /// A read, write or connect failed with this errno.
    case failed(operation: String, code: Int32)
    /// Queued output would have exceeded `maximumOutputBytes`.
    case outputOverflow

    public var description: String {
        switch self {
        case .endOfStream: "closed by the other side"
        case .requested: "closed by this side"
        case let .invalidFrameSize(size): "invalid frame size \(size)"
        case let .failed(operation, code): "\(operation) failed (errno \(code): \(String(cString: strerror(code))))"
        case .outputOverflow: "output buffer overflow"
        }
    }
}

/// What a connection tells its owner. Called on the loop thread; the owner may close, pause or
/// enqueue on the connection from inside each call.
public protocol TCPConnectionDelegate: AnyObject {
    /// An outbound connect completed.
    func connectionDidConnect(_ connection: TCPConnection)
    /// One whole frame, without its size prefix.
    func connection(_ connection: TCPConnection, didReceiveFrame frame: [UInt8])
    /// Called once, after the descriptor is closed and deregistered.
    func connection(_ connection: TCPConnection, didCloseWith reason: TCPCloseReason)
}

/// A non-blocking TCP connection on an `EventLoop` with Kafka-style framing (int32 big-endian
/// size, then that many bytes) and bounded input and output buffers.
///
/// Backpressure: reading (and handing out frames already buffered) stops while the owner paused
/// it or while the output holds more than `readPauseOutputBytes`; epoll is asked for `writable`
/// only while output is pending.
public final class TCPConnection {
    public let limits: TCPConnectionLimits
    public weak var delegate: TCPConnectionDelegate?
    // Strong: the loop must outlive every descriptor registered with it (deregistration in deinit).
    private let loop: EventLoop
    private var descriptor: Int32
    private var registration: EventLoop.RegistrationID?
    private let input: FrameDecoder
    private let output = ByteBuffer()

    public private(set) var isConnecting: Bool
    public private(set) var isClosed = false
    /// Set by `close(afterFlushing: true)`: no more reading; closes once the output is sent.
    public private(set) var isClosing = false
    public private(set) var isReadingPausedByOwner = false
    /// Counters for tests and metrics.
    public private(set) var receivedFrameCount = 0
    public private(set) var highestInputBufferedBytes = 0
    public private(set) var highestOutputBufferedBytes = 0
    /// Delivering frames right now: nested delivery (an owner resuming reading from inside a
    /// frame callback) is folded into the running loop.
    private var isDeliveringFrames = false

    /// Takes ownership of a connected (or connecting) non-blocking descriptor.
    public init(descriptor: Int32, connecting: Bool, loop: EventLoop, limits: TCPConnectionLimits) throws(SystemCallError) {
        precondition(descriptor >= 0, "a connection needs a descriptor")
        self.descriptor = descriptor
        self.isConnecting = connecting
        self.loop = loop
        self.limits = limits
        self.input = FrameDecoder(maximumFrameBytes: limits.maximumFrameBytes)
        do throws(SystemCallError) {
            registration = try loop.register(descriptor, interest: connecting ? .writable : .readable) { [unowned self] readiness in
                self.handle(readiness)
            }
        } catch {
            closeDescriptor(descriptor)
            throw error
        }
    }

    deinit {
        if !isClosed {
            if let registration { loop.deregister(registration) }
            closeDescriptor(descriptor)
        }
    }

    public var outputBufferedBytes: Int { output.readableCount }
    public var inputBufferedBytes: Int { input.bufferedBytes }

    // MARK: Output

    /// Queues one frame: the size prefix, then `payload`. False (nothing queued) when the output
    /// bound would be exceeded or the connection is closing.
    @discardableResult
    public func enqueueFrame(_ payload: [UInt8]) -> Bool {
        guard !isClosed, !isClosing, output.readableCount + 4 + payload.count <= limits.maximumOutputBytes else { return false }
        precondition(payload.count <= Int(Int32.max), "a frame larger than int32")
        output.appendInt32BigEndian(Int32(payload.count))
        output.append(payload)
        afterEnqueue()
        return true
    }

    /// Queues bytes as they are (whole frames the caller framed itself). False when over the bound.
    @discardableResult
    public func enqueueBytes(_ bytes: [UInt8]) -> Bool {
        guard !isClosed, !isClosing, output.readableCount + bytes.count <= limits.maximumOutputBytes else { return false }
        output.append(bytes)
        afterEnqueue()
        return true
    }

    private func afterEnqueue() {
        highestOutputBufferedBytes = max(highestOutputBufferedBytes, output.readableCount)
        // Sending at once saves an epoll round trip in the common case of a writable socket.
        if !isConnecting { flush() }
        if !isClosed { updateInterest() }
    }

    // MARK: Control

    public func pauseReading() {
        isReadingPausedByOwner = true
        updateInterest()
    }

    public func resumeReading() {
        guard isReadingPausedByOwner else { return }
        isReadingPausedByOwner = false
        deliverBufferedFrames()
        if !isClosed { updateInterest() }
    }

    /// Closes now, or once what is queued has been sent.
    public func close(afterFlushing: Bool = true) {
        guard !isClosed else { return }
        if afterFlushing && !output.isEmpty && !isConnecting {
            isClosing = true
            updateInterest()
            return
        }
        finish(.requested)
    }

    private var readingAllowed: Bool {
        !isConnecting && !isClosing && !isReadingPausedByOwner && output.readableCount <= limits.readPauseOutputBytes
    }

    private func updateInterest() {
        guard let registration, !isClosed else { return }
        var interest: EventLoop.Interest = []
        if readingAllowed { interest.insert(.readable) }
        if isConnecting || !output.isEmpty { interest.insert(.writable) }
        loop.modify(registration, interest: interest)
    }

    // MARK: Events

    private func handle(_ readiness: EventLoop.Readiness) {
        if isConnecting {
            let code = tern_socket_error(descriptor)
            guard code == 0 else { return finish(.failed(operation: "connect", code: code)) }
            isConnecting = false
            delegate?.connectionDidConnect(self)
            if isClosed { return }
            flush()
            if !isClosed { updateInterest() }
            return
        }
        if readiness.contains(.writable) || (readiness.contains(.error) && !output.isEmpty) {
            flush()
            if isClosed { return }
        }
        if readiness.contains(.readable) || readiness.contains(.hangUp) || readiness.contains(.error) {
            if readingAllowed {
                readAvailable()
            } else if readiness.contains(.error) || (readiness.contains(.hangUp) && !readiness.contains(.readable)) {
                // Not reading, but the socket is dead: nothing queued can be delivered.
                let code = tern_socket_error(descriptor)
                return finish(code == 0 ? .endOfStream : .failed(operation: "socket", code: code))
            }
        }
        if !isClosed { updateInterest() }
    }

    private func readAvailable() {
        for _ in 0..<limits.readsPerEvent {
            guard readingAllowed, !isClosed else { return }
            var outcome: Result<Int?, SystemCallError> = .success(0)
            let socket = TCPSocket(descriptor: descriptor)
            let count = input.read(upTo: limits.readChunkBytes) { room in
                outcome = socket.read(into: room)
                if case let .success(count?) = outcome { return count }
                return 0
            }
            switch outcome {
            case let .failure(error): return finish(.failed(operation: error.operation, code: error.code))
            case .success(nil): return finish(.endOfStream)
            case .success(0?): return
            case .success: break
            }
            highestInputBufferedBytes = max(highestInputBufferedBytes, input.bufferedBytes)
            deliverBufferedFrames()
            if count < limits.readChunkBytes { return }
        }
    }

    /// Hands out every whole frame in the input buffer while reading is allowed. A size field is
    /// checked as soon as its four bytes are in, before the buffer grows for the frame.
    private func deliverBufferedFrames() {
        guard !isDeliveringFrames else { return }
        isDeliveringFrames = true
        defer { isDeliveringFrames = false }
        while readingAllowed, !isClosed {
            let frame: [UInt8]
            do throws(FrameError) {
                guard let next = try input.nextFrame() else { return }
                frame = next
            } catch {
                return finish(.invalidFrameSize(error.sizeField))
            }
            receivedFrameCount += 1
            delegate?.connection(self, didReceiveFrame: frame)
        }
    }

    /// Sends as much queued output as the socket takes.
    private func flush() {
        let socket = TCPSocket(descriptor: descriptor)
        sending: while !output.isEmpty, !isClosed {
            switch socket.write(output.readableBytes) {
            case let .failure(error): return finish(.failed(operation: error.operation, code: error.code))
            case .success(0): break sending  // the socket buffer is full: epoll says when to go on
            case let .success(sent): output.consume(sent)
            }
        }
        if output.isEmpty && isClosing { return finish(.requested) }
        // Output fell below the pause threshold: frames that waited in the input may go on.
        if readingAllowed && input.bufferedBytes >= 4 { deliverBufferedFrames() }
    }

    private func finish(_ reason: TCPCloseReason) {
        guard !isClosed else { return }
        isClosed = true
        if let registration { loop.deregister(registration) }
        registration = nil
        closeDescriptor(descriptor)
        descriptor = -1
        delegate?.connection(self, didCloseWith: reason)
    }
}

/// A non-blocking listening socket on an `EventLoop`: accepted connections go to `onAccept` as
/// non-blocking descriptors with TCP_NODELAY (the callee owns them).
public final class TCPListener {
    public let address: SocketAddress
    // Strong: the loop must outlive every descriptor registered with it (deregistration in deinit).
    private let loop: EventLoop
    private let descriptor: Int32
    private var registration: EventLoop.RegistrationID?
    /// Takes each accepted descriptor (and owns it); the default closes it.
    public var onAccept: (Int32) -> Void = { descriptor in closeDescriptor(descriptor) }
    /// Connections taken per readiness event (fairness; level-triggered epoll reports the rest).
    static let acceptsPerEvent = 64

    /// Binds and listens, on IPv4 or IPv6 as the host resolves; a port of 0 takes an ephemeral
    /// port (see `address`).
    public init(address requested: SocketAddress, loop: EventLoop, backlog: Int32 = 512) throws(SocketError) {
        let socket = try TCPSocket.listen(on: requested, backlog: backlog)
        do throws(SystemCallError) {
            self.address = SocketAddress(host: requested.host, port: try socket.localPort())
            self.loop = loop
            self.descriptor = socket.descriptor
            registration = try loop.register(socket.descriptor, interest: .readable) { [unowned self] _ in self.acceptWaiting() }
        } catch {
            socket.close()
            throw .system(error)
        }
    }

    deinit { close() }

    public func close() {
        guard let registration else { return }
        loop.deregister(registration)
        self.registration = nil
        closeDescriptor(descriptor)
    }

    /// After an accept error other than "none waiting" (EMFILE, ENFILE, ENOBUFS...), the
    /// listener stops watching for this long: level-triggered epoll would otherwise report the
    /// waiting connection again at once and the loop would spin until a descriptor frees up.
    static let acceptErrorPause: Duration = .milliseconds(100)

    private func acceptWaiting() {
        for _ in 0..<Self.acceptsPerEvent {
            let code: Int32
            switch TCPSocket(descriptor: descriptor).accept() {
            case let .success(accepted?):
                onAccept(accepted.descriptor)
                continue
            case .success(nil):
                return
            case let .failure(error):
                code = error.code
            }
            // ECONNABORTED concerns one connection that is already gone: go on with the next.
            if code == ECONNABORTED { continue }
            if let registration {
                loop.modify(registration, interest: [])
                loop.scheduleTimer(after: Self.acceptErrorPause) { [weak self] in
                    guard let self, let registration = self.registration else { return }
                    self.loop.modify(registration, interest: .readable)
                }
            }
            return
        }
    }
}

/// Starts a non-blocking connect to `address` (IPv4 or IPv6).
func connectTCP(to address: SocketAddress) throws(SocketError) -> Int32 {
    try TCPSocket.startConnect(to: address).descriptor
}
