import Controller
import KafkaProtocol
import NodeKit
import TernCore

/// The broker's Kafka front door: what a client connection's frames become inside the node, and
/// how the node's answers go back. Each request frame is decoded; data-plane requests go to the
/// broker's data plane as they were decoded, and admin requests as `adminRequest` messages (the
/// broker forwards them to the active controller), each from a pseudo node id (negative, one per
/// connection) that the answers come back to; ApiVersions, DescribeConfigs and DescribeCluster
/// are answered here from the broker's metadata image. Answers go back in
/// request order per connection, as Kafka clients require, however the broker orders them (an
/// `acks=all` produce may finish after a later metadata request).
///
/// Pure: the shell owns the sockets and the framing and delivers whole frames as node events;
/// the real runtime and (later) the simulator run the same code. Malformed or unsupported
/// requests close their connection, as Kafka does; nothing a client sends can stop the broker or
/// make it allocate beyond the frame limit the shell enforced.
struct KafkaFrontend {
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

    /// What a broker message answers: a slot of a connection, or nothing (acks=0 produce).
    struct PendingAnswer {
        let connection: ClientConnectionID
        let sequence: UInt64?
        let apiKey: KafkaAPIKey
        /// The wire request, for answers built per requested item (admin errors).
        let request: KafkaRequest
    }

    /// A request for the broker to handle.
    enum BrokerRequest {
        /// For the data plane, answered to the requester (the connection's pseudo node).
        case data(KafkaRequest, DataPlaneRequester)
        /// For the admin forwarder, as if the connection's pseudo node had sent it.
        case admin(from: NodeID, PeerMessage)
    }

    /// Requests in flight on one connection before it stops being read (librdkafka keeps up to
    /// 1,000,000 in flight by default; Kafka itself mutes a connection after one).
    static let maximumInFlightPerConnection = 128
    /// Slack past a request's own timeout before the front door stops waiting for the broker.
    static let answerGrace = Duration.seconds(10)
    static let defaultRequestTimeout = Duration.seconds(30)

    private var connections: [ClientConnectionID: Connection] = [:]
    private var connectionByPseudoNodeID: [NodeID: ClientConnectionID] = [:]
    private var pendingAnswers: [UInt64: PendingAnswer] = [:]
    private var nextBrokerCorrelationID: UInt64 = 1
    private var nextPseudoNodeID: Int32 = -1

    var openConnectionCount: Int { connections.count }
    /// Answers that were ready while an earlier request of their connection was not: each one
    /// waited to keep the connection's answers in request order.
    private(set) var answersHeldForOrder = 0

    mutating func connect(_ connection: ClientConnectionID) {
        let pseudoNodeID = takePseudoNodeID()
        connections[connection] = Connection(pseudoNodeID: pseudoNodeID)
        connectionByPseudoNodeID[pseudoNodeID] = connection
    }

    mutating func disconnect(_ connection: ClientConnectionID) {
        guard let closed = connections.removeValue(forKey: connection) else { return }
        connectionByPseudoNodeID[closed.pseudoNodeID] = nil
        // Answers still on their way find no pending entry and are dropped.
        pendingAnswers = pendingAnswers.filter { $0.value.connection != connection }
    }

    /// A negative id no open connection has (never a real node's id, which is >= 0).
    private mutating func takePseudoNodeID() -> NodeID {
        while true {
            let candidate = NodeID(nextPseudoNodeID)
            nextPseudoNodeID = nextPseudoNodeID == Int32.min ? -1 : nextPseudoNodeID - 1
            if connectionByPseudoNodeID[candidate] == nil { return candidate }
        }
    }

    /// Decodes one request frame; answers it at once, or returns what the broker must handle.
    mutating func receive(_ frame: [UInt8], on connection: ClientConnectionID, broker: BrokerNode, now: Instant,
                          effects: inout [NodeEffect]) -> BrokerRequest? {
        guard connections[connection] != nil else { return nil }
        guard broker.isServingClients else {
            // Kafka accepts no connections before its startup completes; closing at once sends
            // the client to another bootstrap broker instead of letting it wait for a timeout.
            effects.append(.closeClient(connection))
            return nil
        }
        let decoded: DecodedKafkaRequest
        do {
            decoded = try decodeKafkaRequest(frame[...])
        } catch {
            effects.append(.log("closing \(connection): \(Self.describe(error))"))
            effects.append(.closeClient(connection))
            return nil
        }
        let request = handle(decoded, on: connection, broker: broker, now: now, effects: &effects)
        flush(connection, effects: &effects)
        applyBackpressure(connection, effects: &effects)
        return request
    }

