import Controller
import KafkaProtocol
import LogStorage
import NodeKit
import TernCore

/// Settings of a broker's control-plane side (Kafka's names where Kafka has one).
public struct BrokerConfiguration: Sendable {
    public var brokerID: NodeID
    public var clusterID: String
    /// `controller.quorum.voters`: where to look for the active controller.
    public var controllerVoters: [NodeID]
    public var endpoints: [BrokerEndpoint]
    public var rack: String?
    /// `broker.heartbeat.interval.ms`
    public var heartbeatInterval: Duration = .milliseconds(2000)
    /// `broker.session.timeout.ms`: the controller fences a broker it has not heard from for this
    /// long. The broker uses it to know when waiting for a controller has become pointless: a
    /// controller silent this long has fenced it already, or there is no controller quorum.
    public var sessionTimeout: Duration = .milliseconds(9000)
    /// A request without an answer after this is given up and sent again (to the next controller).
    public var requestTimeout: Duration = .milliseconds(2000)
    /// Pause between metadata fetches once caught up, or after an answer that applied nothing new
    /// (one that did is followed at once, up to `maximumPagesFetchedBetweenTicks` pages a tick).
    public var metadataFetchInterval: Duration = .milliseconds(200)
    /// Wait before registering again after a refusal.
    public var retryBackoff: Duration = .milliseconds(200)
    public var tickInterval: Duration = .milliseconds(50)
    public var dataPlane = BrokerDataPlaneConfiguration()

    public init(brokerID: NodeID, clusterID: String, controllerVoters: [NodeID], endpoints: [BrokerEndpoint] = []) {
        precondition(!controllerVoters.isEmpty, "a broker needs at least one controller voter")
        self.brokerID = brokerID
        self.clusterID = clusterID
        self.controllerVoters = controllerVoters.sorted()
        self.endpoints = endpoints
    }
}

/// The broker's control plane: it registers with the active controller (getting a new broker
/// epoch each time it starts), heartbeats with how far it has applied the metadata log, and follows
/// the committed metadata log into its own `MetadataImage`. Its `dataPlane` hosts the partition
/// replicas the image assigns to it and answers data-plane requests.
///
/// Its control plane keeps no state on disk yet: after a restart it registers anew and fetches the
/// metadata log from the start; the partition logs are recovered from disk when the image names
/// them again.
public final class BrokerNode: NodeStateMachine {
    public let configuration: BrokerConfiguration
    public var nodeID: NodeID { configuration.brokerID }
    public var tickInterval: Duration { configuration.tickInterval }

    public private(set) var image = MetadataImage.empty
    /// The committed offset the controller last reported.
    public private(set) var knownCommittedOffset = Offset.unknown
    public private(set) var brokerEpoch: BrokerEpoch?
    /// As the controller last said; a broker starts fenced.
    public private(set) var isFenced = true
    public private(set) var shouldShutDown = false
    /// Asked for a controlled shutdown (sent with the next heartbeats).
    public private(set) var wantsShutDown = false
    /// When a controller last accepted this broker's registration or heartbeat (nil: never).
    public private(set) var lastHeartbeatAcceptedAt: Instant?
    /// When this process started, the reference for a broker no controller ever answered.
    public private(set) var startedAt: Instant?

    private var random: DeterministicRandom
    private var incarnationID: IncarnationID
    private var controllerIndex = 0
    private var nextCorrelationID: UInt64
    private var pendingControl: PendingRequest?
    private var pendingFetch: PendingRequest?
    private var nextControlAt = Instant.zero
    private var nextFetchAt = Instant.zero
    /// Metadata pages asked for straight after the previous one since the last tick.
    private var pagesFetchedSinceTick = 0
    /// Keeps a catching-up broker's exchange with a controller in the same process well inside
    /// `CombinedNode`'s bound (two hops a page); the next pages follow on the next ticks.
    static let maximumPagesFetchedBetweenTicks = 16
    public let dataPlane: BrokerDataPlane
    /// Replicas are started only once the image has caught up with the committed metadata the
    /// first time, so a restarted broker does not act on every stale intermediate state.
    private var hasCaughtUpWithMetadata = false
    private var adminForwarder: AdminForwarder
    /// Client connections: Kafka frames in, answers out in request order.
    private var frontend = KafkaFrontend()
    /// Client connections open now.
    public var clientConnectionCount: Int { frontend.openConnectionCount }
    /// Client answers that waited for an earlier request of their connection (see `KafkaFrontend`).
    public var clientAnswersHeldForOrder: Int { frontend.answersHeldForOrder }

