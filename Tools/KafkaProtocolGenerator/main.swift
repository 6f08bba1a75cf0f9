// Kafka protocol code generator for Tern.
//
// Reads Kafka's JSON message schemas (clients/src/main/resources/common/message/*.json in
// apache/kafka) and writes one Swift file per API into the output directory: the request and
// response structs of that API, nested in `KafkaWire`, for exactly the versions Tern supports.
//
// Run from the repository root:
//
//     swift Tools/KafkaProtocolGenerator/main.swift /work/shared/kafka-protocol/schemas \
//         Sources/KafkaProtocol/Wire/Generated
//
// If the script interpreter is unavailable, compile it first:
//
//     swiftc -O Tools/KafkaProtocolGenerator/main.swift -o /tmp/kafka-protocol-generator
//     /tmp/kafka-protocol-generator SCHEMA_DIR Sources/KafkaProtocol/Wire/Generated
//
// This is a development tool, not a target of Package.swift, so it may use Foundation. The output
// is committed; the schemas are not (they are Kafka's, read from wherever they were checked out).

import Foundation

// MARK: - What to generate

/// The APIs Tern speaks and the versions it generates for each (REFERENCE.md §2). A field or
/// nested struct that exists in no version of the range is left out entirely.
let generatedAPIs: [(name: String, versions: ClosedRange<Int>)] = [
    ("Produce", 0...11),
    // Clients are offered 4-12 (SupportedAPIVersions); 13-15 are generated for replication, which
    // names topics by id and carries the follower's broker epoch (ReplicaState, v15) as Kafka's does.
    ("Fetch", 4...15),
    ("ListOffsets", 1...10),
    ("Metadata", 0...12),
    ("ApiVersions", 0...4),
    ("CreateTopics", 2...7),
    ("DeleteTopics", 1...4),
    ("InitProducerId", 0...4),
    ("OffsetForLeaderEpoch", 2...4),
    ("DescribeConfigs", 1...4),
    ("CreatePartitions", 0...3),
    ("ElectLeaders", 0...2),
    ("DescribeCluster", 0...1),
    ("AlterPartitionReassignments", 0...0),
    ("DeleteRecords", 0...2),
    ("AlterConfigs", 0...2),
    ("IncrementalAlterConfigs", 0...1),
]

/// Tern's own fields on Kafka's messages: tagged fields, so Kafka's clients and brokers skip them
/// (a reader ignores unknown tags), numbered from 10000, far above any tag Kafka assigns. They
/// carry what Tern's replication needs beyond Kafka's: a follower reports how far its log is
/// durable and which acknowledged loss it has heard of; the leader tells its log end offset.
/// `path` names the struct fields from the message down to the struct that gets the field.
let ternExtensionFields: [(message: String, path: [String], field: Field)] = [
    ("FetchRequest", ["Topics", "Partitions"], ternTaggedField(
        "TernReplicaDurableOffset", .int64, tag: 10000,
        about: "Tern: the end of the follower's log that is synced to its disk; -1 when unknown.")),
    ("FetchRequest", ["Topics", "Partitions"], ternTaggedField(
        "TernReplicaAcknowledgedLoss", .int32, tag: 10001,
        about: "Tern: the partition epoch of the latest data loss this follower has acknowledged; -1 for none.")),
    ("FetchResponse", ["Responses", "Partitions"], ternTaggedField(
        "TernLeaderLogEndOffset", .int64, tag: 10000,
        about: "Tern: the leader's log end offset; -1 when unknown.")),
]

func ternTaggedField(_ name: String, _ type: FieldType, tag: Int, about: String) -> Field {
    let flexible = Versions(parsing: "12+")
    return Field(name: name, type: type, versions: flexible, nullableVersions: .none, taggedVersions: flexible, tag: tag,
                 defaultText: "-1", about: about, children: [])
}

