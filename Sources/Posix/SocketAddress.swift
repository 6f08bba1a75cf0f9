/// A host name or IP literal and a TCP port, to listen on or connect to.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// IPv6 literals are bracketed so the port stays unambiguous, as in a bootstrap list.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses one `host:port` (IPv6 literals as `[::1]:9092`).
    public static func parse(_ text: String) throws(SocketAddressError) -> SocketAddress {
        let trimmed = text.trimmingSpaces()
        guard !trimmed.isEmpty else { throw .empty }
        let host: Substring
        let portText: Substring
        if trimmed.hasPrefix("[") {
            guard let closing = trimmed.firstIndex(of: "]") else { throw .malformed(trimmed, reason: "no closing ']'") }
            host = trimmed[trimmed.index(after: trimmed.startIndex)..<closing]
            let rest = trimmed[trimmed.index(after: closing)...]
            guard rest.hasPrefix(":") else { throw .malformed(trimmed, reason: "expected ':PORT' after ']'") }
            portText = rest.dropFirst()
        } else {
            guard let colon = trimmed.lastIndex(of: ":") else { throw .malformed(trimmed, reason: "expected HOST:PORT") }
            host = trimmed[..<colon]
            guard !host.contains(":") else { throw .malformed(trimmed, reason: "an IPv6 address needs brackets: [ADDRESS]:PORT") }
            portText = trimmed[trimmed.index(after: colon)...]
        }
        guard !host.isEmpty else { throw .malformed(trimmed, reason: "empty host") }
        guard let port = UInt16(portText), port > 0 else { throw .malformed(trimmed, reason: "port must be 1 to 65535") }
        return SocketAddress(host: String(host), port: port)
    }

    /// Parses a bootstrap list `host:port,host:port`; duplicates are dropped, order is kept.
    public static func parseList(_ text: String) throws(SocketAddressError) -> [SocketAddress] {
        var addresses: [SocketAddress] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let address = try parse(String(part))
            if !addresses.contains(address) { addresses.append(address) }
        }
        guard !addresses.isEmpty else { throw .empty }
        return addresses
    }
}

public enum SocketAddressError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case malformed(String, reason: String)

    public var description: String {
        switch self {
        case .empty: return "no address given (expected HOST:PORT[,HOST:PORT...])"
        case let .malformed(text, reason): return "bad address '\(text)': \(reason)"
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        return String(scalars[first...last])
    }
}
