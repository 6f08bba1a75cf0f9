import TernCore

/// The Kafka APIs Tern speaks, by Kafka's API key.
public enum KafkaAPIKey: Int16, Sendable, CaseIterable {
    case produce = 0
    case fetch = 1
    case listOffsets = 2
    case metadata = 3
    case apiVersions = 18
    case createTopics = 19
    case deleteTopics = 20
    case deleteRecords = 21
    case initProducerID = 22
    case offsetForLeaderEpoch = 23
    case describeConfigs = 32
    case alterConfigs = 33
    case createPartitions = 37
    case electLeaders = 43
    case incrementalAlterConfigs = 44
    case alterPartitionReassignments = 45
    case describeCluster = 60

    /// Whether `version` uses compact encodings and tagged fields (the schema's flexibleVersions);
    /// it also picks request header v2 and response header v1.
    public func isFlexible(version: Int16) -> Bool {
        switch self {
        case .produce: return KafkaWire.ProduceRequest.isFlexible(version: version)
        case .fetch: return KafkaWire.FetchRequest.isFlexible(version: version)
        case .listOffsets: return KafkaWire.ListOffsetsRequest.isFlexible(version: version)
        case .metadata: return KafkaWire.MetadataRequest.isFlexible(version: version)
        case .apiVersions: return KafkaWire.ApiVersionsRequest.isFlexible(version: version)
        case .createTopics: return KafkaWire.CreateTopicsRequest.isFlexible(version: version)
        case .deleteTopics: return KafkaWire.DeleteTopicsRequest.isFlexible(version: version)
        case .deleteRecords: return KafkaWire.DeleteRecordsRequest.isFlexible(version: version)
        case .initProducerID: return KafkaWire.InitProducerIdRequest.isFlexible(version: version)
        case .offsetForLeaderEpoch: return KafkaWire.OffsetForLeaderEpochRequest.isFlexible(version: version)
        case .describeConfigs: return KafkaWire.DescribeConfigsRequest.isFlexible(version: version)
        case .alterConfigs: return KafkaWire.AlterConfigsRequest.isFlexible(version: version)
        case .incrementalAlterConfigs: return KafkaWire.IncrementalAlterConfigsRequest.isFlexible(version: version)
        case .createPartitions: return KafkaWire.CreatePartitionsRequest.isFlexible(version: version)
        case .electLeaders: return KafkaWire.ElectLeadersRequest.isFlexible(version: version)
        case .alterPartitionReassignments: return KafkaWire.AlterPartitionReassignmentsRequest.isFlexible(version: version)
        case .describeCluster: return KafkaWire.DescribeClusterRequest.isFlexible(version: version)
        }
    }
}

/// The versions Tern implements and advertises in ApiVersions (REFERENCE.md §2). Every advertised
/// version is implemented, except that Produce 0–2 are advertised only so librdkafka before 2.11.1
/// compresses its batches, and are refused when actually sent (as Kafka 4 does, KAFKA-18659).
public enum SupportedAPIVersions {
    public static func range(of key: KafkaAPIKey) -> ClosedRange<Int16> {
        switch key {
        case .produce: return 0...11
        case .fetch: return 4...12
        case .listOffsets: return 1...10
        case .metadata: return 0...12
        case .apiVersions: return 0...4
        case .createTopics: return 2...7
        case .deleteTopics: return 1...4
        case .deleteRecords: return 0...2
        case .initProducerID: return 0...4
        case .offsetForLeaderEpoch: return 2...4
        case .describeConfigs: return 1...4
        case .alterConfigs: return 0...2
        case .incrementalAlterConfigs: return 0...1
        case .createPartitions: return 0...3
        case .electLeaders: return 0...2
        case .alterPartitionReassignments: return 0...0
        case .describeCluster: return 0...1
        }
    }

    /// The Fetch version a follower sends its leader, as Kafka's replica fetcher does: topics named
    /// by id (v13) and the follower's broker epoch in `ReplicaState` (v15). Generated, never
    /// offered to clients (who would then need topic ids in Metadata).
    public static let replicaFetchVersion: Int16 = 15

    /// The versions generated for `key`: the advertised range, and for Fetch up to the replica
    /// fetch version.
    public static func generatedRange(of key: KafkaAPIKey) -> ClosedRange<Int16> {
        key == .fetch ? range(of: .fetch).lowerBound...replicaFetchVersion : range(of: key)
    }

