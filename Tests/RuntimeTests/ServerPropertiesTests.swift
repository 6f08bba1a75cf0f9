import Broker
import Controller
import Glibc
import Posix
import Runtime
import TernCore
import Testing

@Suite struct ServerPropertiesTests {
    static let combined = """
        # node 1 of three, broker and controller
        node.id=1
        process.roles=broker,controller
        controller.quorum.voters=1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194
        listeners=CLIENT://127.0.0.1:19092,INTERNAL://127.0.0.1:19192
        log.dirs=data/node-1
        cluster.id=tern-local
        num.partitions=3
        default.replication.factor=3
        min.insync.replicas=2
        unclean.leader.election.enable=false
        log.segment.bytes=1048576
        replica.lag.time.max.ms=10000
        broker.heartbeat.interval.ms=500
        broker.session.timeout.ms=3000
        message.max.bytes=2000000
        socket.request.max.bytes=20000000
        log.roll.hours=12
        log.message.timestamp.type=LogAppendTime
        auto.create.topics.enable=false
        log.retention.hours=72
        log.retention.bytes=1073741824
        log.retention.check.interval.ms=60000
        """

    static let brokerOnly = """
        node.id=4
        process.roles=broker
        controller.quorum.voters=1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194
        listeners=CLIENT://0.0.0.0:19095,INTERNAL://127.0.0.1:19195
        advertised.listeners=CLIENT://localhost:19095
        log.dirs=/var/lib/tern/node-4
        cluster.id=tern-local
        min.insync.replicas=2
        """

    static let controllerOnly = """
        node.id=1
        process.roles=controller
        controller.quorum.voters=1@127.0.0.1:19192
        listeners=INTERNAL://127.0.0.1:19192
        log.dirs=metadata
        cluster.id=tern-local
        broker.session.timeout.ms=6000
        min.insync.replicas=1
        """

    func launch(_ text: String, fileName: String = "server.properties") throws -> NodeLaunchConfiguration {
        try ServerProperties.parse(text, fileName: fileName).launchConfiguration()
    }

    /// The error a file gives, from `parse` or from `launchConfiguration`.
    func error(_ text: String, fileName: String = "server.properties") -> ServerPropertiesError? {
        do {
            _ = try ServerProperties.parse(text, fileName: fileName).launchConfiguration()
            return nil
        } catch {
            return error
        }
    }

