import Broker
import Controller
import LogStorage
import Posix
import Raft
import TernCore

extension ServerProperties {
    /// Checks every value, alone and against the others, and builds what the node starts from.
    /// Keys the file leaves out take Kafka's defaults (which are also the defaults of the
    /// configuration types).
    public func launchConfiguration() throws(ServerPropertiesError) -> NodeLaunchConfiguration {
        let nodeID = NodeID(Int32(try requiredInteger(.nodeID, in: 0...Int64(Int32.max), limitIsTechnical: true)))
        let roles = try processRoles()
        try checkScopes(roles: roles)
        let isBroker = roles.contains(.broker)
        let isController = roles.contains(.controller)
        let voters = try controllerQuorumVoters()
        let listeners = try self.listeners(isBroker: isBroker)
        let clusterID = try self.clusterID()
        let dataDirectory = try self.dataDirectory()
        let minInSyncReplicas = try integer(.minInSyncReplicas, in: 1...Int64(TopicRules.maximumReplicationFactor)).map { Int($0) }
        let sessionTimeout = try milliseconds(.brokerSessionTimeoutMilliseconds)

        let voterKey = ServerPropertyKey.controllerQuorumVoters
        if isController {
            guard let ownVoterAddress = voters[nodeID] else {
                throw invalid(voterKey, "does not name node.id \(nodeID.rawValue), but process.roles includes controller")
            }
            guard ownVoterAddress == listeners.internal else {
                throw invalid(.listeners, "INTERNAL listener \(listeners.internal) differs from this node's entry in "
                              + "controller.quorum.voters (\(ownVoterAddress)): other controllers would not reach it")
            }
        } else if voters[nodeID] != nil {
            throw invalid(voterKey, "names node.id \(nodeID.rawValue), but process.roles has no controller")
        }

        var broker: BrokerConfiguration?
        if isBroker, let client = listeners.client {
            let advertised = listeners.advertisedClient ?? client
            var configuration = BrokerConfiguration(
                brokerID: nodeID, clusterID: clusterID, controllerVoters: voters.keys.sorted(),
                endpoints: [BrokerEndpoint(listenerName: BrokerEndpoint.clientListenerName, host: advertised.host, port: advertised.port),
                            BrokerEndpoint(listenerName: BrokerEndpoint.internalListenerName,
                                           host: listeners.internal.host, port: listeners.internal.port)])
            if let interval = try milliseconds(.brokerHeartbeatIntervalMilliseconds) { configuration.heartbeatInterval = interval }
            if let sessionTimeout { configuration.sessionTimeout = sessionTimeout }
            if let minInSyncReplicas { configuration.dataPlane.replication.minInSyncReplicas = minInSyncReplicas }
            if let lag = try milliseconds(.replicaLagTimeMaxMilliseconds) { configuration.dataPlane.replication.replicaLagTimeMax = lag }
            if let segmentBytes = try integer(.logSegmentBytes, in: (RecordBatchSizeLimits.minimumBatchBytes + 1)...LogConfiguration.maximumSegmentBytes) {
                configuration.dataPlane.log.segmentBytes = segmentBytes
            }
            // Kafka's precedence: log.roll.ms over log.roll.hours.
            if let rollMilliseconds = try integer(.logRollMilliseconds, in: 1...Int64.max, limitIsTechnical: true) {
                configuration.dataPlane.log.segmentMilliseconds = rollMilliseconds
            } else if let rollHours = try integer(.logRollHours, in: 1...Int64(Int32.max), limitIsTechnical: true) {
                configuration.dataPlane.log.segmentMilliseconds = rollHours * 3_600_000
            }
            if let retention = try retentionMilliseconds() { configuration.dataPlane.log.retentionMilliseconds = retention }
            if let bytes = try integer(.logRetentionBytes, in: -1...Int64.max, limitIsTechnical: true) {
                configuration.dataPlane.log.retentionBytes = bytes
            }
            if let interval = try milliseconds(.logRetentionCheckIntervalMilliseconds) { configuration.dataPlane.retentionCheckInterval = interval }
            if let enabled = try boolean(.autoCreateTopicsEnable) { configuration.dataPlane.autoCreateTopicsEnabled = enabled }
            if let property = property(.logMessageTimestampType) {
                guard let type = TopicConfigValues.timestampType(property.value) else {
                    throw invalid(.logMessageTimestampType, "must be CreateTime or LogAppendTime, got '\(property.value)'")
                }
                configuration.dataPlane.log.messageTimestampType = type
            }
            if let messageBytes = try integer(.messageMaxBytes, in: RecordBatchSizeLimits.minimumBatchBytes...Int64(Int32.max), limitIsTechnical: true) {
                configuration.dataPlane.maximumMessageBytes = Int(messageBytes)
            }
            broker = configuration
        }

        var controller: ControllerNode.Configuration?
        if isController {
            var settings = ControllerConfiguration(clusterID: clusterID)
            if let sessionTimeout { settings.brokerSessionTimeout = sessionTimeout }
            if let count = try integer(.partitionCount, in: 1...Int64(TopicRules.maximumPartitionsPerTopic)) {
                settings.defaultPartitionCount = Int32(count)
            }
            if let factor = try integer(.defaultReplicationFactor, in: 1...Int64(TopicRules.maximumReplicationFactor)) {
                settings.defaultReplicationFactor = Int16(factor)
            }
            if let enabled = try boolean(.uncleanLeaderElectionEnable) { settings.uncleanLeaderElectionEnabled = enabled }
            if let minInSyncReplicas {
                // Topics created with the default factor could then never take an acks=all write.
                guard minInSyncReplicas <= Int(settings.defaultReplicationFactor) else {
                    throw invalid(.minInSyncReplicas, "(\(minInSyncReplicas)) is larger than default.replication.factor "
                                  + "(\(settings.defaultReplicationFactor)): acks=all writes to topics created with the default would always fail")
                }
                settings.defaultMinInSyncReplicas = minInSyncReplicas
            }
            let raft = RaftNode.Configuration(raft: RaftConfiguration(nodeID: nodeID, voters: voters.keys.sorted()))
            controller = ControllerNode.Configuration(raft: raft, controller: settings)
        }

        if let broker, broker.heartbeatInterval >= broker.sessionTimeout {
            let blamed: ServerPropertyKey = property(.brokerHeartbeatIntervalMilliseconds) != nil
                ? .brokerHeartbeatIntervalMilliseconds : .brokerSessionTimeoutMilliseconds
            throw invalid(blamed, "must leave broker.heartbeat.interval.ms (\(broker.heartbeatInterval)) shorter than "
                          + "broker.session.timeout.ms (\(broker.sessionTimeout)), or live brokers are fenced")
        }

        let maximumRequestBytes = try integer(.socketRequestMaxBytes, in: 1024...Int64(Int32.max), limitIsTechnical: true).map { Int($0) }
        return NodeLaunchConfiguration(
            nodeID: nodeID, roles: roles, clientListener: listeners.client, advertisedClientListener: listeners.advertisedClient,
            internalListener: listeners.internal, controllerVoters: voters, dataDirectory: dataDirectory,
            broker: broker, controller: controller, maximumRequestBytes: maximumRequestBytes ?? 100 * 1024 * 1024)
    }

