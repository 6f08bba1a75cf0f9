import CSystem
import Glibc

/// Why a socket could not be set up.
public enum SocketError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The host name did not resolve (getaddrinfo's reason).
    case unresolvable(host: String, reason: String)
    case system(SystemCallError)

    public var description: String {
        switch self {
        case let .unresolvable(host, reason): "cannot resolve \(host): \(reason)"
        case let .system(error): "\(error)"
        }
    }
}

/// One resolved socket address (IPv4 or IPv6), copied out of getaddrinfo's list so it outlives
/// `freeaddrinfo`.
public struct ResolvedAddress: Sendable, Equatable {
    public let family: Int32
    public let bytes: [UInt8]
}

/// A non-blocking, close-on-exec TCP socket, IPv4 or IPv6: what both shells listen, accept and
/// connect with. Every call retries EINTR; EAGAIN is "nothing now", anything else an error.
public struct TCPSocket: Sendable {
    public let descriptor: Int32

    public init(descriptor: Int32) {
        precondition(descriptor >= 0, "a socket needs a descriptor")
        self.descriptor = descriptor
    }

    // MARK: Addresses

    /// Every address `host` resolves to for `port`, IPv4 first ("localhost" often resolves to
    /// ::1 first, and most listeners here are IPv4). IP literals resolve without a lookup;
    /// `passive` resolves a wildcard host for binding.
    public static func resolve(host: String, port: UInt16, passive: Bool = false) throws(SocketError) -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        if passive { hints.ai_flags = AI_PASSIVE }
        var list: UnsafeMutablePointer<addrinfo>?
        let outcome = getaddrinfo(host, String(port), &hints, &list)
        guard outcome == 0 else { throw .unresolvable(host: host, reason: String(cString: gai_strerror(outcome))) }
        defer { freeaddrinfo(list) }
        var resolved: [ResolvedAddress] = []
        var entry = list
        // Bounded: a resolver answer with more than 16 addresses is cut there.
        while let current = entry, resolved.count < 16 {
            if let socketAddress = current.pointee.ai_addr {
                let bytes = [UInt8](UnsafeRawBufferPointer(start: UnsafeRawPointer(socketAddress), count: Int(current.pointee.ai_addrlen)))
                let address = ResolvedAddress(family: current.pointee.ai_family, bytes: bytes)
                if !resolved.contains(address) { resolved.append(address) }
            }
            entry = current.pointee.ai_next
        }
        guard !resolved.isEmpty else { throw .unresolvable(host: host, reason: "no addresses") }
        return resolved.filter { $0.family == AF_INET } + resolved.filter { $0.family != AF_INET }
    }

    // MARK: Listening

    /// Binds and listens on the first address `address` resolves to (SO_REUSEADDR); a port of 0
    /// takes an ephemeral one (see `localPort`).
    public static func listen(on address: SocketAddress, backlog: Int32 = 512) throws(SocketError) -> TCPSocket {
        let resolved = try resolve(host: address.host, port: address.port, passive: true)[0]
        let socket: TCPSocket
        do throws(SystemCallError) {
            socket = try open(family: resolved.family)
            var enabled: Int32 = 1
            _ = try systemCall("setsockopt(SO_REUSEADDR)") {
                setsockopt(socket.descriptor, SOL_SOCKET, SO_REUSEADDR, &enabled, socklen_t(MemoryLayout<Int32>.size))
            }
        } catch {
            throw .system(error)
        }
        do throws(SystemCallError) {
            _ = try systemCall("bind") {
                resolved.bytes.withUnsafeBytes { raw in
                    bind(socket.descriptor, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
                }
            }
            _ = try systemCall("listen") { Glibc.listen(socket.descriptor, backlog) }
        } catch {
            socket.close()
            throw .system(error)
        }
        return socket
    }

    /// The port the socket is bound to (IPv4 and IPv6 keep it at the same place).
    public func localPort() throws(SystemCallError) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { pointer throws(SystemCallError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(SystemCallError) in
                try systemCall("getsockname") { getsockname(descriptor, address, &length) }
            }
        }
        return withUnsafeBytes(of: &storage) { raw in UInt16(raw[2]) << 8 | UInt16(raw[3]) }
    }

    /// One waiting connection, non-blocking with TCP_NODELAY; nil when none is waiting. The
    /// caller owns the socket.
    public func accept() -> Result<TCPSocket?, SystemCallError> {
        let accepted = tern_tcp_accept(descriptor)
        if accepted >= 0 { return .success(TCPSocket(descriptor: accepted)) }
        let code = tern_errno()
        if code == EAGAIN || code == EWOULDBLOCK { return .success(nil) }
        return .failure(SystemCallError(operation: "accept", code: code))
    }

    // MARK: Connecting

    /// Starts a connect; `completed` when it finished at once (loopback sometimes does).
    public static func startConnect(to resolved: ResolvedAddress) -> Result<(socket: TCPSocket, completed: Bool), SystemCallError> {
        let socket: TCPSocket
        do throws(SystemCallError) { socket = try open(family: resolved.family) } catch { return .failure(error) }
        // Requests are small and latency matters more than packet count (Kafka's clients do the same).
        _ = tern_set_no_delay(socket.descriptor)
        while true {
            let outcome = resolved.bytes.withUnsafeBytes { raw in
                Glibc.connect(socket.descriptor, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
            if outcome == 0 { return .success((socket, true)) }
            let code = tern_errno()
            if code == EINTR { continue }
            if code == EINPROGRESS { return .success((socket, false)) }
            socket.close()
            return .failure(SystemCallError(operation: "connect", code: code))
        }
    }

    /// Starts a connect to the first of `address`'s resolved addresses that takes one.
    public static func startConnect(to address: SocketAddress) throws(SocketError) -> TCPSocket {
        var lastError: SystemCallError?
        for resolved in try resolve(host: address.host, port: address.port) {
            switch startConnect(to: resolved) {
            case let .success((socket, _)): return socket
            case let .failure(error): lastError = error
            }
        }
        throw .system(lastError!)
    }

    /// After the socket became writable while connecting: nil if the connect succeeded, else why not.
    public func connectOutcome() -> SystemCallError? {
        let code = pendingError()
        return code == 0 ? nil : SystemCallError(operation: "connect", code: code)
    }

    /// The socket's pending error (SO_ERROR), 0 if none.
    public func pendingError() -> Int32 { tern_socket_error(descriptor) }

    // MARK: Reading and writing

    /// Bytes read into `buffer`; 0 means nothing available now; nil means the peer closed.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Result<Int?, SystemCallError> {
        while true {
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 { return .success(count) }
            if count == 0 { return .success(nil) }
            let code = tern_errno()
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return .success(0) }
            return .failure(SystemCallError(operation: "read", code: code))
        }
    }

    /// Bytes written from `bytes` (possibly fewer, 0 when the socket buffer is full). Never raises
    /// SIGPIPE: a peer that closed is an EPIPE error.
    public func write(_ bytes: UnsafeRawBufferPointer) -> Result<Int, SystemCallError> {
        while true {
            var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
            let count = tern_send_vectors(descriptor, &vector, 1)
            if count >= 0 { return .success(count) }
            let code = tern_errno()
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return .success(0) }
            return .failure(SystemCallError(operation: "send", code: code))
        }
    }

    public func close() { closeDescriptor(descriptor) }

    private static func open(family: Int32) throws(SystemCallError) -> TCPSocket {
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        return TCPSocket(descriptor: try systemCall("socket") { socket(family, flags, 0) })
    }
}

/// poll(2) over a set of descriptors; EINTR counts as "nothing ready", so the caller re-checks its
/// deadlines.
public func pollDescriptors(_ descriptors: inout [pollfd], timeoutMilliseconds: Int32) {
    guard !descriptors.isEmpty else {
        if timeoutMilliseconds > 0 { usleep(UInt32(min(timeoutMilliseconds, 1_000)) * 1_000) }
        return
    }
    let outcome = poll(&descriptors, nfds_t(descriptors.count), timeoutMilliseconds)
    precondition(outcome >= 0 || tern_errno() == EINTR, "poll failed: \(String(cString: strerror(tern_errno())))")
}
