import Glibc
import Posix

/// Why a `server.properties` file cannot start a node. The message names the file, the line and
/// the key, so that an operator can go straight to the mistake.
public struct ServerPropertiesError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Problem: Equatable, Sendable {
        /// The file could not be read; `reason` is the system's.
        case unreadableFile(reason: String)
        /// A line that is not a property at all (no key, a broken escape).
        case malformedLine(reason: String)
        case unknownKey
        case duplicateKey(firstLine: Int)
        /// A required key is absent; the error has no line.
        case missingKey
        /// The value is wrong on its own or against other keys; `reason` completes "'KEY' …".
        case invalidValue(reason: String)
    }

    public var fileName: String
    /// 1-based; nil when no single line is at fault (an unreadable file, a missing key).
    public var line: Int?
    public var key: String?
    public var problem: Problem

    public init(fileName: String, line: Int?, key: String?, problem: Problem) {
        self.fileName = fileName
        self.line = line
        self.key = key
        self.problem = problem
    }

    public var description: String {
        let place = line.map { "\(fileName):\($0)" } ?? fileName
        let quotedKey = "'\(key ?? "")'"
        switch problem {
        case let .unreadableFile(reason): return "\(place): cannot read the file: \(reason)"
        case let .malformedLine(reason): return "\(place): \(reason)"
        case .unknownKey: return "\(place): unknown key \(quotedKey)"
        case let .duplicateKey(firstLine): return "\(place): duplicate key \(quotedKey) (first set on line \(firstLine))"
        case .missingKey: return "\(place): missing required key \(quotedKey)"
        case let .invalidValue(reason): return "\(place): \(quotedKey) \(reason)"
        }
    }
}

/// The keys Tern accepts in `server.properties`, with Kafka's names. Only keys that take effect are
/// here: a key Tern would ignore is refused as unknown rather than silently doing nothing.
public enum ServerPropertyKey: String, CaseIterable, Sendable {
    case nodeID = "node.id"
    case processRoles = "process.roles"
    case controllerQuorumVoters = "controller.quorum.voters"
    case listeners = "listeners"
    case advertisedListeners = "advertised.listeners"
    case logDirectories = "log.dirs"
    case clusterID = "cluster.id"
    case partitionCount = "num.partitions"
    case defaultReplicationFactor = "default.replication.factor"
    case minInSyncReplicas = "min.insync.replicas"
    case uncleanLeaderElectionEnable = "unclean.leader.election.enable"
    case logSegmentBytes = "log.segment.bytes"
    case logRollMilliseconds = "log.roll.ms"
    case logRollHours = "log.roll.hours"
    case logRetentionMilliseconds = "log.retention.ms"
    case logRetentionMinutes = "log.retention.minutes"
    case logRetentionHours = "log.retention.hours"
    case logRetentionBytes = "log.retention.bytes"
    case logRetentionCheckIntervalMilliseconds = "log.retention.check.interval.ms"
    case logMessageTimestampType = "log.message.timestamp.type"
    case autoCreateTopicsEnable = "auto.create.topics.enable"
    case replicaLagTimeMaxMilliseconds = "replica.lag.time.max.ms"
    case brokerHeartbeatIntervalMilliseconds = "broker.heartbeat.interval.ms"
    case brokerSessionTimeoutMilliseconds = "broker.session.timeout.ms"
    case messageMaxBytes = "message.max.bytes"
    case socketRequestMaxBytes = "socket.request.max.bytes"

    /// Which nodes a key means something on. A key for a role the node does not play is an error:
    /// it would be silently ignored, and the operator probably meant it to apply.
    public enum Scope: Sendable {
        case everyNode
        case broker
        case controller
    }

    public var scope: Scope {
        switch self {
        // broker.session.timeout.ms: the controllers fence by it, and a broker stops waiting for
        // a controlled shutdown no controller has answered for that long.
        case .nodeID, .processRoles, .controllerQuorumVoters, .listeners, .logDirectories, .clusterID, .minInSyncReplicas,
             .brokerSessionTimeoutMilliseconds:
            return .everyNode
        case .advertisedListeners, .logSegmentBytes, .logRollMilliseconds, .logRollHours, .logMessageTimestampType, .autoCreateTopicsEnable,
             .logRetentionMilliseconds, .logRetentionMinutes, .logRetentionHours, .logRetentionBytes, .logRetentionCheckIntervalMilliseconds,
             .replicaLagTimeMaxMilliseconds, .brokerHeartbeatIntervalMilliseconds, .messageMaxBytes, .socketRequestMaxBytes:
            return .broker
        case .partitionCount, .defaultReplicationFactor, .uncleanLeaderElectionEnable:
            return .controller
        }
    }