    // MARK: Errors

    private func invalid(_ key: ServerPropertyKey, _ reason: String) -> ServerPropertiesError {
        ServerPropertiesError(fileName: fileName, line: property(key)?.line, key: key.rawValue, problem: .invalidValue(reason: reason))
    }

    private func required(_ key: ServerPropertyKey) throws(ServerPropertiesError) -> Property {
        guard let property = property(key) else {
            throw ServerPropertiesError(fileName: fileName, line: nil, key: key.rawValue, problem: .missingKey)
        }
        return property
    }

    // MARK: Value types

    /// `limitIsTechnical`: the upper bound is only the field's width (Kafka's int), not worth
    /// naming in the message.
    private func integer(_ key: ServerPropertyKey, in range: ClosedRange<Int64>,
                         limitIsTechnical: Bool = false) throws(ServerPropertiesError) -> Int64? {
        guard let property = property(key) else { return nil }
        guard let value = Int64(property.value), range.contains(value) else {
            let expected = limitIsTechnical ? "an integer ≥ \(range.lowerBound)"
                : "an integer between \(range.lowerBound) and \(range.upperBound)"
            throw invalid(key, "must be \(expected), got '\(property.value)'")
        }
        return value
    }

    private func requiredInteger(_ key: ServerPropertyKey, in range: ClosedRange<Int64>,
                                 limitIsTechnical: Bool = false) throws(ServerPropertiesError) -> Int64 {
        _ = try required(key)
        guard let value = try integer(key, in: range, limitIsTechnical: limitIsTechnical) else { preconditionFailure("a required key is present") }
        return value
    }

