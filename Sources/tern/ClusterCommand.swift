// `tern cluster up DIR` and `tern cluster down DIR`: a local cluster from a directory of
// `server.properties` files (see cluster-configs/README.md), one detached `tern broker` process per
// file. Everything the cluster writes stays under DIR:
//
//     DIR/node-N.properties    the configuration (log.dirs=data/node-N, relative to DIR)
//     DIR/data/node-N/         the node's data directory
//     DIR/logs/node-N.log      the node's standard output and error (the previous run's: .log.1)
//     DIR/run/node-N.pid       the running node's process id
#if canImport(Glibc)
import Posix
import Glibc
#endif
import KafkaClient
import Runtime
import TernCore

/// Why a cluster command failed, as the operator should read it.
struct ClusterCommandError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// One properties file of a cluster directory and the node it starts.
struct ClusterNode {
    /// Absolute, so the node finds it (and resolves a relative `log.dirs`) from any directory.
    var propertiesPath: String
    var properties: ServerProperties
    var configuration: NodeLaunchConfiguration

    var name: String { "node-\(configuration.nodeID.rawValue)" }
    var isBroker: Bool { configuration.roles.contains(.broker) }

    /// `FILE:LINE` of a key, for errors about the cluster as a whole.
    func place(of key: ServerPropertyKey) -> String {
        guard let line = properties.properties.first(where: { $0.key == key })?.line else { return propertiesPath }
        return "\(propertiesPath):\(line)"
    }
}

/// Where a cluster directory keeps what its processes write.
struct ClusterFiles {
    /// Absolute.
    var directory: String

    var logDirectory: String { directory + "/logs" }
    var runDirectory: String { directory + "/run" }
    func logPath(of nodeName: String) -> String { "\(logDirectory)/\(nodeName).log" }
    func pidPath(of nodeName: String) -> String { "\(runDirectory)/\(nodeName).pid" }
}

// MARK: - Command line

func runCluster(_ arguments: [String]) -> Never {
    let usageLine = "usage: tern cluster up|down DIR [--timeout-seconds N]"
    guard arguments.count >= 2 else { fail(usageLine) }
    let subcommand = arguments[0]
    var timeoutSeconds: Int?
    var index = 2
    while index < arguments.count {
        guard arguments[index] == "--timeout-seconds", index + 1 < arguments.count,
              let seconds = Int(arguments[index + 1]), seconds > 0, seconds <= 3_600 else { fail(usageLine) }
        timeoutSeconds = seconds
        index += 2
    }
    // Flushed line by line, so progress and errors (standard error) appear in order.
    func report(_ line: String) {
        print(line)
        fflush(nil)
    }
    do throws(ClusterCommandError) {
        let files = ClusterFiles(directory: try absolutePath(arguments[1]))
        switch subcommand {
        case "up":
            let nodes = try loadClusterNodes(in: files.directory)
            let bootstrap = try startCluster(nodes, files: files, nodeExecutable: try nodeExecutable(),
                                             timeoutSeconds: timeoutSeconds ?? 60, report: report)
            print(bootstrap)
        case "down":
            try stopCluster(files: files, timeoutSeconds: timeoutSeconds ?? 35, report: report)
        default:
            fail(usageLine)
        }
    } catch {
        fail("\(error)")
    }
    exit(0)
}