    public var isRequired: Bool {
        switch self {
        case .nodeID, .processRoles, .controllerQuorumVoters, .listeners, .logDirectories, .clusterID: return true
        default: return false
        }
    }
}

/// A Kafka `server.properties` file: `key=value` (or `key:value`, or `key value`) lines, `#` and `!`
/// comments, blank lines, a backslash at the end of a line continuing it on the next, and the
/// escapes of Java properties files (`\t`, `\n`, `\r`, `\f`, `\uXXXX`, `\` before any other
/// character). Unlike Java, trailing whitespace of a value is dropped too, as Kafka trims its
/// values.
///
/// `parse` checks the syntax and the keys (unknown and duplicate keys are errors);
/// `launchConfiguration()` checks the values, alone and against each other, and builds what the
/// node is started from.
///
/// A relative `log.dirs` is resolved against the directory of the properties file (the directory
/// part of `fileName`), so a cluster's files can name their data directories next to themselves
/// whatever directory the node is started from.
public struct ServerProperties: Sendable {
    /// One `key=value` line; `line` is where it starts (continuations add lines after it).
    public struct Property: Equatable, Sendable {
        public var key: ServerPropertyKey
        public var value: String
        public var line: Int
    }

    /// Names the file in errors; its directory is where a relative `log.dirs` lives.
    public let fileName: String
    /// In file order.
    public let properties: [Property]

    /// Larger properties files are refused rather than read into memory without a bound.
    public static let maximumFileBytes = 1 << 20

    public static func load(path: String) throws(ServerPropertiesError) -> ServerProperties {
        let bytes: [UInt8]
        do {
            bytes = try readWholeFile(path: path, maximumBytes: maximumFileBytes)
        } catch {
            throw ServerPropertiesError(fileName: path, line: nil, key: nil, problem: .unreadableFile(reason: error.reason))
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ServerPropertiesError(fileName: path, line: nil, key: nil, problem: .unreadableFile(reason: "it is not UTF-8 text"))
        }
        return try parse(text, fileName: path)
    }

    public static func parse(_ text: String, fileName: String) throws(ServerPropertiesError) -> ServerProperties {
        var properties: [Property] = []
        var firstLineOfKey: [ServerPropertyKey: Int] = [:]
        for logicalLine in PropertiesSyntax.logicalLines(of: text) {
            let (rawKey, value) = try PropertiesSyntax.splitProperty(logicalLine.scalars, line: logicalLine.number, fileName: fileName)
            guard let key = ServerPropertyKey(rawValue: rawKey) else {
                throw ServerPropertiesError(fileName: fileName, line: logicalLine.number, key: rawKey, problem: .unknownKey)
            }
            if let firstLine = firstLineOfKey[key] {
                throw ServerPropertiesError(fileName: fileName, line: logicalLine.number, key: rawKey,
                                            problem: .duplicateKey(firstLine: firstLine))
            }
            firstLineOfKey[key] = logicalLine.number
            properties.append(Property(key: key, value: value, line: logicalLine.number))
        }
        return ServerProperties(fileName: fileName, properties: properties)
    }

    /// The value of `key`, if the file sets it.
    public func value(of key: ServerPropertyKey) -> String? { property(key)?.value }

    func property(_ key: ServerPropertyKey) -> Property? { properties.first { $0.key == key } }
}

// MARK: - Syntax

/// The Java properties syntax, without meaning: lines to keys and values.
enum PropertiesSyntax {
    struct LogicalLine {
        var scalars: [Unicode.Scalar]
        /// 1-based number of the physical line it starts on.
        var number: Int
    }

    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool { scalar == " " || scalar == "\t" || scalar == "\u{0C}" }

    /// Splits at `\n`, `\r\n` or `\r`, as Java does.
    static func physicalLines(of text: String) -> [[Unicode.Scalar]] {
        var lines: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        var previousWasCarriageReturn = false
        for scalar in text.unicodeScalars {
            if scalar == "\n" && previousWasCarriageReturn {
                previousWasCarriageReturn = false
                continue
            }
            previousWasCarriageReturn = scalar == "\r"
            if scalar == "\n" || scalar == "\r" {
                lines.append(current)
                current = []
            } else {
                current.append(scalar)
            }
        }
        if !current.isEmpty { lines.append(current) }
        return lines
    }

