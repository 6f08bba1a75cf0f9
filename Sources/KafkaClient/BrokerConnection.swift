import KafkaProtocol
import Posix
import TernCore

/// A request waiting to be written: built only once the connection knows the broker's versions,
/// because its layout depends on the version chosen.
public struct OutgoingRequest {
    public var apiKey: KafkaAPIKey
    /// The caller's name for the request; every request ends in exactly one event carrying it.
    public var token: UInt64
    /// Builds the request at the negotiated version.
    public var build: (Int16) -> KafkaRequest
    /// False only for Produce with acks=0, which Kafka never answers.
    public var expectsResponse: Bool
    public var timeout: Duration

    public init(apiKey: KafkaAPIKey, token: UInt64, timeout: Duration, expectsResponse: Bool = true,
                build: @escaping (Int16) -> KafkaRequest) {
        self.apiKey = apiKey
        self.token = token
        self.build = build
        self.expectsResponse = expectsResponse
        self.timeout = timeout
    }
}

/// How a request ended.
public enum NetworkEvent {
    case response(token: UInt64, response: KafkaResponse, apiVersion: Int16)
    /// A request that expects no answer (Produce acks=0) was queued for writing.
    case sentWithoutResponse(token: UInt64)
    case failed(token: UInt64, error: KafkaClientError)
}

/// One TCP connection to one broker: connect, ApiVersions handshake, then pipelined requests
/// answered in order. Owned and driven by `KafkaNetworkClient` (single-threaded).
final class BrokerConnection {
    enum State {
        /// Waiting out the reconnect backoff after the previous connection to this node failed.
        case backingOff(untilNanoseconds: Int64)
        /// A non-blocking connect to `candidates[index]` is under way.
        case connecting(candidates: [ResolvedAddress], index: Int)
        /// Connected; the ApiVersions request is in flight.
        case handshaking
        case ready(BrokerAPIVersions)
        case closed
    }

    struct InFlightRequest {
        var correlationID: Int32
        var apiKey: KafkaAPIKey
        var apiVersion: Int16
        /// nil for the connection's own ApiVersions request.
        var token: UInt64?
        var deadlineNanoseconds: Int64
    }

    struct WaitingRequest {
        var request: OutgoingRequest
        var deadlineNanoseconds: Int64
    }

    let node: NodeID
    let address: BrokerAddress
    let clientID: String
    let maximumQueuedRequests: Int
    let connectTimeout: Duration
    private(set) var state: State
    private(set) var socket: TCPSocket?
    /// Why the connection closed, for requests that arrive after it did.
    private(set) var failure: KafkaClientError?
    private var connectDeadlineNanoseconds: Int64 = 0
    private var output: [UInt8] = []
    private var outputIndex = 0
    private let input = FrameDecoder(maximumFrameBytes: KafkaFraming.maximumFrameBytes)
    /// Oldest first; answers arrive in this order (Kafka answers a connection's requests in order).
    private var inFlight: [InFlightRequest] = []
    private var inFlightHead = 0
    /// Requests given before the handshake finished.
    private var waiting: [WaitingRequest] = []
    private var nextCorrelationID: Int32 = 1
    private var apiVersionsVersion = ClientAPIVersions.firstAPIVersionsVersion

    init(node: NodeID, address: BrokerAddress, clientID: String, connectTimeout: Duration, maximumQueuedRequests: Int,
         notBeforeNanoseconds: Int64) {
        self.node = node
        self.address = address
        self.clientID = clientID
        self.connectTimeout = connectTimeout
        self.maximumQueuedRequests = maximumQueuedRequests
        state = .backingOff(untilNanoseconds: notBeforeNanoseconds)
    }

    var isClosed: Bool { if case .closed = state { return true } else { return false } }
    var isConnecting: Bool { if case .connecting = state { return true } else { return false } }
    var apiVersions: BrokerAPIVersions? { if case let .ready(versions) = state { return versions } else { return nil } }
    var hasPendingOutput: Bool { outputIndex < output.count }
    var queuedRequestCount: Int { waiting.count + inFlight.count - inFlightHead }

