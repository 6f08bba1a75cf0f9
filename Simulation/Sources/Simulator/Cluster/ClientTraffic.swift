import KafkaProtocol
import NodeKit
import SimWorld
import TernCore

/// One request a client sent on a connection to a broker, as checkers name it: the broker, and the
/// connection and Kafka correlation id packed in one word (unique per broker for the run).
struct ClientExchange: Hashable {
    let broker: NodeID
    let client: NodeID
    /// The connection id in the high 32 bits, the request's correlation id in the low ones.
    let correlation: UInt64
}

/// What checkers see of the Kafka traffic between clients and a broker's front door: the data-plane
/// requests delivered to the broker (`clientRequest` events), decoded as the broker decodes them,
/// and the answers it sends back (`reply` effects), decoded at the version their request asked for.
/// Only the APIs a checker asks for are remembered; a request is forgotten when answered, when its
/// connection closes, or when its broker restarts.
struct ClientTraffic {
    private struct Pending {
        let client: NodeID
        let apiKey: KafkaAPIKey
        let version: Int16
        let incarnation: Int
    }

    let apis: [KafkaAPIKey]
    private var pending: [ClientExchange.Key: Pending] = [:]

    static let maximumPending = 100_000

    init(apis: [KafkaAPIKey]) { self.apis = apis }

    /// The data-plane request the event delivered to a broker, if it is one of `apis` and expects
    /// an answer (it is then remembered for decoding the answer).
    mutating func request(in delivered: DeliveredEvent, simulation: SimulationView) -> (ClientExchange, KafkaRequest)? {
        switch delivered.event {
        case let .clientRequest(connection, frame):
            // The API key leads the frame: requests of other APIs are not decoded at all.
            guard frame.count >= 2, let apiKey = KafkaAPIKey(rawValue: Int16(bitPattern: UInt16(frame[0]) << 8 | UInt16(frame[1]))),
                  apis.contains(apiKey), let decoded = try? decodeKafkaRequest(frame[...]),
                  let client = simulation.client(of: connection) else { return nil }
            let request = decoded.body
            let key = ClientExchange.Key(broker: delivered.nodeID, connection: connection, correlationID: decoded.header.correlationID)
            if case let .produce(produce) = request, produce.acks == 0 { return (key.exchange(client: client), request) }
            precondition(pending.count < Self.maximumPending, "more than \(Self.maximumPending) client requests never answered")
            pending[key] = Pending(client: client, apiKey: apiKey, version: decoded.header.apiVersion, incarnation: delivered.incarnation)
            return (key.exchange(client: client), request)
        case let .clientDisconnected(connection):
            pending = pending.filter { $0.key.broker != delivered.nodeID || $0.key.connection != connection }
            return nil
        case .start:
            // A new process: the old one's requests die unanswered with it.
            pending = pending.filter { $0.key.broker != delivered.nodeID || $0.value.incarnation == delivered.incarnation }
            return nil
        default:
            return nil
        }
    }

    /// The answers among the event's effects to requests remembered by `request(in:)`, up to a
    /// `halt` or `exit` (the shell carries out nothing after it).
    mutating func answers(in delivered: DeliveredEvent) -> [(ClientExchange, KafkaResponse)] {
        var answers: [(ClientExchange, KafkaResponse)] = []
        for effect in delivered.effects {
            switch effect {
            case .halt, .exit: return answers
            default: break
            }
            // Only frames answering a remembered request are decoded (or copied).
            guard !pending.isEmpty, case let .reply(connection, bytes) = effect, let frames = KafkaFraming.frameRanges(bytes) else { continue }
            for frame in frames {
                guard let correlationID = KafkaFraming.correlationID(ofResponse: bytes, at: frame.lowerBound) else { continue }
                let key = ClientExchange.Key(broker: delivered.nodeID, connection: connection, correlationID: correlationID)
                guard let request = pending.removeValue(forKey: key),
                      let decoded = try? decodeKafkaResponse(bytes[frame], apiKey: request.apiKey, apiVersion: request.version) else { continue }
                answers.append((key.exchange(client: request.client), decoded.response))
            }
        }
        return answers
    }
}

extension ClientExchange {
    struct Key: Hashable {
        let broker: NodeID
        let connection: ClientConnectionID
        let correlationID: Int32

        func exchange(client: NodeID) -> ClientExchange {
            ClientExchange(broker: broker, client: client,
                           correlation: connection.rawValue << 32 | UInt64(UInt32(bitPattern: correlationID)))
        }
    }
}
