import Glibc
import Posix
import TernCore

/// Settings of the internal (controller and replication) transport.
public struct PeerTransportConfiguration: Sendable {
    /// Largest peer frame accepted (metadata batches and replication fetch answers).
    public var maximumFrameBytes = 128 * 1024 * 1024
    /// Bytes queued per connection before further messages to that peer are dropped (the peer
    /// protocols tolerate loss and retry; blocking would let two stuck peers deadlock).
    public var maximumOutputBytes = 64 * 1024 * 1024
    /// First and largest pause between connection attempts to an unreachable peer.
    public var initialReconnectBackoff: Duration = .milliseconds(50)
    public var maximumReconnectBackoff: Duration = .seconds(2)
    /// A connect, or a hello from the other side, that takes longer than this fails.
    public var handshakeTimeout: Duration = .seconds(5)
    /// Connections accepted from peers at most (each peer opens one; the rest are refused).
    public var maximumInboundConnections = 256

    public init() {}
}

/// Counters of the peer transport, for tests and logs.
public struct PeerTransportStatistics: Sendable, Equatable {
    public var messagesSent = 0
    public var messagesReceived = 0
    /// Messages dropped: peer unreachable (no address, backing off) or its queue full.
    public var messagesDropped = 0
    public var connectionsOpened = 0
    public var handshakesRejected = 0
}

/// The first frame each side sends on an internal connection: who it is and which cluster it
/// belongs to, so a node never takes messages from another cluster's process that happens to
/// reuse a port.
public struct PeerHello: Sendable, Equatable {
    public static let magic: UInt32 = 0x5445_524E  // "TERN"
    public static let protocolVersion: UInt16 = 1
    /// Longest cluster id a hello carries (Kafka cluster ids are 22 characters).
    public static let maximumClusterIDBytes = 255

    public var clusterID: String
    public var nodeID: NodeID

    public init(clusterID: String, nodeID: NodeID) {
        precondition(clusterID.utf8.count <= Self.maximumClusterIDBytes, "cluster id longer than \(Self.maximumClusterIDBytes) bytes")
        self.clusterID = clusterID
        self.nodeID = nodeID
    }

    public func encoded() -> [UInt8] {
        var writer = ByteWriter()
        writer.writeInteger(Self.magic)
        writer.writeInteger(Self.protocolVersion)
        let clusterBytes = Array(clusterID.utf8)
        writer.writeInteger(UInt16(clusterBytes.count))
        writer.writeBytes(clusterBytes)
        writer.writeInt32(nodeID.rawValue)
        return writer.take()
    }

    public enum DecodeFailure: Error, Equatable {
        case malformed
        case wrongMagic
        case unsupportedVersion(UInt16)
    }

    public init(decoding bytes: [UInt8]) throws(DecodeFailure) {
        var reader = ByteReader(bytes)
        guard let magic = try? reader.readInteger(UInt32.self) else { throw .malformed }
        guard magic == Self.magic else { throw .wrongMagic }
        guard let version = try? reader.readInteger(UInt16.self) else { throw .malformed }
        guard version == Self.protocolVersion else { throw .unsupportedVersion(version) }
        // The length is checked before the bytes are read, so a hello never allocates more than
        // the limit.
        guard let length = try? reader.readInteger(UInt16.self), Int(length) <= Self.maximumClusterIDBytes,
              let clusterBytes = try? reader.readBytes(Int(length)),
              let node = try? reader.readInt32(), node >= 0, reader.isAtEnd else { throw .malformed }
        self.init(clusterID: String(decoding: clusterBytes, as: UTF8.self), nodeID: NodeID(node))
    }
}

/// Node-to-node messaging over TCP: the internal listener plus connections to peers, framed as
/// `int32 size | PeerMessage bytes` after a hello in each direction.
///
/// Sending to node X uses any connection with X whose hello has been exchanged (either
/// direction), else a connection being opened to X, else opens one to `addressOf(X)` unless X is
/// backing off after a failure. A message that cannot be queued is dropped: Raft, metadata
/// fetches and replication all retry. Messages to this node's own id are delivered back locally.
public final class PeerTransport {
    public let localNodeID: NodeID
    public let clusterID: String
    public let configuration: PeerTransportConfiguration
    public private(set) var statistics = PeerTransportStatistics()
    /// Where the internal listener listens (with the real port when 0 was asked).
    public var listenAddress: SocketAddress { listener.address }

