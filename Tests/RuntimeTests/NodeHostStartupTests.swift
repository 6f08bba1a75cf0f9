import Broker
import Controller
import Glibc
import NodeKit
import Posix
import Raft
@testable import Runtime
import TernCore
import Testing

/// A node whose listener address is taken must fail to start with an error naming the listener
/// and the address (exit code 1 for `tern broker`), never crash on the way out of a half-built host.
@Suite(.serialized) struct NodeHostStartupTests {
    /// A listening socket on a free loopback port, held until `close` (the way another program
    /// holding the port would).
    final class PortHolder {
        let loop: EventLoop
        let listener: TCPListener
        var address: SocketAddress { listener.address }

        init() throws {
            loop = try EventLoop()
            listener = try TCPListener(address: SocketAddress(host: "127.0.0.1", port: 0), loop: loop)
        }
    }

    static func singleNodeConfiguration(directory: TemporaryDirectory, clientListener: SocketAddress,
                                        internalListener: SocketAddress) -> NodeLaunchConfiguration {
        let id = NodeID(1)
        let raft = RaftNode.Configuration(raft: RaftConfiguration(nodeID: id, voters: [id]))
        let controller = ControllerNode.Configuration(raft: raft, controller: ControllerConfiguration(clusterID: "tern-startup-test"))
        let broker = BrokerConfiguration(brokerID: id, clusterID: "tern-startup-test", controllerVoters: [id])
        return NodeLaunchConfiguration(
            nodeID: id, roles: [.broker, .controller], clientListener: clientListener, advertisedClientListener: nil,
            internalListener: internalListener, controllerVoters: [id: internalListener], dataDirectory: directory.child("node-1"),
            broker: broker, controller: controller)
    }

    static func startupError(_ configuration: NodeLaunchConfiguration) -> NodeHostError? {
        var options = NodeHostOptions()
        options.logsEnabled = false
        do throws(NodeHostError) {
            _ = try NodeHost(configuration: configuration, options: options)
            return nil
        } catch {
            return error
        }
    }

    /// The internal listener is bound (the peer transport exists, with callbacks into it) when
    /// the client listener fails: taking the half-built host apart must not touch the host.
    @Test func takenClientPortFailsWithTheListenerAndAddress() throws {
        let directory = TemporaryDirectory(prefix: "tern-startup")
        let holder = try PortHolder()
        let internalPort = try reserveLoopbackPorts(1)[0]
        let configuration = Self.singleNodeConfiguration(
            directory: directory, clientListener: holder.address,
            internalListener: SocketAddress(host: "127.0.0.1", port: internalPort))
        let error = try #require(Self.startupError(configuration))
        guard case let .listen(listener, address, _) = error else {
            Issue.record("expected a listen error, got \(error)")
            return
        }
        #expect(listener == BrokerEndpoint.clientListenerName)
        #expect(address == holder.address)
        #expect("\(error)".contains("\(holder.address)") && "\(error)".contains("CLIENT"))
        // The internal listener was released with the half-built host: the port binds again.
        #expect(throws: Never.self) {
            _ = try TCPListener(address: SocketAddress(host: "127.0.0.1", port: internalPort), loop: holder.loop)
        }
    }

    @Test func takenInternalPortFailsWithTheListenerAndAddress() throws {
        let directory = TemporaryDirectory(prefix: "tern-startup")
        let holder = try PortHolder()
        let configuration = Self.singleNodeConfiguration(
            directory: directory, clientListener: SocketAddress(host: "127.0.0.1", port: 0), internalListener: holder.address)
        let error = try #require(Self.startupError(configuration))
        guard case let .listen(listener, address, _) = error else {
            Issue.record("expected a listen error, got \(error)")
            return
        }
        #expect(listener == BrokerEndpoint.internalListenerName)
        #expect(address == holder.address)
    }

    /// `tern broker` with its client port taken: exit 1, one clear line, no crash report.
    @Test func brokerProcessWithATakenPortExitsOne() throws {
        let executable = try #require(ternExecutablePath(), "the tern executable is built next to the tests")
        let directory = TemporaryDirectory(prefix: "tern-startup-process")
        let holder = try PortHolder()
        let internalPort = try reserveLoopbackPorts(1)[0]
        let properties = """
            node.id=1
            process.roles=broker,controller
            controller.quorum.voters=1@127.0.0.1:\(internalPort)
            listeners=CLIENT://\(holder.address),INTERNAL://127.0.0.1:\(internalPort)
            log.dirs=\(directory.child("data"))
            cluster.id=tern-startup-test
            default.replication.factor=1
            min.insync.replicas=1
            """
        let configPath = directory.child("node-1.properties")
        let file = try #require(fopen(configPath, "w"))
        fputs(properties + "\n", file)
        fclose(file)
        let logPath = directory.child("node-1.log")
        let status = try runToExit(executable, ["broker", "--config", configPath], outputPath: logPath)
        let log = readWholeFile(logPath)
        #expect(status.exitCode == 1, "\(status); log: \(log)")
        #expect(log.contains("cannot listen on \(holder.address) (CLIENT)"), "log: \(log)")
        #expect(!log.lowercased().contains("fatal error"), "log: \(log)")
    }
}

/// Runs a child to its end (generous deadline, then SIGKILL), standard output and error to a file.
func runToExit(_ executable: String, _ arguments: [String], outputPath: String, seconds: Int = 60) throws -> ChildExitStatus {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO)
    var argumentVector: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argumentVector { free(pointer) } }
    var pid = pid_t()
    let code = posix_spawn(&pid, executable, &actions, nil, &argumentVector, environ)
    try #require(code == 0, "posix_spawn failed (\(code))")
    for _ in 0..<(seconds * 50) {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return ChildExitStatus(rawStatus: status) }
        sleepMilliseconds(20)
    }
    kill(pid, SIGKILL)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return ChildExitStatus(rawStatus: status)
}

func readWholeFile(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "" }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4_096)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count <= 0 { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