    struct PendingRequest {
        let correlationID: UInt64
        let sentAt: Instant
    }

    public init(configuration: BrokerConfiguration, environment: NodeEnvironment) {
        precondition(configuration.brokerID == environment.nodeID, "the broker's id is its node's id")
        self.configuration = configuration
        self.random = environment.random.stream("broker")
        // Answers travel by node id: a late answer to the previous process reaches this one. Each
        // process counts its correlation ids from its own random start, so such an answer matches
        // none of this process's requests (a registration answer taken for its own would make it
        // heartbeat as its predecessor, and the controller would never learn it restarted).
        var correlationIDStarts = environment.random.stream("correlation ids")
        self.nextCorrelationID = Self.randomCorrelationIDStart(&correlationIDStarts)
        self.adminForwarder = AdminForwarder(requestTimeout: configuration.requestTimeout, retryBackoff: configuration.retryBackoff,
                                             firstAttempt: Self.randomCorrelationIDStart(&correlationIDStarts))
        self.incarnationID = IncarnationID(high: random.next(), low: random.next())
        self.dataPlane = BrokerDataPlane(localID: configuration.brokerID, clusterID: configuration.clusterID,
                                         configuration: configuration.dataPlane, disk: environment.disk,
                                         dataDirectory: environment.dataDirectory, controller: configuration.controllerVoters[0])
        dataPlane.nextCorrelationID = Self.randomCorrelationIDStart(&correlationIDStarts)
    }

    /// Below 2^60: counting up from it never reaches the bits that tell the admin forwarder's and
    /// the data plane's correlation ids apart from the control plane's.
    private static func randomCorrelationIDStart(_ random: inout DeterministicRandom) -> UInt64 {
        1 + random.next(below: 1 << 60)
    }

    public var currentController: NodeID { configuration.controllerVoters[controllerIndex] }

    /// Until its data plane runs on an image holding this process's registration, a starting
    /// broker knows no topics: it serves no client request, as a Kafka broker accepts no
    /// connections before its startup completes, and clients turn to another broker.
    public var isServingClients: Bool {
        guard let brokerEpoch else { return false }
        return dataPlane.image.broker(nodeID)?.brokerEpoch == brokerEpoch
    }

    /// Starts a controlled shutdown: heartbeats ask for it until the controller says it may stop.
    /// The next heartbeat goes at the next tick rather than after a whole heartbeat interval, so
    /// the controller starts moving leaderships away at once.
    private func requestControlledShutdown() {
        wantsShutDown = true
        if pendingControl == nil { nextControlAt = .zero }
    }

    /// No controller has accepted a heartbeat (or, never registered, a registration) for the
    /// session timeout: any live controller has fenced this broker and moved its leaderships away
    /// already, or there is no controller quorum to grant a controlled shutdown at all. Either way
    /// waiting longer for one cannot make the shutdown any safer.
    public func controllerSilentForSessionTimeout(now: Instant) -> Bool {
        guard let reference = lastHeartbeatAcceptedAt ?? startedAt else { return false }
        return now - reference >= configuration.sessionTimeout
    }

    public func handle(_ event: NodeEvent, now: Instant, wallClock: Instant, effects: inout [NodeEffect]) {
        dataPlane.wallClock = wallClock
        let firstEffect = effects.count
        defer { finishEvent(now: now, effects: &effects, from: firstEffect) }
        switch event {
        case .start:
            incarnationID = IncarnationID(high: random.next(), low: random.next())
            startedAt = now
            nextControlAt = now
            nextFetchAt = now
            onTick(now: now, effects: &effects)
        case .tick:
            onTick(now: now, effects: &effects)
        case let .message(from, bytes):
            guard let message = try? PeerMessage(decoding: bytes) else { return }
            onMessage(message, from: from, now: now, effects: &effects)
        case let .syncCompleted(completion):
            _ = dataPlane.handleSyncCompletion(completion, now: now)
        case .shutdownRequested:
            requestControlledShutdown()
        case let .clientConnected(connection):
            frontend.connect(connection)
        case let .clientRequest(connection, frame):
            switch frontend.receive(frame, on: connection, broker: self, now: now, effects: &effects) {
            case let .data(request, requester)?: dataPlane.handleRequest(request, from: requester, now: now)
            case let .admin(from, message)?: onMessage(message, from: from, now: now, effects: &effects)
            case nil: return
            }
        case let .clientDisconnected(connection):
            frontend.disconnect(connection)
        case .outboundConnected, .outboundResponse, .outboundClosed:
            return  // a broker opens no client connections of its own
        }
    }