    /// `combined` with one line replaced (`key=...`) or, with a nil value, removed.
    func combinedWith(_ key: String, _ value: String?) -> String {
        Self.combined.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line in
            guard line.hasPrefix(key + "=") else { return String(line) }
            return value.map { "\(key)=\($0)" }
        }.joined(separator: "\n")
    }

    // MARK: Valid files

    @Test func combinedNodeTakesEveryKey() throws {
        let configuration = try launch(Self.combined, fileName: "cluster/three-node/node-1.properties")
        #expect(configuration.nodeID == NodeID(1))
        #expect(configuration.roles == [.broker, .controller])
        #expect(configuration.clientListener == SocketAddress(host: "127.0.0.1", port: 19092))
        #expect(configuration.advertisedClientListener == SocketAddress(host: "127.0.0.1", port: 19092))
        #expect(configuration.internalListener == SocketAddress(host: "127.0.0.1", port: 19192))
        #expect(configuration.controllerVoters == [NodeID(1): SocketAddress(host: "127.0.0.1", port: 19192),
                                                   NodeID(2): SocketAddress(host: "127.0.0.1", port: 19193),
                                                   NodeID(3): SocketAddress(host: "127.0.0.1", port: 19194)])
        #expect(configuration.dataDirectory == "cluster/three-node/data/node-1", "relative to the properties file")
        #expect(configuration.maximumRequestBytes == 20_000_000)

        let broker = try #require(configuration.broker)
        #expect(broker.brokerID == NodeID(1) && broker.clusterID == "tern-local")
        #expect(broker.controllerVoters == [NodeID(1), NodeID(2), NodeID(3)])
        #expect(broker.endpoints == [BrokerEndpoint(listenerName: "CLIENT", host: "127.0.0.1", port: 19092),
                                     BrokerEndpoint(listenerName: "INTERNAL", host: "127.0.0.1", port: 19192)])
        #expect(broker.heartbeatInterval == .milliseconds(500))
        #expect(broker.dataPlane.replication.minInSyncReplicas == 2)
        #expect(broker.dataPlane.replication.replicaLagTimeMax == .milliseconds(10_000))
        #expect(broker.dataPlane.log.segmentBytes == 1_048_576)
        #expect(broker.dataPlane.log.segmentMilliseconds == 12 * 3_600_000)
        #expect(broker.dataPlane.log.messageTimestampType == .logAppendTime)
        #expect(!broker.dataPlane.autoCreateTopicsEnabled)
        #expect(broker.dataPlane.log.retentionMilliseconds == 72 * 3_600_000)
        #expect(broker.dataPlane.log.retentionBytes == 1 << 30)
        #expect(broker.dataPlane.retentionCheckInterval == .seconds(60))
        #expect(broker.dataPlane.maximumMessageBytes == 2_000_000)

        let controller = try #require(configuration.controller)
        #expect(controller.raft.raft.nodeID == NodeID(1))
        #expect(controller.raft.raft.voters == [NodeID(1), NodeID(2), NodeID(3)])
        #expect(controller.controller.clusterID == "tern-local")
        #expect(controller.controller.defaultPartitionCount == 3)
        #expect(controller.controller.defaultReplicationFactor == 3)
        #expect(controller.controller.defaultMinInSyncReplicas == 2)
        #expect(controller.controller.uncleanLeaderElectionEnabled == false)
        #expect(controller.controller.brokerSessionTimeout == .milliseconds(3_000))
    }

    @Test func brokerOnlyNodeAdvertisesItsClientAddress() throws {
        let configuration = try launch(Self.brokerOnly)
        #expect(configuration.roles == [.broker] && configuration.controller == nil)
        #expect(configuration.clientListener == SocketAddress(host: "0.0.0.0", port: 19095))
        #expect(configuration.advertisedClientListener == SocketAddress(host: "localhost", port: 19095))
        #expect(configuration.dataDirectory == "/var/lib/tern/node-4", "absolute paths stay as they are")
        let broker = try #require(configuration.broker)
        #expect(broker.endpoints == [BrokerEndpoint(listenerName: "CLIENT", host: "localhost", port: 19095),
                                     BrokerEndpoint(listenerName: "INTERNAL", host: "127.0.0.1", port: 19195)])
        #expect(broker.dataPlane.replication.minInSyncReplicas == 2)
        #expect(broker.heartbeatInterval == BrokerConfiguration(brokerID: NodeID(4), clusterID: "", controllerVoters: [NodeID(1)]).heartbeatInterval,
                "unset keys keep the defaults")
    }

    @Test func controllerOnlyNodeHasNoClientListener() throws {
        let configuration = try launch(Self.controllerOnly)
        #expect(configuration.roles == [.controller] && configuration.broker == nil)
        #expect(configuration.clientListener == nil && configuration.advertisedClientListener == nil)
        #expect(configuration.dataDirectory == "metadata", "a bare file name has no directory to resolve against")
        let controller = try #require(configuration.controller)
        #expect(controller.controller.brokerSessionTimeout == .milliseconds(6_000))
        #expect(controller.controller.defaultReplicationFactor == 1 && controller.controller.defaultPartitionCount == 1)
    }

    @Test func javaPropertiesSyntax() throws {
        let text = "  # indented comment\r\n! bang comment\r\n\r\n"
            + "node.id : 1\n"
            + "process.roles broker,\\\n    controller\n"
            + "controller.quorum.voters=1@127.0.0.1:19192\n"
            + "listeners=CLIENT://127.0.0.1:19092,\\\n  INTERNAL://127.0.0.1:19192   \n"
            + "log.dirs=data\\u002Fnode\\ 1\n"
            + "cluster.id=tern"
        let properties = try ServerProperties.parse(text, fileName: "dir/server.properties")
        #expect(properties.properties.map(\.line) == [4, 5, 7, 8, 10, 11], "a continued property keeps its first line")
        #expect(properties.value(of: .processRoles) == "broker,controller")
        let configuration = try properties.launchConfiguration()
        #expect(configuration.roles == [.broker, .controller])
        #expect(configuration.internalListener == SocketAddress(host: "127.0.0.1", port: 19192))
        #expect(configuration.dataDirectory == "dir/data/node 1")
    }

    // MARK: Errors name the file, the line and the key

    @Test func unknownKey() {
        let failure = error(Self.combined + "\nlog.dirz=/tmp")
        #expect(failure?.problem == .unknownKey && failure?.key == "log.dirz" && failure?.line == 24)
        #expect(failure?.description == "server.properties:24: unknown key 'log.dirz'")
    }

    @Test(arguments: ["log.flush.interval.messages", "log.dir", "listener.security.protocol.map"])
    func keysTernWouldIgnoreAreUnknown(key: String) {
        #expect(error(Self.combined + "\n\(key)=1")?.problem == .unknownKey)
    }

    /// Kafka's precedence: log.retention.ms over .minutes over .hours; -1 keeps everything.
    @Test func retentionKeysFollowKafkasPrecedence() throws {
        func retention(_ lines: String) throws -> Int64? {
            try launch(Self.brokerOnly + "\n" + lines).broker?.dataPlane.log.retentionMilliseconds
        }
        #expect(try retention("log.retention.hours=2\nlog.retention.minutes=5") == 300_000)
        #expect(try retention("log.retention.hours=2\nlog.retention.minutes=5\nlog.retention.ms=1234") == 1_234)
        #expect(try retention("log.retention.hours=-1") == -1)
        #expect(try retention("log.retention.ms=-1\nlog.retention.hours=2") == -1)
        #expect(try retention("") == 7 * 24 * 3_600_000, "Kafka's default: 168 hours")
    }

    @Test func duplicateKey() {
        let failure = error(Self.combined + "\nnode.id=2", fileName: "node-1.properties")
        #expect(failure?.problem == .duplicateKey(firstLine: 2) && failure?.line == 24)
        #expect(failure?.description == "node-1.properties:24: duplicate key 'node.id' (first set on line 2)")
    }

    @Test(arguments: ServerPropertyKey.allCases.filter(\.isRequired))
    func missingRequiredKey(key: ServerPropertyKey) {
        let failure = error(combinedWith(key.rawValue, nil))
        #expect(failure?.problem == .missingKey && failure?.key == key.rawValue && failure?.line == nil)
        #expect(failure?.description == "server.properties: missing required key '\(key.rawValue)'")
    }

    @Test func malformedLines() {
        let noKey = error("=value")
        #expect(noKey?.problem == .malformedLine(reason: "a property needs a key before its '=' or ':'") && noKey?.line == 1)
        let badEscape = error("# comment\nlog.dirs=\\u12")
        #expect(badEscape?.line == 2 && badEscape?.description.hasPrefix("server.properties:2: a '\\u' escape") == true)
    }

    @Test func unreadableFile() {
        #expect(throws: ServerPropertiesError.self) { try ServerProperties.load(path: "/nonexistent/server.properties") }
        do {
            _ = try ServerProperties.load(path: "/nonexistent/server.properties")
        } catch {
            #expect(error.description == "/nonexistent/server.properties: cannot read the file: No such file or directory")
        }
    }

    @Test func loadReadsAFileAndResolvesLogDirsNextToIt() throws {
        let directory = TemporaryDirectory(prefix: "server-properties")
        let path = directory.path + "/node-1.properties"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(descriptor >= 0)
        let bytes = Array(Self.combined.utf8)
        #expect(write(descriptor, bytes, bytes.count) == bytes.count)
        close(descriptor)
        let configuration = try ServerProperties.load(path: path).launchConfiguration()
        #expect(configuration.dataDirectory == directory.path + "/data/node-1")
    }

    /// Each bad value: the key, the line it is on, and the words of the message.
    @Test(arguments: [
        ("min.insync.replicas", "two", 10, "'min.insync.replicas' must be an integer between 1 and 64, got 'two'"),
        ("min.insync.replicas", "0", 10, "must be an integer between 1 and 64"),
        ("min.insync.replicas", "4", 10, "is larger than default.replication.factor (3)"),
        ("node.id", "-1", 2, "'node.id' must be an integer ≥ 0, got '-1'"),
        ("node.id", "2", 5, "INTERNAL listener 127.0.0.1:19192 differs from this node's entry in controller.quorum.voters (127.0.0.1:19193)"),
        ("node.id", "7", 4, "does not name node.id 7, but process.roles includes controller"),
        ("process.roles", "broker,broker", 3, "names 'broker' twice"),
        ("process.roles", "leader", 3, "must list broker, controller or both, got 'leader'"),
        ("controller.quorum.voters", "1@127.0.0.1", 4, "entry '1@127.0.0.1': needs HOST:PORT"),
        ("controller.quorum.voters", "one@127.0.0.1:19192", 4, "must look like ID@HOST:PORT"),
        ("controller.quorum.voters", "1@127.0.0.1:19192,1@127.0.0.1:19193", 4, "names node 1 twice"),
        ("controller.quorum.voters", "1@127.0.0.1:19199", 5, "INTERNAL listener 127.0.0.1:19192 differs"),
        ("listeners", "CLIENT://127.0.0.1:70000,INTERNAL://127.0.0.1:19192", 5, "needs a port between 1 and 65535"),
        ("listeners", "PLAINTEXT://127.0.0.1:19092,INTERNAL://127.0.0.1:19192", 5, "unknown listener name 'PLAINTEXT'"),
        ("listeners", "INTERNAL://127.0.0.1:19192", 5, "must have a CLIENT listener on a broker"),
        ("listeners", "CLIENT://127.0.0.1:19092", 5, "must have an INTERNAL listener"),
        ("listeners", "CLIENT://127.0.0.1:19192,INTERNAL://127.0.0.1:19192", 5, "share port 19192"),
        ("listeners", "CLIENT://0.0.0.0:19092,INTERNAL://127.0.0.1:19192", 5, "set advertised.listeners"),
        ("log.dirs", "a,b", 6, "lists 2 directories"),
        ("cluster.id", "my cluster", 7, "must be 1 to 255 characters"),
        ("num.partitions", "0", 8, "'num.partitions' must be an integer between 1 and 10000, got '0'"),
        ("default.replication.factor", "100", 9, "between 1 and 64"),
        ("unclean.leader.election.enable", "yes", 11, "must be true or false, got 'yes'"),
        ("log.segment.bytes", "10", 12, "must be an integer between 62 and 2147483647"),
        ("replica.lag.time.max.ms", "0", 13, "must be an integer ≥ 1, got '0'"),
        ("broker.heartbeat.interval.ms", "3000", 14, "shorter than broker.session.timeout.ms"),
        ("broker.session.timeout.ms", "abc", 15, "must be an integer ≥ 1"),
        ("message.max.bytes", "1", 16, "must be an integer ≥ 61"),
        ("socket.request.max.bytes", "1k", 17, "must be an integer ≥ 1024"),
        ("log.roll.hours", "0", 18, "must be an integer ≥ 1, got '0'"),
        ("log.message.timestamp.type", "logappendtime", 19, "must be CreateTime or LogAppendTime, got 'logappendtime'"),
        ("auto.create.topics.enable", "1", 20, "must be true or false, got '1'"),
        ("log.retention.hours", "-2", 21, "must be an integer ≥ -1, got '-2'"),
        ("log.retention.bytes", "lots", 22, "must be an integer ≥ -1, got 'lots'"),
        ("log.retention.check.interval.ms", "0", 23, "must be an integer ≥ 1, got '0'"),
    ])
    func invalidValue(key: String, value: String, line: Int, message: String) {
        let failure = error(combinedWith(key, value))
        #expect(failure?.line == line, "\(failure?.description ?? "no error")")
        #expect(failure?.description.contains(message) == true, "\(failure?.description ?? "no error")")
        #expect(failure?.description.hasPrefix("server.properties:\(line): '") == true)
    }

    @Test func roleSpecificKeysAreRefusedOnNodesWithoutTheRole() {
        let onBroker = error(Self.brokerOnly + "\nnum.partitions=3")
        #expect(onBroker?.description == "server.properties:9: 'num.partitions' applies only to controllers, and process.roles has no controller")
        let onController = error(Self.controllerOnly + "\nmessage.max.bytes=100000")
        #expect(onController?.description == "server.properties:9: 'message.max.bytes' applies only to brokers, and process.roles has no broker")
        let clientListener = error(Self.controllerOnly.replacingListeners("CLIENT://127.0.0.1:19092,INTERNAL://127.0.0.1:19192"))
        #expect(clientListener?.description == "server.properties:4: 'listeners' has a CLIENT listener, but process.roles has no broker")
    }

    @Test func aVoterMustRunAController() {
        let failure = error(Self.brokerOnly.replacingOccurrences("node.id=4", "node.id=1"))
        #expect(failure?.description == "server.properties:3: 'controller.quorum.voters' names node.id 1, but process.roles has no controller")
    }

    @Test func advertisedListenersNameOnlyTheClientListener() {
        let failure = error(Self.brokerOnly.replacingOccurrences("advertised.listeners=CLIENT://localhost:19095",
                                                                  "advertised.listeners=INTERNAL://localhost:19195"))
        #expect(failure?.description == "server.properties:5: 'advertised.listeners' has unknown listener name 'INTERNAL'; Tern's listeners are CLIENT")
    }
}

private extension String {
    func replacingOccurrences(_ old: String, _ new: String) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).map { $0 == old ? new : String($0) }.joined(separator: "\n")
    }

    func replacingListeners(_ value: String) -> String {
        split(separator: "\n", omittingEmptySubsequences: false).map { $0.hasPrefix("listeners=") ? "listeners=\(value)" : String($0) }
            .joined(separator: "\n")
    }
}