/// `message` with Tern's extension fields added where `ternExtensionFields` puts them.
func addingTernExtensions(to message: Message) -> Message {
    func add(_ field: Field, at path: ArraySlice<String>, into fields: inout [Field]) {
        guard let name = path.first else {
            fields.append(field)
            return
        }
        guard let index = fields.firstIndex(where: { $0.name == name }) else { fail("\(message.name): no field \(name) for a Tern extension") }
        add(field, at: path.dropFirst(), into: &fields[index].children)
    }
    var extended = message
    for entry in ternExtensionFields where entry.message == message.name {
        add(entry.field, at: entry.path[...], into: &extended.fields)
    }
    return extended
}

// MARK: - Schema model

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(("error: " + message + "\n").data(using: .utf8)!)
    exit(1)
}

/// A schema version set such as "3+", "0-4", "5" or "none": a closed interval or empty.
struct Versions: Equatable {
    var lowest: Int
    var highest: Int
    static let none = Versions(lowest: 1, highest: 0)
    var isEmpty: Bool { lowest > highest }

    init(lowest: Int, highest: Int) {
        self.lowest = lowest
        self.highest = highest
    }

    init(parsing text: String?) {
        guard let text = text?.trimmingCharacters(in: .whitespaces), !text.isEmpty, text != "none" else {
            self = .none
            return
        }
        if text.hasSuffix("+"), let low = Int(text.dropLast()) {
            self.init(lowest: low, highest: Int(Int16.max))
        } else if let dash = text.firstIndex(of: "-"), let low = Int(text[..<dash]),
                  let high = Int(text[text.index(after: dash)...]) {
            self.init(lowest: low, highest: high)
        } else if let single = Int(text) {
            self.init(lowest: single, highest: single)
        } else {
            fail("unreadable version set \"\(text)\"")
        }
    }

    func intersection(_ other: Versions) -> Versions {
        let result = Versions(lowest: max(lowest, other.lowest), highest: min(highest, other.highest))
        return result.isEmpty ? .none : result
    }

    func contains(_ version: Int) -> Bool { version >= lowest && version <= highest }
}

indirect enum FieldType: Equatable {
    case int8, int16, int32, int64, uint16, float64, bool, string, uuid, bytes, records
    case array(FieldType)
    case structure(String)

    init(parsing text: String) {
        if text.hasPrefix("[]") {
            self = .array(FieldType(parsing: String(text.dropFirst(2))))
            return
        }
        switch text {
        case "int8": self = .int8
        case "int16": self = .int16
        case "int32": self = .int32
        case "int64": self = .int64
        case "uint16": self = .uint16
        case "float64": self = .float64
        case "bool": self = .bool
        case "string": self = .string
        case "uuid": self = .uuid
        case "bytes": self = .bytes
        case "records": self = .records
        default:
            guard let first = text.first, first.isUppercase else { fail("unknown field type \"\(text)\"") }
            self = .structure(text)
        }
    }

    var structName: String? {
        switch self {
        case let .structure(name): return name
        case let .array(element): return element.structName
        default: return nil
        }
    }
}

struct Field {
    var name: String
    var type: FieldType
    var versions: Versions
    var nullableVersions: Versions
    var taggedVersions: Versions
    var tag: Int?
    var defaultText: String?
    var about: String?
    var children: [Field]
}

struct Message {
    var name: String
    var apiKey: Int
    var validVersions: Versions
    var flexibleVersions: Versions
    var fields: [Field]
}

/// Kafka's schema files are JSON with `//` line comments; removes the comments, leaving string
/// contents (which may hold "//", as in URLs) untouched.
func stripComments(_ text: String) -> String {
    var output = ""
    var inString = false
    var escaped = false
    var characters = Array(text)
    var index = 0
    while index < characters.count {
        let character = characters[index]
        if inString {
            output.append(character)
            if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { inString = false }
            index += 1
            continue
        }
        if character == "\"" {
            inString = true
            output.append(character)
            index += 1
            continue
        }
        if character == "/", index + 1 < characters.count, characters[index + 1] == "/" {
            while index < characters.count, characters[index] != "\n" { index += 1 }
            continue
        }
        output.append(character)
        index += 1
    }
    characters.removeAll()
    return output
}

