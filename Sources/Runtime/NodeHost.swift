import Broker
import CSystem
import Controller
import Glibc
import LogStorage
import NodeKit
import Posix
import Synchronization
import TernCore

/// How a node host's run ended, and the process exit code it calls for.
public enum NodeHostOutcome: Sendable, Equatable, CustomStringConvertible {
    /// The broker asked for a controlled shutdown and the controller allowed it: exit 0.
    case controlledShutdown(reason: String)
    /// The controller did not allow the controlled shutdown in time; the process stops anyway,
    /// as Kafka does after its controlled-shutdown retries: exit 0 (the log says it was unclean).
    case shutdownTimedOut
    /// No controller accepted the shutting-down broker's heartbeats for its session timeout: a
    /// live controller has fenced it (its leaderships moved away) or there is no controller
    /// quorum to grant the shutdown (the last nodes of a cluster going down). Exit 0; the log
    /// says the shutdown was not controlled.
    case shutdownWithoutController(silence: Duration)
    /// SIGTERM/SIGINT on a node without a broker part, or a second signal during a controlled
    /// shutdown: exit 0.
    case terminated(signal: Int32)
    /// `NodeHostControl.stop()` (tests, embedding): exit 0.
    case stopped
    /// The node found a broken invariant: exit 70 (EX_SOFTWARE).
    case halted(reason: String)
    /// The node stopped after an operating error it cannot continue from (a failed fsync): exit
    /// 75 (EX_TEMPFAIL: a supervisor should restart it).
    case exited(reason: String)
    /// Setting up failed before the node could start (listener, disk): exit 1.
    case failedToStart(reason: String)

    public var processExitCode: Int32 {
        switch self {
        case .controlledShutdown, .shutdownTimedOut, .shutdownWithoutController, .terminated, .stopped: 0
        case .halted: 70
        case .exited: 75
        case .failedToStart: 1
        }
    }

    public var description: String {
        switch self {
        case let .controlledShutdown(reason): "controlled shutdown complete (\(reason))"
        case .shutdownTimedOut: "controlled shutdown timed out; stopping without it"
        case let .shutdownWithoutController(silence):
            "no controller answered for \(silence) (broker.session.timeout.ms); stopping without a controlled shutdown"
        case let .terminated(signal): "terminated by signal \(signal)"
        case .stopped: "stopped"
        case let .halted(reason): "halted: \(reason)"
        case let .exited(reason): "exited: \(reason)"
        case let .failedToStart(reason): "failed to start: \(reason)"
        }
    }
}

/// Why a node host could not be set up.
public enum NodeHostError: Error, CustomStringConvertible {
    case eventLoop(SystemCallError)
    case listen(listener: String, address: SocketAddress, SocketError)
    case disk(DiskError)
    case signals(SystemCallError)

    public var description: String {
        switch self {
        case let .eventLoop(error): "cannot create the event loop: \(error)"
        case let .listen(listener, address, error): "cannot listen on \(address) (\(listener)): \(error)"
        case let .disk(error): "disk: \(error)"
        case let .signals(error): "cannot watch termination signals: \(error)"
        }
    }
}

/// Knobs of the node host beyond the launch configuration.
public struct NodeHostOptions: Sendable {
    /// Watch SIGTERM/SIGINT through a signalfd (the process must have blocked them first, with
    /// `NodeHost.blockTerminationSignals()` before any thread started). Off for hosts embedded in
    /// a test process.
    public var handlesTerminationSignals = false
    /// How long a controlled shutdown may wait for the controller's permission.
    public var controlledShutdownTimeout: Duration = .seconds(30)
    public var peerTransport = PeerTransportConfiguration()
    /// Client connections at once; more are closed as they are accepted.
    public var maximumClientConnections = 4_096
    /// A client whose unsent responses exceed this is not read from until they drain.
    public var clientReadPauseOutputBytes = 4 * 1024 * 1024
    /// A client whose unsent responses would exceed this is disconnected (it stopped reading).
    public var clientMaximumOutputBytes = 256 * 1024 * 1024
    /// Seed of the node's generator; nil takes one from the kernel (randomness is fine in the shell).
    public var randomSeed: UInt64?
    public var logsEnabled = true

