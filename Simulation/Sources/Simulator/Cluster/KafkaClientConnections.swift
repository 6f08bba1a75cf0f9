import Client
import KafkaProtocol
import NodeKit
import SimWorld
import TernCore

/// How a simulated client's request ended.
enum ClientRequestOutcome {
    case answered(RequestCorrelation, KafkaResponse)
    /// Lost with its connection, timed out, or unanswerable: the client retries as after a timeout.
    case failed(RequestCorrelation)
}

extension SansIOKafkaClient {
    /// Hands the client every outcome of its data requests, in order.
    mutating func take(_ outcomes: [ClientRequestOutcome], now: Instant) {
        for outcome in outcomes {
            switch outcome {
            case let .answered(correlation, response): handle(response: response, correlation: correlation, now: now)
            case let .failed(correlation): handleTimeout(correlation: correlation, now: now)
            }
        }
    }
}

/// A simulated client's connections to the brokers' Kafka front doors: one connection per broker,
/// opened on the first request to it, running Client's `KafkaConversation` (ApiVersions
/// handshake, negotiated versions, pipelined frames answered in order) — the same conversation the
/// `tern` tools run over real sockets. Requests leave as real Kafka request frames; answers come
/// back as frames, decoded at the version their request was sent at. A connection that closes,
/// times out or breaks the protocol fails every request on it, as Kafka's clients do.
struct KafkaClientConnections {
    private struct Connection {
        let id: OutboundConnectionID
        var conversation: KafkaConversation
        /// Until the connection is up; past it the attempt is abandoned.
        var connectDeadline: Instant?
    }

    let clientID: String
    let connectTimeout: Duration
    private var byBroker: [NodeID: Connection] = [:]
    private var brokerByConnection: [OutboundConnectionID: NodeID] = [:]
    private var nextConnectionID: UInt64 = 1
    private var events: [ConversationEvent] = []

    /// Requests waiting or in flight on one connection.
    static let maximumQueuedRequests = 1_024

    init(clientID: String, connectTimeout: Duration = .seconds(2)) {
        self.clientID = clientID
        self.connectTimeout = connectTimeout
    }

    var openConnectionCount: Int { byBroker.count }

    /// Sends `request` to its destination broker, connecting first if needed; its outcome
    /// comes back later through `outcomes` (or at once, if it cannot be sent).
    mutating func send(_ request: ClientRequest, timeout: Duration, now: Instant, effects: inout [NodeEffect],
                       outcomes: inout [ClientRequestOutcome]) {
        send(request.outgoing(timeout: timeout), to: request.destination, now: now, effects: &effects, outcomes: &outcomes)
    }

    /// Sends a request built at the negotiated version; its outcome is named by the request's token.
    mutating func send(_ request: OutgoingRequest, to broker: NodeID, now: Instant, effects: inout [NodeEffect],
                               outcomes: inout [ClientRequestOutcome]) {
        if byBroker[broker] == nil {
            let id = OutboundConnectionID(rawValue: nextConnectionID)
            nextConnectionID += 1
            byBroker[broker] = Connection(
                id: id,
                conversation: KafkaConversation(clientID: clientID, handshakeTimeout: connectTimeout,
                                                maximumQueuedRequests: Self.maximumQueuedRequests),
                connectDeadline: now + connectTimeout)
            brokerByConnection[id] = broker
            effects.append(.openOutbound(id, to: broker))
        }
        byBroker[broker]!.conversation.enqueue(request, now: now, events: &events)
        settle(broker, effects: &effects, outcomes: &outcomes)
    }

    /// Handles a connection event; false for any other event.
    mutating func handle(_ event: NodeEvent, now: Instant, effects: inout [NodeEffect], outcomes: inout [ClientRequestOutcome]) -> Bool {
        switch event {
        case let .outboundConnected(id):
            guard let broker = brokerByConnection[id] else { return true }
            byBroker[broker]!.connectDeadline = nil
            byBroker[broker]!.conversation.connected(now: now)
            settle(broker, effects: &effects, outcomes: &outcomes)
        case let .outboundResponse(id, frame):
            guard let broker = brokerByConnection[id] else { return true }
            byBroker[broker]!.conversation.receive(frame, now: now, events: &events)
            settle(broker, effects: &effects, outcomes: &outcomes)
        case let .outboundClosed(id):
            guard let broker = brokerByConnection[id] else { return true }
            byBroker[broker]!.conversation.fail(.connectionLost("closed by the broker"), events: &events)
            settle(broker, effects: &effects, outcomes: &outcomes, closedByBroker: true)
        default:
            return false
        }
        return true
    }

    /// Gives up connections whose connect or oldest request is past its deadline.
    mutating func expire(now: Instant, effects: inout [NodeEffect], outcomes: inout [ClientRequestOutcome]) {
        for broker in byBroker.keys.sorted() {
            if let deadline = byBroker[broker]!.connectDeadline, now >= deadline {
                byBroker[broker]!.conversation.fail(.connectionLost("connect timed out after \(connectTimeout)"), events: &events)
            } else {
                byBroker[broker]!.conversation.expire(now: now, events: &events)
            }
            settle(broker, effects: &effects, outcomes: &outcomes)
        }
    }

    /// Writes the conversation's frames, turns its events into outcomes, and closes the
    /// connection once the conversation has ended.
    private mutating func settle(_ broker: NodeID, effects: inout [NodeEffect], outcomes: inout [ClientRequestOutcome],
                                 closedByBroker: Bool = false) {
        guard var connection = byBroker[broker] else { return }
        for frame in connection.conversation.takeFrames() { effects.append(.sendOutbound(connection.id, frame)) }
        for event in events { outcomes.append(outcome(of: event)) }
        events.removeAll(keepingCapacity: true)
        guard connection.conversation.isClosed else {
            byBroker[broker] = connection
            return
        }
        if !closedByBroker { effects.append(.closeOutbound(connection.id)) }
        byBroker[broker] = nil
        brokerByConnection[connection.id] = nil
    }

    private mutating func outcome(of event: ConversationEvent) -> ClientRequestOutcome {
        switch event {
        case let .response(token, response, _):
            return .answered(RequestCorrelation(token), response)
        case let .failed(token, _):
            return .failed(RequestCorrelation(token))
        }
    }
}