    /// The earliest deadline this connection has (connect, backoff, or a request's).
    var nextDeadlineNanoseconds: Int64? {
        var earliest: Int64?
        func consider(_ value: Int64) { earliest = min(earliest ?? value, value) }
        switch state {
        case let .backingOff(until): consider(until)
        case .connecting: consider(connectDeadlineNanoseconds)
        default: break
        }
        for request in waiting { consider(request.deadlineNanoseconds) }
        for index in inFlightHead..<inFlight.count { consider(inFlight[index].deadlineNanoseconds) }
        return earliest
    }

    // MARK: Requests

    func enqueue(_ request: OutgoingRequest, nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        if isClosed {
            events.append(.failed(token: request.token, error: failure ?? .connectionLost(address, reason: "closed")))
            return
        }
        guard queuedRequestCount < maximumQueuedRequests else {
            events.append(.failed(token: request.token, error: .tooManyQueuedRequests(address)))
            return
        }
        let deadline = nowNanoseconds + request.timeout.nanoseconds
        if let versions = apiVersions {
            write(request, versions: versions, deadlineNanoseconds: deadline, events: &events)
        } else {
            waiting.append(WaitingRequest(request: request, deadlineNanoseconds: deadline))
        }
    }

    private func write(_ request: OutgoingRequest, versions: BrokerAPIVersions, deadlineNanoseconds: Int64,
                       events: inout [NetworkEvent]) {
        guard let version = versions.negotiatedVersion(of: request.apiKey) else {
            events.append(.failed(token: request.token, error: .unsupportedAPI(address, apiKey: request.apiKey)))
            return
        }
        let correlationID = allocateCorrelationID()
        let header = KafkaRequestHeader(apiKey: request.apiKey.rawValue, apiVersion: version, correlationID: correlationID, clientID: clientID)
        appendOutput(encodeKafkaRequest(request.build(version), header: header))
        if request.expectsResponse {
            inFlight.append(InFlightRequest(correlationID: correlationID, apiKey: request.apiKey, apiVersion: version,
                                            token: request.token, deadlineNanoseconds: deadlineNanoseconds))
        } else {
            events.append(.sentWithoutResponse(token: request.token))
        }
    }

    private func sendAPIVersions(version: Int16, nowNanoseconds: Int64) {
        apiVersionsVersion = version
        let correlationID = allocateCorrelationID()
        let header = KafkaRequestHeader(apiKey: KafkaAPIKey.apiVersions.rawValue, apiVersion: version,
                                        correlationID: correlationID, clientID: clientID)
        appendOutput(encodeKafkaRequest(makeAPIVersionsRequest(), header: header))
        inFlight.append(InFlightRequest(correlationID: correlationID, apiKey: .apiVersions, apiVersion: version, token: nil,
                                        deadlineNanoseconds: nowNanoseconds + connectTimeout.nanoseconds))
        state = .handshaking
    }

    private func allocateCorrelationID() -> Int32 {
        defer { nextCorrelationID = nextCorrelationID == Int32.max ? 0 : nextCorrelationID + 1 }
        return nextCorrelationID
    }

    private func appendOutput(_ frame: [UInt8]) {
        if outputIndex == output.count {
            output.removeAll(keepingCapacity: true)
            outputIndex = 0
        }
        output.append(contentsOf: frame)
    }

    // MARK: Driving