    public init() {}
}

/// Thread-safe controls of a running node host (tests, or an embedding program).
public final class NodeHostControl: Sendable {
    private let wakeup: EventLoopWakeup
    fileprivate let stopRequested = Atomic<Bool>(false)
    fileprivate let shutdownRequested = Atomic<Bool>(false)

    fileprivate init(wakeup: EventLoopWakeup) { self.wakeup = wakeup }

    /// Ends the run at once (outcome `.stopped`).
    public func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        wakeup.wake()
    }

    /// What SIGTERM does: a controlled shutdown for a broker, an immediate stop otherwise.
    public func requestControlledShutdown() {
        shutdownRequested.store(true, ordering: .sequentiallyConsistent)
        wakeup.wake()
    }
}

/// Runs one node process on real sockets, files and clocks: builds the node from its launch
/// configuration, owns the event loop, the peer transport, the client listener and the disk, and
/// carries events in and effects out.
///
/// Events: `.start` once, `.tick` every `tickInterval` (monotonic clock), `.message` for peer
/// frames, `.syncCompleted` from the disk's eventfd, and `.clientConnected` / `.clientRequest`
/// (one whole frame, its size checked against `message.max.bytes` before it was read) /
/// `.clientDisconnected` for the client listener's connections. Effects: `.send` to a peer
/// (through the transport), `.reply` / `.closeClient` / `.pauseClientReads` /
/// `.resumeClientReads` on a client connection, `.log` to the node's log; `.halt` and `.exit`
/// end the run (see `NodeHostOutcome` for the exit codes). The Kafka protocol itself is the
/// broker's (`KafkaFrontend`): the host only moves bytes.
///
/// Events the node's own effects cause (a message to itself) are queued and handled after the
/// current one, never recursively.
public final class NodeHost {
    public let configuration: NodeLaunchConfiguration
    public let options: NodeHostOptions
    public let node: any NodeStateMachine
    public let broker: BrokerNode?
    public let controller: ControllerNode?
    public let log: RuntimeLog
    public let control: NodeHostControl
    public var internalListenAddress: SocketAddress { transport.listenAddress }
    public var clientListenAddress: SocketAddress? { clientListener?.address }
    public var peerStatistics: PeerTransportStatistics { transport.statistics }

    private let loop: EventLoop
    private let disk: PosixDisk
    private let transport: PeerTransport
    private let clientListener: TCPListener?
    private let observer: ((NodeHost) -> Void)?
    private let signalDescriptor: Int32?

    private var pendingNodeEvents: [NodeEvent] = []
    private var pendingNodeEventsHead = 0
    private var isDrainingNodeEvents = false
    private var effects: [NodeEffect] = []
    private var completions: [SyncCompletion] = []
    private var outcome: NodeHostOutcome?
    private var hasRun = false
    private var nextTickAt = Instant.zero
    private var shutdownDeadlineTimer: EventLoop.TimerID?
    private var isShuttingDown = false

    private var clientConnections: [ClientConnectionID: ClientConnection] = [:]
    private var nextClientConnectionID: UInt64 = 1

    /// Events queued by the node's own effects in one drain; more is a node that keeps talking to
    /// itself, a bug.
    static let maximumPendingNodeEvents = 1 << 20

    /// Blocks SIGTERM and SIGINT for the calling thread and every thread it starts later, and
    /// ignores SIGPIPE. Call first thing in a node process, before any thread exists (the disk's
    /// sync thread included), so the signals reach only the host's signalfd.
    public static func blockTerminationSignals() throws(SystemCallError) {
        _ = try systemCall("pthread_sigmask") { tern_block_termination_signals() }
    }