    /// A `.ms` setting: positive and within Kafka's int range (about 24 days).
    private func milliseconds(_ key: ServerPropertyKey) throws(ServerPropertiesError) -> Duration? {
        try integer(key, in: 1...Int64(Int32.max), limitIsTechnical: true).map { .milliseconds($0) }
    }

    /// Kafka's precedence: log.retention.ms over .minutes over .hours; -1 keeps data forever.
    private func retentionMilliseconds() throws(ServerPropertiesError) -> Int64? {
        if let value = try integer(.logRetentionMilliseconds, in: -1...Int64.max, limitIsTechnical: true) { return value }
        if let value = try integer(.logRetentionMinutes, in: -1...Int64(Int32.max), limitIsTechnical: true) {
            return value < 0 ? -1 : value * 60_000
        }
        if let value = try integer(.logRetentionHours, in: -1...Int64(Int32.max), limitIsTechnical: true) {
            return value < 0 ? -1 : value * 3_600_000
        }
        return nil
    }

    private func boolean(_ key: ServerPropertyKey) throws(ServerPropertiesError) -> Bool? {
        guard let property = property(key) else { return nil }
        switch property.value.lowercased() {
        case "true": return true
        case "false": return false
        default: throw invalid(key, "must be true or false, got '\(property.value)'")
        }
    }

    // MARK: Structured values

    private func processRoles() throws(ServerPropertiesError) -> [NodeRole] {
        let property = try required(.processRoles)
        var roles: [NodeRole] = []
        for name in property.value.split(separator: ",", omittingEmptySubsequences: false).map(trimmed) {
            guard let role = NodeRole(rawValue: name) else {
                throw invalid(.processRoles, "must list broker, controller or both, got '\(property.value)'")
            }
            guard !roles.contains(role) else { throw invalid(.processRoles, "names '\(name)' twice") }
            roles.append(role)
        }
        return roles
    }

    /// A key that only means something for a role this node does not play would be ignored.
    private func checkScopes(roles: [NodeRole]) throws(ServerPropertiesError) {
        for property in properties {
            switch property.key.scope {
            case .everyNode: continue
            case .broker where !roles.contains(.broker):
                throw invalid(property.key, "applies only to brokers, and process.roles has no broker")
            case .controller where !roles.contains(.controller):
                throw invalid(property.key, "applies only to controllers, and process.roles has no controller")
            case .broker, .controller: continue
            }
        }
    }

    /// `1@127.0.0.1:19192,2@127.0.0.1:19193`
    private func controllerQuorumVoters() throws(ServerPropertiesError) -> [NodeID: SocketAddress] {
        let key = ServerPropertyKey.controllerQuorumVoters
        let property = try required(key)
        var voters: [NodeID: SocketAddress] = [:]
        for entry in property.value.split(separator: ",", omittingEmptySubsequences: false).map(trimmed) {
            let parts = entry.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let id = Int32(parts[0]), id >= 0 else {
                throw invalid(key, "entry '\(entry)' must look like ID@HOST:PORT with a node id ≥ 0")
            }
            let address: SocketAddress
            do {
                address = try parseSocketAddress(parts[1])
            } catch {
                throw invalid(key, "entry '\(entry)': \(error.reason)")
            }
            guard voters[NodeID(id)] == nil else { throw invalid(key, "names node \(id) twice") }
            guard !voters.values.contains(address) else { throw invalid(key, "gives \(address) to two voters") }
            voters[NodeID(id)] = address
        }
        return voters
    }

    private struct Listeners {
        var client: SocketAddress?
        var advertisedClient: SocketAddress?
        var `internal`: SocketAddress
    }