/// The program each node runs: this `tern` binary, or `TERN_CLUSTER_NODE_COMMAND` (tests run a
/// stand-in node with it). Either is given `broker --config FILE`.
func nodeExecutable() throws(ClusterCommandError) -> String {
    if let override = getenv("TERN_CLUSTER_NODE_COMMAND") { return String(cString: override) }
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { throw ClusterCommandError(message: "cannot find the tern executable (/proc/self/exe)") }
    return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

// MARK: - Configuration

/// Loads every `*.properties` file of `directory` (by name order) and checks that together they
/// make one cluster. Every file's errors are reported, not only the first.
func loadClusterNodes(in directory: String) throws(ClusterCommandError) -> [ClusterNode] {
    let names = try directoryEntries(directory).filter { $0.hasSuffix(".properties") }
    guard !names.isEmpty else { throw ClusterCommandError(message: "\(directory) has no *.properties files") }
    var nodes: [ClusterNode] = []
    var problems: [String] = []
    for name in names {
        let path = directory + "/" + name
        do throws(ServerPropertiesError) {
            let properties = try ServerProperties.load(path: path)
            nodes.append(ClusterNode(propertiesPath: path, properties: properties, configuration: try properties.launchConfiguration()))
        } catch {
            problems.append("\(error)")
        }
    }
    if problems.isEmpty { problems = clusterProblems(nodes) }
    guard problems.isEmpty else { throw ClusterCommandError(message: problems.joined(separator: "\n")) }
    return nodes.sorted { $0.configuration.nodeID < $1.configuration.nodeID }
}

/// What is wrong with the files as one cluster, though each is fine alone.
func clusterProblems(_ nodes: [ClusterNode]) -> [String] {
    var problems: [String] = []
    var nodeByID: [NodeID: ClusterNode] = [:]
    var ownerOfAddress: [SocketAddress: ClusterNode] = [:]
    var ownerOfDataDirectory: [String: ClusterNode] = [:]
    guard let first = nodes.first else { return ["no nodes"] }
    for node in nodes {
        let configuration = node.configuration
        if let other = nodeByID[configuration.nodeID] {
            problems.append("\(node.place(of: .nodeID)): node.id \(configuration.nodeID.rawValue) is also \(other.propertiesPath)'s")
        }
        nodeByID[configuration.nodeID] = node
        for address in [configuration.clientListener, configuration.internalListener].compactMap({ $0 }) {
            if let other = ownerOfAddress[address] {
                problems.append("\(node.place(of: .listeners)): \(address) is also a listener of \(other.propertiesPath)")
            }
            ownerOfAddress[address] = node
        }
        if let other = ownerOfDataDirectory[configuration.dataDirectory] {
            problems.append("\(node.place(of: .logDirectories)): \(configuration.dataDirectory) is also \(other.propertiesPath)'s data directory")
        }
        ownerOfDataDirectory[configuration.dataDirectory] = node
        if node.properties.value(of: .clusterID) != first.properties.value(of: .clusterID) {
            problems.append("\(node.place(of: .clusterID)): cluster.id differs from \(first.propertiesPath)'s")
        }
        if configuration.controllerVoters != first.configuration.controllerVoters {
            problems.append("\(node.place(of: .controllerQuorumVoters)): controller.quorum.voters differs from \(first.propertiesPath)'s")
        }
    }
    for voter in first.configuration.controllerVoters.keys.sorted() where nodeByID[voter] == nil {
        problems.append("\(first.place(of: .controllerQuorumVoters)): voter \(voter.rawValue) has no properties file in this directory")
    }
    let brokerCount = nodes.filter(\.isBroker).count
    if brokerCount == 0 { problems.append("no node has process.roles=broker") }
    for node in nodes {
        guard let factor = node.configuration.controller?.controller.defaultReplicationFactor, Int(factor) > brokerCount else { continue }
        problems.append("\(node.place(of: .defaultReplicationFactor)): default.replication.factor \(factor) is more than the \(brokerCount) brokers")
    }
    return problems
}

// MARK: - Up

/// Starts every node, detached, and waits until the cluster is healthy. Returns the bootstrap
/// address list. If a node fails to come up, the nodes already started are stopped again.
func startCluster(_ nodes: [ClusterNode], files: ClusterFiles, nodeExecutable: String, timeoutSeconds: Int,
                  report: (String) -> Void) throws(ClusterCommandError) -> String {
    for node in nodes {
        if let pid = readPidFile(files.pidPath(of: node.name)) {
            if isRunningClusterNode(pid, directory: files.directory) {
                throw ClusterCommandError(message: "\(node.name) is already running (pid \(pid)); run 'tern cluster down \(files.directory)' first")
            }
            unlink(files.pidPath(of: node.name))
        }
    }
    try makeDirectory(files.logDirectory)
    try makeDirectory(files.runDirectory)
    var started: [StartedNode] = []
    do throws(ClusterCommandError) {
        for node in nodes {
            let logPath = files.logPath(of: node.name)
            // Keep the previous run's log for a post-mortem, one generation only.
            rename(logPath, logPath + ".1")
            let pid = try spawnDetached(nodeExecutable, arguments: ["broker", "--config", node.propertiesPath], outputPath: logPath)
            started.append(StartedNode(node: node, pid: pid, logPath: logPath))
            try writePidFile(files.pidPath(of: node.name), pid: pid)
            report("started \(node.name) (pid \(pid)), log \(logPath)")
        }
        report("waiting up to \(timeoutSeconds) s for \(nodes.count) node(s) to be healthy")
        try waitUntilHealthy(started, deadlineMilliseconds: Clocks.monotonicMilliseconds() + Int64(timeoutSeconds) * 1_000)
    } catch {
        report("stopping the nodes started")
        stopProcesses(started.map { RunningNode(name: $0.node.name, pid: $0.pid, pidPath: files.pidPath(of: $0.node.name)) },
                      gracefulMilliseconds: 10_000, report: report)
        throw error
    }
    return nodes.filter(\.isBroker).compactMap { $0.configuration.advertisedClientListener?.description }.joined(separator: ",")
}

struct StartedNode {
    var node: ClusterNode
    var pid: pid_t
    var logPath: String
}

/// Healthy means: every node is still running with no fatal line in its log, every listener
/// (client and internal) accepts TCP connections, and every broker answers a Kafka Metadata
/// request listing all the cluster's brokers as live (so the controller quorum has a leader and
/// every broker is registered and unfenced) and naming a controller.
func waitUntilHealthy(_ nodes: [StartedNode], deadlineMilliseconds: Int64) throws(ClusterCommandError) {
    var ready = Set<pid_t>()
    while true {
        for started in nodes {
            if let status = reapIfExited(started.pid) {
                // A crash's backtrace buries its reason far above the log's last lines.
                let reason = fatalLine(inLog: started.logPath).map { ": \($0)" } ?? ""
                throw ClusterCommandError(message: "\(started.node.name) \(status) during startup\(reason)\nthe end of \(started.logPath):\n"
                                          + logTail(started.logPath))
            }
            if let line = fatalLine(inLog: started.logPath) {
                throw ClusterCommandError(message: "\(started.node.name) logged a fatal error: \(line)\nthe end of \(started.logPath):\n"
                                          + logTail(started.logPath))
            }
            guard !ready.contains(started.pid) else { continue }
            let configuration = started.node.configuration
            let listeners = [configuration.clientListener, configuration.internalListener].compactMap { $0 }
            if listeners.allSatisfy(acceptsConnections) { ready.insert(started.pid) }
        }
        if ready.count == nodes.count, brokersAgreeEveryoneIsLive(nodes) { return }
        guard Clocks.monotonicMilliseconds() < deadlineMilliseconds else {
            let waiting = nodes.filter { !ready.contains($0.pid) }
            throw ClusterCommandError(message: "not healthy before the deadline: " + waiting.map(\.node.name).joined(separator: ", ")
                                      + " did not accept connections on every listener, or a broker's Metadata"
                                      + " did not yet list every broker as live\n"
                                      + waiting.map { "the end of \($0.logPath):\n" + logTail($0.logPath) }.joined(separator: "\n"))
        }
        sleepMilliseconds(200)
    }
}

/// Whether every broker's Metadata answer lists every broker of the cluster and names a controller.
func brokersAgreeEveryoneIsLive(_ nodes: [StartedNode]) -> Bool {
    let brokers = nodes.filter(\.node.isBroker)
    let expected = brokers.map(\.node.configuration.nodeID).sorted()
    return brokers.allSatisfy { started in
        guard let listener = started.node.configuration.advertisedClientListener else { return false }
        let admin = KafkaAdminClient(bootstrap: [BrokerAddress(host: listener.host, port: listener.port)], requestTimeout: .seconds(2))
        defer { admin.close() }
        guard let metadata = try? admin.metadata(topics: []) else { return false }
        return metadata.brokers.map(\.nodeID).sorted() == expected && metadata.controllerID != nil
    }
}

/// A line that says the node cannot go on: the node host's halt, or a Swift runtime trap.
func fatalLine(inLog path: String) -> String? {
    guard let bytes = try? readFile(path, lastBytes: 1 << 20) else { return nil }
    let text = String(decoding: bytes, as: UTF8.self)
    return text.split(separator: "\n").first { line in
        let lowered = line.lowercased()
        return lowered.contains("fatal error") || lowered.contains("halted:")
    }.map(String.init)
}

/// The last lines of a log, indented, for an error message.
func logTail(_ path: String, lines: Int = 20) -> String {
    guard let bytes = try? readFile(path, lastBytes: 8 << 10), !bytes.isEmpty else { return "    (empty)" }
    let text = String(decoding: bytes, as: UTF8.self)
    return text.split(separator: "\n").suffix(lines).map { "    " + $0 }.joined(separator: "\n")
}

// MARK: - Down

struct RunningNode {
    var name: String
    var pid: pid_t
    var pidPath: String
    /// From the node's properties file; nil when the file is gone or invalid.
    var configuration: NodeLaunchConfiguration? = nil
}

/// Stops every node with a pid file in DIR/run, one at a time, in the order that keeps a
/// controller quorum longest (`shutdownOrder`): SIGTERM, and the next node once it has exited. A
/// broker then shuts down in a controlled way, moving its leaderships away, which needs the
/// controller quorum. A node stopped when too few controller voters are left to form a quorum
/// cannot be granted a controlled shutdown (the last node of a three-voter cluster): it is told to
/// stop at once (SIGTERM, then SIGINT: a second signal), rather than waiting in vain. Nodes still
/// running after `timeoutSeconds` in all get SIGKILL. A stopped cluster is fine: nothing to do.
func stopCluster(files: ClusterFiles, timeoutSeconds: Int, report: (String) -> Void) throws(ClusterCommandError) {
    let pidFiles = ((try? directoryEntries(files.runDirectory)) ?? []).filter { $0.hasSuffix(".pid") }
    var running: [RunningNode] = []
    for file in pidFiles {
        let path = files.runDirectory + "/" + file
        let name = String(file.dropLast(".pid".count))
        guard let pid = readPidFile(path), isRunningClusterNode(pid, directory: files.directory) else {
            unlink(path)
            continue
        }
        running.append(RunningNode(name: name, pid: pid, pidPath: path))
    }
    if running.isEmpty {
        report("no node of \(files.directory) is running")
        return
    }
    // Without the configurations (files removed or broken) the voters are unknown: every node
    // then gets SIGTERM at once, as before.
    let configurations = (try? loadClusterNodes(in: files.directory)) ?? []
    for index in running.indices {
        running[index].configuration = configurations.first { $0.name == running[index].name }?.configuration
    }
    let gracefulDeadlineMilliseconds = Clocks.monotonicMilliseconds() + Int64(timeoutSeconds) * 1_000
    var stillRunning: [RunningNode] = []
    if let voters = configurations.first?.configuration.controllerVoters.keys, running.allSatisfy({ $0.configuration != nil }) {
        let ordered = shutdownOrder(running, activeController: activeControllerGuess(running))
        stillRunning = stopOneAtATime(ordered, voters: Set(voters), deadlineMilliseconds: gracefulDeadlineMilliseconds, report: report)
    } else {
        stillRunning = running
    }
    if !stillRunning.isEmpty {
        let remainingMilliseconds = max(gracefulDeadlineMilliseconds - Clocks.monotonicMilliseconds(), 1_000)
        stillRunning = stopProcesses(stillRunning, gracefulMilliseconds: remainingMilliseconds, report: report)
    }
    guard stillRunning.isEmpty else {
        throw ClusterCommandError(message: "still running after SIGKILL: " + stillRunning.map { "\($0.name) (pid \($0.pid))" }.joined(separator: ", "))
    }
}

/// Brokers that are not controller voters first, then the voters, the active controller last: each
/// controlled shutdown before the last then finds a quorum to grant it (the leaving voter still
/// votes until it exits), and the controller stays where it is rather than moving with every stop.
func shutdownOrder(_ nodes: [RunningNode], activeController: NodeID?) -> [RunningNode] {
    func rank(_ node: RunningNode) -> Int {
        guard let configuration = node.configuration else { return 0 }
        if configuration.nodeID == activeController { return 3 }
        return configuration.controllerVoters[configuration.nodeID] == nil ? 1 : 2
    }
    return nodes.sorted { left, right in
        let leftRank = rank(left), rightRank = rank(right)
        if leftRank != rightRank { return leftRank < rightRank }
        return (left.configuration?.nodeID.rawValue ?? -1, left.name) < (right.configuration?.nodeID.rawValue ?? -1, right.name)
    }
}

/// Which node the brokers say is the active controller (Metadata names the controller they send
/// admin requests to). Only an ordering hint: a wrong or missing answer makes the shutdown move the
/// controller once more, not less safe.
func activeControllerGuess(_ nodes: [RunningNode]) -> NodeID? {
    for node in nodes {
        guard let configuration = node.configuration, configuration.roles.contains(.broker),
              let listener = configuration.advertisedClientListener else { continue }
        let admin = KafkaAdminClient(bootstrap: [BrokerAddress(host: listener.host, port: listener.port)], requestTimeout: .seconds(2))
        defer { admin.close() }
        if let controller = (try? admin.metadata(topics: []))?.controllerID { return controller }
    }
    return nil
}

/// Stops `nodes` in order, each waiting for the previous one's exit (until the deadline). Returns
/// the nodes not stopped by the deadline (the one being waited for and those after it).
func stopOneAtATime(_ nodes: [RunningNode], voters: Set<NodeID>, deadlineMilliseconds: Int64,
                    report: (String) -> Void) -> [RunningNode] {
    for (index, node) in nodes.enumerated() {
        let runningVoters = nodes[index...].filter { $0.configuration.map { voters.contains($0.nodeID) } ?? false }.count
        if runningVoters * 2 > voters.count {
            report("stopping \(node.name) (pid \(node.pid))")
            signalNodeProcessGroup(node.pid, SIGTERM)
        } else {
            // Its controlled shutdown would wait for a quorum that cannot form: a second signal
            // stops it at once (its queued writes are still made durable on the way out).
            report("stopping \(node.name) (pid \(node.pid)) without a controlled shutdown: "
                   + "\(runningVoters) of \(voters.count) controller voters are running, no quorum to grant one")
            signalNodeProcessGroup(node.pid, SIGTERM)
            signalNodeProcessGroup(node.pid, SIGINT)
        }
        guard waitForExit([node], deadlineMilliseconds: deadlineMilliseconds).isEmpty else { return Array(nodes[index...]) }
        unlink(node.pidPath)
        report("stopped \(node.name) (pid \(node.pid))")
    }
    return []
}

/// SIGTERM, a bounded wait, SIGKILL, another bounded wait; removes the pid files of the nodes
/// that are gone. Returns those that are not.
@discardableResult
func stopProcesses(_ nodes: [RunningNode], gracefulMilliseconds: Int64, report: (String) -> Void) -> [RunningNode] {
    for node in nodes { signalNodeProcessGroup(node.pid, SIGTERM) }
    var remaining = waitForExit(nodes, deadlineMilliseconds: Clocks.monotonicMilliseconds() + gracefulMilliseconds)
    if !remaining.isEmpty {
        report("sending SIGKILL to " + remaining.map(\.name).joined(separator: ", ") + " after \(gracefulMilliseconds / 1_000) s")
        for node in remaining { signalNodeProcessGroup(node.pid, SIGKILL) }
        remaining = waitForExit(remaining, deadlineMilliseconds: Clocks.monotonicMilliseconds() + 5_000)
    }
    for node in nodes where !remaining.contains(where: { $0.pid == node.pid }) {
        unlink(node.pidPath)
        report("stopped \(node.name) (pid \(node.pid))")
    }
    return remaining
}

func waitForExit(_ nodes: [RunningNode], deadlineMilliseconds: Int64) -> [RunningNode] {
    var remaining = nodes
    while true {
        remaining = remaining.filter { node in
            _ = reapIfExited(node.pid)
            return isAlive(node.pid)
        }
        if remaining.isEmpty || Clocks.monotonicMilliseconds() >= deadlineMilliseconds { return remaining }
        sleepMilliseconds(100)
    }
}

/// Each node leads its own process group (it was started in a new session): signalling the group
/// also reaches anything the node started.
func signalNodeProcessGroup(_ pid: pid_t, _ signal: Int32) {
    if kill(-pid, signal) != 0 { kill(pid, signal) }
}

// MARK: - Processes

/// Starts `executable` in a new session (so a terminal's SIGINT or SIGHUP does not reach it and it
/// outlives this command), standard input from /dev/null, standard output and error to `outputPath`.
func spawnDetached(_ executable: String, arguments: [String], outputPath: String) throws(ClusterCommandError) -> pid_t {
    var actions = posix_spawn_file_actions_t()
    var attributes = posix_spawnattr_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawnattr_init(&attributes)
    defer {
        posix_spawn_file_actions_destroy(&actions)
        posix_spawnattr_destroy(&attributes)
    }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // POSIX_SPAWN_SETSID (glibc ≥ 2.26); the Swift Glibc module does not import the GNU flag.
    let spawnNewSession: Int16 = 0x80
    posix_spawnattr_setflags(&attributes, spawnNewSession)
    let argumentVector = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { argumentVector.forEach { free($0) } }
    var pid: pid_t = 0
    let outcome = posix_spawn(&pid, executable, &actions, &attributes, argumentVector, environ)
    guard outcome == 0 else {
        throw ClusterCommandError(message: "cannot start \(executable): \(String(cString: strerror(outcome)))")
    }
    return pid
}

/// Reaps `pid` if it is a child of this process that has ended, and says how it ended.
func reapIfExited(_ pid: pid_t) -> String? {
    var status: Int32 = 0
    guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
    let signal = status & 0x7f
    return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
}

/// Alive, and not a zombie waiting for its parent.
func isAlive(_ pid: pid_t) -> Bool {
    guard kill(pid, 0) == 0 || errno == EPERM else { return false }
    guard let stat = try? readFile("/proc/\(pid)/stat", lastBytes: 4096) else { return false }
    // "pid (command) S ...": the state follows the last ')'.
    guard let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return true }
    return stat[close + 2] != UInt8(ascii: "Z")
}

