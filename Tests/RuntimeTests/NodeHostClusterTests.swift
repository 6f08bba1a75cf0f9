import Broker
import Controller
import Glibc
import NodeKit
import Posix
import Raft
@testable import Runtime
import Synchronization
import TernCore
import Testing

/// What a test sees of a node running on its own thread, read on the node's thread after every
/// event-loop iteration.
struct NodeObservation: Sendable {
    var isActiveController = false
    /// The controller's committed image: broker id → fenced.
    var committedBrokers: [NodeID: Bool] = [:]
    /// The broker's own image: broker id → fenced.
    var brokerImageBrokers: [NodeID: Bool] = [:]
    var openClientConnections = 0

    init() {}

    init(of host: NodeHost) {
        if let controller = host.controller {
            isActiveController = controller.isActiveController
            committedBrokers = Dictionary(uniqueKeysWithValues: controller.committedImage.brokers.map { ($0.brokerID, $0.isFenced) })
        }
        if let broker = host.broker {
            brokerImageBrokers = Dictionary(uniqueKeysWithValues: broker.image.brokers.map { ($0.brokerID, $0.isFenced) })
            openClientConnections = broker.clientConnectionCount
        }
    }
}

/// A `NodeHost` running on its own thread, publishing what the test observes of the node (read on
/// the node's own thread).
final class HostThread<Observation: Sendable>: Sendable {
    let nodeID: NodeID
    let observation: Mutex<Observation>
    private let control = Mutex<NodeHostControl?>(nil)
    private let clientAddress = Mutex<SocketAddress?>(nil)
    private let result = Mutex<NodeHostOutcome?>(nil)
    private let thread: Mutex<TestThread?> = Mutex(nil)

    init(configuration: NodeLaunchConfiguration, options: NodeHostOptions, initialObservation: Observation,
         observe: @escaping @Sendable (NodeHost) -> Observation) {
        nodeID = configuration.nodeID
        observation = Mutex(initialObservation)
        let started = TestThread { [self] in
            do throws(NodeHostError) {
                let host = try NodeHost(configuration: configuration, options: options) { host in
                    let snapshot = observe(host)
                    self.observation.withLock { $0 = snapshot }
                }
                control.withLock { $0 = host.control }
                clientAddress.withLock { $0 = host.clientListenAddress }
                let outcome = host.run()
                result.withLock { $0 = outcome }
            } catch {
                result.withLock { $0 = .failedToStart(reason: "\(error)") }
            }
        }
        thread.withLock { $0 = started }
    }

    var current: Observation { observation.withLock { $0 } }
    var outcome: NodeHostOutcome? { result.withLock { $0 } }
    var clientListenAddress: SocketAddress? { clientAddress.withLock { $0 } }

    /// Waits (with a generous deadline) for the host to exist, then asks it.
    func withControl(_ body: (NodeHostControl) -> Void) {
        for _ in 0..<3_000 {
            if let control = control.withLock({ $0 }) { return body(control) }
            if outcome != nil { return }
            sleepMilliseconds(10)
        }
    }

    /// Waits for the host's thread to end. Joining a thread twice is undefined behaviour, so the
    /// thread is taken out on the first join and later calls only read the outcome.
    func join() -> NodeHostOutcome? {
        thread.withLock { started in
            defer { started = nil }
            return started
        }?.join()
        return outcome
    }
}

/// Waits until `condition` holds, polling; the deadline only keeps a broken test from hanging.
func eventually(seconds: Int = 90, _ condition: () -> Bool) -> Bool {
    for _ in 0..<(seconds * 50) {
        if condition() { return true }
        sleepMilliseconds(20)
    }
    return condition()
}

/// A node reporting its state.
func observedHost(_ configuration: NodeLaunchConfiguration, options: NodeHostOptions) -> HostThread<NodeObservation> {
    HostThread(configuration: configuration, options: options, initialObservation: NodeObservation(), observe: NodeObservation.init(of:))
}

@Suite(.serialized) struct NodeHostClusterTests {
    static func combinedConfigurations(directory: TemporaryDirectory, clusterID: String,
                                       sessionTimeout: Duration = .seconds(9)) throws -> [NodeLaunchConfiguration] {
        let ids = [NodeID(1), NodeID(2), NodeID(3)]
        let ports = try reserveLoopbackPorts(ids.count)
        let voters = Dictionary(uniqueKeysWithValues: zip(ids, ports).map { ($0, SocketAddress(host: "127.0.0.1", port: $1)) })
        return ids.map { id in
            var raft = RaftNode.Configuration(raft: RaftConfiguration(nodeID: id, voters: ids))
            raft.tickInterval = .milliseconds(10)
            let controllerConfiguration = ControllerConfiguration(clusterID: clusterID, brokerSessionTimeout: sessionTimeout)
            var broker = BrokerConfiguration(brokerID: id, clusterID: clusterID, controllerVoters: ids)
            broker.heartbeatInterval = .milliseconds(200)
            broker.sessionTimeout = sessionTimeout
            return NodeLaunchConfiguration(
                nodeID: id, roles: [.broker, .controller],
                clientListener: SocketAddress(host: "127.0.0.1", port: 0), advertisedClientListener: nil,
                internalListener: voters[id]!, controllerVoters: voters, dataDirectory: directory.child("node-\(id)"),
                broker: broker, controller: ControllerNode.Configuration(raft: raft, controller: controllerConfiguration))
        }
    }

