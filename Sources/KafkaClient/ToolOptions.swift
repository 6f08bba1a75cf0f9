// The options of the Kafka tools (`tern topics|produce|consume|cluster status|bench produce|consume`),
// parsed without side effects so tests can check every flag; the commands live in Sources/tern.

/// A command line the tool cannot run: exit code 2, with the message and the command's usage.
public struct UsageError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Positionals and `--name value` / `--name=value` options, in order. Repeated options keep
/// every value (`--config a=1 --config b=2`).
public struct ParsedArguments: Equatable, Sendable {
    public var positionals: [String] = []
    public var values: [String: [String]] = [:]
    public var flags: Set<String> = []

    public init(_ arguments: [String], valueOptions: Set<String>, flagOptions: Set<String>) throws(UsageError) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--"), argument.count > 2 else {
                positionals.append(argument)
                continue
            }
            var name = String(argument.dropFirst(2))
            var inlineValue: String?
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if flagOptions.contains(name) {
                guard inlineValue == nil else { throw UsageError("--\(name) takes no value") }
                flags.insert(name)
            } else if valueOptions.contains(name) {
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else {
                    guard index < arguments.count else { throw UsageError("--\(name) needs a value") }
                    value = arguments[index]
                    index += 1
                }
                values[name, default: []].append(value)
            } else {
                throw UsageError("unknown option --\(name)")
            }
        }
    }

    public func value(_ name: String) -> String? { values[name]?.last }

    public func integer<Value: FixedWidthInteger>(_ name: String, default defaultValue: Value, minimum: Value) throws(UsageError) -> Value {
        guard let text = value(name) else { return defaultValue }
        // Thousands separators as in "1,000,000" are accepted: the usage text writes them.
        guard let parsed = Value(text.filter { $0 != "," && $0 != "_" }), parsed >= minimum else {
            throw UsageError("--\(name) must be an integer of at least \(minimum), got '\(text)'")
        }
        return parsed
    }

    public func bootstrap() throws(UsageError) -> [BrokerAddress] {
        guard let text = value("bootstrap") else { throw UsageError("--bootstrap HOST:PORT[,HOST:PORT...] is required") }
        do { return try BrokerAddress.parseList(text) } catch { throw UsageError(error.description) }
    }
}

/// `--acks all|-1|1|0`, as Kafka's producer config spells it.
public func parseAcks(_ text: String?) throws(UsageError) -> Int16 {
    switch text {
    case nil, "all", "-1": return -1
    case "1": return 1
    case "0": return 0
    default: throw UsageError("--acks must be all, 1 or 0, got '\(text!)'")
    }
}

// MARK: - topics

public enum TopicsCommand: Equatable, Sendable {
    case create(NewTopic)
    case list
    case describe(name: String?)
    case delete(name: String)
}

public struct TopicsOptions: Equatable, Sendable {
    public var command: TopicsCommand
    public var bootstrap: [BrokerAddress]

    public init(_ arguments: [String]) throws(UsageError) {
        let parsed = try ParsedArguments(arguments, valueOptions: ["bootstrap", "partitions", "replication-factor", "config"], flagOptions: [])
        bootstrap = try parsed.bootstrap()
        guard let action = parsed.positionals.first else { throw UsageError("missing action: create, list, describe or delete") }
        let names = Array(parsed.positionals.dropFirst())
        let creationOnly = ["partitions", "replication-factor", "config"].filter { parsed.values[$0] != nil }
        if action != "create", let option = creationOnly.first { throw UsageError("--\(option) applies only to 'topics create'") }
        switch action {
        case "create":
            guard names.count == 1 else { throw UsageError("'topics create' takes one topic name") }
            var topic = NewTopic(name: names[0])
            topic.partitionCount = try parsed.integer("partitions", default: -1, minimum: 1)
            topic.replicationFactor = try parsed.integer("replication-factor", default: -1, minimum: 1)
            for entry in parsed.values["config"] ?? [] {
                guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                    throw UsageError("--config takes KEY=VALUE, got '\(entry)'")
                }
                topic.configs.append((String(entry[..<equals]), String(entry[entry.index(after: equals)...])))
            }
            command = .create(topic)
        case "list":
            guard names.isEmpty else { throw UsageError("'topics list' takes no topic name") }
            command = .list
        case "describe":
            guard names.count <= 1 else { throw UsageError("'topics describe' takes at most one topic name") }
            command = .describe(name: names.first)
        case "delete":
            guard names.count == 1 else { throw UsageError("'topics delete' takes one topic name") }
            command = .delete(name: names[0])
        default:
            throw UsageError("unknown topics action '\(action)': expected create, list, describe or delete")
        }
    }
}