func parseField(_ object: [String: Any], in file: String) -> Field {
    guard let name = object["name"] as? String, let typeText = object["type"] as? String else {
        fail("\(file): field without name or type")
    }
    let children = (object["fields"] as? [[String: Any]] ?? []).map { parseField($0, in: file) }
    let tag: Int? = (object["tag"] as? NSNumber)?.intValue
    let defaultText: String?
    if let text = object["default"] as? String {
        defaultText = text
    } else if let number = object["default"] as? NSNumber {
        defaultText = number.stringValue
    } else {
        defaultText = nil
    }
    return Field(name: name, type: FieldType(parsing: typeText),
                 versions: Versions(parsing: object["versions"] as? String),
                 nullableVersions: Versions(parsing: object["nullableVersions"] as? String),
                 taggedVersions: Versions(parsing: object["taggedVersions"] as? String),
                 tag: tag, defaultText: defaultText, about: object["about"] as? String, children: children)
}

func loadMessage(directory: String, name: String) -> Message {
    let path = (directory as NSString).appendingPathComponent(name + ".json")
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { fail("cannot read \(path)") }
    guard let data = stripComments(text).data(using: .utf8),
          let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        fail("\(path) is not valid JSON once comments are removed")
    }
    if object["commonStructs"] != nil { fail("\(path): commonStructs are not supported by this generator") }
    guard let apiKey = (object["apiKey"] as? NSNumber)?.intValue, let messageName = object["name"] as? String else {
        fail("\(path): no apiKey or name")
    }
    let fields = (object["fields"] as? [[String: Any]] ?? []).map { parseField($0, in: path) }
    return Message(name: messageName, apiKey: apiKey,
                   validVersions: Versions(parsing: object["validVersions"] as? String),
                   flexibleVersions: Versions(parsing: object["flexibleVersions"] as? String),
                   fields: fields)
}

// MARK: - Generation context

/// Everything that depends on the message being generated: its supported and flexible versions.
struct Context {
    var messageName: String
    var supported: Versions
    var flexible: Versions

    func present(_ field: Field) -> Versions { field.versions.intersection(supported) }

    /// The versions in which `field` is a tagged field (and not a regular one).
    func tagged(_ field: Field) -> Versions {
        guard field.tag != nil else { return .none }
        return field.taggedVersions.intersection(present(field))
    }

    func nullable(_ field: Field) -> Versions { field.nullableVersions.intersection(present(field)) }

    /// A Swift Bool expression true exactly for the versions of `set` within the supported range.
    func condition(_ set: Versions) -> String {
        let effective = set.intersection(supported)
        if effective.isEmpty { return "false" }
        if effective == supported { return "true" }
        if effective.lowest == supported.lowest { return "version <= \(effective.highest)" }
        if effective.highest == supported.highest { return "version >= \(effective.lowest)" }
        if effective.lowest == effective.highest { return "version == \(effective.lowest)" }
        return "(\(effective.lowest)...\(effective.highest)).contains(version)"
    }
}

// MARK: - Naming and types

let swiftKeywords: Set<String> = [
    "associatedtype", "class", "deinit", "enum", "extension", "func", "import", "init", "inout", "internal", "let",
    "operator", "private", "protocol", "public", "static", "struct", "subscript", "typealias", "var", "break", "case",
    "continue", "default", "defer", "do", "else", "fallthrough", "for", "guard", "if", "in", "repeat", "return",
    "switch", "where", "while", "as", "is", "nil", "self", "super", "throw", "throws", "true", "false", "try", "type",
]

func propertyName(_ schemaName: String) -> String {
    guard let first = schemaName.first else { fail("empty field name") }
    let name = first.lowercased() + schemaName.dropFirst()
    return swiftKeywords.contains(name) ? "`\(name)`" : name
}