    /// Feeds a sync completion to the data plane if one of its logs owns it (a combined node
    /// offers the rest to its controller).
    public func handleSyncCompletionIfOwned(_ completion: SyncCompletion, now: Instant, wallClock: Instant,
                                            effects: inout [NodeEffect]) -> Bool {
        dataPlane.wallClock = wallClock
        let firstEffect = effects.count
        guard dataPlane.handleSyncCompletion(completion, now: now) else { return false }
        finishEvent(now: now, effects: &effects, from: firstEffect)
        return true
    }

    private func finishEvent(now: Instant, effects: inout [NodeEffect], from firstEffect: Int) {
        dataPlane.controller = currentController
        dataPlane.brokerEpoch = brokerEpoch
        dataPlane.finishEvent(now: now, effects: &effects)
        for answer in dataPlane.takeAnswers() {
            if answer.requester.isClient {
                frontend.answer(answer.response, to: answer.requester, effects: &effects)
            } else {
                send(answer, effects: &effects)
            }
        }
        answerClients(in: &effects, from: firstEffect)
    }

    /// An answer to another broker: the Kafka response frame, in a peer message.
    private func send(_ answer: DataPlaneAnswer, effects: inout [NodeEffect]) {
        let requester = answer.requester
        let header = KafkaRequestHeader(apiKey: answer.response.apiKey.rawValue, apiVersion: requester.version,
                                        correlationID: Int32(truncatingIfNeeded: requester.correlationID), clientID: nil)
        effects.append(.send(to: requester.node, bytes: PeerMessage.kafkaResponse(
            correlationID: requester.correlationID, frame: encodeKafkaResponse(answer.response, for: header)).encoded()))
    }

    /// What the admin forwarder sent to a client connection's pseudo node during this event
    /// becomes the connection's answer, in the connection's request order.
    private func answerClients(in effects: inout [NodeEffect], from firstEffect: Int) {
        let produced = effects[firstEffect...]
        guard produced.contains(where: { if case let .send(to, _) = $0 { KafkaFrontend.isClientAnswer(to: to) } else { false } }) else {
            return
        }
        var kept = Array(effects[..<firstEffect])
        for effect in produced {
            if case let .send(destination, bytes) = effect, KafkaFrontend.isClientAnswer(to: destination) {
                frontend.answer(bytes, to: destination, effects: &kept)
            } else {
                kept.append(effect)
            }
        }
        effects = kept
    }

    // MARK: Timers

    private func onTick(now: Instant, effects: inout [NodeEffect]) {
        pagesFetchedSinceTick = 0
        expireRequests(now: now)
        if pendingControl == nil, now >= nextControlAt { sendControlRequest(now: now, effects: &effects) }
        if pendingFetch == nil, now >= nextFetchAt { sendFetch(now: now, effects: &effects) }
        dataPlane.controller = currentController
        dataPlane.brokerEpoch = brokerEpoch
        dataPlane.tick(now: now, effects: &effects)
        adminForwarder.tick(controller: currentController, now: now, effects: &effects)
        frontend.tick(now: now, effects: &effects)
    }

    /// A request unanswered for `requestTimeout` is lost: try the next controller.
    private func expireRequests(now: Instant) {
        if let pending = pendingControl, now - pending.sentAt >= configuration.requestTimeout {
            pendingControl = nil
            rotateController(hint: nil)
        }
        if let pending = pendingFetch, now - pending.sentAt >= configuration.requestTimeout {
            pendingFetch = nil
        }
    }