    /// Three combined nodes on real sockets and files: the controllers elect a leader over the
    /// peer transport, every broker registers through it and is unfenced once caught up with the
    /// metadata log. Then one broker shuts down the way SIGTERM makes it (controlled shutdown,
    /// granted by the controller) and the others are stopped.
    @Test func threeCombinedNodesElectRegisterAndUnfenceEveryBroker() throws {
        let directory = TemporaryDirectory(prefix: "tern-node-host")
        let configurations = try Self.combinedConfigurations(directory: directory, clusterID: "tern-host-test")
        var options = NodeHostOptions()
        // TERN_TEST_LOGS=1 shows the nodes' log lines.
        options.logsEnabled = getenv("TERN_TEST_LOGS") != nil
        options.controlledShutdownTimeout = .seconds(60)
        let hosts = configurations.map { observedHost($0, options: options) }
        defer { for host in hosts { host.withControl { $0.stop() }; _ = host.join() } }
        let ids: Set<NodeID> = [NodeID(1), NodeID(2), NodeID(3)]

        let everyBrokerUnfenced = eventually {
            hosts.contains { host in
                let seen = host.current
                return seen.isActiveController && Set(seen.committedBrokers.keys) == ids && seen.committedBrokers.values.allSatisfy { !$0 }
            }
        }
        #expect(everyBrokerUnfenced, "observations: \(hosts.map(\.current))")
        #expect(hosts.filter { $0.current.isActiveController }.count == 1, "one active controller")
        // Every broker's own image reaches the same state through metadata fetches.
        #expect(eventually { hosts.allSatisfy { Set($0.current.brokerImageBrokers.keys) == ids && $0.current.brokerImageBrokers.values.allSatisfy { !$0 } } },
                "observations: \(hosts.map(\.current))")
        #expect(hosts.allSatisfy { $0.outcome == nil }, "no node stopped: \(hosts.map(\.outcome))")

        // The client listener accepts connections and hands them to the broker, which learns when
        // the client goes.
        let clientAddress = try #require(hosts[0].clientListenAddress)
        let client = try connectClient(to: clientAddress)
        #expect(eventually { hosts[0].current.openClientConnections == 1 })
        close(client)
        #expect(eventually { hosts[0].current.openClientConnections == 0 })

        // A controlled shutdown of a broker that is not the active controller: the controller
        // moves it out and lets it stop.
        let leaving = try #require(hosts.first { !$0.current.isActiveController })
        leaving.withControl { $0.requestControlledShutdown() }
        let outcome = leaving.join()
        guard case .controlledShutdown = outcome else {
            Issue.record("expected a controlled shutdown, got \(String(describing: outcome))")
            return
        }
        #expect(outcome?.processExitCode == 0)
        #expect(eventually { hosts.contains { $0.current.isActiveController && $0.current.committedBrokers[leaving.nodeID] == true } },
                "the controller fences the broker that left")
    }

    /// The last node of a three-voter cluster has no controller quorum to grant its controlled
    /// shutdown: once no controller has answered its heartbeats for the session timeout it stops
    /// (exit 0, logged as not controlled) instead of waiting out `controlledShutdownTimeout`.
    @Test func theLastNodeStopsWithoutAControlledShutdownOnceNoControllerAnswers() throws {
        let directory = TemporaryDirectory(prefix: "tern-node-host-last")
        let configurations = try Self.combinedConfigurations(directory: directory, clusterID: "tern-host-last",
                                                             sessionTimeout: .seconds(2))
        var options = NodeHostOptions()
        options.logsEnabled = getenv("TERN_TEST_LOGS") != nil
        // Far beyond the session timeout: reaching it would be the old behaviour.
        options.controlledShutdownTimeout = .seconds(600)
        let hosts = configurations.map { observedHost($0, options: options) }
        defer { for host in hosts { host.withControl { $0.stop() }; _ = host.join() } }
        let ids: Set<NodeID> = [NodeID(1), NodeID(2), NodeID(3)]
        #expect(eventually { hosts.allSatisfy { Set($0.current.brokerImageBrokers.keys) == ids && $0.current.brokerImageBrokers.values.allSatisfy { !$0 } } },
                "observations: \(hosts.map(\.current))")

        // Two nodes vanish without a word (as after a crash): the third has no quorum left.
        for host in hosts.dropLast() {
            host.withControl { $0.stop() }
            _ = host.join()
        }
        let last = hosts[2]
        last.withControl { $0.requestControlledShutdown() }
        let outcome = last.join()
        guard case .shutdownWithoutController = outcome else {
            Issue.record("expected a shutdown without the controller, got \(String(describing: outcome))")
            return
        }
        #expect(outcome?.processExitCode == 0)
        #expect("\(outcome!)".contains("without a controlled shutdown"))
    }
}