    /// Binds the listeners, opens the disk and builds the node; `run` starts it. `observer` is
    /// called on the node's thread after every event-loop iteration (tests read the node there).
    public init(configuration: NodeLaunchConfiguration, options: NodeHostOptions = NodeHostOptions(),
                observer: ((NodeHost) -> Void)? = nil) throws(NodeHostError) {
        self.configuration = configuration
        self.options = options
        let log = RuntimeLog(nodeID: configuration.nodeID, isEnabled: options.logsEnabled)
        self.log = log
        do throws(SystemCallError) {
            loop = try EventLoop()
        } catch {
            throw .eventLoop(error)
        }
        control = NodeHostControl(wakeup: loop.wakeup)

        let clusterID = configuration.broker?.clusterID ?? configuration.controller?.controller.clusterID ?? ""
        do throws(SocketError) {
            transport = try PeerTransport(localNodeID: configuration.nodeID, clusterID: clusterID,
                                          listenAddress: configuration.internalListener, loop: loop,
                                          configuration: options.peerTransport, log: log)
        } catch {
            throw .listen(listener: BrokerEndpoint.internalListenerName, address: configuration.internalListener, error)
        }
        if let address = configuration.clientListener {
            do throws(SocketError) {
                clientListener = try TCPListener(address: address, loop: loop)
            } catch {
                throw .listen(listener: BrokerEndpoint.clientListenerName, address: address, error)
            }
        } else {
            clientListener = nil
        }
        if options.handlesTerminationSignals {
            do throws(SystemCallError) {
                signalDescriptor = try systemCall("signalfd") { tern_termination_signal_descriptor() }
            } catch {
                throw .signals(error)
            }
        } else {
            signalDescriptor = nil
        }

        do throws(DiskError) {
            disk = try PosixDisk()
            try disk.makeDirectory(configuration.dataDirectory)
        } catch {
            throw .disk(error)
        }
        let seed = options.randomSeed ?? tern_random_seed()
        let environment = NodeEnvironment(nodeID: configuration.nodeID, disk: disk, dataDirectory: configuration.dataDirectory,
                                          random: DeterministicRandom(seed: seed))
        let controller = configuration.controller.map { ControllerNode(environment: environment, configuration: $0) }
        var broker: BrokerNode?
        if var brokerConfiguration = configuration.broker {
            brokerConfiguration.endpoints = Self.endpoints(configuration: configuration,
                                                           clientListenAddress: clientListener?.address,
                                                           internalListenAddress: transport.listenAddress)
            broker = BrokerNode(configuration: brokerConfiguration, environment: environment)
        }
        self.controller = controller
        self.broker = broker
        switch (controller, broker) {
        case let (controller?, broker?): node = CombinedNode(controller: controller, broker: broker)
        case let (controller?, nil): node = controller
        case let (nil, broker?): node = broker
        case (nil, nil): preconditionFailure("a node plays at least one role")
        }
        precondition(node.nodeID == configuration.nodeID, "the node's id is the configured node.id")
        self.observer = observer
        // Every stored property is set: the callbacks may now refer to the host.
        try connectCallbacks()
    }

    deinit {
        if let signalDescriptor { closeDescriptor(signalDescriptor) }
    }

    /// What the broker registers: clients connect to the advertised client address, other
    /// brokers replicate from the internal listener. A configured port of 0 (tests) is replaced by
    /// the port really bound.
    static func endpoints(configuration: NodeLaunchConfiguration, clientListenAddress: SocketAddress?,
                          internalListenAddress: SocketAddress) -> [BrokerEndpoint] {
        var endpoints: [BrokerEndpoint] = []
        if var advertised = configuration.advertisedClientListener ?? clientListenAddress {
            if advertised.port == 0, let bound = clientListenAddress { advertised.port = bound.port }
            endpoints.append(BrokerEndpoint(listenerName: BrokerEndpoint.clientListenerName,
                                            host: advertised.host, port: advertised.port))
        }
        endpoints.append(BrokerEndpoint(listenerName: BrokerEndpoint.internalListenerName,
                                        host: internalListenAddress.host, port: internalListenAddress.port))
        return endpoints
    }

