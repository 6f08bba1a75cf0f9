// Glibc: real sockets for the tools' shell (this module is not part of the deterministic core; the
// simulator never links it).
#if canImport(Glibc)
import Glibc
#endif
import CSystem

/// One resolved socket address, copied out of getaddrinfo's list so it outlives `freeaddrinfo`.
struct ResolvedAddress: Sendable {
    var family: Int32
    var bytes: [UInt8]
}

/// A non-blocking TCP socket. Every syscall retries EINTR; EAGAIN is reported as "nothing now",
/// everything else as an error with the system's message.
struct TCPSocket {
    let descriptor: Int32

    static func resolve(_ address: BrokerAddress) throws(KafkaClientError) -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_protocol = Int32(IPPROTO_TCP)
        var list: UnsafeMutablePointer<addrinfo>?
        let outcome = getaddrinfo(address.host, String(address.port), &hints, &list)
        guard outcome == 0 else {
            throw .unresolvableHost(address, reason: String(cString: gai_strerror(outcome)))
        }
        defer { freeaddrinfo(list) }
        var resolved: [ResolvedAddress] = []
        var entry = list
        while let current = entry {
            // Bounded by the resolver's answer; a handful of addresses at most in practice.
            if let socketAddress = current.pointee.ai_addr, resolved.count < 16 {
                let length = Int(current.pointee.ai_addrlen)
                let bytes = [UInt8](UnsafeRawBufferPointer(start: UnsafeRawPointer(socketAddress), count: length))
                resolved.append(ResolvedAddress(family: current.pointee.ai_family, bytes: bytes))
            }
            entry = current.pointee.ai_next
        }
        guard !resolved.isEmpty else { throw .unresolvableHost(address, reason: "no addresses") }
        // IPv4 first: brokers here listen on IPv4 loopback, and "localhost" often resolves to ::1 first.
        return resolved.filter { $0.family == AF_INET } + resolved.filter { $0.family != AF_INET }
    }

    /// Starts a connect; true in `completed` when it finished at once (loopback sometimes does).
    static func startConnect(to resolved: ResolvedAddress) -> Result<(socket: TCPSocket, completed: Bool), SystemCallError> {
        let descriptor = socket(resolved.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return .failure(SystemCallError(call: "socket", errorNumber: errno)) }
        let socket = TCPSocket(descriptor: descriptor)
        // Requests are small and latency matters more than packet count (Kafka's clients do the same).
        var enabled: Int32 = 1
        _ = setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &enabled, socklen_t(MemoryLayout<Int32>.size))
        let outcome = resolved.bytes.withUnsafeBytes { raw in
            connect(descriptor, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
        }
        if outcome == 0 { return .success((socket, true)) }
        let error = errno
        if error == EINPROGRESS || error == EINTR { return .success((socket, false)) }
        socket.close()
        return .failure(SystemCallError(call: "connect", errorNumber: error))
    }

    /// After poll reported the socket writable: nil if the connect succeeded, else why not.
    func connectOutcome() -> SystemCallError? {
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length) == 0 else {
            return SystemCallError(call: "getsockopt(SO_ERROR)", errorNumber: errno)
        }
        return error == 0 ? nil : SystemCallError(call: "connect", errorNumber: error)
    }

    /// Bytes read into `buffer`; 0 means nothing available now; nil means the peer closed.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Result<Int?, SystemCallError> {
        while true {
            let count = Glibc.read(descriptor, buffer.baseAddress, buffer.count)
            if count > 0 { return .success(count) }
            if count == 0 { return .success(nil) }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .success(0) }
            return .failure(SystemCallError(call: "read", errorNumber: error))
        }
    }

    /// Bytes written from `bytes` (possibly fewer than given, 0 when the socket buffer is full).
    func write(_ bytes: UnsafeRawBufferPointer) -> Result<Int, SystemCallError> {
        while true {
            // MSG_NOSIGNAL: a broker that closed the connection must not kill the tool with SIGPIPE.
            let count = send(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if count >= 0 { return .success(count) }
            let error = errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .success(0) }
            return .failure(SystemCallError(call: "send", errorNumber: error))
        }
    }

    func close() { _ = Glibc.close(descriptor) }
}

struct SystemCallError: Error, Equatable, Sendable, CustomStringConvertible {
    var call: String
    var errorNumber: Int32
    var description: String { "\(call): \(String(cString: strerror(errorNumber)))" }
}

/// poll(2) over a set of descriptors; EINTR counts as "nothing ready" so the caller re-checks its deadlines.
func pollDescriptors(_ descriptors: inout [pollfd], timeoutMilliseconds: Int32) {
    guard !descriptors.isEmpty else {
        if timeoutMilliseconds > 0 { usleep(UInt32(min(timeoutMilliseconds, 1_000)) * 1_000) }
        return
    }
    let outcome = poll(&descriptors, nfds_t(descriptors.count), timeoutMilliseconds)
    precondition(outcome >= 0 || errno == EINTR, "poll failed: \(String(cString: strerror(errno)))")
}
