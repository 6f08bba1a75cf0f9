import KafkaProtocol
import NodeKit
import SimWorld
import TernCore

// Client connections: what the simulator does for `openOutbound` / `sendOutbound` /
// `closeOutbound` (client nodes) and `reply` / `closeClient` / `pauseClientReads` /
// `resumeClientReads` (servers), how the segments travel (see `SimConnection`), and what process
// deaths and connection faults do to them.
extension Simulation {
    /// Open connections (and closed ones with segments still travelling) at once; more is a
    /// client bug (a connection leak), and the run stops with a violation.
    static let maximumConnections = 4_096
    /// Segments waiting in one direction of one connection.
    static let maximumSegmentsPerPipe = 4_096

    // MARK: Effects

    /// Carries out one client-connection effect of `host`'s node; false when it broke a bound
    /// (the run has a violation).
    func executeConnectionEffect(_ effect: NodeEffect, of host: SimulatedMachine) -> Bool {
        switch effect {
        case let .openOutbound(outboundID, destinationID):
            return open(outboundID, from: host, to: destinationID)
        case let .sendOutbound(outboundID, bytes):
            guard let connection = connection(of: host, outboundID), connection.isClientOpen else { return true }
            return send(bytes, on: connection, towardServer: true, from: host)
        case let .closeOutbound(outboundID):
            guard let connection = connection(of: host, outboundID), connection.isClientOpen else { return true }
            connection.isClientOpen = false
            return enqueue(.close, on: connection, towardServer: true)
        case let .reply(id, bytes):
            guard let connection = connections[id.rawValue], connection.isServerOpen, connection.server == host.index else { return true }
            return send(bytes, on: connection, towardServer: false, from: host)
        case let .closeClient(id):
            guard let connection = connections[id.rawValue], connection.isServerOpen, connection.server == host.index else { return true }
            // The contract: the node hears `clientDisconnected` for its own close too.
            push(.connectionEndClosed(connection: id.rawValue, serverEnd: true), at: now)
            return enqueue(.close, on: connection, towardServer: false)
        case let .pauseClientReads(id):
            connections[id.rawValue]?.isServerReadingPaused = true
            return true
        case let .resumeClientReads(id):
            guard let connection = connections[id.rawValue], connection.isServerReadingPaused else { return true }
            connection.isServerReadingPaused = false
            push(.connectionReadsResumed(connection: id.rawValue), at: now)
            return true
        default:
            preconditionFailure("\(effect) is not a client-connection effect")
        }
    }

    /// Splits size-prefixed frames, as the receiving shell's framing would, and sends each. Bytes
    /// that are not whole frames are a bug of the sending node.
    private func send(_ bytes: [UInt8], on connection: SimConnection, towardServer: Bool, from host: SimulatedMachine) -> Bool {
        guard let frames = KafkaFraming.splitFrames(bytes) else {
            recordViolation(.halt, node: host.id, "\(bytes.count) bytes sent on \(connection.id) do not split into whole frames")
            return false
        }
        for frame in frames {
            traceConnectionSend(host, connection, frame)
            guard enqueue(.frame(frame), on: connection, towardServer: towardServer) else { return false }
        }
        return true
    }

    private func connection(of host: SimulatedMachine, _ outboundID: OutboundConnectionID) -> SimConnection? {
        connectionByOutbound[OutboundEnd(client: host.index, outboundID: outboundID)].flatMap { connections[$0] }
    }

    private func open(_ outboundID: OutboundConnectionID, from host: SimulatedMachine, to destinationID: NodeID) -> Bool {
        let end = OutboundEnd(client: host.index, outboundID: outboundID)
        guard let destination = indexByID[destinationID], connectionByOutbound[end] == nil else {
            recordViolation(.halt, node: host.id, "openOutbound \(outboundID) to n\(destinationID): unknown node or a reused connection id")
            return false
        }
        guard connections.count < Self.maximumConnections else {
            recordViolation(.bound, node: host.id, "more than \(Self.maximumConnections) client connections open at once")
            return false
        }
        let id = ClientConnectionID(rawValue: nextConnectionID)
        nextConnectionID += 1
        let connection = SimConnection(id: id, outboundID: outboundID, client: host.index, server: destination,
                                       clientIncarnation: host.incarnation)
        connections[id.rawValue] = connection
        connectionByOutbound[end] = id.rawValue
        network.recordConnectionOpened()
        trace.record(now, .link(host.id, destinationID), .connection, id.rawValue) { "open \(id) \(outboundID)" }
        return enqueue(.open, on: connection, towardServer: true)
    }