    // Strong: the loop must outlive every descriptor registered with it (deregistration in deinit).
    private let loop: EventLoop
    private let listener: TCPListener
    /// Where node X's internal listener is (controller voters, then brokers' "INTERNAL"
    /// endpoints in the metadata image); nil: unknown, messages to X are dropped. Set by the owner
    /// before the loop runs.
    public var addressOf: (NodeID) -> SocketAddress? = { _ in nil }
    /// Takes a message from a peer, or one this node sent itself (on the loop thread).
    public var deliver: (NodeID, [UInt8]) -> Void = { _, _ in }
    private let log: RuntimeLog

    private var connections: [ObjectIdentifier: PeerConnection] = [:]
    private var backoffs: [NodeID: Backoff] = [:]
    private var isClosed = false

    struct Backoff {
        var nextAttempt: Instant
        var delay: Duration
    }

    /// Binds the internal listener (set `addressOf` and `deliver` before the loop runs).
    public init(localNodeID: NodeID, clusterID: String, listenAddress: SocketAddress, loop: EventLoop,
                configuration: PeerTransportConfiguration = PeerTransportConfiguration(), log: RuntimeLog) throws(SocketError) {
        self.localNodeID = localNodeID
        self.clusterID = clusterID
        self.configuration = configuration
        self.loop = loop
        self.log = log
        listener = try TCPListener(address: listenAddress, loop: loop)
        listener.onAccept = { [unowned self] descriptor in self.accept(descriptor) }
    }

