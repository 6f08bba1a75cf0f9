import KafkaProtocol
import NodeKit
import SimWorld
import TernCore

/// A misbehaving client beside a well-behaved one, for showing that bad input costs only its own
/// connection: every `interval` it opens a fresh connection to the next broker and sends one
/// malformed request frame (random bytes, an unknown API key, or a Produce header with its body
/// cut short), while it keeps one control connection per broker on which it asks ApiVersions
/// (a real request) after each malformed frame. It counts the malformed connections the brokers
/// closed and the control answers that came back after such a close.
public final class MalformedFrameClientNode: NodeStateMachine {
    public let nodeID: NodeID
    public var tickInterval: Duration { .milliseconds(100) }

    /// Malformed frames sent, and the connections they went on that the broker closed.
    public private(set) var malformedFramesSent = 0
    public private(set) var malformedConnectionsClosed = 0
    /// Control answers (ApiVersions) received on a control connection after the broker had
    /// closed a malformed connection.
    public private(set) var controlAnswersAfterAClose = 0
    /// Malformed connections the broker answered instead of closing: must stay zero.
    public private(set) var malformedFramesAnswered = 0
    /// Control connections that closed (only a connection fault should close one).
    public private(set) var controlConnectionsClosed = 0

    private enum Purpose { case malformed, control(broker: NodeID) }

    private let brokers: [NodeID]
    private let interval: Duration
    private var random: DeterministicRandom
    private var nextConnectionID: UInt64 = 1
    private var purposes: [OutboundConnectionID: Purpose] = [:]
    private var controlConnections: [NodeID: OutboundConnectionID] = [:]
    private var nextBroker = 0
    private var nextAttemptAt = Instant.zero
    private var nextCorrelationID: Int32 = 1
    private var closesSinceLastControlAnswer = 0

    init(environment: NodeEnvironment, brokers: [NodeID], interval: Duration = .milliseconds(700)) {
        nodeID = environment.nodeID
        self.brokers = brokers
        self.interval = interval
        random = environment.random.stream("malformed-frames")
    }

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        switch event {
        case .start:
            nextAttemptAt = now + .seconds(5)
        case .tick:
            guard now >= nextAttemptAt, !brokers.isEmpty else { return }
            nextAttemptAt = now + interval
            let broker = brokers[nextBroker % brokers.count]
            nextBroker += 1
            if controlConnections[broker] == nil { open(.control(broker: broker), to: broker, effects: &effects) }
            open(.malformed, to: broker, effects: &effects)
        case let .outboundConnected(id):
            switch purposes[id] {
            case .malformed?:
                malformedFramesSent += 1
                effects.append(.sendOutbound(id, malformedFrame()))
            case .control?:
                askAPIVersions(on: id, effects: &effects)
            case nil:
                break
            }
        case let .outboundResponse(id, _):
            switch purposes[id] {
            case .malformed?:
                malformedFramesAnswered += 1
            case .control?:
                if closesSinceLastControlAnswer > 0 {
                    controlAnswersAfterAClose += 1
                    closesSinceLastControlAnswer = 0
                }
            case nil:
                break
            }
        case let .outboundClosed(id):
            switch purposes.removeValue(forKey: id) {
            case .malformed?:
                malformedConnectionsClosed += 1
                closesSinceLastControlAnswer += 1
                // Ask on every control connection: each broker must still answer its good client.
                for broker in controlConnections.keys.sorted() { askAPIVersions(on: controlConnections[broker]!, effects: &effects) }
            case let .control(broker)?:
                controlConnectionsClosed += 1
                controlConnections[broker] = nil  // the next tick opens another
            case nil:
                break
            }
        case .message, .syncCompleted, .shutdownRequested, .clientConnected, .clientRequest, .clientDisconnected:
            break
        }
    }

    private func open(_ purpose: Purpose, to broker: NodeID, effects: inout [NodeEffect]) {
        let id = OutboundConnectionID(rawValue: nextConnectionID)
        nextConnectionID += 1
        purposes[id] = purpose
        if case let .control(broker) = purpose { controlConnections[broker] = id }
        effects.append(.openOutbound(id, to: broker))
    }

    private func askAPIVersions(on id: OutboundConnectionID, effects: inout [NodeEffect]) {
        let header = KafkaRequestHeader(apiKey: KafkaAPIKey.apiVersions.rawValue, apiVersion: 3,
                                        correlationID: nextCorrelationID, clientID: "malformed-frame-client")
        nextCorrelationID += 1
        var request = KafkaWire.ApiVersionsRequest()
        request.clientSoftwareName = "tern-simulator"
        request.clientSoftwareVersion = "1"
        effects.append(.sendOutbound(id, encodeKafkaRequest(.apiVersions(request), header: header)))
    }

    /// One size-prefixed frame a broker must refuse.
    private func malformedFrame() -> [UInt8] {
        var body: [UInt8]
        switch random.int(in: 0...2) {
        case 0:
            body = (0..<random.int(in: 0...64)).map { _ in UInt8(truncatingIfNeeded: random.next(below: 256)) }
            if !body.isEmpty { body[0] |= 0x80 }  // a negative API key: never a request by chance
        case 1:
            // API key 32767 exists in no Kafka version.
            body = [0x7F, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0xFF, 0xFF]
        default:
            let header = KafkaRequestHeader(apiKey: KafkaAPIKey.produce.rawValue, apiVersion: 9, correlationID: 7, clientID: "bad")
            var produce = KafkaWire.ProduceRequest()
            produce.acks = -1
            produce.timeoutMs = 1_000
            let whole = encodeKafkaRequest(.produce(produce), header: header)
            body = Array(whole[4..<(whole.count - 2)])  // the last fields cut off
        }
        let size = UInt32(body.count)
        return [UInt8(size >> 24), UInt8(size >> 16 & 0xFF), UInt8(size >> 8 & 0xFF), UInt8(size & 0xFF)] + body
    }
}
