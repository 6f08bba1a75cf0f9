import KafkaProtocol
import TernCore

/// A request waiting to be written: built only once the conversation knows the broker's versions,
/// because its layout depends on the version chosen.
public struct OutgoingRequest {
    public var apiKey: KafkaAPIKey
    /// The caller's name for the request; every request ends in exactly one event carrying it.
    public var token: UInt64
    /// Builds the request at the negotiated version.
    public var build: (Int16) -> KafkaRequest
    /// For a request Kafka never answers (Produce with acks=0): what the caller is told once it
    /// is written, as librdkafka reports it. Nil for every other request.
    public var answerWhenWritten: KafkaResponse?
    public var timeout: Duration

    public init(apiKey: KafkaAPIKey, token: UInt64, timeout: Duration, answerWhenWritten: KafkaResponse? = nil,
                build: @escaping (Int16) -> KafkaRequest) {
        self.apiKey = apiKey
        self.token = token
        self.build = build
        self.answerWhenWritten = answerWhenWritten
        self.timeout = timeout
    }
}

/// Why a conversation ended (or refused a request). The shell adds the broker's address.
public enum ConversationFailure: Error, Equatable, Sendable, CustomStringConvertible {
    case handshakeTimedOut(Duration)
    case requestTimedOut(KafkaAPIKey)
    /// The broker sent something that is not a valid answer.
    case protocolViolation(String)
    case unsupportedAPI(KafkaAPIKey)
    case tooManyQueuedRequests
    /// The connection under the conversation broke or was closed.
    case connectionLost(String)

    public var description: String {
        switch self {
        case let .handshakeTimedOut(timeout): return "no ApiVersions answer within \(timeout)"
        case let .requestTimedOut(apiKey): return "\(apiKey) request timed out"
        case let .protocolViolation(reason): return "protocol violation: \(reason)"
        case let .unsupportedAPI(apiKey): return "the broker supports no version of \(apiKey) this client speaks"
        case .tooManyQueuedRequests: return "too many requests queued"
        case let .connectionLost(reason): return "connection lost: \(reason)"
        }
    }
}

/// How one request ended.
public enum ConversationEvent {
    /// The broker's answer, or for a request Kafka never answers, its `answerWhenWritten` once
    /// it was queued for writing.
    case response(token: UInt64, response: KafkaResponse, apiVersion: Int16)
    case failed(token: UInt64, ConversationFailure)
}

/// The Kafka conversation on one client connection, without the connection: the ApiVersions
/// handshake (retried at a lower version as Kafka's clients do), version negotiation, correlation
/// ids, pipelined requests answered in order, and request deadlines. The shell (real sockets in
/// `KafkaClient`, simulated connections in the simulator) tells it when the connection is up,
/// hands it every whole response frame, writes the frames it takes, and closes the connection
/// once `isClosed`. Nothing here reads a clock.
public struct KafkaConversation {
    enum State {
        case waitingForConnection
        /// The ApiVersions request is in flight.
        case handshaking
        case ready(BrokerAPIVersions)
        case closed(ConversationFailure)
    }

    struct InFlightRequest {
        var correlationID: Int32
        var apiKey: KafkaAPIKey
        var apiVersion: Int16
        /// nil for the conversation's own ApiVersions request.
        var token: UInt64?
        var deadline: Instant
    }

    struct WaitingRequest {
        var request: OutgoingRequest
        var deadline: Instant
    }

    public let clientID: String
    public let handshakeTimeout: Duration
    public let maximumQueuedRequests: Int
    private(set) var state = State.waitingForConnection
    /// Frames not yet taken by the shell, oldest first.
    private var frames: [[UInt8]] = []
    /// Oldest first; answers arrive in this order (Kafka answers a connection's requests in order).
    private var inFlight: [InFlightRequest] = []
    private var inFlightHead = 0
    /// Requests given before the handshake finished.
    private var waiting: [WaitingRequest] = []
    private var nextCorrelationID: Int32 = 1
    private var apiVersionsVersion = ClientAPIVersions.firstAPIVersionsVersion

    public init(clientID: String, handshakeTimeout: Duration, maximumQueuedRequests: Int) {
        precondition(maximumQueuedRequests > 0, "a conversation must take at least one request")
        self.clientID = clientID
        self.handshakeTimeout = handshakeTimeout
        self.maximumQueuedRequests = maximumQueuedRequests
    }

    public var isClosed: Bool { if case .closed = state { return true } else { return false } }
    public var failure: ConversationFailure? { if case let .closed(failure) = state { return failure } else { return nil } }
    public var apiVersions: BrokerAPIVersions? { if case let .ready(versions) = state { return versions } else { return nil } }
    public var queuedRequestCount: Int { waiting.count + inFlight.count - inFlightHead }
    public var hasFramesToWrite: Bool { !frames.isEmpty }