func baseSwiftType(_ type: FieldType) -> String {
    switch type {
    case .int8: return "Int8"
    case .int16: return "Int16"
    case .int32: return "Int32"
    case .int64: return "Int64"
    case .uint16: return "UInt16"
    case .float64: return "Double"
    case .bool: return "Bool"
    case .string: return "String"
    case .uuid: return "KafkaUUID"
    case .bytes, .records: return "[UInt8]"
    case let .array(element): return "[\(baseSwiftType(element))]"
    case let .structure(name): return name
    }
}

/// Records are never optional: a null records field decodes as empty and empty encodes as zero
/// length (librdkafka cannot parse null records). Tagged structs are optional: nil means absent.
func isOptional(_ field: Field, _ context: Context) -> Bool {
    if case .structure = field.type, !context.tagged(field).isEmpty { return true }
    if field.type == .records { return false }
    return !context.nullable(field).isEmpty
}

func swiftType(_ field: Field, _ context: Context) -> String {
    let base = baseSwiftType(field.type)
    return isOptional(field, context) ? base + "?" : base
}

func swiftStringLiteral(_ text: String) -> String {
    var result = "\""
    for character in text {
        switch character {
        case "\\": result += "\\\\"
        case "\"": result += "\\\""
        case "\n": result += "\\n"
        default: result.append(character)
        }
    }
    return result + "\""
}

func integerDefault(_ text: String?, field: Field) -> String {
    guard let text, !text.isEmpty else { return "0" }
    let lowered = text.lowercased()
    if lowered.hasPrefix("0x") {
        guard let value = Int(lowered.dropFirst(2), radix: 16) else { fail("bad default \(text) of \(field.name)") }
        return String(value)
    }
    if lowered.hasPrefix("-0x") {
        guard let value = Int(lowered.dropFirst(3), radix: 16) else { fail("bad default \(text) of \(field.name)") }
        return String(-value)
    }
    guard Int(text) != nil else { fail("bad default \(text) of \(field.name)") }
    return text
}

/// The Swift expression of the field's default value (Kafka's rules: numbers 0, strings "",
/// arrays empty, unless the schema says otherwise; "null" only for nullable fields).
func defaultExpression(_ field: Field, _ context: Context) -> String {
    if isOptional(field, context) {
        if case .structure = field.type { return "nil" }
        if field.defaultText == "null" { return "nil" }
    } else if field.defaultText == "null", field.type != .records {
        fail("\(context.messageName).\(field.name): default null on a field that is never nullable")
    }
    switch field.type {
    case .int8, .int16, .int32, .int64, .uint16: return integerDefault(field.defaultText, field: field)
    case .float64: return field.defaultText.flatMap { Double($0) }.map { String($0) } ?? "0"
    case .bool: return field.defaultText?.lowercased() == "true" ? "true" : "false"
    case .string: return swiftStringLiteral(field.defaultText ?? "")
    case .uuid: return ".zero"
    case .bytes, .records, .array: return "[]"
    case let .structure(name): return "\(name)()"
    }
}

// MARK: - Minimum sizes

/// The fewest bytes one value of `type` takes on the wire; array counts are checked against it.
func minimumBytes(_ type: FieldType, version: Int, flexible: Bool, structs: [String: [Field]], context: Context) -> Int {
    switch type {
    case .int8, .bool: return 1
    case .int16, .uint16: return 2
    case .int32: return 4
    case .int64, .float64: return 8
    case .uuid: return 16
    case .string: return flexible ? 1 : 2
    case .bytes, .records, .array: return flexible ? 1 : 4
    case let .structure(name):
        guard let fields = structs[name] else { fail("unknown struct \(name)") }
        return structMinimumBytes(fields, version: version, structs: structs, context: context)
    }
}

func structMinimumBytes(_ fields: [Field], version: Int, structs: [String: [Field]], context: Context) -> Int {
    let flexible = context.flexible.contains(version)
    var total = flexible ? 1 : 0  // the tagged-field count
    for field in fields where field.versions.contains(version) {
        if field.tag != nil, field.taggedVersions.contains(version) { continue }
        total += minimumBytes(field.type, version: version, flexible: flexible, structs: structs, context: context)
    }
    return total
}

// MARK: - Code emission

final class Emitter {
    var lines: [String] = []
    var indentation = 0