    /// The versions a request is actually served at: the advertised range without Produce 0–2,
    /// which carry the old message formats Tern does not store.
    public static func servedRange(of key: KafkaAPIKey) -> ClosedRange<Int16> {
        key == .produce ? 3...11 : range(of: key)
    }

    /// The `api_keys` entries of an ApiVersions response, in key order.
    public static var apiVersionsEntries: [KafkaWire.ApiVersionsResponse.ApiVersion] {
        KafkaAPIKey.allCases.map { key in
            let versions = range(of: key)
            return KafkaWire.ApiVersionsResponse.ApiVersion(apiKey: key.rawValue, minVersion: versions.lowerBound, maxVersion: versions.upperBound)
        }
    }
}

/// Largest frame (size field value) a broker or client accepts: Kafka's socket.request.max.bytes.
public enum KafkaFraming {
    public static let maximumFrameBytes = 100 * 1024 * 1024
    /// The int32 size that precedes every request and response.
    public static let sizePrefixBytes = 4

    /// The correlation id a response frame starting at `start` begins with (pass
    /// `sizePrefixBytes` for a frame with its size prefix), if the frame is long enough.
    public static func correlationID(ofResponse frame: [UInt8], at start: Int = 0) -> Int32? {
        guard start <= frame.count else { return nil }
        var reader = ByteReader(frame, range: start..<frame.count)
        return try? reader.readInt32()
    }

    /// Splits bytes holding whole size-prefixed frames into the frames (prefixes removed); nil when
    /// they do not end on a frame boundary.
    public static func splitFrames(_ bytes: [UInt8]) -> [[UInt8]]? {
        frameRanges(bytes)?.map { Array(bytes[$0]) }
    }

    /// Where each frame of bytes holding whole size-prefixed frames lies (prefixes left out),
    /// without copying any; nil when they do not end on a frame boundary.
    public static func frameRanges(_ bytes: [UInt8]) -> [Range<Int>]? {
        var reader = ByteReader(bytes)
        var ranges: [Range<Int>] = []
        while reader.remaining > 0 {
            guard let size = try? reader.readInt32(), size >= 0, Int(size) <= reader.remaining else { return nil }
            ranges.append(reader.position..<(reader.position + Int(size)))
            try? reader.skip(Int(size))
        }
        return ranges
    }
}

/// Kafka's request header v1/v2. `apiKey` is raw so that an unknown key can still be answered.
public struct KafkaRequestHeader: Sendable, Equatable {
    public var apiKey: Int16
    public var apiVersion: Int16
    public var correlationID: Int32
    public var clientID: String?

    public init(apiKey: Int16, apiVersion: Int16, correlationID: Int32, clientID: String?) {
        self.apiKey = apiKey
        self.apiVersion = apiVersion
        self.correlationID = correlationID
        self.clientID = clientID
    }

    public init(apiKey: KafkaAPIKey, apiVersion: Int16, correlationID: Int32, clientID: String?) {
        self.init(apiKey: apiKey.rawValue, apiVersion: apiVersion, correlationID: correlationID, clientID: clientID)
    }

    public var knownAPIKey: KafkaAPIKey? { KafkaAPIKey(rawValue: apiKey) }
}

/// A request body of one of the APIs Tern speaks.
public enum KafkaRequest: Sendable, Equatable {
    case produce(KafkaWire.ProduceRequest)
    case fetch(KafkaWire.FetchRequest)
    case listOffsets(KafkaWire.ListOffsetsRequest)
    case metadata(KafkaWire.MetadataRequest)
    case apiVersions(KafkaWire.ApiVersionsRequest)
    case createTopics(KafkaWire.CreateTopicsRequest)
    case deleteTopics(KafkaWire.DeleteTopicsRequest)
    case deleteRecords(KafkaWire.DeleteRecordsRequest)
    case alterConfigs(KafkaWire.AlterConfigsRequest)
    case incrementalAlterConfigs(KafkaWire.IncrementalAlterConfigsRequest)
    case initProducerID(KafkaWire.InitProducerIdRequest)
    case offsetForLeaderEpoch(KafkaWire.OffsetForLeaderEpochRequest)
    case describeConfigs(KafkaWire.DescribeConfigsRequest)
    case createPartitions(KafkaWire.CreatePartitionsRequest)
    case electLeaders(KafkaWire.ElectLeadersRequest)
    case alterPartitionReassignments(KafkaWire.AlterPartitionReassignmentsRequest)
    case describeCluster(KafkaWire.DescribeClusterRequest)