    /// Starts connecting once the backoff is over; fails what waits when connecting is hopeless.
    func advanceTimers(nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        switch state {
        case let .backingOff(until) where nowNanoseconds >= until:
            let candidates: [ResolvedAddress]
            do throws(SocketError) { candidates = try TCPSocket.resolve(host: address.host, port: address.port) } catch {
                let reason = if case let .unresolvable(_, reason) = error { reason } else { "\(error)" }
                fail(.unresolvableHost(address, reason: reason), events: &events)
                return
            }
            connectDeadlineNanoseconds = nowNanoseconds + connectTimeout.nanoseconds
            startConnect(candidates: candidates, index: 0, nowNanoseconds: nowNanoseconds, events: &events)
        case .connecting where nowNanoseconds >= connectDeadlineNanoseconds:
            fail(.connectFailed(address, reason: "no answer within \(connectTimeout)"), events: &events)
            return
        default:
            break
        }
        guard !isClosed else { return }
        if inFlightHead < inFlight.count,
           let expired = inFlight[inFlightHead...].first(where: { $0.deadlineNanoseconds <= nowNanoseconds }) {
            if expired.token == nil {
                fail(.connectFailed(address, reason: "no ApiVersions answer within \(connectTimeout)"), events: &events)
            } else {
                fail(.requestTimedOut(address, apiKey: expired.apiKey), events: &events, timedOutToken: expired.token)
            }
            return
        }
        // A waiting request can only expire while the handshake has not finished.
        var kept: [WaitingRequest] = []
        for entry in waiting {
            if entry.deadlineNanoseconds <= nowNanoseconds {
                events.append(.failed(token: entry.request.token, error: .requestTimedOut(address, apiKey: entry.request.apiKey)))
            } else {
                kept.append(entry)
            }
        }
        waiting = kept
    }

    private func startConnect(candidates: [ResolvedAddress], index: Int, nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        var index = index
        var lastError: SystemCallError?
        while index < candidates.count {
            switch TCPSocket.startConnect(to: candidates[index]) {
            case let .success((socket, completed)):
                self.socket = socket
                if completed {
                    sendAPIVersions(version: ClientAPIVersions.firstAPIVersionsVersion, nowNanoseconds: nowNanoseconds)
                } else {
                    state = .connecting(candidates: candidates, index: index)
                }
                return
            case let .failure(error):
                lastError = error
                index += 1
            }
        }
        fail(.connectFailed(address, reason: lastError?.description ?? "no address"), events: &events)
    }

    /// Poll said the socket is writable (or errored) while connecting.
    func connectProgressed(nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        guard case let .connecting(candidates, index) = state, let socket else { return }
        if let error = socket.connectOutcome() {
            socket.close()
            self.socket = nil
            guard index + 1 < candidates.count else {
                fail(.connectFailed(address, reason: error.description), events: &events)
                return
            }
            startConnect(candidates: candidates, index: index + 1, nowNanoseconds: nowNanoseconds, events: &events)
            return
        }
        sendAPIVersions(version: ClientAPIVersions.firstAPIVersionsVersion, nowNanoseconds: nowNanoseconds)
    }

    /// Writes as much queued output as the socket takes.
    func flush(events: inout [NetworkEvent]) {
        guard let socket, !isConnecting, hasPendingOutput else { return }
        while outputIndex < output.count {
            let outcome = output.withUnsafeBytes { raw in
                socket.write(UnsafeRawBufferPointer(rebasing: raw[outputIndex...]))
            }
            switch outcome {
            case let .success(count):
                if count == 0 { return }
                outputIndex += count
            case let .failure(error):
                fail(.connectionLost(address, reason: error.description), events: &events)
                return
            }
        }
    }

