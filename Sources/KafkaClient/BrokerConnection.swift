import Client
import KafkaProtocol
import Posix
import TernCore

/// How a request ended.
public enum NetworkEvent {
    case response(token: UInt64, response: KafkaResponse, apiVersion: Int16)
    case failed(token: UInt64, error: KafkaClientError)
}

/// One TCP connection to one broker: connect, then Client's `KafkaConversation` (ApiVersions
/// handshake, pipelined requests answered in order) over the socket. Owned and driven by
/// `KafkaNetworkClient` (single-threaded).
final class BrokerConnection {
    enum State {
        /// Waiting out the reconnect backoff after the previous connection to this node failed.
        case backingOff(untilNanoseconds: Int64)
        /// A non-blocking connect to `candidates[index]` is under way.
        case connecting(candidates: [ResolvedAddress], index: Int)
        /// Connected; the conversation runs (handshake first).
        case connected
        case closed
    }

    let node: NodeID
    let address: BrokerAddress
    let connectTimeout: Duration
    private(set) var state: State
    private(set) var socket: TCPSocket?
    private var conversation: KafkaConversation
    private var connectDeadlineNanoseconds: Int64 = 0
    private var output: [UInt8] = []
    private var outputIndex = 0
    private let input = FrameDecoder(maximumFrameBytes: KafkaFraming.maximumFrameBytes)
    private var conversationEvents: [ConversationEvent] = []
    /// Why the connection closed, for requests that arrive after it did.
    private(set) var failure: KafkaClientError?

    init(node: NodeID, address: BrokerAddress, clientID: String, connectTimeout: Duration, maximumQueuedRequests: Int,
         notBeforeNanoseconds: Int64) {
        self.node = node
        self.address = address
        self.connectTimeout = connectTimeout
        conversation = KafkaConversation(clientID: clientID, handshakeTimeout: connectTimeout, maximumQueuedRequests: maximumQueuedRequests)
        state = .backingOff(untilNanoseconds: notBeforeNanoseconds)
    }

    var isClosed: Bool { if case .closed = state { return true } else { return false } }
    var isConnecting: Bool { if case .connecting = state { return true } else { return false } }
    var apiVersions: BrokerAPIVersions? { conversation.apiVersions }
    var hasPendingOutput: Bool { outputIndex < output.count }

    /// The earliest deadline this connection has (connect, backoff, or a request's).
    var nextDeadlineNanoseconds: Int64? {
        var earliest = conversation.nextDeadline?.nanoseconds
        switch state {
        case let .backingOff(until): earliest = min(earliest ?? until, until)
        case .connecting: earliest = min(earliest ?? connectDeadlineNanoseconds, connectDeadlineNanoseconds)
        default: break
        }
        return earliest
    }

    // MARK: Requests

    func enqueue(_ request: OutgoingRequest, nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        if let failure {
            events.append(.failed(token: request.token, error: failure))
            return
        }
        conversation.enqueue(request, now: Instant(nanoseconds: nowNanoseconds), events: &conversationEvents)
        collect(into: &events)
    }

    /// Moves the conversation's frames to the output and its events, with this connection's
    /// address, to `events`; closes the socket once the conversation has ended.
    private func collect(into events: inout [NetworkEvent]) {
        for frame in conversation.takeFrames() {
            if outputIndex == output.count {
                output.removeAll(keepingCapacity: true)
                outputIndex = 0
            }
            output.append(contentsOf: frame)
        }
        for event in conversationEvents {
            switch event {
            case let .response(token, response, version): events.append(.response(token: token, response: response, apiVersion: version))
            case let .failed(token, failure): events.append(.failed(token: token, error: clientError(failure)))
            }
        }
        conversationEvents.removeAll(keepingCapacity: true)
        if let failure = conversation.failure, !isClosed { close(clientError(failure)) }
    }

    private func clientError(_ failure: ConversationFailure) -> KafkaClientError {
        switch failure {
        case let .handshakeTimedOut(timeout): return .connectFailed(address, reason: "no ApiVersions answer within \(timeout)")
        case let .requestTimedOut(apiKey): return .requestTimedOut(address, apiKey: apiKey)
        case let .protocolViolation(reason): return .protocolViolation(address, reason: reason)
        case let .unsupportedAPI(apiKey): return .unsupportedAPI(address, apiKey: apiKey)
        case .tooManyQueuedRequests: return .tooManyQueuedRequests(address)
        case let .connectionLost(reason): return .connectionLost(address, reason: reason)
        }
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
        conversation.expire(now: Instant(nanoseconds: nowNanoseconds), events: &conversationEvents)
        collect(into: &events)
    }

    private func startConnect(candidates: [ResolvedAddress], index: Int, nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        var index = index
        var lastError: SystemCallError?
        while index < candidates.count {
            switch TCPSocket.startConnect(to: candidates[index]) {
            case let .success((socket, completed)):
                self.socket = socket
                if completed {
                    becomeConnected(nowNanoseconds: nowNanoseconds, events: &events)
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

    private func becomeConnected(nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        state = .connected
        conversation.connected(now: Instant(nanoseconds: nowNanoseconds))
        collect(into: &events)
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
        becomeConnected(nowNanoseconds: nowNanoseconds, events: &events)
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
    /// and hands every whole frame to the conversation.
    func readAvailable(scratch: inout [UInt8], nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        guard let socket else { return }
        let now = Instant(nanoseconds: nowNanoseconds)
        for _ in 0..<16 {
            let outcome = scratch.withUnsafeMutableBytes { socket.read(into: $0) }
            switch outcome {
            case let .success(count?):
                if count == 0 { return }
                scratch.withUnsafeBytes { input.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                do throws(FrameError) {
                    while let frame = try input.nextFrame() {
                        conversation.receive(frame, now: now, events: &conversationEvents)
                        collect(into: &events)
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

    // MARK: Failure

    /// Closes the connection and fails every request on it.
    func fail(_ error: KafkaClientError, events: inout [NetworkEvent]) {
        guard !isClosed else { return }
        conversation.fail(.connectionLost(error.description), events: &conversationEvents)
        for event in conversationEvents {
            if case let .failed(token, _) = event { events.append(.failed(token: token, error: error)) }
        }
        conversationEvents.removeAll(keepingCapacity: true)
        close(error)
    }

    private func close(_ error: KafkaClientError) {
        socket?.close()
        socket = nil
        state = .closed
        failure = error
        output.removeAll()
        outputIndex = 0
    }
}