    public var apiKey: KafkaAPIKey {
        switch self {
        case .produce: return .produce
        case .fetch: return .fetch
        case .listOffsets: return .listOffsets
        case .metadata: return .metadata
        case .apiVersions: return .apiVersions
        case .createTopics: return .createTopics
        case .deleteTopics: return .deleteTopics
        case .deleteRecords: return .deleteRecords
        case .alterConfigs: return .alterConfigs
        case .incrementalAlterConfigs: return .incrementalAlterConfigs
        case .initProducerID: return .initProducerID
        case .offsetForLeaderEpoch: return .offsetForLeaderEpoch
        case .describeConfigs: return .describeConfigs
        case .createPartitions: return .createPartitions
        case .electLeaders: return .electLeaders
        case .alterPartitionReassignments: return .alterPartitionReassignments
        case .describeCluster: return .describeCluster
        }
    }

    /// Decodes a body of `key` at `version`, which the caller has checked is generated.
    public init(decoding reader: inout KafkaWireReader, apiKey key: KafkaAPIKey, version: Int16) throws(KafkaWireError) {
        switch key {
        case .produce: self = .produce(try .init(decoding: &reader, version: version))
        case .fetch: self = .fetch(try .init(decoding: &reader, version: version))
        case .listOffsets: self = .listOffsets(try .init(decoding: &reader, version: version))
        case .metadata: self = .metadata(try .init(decoding: &reader, version: version))
        case .apiVersions: self = .apiVersions(try .init(decoding: &reader, version: version))
        case .createTopics: self = .createTopics(try .init(decoding: &reader, version: version))
        case .deleteTopics: self = .deleteTopics(try .init(decoding: &reader, version: version))
        case .deleteRecords: self = .deleteRecords(try .init(decoding: &reader, version: version))
        case .alterConfigs: self = .alterConfigs(try .init(decoding: &reader, version: version))
        case .incrementalAlterConfigs: self = .incrementalAlterConfigs(try .init(decoding: &reader, version: version))
        case .initProducerID: self = .initProducerID(try .init(decoding: &reader, version: version))
        case .offsetForLeaderEpoch: self = .offsetForLeaderEpoch(try .init(decoding: &reader, version: version))
        case .describeConfigs: self = .describeConfigs(try .init(decoding: &reader, version: version))
        case .createPartitions: self = .createPartitions(try .init(decoding: &reader, version: version))
        case .electLeaders: self = .electLeaders(try .init(decoding: &reader, version: version))
        case .alterPartitionReassignments: self = .alterPartitionReassignments(try .init(decoding: &reader, version: version))
        case .describeCluster: self = .describeCluster(try .init(decoding: &reader, version: version))
        }
    }

    public func encode(into writer: inout ByteWriter, version: Int16) {
        switch self {
        case let .produce(body): body.encode(into: &writer, version: version)
        case let .fetch(body): body.encode(into: &writer, version: version)
        case let .listOffsets(body): body.encode(into: &writer, version: version)
        case let .metadata(body): body.encode(into: &writer, version: version)
        case let .apiVersions(body): body.encode(into: &writer, version: version)
        case let .createTopics(body): body.encode(into: &writer, version: version)
        case let .deleteTopics(body): body.encode(into: &writer, version: version)
        case let .deleteRecords(body): body.encode(into: &writer, version: version)
        case let .alterConfigs(body): body.encode(into: &writer, version: version)
        case let .incrementalAlterConfigs(body): body.encode(into: &writer, version: version)
        case let .initProducerID(body): body.encode(into: &writer, version: version)
        case let .offsetForLeaderEpoch(body): body.encode(into: &writer, version: version)
        case let .describeConfigs(body): body.encode(into: &writer, version: version)
        case let .createPartitions(body): body.encode(into: &writer, version: version)
        case let .electLeaders(body): body.encode(into: &writer, version: version)
        case let .alterPartitionReassignments(body): body.encode(into: &writer, version: version)
        case let .describeCluster(body): body.encode(into: &writer, version: version)
        }
    }
}