    private func sendControlRequest(now: Instant, effects: inout [NodeEffect]) {
        let request: ControllerRequest
        if let brokerEpoch {
            request = .brokerHeartbeat(BrokerHeartbeatRequest(brokerID: nodeID, brokerEpoch: brokerEpoch,
                                                              metadataOffset: image.offset, wantShutDown: wantsShutDown,
                                                              dataLosses: dataPlane.dataLossReports))
        } else {
            request = .brokerRegistration(BrokerRegistrationRequest(brokerID: nodeID, clusterID: configuration.clusterID,
                                                                    incarnationID: incarnationID,
                                                                    endpoints: configuration.endpoints, rack: configuration.rack))
        }
        let correlationID = takeCorrelationID()
        pendingControl = PendingRequest(correlationID: correlationID, sentAt: now)
        effects.append(.send(to: currentController,
                             bytes: PeerMessage.controllerRequest(correlationID: correlationID, request: request).encoded()))
    }

    private func sendFetch(now: Instant, effects: inout [NodeEffect]) {
        let correlationID = takeCorrelationID()
        pendingFetch = PendingRequest(correlationID: correlationID, sentAt: now)
        effects.append(.send(to: currentController,
                             bytes: PeerMessage.fetchMetadata(correlationID: correlationID, fromOffset: image.offset + 1).encoded()))
    }

    private func takeCorrelationID() -> UInt64 {
        defer { nextCorrelationID += 1 }
        return nextCorrelationID
    }

    private func rotateController(hint: NodeID?) {
        if let hint, let index = configuration.controllerVoters.firstIndex(of: hint) {
            controllerIndex = index
        } else {
            controllerIndex = (controllerIndex + 1) % configuration.controllerVoters.count
        }
    }

    // MARK: Messages

    private func onMessage(_ message: PeerMessage, from sender: NodeID, now: Instant, effects: inout [NodeEffect]) {
        switch message {
        case let .controllerResponse(correlationID, response):
            if adminForwarder.handleResponse(correlationID: correlationID, response: response, effects: &effects) { return }
            if BrokerDataPlane.ownsCorrelationID(correlationID) {
                dataPlane.handleControllerResponse(correlationID: correlationID, response: response, now: now, effects: &effects)
                return
            }
            guard pendingControl?.correlationID == correlationID else { return }
            pendingControl = nil
            onControlResponse(response, now: now, effects: &effects)
        case let .notController(correlationID, leaderHint):
            if adminForwarder.handleNotController(correlationID: correlationID, now: now) {
                // Turn to the controller named (or the next one); the forwarder retries there.
            } else if BrokerDataPlane.ownsCorrelationID(correlationID) {
                dataPlane.handleNotController(correlationID: correlationID, now: now)
            } else if pendingControl?.correlationID == correlationID {
                pendingControl = nil
                nextControlAt = now + configuration.retryBackoff
            } else if pendingFetch?.correlationID == correlationID {
                pendingFetch = nil
                nextFetchAt = now + configuration.retryBackoff
            } else {
                return
            }
            if currentController == sender { rotateController(hint: leaderHint) }
        case let .metadataEntries(correlationID, committedOffset, entries):
            guard pendingFetch?.correlationID == correlationID else { return }
            pendingFetch = nil
            onMetadataEntries(entries, committedOffset: committedOffset, now: now, effects: &effects)
        case let .kafkaRequest(correlationID, frame):
            guard isServingClients else { return }
            onBrokerRequest(frame, correlationID: correlationID, from: sender, now: now, effects: &effects)
        case let .kafkaResponse(correlationID, frame):
            dataPlane.handleReplicaFetchResponse(frame, correlationID: correlationID, from: sender, now: now)
        case let .adminRequest(correlationID, request):
            guard isServingClients else { return }
            adminForwarder.accept(request, correlationID: correlationID, from: sender, controller: currentController,
                                  now: now, effects: &effects)
        case .raft, .controllerRequest, .fetchMetadata:
            return
        }
    }