    /// Reads what is available (bounded per call so one busy connection cannot starve others)
    /// and handles every whole frame.
    func readAvailable(scratch: inout [UInt8], nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        guard let socket else { return }
        for _ in 0..<16 {
            let outcome = scratch.withUnsafeMutableBytes { socket.read(into: $0) }
            switch outcome {
            case let .success(count?):
                if count == 0 { return }
                scratch.withUnsafeBytes { input.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                do throws(FrameError) {
                    while let frame = try input.nextFrame() {
                        handleFrame(frame, nowNanoseconds: nowNanoseconds, events: &events)
                        if isClosed { return }
                    }
                } catch {
                    fail(.protocolViolation(address, reason: error.description), events: &events)
                    return
                }
                if count < scratch.count { return }
            case .success(nil):
                fail(.connectionLost(address, reason: "closed by the broker"), events: &events)
                return
            case let .failure(error):
                fail(.connectionLost(address, reason: error.description), events: &events)
                return
            }
        }
    }

    private func handleFrame(_ frame: [UInt8], nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        guard inFlightHead < inFlight.count else {
            fail(.protocolViolation(address, reason: "an answer with no request waiting"), events: &events)
            return
        }
        let expected = inFlight[inFlightHead]
        guard frame.count >= 4 else {
            fail(.protocolViolation(address, reason: "a \(frame.count)-byte frame has no correlation id"), events: &events)
            return
        }
        let correlationID = Int32(bitPattern: UInt32(frame[0]) << 24 | UInt32(frame[1]) << 16 | UInt32(frame[2]) << 8 | UInt32(frame[3]))
        guard correlationID == expected.correlationID else {
            fail(.protocolViolation(address, reason: "answer for correlation id \(correlationID), expected \(expected.correlationID)"),
                 events: &events)
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
            handleAPIVersionsAnswer(frame, nowNanoseconds: nowNanoseconds, events: &events)
            return
        }
        do {
            let decoded = try decodeKafkaResponse(frame[...], apiKey: expected.apiKey, apiVersion: expected.apiVersion)
            events.append(.response(token: token, response: decoded.response, apiVersion: expected.apiVersion))
        } catch {
            fail(.protocolViolation(address, reason: "undecodable \(expected.apiKey) v\(expected.apiVersion) answer: \(error)"),
                 events: &events)
        }
    }

    /// The handshake's answer. A broker that does not know the version sent answers in v0 with
    /// UNSUPPORTED_VERSION (and the v0 body does not decode as the newer version), so a failed or
    /// refusing decode is retried as v0 before giving up, as Kafka's Java client does.
    private func handleAPIVersionsAnswer(_ frame: [UInt8], nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        var answer: APIVersionsAnswer?
        if let decoded = try? decodeKafkaResponse(frame[...], apiKey: .apiVersions, apiVersion: apiVersionsVersion) {
            answer = apiVersionsAnswer(from: decoded.response)
        }
        if answer == nil || answer?.errorCode == KafkaErrorCode.unsupportedVersion.rawValue, apiVersionsVersion != 0,
           let decoded = try? decodeKafkaResponse(frame[...], apiKey: .apiVersions, apiVersion: 0) {
            answer = apiVersionsAnswer(from: decoded.response) ?? answer
        }
        guard let answer else {
            fail(.protocolViolation(address, reason: "undecodable ApiVersions v\(apiVersionsVersion) answer"), events: &events)
            return
        }
        if answer.errorCode == KafkaErrorCode.unsupportedVersion.rawValue {
            let brokerRange = answer.ranges[KafkaAPIKey.apiVersions.rawValue]
            guard let retry = ClientAPIVersions.apiVersionsRetryVersion(triedVersion: apiVersionsVersion, brokerRange: brokerRange) else {
                fail(.unsupportedAPI(address, apiKey: .apiVersions), events: &events)
                return
            }
            sendAPIVersions(version: retry, nowNanoseconds: nowNanoseconds)
            return
        }
        guard answer.errorCode == 0 else {
            fail(.protocolViolation(address, reason: "ApiVersions answered \(kafkaErrorName(answer.errorCode))"), events: &events)
            return
        }
        let versions = BrokerAPIVersions(ranges: answer.ranges)
        state = .ready(versions)
        let queued = waiting
        waiting.removeAll()
        for entry in queued { write(entry.request, versions: versions, deadlineNanoseconds: entry.deadlineNanoseconds, events: &events) }
    }

    // MARK: Failure

    /// Closes the connection and fails every request on it; `timedOutToken` gets the timeout error.
    func fail(_ error: KafkaClientError, events: inout [NetworkEvent], timedOutToken: UInt64? = nil) {
        socket?.close()
        socket = nil
        state = .closed
        failure = error
        let collateral: KafkaClientError
        switch error {
        case .requestTimedOut: collateral = .connectionLost(address, reason: "closed after a request on it timed out")
        default: collateral = error
        }
        for index in inFlightHead..<inFlight.count {
            guard let token = inFlight[index].token else { continue }
            events.append(.failed(token: token, error: token == timedOutToken ? error : collateral))
        }
        for entry in waiting { events.append(.failed(token: entry.request.token, error: collateral)) }
        inFlight.removeAll()
        inFlightHead = 0
        waiting.removeAll()
        output.removeAll()
        outputIndex = 0
    }
}