// MARK: - configs

/// What `tern configs` is asked about: a topic, or a broker (by id).
public enum ConfigsTarget: Equatable, Sendable {
    case topic(String)
    case broker(Int32)

    /// Kafka's resource type and name.
    public var resource: (type: Int8, name: String) {
        switch self {
        case let .topic(name): return (2, name)
        case let .broker(id): return (4, String(id))
        }
    }
}

public enum ConfigsCommand: Equatable, Sendable {
    case describe
    case set([ConfigAssignment])
    case delete([String])
}

public struct ConfigAssignment: Equatable, Sendable {
    public var name: String
    public var value: String
}

public struct ConfigsOptions: Equatable, Sendable {
    public var command: ConfigsCommand
    public var target: ConfigsTarget
    public var bootstrap: [BrokerAddress]

    public init(_ arguments: [String]) throws(UsageError) {
        let parsed = try ParsedArguments(arguments, valueOptions: ["bootstrap", "topic", "broker"], flagOptions: [])
        bootstrap = try parsed.bootstrap()
        switch (parsed.value("topic"), parsed.value("broker")) {
        case let (topic?, nil): target = .topic(topic)
        case let (nil, broker?):
            guard let id = Int32(broker), id >= 0 else { throw UsageError("--broker takes a broker id, got '\(broker)'") }
            target = .broker(id)
        default: throw UsageError("name one resource: --topic NAME or --broker ID")
        }
        guard let action = parsed.positionals.first else { throw UsageError("missing action: describe, set or delete") }
        let entries = Array(parsed.positionals.dropFirst())
        switch action {
        case "describe":
            guard entries.isEmpty else { throw UsageError("'configs describe' takes no KEY") }
            command = .describe
        case "set":
            guard !entries.isEmpty else { throw UsageError("'configs set' takes KEY=VALUE ...") }
            command = .set(try entries.map { entry throws(UsageError) in
                guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                    throw UsageError("'configs set' takes KEY=VALUE, got '\(entry)'")
                }
                return ConfigAssignment(name: String(entry[..<equals]), value: String(entry[entry.index(after: equals)...]))
            })
        case "delete":
            guard !entries.isEmpty else { throw UsageError("'configs delete' takes KEY ...") }
            command = .delete(entries)
        default:
            throw UsageError("unknown configs action '\(action)': expected describe, set or delete")
        }
    }
}

// MARK: - produce / consume

public struct ProduceOptions: Equatable, Sendable {
    public var topic: String
    public var bootstrap: [BrokerAddress]
    public var acks: Int16 = -1
    /// Splits each line into key and value at its first occurrence; nil: the whole line is the value.
    public var keySeparator: Character?
    /// Every record to this partition; nil: keyed records by key hash, others spread round-robin.
    public var partition: Int32?

    public init(_ arguments: [String]) throws(UsageError) {
        let parsed = try ParsedArguments(arguments, valueOptions: ["bootstrap", "acks", "key-separator", "partition"], flagOptions: [])
        guard parsed.positionals.count == 1 else { throw UsageError("produce takes one topic name") }
        topic = parsed.positionals[0]
        bootstrap = try parsed.bootstrap()
        acks = try parseAcks(parsed.value("acks"))
        if let separator = parsed.value("key-separator") {
            guard separator.count == 1 else { throw UsageError("--key-separator must be one character, got '\(separator)'") }
            keySeparator = separator.first
        }
        if parsed.value("partition") != nil { partition = try parsed.integer("partition", default: 0, minimum: 0) }
    }
}

public struct ConsumeOptions: Equatable, Sendable {
    public var topic: String
    public var bootstrap: [BrokerAddress]
    /// From the log start; otherwise only records written from now on.
    public var fromBeginning = false
    /// Only this partition; nil: every partition of the topic.
    public var partition: Int32?
    public var maximumRecords: Int?
    /// Exit once every partition is read up to the end it had when consumption began.
    public var exitAtEnd = false
    public var printKey = false
    public var printOffset = false