    /// Drops blank and comment lines and joins continued lines (an odd number of backslashes at the
    /// end: the last one escapes the line break). A continuation's leading whitespace is dropped.
    static func logicalLines(of text: String) -> [LogicalLine] {
        let physical = physicalLines(of: text)
        var logical: [LogicalLine] = []
        var index = 0
        while index < physical.count {
            let number = index + 1
            var scalars = Array(physical[index].drop(while: isWhitespace))
            index += 1
            if scalars.isEmpty || scalars[0] == "#" || scalars[0] == "!" { continue }
            while endsWithContinuation(scalars) {
                scalars.removeLast()
                guard index < physical.count else { break }
                scalars += physical[index].drop(while: isWhitespace)
                index += 1
            }
            logical.append(LogicalLine(scalars: scalars, number: number))
        }
        return logical
    }

    static func endsWithContinuation(_ scalars: [Unicode.Scalar]) -> Bool {
        var backslashes = 0
        for scalar in scalars.reversed() {
            guard scalar == "\\" else { break }
            backslashes += 1
        }
        return backslashes % 2 == 1
    }

    /// The key ends at the first unescaped `=`, `:` or whitespace; then whitespace, at most one `=`
    /// or `:`, and whitespace again separate it from the value.
    static func splitProperty(_ scalars: [Unicode.Scalar], line: Int, fileName: String)
        throws(ServerPropertiesError) -> (key: String, value: String) {
        var position = 0
        var escaped = false
        while position < scalars.count {
            let scalar = scalars[position]
            if escaped {
                escaped = false
            } else if scalar == "\\" {
                escaped = true
            } else if scalar == "=" || scalar == ":" || isWhitespace(scalar) {
                break
            }
            position += 1
        }
        let rawKey = scalars[0..<position]
        while position < scalars.count, isWhitespace(scalars[position]) { position += 1 }
        if position < scalars.count, scalars[position] == "=" || scalars[position] == ":" { position += 1 }
        while position < scalars.count, isWhitespace(scalars[position]) { position += 1 }
        let rawValue = scalars[position...]

        func malformed(_ reason: String) -> ServerPropertiesError {
            ServerPropertiesError(fileName: fileName, line: line, key: nil, problem: .malformedLine(reason: reason))
        }
        guard let key = unescape(rawKey), let value = unescape(rawValue) else {
            throw malformed("a '\\u' escape must be followed by four hexadecimal digits")
        }
        guard !key.isEmpty else { throw malformed("a property needs a key before its '=' or ':'") }
        return (key, String(String.UnicodeScalarView(value.unicodeScalars.reversed().drop(while: isWhitespace).reversed())))
    }

    /// Resolves the escapes; nil for a broken `\u` escape.
    static func unescape(_ scalars: ArraySlice<Unicode.Scalar>) -> String? {
        var result = String.UnicodeScalarView()
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let scalar = scalars[index]
            index += 1
            guard scalar == "\\" else {
                result.append(scalar)
                continue
            }
            guard index < scalars.endIndex else { break }
            let escaped = scalars[index]
            index += 1
            switch escaped {
            case "t": result.append("\t")
            case "n": result.append("\n")
            case "r": result.append("\r")
            case "f": result.append("\u{0C}")
            case "u":
                guard scalars.endIndex - index >= 4 else { return nil }
                let digits = String(String.UnicodeScalarView(scalars[index..<index + 4]))
                guard let code = UInt32(digits, radix: 16), let decoded = Unicode.Scalar(code) else { return nil }
                result.append(decoded)
                index += 4
            default: result.append(escaped)
            }
        }
        return String(result)
    }
}

// MARK: - Reading the file

struct FileReadError: Error {
    var reason: String
}

/// Reads a whole small file; refuses one larger than `maximumBytes` instead of growing without bound.
func readWholeFile(path: String, maximumBytes: Int) throws(FileReadError) -> [UInt8] {
    let descriptor: Int32
    do {
        descriptor = try systemCall("open") { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
    } catch {
        throw FileReadError(reason: systemErrorMessage(error.code))
    }
    defer { closeDescriptor(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let count: Int
        do {
            count = try systemCall("read") { chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) } }
        } catch {
            throw FileReadError(reason: systemErrorMessage(error.code))
        }
        if count == 0 { return bytes }
        guard bytes.count + count <= maximumBytes else { throw FileReadError(reason: "it is larger than \(maximumBytes) bytes") }
        bytes += chunk[0..<count]
    }
}

/// The C library's sentence for an errno value.
func systemErrorMessage(_ code: Int32) -> String {
    guard let message = strerror(code) else { return "errno \(code)" }
    return String(cString: message)
}