    /// Whether `bytes`, sent by the broker to `destination`, are an answer for a client.
    static func isClientAnswer(to destination: NodeID) -> Bool { destination.rawValue < 0 }

    /// The data plane answered a connection's request.
    mutating func answer(_ response: KafkaResponse, to requester: DataPlaneRequester, effects: inout [NodeEffect]) {
        deliver(correlationID: requester.correlationID, to: requester.node, effects: &effects) { _ in response }
    }

    /// The admin forwarder answered a connection's pseudo node (a controller's answer, or
    /// `notController` when none came in time).
    mutating func answer(_ bytes: [UInt8], to pseudoNodeID: NodeID, effects: inout [NodeEffect]) {
        guard let message = try? PeerMessage(decoding: bytes) else { return }
        switch message {
        case let .controllerResponse(correlationID, controllerResponse):
            deliver(correlationID: correlationID, to: pseudoNodeID, effects: &effects) { Self.adminResponse(controllerResponse, to: $0.request) }
        case let .notController(correlationID, _):
            deliver(correlationID: correlationID, to: pseudoNodeID, effects: &effects) { Self.adminFailure(.notController, to: $0.request) }
        default:
            return
        }
    }

    /// The answer takes its place in the connection's order, and every answer now at the front leaves.
    private mutating func deliver(correlationID: UInt64, to pseudoNodeID: NodeID, effects: inout [NodeEffect],
                                  makeResponse: (PendingAnswer) -> KafkaResponse?) {
        guard let connection = connectionByPseudoNodeID[pseudoNodeID],
              let pending = pendingAnswers.removeValue(forKey: correlationID) else { return }
        guard let sequence = pending.sequence else { return }  // acks=0: the client expects nothing
        guard let response = makeResponse(pending), let index = connections[connection]?.slots.firstIndex(where: { $0.sequence == sequence }) else {
            effects.append(.log("closing \(connection): no \(pending.apiKey) answer could be made"))
            effects.append(.closeClient(connection))
            return
        }
        let header = connections[connection]!.slots[index].header
        connections[connection]!.slots[index].response = encodeKafkaResponse(response, for: header)
        if index > 0 { answersHeldForOrder += 1 }
        flush(connection, effects: &effects)
        applyBackpressure(connection, effects: &effects)
    }

    /// Closes connections whose oldest request the broker left unanswered past its deadline.
    func tick(now: Instant, effects: inout [NodeEffect]) {
        for connection in connections.keys.sorted() {
            guard let oldest = connections[connection]?.slots.first, oldest.response == nil, now >= oldest.deadline else { continue }
            effects.append(.log("closing \(connection): API \(oldest.header.apiKey) request unanswered past its deadline"))
            effects.append(.closeClient(connection))
        }
    }

    // MARK: Requests

    private mutating func handle(_ decoded: DecodedKafkaRequest, on connection: ClientConnectionID, broker: BrokerNode,
                                 now: Instant, effects: inout [NodeEffect]) -> BrokerRequest? {
        let header = decoded.header
        let version = header.apiVersion
        switch decoded.body {
        case .apiVersions:
            answerNow(.apiVersions(Self.apiVersionsResponse(requestedVersion: version)), header: header, on: connection, now: now)
        case let .describeCluster(request):
            answerNow(.describeCluster(Self.describeCluster(request, broker: broker)), header: header, on: connection, now: now)
        case let .describeConfigs(request):
            answerNow(.describeConfigs(Self.describeConfigs(request, image: broker.dataPlane.image,
                                                            configuration: broker.dataPlane.configuration, brokerID: broker.nodeID)),
                      header: header,
                      on: connection, now: now)
        case .alterConfigs, .incrementalAlterConfigs:
            if let operation = Self.invalidOperation(in: decoded.body) {
                let refusal = (KafkaErrorCode.invalidRequest.rawValue, Optional("unknown config operation \(operation)"))
                if let answer = Self.alterConfigsResponse(Array(repeating: refusal, count: Self.resourceCount(of: decoded.body)), to: decoded.body) {
                    answerNow(answer, header: header, on: connection, now: now)
                }
                return nil
            }
            guard let alter = Self.alterConfigsRequest(for: decoded.body, image: broker.dataPlane.image) else { return nil }
            return forward(decoded, on: connection, deadline: now + Self.defaultRequestTimeout + Self.answerGrace, expectsAnswer: true) {
                pseudoNodeID, correlationID in
                .admin(from: pseudoNodeID, PeerMessage.adminRequest(correlationID: correlationID, request: .alterConfigs(alter)))
            }
        case .createTopics, .deleteTopics, .createPartitions, .electLeaders, .alterPartitionReassignments:
            guard let adminRequest = Self.controllerRequest(for: decoded.body) else {
                effects.append(.closeClient(connection))
                return nil
            }
            let timeout = Self.adminTimeout(of: decoded.body)
            return forward(decoded, on: connection, deadline: now + timeout + Self.answerGrace, expectsAnswer: true) { pseudoNodeID, correlationID in
                .admin(from: pseudoNodeID, PeerMessage.adminRequest(correlationID: correlationID, request: adminRequest))
            }
        case .produce, .fetch, .listOffsets, .metadata, .initProducerID, .offsetForLeaderEpoch, .deleteRecords:
            var expectsAnswer = true
            var timeout = Self.defaultRequestTimeout
            switch decoded.body {
            case let .produce(produce):
                expectsAnswer = produce.acks != 0
                timeout = .milliseconds(Int64(max(0, produce.timeoutMs)))
            case let .fetch(fetch):
                timeout = .milliseconds(Int64(max(0, fetch.maxWaitMs)))
            case let .deleteRecords(deleteRecords):
                timeout = .milliseconds(Int64(max(0, deleteRecords.timeoutMs)))
            default:
                break
            }
            return forward(decoded, on: connection, deadline: now + timeout + Self.answerGrace, expectsAnswer: expectsAnswer) { pseudoNodeID, correlationID in
                .data(decoded.body, DataPlaneRequester(node: pseudoNodeID, correlationID: correlationID, version: version))
            }
        }
        return nil
    }

