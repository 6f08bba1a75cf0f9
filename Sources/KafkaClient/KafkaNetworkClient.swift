// Glibc: this module is a shell, like Runtime — the tools' real sockets and clocks. The deterministic
// client logic lives in Client (sans-IO); the simulator never links this module.
#if canImport(Glibc)
import Posix
import Glibc
#endif
import Client
import KafkaProtocol
import TernCore

/// Connections to a cluster's brokers, by node id, blocking only inside `poll` and never longer
/// than asked. Bootstrap addresses get pseudo node ids -1, -2, … (never a real node id, as in
/// Kafka's clients) until Metadata names the real brokers.
///
/// Single-threaded: one tool drives one instance.
public final class KafkaNetworkClient {
    public struct Configuration: Sendable {
        public var clientID: String
        public var connectTimeout: Duration
        /// Wait after a failed connection before the next attempt to the same node.
        public var reconnectBackoff: Duration
        /// Requests waiting or in flight on one connection.
        public var maximumQueuedRequestsPerConnection: Int

        public init(clientID: String = "tern", connectTimeout: Duration = .seconds(10), reconnectBackoff: Duration = .milliseconds(100),
                    maximumQueuedRequestsPerConnection: Int = 1_024) {
            precondition(maximumQueuedRequestsPerConnection > 0, "a connection must take at least one request")
            self.clientID = clientID
            self.connectTimeout = connectTimeout
            self.reconnectBackoff = reconnectBackoff
            self.maximumQueuedRequestsPerConnection = maximumQueuedRequestsPerConnection
        }
    }

    public let configuration: Configuration
    public let bootstrapNodes: [NodeID]
    private var addresses: [NodeID: BrokerAddress] = [:]
    private var connections: [NodeID: BrokerConnection] = [:]
    /// When each node's last connection failed, for the reconnect backoff.
    private var lastFailureNanoseconds: [NodeID: Int64] = [:]
    private var pendingEvents: [NetworkEvent] = []
    private var scratch = [UInt8](repeating: 0, count: 256 * 1024)

    public init(bootstrap: [BrokerAddress], configuration: Configuration = Configuration()) {
        precondition(!bootstrap.isEmpty, "a client needs at least one bootstrap address")
        self.configuration = configuration
        bootstrapNodes = bootstrap.indices.map { NodeID(Int32(-1 - $0)) }
        for (node, address) in zip(bootstrapNodes, bootstrap) { addresses[node] = address }
    }

    deinit { closeAll() }

    public func address(of node: NodeID) -> BrokerAddress? { addresses[node] }

    /// Learns (or changes) a broker's address; a connection to its old address is closed.
    public func setAddress(_ address: BrokerAddress, for node: NodeID) {
        guard addresses[node] != address else { return }
        addresses[node] = address
        if let connection = connections.removeValue(forKey: node) {
            connection.fail(.connectionLost(connection.address, reason: "the broker's address changed"), events: &pendingEvents)
        }
    }

    /// Learns every broker a Metadata answer names.
    public func learnBrokers(_ brokers: [KafkaWire.MetadataResponse.MetadataResponseBroker]) {
        for broker in brokers where broker.nodeId >= 0 {
            guard let port = UInt16(exactly: broker.port), port > 0, !broker.host.isEmpty else { continue }
            setAddress(BrokerAddress(host: broker.host, port: port), for: broker.nodeID)
        }
    }

    /// The versions the node's broker advertised, once its connection finished the handshake.
    public func apiVersions(of node: NodeID) -> BrokerAPIVersions? { connections[node]?.apiVersions }

    /// Queues a request; its outcome comes back from `poll` as exactly one event.
    public func send(_ request: OutgoingRequest, to node: NodeID) {
        let now = Clocks.monotonicNanoseconds()
        guard let connection = connection(to: node, nowNanoseconds: now) else {
            pendingEvents.append(.failed(token: request.token, error: .unknownNode(node)))
            return
        }
        connection.enqueue(request, nowNanoseconds: now, events: &pendingEvents)
        // Write at once: waiting for the next poll would add a round of latency to every request.
        connection.flush(events: &pendingEvents)
        if connection.isClosed { connections.removeValue(forKey: node) }
    }

