import KafkaProtocol

/// The version ranges one broker advertised in its ApiVersions answer, by API key.
public struct BrokerAPIVersions: Equatable, Sendable {
    public var ranges: [Int16: ClosedRange<Int16>]

    public init(ranges: [Int16: ClosedRange<Int16>]) { self.ranges = ranges }

    /// What every client does (REFERENCE.md §1): the highest version both sides know,
    /// `min(client max, broker max)`, or nil when that is below either side's minimum (or the
    /// broker does not offer the API at all).
    public func negotiatedVersion(apiKey: Int16, clientRange: ClosedRange<Int16>) -> Int16? {
        guard let brokerRange = ranges[apiKey] else { return nil }
        return Self.negotiate(client: clientRange, broker: brokerRange)
    }

    public func negotiatedVersion(of key: KafkaAPIKey) -> Int16? {
        negotiatedVersion(apiKey: key.rawValue, clientRange: ClientAPIVersions.range(of: key))
    }

    public static func negotiate(client: ClosedRange<Int16>, broker: ClosedRange<Int16>) -> Int16? {
        let chosen = min(client.upperBound, broker.upperBound)
        guard chosen >= client.lowerBound, chosen >= broker.lowerBound else { return nil }
        return chosen
    }
}

/// The versions this client speaks: those the codec implements, except where a version is only
/// advertised for other clients' sake.
public enum ClientAPIVersions {
    /// The first ApiVersions version tried on a connection, as librdkafka does (REFERENCE.md §1).
    public static let firstAPIVersionsVersion: Int16 = 3

    /// Produce 0–2 are advertised only for old librdkafka's compression probe and refused by
    /// Tern; the served ranges are what this client may send.
    public static func range(of key: KafkaAPIKey) -> ClosedRange<Int16> { SupportedAPIVersions.servedRange(of: key) }

    /// The ApiVersions version to retry with after a broker answered UNSUPPORTED_VERSION to
    /// `triedVersion`: the highest both know if the (v0-format) answer named ApiVersions'
    /// range, as kafka-python does, else v0, which every broker answers.
    public static func apiVersionsRetryVersion(triedVersion: Int16, brokerRange: ClosedRange<Int16>?) -> Int16? {
        guard triedVersion > 0 else { return nil }
        let client = 0...(triedVersion - 1)
        guard let brokerRange else { return 0 }
        return BrokerAPIVersions.negotiate(client: client, broker: brokerRange) ?? 0
    }
}