    /// A Kafka request from another broker: a follower's replica fetch, at any generated version.
    /// Anything else is not something a broker sends; it is logged and dropped.
    private func onBrokerRequest(_ frame: [UInt8], correlationID: UInt64, from sender: NodeID, now: Instant,
                                 effects: inout [NodeEffect]) {
        let decoded: DecodedKafkaRequest
        do {
            decoded = try decodeKafkaRequest(frame.dropFirst(KafkaFraming.sizePrefixBytes), versions: SupportedAPIVersions.generatedRange(of:))
        } catch {
            effects.append(.log("dropping a request from node \(sender): \(error)"))
            return
        }
        guard case .fetch = decoded.body, sender.rawValue >= 0 else {
            effects.append(.log("dropping API \(decoded.header.apiKey) request from node \(sender): brokers send each other only Fetch"))
            return
        }
        dataPlane.handleRequest(decoded.body, from: DataPlaneRequester(node: sender, correlationID: correlationID,
                                                                        version: decoded.header.apiVersion), now: now)
    }

    private func onControlResponse(_ response: ControllerResponse, now: Instant, effects: inout [NodeEffect]) {
        switch response {
        case let .brokerRegistration(reply):
            if reply.error == .none {
                brokerEpoch = reply.brokerEpoch
                lastHeartbeatAcceptedAt = now
                nextControlAt = now
            } else {
                nextControlAt = now + configuration.retryBackoff
            }
        case let .brokerHeartbeat(reply):
            switch reply.error {
            case .none:
                isFenced = reply.isFenced
                shouldShutDown = reply.shouldShutDown
                lastHeartbeatAcceptedAt = now
                // While shutting down, the controller waits for this broker's heartbeats to let it
                // go: asking again soon ends the shutdown sooner (Kafka's broker does the same).
                nextControlAt = now + (wantsShutDown ? min(configuration.retryBackoff, configuration.heartbeatInterval)
                                                     : configuration.heartbeatInterval)
                if wantsShutDown && shouldShutDown {
                    // The controller has moved everything away: the process may stop.
                    effects.append(.exit(reason: "controlled shutdown of broker \(nodeID) complete"))
                }
            case .staleBrokerEpoch, .brokerIDNotRegistered:
                // The controller no longer knows this incarnation: register again.
                brokerEpoch = nil
                isFenced = true
                nextControlAt = now + configuration.retryBackoff
            default:
                nextControlAt = now + configuration.retryBackoff
            }
        default:
            nextControlAt = now + configuration.retryBackoff
        }
    }

    /// Applies entries that continue the image, in order; anything else waits for the next fetch.
    private func onMetadataEntries(_ entries: [PeerMessage.MetadataEntry], committedOffset: Offset, now: Instant,
                                   effects: inout [NodeEffect]) {
        knownCommittedOffset = max(knownCommittedOffset, committedOffset)
        let imageBefore = image.offset
        defer {
            if image.offset >= knownCommittedOffset { hasCaughtUpWithMetadata = true }
            // Roles come only from an image holding this process's own registration: the
            // controller took the previous incarnation's leaderships away before registering it,
            // so a restarted broker never resumes leading an epoch it may have lost data of.
            if hasCaughtUpWithMetadata, let brokerEpoch, image.broker(nodeID)?.brokerEpoch == brokerEpoch,
               image.offset != imageBefore || dataPlane.image.offset != image.offset {
                dataPlane.applyImage(image, now: now, effects: &effects)
            }
        }
        for entry in entries where !entry.records.isEmpty && entry.lastOffset > image.offset {
            guard entry.offset == image.offset + 1, entry.lastOffset <= committedOffset else { break }
            var next = image
            do {
                for (position, record) in entry.records.enumerated() { try next.apply(record, at: entry.offset + Int64(position)) }
            } catch {
                effects.append(.halt(reason: "broker \(nodeID) cannot apply committed metadata at \(entry.offset): \(error)"))
                return
            }
            image = next
        }
        // The next page is asked for at once only while pages keep coming: an answer that moved
        // nothing (its controller has not applied more yet, or the committed offset came from a
        // stale answer) would get the same answer again. In a combined process the answer comes
        // back inside the same event, so the pages in a row are bounded too; the rest follow on
        // the next ticks.
        let behind = image.offset < knownCommittedOffset
        if !behind || image.offset == imageBefore {
            nextFetchAt = now + configuration.metadataFetchInterval
        } else if pagesFetchedSinceTick < Self.maximumPagesFetchedBetweenTicks {
            pagesFetchedSinceTick += 1
            sendFetch(now: now, effects: &effects)
        } else {
            nextFetchAt = now
        }
    }
}