    /// `CLIENT://127.0.0.1:19092,INTERNAL://127.0.0.1:19192`; `advertised.listeners` names CLIENT only.
    private func listeners(isBroker: Bool) throws(ServerPropertiesError) -> Listeners {
        let client = BrokerEndpoint.clientListenerName
        let `internal` = BrokerEndpoint.internalListenerName
        let bound = try namedListeners(.listeners, allowed: [client, `internal`])
        guard let internalAddress = bound[`internal`] else { throw invalid(.listeners, "must have an INTERNAL listener (for controller and replication traffic)") }
        // Other nodes connect to the address the INTERNAL listener binds: there is no advertised form of it.
        guard !isWildcard(internalAddress.host) else {
            throw invalid(.listeners, "INTERNAL listener binds \(internalAddress.host), which other nodes cannot connect to; name this node's address")
        }
        let clientAddress = bound[client]
        if !isBroker, clientAddress != nil { throw invalid(.listeners, "has a CLIENT listener, but process.roles has no broker") }
        if isBroker, clientAddress == nil { throw invalid(.listeners, "must have a CLIENT listener on a broker (for Kafka clients)") }
        if let clientAddress, clientAddress.port == internalAddress.port,
           clientAddress.host == internalAddress.host || isWildcard(clientAddress.host) {
            throw invalid(.listeners, "CLIENT and INTERNAL listeners share port \(clientAddress.port)")
        }
        let advertised = try namedListeners(.advertisedListeners, allowed: [client])[client]
        if property(.advertisedListeners) != nil, advertised == nil { throw invalid(.advertisedListeners, "must name the CLIENT listener") }
        if let advertised, isWildcard(advertised.host) {
            throw invalid(.advertisedListeners, "advertises \(advertised.host), which clients cannot connect to")
        }
        if let clientAddress, advertised == nil, isWildcard(clientAddress.host) {
            throw invalid(.listeners, "CLIENT listener binds \(clientAddress.host), which clients cannot connect to; set advertised.listeners")
        }
        return Listeners(client: clientAddress, advertisedClient: advertised, internal: internalAddress)
    }

    private func namedListeners(_ key: ServerPropertyKey, allowed: [String]) throws(ServerPropertiesError) -> [String: SocketAddress] {
        guard let property = key.isRequired ? try required(key) : property(key) else { return [:] }
        var listeners: [String: SocketAddress] = [:]
        for entry in property.value.split(separator: ",", omittingEmptySubsequences: false).map(trimmed) {
            guard let separator = entry.firstRange(of: "://") else {
                throw invalid(key, "entry '\(entry)' must look like NAME://HOST:PORT")
            }
            let name = String(entry[..<separator.lowerBound])
            guard allowed.contains(name) else {
                throw invalid(key, "has unknown listener name '\(name)'; Tern's listeners are " + allowed.joined(separator: " and "))
            }
            guard listeners[name] == nil else { throw invalid(key, "names listener \(name) twice") }
            do {
                listeners[name] = try parseSocketAddress(entry[separator.upperBound...])
            } catch {
                throw invalid(key, "entry '\(entry)': \(error.reason)")
            }
        }
        return listeners
    }

    private func clusterID() throws(ServerPropertiesError) -> String {
        let value = try required(.clusterID).value
        let allowed = value.unicodeScalars.allSatisfy { scalar in
            scalar.isASCII && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar) || "-_.".unicodeScalars.contains(scalar))
        }
        guard !value.isEmpty, value.utf8.count <= 255, allowed else {
            throw invalid(.clusterID, "must be 1 to 255 characters of letters, digits, '-', '_' and '.', got '\(value)'")
        }
        return value
    }

    /// `log.dirs`: one directory. Kafka spreads partitions over several; Tern does not, and refuses
    /// a list rather than silently leave all but one directory unused.
    private func dataDirectory() throws(ServerPropertiesError) -> String {
        let directories = try required(.logDirectories).value.split(separator: ",").map(trimmed).filter { !$0.isEmpty }
        guard let directory = directories.first else { throw invalid(.logDirectories, "must name a directory") }
        guard directories.count == 1 else {
            throw invalid(.logDirectories, "lists \(directories.count) directories; Tern keeps a node's data in one directory")
        }
        if directory.hasPrefix("/") { return directory }
        guard let slash = fileName.lastIndex(of: "/") else { return directory }
        return String(fileName[...slash]) + directory
    }
}

// MARK: - Addresses

struct AddressError: Error {
    var reason: String
}

private func trimmed(_ text: Substring) -> String {
    String(text.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
}

/// `HOST:PORT`, with an IPv6 host in brackets (`[::1]:9092`); the port in 1...65535.
func parseSocketAddress(_ text: Substring) throws(AddressError) -> SocketAddress {
    guard let colon = text.lastIndex(of: ":") else { throw AddressError(reason: "needs HOST:PORT") }
    var host = text[..<colon]
    if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
    guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" || $0 == "@" }) else {
        throw AddressError(reason: "needs a host before the port")
    }
    guard let port = UInt16(text[text.index(after: colon)...]), port > 0 else {
        throw AddressError(reason: "needs a port between 1 and 65535")
    }
    return SocketAddress(host: String(host), port: port)
}

/// An address that means "every interface": fine to bind, useless to connect to.
func isWildcard(_ host: String) -> Bool { host == "0.0.0.0" || host == "::" }