/// A response body of one of the APIs Tern speaks.
public enum KafkaResponse: Sendable, Equatable {
    case produce(KafkaWire.ProduceResponse)
    case fetch(KafkaWire.FetchResponse)
    case listOffsets(KafkaWire.ListOffsetsResponse)
    case metadata(KafkaWire.MetadataResponse)
    case apiVersions(KafkaWire.ApiVersionsResponse)
    case createTopics(KafkaWire.CreateTopicsResponse)
    case deleteTopics(KafkaWire.DeleteTopicsResponse)
    case deleteRecords(KafkaWire.DeleteRecordsResponse)
    case alterConfigs(KafkaWire.AlterConfigsResponse)
    case incrementalAlterConfigs(KafkaWire.IncrementalAlterConfigsResponse)
    case initProducerID(KafkaWire.InitProducerIdResponse)
    case offsetForLeaderEpoch(KafkaWire.OffsetForLeaderEpochResponse)
    case describeConfigs(KafkaWire.DescribeConfigsResponse)
    case createPartitions(KafkaWire.CreatePartitionsResponse)
    case electLeaders(KafkaWire.ElectLeadersResponse)
    case alterPartitionReassignments(KafkaWire.AlterPartitionReassignmentsResponse)
    case describeCluster(KafkaWire.DescribeClusterResponse)

    public var apiKey: KafkaAPIKey {
        switch self {
        case .produce: return .produce
        case .fetch: return .fetch
        case .listOffsets: return .listOffsets
        case .metadata: return .metadata
        case .apiVersions: return .apiVersions
        case .createTopics: return .createTopics
        case .deleteTopics: return .deleteTopics
        case .deleteRecords: return .deleteRecords
        case .alterConfigs: return .alterConfigs
        case .incrementalAlterConfigs: return .incrementalAlterConfigs
        case .initProducerID: return .initProducerID
        case .offsetForLeaderEpoch: return .offsetForLeaderEpoch
        case .describeConfigs: return .describeConfigs
        case .createPartitions: return .createPartitions
        case .electLeaders: return .electLeaders
        case .alterPartitionReassignments: return .alterPartitionReassignments
        case .describeCluster: return .describeCluster
        }
    }

    public init(decoding reader: inout KafkaWireReader, apiKey key: KafkaAPIKey, version: Int16) throws(KafkaWireError) {
        switch key {
        case .produce: self = .produce(try .init(decoding: &reader, version: version))
        case .fetch: self = .fetch(try .init(decoding: &reader, version: version))
        case .listOffsets: self = .listOffsets(try .init(decoding: &reader, version: version))
        case .metadata: self = .metadata(try .init(decoding: &reader, version: version))
        case .apiVersions: self = .apiVersions(try .init(decoding: &reader, version: version))
        case .createTopics: self = .createTopics(try .init(decoding: &reader, version: version))
        case .deleteTopics: self = .deleteTopics(try .init(decoding: &reader, version: version))
        case .deleteRecords: self = .deleteRecords(try .init(decoding: &reader, version: version))
        case .alterConfigs: self = .alterConfigs(try .init(decoding: &reader, version: version))
        case .incrementalAlterConfigs: self = .incrementalAlterConfigs(try .init(decoding: &reader, version: version))
        case .initProducerID: self = .initProducerID(try .init(decoding: &reader, version: version))
        case .offsetForLeaderEpoch: self = .offsetForLeaderEpoch(try .init(decoding: &reader, version: version))
        case .describeConfigs: self = .describeConfigs(try .init(decoding: &reader, version: version))
        case .createPartitions: self = .createPartitions(try .init(decoding: &reader, version: version))
        case .electLeaders: self = .electLeaders(try .init(decoding: &reader, version: version))
        case .alterPartitionReassignments: self = .alterPartitionReassignments(try .init(decoding: &reader, version: version))
        case .describeCluster: self = .describeCluster(try .init(decoding: &reader, version: version))
        }
    }