    public init(_ arguments: [String]) throws(UsageError) {
        let parsed = try ParsedArguments(arguments, valueOptions: ["bootstrap", "partition", "max-records"],
                                         flagOptions: ["from-beginning", "exit-at-end", "print-key", "print-offset"])
        guard parsed.positionals.count == 1 else { throw UsageError("consume takes one topic name") }
        topic = parsed.positionals[0]
        bootstrap = try parsed.bootstrap()
        fromBeginning = parsed.flags.contains("from-beginning")
        exitAtEnd = parsed.flags.contains("exit-at-end")
        printKey = parsed.flags.contains("print-key")
        printOffset = parsed.flags.contains("print-offset")
        if parsed.value("partition") != nil { partition = try parsed.integer("partition", default: 0, minimum: 0) }
        if parsed.value("max-records") != nil { maximumRecords = try parsed.integer("max-records", default: 0, minimum: 1) }
    }
}

// MARK: - cluster status

public struct ClusterStatusOptions: Equatable, Sendable {
    public var bootstrap: [BrokerAddress]

    public init(_ arguments: [String]) throws(UsageError) {
        let parsed = try ParsedArguments(arguments, valueOptions: ["bootstrap"], flagOptions: [])
        guard parsed.positionals.isEmpty else { throw UsageError("unexpected argument '\(parsed.positionals[0])'") }
        bootstrap = try parsed.bootstrap()
    }
}

// MARK: - bench

public struct ProduceBenchmarkOptions: Equatable, Sendable {
    public var bootstrap: [BrokerAddress]
    public var topic: String
    /// Records of the windowed phase; 0 runs only the one-at-a-time phase.
    public var recordCount = 1_000_000
    public var recordBytes = 100
    public var acks: Int16 = -1
    /// Most records sent and not yet acknowledged in the windowed phase (the NATS peer's WINDOW),
    /// so its latency measures the cluster rather than the benchmark's own queue.
    public var windowRecords = 1_000
    /// Records of the one-at-a-time phase after it, each sent only once the previous was acknowledged.
    public var syncRecordCount = 0
    /// Used only when the topic is created; -1: the broker's default.
    public var partitionCount: Int32 = -1
    public var replicationFactor: Int16 = 3

    public init(_ arguments: [String]) throws(UsageError) {
        let parsed = try ParsedArguments(arguments, valueOptions: ["bootstrap", "topic", "records", "record-bytes", "acks",
                                                                   "partitions", "replication-factor", "window", "sync-records"],
                                         flagOptions: [])
        guard parsed.positionals.isEmpty else { throw UsageError("unexpected argument '\(parsed.positionals[0])'") }
        bootstrap = try parsed.bootstrap()
        guard let topic = parsed.value("topic") else { throw UsageError("--topic is required") }
        self.topic = topic
        recordCount = try parsed.integer("records", default: 1_000_000, minimum: 0)
        windowRecords = try parsed.integer("window", default: 1_000, minimum: 1)
        syncRecordCount = try parsed.integer("sync-records", default: 0, minimum: 0)
        guard recordCount > 0 || syncRecordCount > 0 else { throw UsageError("--records and --sync-records are both 0: nothing to measure") }
        // Values are opaque filler; one byte is the smallest record that still has a value.
        recordBytes = try parsed.integer("record-bytes", default: 100, minimum: 1)
        guard recordBytes <= 1_000_000 else { throw UsageError("--record-bytes must be at most 1000000") }
        acks = try parseAcks(parsed.value("acks"))
        partitionCount = try parsed.integer("partitions", default: -1, minimum: 1)
        replicationFactor = try parsed.integer("replication-factor", default: 3, minimum: 1)
    }
}

public struct ConsumeBenchmarkOptions: Equatable, Sendable {
    public var bootstrap: [BrokerAddress]
    public var topic: String
    /// nil: every record the topic holds when the benchmark starts.
    public var recordCount: Int?
    public var timeoutSeconds = 60

    public init(_ arguments: [String]) throws(UsageError) {
        let parsed = try ParsedArguments(arguments, valueOptions: ["bootstrap", "topic", "records", "timeout-seconds"], flagOptions: [])
        guard parsed.positionals.isEmpty else { throw UsageError("unexpected argument '\(parsed.positionals[0])'") }
        bootstrap = try parsed.bootstrap()
        guard let topic = parsed.value("topic") else { throw UsageError("--topic is required") }
        self.topic = topic
        if parsed.value("records") != nil { recordCount = try parsed.integer("records", default: 0, minimum: 1) }
        timeoutSeconds = try parsed.integer("timeout-seconds", default: 60, minimum: 1)
    }
}
