import NodeKit
import TernCore

/// A TCP connection in the simulator, from a client node (`openOutbound`) to a server node's
/// client listener, carrying whole Kafka frames. Each direction is a FIFO pipe: a segment leaves
/// after the link's latency (plus retransmission timeouts for losses) and never before the one
/// sent ahead of it; a partitioned or clogged link holds the pipe's head until it heals, as TCP
/// retransmits. A process that dies with the machine up has its kernel close its connections
/// (the peer hears a FIN); a machine that crashes or loses power closes nothing, so its peers
/// stay half-open until they time out or send to it and are reset. Faults the nemesis injects:
/// reset (both ends hear at once), black hole (both directions silently drop, neither end told:
/// half-open on both sides), and stall (the client's next frames stop mid-frame for a while).
package final class SimConnection {
    package enum Segment {
        /// The client's SYN; the server's kernel answers `accepted` when its process accepts.
        case open
        case accepted
        case frame([UInt8])
        /// FIN or RST: the sender's end is gone.
        case close
    }

    package struct Pipe {
        /// Segments in send order with the time each may arrive (never earlier than the one ahead).
        package var segments: [(due: Instant, segment: Segment)] = []
        package var headIndex = 0
        /// An arrival for the pipe's head is in the event queue.
        package var isScheduled = false
        /// The head reached a paused process; the resume delivers it.
        package var waitsForResume = false

        package var isEmpty: Bool { headIndex == segments.count }
        package var count: Int { segments.count - headIndex }
        package var head: (due: Instant, segment: Segment)? { isEmpty ? nil : segments[headIndex] }

        package mutating func append(_ segment: Segment, due: Instant) {
            let lastDue = segments.last?.due ?? due
            segments.append((max(due, lastDue), segment))
        }

        package mutating func popHead() {
            headIndex += 1
            if headIndex == segments.count {
                segments.removeAll(keepingCapacity: true)
                headIndex = 0
            }
        }

        package mutating func clear() {
            segments.removeAll()
            headIndex = 0
            waitsForResume = false
        }
    }

    /// The server's name for the connection, also the simulator's key (never reused in a run).
    package let id: ClientConnectionID
    /// The client's name for it.
    package let outboundID: OutboundConnectionID
    /// Node indices.
    package let client: Int
    package let server: Int
    /// The incarnation of each end's process; a segment reaching a later one is refused.
    package let clientIncarnation: Int
    package var serverIncarnation: Int?
    package var isClientOpen = true
    package var isServerOpen = false
    package var toServer = Pipe()
    package var toClient = Pipe()
    /// The server asked to stop reading (back-pressure): frames wait here, in order.
    package var isServerReadingPaused = false
    package var framesAwaitingServerRead: [[UInt8]] = []
    /// Everything on the connection vanishes, both ways, and nobody is told.
    package var isBlackholed = false
    /// The client's frames stop mid-frame until then.
    package var stalledUntil: Instant?

    package init(id: ClientConnectionID, outboundID: OutboundConnectionID, client: Int, server: Int, clientIncarnation: Int) {
        self.id = id
        self.outboundID = outboundID
        self.client = client
        self.server = server
        self.clientIncarnation = clientIncarnation
    }

    package var isFinished: Bool { !isClientOpen && !isServerOpen && toServer.isEmpty && toClient.isEmpty }

    package func pipe(towardServer: Bool) -> Pipe { towardServer ? toServer : toClient }

    /// The node indices a segment travels between: client to server, or back.
    package func ends(towardServer: Bool) -> (source: Int, destination: Int) {
        towardServer ? (client, server) : (server, client)
    }

    package func modifyPipe(towardServer: Bool, _ change: (inout Pipe) -> Void) {
        if towardServer { change(&toServer) } else { change(&toClient) }
    }
}

/// The client end's key: which node, and its name for the connection.
package struct OutboundEnd: Hashable {
    package let client: Int
    package let outboundID: OutboundConnectionID

    package init(client: Int, outboundID: OutboundConnectionID) {
        self.client = client
        self.outboundID = outboundID
    }
}