/// A pid file can outlive its process, and the pid be reused by an unrelated one: only a live
/// process whose command line names a file in this cluster directory is taken for a node.
func isRunningClusterNode(_ pid: pid_t, directory: String) -> Bool {
    guard isAlive(pid), let commandLine = try? readFile("/proc/\(pid)/cmdline", lastBytes: 64 << 10) else { return false }
    let arguments = commandLine.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    return arguments.contains { $0.hasPrefix(directory + "/") && $0.hasSuffix(".properties") }
}

func readPidFile(_ path: String) -> pid_t? {
    guard let bytes = try? readFile(path, lastBytes: 64) else { return nil }
    let text = String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace }
    guard let pid = pid_t(text), pid > 0 else { return nil }
    return pid
}

/// Written to a temporary name and renamed, so a reader never sees half a pid.
func writePidFile(_ path: String, pid: pid_t) throws(ClusterCommandError) {
    let temporary = path + ".new"
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw ClusterCommandError(message: "cannot write \(temporary): \(String(cString: strerror(errno)))") }
    let bytes = Array("\(pid)\n".utf8)
    let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    close(descriptor)
    guard written == bytes.count, rename(temporary, path) == 0 else {
        throw ClusterCommandError(message: "cannot write \(path): \(String(cString: strerror(errno)))")
    }
}