    /// The earliest request (or handshake) deadline.
    public var nextDeadline: Instant? {
        var earliest = waiting.lazy.map(\.deadline).min()
        for index in inFlightHead..<inFlight.count { earliest = min(earliest ?? inFlight[index].deadline, inFlight[index].deadline) }
        return earliest
    }

    /// The frames to write, in order, size prefix included.
    public mutating func takeFrames() -> [[UInt8]] {
        // Nothing to take is the common case (one call per frame read): no allocation for it.
        guard !frames.isEmpty else { return [] }
        defer { frames = [] }
        return frames
    }

    /// The connection is up: the handshake starts.
    public mutating func connected(now: Instant) {
        guard case .waitingForConnection = state else { return }
        sendAPIVersions(version: ClientAPIVersions.firstAPIVersionsVersion, now: now)
    }

    // MARK: Requests

    public mutating func enqueue(_ request: OutgoingRequest, now: Instant, events: inout [ConversationEvent]) {
        if let failure {
            events.append(.failed(token: request.token, failure))
            return
        }
        guard queuedRequestCount < maximumQueuedRequests else {
            events.append(.failed(token: request.token, .tooManyQueuedRequests))
            return
        }
        let deadline = now + request.timeout
        if let versions = apiVersions {
            write(request, versions: versions, deadline: deadline, events: &events)
        } else {
            waiting.append(WaitingRequest(request: request, deadline: deadline))
        }
    }

    private mutating func write(_ request: OutgoingRequest, versions: BrokerAPIVersions, deadline: Instant,
                                events: inout [ConversationEvent]) {
        guard let version = versions.negotiatedVersion(of: request.apiKey) else {
            events.append(.failed(token: request.token, .unsupportedAPI(request.apiKey)))
            return
        }
        let correlationID = allocateCorrelationID()
        let header = KafkaRequestHeader(apiKey: request.apiKey.rawValue, apiVersion: version, correlationID: correlationID, clientID: clientID)
        frames.append(encodeKafkaRequest(request.build(version), header: header))
        if let answer = request.answerWhenWritten {
            events.append(.response(token: request.token, response: answer, apiVersion: version))
        } else {
            inFlight.append(InFlightRequest(correlationID: correlationID, apiKey: request.apiKey, apiVersion: version,
                                            token: request.token, deadline: deadline))
        }
    }

    private mutating func sendAPIVersions(version: Int16, now: Instant) {
        apiVersionsVersion = version
        let correlationID = allocateCorrelationID()
        let header = KafkaRequestHeader(apiKey: KafkaAPIKey.apiVersions.rawValue, apiVersion: version,
                                        correlationID: correlationID, clientID: clientID)
        frames.append(encodeKafkaRequest(makeAPIVersionsRequest(), header: header))
        inFlight.append(InFlightRequest(correlationID: correlationID, apiKey: .apiVersions, apiVersion: version, token: nil,
                                        deadline: now + handshakeTimeout))
        state = .handshaking
    }

    private mutating func allocateCorrelationID() -> Int32 {
        defer { nextCorrelationID = nextCorrelationID == Int32.max ? 0 : nextCorrelationID + 1 }
        return nextCorrelationID
    }

    // MARK: Time

    /// Fails the conversation when its oldest unanswered request is past its deadline (later
    /// answers on the connection could no longer be matched in order), and requests that waited
    /// for a handshake past theirs.
    public mutating func expire(now: Instant, events: inout [ConversationEvent]) {
        guard !isClosed else { return }
        if inFlightHead < inFlight.count, let expired = inFlight[inFlightHead...].first(where: { $0.deadline <= now }) {
            if let token = expired.token {
                fail(.requestTimedOut(expired.apiKey), events: &events, timedOutToken: token)
            } else {
                fail(.handshakeTimedOut(handshakeTimeout), events: &events)
            }
            return
        }
        var kept: [WaitingRequest] = []
        for entry in waiting {
            if entry.deadline <= now {
                events.append(.failed(token: entry.request.token, .requestTimedOut(entry.request.apiKey)))
            } else {
                kept.append(entry)
            }
        }
        waiting = kept
    }

    // MARK: Answers

