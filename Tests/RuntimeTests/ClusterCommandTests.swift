import Glibc
import Posix
import Runtime
import TernCore
import Testing
@testable import tern

@Suite struct ClusterCommandTests {
    /// The repository's cluster-configs/ directory, found from this file's path.
    static var clusterConfigs: String {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/cluster-configs"
    }

    @Test(arguments: [("single-node", 1, [1], 1), ("three-node", 3, [1, 2, 3], 3), ("five-node", 5, [1, 2, 3], 3)])
    func committedClusterConfigurationsAreValid(layout: String, nodeCount: Int, controllers: [Int32], replicationFactor: Int16) throws {
        let directory = Self.clusterConfigs + "/" + layout
        let nodes = try loadClusterNodes(in: directory)
        #expect(nodes.map(\.configuration.nodeID) == (1...nodeCount).map { NodeID(Int32($0)) })
        #expect(nodes.filter { $0.configuration.controller != nil }.map(\.configuration.nodeID.rawValue) == controllers)
        #expect(nodes.allSatisfy { $0.isBroker })
        for node in nodes {
            let index = Int(node.configuration.nodeID.rawValue) - 1
            #expect(node.configuration.clientListener == SocketAddress(host: "127.0.0.1", port: UInt16(19092 + index)))
            #expect(node.configuration.internalListener == SocketAddress(host: "127.0.0.1", port: UInt16(19192 + index)))
            #expect(node.configuration.dataDirectory == "\(directory)/data/node-\(index + 1)")
            #expect(node.configuration.broker?.dataPlane.replication.minInSyncReplicas == (replicationFactor == 1 ? 1 : 2))
            if let controller = node.configuration.controller?.controller {
                #expect(controller.defaultReplicationFactor == replicationFactor)
                #expect(controller.defaultMinInSyncReplicas == (replicationFactor == 1 ? 1 : 2))
            }
        }
    }

    @Test func filesThatDoNotMakeOneClusterAreRefused() throws {
        let directory = TemporaryDirectory(prefix: "cluster-command")
        try writeFile(directory.child("a.properties"), nodeProperties(id: 1, clientPort: 19901, internalPort: 19911))
        try writeFile(directory.child("b.properties"), nodeProperties(id: 1, clientPort: 19901, internalPort: 19912))
        #expect(throws: ClusterCommandError.self) { try loadClusterNodes(in: directory.path) }
        do {
            _ = try loadClusterNodes(in: directory.path)
        } catch {
            #expect(error.message.contains("\(directory.path)/b.properties:1: node.id 1 is also \(directory.path)/a.properties's"))
            #expect(error.message.contains("b.properties:4: 127.0.0.1:19901 is also a listener of"))
            #expect(error.message.contains("b.properties:5: \(directory.path)/data is also"))
        }
    }