    private func connectCallbacks() throws(NodeHostError) {
        transport.addressOf = { [unowned self] id in self.internalAddress(of: id) }
        transport.deliver = { [unowned self] sender, bytes in self.deliverToNode(.message(from: sender, bytes: bytes)) }
        clientListener?.onAccept = { [unowned self] descriptor in self.acceptClient(descriptor) }
        loop.onWakeup = { [unowned self] in self.checkControl() }
        loop.afterIteration = { [unowned self] in
            self.logRoleChanges()
            if self.outcome == nil { self.observer?(self) }
        }
        do throws(SystemCallError) {
            _ = try loop.register(disk.completionEventDescriptor, interest: .readable) { [unowned self] _ in
                self.collectSyncCompletions()
            }
            if let signalDescriptor {
                _ = try loop.register(signalDescriptor, interest: .readable) { [unowned self] _ in self.readSignals() }
            }
        } catch {
            throw .eventLoop(error)
        }
    }

    /// A peer's internal listener: controller voters from the configuration, brokers from the
    /// metadata image's "INTERNAL" endpoint.
    private func internalAddress(of id: NodeID) -> SocketAddress? {
        if let voter = configuration.controllerVoters[id] { return voter }
        let image = broker?.image ?? controller?.committedImage
        guard let endpoint = image?.broker(id)?.endpoints.first(where: {
            $0.listenerName == BrokerEndpoint.internalListenerName
        }) else { return nil }
        return SocketAddress(host: endpoint.host, port: endpoint.port)
    }

    // MARK: Running

    /// Runs the node until it stops; returns why. Call once, on the thread that will own the node.
    public func run() -> NodeHostOutcome {
        precondition(!hasRun, "a node host runs once")
        hasRun = true
        let roles = configuration.roles.map(\.rawValue).joined(separator: ",")
        log.info("starting node \(configuration.nodeID) (roles \(roles)), data in \(configuration.dataDirectory)")
        log.info("internal listener on \(transport.listenAddress)"
                 + (clientListener.map { ", client listener on \($0.address)" } ?? ""))
        deliverToNode(.start)
        nextTickAt = loop.now + node.tickInterval
        scheduleTick()
        while outcome == nil { loop.runOnce() }
        let final = outcome!
        tearDown()
        log.info("stopping: \(final)")
        return final
    }

    private func scheduleTick() {
        loop.scheduleTimer(at: nextTickAt) { [unowned self] in
            let now = self.loop.now
            self.deliverToNode(.tick)
            self.checkShutdownProgress(now: self.loop.now)
            // Fixed rate, but a stalled process (SIGSTOP, a slow sync) skips the ticks it
            // missed instead of firing them back to back.
            self.nextTickAt += self.node.tickInterval
            if self.nextTickAt <= now { self.nextTickAt = now + self.node.tickInterval }
            self.scheduleTick()
        }
    }

    private func finish(_ result: NodeHostOutcome) {
        guard outcome == nil else { return }
        outcome = result
        loop.stop()
    }

    private func tearDown() {
        for connection in clientConnections.values.sorted(by: { $0.id.rawValue < $1.id.rawValue }) {
            connection.tcp.close(afterFlushing: false)
        }
        clientListener?.close()
        transport.close()
        // Queued syncs finish: what the node asked to make durable is, even on the way out.
        disk.close()
    }

    private func checkControl() {
        if control.stopRequested.load(ordering: .sequentiallyConsistent) { finish(.stopped) }
        if control.shutdownRequested.exchange(false, ordering: .sequentiallyConsistent) {
            beginShutdown(cause: "shutdown requested")
        }
    }

