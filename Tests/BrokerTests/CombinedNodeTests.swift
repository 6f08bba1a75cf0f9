import Broker
import Controller
import LogStorage
import NodeKit
import Raft
import SimWorld
import Simulator
import TernCore
import Testing

// A process with both roles hands what its broker sends its own controller (and the answers)
// over inside one event. These tests drive one such process on a SimDisk, with the test playing
// the other controllers, and check that no exchange between the two parts runs away: a chain that
// does not settle halts the process. `KafkaFrontendTests` drive a single-voter one with clients.

final class CombinedProcess {
    static let clientID = NodeID(1000)
    let id: NodeID
    let voters: [NodeID]
    let maximumEntriesPerFetch: Int
    let disk = SimDisk(random: DeterministicRandom(seed: 7), configuration: .benignCrashes)
    var node: CombinedNode
    var now = Instant.zero
    /// Messages the process sent to other nodes, oldest first.
    var sent: [(to: NodeID, message: PeerMessage)] = []
    /// What the process did on client connections, oldest first.
    var clientEffects: [NodeEffect] = []
    var halts: [String] = []
    private var incarnation: UInt64 = 1

    init(id: NodeID = NodeID(1), voters: [NodeID], maximumEntriesPerFetch: Int = 256) {
        self.id = id
        self.voters = voters
        self.maximumEntriesPerFetch = maximumEntriesPerFetch
        node = Self.makeNode(id: id, voters: voters, maximumEntriesPerFetch: maximumEntriesPerFetch, disk: disk, seed: 1)
        handle(.start)
    }

    private static func makeNode(id: NodeID, voters: [NodeID], maximumEntriesPerFetch: Int, disk: SimDisk, seed: UInt64) -> CombinedNode {
        let environment = NodeEnvironment(nodeID: id, disk: disk, dataDirectory: "/data", random: DeterministicRandom(seed: seed))
        var controllerConfiguration = ControllerNode.Configuration(
            raft: RaftNode.Configuration(raft: RaftConfiguration(nodeID: id, voters: voters)),
            controller: ControllerConfiguration(clusterID: "test"))
        controllerConfiguration.maximumEntriesPerFetch = maximumEntriesPerFetch
        let brokerConfiguration = BrokerConfiguration(brokerID: id, clusterID: "test", controllerVoters: voters)
        return CombinedNode(controller: ControllerNode(environment: environment, configuration: controllerConfiguration),
                            broker: BrokerNode(configuration: brokerConfiguration, environment: environment))
    }

    /// The process stops (every sync it waited for is forgotten) and a new one starts on the disk.
    func restart() {
        disk.killProcess()
        incarnation += 1
        node = Self.makeNode(id: id, voters: voters, maximumEntriesPerFetch: maximumEntriesPerFetch, disk: disk, seed: incarnation)
        handle(.start)
    }

    func handle(_ event: NodeEvent) {
        var effects: [NodeEffect] = []
        node.handle(event, now: now, effects: &effects)
        for effect in effects {
            switch effect {
            case let .send(to, bytes):
                guard let message = try? PeerMessage(decoding: bytes) else {
                    Issue.record("n\(id) sent bytes that do not decode")
                    continue
                }
                sent.append((to, message))
            case let .halt(reason), let .exit(reason):
                halts.append(reason)
            case .reply, .closeClient, .pauseClientReads, .resumeClientReads, .openOutbound, .sendOutbound, .closeOutbound, .log:
                clientEffects.append(effect)
            }
        }
    }

    func receive(_ message: PeerMessage, from sender: NodeID) {
        handle(.message(from: sender, bytes: message.encoded()))
    }

    /// Ticks every 10 ms for `duration`, handing over sync completions as they come.
    func run(for duration: Duration) {
        let end = now + duration
        while now < end {
            now += .milliseconds(10)
            disk.advance(to: now)
            var completions: [SyncCompletion] = []
            disk.pollCompletions(into: &completions)
            for completion in completions { handle(.syncCompleted(completion)) }
            handle(.tick)
        }
    }

    /// The correlation id of the last message of this shape sent to `destination`.
    func lastCorrelationID(to destination: NodeID, where matches: (PeerMessage) -> UInt64?) -> UInt64? {
        sent.last { $0.to == destination && matches($0.message) != nil }.flatMap { matches($0.message) }
    }
}

private func metadataFetchCorrelationID(_ message: PeerMessage) -> UInt64? {
    if case let .fetchMetadata(correlationID, _) = message { return correlationID }
    return nil
}

private func controllerRequestCorrelationID(_ message: PeerMessage) -> UInt64? {
    if case let .controllerRequest(correlationID, _) = message { return correlationID }
    return nil
}

@Suite struct CombinedNodeTests {
    /// Seed 150 (`--profile crash --combined 3`): a restarted node 2 took a late answer to its
    /// previous process's metadata fetch as one to its own, so its broker believed the committed
    /// metadata reached offset 99 while its own controller, just restarted, knew nothing committed
    /// yet; another controller's stale hint had pointed the broker at its own controller. Every
    /// empty answer made the broker ask again at once, and its controller answered at once.
    @Test func brokerAheadOfItsOwnControllerWaitsInsteadOfAskingAgainAtOnce() throws {
        let process = CombinedProcess(voters: [NodeID(1), NodeID(2), NodeID(3)])
        // Its own controller (the first voter) is not active: the broker turns to node 2.
        process.run(for: .milliseconds(300))
        let registration = try #require(process.lastCorrelationID(to: NodeID(2), where: controllerRequestCorrelationID))
        let fetch = try #require(process.lastCorrelationID(to: NodeID(2), where: metadataFetchCorrelationID))
        // Node 2 names node 1 as the leader (a stale hint), then answers the fetch: committed up to 5,
        // nothing sent yet.
        process.receive(.notController(correlationID: registration, leaderHint: NodeID(1)), from: NodeID(2))
        process.receive(.metadataEntries(correlationID: fetch, committedOffset: Offset(5), entries: []), from: NodeID(2))
        #expect(process.halts.isEmpty, "\(process.halts)")
        #expect(process.node.broker.currentController == NodeID(1))
        process.run(for: .seconds(1))
        #expect(process.halts.isEmpty, "\(process.halts)")
    }

    /// A restarted process whose broker follows its own controller fetches the metadata log page
    /// by page; each answer comes back inside the same event, so fetching every next page at once
    /// would chain the whole catch-up into one event.
    @Test func brokerCatchesUpWithALongMetadataLogFromItsOwnController() throws {
        let process = CombinedProcess(voters: [NodeID(1)], maximumEntriesPerFetch: 1)
        process.run(for: .seconds(2))
        try #require(process.node.controller.isActiveController)
        let brokerEpoch = try #require(process.node.broker.brokerEpoch)
        // Each producer-id block the controller hands out is one more committed entry.
        for correlationID in 1...150 as ClosedRange<UInt64> {
            process.receive(.controllerRequest(correlationID: correlationID, request: .allocateProducerIDs(
                AllocateProducerIDsRequest(brokerID: process.id, brokerEpoch: brokerEpoch))), from: CombinedProcess.clientID)
            process.run(for: .milliseconds(20))
        }
        process.run(for: .seconds(1))
        let committed = process.node.controller.committedImage.offset
        try #require(committed >= Offset(150))
        #expect(process.node.broker.image.offset == committed)

        process.restart()
        process.run(for: .seconds(10))
        #expect(process.halts.isEmpty, "\(process.halts)")
        #expect(process.node.broker.image.offset >= committed)
    }
}