    /// Waits up to `timeout` for something to happen and returns what did (possibly nothing).
    public func poll(timeout: Duration) -> [NetworkEvent] {
        var now = Clocks.monotonicNanoseconds()
        var events = pendingEvents
        pendingEvents.removeAll()
        advanceTimers(nowNanoseconds: now, events: &events)

        var nodes: [NodeID] = []
        var descriptors: [pollfd] = []
        var deadline = now + max(timeout.nanoseconds, 0)
        for node in connections.keys.sorted() {
            let connection = connections[node]!
            if let connectionDeadline = connection.nextDeadlineNanoseconds { deadline = min(deadline, connectionDeadline) }
            guard let socket = connection.socket else { continue }
            var interest = Int16(POLLIN)
            if connection.isConnecting || connection.hasPendingOutput { interest |= Int16(POLLOUT) }
            nodes.append(node)
            descriptors.append(pollfd(fd: socket.descriptor, events: interest, revents: 0))
        }
        // Something already happened: look without waiting.
        let waitNanoseconds = events.isEmpty ? max(deadline - now, 0) : 0
        // Round up so a deadline 0.4 ms away does not become a busy loop of zero-timeout polls.
        pollDescriptors(&descriptors, timeoutMilliseconds: Int32(min((waitNanoseconds + 999_999) / 1_000_000, 60_000)))
        now = Clocks.monotonicNanoseconds()

        for (node, descriptor) in zip(nodes, descriptors) where descriptor.revents != 0 {
            guard let connection = connections[node], connection.socket?.descriptor == descriptor.fd else { continue }
            let revents = Int32(descriptor.revents)
            if connection.isConnecting {
                connection.connectProgressed(nowNanoseconds: now, events: &events)
                connection.flush(events: &events)
                continue
            }
            if revents & Int32(POLLOUT) != 0 { connection.flush(events: &events) }
            if revents & (Int32(POLLIN) | Int32(POLLHUP) | Int32(POLLERR)) != 0 {
                connection.readAvailable(scratch: &scratch, nowNanoseconds: now, events: &events)
            }
        }
        advanceTimers(nowNanoseconds: now, events: &events)
        for node in connections.keys.sorted() where connections[node]!.isClosed {
            connections.removeValue(forKey: node)
            lastFailureNanoseconds[node] = now
        }
        events.append(contentsOf: pendingEvents)
        pendingEvents.removeAll()
        return events
    }

    /// Closes every connection; their requests fail with `connectionLost` at the next poll.
    public func closeAll() {
        for node in connections.keys.sorted() {
            connections[node]!.fail(.connectionLost(connections[node]!.address, reason: "closed by the client"), events: &pendingEvents)
        }
        connections.removeAll()
    }

    private func advanceTimers(nowNanoseconds: Int64, events: inout [NetworkEvent]) {
        for node in connections.keys.sorted() {
            let connection = connections[node]!
            connection.advanceTimers(nowNanoseconds: nowNanoseconds, events: &events)
            connection.flush(events: &events)
            if connection.isClosed {
                connections.removeValue(forKey: node)
                lastFailureNanoseconds[node] = nowNanoseconds
            }
        }
    }

    private func connection(to node: NodeID, nowNanoseconds: Int64) -> BrokerConnection? {
        if let existing = connections[node], !existing.isClosed { return existing }
        guard let address = addresses[node] else { return nil }
        let notBefore = (lastFailureNanoseconds[node] ?? Int64.min / 2) + configuration.reconnectBackoff.nanoseconds
        let connection = BrokerConnection(node: node, address: address, clientID: configuration.clientID,
                                          connectTimeout: configuration.connectTimeout,
                                          maximumQueuedRequests: configuration.maximumQueuedRequestsPerConnection,
                                          notBeforeNanoseconds: notBefore)
        connections[node] = connection
        // Start connecting now when no backoff applies, so the request can go out on this call.
        connection.advanceTimers(nowNanoseconds: nowNanoseconds, events: &pendingEvents)
        return connection
    }
}