    public func encode(into writer: inout ByteWriter, version: Int16) {
        switch self {
        case let .produce(body): body.encode(into: &writer, version: version)
        case let .fetch(body): body.encode(into: &writer, version: version)
        case let .listOffsets(body): body.encode(into: &writer, version: version)
        case let .metadata(body): body.encode(into: &writer, version: version)
        case let .apiVersions(body): body.encode(into: &writer, version: version)
        case let .createTopics(body): body.encode(into: &writer, version: version)
        case let .deleteTopics(body): body.encode(into: &writer, version: version)
        case let .deleteRecords(body): body.encode(into: &writer, version: version)
        case let .alterConfigs(body): body.encode(into: &writer, version: version)
        case let .incrementalAlterConfigs(body): body.encode(into: &writer, version: version)
        case let .initProducerID(body): body.encode(into: &writer, version: version)
        case let .offsetForLeaderEpoch(body): body.encode(into: &writer, version: version)
        case let .describeConfigs(body): body.encode(into: &writer, version: version)
        case let .createPartitions(body): body.encode(into: &writer, version: version)
        case let .electLeaders(body): body.encode(into: &writer, version: version)
        case let .alterPartitionReassignments(body): body.encode(into: &writer, version: version)
        case let .describeCluster(body): body.encode(into: &writer, version: version)
        }
    }
}

public struct DecodedKafkaRequest: Sendable, Equatable {
    public var header: KafkaRequestHeader
    public var body: KafkaRequest

    public init(header: KafkaRequestHeader, body: KafkaRequest) {
        self.header = header
        self.body = body
    }
}

public enum KafkaRequestDecodeError: Error, Equatable, Sendable {
    /// Not even a header could be read: the connection must be closed.
    case unreadableHeader(reason: String)
    /// API key not in KafkaAPIKey, or version outside what Tern serves (Produce 0–2 included);
    /// ApiVersions above its maximum is not this, see `decodeKafkaRequest`.
    case unsupported(header: KafkaRequestHeader)
    /// Header read, body malformed (truncated, bad count, trailing bytes, over a limit).
    case malformedBody(header: KafkaRequestHeader, reason: String)
}

public enum KafkaResponseDecodeError: Error, Equatable, Sendable {
    /// The response header (correlation id, header tags) could not be read.
    case unreadableHeader(reason: String)
    /// Tern never sends a request at this version, so it cannot read the answer either.
    case unsupportedVersion(apiKey: KafkaAPIKey, version: Int16)
    /// Header read, body malformed.
    case malformedBody(correlationID: Int32, reason: String)
}

// MARK: - Broker side

/// Decodes one request; `frame` is the bytes after the 4-byte size prefix. An ApiVersions request
/// with a version above the supported max decodes as `.apiVersions` with an empty body, so the
/// broker can answer in v0 with UNSUPPORTED_VERSION and its API list (KIP-511): the client then
/// retries with a version it finds there. `versions` are those accepted per API: what clients are
/// served by default; between nodes, every generated one.
public func decodeKafkaRequest(_ frame: ArraySlice<UInt8>,
                               versions: (KafkaAPIKey) -> ClosedRange<Int16> = SupportedAPIVersions.servedRange(of:))
    throws(KafkaRequestDecodeError) -> DecodedKafkaRequest {
    var reader = KafkaWireReader(frame)
    let header: KafkaRequestHeader
    do {
        // client_id is a classic nullable string in header v1 and v2 alike, so this part of the
        // header reads the same for every API and version, even unknown ones.
        let apiKey = try reader.readInt16()
        let apiVersion = try reader.readInt16()
        let correlationID = try reader.readInt32()
        let clientID = try reader.readNullableString(flexible: false, nullable: true)
        header = KafkaRequestHeader(apiKey: apiKey, apiVersion: apiVersion, correlationID: correlationID, clientID: clientID)
    } catch {
        throw .unreadableHeader(reason: error.description)
    }
    guard let key = header.knownAPIKey, header.apiVersion >= 0 else { throw .unsupported(header: header) }
    if key == .apiVersions && header.apiVersion > SupportedAPIVersions.range(of: .apiVersions).upperBound {
        // The body layout of a future version is unknown; nothing after the client id is read.
        return DecodedKafkaRequest(header: header, body: .apiVersions(KafkaWire.ApiVersionsRequest()))
    }
    guard versions(key).contains(header.apiVersion) else { throw .unsupported(header: header) }
    do {
        if key.isFlexible(version: header.apiVersion) {
            try reader.skipTaggedFields()  // request header v2: Tern knows no header tags
        }
        let body = try KafkaRequest(decoding: &reader, apiKey: key, version: header.apiVersion)
        // Bytes after a complete body are ignored, as Kafka's broker ignores them: librdkafka 2.16
        // sends an all-topics Metadata v12 whose topic count leaves three stray bytes behind, and
        // Kafka serves it (reading the body exactly as here).
        return DecodedKafkaRequest(header: header, body: body)
    } catch {
        throw .malformedBody(header: header, reason: error.description)
    }
}