    private func readSignals() {
        guard let signalDescriptor else { return }
        while true {
            let signal = tern_read_signal(signalDescriptor)
            if signal <= 0 { return }
            let name = signal == SIGTERM ? "SIGTERM" : (signal == SIGINT ? "SIGINT" : "signal \(signal)")
            if isShuttingDown {
                log.info("\(name) during the controlled shutdown: stopping now")
                return finish(.terminated(signal: signal))
            }
            if broker == nil {
                log.info("\(name): stopping (no broker part to move away)")
                return finish(.terminated(signal: signal))
            }
            beginShutdown(cause: name)
        }
    }

    /// A broker asks the controller to move its leaderships away and stops once allowed; a
    /// controller-only node stops at once.
    private func beginShutdown(cause: String) {
        guard !isShuttingDown else { return }
        guard let broker else {
            log.info("\(cause): stopping")
            return finish(.stopped)
        }
        isShuttingDown = true
        log.info("\(cause): controlled shutdown requested, waiting up to \(options.controlledShutdownTimeout) for the controller")
        deliverToNode(.shutdownRequested)
        shutdownDeadlineTimer = loop.scheduleTimer(after: options.controlledShutdownTimeout) { [unowned self] in
            self.finish(.shutdownTimedOut)
        }
    }

    /// A controlled shutdown only a controller can grant: once none has answered the broker for
    /// its session timeout, waiting the rest of `controlledShutdownTimeout` cannot move anything.
    private func checkShutdownProgress(now: Instant) {
        guard isShuttingDown, outcome == nil, let broker, broker.controllerSilentForSessionTimeout(now: now) else { return }
        let silence = now - (broker.lastHeartbeatAcceptedAt ?? broker.startedAt ?? now)
        finish(.shutdownWithoutController(silence: silence))
    }

    // MARK: Node events and effects

    private func deliverToNode(_ event: NodeEvent) {
        guard outcome == nil else { return }
        pendingNodeEvents.append(event)
        precondition(pendingNodeEvents.count - pendingNodeEventsHead <= Self.maximumPendingNodeEvents,
                     "node \(configuration.nodeID) queued more than \(Self.maximumPendingNodeEvents) events to itself")
        guard !isDrainingNodeEvents else { return }
        isDrainingNodeEvents = true
        defer {
            isDrainingNodeEvents = false
            pendingNodeEvents.removeAll(keepingCapacity: pendingNodeEvents.capacity <= 1_024)
            pendingNodeEventsHead = 0
        }
        while pendingNodeEventsHead < pendingNodeEvents.count, outcome == nil {
            let next = pendingNodeEvents[pendingNodeEventsHead]
            pendingNodeEventsHead += 1
            effects.removeAll(keepingCapacity: true)
            node.handle(next, now: loop.now, wallClock: Clocks.wallClockNow(), effects: &effects)
            let produced = effects
            for effect in produced {
                execute(effect)
                if outcome != nil { return }
            }
        }
    }

    private func execute(_ effect: NodeEffect) {
        switch effect {
        case let .send(destination, bytes):
            transport.send(bytes, to: destination)
        case let .halt(reason):
            log.info("HALT: \(reason)")
            finish(.halted(reason: reason))
        case let .exit(reason):
            if isShuttingDown, broker?.shouldShutDown == true {
                finish(.controlledShutdown(reason: reason))
            } else {
                log.info("exiting: \(reason)")
                finish(.exited(reason: reason))
            }
        case let .reply(id, bytes):
            guard let connection = clientConnections[id] else { return }
            if !connection.tcp.enqueueBytes(bytes) && !connection.tcp.isClosing {
                // The client stopped reading its answers: dropping one would break its
                // request/response pairing, so the connection goes.
                log.info("closed \(id): \(TCPCloseReason.outputOverflow)")
                connection.tcp.close(afterFlushing: false)
            }
        case let .closeClient(id):
            clientConnections[id]?.tcp.close(afterFlushing: true)
        case let .pauseClientReads(id):
            clientConnections[id]?.tcp.pauseReading()
        case let .resumeClientReads(id):
            clientConnections[id]?.tcp.resumeReading()
        case let .log(line):
            log.info(line)
        case .openOutbound, .sendOutbound, .closeOutbound:
            finish(.halted(reason: "\(effect): a node served by the runtime opens no client connections"))
        }
    }