    @Test func everyFilesErrorIsReported() throws {
        let directory = TemporaryDirectory(prefix: "cluster-command")
        try writeFile(directory.child("node-1.properties"), nodeProperties(id: 1, clientPort: 19901, internalPort: 19911) + "log.dirz=x\n")
        try writeFile(directory.child("node-2.properties"), "node.id=two\n")
        do {
            _ = try loadClusterNodes(in: directory.path)
            Issue.record("no error")
        } catch {
            #expect(error.message == "\(directory.path)/node-1.properties:7: unknown key 'log.dirz'\n"
                    + "\(directory.path)/node-2.properties:1: 'node.id' must be an integer ≥ 0, got 'two'")
        }
    }

    /// A real single-node cluster (`tern broker`, on ports free a moment ago): `up` starts it
    /// detached, writes its pid, waits until its Metadata lists it live and prints the bootstrap
    /// address; a second `up` is refused; `down` stops it (exit on SIGTERM) and removes the pid file.
    @Test func upStartsDetachedNodesAndDownStopsThem() throws {
        let tern = try #require(ternExecutablePath(), "the tern executable is built next to the tests")
        let directory = TemporaryDirectory(prefix: "cluster-command")
        let (clientPort, internalPort) = try {
            let client = try ListeningSocket()
            let `internal` = try ListeningSocket()
            return (client.port, `internal`.port)
        }()
        try writeFile(directory.child("node-1.properties"), nodeProperties(id: 1, clientPort: clientPort, internalPort: internalPort))

        let files = ClusterFiles(directory: directory.path)
        let nodes = try loadClusterNodes(in: directory.path)
        var reports: [String] = []
        let bootstrap = try startCluster(nodes, files: files, nodeExecutable: tern, timeoutSeconds: 60) { reports.append($0) }
        #expect(bootstrap == "127.0.0.1:\(clientPort)")
        let pid = try #require(readPidFile(files.pidPath(of: "node-1")))
        #expect(isRunningClusterNode(pid, directory: directory.path))
        #expect(getsid(pid) == pid, "the node leads its own session")
        #expect(brokersAgreeEveryoneIsLive([StartedNode(node: nodes[0], pid: pid, logPath: files.logPath(of: "node-1"))]))

        #expect(throws: ClusterCommandError.self, "a second up while the node runs") {
            try startCluster(nodes, files: files, nodeExecutable: tern, timeoutSeconds: 30) { _ in }
        }

        try stopCluster(files: files, timeoutSeconds: 35) { reports.append($0) }
        #expect(!isAlive(pid))
        #expect(readPidFile(files.pidPath(of: "node-1")) == nil)
        #expect(reports.last == "stopped node-1 (pid \(pid))")
        let log = String(decoding: try readFile(files.logPath(of: "node-1"), lastBytes: 1 << 16), as: UTF8.self)
        #expect(log.contains("controlled shutdown"), "SIGTERM stops the broker in a controlled way")

        try stopCluster(files: files, timeoutSeconds: 10) { reports.append($0) }
        #expect(reports.last == "no node of \(directory.path) is running", "down on a stopped cluster is fine")
    }

    /// A real three-node cluster: `down` stops the nodes one at a time, the active controller
    /// last, so each of the first two finds a quorum and completes a controlled shutdown; the last
    /// has none left and is stopped at once rather than waiting for a grant that cannot come.
    @Test func downStopsOneAtATimeKeepingTheControllerQuorum() throws {
        let tern = try #require(ternExecutablePath(), "the tern executable is built next to the tests")
        let directory = TemporaryDirectory(prefix: "cluster-down-order")
        let ports = try reserveLoopbackPorts(6)
        let voters = (0..<3).map { "\($0 + 1)@127.0.0.1:\(ports[3 + $0])" }.joined(separator: ",")
        for index in 0..<3 {
            try writeFile(directory.child("node-\(index + 1).properties"), """
                node.id=\(index + 1)
                process.roles=broker,controller
                controller.quorum.voters=\(voters)
                listeners=CLIENT://127.0.0.1:\(ports[index]),INTERNAL://127.0.0.1:\(ports[3 + index])
                log.dirs=data/node-\(index + 1)
                cluster.id=down-order
                default.replication.factor=3
                min.insync.replicas=2
                broker.heartbeat.interval.ms=200

                """)
        }
        let files = ClusterFiles(directory: directory.path)
        let nodes = try loadClusterNodes(in: directory.path)
        _ = try startCluster(nodes, files: files, nodeExecutable: tern, timeoutSeconds: 60) { _ in }
        let running = nodes.map { node in
            RunningNode(name: node.name, pid: readPidFile(files.pidPath(of: node.name)) ?? 0,
                        pidPath: files.pidPath(of: node.name), configuration: node.configuration)
        }
        defer { for node in running where isAlive(node.pid) { kill(node.pid, SIGKILL) } }
        let controller = try #require(activeControllerGuess(running))

        var reports: [String] = []
        try stopCluster(files: files, timeoutSeconds: 60) { reports.append($0) }
        let stopped = reports.filter { $0.hasPrefix("stopped ") }
        #expect(stopped.count == 3, "reports: \(reports)")
        #expect(stopped.last?.hasPrefix("stopped node-\(controller.rawValue) ") == true, "the active controller last: \(reports)")
        #expect(running.allSatisfy { !isAlive($0.pid) })
        for node in running {
            let log = String(decoding: try readFile(files.logPath(of: node.name), lastBytes: 1 << 20), as: UTF8.self)
            if node.configuration?.nodeID == controller {
                #expect(reports.contains { $0.hasPrefix("stopping \(node.name) ") && $0.contains("without a controlled shutdown") },
                        "reports: \(reports)")
                #expect(log.contains("stopping: terminated by signal"), "log: \(log)")
            } else {
                #expect(log.contains("controlled shutdown complete"), "log: \(log)")
            }
        }
    }

    @Test func aNodeExitingDuringStartupFailsUpWithItsLogTail() throws {
        let directory = TemporaryDirectory(prefix: "cluster-command")
        try writeFile(directory.child("node-1.properties"), nodeProperties(id: 1, clientPort: 19921, internalPort: 19931))
        let standIn = directory.child("failing-node")
        try writeFile(standIn, "#!/bin/sh\necho 'cannot bind the client listener'\nexit 3\n", mode: 0o755)
        let files = ClusterFiles(directory: directory.path)
        do {
            _ = try startCluster(try loadClusterNodes(in: directory.path), files: files, nodeExecutable: standIn, timeoutSeconds: 30) { _ in }
            Issue.record("no error")
        } catch {
            #expect(error.message.hasPrefix("node-1 exited with status 3 during startup\nthe end of"))
            #expect(error.message.hasSuffix("    cannot bind the client listener"))
        }
        #expect(readPidFile(files.pidPath(of: "node-1")) == nil, "a failed up leaves no pid file")
    }

    @Test func aFatalLogLineFailsUp() throws {
        let directory = TemporaryDirectory(prefix: "cluster-command")
        try writeFile(directory.child("node-1.properties"), nodeProperties(id: 1, clientPort: 19922, internalPort: 19932))
        let standIn = directory.child("halting-node")
        try writeFile(standIn, "#!/bin/sh\necho '2026-01-01T00:00:00.000Z [node 1] halted: broken invariant'\nsleep 600\n", mode: 0o755)
        let files = ClusterFiles(directory: directory.path)
        do {
            _ = try startCluster(try loadClusterNodes(in: directory.path), files: files, nodeExecutable: standIn, timeoutSeconds: 30) { _ in }
            Issue.record("no error")
        } catch {
            #expect(error.message.hasPrefix("node-1 logged a fatal error: 2026-01-01T00:00:00.000Z [node 1] halted: broken invariant"))
        }
        #expect(readPidFile(files.pidPath(of: "node-1")) == nil, "the node was stopped again")
    }

    func nodeProperties(id: Int, clientPort: UInt16, internalPort: UInt16) -> String {
        """
        node.id=\(id)
        process.roles=broker,controller
        controller.quorum.voters=\(id)@127.0.0.1:\(internalPort)
        listeners=CLIENT://127.0.0.1:\(clientPort),INTERNAL://127.0.0.1:\(internalPort)
        log.dirs=data
        cluster.id=test

        """
    }
}

func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    try #require(descriptor >= 0)
    defer { close(descriptor) }
    let bytes = Array(text.utf8)
    try #require(write(descriptor, bytes, bytes.count) == bytes.count)
}

/// A TCP listener on a free loopback port, closed when released: connections to it complete in
/// the kernel's backlog without an accept.
final class ListeningSocket {
    let descriptor: Int32
    let port: UInt16

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(descriptor >= 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) } }
        try #require(bound == 0 && listen(descriptor, 16) == 0)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        try #require(named == 0)
        self.descriptor = descriptor
        self.port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(descriptor) }
}