    /// Closes the listener and every connection.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        listener.close()
        for connection in Array(connections.values) { connection.tcp.close(afterFlushing: false) }
        connections.removeAll()
    }

    /// The peers with a connection whose hello has been exchanged, sorted.
    public var connectedPeers: [NodeID] {
        Set(connections.values.compactMap { $0.isEstablished ? $0.remoteNodeID : nil }).sorted()
    }

    // MARK: Sending

    public func send(_ bytes: [UInt8], to destination: NodeID) {
        guard !isClosed else { return }
        if destination == localNodeID {
            statistics.messagesSent += 1
            deliver(localNodeID, bytes)
            return
        }
        guard bytes.count <= configuration.maximumFrameBytes else {
            // The receiver would close the connection on it (and everything queued behind it).
            log.info("dropped a \(bytes.count)-byte message to node \(destination): above the \(configuration.maximumFrameBytes)-byte frame limit")
            statistics.messagesDropped += 1
            return
        }
        guard let connection = connection(to: destination) else {
            statistics.messagesDropped += 1
            return
        }
        if connection.tcp.enqueueFrame(bytes) {
            statistics.messagesSent += 1
        } else {
            statistics.messagesDropped += 1
        }
    }

    /// An established connection with `destination` (outbound preferred, for a stable order),
    /// else one being opened, else a new one if the backoff allows.
    private func connection(to destination: NodeID) -> PeerConnection? {
        var pending: PeerConnection?
        var inbound: PeerConnection?
        for connection in connections.values where connection.remoteNodeID == destination && !connection.tcp.isClosed {
            if connection.isOutbound {
                if connection.isEstablished { return connection }
                pending = connection
            } else if connection.isEstablished {
                inbound = connection
            }
        }
        if let inbound { return inbound }
        if let pending { return pending }
        return openConnection(to: destination)
    }

    private func openConnection(to destination: NodeID) -> PeerConnection? {
        let now = loop.now
        if let backoff = backoffs[destination], now < backoff.nextAttempt { return nil }
        guard let address = addressOf(destination) else { return nil }
        let descriptor: Int32
        let tcp: TCPConnection
        do throws(SocketError) {
            descriptor = try connectTCP(to: address)
        } catch {
            noteFailure(of: destination)
            return nil
        }
        do throws(SystemCallError) {
            tcp = try TCPConnection(descriptor: descriptor, connecting: true, loop: loop, limits: limits)
        } catch {
            noteFailure(of: destination)
            return nil
        }
        let connection = PeerConnection(tcp: tcp, isOutbound: true, remoteNodeID: destination, transport: self)
        register(connection)
        // The hello goes first in the output, so it precedes every message queued while connecting.
        tcp.enqueueFrame(PeerHello(clusterID: clusterID, nodeID: localNodeID).encoded())
        return connection
    }

    private var limits: TCPConnectionLimits {
        TCPConnectionLimits(maximumFrameBytes: configuration.maximumFrameBytes, readPauseOutputBytes: Int.max,
                            maximumOutputBytes: configuration.maximumOutputBytes)
    }

    private func register(_ connection: PeerConnection) {
        connections[ObjectIdentifier(connection)] = connection
        statistics.connectionsOpened += 1
        connection.handshakeTimer = loop.scheduleTimer(after: configuration.handshakeTimeout) { [weak connection] in
            guard let connection, !connection.isEstablished else { return }
            connection.handshakeTimer = nil
            connection.tcp.close(afterFlushing: false)
        }
    }

    private func accept(_ descriptor: Int32) {
        let inboundCount = connections.values.count { !$0.isOutbound }
        guard inboundCount < configuration.maximumInboundConnections else {
            closeDescriptor(descriptor)
            return
        }
        do throws(SystemCallError) {
            let tcp = try TCPConnection(descriptor: descriptor, connecting: false, loop: loop, limits: limits)
            register(PeerConnection(tcp: tcp, isOutbound: false, remoteNodeID: nil, transport: self))
        } catch {
            log.info("cannot watch an accepted internal connection: \(error)")
        }
    }

    private func noteFailure(of node: NodeID) {
        let now = loop.now
        let delay = backoffs[node].map { min($0.delay * 2, configuration.maximumReconnectBackoff) }
            ?? configuration.initialReconnectBackoff
        backoffs[node] = Backoff(nextAttempt: now + delay, delay: delay)
    }

    // MARK: Connection events

    fileprivate func connection(_ connection: PeerConnection, received frame: [UInt8]) {
        guard connection.isEstablished, let remote = connection.remoteNodeID else {
            return receiveHello(frame, on: connection)
        }
        statistics.messagesReceived += 1
        deliver(remote, frame)
    }

    private func receiveHello(_ frame: [UInt8], on connection: PeerConnection) {
        let hello: PeerHello
        do throws(PeerHello.DecodeFailure) {
            hello = try PeerHello(decoding: frame)
        } catch {
            return reject(connection, "bad hello: \(error)")
        }
        guard hello.clusterID == clusterID else {
            return reject(connection, "hello from node \(hello.nodeID) of cluster '\(hello.clusterID)', not '\(clusterID)'")
        }
        guard hello.nodeID != localNodeID else { return reject(connection, "hello from this node's own id \(localNodeID)") }
        if connection.isOutbound {
            guard hello.nodeID == connection.remoteNodeID else {
                return reject(connection, "connected to node \(connection.remoteNodeID.map(String.init(describing:)) ?? "?") but node \(hello.nodeID) answered")
            }
            backoffs[hello.nodeID] = nil
        } else {
            connection.remoteNodeID = hello.nodeID
            connection.tcp.enqueueFrame(PeerHello(clusterID: clusterID, nodeID: localNodeID).encoded())
        }
        connection.isEstablished = true
        if let timer = connection.handshakeTimer { loop.cancelTimer(timer) }
        connection.handshakeTimer = nil
    }

    private func reject(_ connection: PeerConnection, _ reason: String) {
        statistics.handshakesRejected += 1
        log.info("internal connection refused: \(reason)")
        connection.tcp.close(afterFlushing: false)
    }

    fileprivate func connectionClosed(_ connection: PeerConnection, reason: TCPCloseReason) {
        connections[ObjectIdentifier(connection)] = nil
        if let timer = connection.handshakeTimer { loop.cancelTimer(timer) }
        connection.handshakeTimer = nil
        guard !isClosed else { return }
        if connection.isOutbound, let remote = connection.remoteNodeID {
            if !connection.isEstablished { noteFailure(of: remote) }
            if connection.isEstablished { log.info("connection to node \(remote) lost: \(reason)") }
        } else if connection.isEstablished, let remote = connection.remoteNodeID {
            log.info("connection from node \(remote) lost: \(reason)")
        }
    }
}

/// One internal connection and what its hello said.
private final class PeerConnection: TCPConnectionDelegate {
    let tcp: TCPConnection
    let isOutbound: Bool
    /// Known from the start for outbound connections, from the hello for inbound ones.
    var remoteNodeID: NodeID?
    /// The other side's hello has been received and checked.
    var isEstablished = false
    var handshakeTimer: EventLoop.TimerID?
    unowned let transport: PeerTransport

    init(tcp: TCPConnection, isOutbound: Bool, remoteNodeID: NodeID?, transport: PeerTransport) {
        self.tcp = tcp
        self.isOutbound = isOutbound
        self.remoteNodeID = remoteNodeID
        self.transport = transport
        tcp.delegate = self
    }

    func connectionDidConnect(_ connection: TCPConnection) {}

    func connection(_ connection: TCPConnection, didReceiveFrame frame: [UInt8]) {
        transport.connection(self, received: frame)
    }

    func connection(_ connection: TCPConnection, didCloseWith reason: TCPCloseReason) {
        transport.connectionClosed(self, reason: reason)
    }
}