/// The version a response to `header` is encoded at: the request's, except an ApiVersions request
/// above the supported max, which is answered in v0 (the one layout every client can read).
public func kafkaResponseVersion(for header: KafkaRequestHeader) -> Int16 {
    if header.apiKey == KafkaAPIKey.apiVersions.rawValue,
       header.apiVersion > SupportedAPIVersions.range(of: .apiVersions).upperBound {
        return 0
    }
    return header.apiVersion
}

/// The whole response frame including the 4-byte size prefix. Response header v1 (with tags) when
/// the version is flexible, v0 otherwise; ApiVersions always uses header v0 (KIP-511), so that a
/// client can read it before it knows which versions the broker has.
public func encodeKafkaResponse(_ response: KafkaResponse, for header: KafkaRequestHeader) -> [UInt8] {
    precondition(response.apiKey.rawValue == header.apiKey, "a \(response.apiKey) response to an API \(header.apiKey) request")
    let version = kafkaResponseVersion(for: header)
    var writer = ByteWriter()
    writer.writeInt32(0)  // size, patched below
    writer.writeInt32(header.correlationID)
    if response.apiKey != .apiVersions && response.apiKey.isFlexible(version: version) {
        writer.writeUnsignedVarint(0)  // no header tagged fields
    }
    response.encode(into: &writer, version: version)
    writer.set(Int32(writer.count - KafkaFraming.sizePrefixBytes), at: 0)
    return writer.take()
}

// MARK: - Client side

/// The whole request frame including the size prefix; request header v2 when the version is
/// flexible, v1 otherwise.
public func encodeKafkaRequest(_ request: KafkaRequest, header: KafkaRequestHeader) -> [UInt8] {
    precondition(request.apiKey.rawValue == header.apiKey, "a \(request.apiKey) body under an API \(header.apiKey) header")
    var writer = ByteWriter()
    writer.writeInt32(0)  // size, patched below
    writer.writeInt16(header.apiKey)
    writer.writeInt16(header.apiVersion)
    writer.writeInt32(header.correlationID)
    writer.writeKafkaNullableString(header.clientID, flexible: false, nullable: true)
    if request.apiKey.isFlexible(version: header.apiVersion) {
        writer.writeUnsignedVarint(0)  // no header tagged fields
    }
    request.encode(into: &writer, version: header.apiVersion)
    writer.set(Int32(writer.count - KafkaFraming.sizePrefixBytes), at: 0)
    return writer.take()
}

/// Decodes a response to a request of `apiKey` at `apiVersion`; `frame` is without the size prefix.
/// An ApiVersions answer with UNSUPPORTED_VERSION is read as v0, the layout brokers use for it.
public func decodeKafkaResponse(_ frame: ArraySlice<UInt8>, apiKey: KafkaAPIKey, apiVersion: Int16)
    throws(KafkaResponseDecodeError) -> (correlationID: Int32, response: KafkaResponse) {
    guard SupportedAPIVersions.generatedRange(of: apiKey).contains(apiVersion) else {
        throw .unsupportedVersion(apiKey: apiKey, version: apiVersion)
    }
    var reader = KafkaWireReader(frame)
    let correlationID: Int32
    do {
        correlationID = try reader.readInt32()
        if apiKey != .apiVersions && apiKey.isFlexible(version: apiVersion) {
            try reader.skipTaggedFields()
        }
    } catch {
        throw .unreadableHeader(reason: error.description)
    }
    var bodyVersion = apiVersion
    if apiKey == .apiVersions, reader.remaining >= 2 {
        // The error code is the first field in every version: peek at it without consuming.
        var peek = reader
        if let errorCode = try? peek.readInt16(), errorCode == KafkaErrorCode.unsupportedVersion.rawValue {
            bodyVersion = 0
        }
    }
    do {
        let response = try KafkaResponse(decoding: &reader, apiKey: apiKey, version: bodyVersion)
        try reader.requireEnd()
        return (correlationID, response)
    } catch {
        throw .malformedBody(correlationID: correlationID, reason: error.description)
    }
}