    /// The request `makeRequest` builds for the connection's pseudo node and a fresh correlation
    /// id, with a slot for the answer when the client expects one.
    private mutating func forward(_ decoded: DecodedKafkaRequest, on connection: ClientConnectionID, deadline: Instant,
                                  expectsAnswer: Bool, makeRequest: (NodeID, UInt64) -> BrokerRequest) -> BrokerRequest? {
        guard let key = decoded.header.knownAPIKey, let state = connections[connection] else { return nil }
        let correlationID = nextBrokerCorrelationID
        nextBrokerCorrelationID += 1
        var sequence: UInt64?
        if expectsAnswer { sequence = openSlot(on: connection, header: decoded.header, deadline: deadline) }
        pendingAnswers[correlationID] = PendingAnswer(connection: connection, sequence: sequence, apiKey: key, request: decoded.body)
        return makeRequest(state.pseudoNodeID, correlationID)
    }

    private mutating func answerNow(_ response: KafkaResponse, header: KafkaRequestHeader, on connection: ClientConnectionID,
                                    now: Instant) {
        if connections[connection]?.slots.isEmpty == false { answersHeldForOrder += 1 }
        openSlot(on: connection, header: header, deadline: now, response: encodeKafkaResponse(response, for: header))
    }

    @discardableResult
    private mutating func openSlot(on connection: ClientConnectionID, header: KafkaRequestHeader, deadline: Instant,
                                   response: [UInt8]? = nil) -> UInt64 {
        let sequence = connections[connection]!.nextSequence
        connections[connection]!.nextSequence += 1
        connections[connection]!.slots.append(Slot(sequence: sequence, header: header, response: response, deadline: deadline))
        return sequence
    }

    /// Sends every answer at the front of the queue that is ready, in request order.
    private mutating func flush(_ connection: ClientConnectionID, effects: inout [NodeEffect]) {
        guard var state = connections[connection] else { return }
        var ready = 0
        while ready < state.slots.count, let response = state.slots[ready].response {
            effects.append(.reply(connection, response))
            ready += 1
        }
        if ready > 0 {
            state.slots.removeFirst(ready)
            connections[connection] = state
        }
    }

    private mutating func applyBackpressure(_ connection: ClientConnectionID, effects: inout [NodeEffect]) {
        guard let state = connections[connection] else { return }
        let inFlight = state.slots.count
        if !state.isReadingPaused && inFlight >= Self.maximumInFlightPerConnection {
            connections[connection]!.isReadingPaused = true
            effects.append(.pauseClientReads(connection))
        } else if state.isReadingPaused && inFlight <= Self.maximumInFlightPerConnection / 2 {
            connections[connection]!.isReadingPaused = false
            effects.append(.resumeClientReads(connection))
        }
    }

    private static func describe(_ error: KafkaRequestDecodeError) -> String {
        switch error {
        case let .unreadableHeader(reason): return "unreadable request header (\(reason))"
        case let .unsupported(header): return "unsupported API \(header.apiKey) version \(header.apiVersion)"
        case let .malformedBody(header, reason): return "malformed API \(header.apiKey) v\(header.apiVersion) request: \(reason)"
        }
    }
}
