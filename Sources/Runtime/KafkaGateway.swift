import Broker
import Controller
import KafkaProtocol
import NodeKit
import TernCore

/// Speaks the Kafka protocol on the client listener for the hosted broker. Each request frame is
/// decoded; data-plane requests become `dataRequest` messages to the broker node and admin requests
/// `adminRequest` messages (the broker forwards them to the active controller); ApiVersions,
/// DescribeConfigs and DescribeCluster are answered here from the broker's metadata image.
/// Answers go back in request order per connection, as Kafka clients require, however the node
/// orders them (an `acks=all` produce may finish after a later metadata request).
///
/// Malformed or unsupported requests close the connection, as Kafka does; nothing a client sends
/// can stop the broker or make it allocate beyond the frame limit the host already enforced.
public final class KafkaGateway: ClientProtocolHandler {
    struct Slot {
        let sequence: UInt64
        let header: KafkaRequestHeader
        /// The encoded response frame, once known.
        var response: [UInt8]?
        /// Past it the client has long given up: the connection is closed.
        let deadline: Instant
    }

    struct Connection {
        let pseudoNodeID: NodeID
        /// Requests not yet answered on the wire, oldest first.
        var slots: [Slot] = []
        var nextSequence: UInt64 = 0
        var isReadingPaused = false
    }

    /// What a node message answers: a slot of a connection, or nothing (acks=0 produce).
    struct PendingAnswer {
        let connection: ClientConnectionID
        let sequence: UInt64?
        let apiKey: KafkaAPIKey
        let version: Int16
        /// The wire request, for answers built per requested item (admin errors).
        let request: KafkaRequest
    }

    /// Requests in flight on one connection before it stops being read (librdkafka keeps up to
    /// 1,000,000 in flight by default; Kafka itself mutes a connection after one).
    public static let maximumInFlightPerConnection = 128
    /// Slack past a request's own timeout before the gateway stops waiting for the node.
    public static let answerGrace = Duration.seconds(10)
    public static let defaultRequestTimeout = Duration.seconds(30)

    let context: NodeHostContext
    let broker: BrokerNode
    private var connections: [ClientConnectionID: Connection] = [:]
    private var connectionByPseudoNodeID: [NodeID: ClientConnectionID] = [:]
    private var pendingAnswers: [UInt64: PendingAnswer] = [:]
    private var nextNodeCorrelationID: UInt64 = 1

    public init(context: NodeHostContext) {
        guard let broker = context.broker else { preconditionFailure("the Kafka gateway serves a broker") }
        self.context = context
        self.broker = broker
    }

    public func connectionOpened(_ connection: ClientConnectionID, pseudoNodeID: NodeID, now: Instant) {
        connections[connection] = Connection(pseudoNodeID: pseudoNodeID)
        connectionByPseudoNodeID[pseudoNodeID] = connection
    }

    public func connectionClosed(_ connection: ClientConnectionID, now: Instant) {
        guard let closed = connections.removeValue(forKey: connection) else { return }
        connectionByPseudoNodeID[closed.pseudoNodeID] = nil
        // Answers still on their way find no pending entry and are dropped.
        pendingAnswers = pendingAnswers.filter { $0.value.connection != connection }
    }

    public func frameReceived(_ frame: [UInt8], on connection: ClientConnectionID, now: Instant, actions: inout [ClientAction]) {
        guard connections[connection] != nil else { return }
        guard broker.isServingClients else {
            // Kafka accepts no connections before its startup completes; closing at once sends
            // the client to another bootstrap broker instead of letting it wait for a timeout.
            actions.append(.close(connection))
            return
        }
        let decoded: DecodedKafkaRequest
        do {
            decoded = try decodeKafkaRequest(frame[...])
        } catch {
            context.log.info("closing \(connection): \(describe(error))")
            actions.append(.close(connection))
            return
        }
        handle(decoded, on: connection, now: now, actions: &actions)
        flush(connection, actions: &actions)
        applyBackpressure(connection, actions: &actions)
    }

    public func nodeSent(_ bytes: [UInt8], to pseudoNodeID: NodeID, now: Instant, actions: inout [ClientAction]) {
        guard let connection = connectionByPseudoNodeID[pseudoNodeID], let message = try? PeerMessage(decoding: bytes) else { return }
        let correlationID: UInt64
        switch message {
        case let .dataResponse(id, _), let .controllerResponse(id, _), let .notController(id, _): correlationID = id
        default: return
        }
        guard let pending = pendingAnswers.removeValue(forKey: correlationID) else { return }
        guard let sequence = pending.sequence else { return }  // acks=0: the client expects nothing
        let response: KafkaResponse?
        switch message {
        case let .dataResponse(_, dataResponse): response = dataResponse.kafkaResponse(version: pending.version)
        case let .controllerResponse(_, controllerResponse): response = Self.adminResponse(controllerResponse, to: pending.request)
        case .notController: response = Self.adminFailure(.notController, to: pending.request)
        default: response = nil
        }
        guard let response, let index = connections[connection]?.slots.firstIndex(where: { $0.sequence == sequence }) else {
            context.log.info("closing \(connection): no \(pending.apiKey) answer could be made")
            actions.append(.close(connection))
            return
        }
        let header = connections[connection]!.slots[index].header
        connections[connection]!.slots[index].response = encodeKafkaResponse(response, for: header)
        flush(connection, actions: &actions)
        applyBackpressure(connection, actions: &actions)
    }