    private func collectSyncCompletions() {
        completions.removeAll(keepingCapacity: true)
        disk.pollCompletions(into: &completions)
        let collected = completions
        for completion in collected { deliverToNode(.syncCompleted(completion)) }
    }

    // MARK: Clients

    private func acceptClient(_ descriptor: Int32) {
        guard outcome == nil, broker != nil, clientConnections.count < options.maximumClientConnections else {
            closeDescriptor(descriptor)
            return
        }
        let limits = TCPConnectionLimits(maximumFrameBytes: configuration.maximumRequestBytes,
                                         readPauseOutputBytes: options.clientReadPauseOutputBytes,
                                         maximumOutputBytes: options.clientMaximumOutputBytes)
        let tcp: TCPConnection
        do throws(SystemCallError) {
            tcp = try TCPConnection(descriptor: descriptor, connecting: false, loop: loop, limits: limits)
        } catch {
            log.info("cannot watch an accepted client connection: \(error)")
            return
        }
        let id = ClientConnectionID(rawValue: nextClientConnectionID)
        nextClientConnectionID += 1
        clientConnections[id] = ClientConnection(id: id, tcp: tcp, host: self)
        deliverToNode(.clientConnected(id))
    }

    fileprivate func clientFrame(_ frame: [UInt8], on connection: ClientConnection) {
        deliverToNode(.clientRequest(connection.id, frame))
    }

    fileprivate func clientClosed(_ connection: ClientConnection, reason: TCPCloseReason) {
        clientConnections[connection.id] = nil
        if case .invalidFrameSize = reason { log.info("closed \(connection.id): \(reason)") }
        if case .outputOverflow = reason { log.info("closed \(connection.id): \(reason)") }
        deliverToNode(.clientDisconnected(connection.id))
    }

    private var loggedActiveController = false
    private var loggedBrokerState: (registered: Bool, fenced: Bool) = (false, true)

    /// One line when this node becomes or stops being the active controller, and when its broker
    /// registers or is fenced or unfenced: what an operator looks for first.
    private func logRoleChanges() {
        if let controller, controller.isActiveController != loggedActiveController {
            loggedActiveController = controller.isActiveController
            log.info(loggedActiveController ? "became the active controller (term \(controller.raft.term))"
                                            : "no longer the active controller")
        }
        if let broker {
            let state = (registered: broker.brokerEpoch != nil, fenced: broker.isFenced)
            if state != loggedBrokerState {
                loggedBrokerState = state
                if let epoch = broker.brokerEpoch {
                    log.info("broker registered with epoch \(epoch), \(state.fenced ? "fenced" : "unfenced")")
                } else {
                    log.info("broker not registered")
                }
            }
        }
    }
}

/// One accepted client connection.
private final class ClientConnection: TCPConnectionDelegate {
    let id: ClientConnectionID
    let tcp: TCPConnection
    unowned let host: NodeHost

    init(id: ClientConnectionID, tcp: TCPConnection, host: NodeHost) {
        self.id = id
        self.tcp = tcp
        self.host = host
        tcp.delegate = self
    }

    func connectionDidConnect(_ connection: TCPConnection) {}

    func connection(_ connection: TCPConnection, didReceiveFrame frame: [UInt8]) {
        host.clientFrame(frame, on: self)
    }

    func connection(_ connection: TCPConnection, didCloseWith reason: TCPCloseReason) {
        host.clientClosed(self, reason: reason)
    }
}