    /// Puts a segment in the connection's pipe, due after the link's latency, and schedules the
    /// pipe's head if nothing is scheduled yet.
    func enqueue(_ segment: SimConnection.Segment, on connection: SimConnection, towardServer: Bool) -> Bool {
        let (source, destination) = connection.ends(towardServer: towardServer)
        guard connection.pipe(towardServer: towardServer).count < Self.maximumSegmentsPerPipe else {
            recordViolation(.bound, node: hosts[source].id, "more than \(Self.maximumSegmentsPerPipe) segments waiting on \(connection.id)")
            return false
        }
        let due = now + network.connectionSegmentLatency(from: source, to: destination)
        connection.modifyPipe(towardServer: towardServer) { $0.append(segment, due: due) }
        schedulePipe(connection, towardServer: towardServer)
        return true
    }

    private func schedulePipe(_ connection: SimConnection, towardServer: Bool, notBefore: Instant? = nil) {
        let pipe = connection.pipe(towardServer: towardServer)
        guard !pipe.isScheduled, !pipe.waitsForResume, let head = pipe.head else { return }
        connection.modifyPipe(towardServer: towardServer) { $0.isScheduled = true }
        push(.connectionArrival(connection: connection.id.rawValue, towardServer: towardServer),
             at: max(head.due, notBefore ?? now, now))
    }

    // MARK: Arrivals

    /// The head of one direction of a connection reached its end of the link.
    func handleConnectionArrival(_ key: UInt64, towardServer: Bool) {
        guard let connection = connections[key] else { return }
        connection.modifyPipe(towardServer: towardServer) { $0.isScheduled = false }
        guard let head = connection.pipe(towardServer: towardServer).head else { return }
        if connection.isBlackholed {
            connection.modifyPipe(towardServer: towardServer) { $0.clear() }
            forgetIfFinished(connection)
            return
        }
        let (source, destination) = connection.ends(towardServer: towardServer)
        if towardServer, let stalledUntil = connection.stalledUntil, now < stalledUntil {
            schedulePipe(connection, towardServer: true, notBefore: stalledUntil)
            return
        }
        guard network.carriesConnectionSegments(from: source, to: destination) else {
            schedulePipe(connection, towardServer: towardServer, notBefore: now + SimNetwork.retransmissionTimeout)
            return
        }
        let host = hosts[destination]
        let endIncarnation = towardServer ? connection.serverIncarnation : connection.clientIncarnation
        let endIsGone = host.status == .down || (endIncarnation.map { $0 != host.incarnation } ?? false)
        if endIsGone {
            refuse(connection, towardServer: towardServer, by: host, segment: head.segment)
            return
        }
        if host.status == .paused {
            connection.modifyPipe(towardServer: towardServer) { $0.waitsForResume = true }
            return
        }
        connection.modifyPipe(towardServer: towardServer) { $0.popHead() }
        if case .frame = head.segment { network.recordConnectionFrameDelivered() }
        if towardServer {
            arriveAtServer(head.segment, connection, host)
        } else {
            arriveAtClient(head.segment, connection, host)
        }
        schedulePipe(connection, towardServer: towardServer)
        forgetIfFinished(connection)
    }

    /// The destination's process is gone: its kernel answers with a reset if the machine is up
    /// (nothing comes back from a machine that is down), and the segments die.
    private func refuse(_ connection: SimConnection, towardServer: Bool, by host: SimulatedMachine, segment: SimConnection.Segment) {
        connection.modifyPipe(towardServer: towardServer) { $0.clear() }
        if towardServer { connection.isServerOpen = false } else { connection.isClientOpen = false }
        var answersWithReset = host.machineIsUp
        if case .close = segment { answersWithReset = false }
        if answersWithReset {
            network.recordConnectionRefused()
            _ = enqueue(.close, on: connection, towardServer: !towardServer)
        }
        forgetIfFinished(connection)
    }

    private func arriveAtServer(_ segment: SimConnection.Segment, _ connection: SimConnection, _ host: SimulatedMachine) {
        switch segment {
        case .open:
            connection.serverIncarnation = host.incarnation
            connection.isServerOpen = true
            deliver(.clientConnected(connection.id), to: host)
            _ = enqueue(.accepted, on: connection, towardServer: false)
        case let .frame(frame):
            guard connection.isServerOpen else { return }
            if connection.isServerReadingPaused {
                connection.framesAwaitingServerRead.append(frame)
            } else {
                deliver(.clientRequest(connection.id, frame), to: host)
            }
        case .close:
            guard connection.isServerOpen else { return }
            connection.isServerOpen = false
            deliver(.clientDisconnected(connection.id), to: host)
        case .accepted:
            preconditionFailure("a server never receives an accept")
        }
    }

    private func arriveAtClient(_ segment: SimConnection.Segment, _ connection: SimConnection, _ host: SimulatedMachine) {
        guard connection.isClientOpen else { return }
        switch segment {
        case .accepted:
            deliver(.outboundConnected(connection.outboundID), to: host)
        case let .frame(frame):
            deliver(.outboundResponse(connection.outboundID, frame), to: host)
        case .close:
            connection.isClientOpen = false
            deliver(.outboundClosed(connection.outboundID), to: host)
        case .open:
            preconditionFailure("a client never receives an open")
        }
    }