    /// One whole response frame (size prefix removed). A frame that is not the answer expected
    /// next closes the conversation.
    public mutating func receive(_ frame: [UInt8], now: Instant, events: inout [ConversationEvent]) {
        guard !isClosed else { return }
        guard inFlightHead < inFlight.count else {
            fail(.protocolViolation("an answer with no request waiting"), events: &events)
            return
        }
        let expected = inFlight[inFlightHead]
        guard let correlationID = KafkaFraming.correlationID(ofResponse: frame) else {
            fail(.protocolViolation("a \(frame.count)-byte frame has no correlation id"), events: &events)
            return
        }
        guard correlationID == expected.correlationID else {
            fail(.protocolViolation("answer for correlation id \(correlationID), expected \(expected.correlationID)"), events: &events)
            return
        }
        inFlightHead += 1
        if inFlightHead == inFlight.count {
            inFlight.removeAll(keepingCapacity: true)
            inFlightHead = 0
        } else if inFlightHead >= 1024 {
            inFlight.removeSubrange(0..<inFlightHead)
            inFlightHead = 0
        }
        guard let token = expected.token else {
            handleAPIVersionsAnswer(frame, now: now, events: &events)
            return
        }
        do {
            let decoded = try decodeKafkaResponse(frame[...], apiKey: expected.apiKey, apiVersion: expected.apiVersion)
            events.append(.response(token: token, response: decoded.response, apiVersion: expected.apiVersion))
        } catch {
            fail(.protocolViolation("undecodable \(expected.apiKey) v\(expected.apiVersion) answer: \(error)"), events: &events)
        }
    }

    /// The handshake's answer. A broker that does not know the version sent answers in v0 with
    /// UNSUPPORTED_VERSION (and the v0 body does not decode as the newer version), so a failed or
    /// refusing decode is retried as v0 before giving up, as Kafka's Java client does.
    private mutating func handleAPIVersionsAnswer(_ frame: [UInt8], now: Instant, events: inout [ConversationEvent]) {
        var answer: APIVersionsAnswer?
        if let decoded = try? decodeKafkaResponse(frame[...], apiKey: .apiVersions, apiVersion: apiVersionsVersion) {
            answer = APIVersionsAnswer(decoded.response)
        }
        if answer == nil || answer?.errorCode == KafkaErrorCode.unsupportedVersion.rawValue, apiVersionsVersion != 0,
           let decoded = try? decodeKafkaResponse(frame[...], apiKey: .apiVersions, apiVersion: 0) {
            answer = APIVersionsAnswer(decoded.response) ?? answer
        }
        guard let answer else {
            fail(.protocolViolation("undecodable ApiVersions v\(apiVersionsVersion) answer"), events: &events)
            return
        }
        if answer.errorCode == KafkaErrorCode.unsupportedVersion.rawValue {
            let brokerRange = answer.ranges[KafkaAPIKey.apiVersions.rawValue]
            guard let retry = ClientAPIVersions.apiVersionsRetryVersion(triedVersion: apiVersionsVersion, brokerRange: brokerRange) else {
                fail(.unsupportedAPI(.apiVersions), events: &events)
                return
            }
            sendAPIVersions(version: retry, now: now)
            return
        }
        guard answer.errorCode == 0 else {
            fail(.protocolViolation("ApiVersions answered error \(answer.errorCode)"), events: &events)
            return
        }
        let versions = BrokerAPIVersions(ranges: answer.ranges)
        state = .ready(versions)
        let queued = waiting
        waiting.removeAll()
        for entry in queued { write(entry.request, versions: versions, deadline: entry.deadline, events: &events) }
    }

    // MARK: Failure

    /// Ends the conversation and fails every request on it; `timedOutToken` gets `failure`
    /// itself, the others learn the connection went with it.
    public mutating func fail(_ failure: ConversationFailure, events: inout [ConversationEvent], timedOutToken: UInt64? = nil) {
        guard !isClosed else { return }
        state = .closed(failure)
        let collateral: ConversationFailure
        switch failure {
        case .requestTimedOut: collateral = .connectionLost("closed after a request on it timed out")
        default: collateral = failure
        }
        for index in inFlightHead..<inFlight.count {
            guard let token = inFlight[index].token else { continue }
            events.append(.failed(token: token, token == timedOutToken ? failure : collateral))
        }
        for entry in waiting { events.append(.failed(token: entry.request.token, collateral)) }
        inFlight.removeAll()
        inFlightHead = 0
        waiting.removeAll()
        frames.removeAll()
    }
}

/// What an ApiVersions answer says, whatever version it was decoded at.
struct APIVersionsAnswer: Equatable {
    var errorCode: Int16
    var ranges: [Int16: ClosedRange<Int16>]

    init?(_ response: KafkaResponse) {
        guard case let .apiVersions(answer) = response else { return nil }
        var ranges: [Int16: ClosedRange<Int16>] = [:]
        for entry in answer.apiKeys where entry.minVersion <= entry.maxVersion {
            ranges[entry.apiKey] = entry.minVersion...entry.maxVersion
        }
        errorCode = answer.errorCode
        self.ranges = ranges
    }
}

func makeAPIVersionsRequest() -> KafkaRequest {
    var request = KafkaWire.ApiVersionsRequest()
    // Only sent from v3; names the client in the broker's logs and metrics.
    request.clientSoftwareName = "tern"
    request.clientSoftwareVersion = "0.5"
    return .apiVersions(request)
}