// MARK: - Files and sockets

struct FileError: Error {}

/// The last `lastBytes` bytes of a file (all of a smaller one), never more, so a large log never
/// fills memory.
func readFile(_ path: String, lastBytes: Int) throws(FileError) -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw FileError() }
    defer { close(descriptor) }
    // /proc files cannot seek to their end: they are read from the start.
    let size = lseek(descriptor, 0, SEEK_END)
    guard lseek(descriptor, max(0, size - off_t(lastBytes)), SEEK_SET) >= 0 else { throw FileError() }
    var bytes = [UInt8](repeating: 0, count: lastBytes)
    var filled = 0
    while filled < lastBytes {
        let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, lastBytes - filled) }
        if count < 0, errno == EINTR { continue }
        guard count >= 0 else { throw FileError() }
        if count == 0 { break }
        filled += count
    }
    return Array(bytes[0..<filled])
}

/// Entry names, sorted, without "." and "..".
func directoryEntries(_ path: String) throws(ClusterCommandError) -> [String] {
    guard let directory = opendir(path) else {
        throw ClusterCommandError(message: "cannot read directory \(path): \(String(cString: strerror(errno)))")
    }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafePointer(to: &entry.pointee.d_name) {
            String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

func makeDirectory(_ path: String) throws(ClusterCommandError) {
    guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
        throw ClusterCommandError(message: "cannot create \(path): \(String(cString: strerror(errno)))")
    }
}

func absolutePath(_ path: String) throws(ClusterCommandError) -> String {
    guard let resolved = realpath(path, nil) else {
        throw ClusterCommandError(message: "cannot find directory \(path): \(String(cString: strerror(errno)))")
    }
    defer { free(resolved) }
    return String(cString: resolved)
}

/// Does something accept a TCP connection at `address` within half a second? The connection is
/// closed at once, before any byte is sent.
func acceptsConnections(_ address: SocketAddress) -> Bool {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var found: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(address.host, String(address.port), &hints, &found) == 0, let first = found else { return false }
    defer { freeaddrinfo(first) }
    var candidate: UnsafeMutablePointer<addrinfo>? = first
    while let info = candidate {
        candidate = info.pointee.ai_next
        let descriptor = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { continue }
        defer { close(descriptor) }
        if connect(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return true }
        guard errno == EINPROGRESS else { continue }
        var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        guard poll(&poller, 1, 500) == 1 else { continue }
        var socketError: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &socketError, &length) == 0, socketError == 0 { return true }
    }
    return false
}


func sleepMilliseconds(_ milliseconds: Int) {
    var request = timespec(tv_sec: milliseconds / 1_000, tv_nsec: (milliseconds % 1_000) * 1_000_000)
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