    func line(_ text: String = "") {
        lines.append(text.isEmpty ? "" : String(repeating: "    ", count: indentation) + text)
    }

    func block(_ opening: String, _ body: () -> Void) {
        line(opening + " {")
        indentation += 1
        body()
        indentation -= 1
        line("}")
    }

    func documentation(_ text: String?) {
        guard let text, !text.isEmpty else { return }
        line("/// " + text.replacingOccurrences(of: "\n", with: " "))
    }
}

/// Expression decoding one value of `field` from `reader`.
func decodeExpression(_ field: Field, reader: String, flexible: String, context: Context) -> String {
    let optional = isOptional(field, context)
    let nullable = context.condition(context.nullable(field))
    switch field.type {
    case .int8: return "try \(reader).readInt8()"
    case .int16: return "try \(reader).readInt16()"
    case .int32: return "try \(reader).readInt32()"
    case .int64: return "try \(reader).readInt64()"
    case .uint16: return "try \(reader).readUInt16()"
    case .float64: return "try \(reader).readFloat64()"
    case .bool: return "try \(reader).readBool()"
    case .uuid: return "try \(reader).readUUID()"
    case .string:
        return optional ? "try \(reader).readNullableString(flexible: \(flexible), nullable: \(nullable))"
                        : "try \(reader).readString(flexible: \(flexible))"
    case .bytes:
        return optional ? "try \(reader).readNullableBytes(flexible: \(flexible), nullable: \(nullable))"
                        : "try \(reader).readBytes(flexible: \(flexible))"
    case .records:
        return "try \(reader).readRecords(flexible: \(flexible))"
    case let .array(element):
        if case .array = element { fail("\(field.name): arrays of arrays are not supported") }
        let elementType = baseSwiftType(element)
        return optional
            ? "try \(reader).readNullableArray(of: \(elementType).self, version: version, flexible: \(flexible), nullable: \(nullable))"
            : "try \(reader).readArray(of: \(elementType).self, version: version, flexible: \(flexible))"
    case let .structure(name):
        if optional && context.tagged(field).isEmpty {
            fail("\(context.messageName).\(field.name): nullable struct fields are not supported")
        }
        return "try \(name)(decoding: &\(reader), version: version)"
    }
}

/// Statement encoding `value` (an expression of the field's non-optional type when `unwrapped`).
func encodeStatement(_ field: Field, value: String, writer: String, flexible: String, context: Context) -> String {
    let optional = isOptional(field, context)
    let nullable = context.condition(context.nullable(field))
    switch field.type {
    case .int8: return "\(writer).writeInt8(\(value))"
    case .int16: return "\(writer).writeInt16(\(value))"
    case .int32: return "\(writer).writeInt32(\(value))"
    case .int64: return "\(writer).writeInt64(\(value))"
    case .uint16: return "\(writer).writeInteger(\(value) as UInt16)"
    case .float64: return "\(writer).writeInteger(\(value).bitPattern)"
    case .bool: return "\(writer).writeBool(\(value))"
    case .uuid: return "\(writer).writeKafkaUUID(\(value))"
    case .string:
        return optional ? "\(writer).writeKafkaNullableString(\(value), flexible: \(flexible), nullable: \(nullable))"
                        : "\(writer).writeKafkaString(\(value), flexible: \(flexible))"
    case .bytes:
        return optional ? "\(writer).writeKafkaNullableBytes(\(value), flexible: \(flexible), nullable: \(nullable))"
                        : "\(writer).writeKafkaBytes(\(value), flexible: \(flexible))"
    case .records:
        return "\(writer).writeKafkaRecords(\(value), flexible: \(flexible))"
    case .array:
        return optional
            ? "\(writer).writeKafkaNullableArray(\(value), version: version, flexible: \(flexible), nullable: \(nullable))"
            : "\(writer).writeKafkaArray(\(value), version: version, flexible: \(flexible))"
    case .structure:
        return "\(value).encode(into: &\(writer), version: version)"
    }
}