    /// One end closed without a segment travelling (its own close, a reset): the end's process
    /// hears it, if it still runs.
    func handleConnectionEndClosed(_ key: UInt64, serverEnd: Bool) {
        guard let connection = connections[key] else { return }
        let host = hosts[serverEnd ? connection.server : connection.client]
        let incarnation = serverEnd ? connection.serverIncarnation : connection.clientIncarnation
        defer { forgetIfFinished(connection) }
        guard host.status == .running, incarnation == host.incarnation else {
            if serverEnd { connection.isServerOpen = false } else { connection.isClientOpen = false }
            return
        }
        if serverEnd {
            guard connection.isServerOpen else { return }
            connection.isServerOpen = false
            deliver(.clientDisconnected(connection.id), to: host)
        } else {
            guard connection.isClientOpen else { return }
            connection.isClientOpen = false
            deliver(.outboundClosed(connection.outboundID), to: host)
        }
    }

    /// The server resumed reading: what waited is read, in order, until it pauses again.
    func handleConnectionReadsResumed(_ key: UInt64) {
        guard let connection = connections[key] else { return }
        let host = hosts[connection.server]
        while !connection.isServerReadingPaused, connection.isServerOpen, violation == nil, host.status == .running,
              connection.serverIncarnation == host.incarnation, !connection.framesAwaitingServerRead.isEmpty {
            deliver(.clientRequest(connection.id, connection.framesAwaitingServerRead.removeFirst()), to: host)
        }
    }

    private func forgetIfFinished(_ connection: SimConnection) {
        guard connection.isFinished else { return }
        connections[connection.id.rawValue] = nil
        connectionByOutbound[OutboundEnd(client: connection.client, outboundID: connection.outboundID)] = nil
    }

    // MARK: Processes and faults

    /// `host`'s process ended. Its ends close; with the machine still up its kernel sends each
    /// peer a FIN, otherwise the peers are left half-open.
    func connectionsLoseProcess(_ host: SimulatedMachine) {
        let machineIsUp = host.machineIsUp
        for connection in connections(touching: host.index) {
            if connection.server == host.index, connection.isServerOpen {
                connection.isServerOpen = false
                if machineIsUp { _ = enqueue(.close, on: connection, towardServer: false) }
            }
            if connection.client == host.index, connection.isClientOpen {
                connection.isClientOpen = false
                if machineIsUp { _ = enqueue(.close, on: connection, towardServer: true) }
            }
            connection.framesAwaitingServerRead.removeAll()
            forgetIfFinished(connection)
        }
    }

    /// `host` resumed: pipes whose head waited for it move on.
    func resumeConnectionPipes(toward host: SimulatedMachine) {
        for connection in connections(touching: host.index) {
            for towardServer in [true, false] where connection.ends(towardServer: towardServer).destination == host.index {
                guard connection.pipe(towardServer: towardServer).waitsForResume else { continue }
                connection.modifyPipe(towardServer: towardServer) { $0.waitsForResume = false }
                schedulePipe(connection, towardServer: towardServer)
            }
        }
    }

    /// Applies a connection fault to every connection with an end on `node`; the number hit.
    func applyConnectionFault(_ action: FaultAction) -> Int {
        let hit: [SimConnection]
        switch action {
        case let .resetConnections(node):
            hit = connections(touching: host(node).index).filter { $0.isClientOpen || $0.isServerOpen }
            for connection in hit {
                connection.toServer.clear()
                connection.toClient.clear()
                connection.framesAwaitingServerRead.removeAll()
                push(.connectionEndClosed(connection: connection.id.rawValue, serverEnd: true), at: now)
                push(.connectionEndClosed(connection: connection.id.rawValue, serverEnd: false), at: now)
            }
        case let .blackholeConnections(node):
            hit = connections(touching: host(node).index).filter { !$0.isBlackholed && ($0.isClientOpen || $0.isServerOpen) }
            for connection in hit { connection.isBlackholed = true }
        case let .stallConnections(node, duration):
            hit = connections(touching: host(node).index).filter { $0.server == host(node).index && $0.isClientOpen }
            for connection in hit { connection.stalledUntil = now + duration }
        default:
            preconditionFailure("\(action) is not a connection fault")
        }
        return hit.count
    }

    /// In connection order (never dictionary order).
    private func connections(touching index: Int) -> [SimConnection] {
        connections.keys.sorted().compactMap { connections[$0] }.filter { $0.client == index || $0.server == index }
    }

    private func traceConnectionSend(_ host: SimulatedMachine, _ connection: SimConnection, _ frame: [UInt8]) {
        let digest = payloadDigest(frame)
        trace.record(now, .node(host.id), .connection, connection.id.rawValue, UInt64(frame.count), digest) {
            "send \(connection.id) bytes=\(frame.count) digest=\(hexadecimal(digest))"
        }
    }
}