    public func tick(now: Instant, actions: inout [ClientAction]) {
        for connection in connections.keys.sorted(by: { $0.rawValue < $1.rawValue }) {
            guard let oldest = connections[connection]?.slots.first, oldest.response == nil, now >= oldest.deadline else { continue }
            context.log.info("closing \(connection): API \(oldest.header.apiKey) request unanswered past its deadline")
            actions.append(.close(connection))
        }
    }

    // MARK: Requests

    private func handle(_ decoded: DecodedKafkaRequest, on connection: ClientConnectionID, now: Instant,
                        actions: inout [ClientAction]) {
        let header = decoded.header
        let version = header.apiVersion
        switch decoded.body {
        case .apiVersions:
            answerNow(.apiVersions(apiVersionsResponse(requestedVersion: version)), header: header, on: connection, now: now)
        case let .describeCluster(request):
            answerNow(.describeCluster(describeCluster(request)), header: header, on: connection, now: now)
        case let .describeConfigs(request):
            answerNow(.describeConfigs(describeConfigs(request)), header: header, on: connection, now: now)
        case .createTopics, .deleteTopics, .createPartitions, .electLeaders:
            guard let adminRequest = Self.controllerRequest(for: decoded.body) else {
                actions.append(.close(connection))
                return
            }
            let timeout = Self.adminTimeout(of: decoded.body)
            forward(decoded, on: connection, deadline: now + timeout + Self.answerGrace, expectsAnswer: true, actions: &actions) {
                PeerMessage.adminRequest(correlationID: $0, request: adminRequest)
            }
        case .produce, .fetch, .listOffsets, .metadata, .initProducerID, .offsetForLeaderEpoch:
            guard let dataRequest = DataRequest(kafka: decoded.body, version: version) else {
                context.log.info("closing \(connection): API \(header.apiKey) v\(version) request has no data-plane form")
                actions.append(.close(connection))
                return
            }
            var expectsAnswer = true
            var timeout = Self.defaultRequestTimeout
            switch dataRequest {
            case let .produce(produce):
                expectsAnswer = produce.acks != 0
                timeout = .milliseconds(Int64(max(0, produce.timeoutMilliseconds)))
            case let .fetch(fetch):
                timeout = .milliseconds(Int64(max(0, fetch.maxWaitMilliseconds)))
            default:
                break
            }
            forward(decoded, on: connection, deadline: now + timeout + Self.answerGrace, expectsAnswer: expectsAnswer,
                    actions: &actions) { PeerMessage.dataRequest(correlationID: $0, request: dataRequest) }
        }
    }

    /// Sends the message `makeMessage` builds for a fresh correlation id from the connection's
    /// pseudo node to the broker, with a slot for the answer when the client expects one.
    private func forward(_ decoded: DecodedKafkaRequest, on connection: ClientConnectionID, deadline: Instant,
                         expectsAnswer: Bool, actions: inout [ClientAction], makeMessage: (UInt64) -> PeerMessage) {
        guard let key = decoded.header.knownAPIKey, let state = connections[connection] else { return }
        let correlationID = nextNodeCorrelationID
        nextNodeCorrelationID += 1
        var sequence: UInt64?
        if expectsAnswer { sequence = openSlot(on: connection, header: decoded.header, deadline: deadline) }
        pendingAnswers[correlationID] = PendingAnswer(connection: connection, sequence: sequence, apiKey: key,
                                                      version: decoded.header.apiVersion, request: decoded.body)
        actions.append(.deliverToNode(from: state.pseudoNodeID, bytes: makeMessage(correlationID).encoded()))
    }

    private func answerNow(_ response: KafkaResponse, header: KafkaRequestHeader, on connection: ClientConnectionID, now: Instant) {
        openSlot(on: connection, header: header, deadline: now, response: encodeKafkaResponse(response, for: header))
    }

    @discardableResult
    private func openSlot(on connection: ClientConnectionID, header: KafkaRequestHeader, deadline: Instant,
                          response: [UInt8]? = nil) -> UInt64 {
        let sequence = connections[connection]!.nextSequence
        connections[connection]!.nextSequence += 1
        connections[connection]!.slots.append(Slot(sequence: sequence, header: header, response: response, deadline: deadline))
        return sequence
    }

    /// Sends every answer at the front of the queue that is ready, in request order.
    private func flush(_ connection: ClientConnectionID, actions: inout [ClientAction]) {
        guard var state = connections[connection] else { return }
        var ready = 0
        while ready < state.slots.count, let response = state.slots[ready].response {
            actions.append(.send(connection, response))
            ready += 1
        }
        if ready > 0 {
            state.slots.removeFirst(ready)
            connections[connection] = state
        }
    }

    private func applyBackpressure(_ connection: ClientConnectionID, actions: inout [ClientAction]) {
        guard let state = connections[connection] else { return }
        let inFlight = state.slots.count
        if !state.isReadingPaused && inFlight >= Self.maximumInFlightPerConnection {
            connections[connection]!.isReadingPaused = true
            actions.append(.pauseReading(connection))
        } else if state.isReadingPaused && inFlight <= Self.maximumInFlightPerConnection / 2 {
            connections[connection]!.isReadingPaused = false
            actions.append(.resumeReading(connection))
        }
    }

    private func describe(_ error: KafkaRequestDecodeError) -> String {
        switch error {
        case let .unreadableHeader(reason): return "unreadable request header (\(reason))"
        case let .unsupported(header): return "unsupported API \(header.apiKey) version \(header.apiVersion)"
        case let .malformedBody(header, reason): return "malformed API \(header.apiKey) v\(header.apiVersion) request: \(reason)"
        }
    }
}
