import Controller
import NodeKit
import TernCore

/// Carries clients' admin requests (CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders,
/// ...) to the active controller and their answers back, as a Kafka broker's forwarding manager
/// does: a client may send them to any broker. A request is sent again (to the next controller, or
/// the one named in a refusal) until it is answered or its deadline passes; then the client hears
/// `notController` and decides itself whether to retry.
struct AdminForwarder {
    struct Forwarded {
        let client: NodeID
        let clientCorrelationID: UInt64
        let request: ControllerRequest
        let deadline: Instant
        /// The attempt in flight, if any, and when it was sent.
        var attempt: (correlationID: UInt64, sentAt: Instant)?
        var notBefore: Instant
    }

    /// Forwarded correlation ids carry this bit, so answers to them are never taken for answers to
    /// the control plane's own requests or the data plane's (which has the top bit).
    static let correlationIDFlag: UInt64 = 1 << 62
    static func ownsCorrelationID(_ correlationID: UInt64) -> Bool {
        correlationID & correlationIDFlag != 0 && correlationID & BrokerDataPlane.correlationIDFlag == 0
    }

    var requestTimeout: Duration
    var retryBackoff: Duration
    /// How long a client's request may take before it is given up.
    var deadline: Duration = .seconds(30)
    /// Requests forwarded at once; past it, clients are refused at once.
    var maximumInFlight = 1024

    /// In arrival order (ids increase).
    private var forwarded: [UInt64: Forwarded] = [:]
    private var nextID: UInt64 = 1
    /// Attempt correlation id → forwarded request id.
    private var attempts: [UInt64: UInt64] = [:]
    private var nextAttempt: UInt64

    init(requestTimeout: Duration, retryBackoff: Duration, firstAttempt: UInt64) {
        self.requestTimeout = requestTimeout
        self.retryBackoff = retryBackoff
        self.nextAttempt = firstAttempt
    }

    mutating func accept(_ request: ControllerRequest, correlationID: UInt64, from client: NodeID, controller: NodeID,
                         now: Instant, effects: inout [NodeEffect]) {
        guard forwarded.count < maximumInFlight else {
            effects.append(.send(to: client, bytes: PeerMessage.notController(correlationID: correlationID, leaderHint: nil).encoded()))
            return
        }
        let id = nextID
        nextID += 1
        forwarded[id] = Forwarded(client: client, clientCorrelationID: correlationID, request: request,
                                  deadline: now + deadline, attempt: nil, notBefore: now)
        send(id, to: controller, now: now, effects: &effects)
    }

    /// Relays the controller's answer. False when the correlation id is not a forwarded one.
    mutating func handleResponse(correlationID: UInt64, response: ControllerResponse, effects: inout [NodeEffect]) -> Bool {
        guard Self.ownsCorrelationID(correlationID) else { return false }
        guard let id = attempts[correlationID], let entry = finish(id) else { return true }
        effects.append(.send(to: entry.client, bytes: PeerMessage.controllerResponse(
            correlationID: entry.clientCorrelationID, response: response).encoded()))
        return true
    }

    /// The controller asked is not the active one: try again after a pause (the caller has turned
    /// to the controller it names). False when the correlation id is not a forwarded one.
    mutating func handleNotController(correlationID: UInt64, now: Instant) -> Bool {
        guard Self.ownsCorrelationID(correlationID) else { return false }
        if let id = attempts[correlationID], forwarded[id]?.attempt?.correlationID == correlationID {
            forwarded[id]?.attempt = nil
            forwarded[id]?.notBefore = now + retryBackoff
        }
        return true
    }

    /// Sends again what is due, and gives up on what ran out of time.
    mutating func tick(controller: NodeID, now: Instant, effects: inout [NodeEffect]) {
        for id in forwarded.keys.sorted() {
            guard let entry = forwarded[id] else { continue }
            if now >= entry.deadline {
                _ = finish(id)
                effects.append(.send(to: entry.client, bytes: PeerMessage.notController(
                    correlationID: entry.clientCorrelationID, leaderHint: nil).encoded()))
            } else if let attempt = entry.attempt {
                if now - attempt.sentAt >= requestTimeout { send(id, to: controller, now: now, effects: &effects) }
            } else if now >= entry.notBefore {
                send(id, to: controller, now: now, effects: &effects)
            }
        }
    }

    private mutating func send(_ id: UInt64, to controller: NodeID, now: Instant, effects: inout [NodeEffect]) {
        guard let entry = forwarded[id] else { return }
        // A fresh correlation per attempt; an answer to an earlier attempt still counts while the
        // request waits, so every attempt stays mapped until the request is done.
        let correlationID = Self.correlationIDFlag | nextAttempt
        nextAttempt += 1
        attempts[correlationID] = id
        forwarded[id]?.attempt = (correlationID, now)
        effects.append(.send(to: controller, bytes: PeerMessage.controllerRequest(correlationID: correlationID,
                                                                                  request: entry.request).encoded()))
    }

    private mutating func finish(_ id: UInt64) -> Forwarded? {
        guard let entry = forwarded.removeValue(forKey: id) else { return nil }
        attempts = attempts.filter { $0.value != id }
        return entry
    }
}