func versionText(_ versions: Versions) -> String {
    if versions.isEmpty { return "none" }
    if versions.highest == Int(Int16.max) { return "\(versions.lowest)+" }
    if versions.lowest == versions.highest { return "\(versions.lowest)" }
    return "\(versions.lowest)-\(versions.highest)"
}

/// Emits one struct (a message or a nested element type) and, for a message, its nested types.
func emitStruct(name: String, about: String?, fields allFields: [Field], isMessage: Bool, apiKey: Int?,
                nested: [(name: String, fields: [Field])], structs: [String: [Field]], context: Context, to out: Emitter) {
    let fields = allFields.filter { !context.present($0).isEmpty }
    let regularFields = fields.filter { context.tagged($0) != context.present($0) }
    let taggedFields = fields.filter { !context.tagged($0).isEmpty }.sorted { ($0.tag ?? 0) < ($1.tag ?? 0) }
    for field in fields where !context.tagged(field).isEmpty && context.tagged(field) != context.present(field) {
        fail("\(context.messageName).\(field.name): a field both tagged and untagged within the generated versions is not supported")
    }
    var seenTags: Set<Int> = []
    for field in taggedFields {
        guard let tag = field.tag, seenTags.insert(tag).inserted else { fail("\(context.messageName).\(field.name): duplicate tag") }
    }
    let flexibleCall = "KafkaWire.\(context.messageName).isFlexible(version: version)"

    out.documentation(about)
    out.block("public struct \(name): KafkaWireStruct") {
        if isMessage, let apiKey {
            out.line("public static let apiKey: Int16 = \(apiKey)")
            out.line("/// The versions generated here; Kafka's schema has \(versionText(context.supported)) of them in scope.")
            out.line("public static let versions: ClosedRange<Int16> = \(context.supported.lowest)...\(context.supported.highest)")
            out.line()
            out.line("/// Flexible versions use compact lengths and carry tagged fields (schema: \"\(versionText(context.flexible))\").")
            out.block("public static func isFlexible(version: Int16) -> Bool") {
                out.line(context.condition(context.flexible))
            }
            out.line()
        }

        // Properties.
        for field in fields {
            var notes = "Versions \(versionText(context.present(field)))"
            if field.type == .records {
                notes += ", null reads as empty"
            } else if !context.nullable(field).isEmpty {
                notes += ", nullable \(versionText(context.nullable(field)))"
            }
            if !context.tagged(field).isEmpty, let tag = field.tag { notes += ", tagged (tag \(tag))" }
            out.documentation(((field.about ?? "").isEmpty ? "" : (field.about ?? "") + " ") + "(\(notes).)")
            out.line("public var \(propertyName(field.name)): \(swiftType(field, context)) = \(defaultExpression(field, context))")
        }
        if !fields.isEmpty { out.line() }

        // Memberwise initializer with every default.
        if fields.isEmpty {
            out.line("public init() {}")
        } else {
            let parameters = fields.map { "\(propertyName($0.name).replacingOccurrences(of: "`", with: "")): \(swiftType($0, context)) = \(defaultExpression($0, context))" }
            out.line("public init(")
            out.indentation += 1
            for (index, parameter) in parameters.enumerated() {
                out.line(parameter + (index == parameters.count - 1 ? "" : ","))
            }
            out.indentation -= 1
            out.block(")") {
                for field in fields {
                    let property = propertyName(field.name)
                    out.line("self.\(property.replacingOccurrences(of: "`", with: "")) = \(property.replacingOccurrences(of: "`", with: ""))")
                }
            }
        }
        out.line()

        // Decoding.
        let decodeBody = Emitter()
        decodeBody.indentation = out.indentation + 1
        for field in regularFields {
            let condition = context.condition(context.present(field))
            let statement = "\(propertyName(field.name)) = " + decodeExpression(field, reader: "reader", flexible: "flexible", context: context)
            if condition == "true" {
                decodeBody.line(statement)
            } else {
                decodeBody.block("if \(condition)") { decodeBody.line(statement) }
            }
        }
        if !context.flexible.intersection(context.supported).isEmpty {
            decodeBody.block("if flexible") {
                if taggedFields.isEmpty {
                    decodeBody.line("try reader.skipTaggedFields()")
                } else {
                    decodeBody.line("let taggedFieldCount = try reader.readTaggedFieldCount()")
                    decodeBody.block("for _ in 0..<taggedFieldCount") {
                        decodeBody.line("let taggedField = try reader.readTaggedField()")
                        decodeBody.line("var field = taggedField.reader")
                        decodeBody.line("switch taggedField.tag {")
                        for field in taggedFields {
                            let condition = context.condition(context.tagged(field))
                            let guardText = condition == "true" ? "" : " where \(condition)"
                            decodeBody.line("case \(field.tag ?? 0)\(guardText):")
                            decodeBody.indentation += 1
                            decodeBody.line("\(propertyName(field.name)) = " + decodeExpression(field, reader: "field", flexible: "true", context: context))
                            decodeBody.indentation -= 1
                        }
                        decodeBody.line("default:")
                        decodeBody.indentation += 1
                        decodeBody.line("break  // Unknown tags are skipped: newer peers may add them (KIP-482).")
                        decodeBody.indentation -= 1
                        decodeBody.line("}")
                    }
                }
            }
        }
        out.block("public init(decoding reader: inout KafkaWireReader, version: Int16) throws(KafkaWireError)") {
            if decodeBody.lines.joined().contains("flexible") {
                out.line("let flexible = \(flexibleCall)")
            }
            out.lines += decodeBody.lines
        }
        out.line()

        // Encoding.
        let encodeBody = Emitter()
        encodeBody.indentation = out.indentation + 1
        for field in regularFields {
            let condition = context.condition(context.present(field))
            let statement = encodeStatement(field, value: propertyName(field.name), writer: "writer", flexible: "flexible", context: context)
            if condition == "true" {
                encodeBody.line(statement)
            } else {
                encodeBody.block("if \(condition)") { encodeBody.line(statement) }
            }
        }
        if !context.flexible.intersection(context.supported).isEmpty {
            encodeBody.block("if flexible") {
                if taggedFields.isEmpty {
                    encodeBody.line("writer.writeUnsignedVarint(0)  // no tagged fields")
                } else {
                    encodeBody.line("var taggedFields: [KafkaTaggedField] = []")
                    for field in taggedFields {
                        var conditions: [String] = []
                        let versionCondition = context.condition(context.tagged(field))
                        if versionCondition != "true" { conditions.append(versionCondition) }
                        let value: String
                        if case .structure = field.type {
                            conditions.append("let value = \(propertyName(field.name))")
                            value = "value"
                        } else {
                            // Kafka writes a tagged field only when it differs from its default.
                            conditions.append("\(propertyName(field.name)) != \(defaultExpression(field, context))")
                            value = propertyName(field.name)
                        }
                        encodeBody.block("if " + conditions.joined(separator: ", ")) {
                            encodeBody.line("var field = ByteWriter()")
                            encodeBody.line(encodeStatement(field, value: value, writer: "field", flexible: "true", context: context))
                            encodeBody.line("taggedFields.append(KafkaTaggedField(tag: \(field.tag ?? 0), bytes: field.take()))")
                        }
                    }
                    encodeBody.line("writer.writeKafkaTaggedFields(taggedFields)")
                }
            }
        }
        out.block("public func encode(into writer: inout ByteWriter, version: Int16)") {
            if encodeBody.lines.joined().contains("flexible") {
                out.line("let flexible = \(flexibleCall)")
            }
            out.lines += encodeBody.lines
        }
        out.line()

        // Minimum encoded size, per version.
        out.line("/// The fewest bytes one encoded value takes; array counts are checked against it before allocating.")
        out.block("public static func minimumEncodedBytes(version: Int16) -> Int") {
            var groups: [(low: Int, high: Int, bytes: Int)] = []
            for version in context.supported.lowest...context.supported.highest {
                // At least 1, so that a count is always bounded by the bytes left, even in a version
                // where the struct is absent or (never in Kafka's schemas) has no fields at all.
                let bytes = max(1, structMinimumBytes(allFields.filter { !context.present($0).isEmpty }, version: version, structs: structs, context: context))
                if let last = groups.last, last.bytes == bytes, last.high == version - 1 {
                    groups[groups.count - 1].high = version
                } else {
                    groups.append((version, version, bytes))
                }
            }
            if groups.count == 1 {
                out.line(String(groups[0].bytes))
            } else {
                out.line("switch version {")
                for (index, group) in groups.enumerated() {
                    let label = index == groups.count - 1 ? "default" : (group.low == group.high ? "case \(group.low)" : "case \(group.low)...\(group.high)")
                    out.line("\(label): return \(group.bytes)")
                }
                out.line("}")
            }
        }

        for nestedStruct in nested {
            out.line()
            emitStruct(name: nestedStruct.name, about: nil, fields: nestedStruct.fields, isMessage: false, apiKey: nil,
                       nested: [], structs: structs, context: context, to: out)
        }
    }
}

/// The nested struct types of a message in schema order (depth first), each once; two uses of
/// one name must have the same fields (Kafka's own rule).
func collectStructs(_ fields: [Field], context: Context, into list: inout [(name: String, fields: [Field])],
                    byName: inout [String: [Field]]) {
    for field in fields where !context.present(field).isEmpty {
        guard let name = field.type.structName else { continue }
        if let existing = byName[name] {
            if existing.map(\.name) != field.children.map(\.name) {
                fail("\(context.messageName): two different structs named \(name)")
            }
            continue
        }
        if field.children.isEmpty { fail("\(context.messageName).\(field.name): struct \(name) has no fields") }
        byName[name] = field.children
        list.append((name, field.children))
        collectStructs(field.children, context: context, into: &list, byName: &byName)
    }
}

func generate(message: Message, supported: Versions, to out: Emitter) {
    let supportedValid = message.validVersions.intersection(supported)
    guard supportedValid == supported else {
        fail("\(message.name): versions \(versionText(supported)) are not all valid (schema: \(versionText(message.validVersions)))")
    }
    let context = Context(messageName: message.name, supported: supported, flexible: message.flexibleVersions)
    var nested: [(name: String, fields: [Field])] = []
    var structs: [String: [Field]] = [:]
    collectStructs(message.fields, context: context, into: &nested, byName: &structs)
    out.line("extension KafkaWire {")
    out.indentation += 1
    emitStruct(name: message.name, about: "Kafka's \(message.name) (API key \(message.apiKey)), versions \(versionText(supported)).",
               fields: message.fields, isMessage: true, apiKey: message.apiKey, nested: nested, structs: structs,
               context: context, to: out)
    out.indentation -= 1
    out.line("}")
}

// MARK: - Main

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    fail("usage: swift Tools/KafkaProtocolGenerator/main.swift SCHEMA_DIRECTORY OUTPUT_DIRECTORY")
}
let schemaDirectory = arguments[1]
let outputDirectory = arguments[2]
try? FileManager.default.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)

for api in generatedAPIs {
    let supported = Versions(lowest: api.versions.lowerBound, highest: api.versions.upperBound)
    let out = Emitter()
    out.line("// Generated by Tools/KafkaProtocolGenerator from Kafka's \(api.name)Request.json and")
    out.line("// \(api.name)Response.json (versions \(versionText(supported))). Do not edit: change the generator and rerun it.")
    out.line()
    out.line("import TernCore")
    out.line()
    for kind in ["Request", "Response"] {
        let message = addingTernExtensions(to: loadMessage(directory: schemaDirectory, name: api.name + kind))
        generate(message: message, supported: supported, to: out)
        if kind == "Request" { out.line() }
    }
    let path = (outputDirectory as NSString).appendingPathComponent(api.name + ".swift")
    let text = out.lines.joined(separator: "\n") + "\n"
    do {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    } catch {
        fail("cannot write \(path): \(error)")
    }
    print("wrote \(path)")
}
