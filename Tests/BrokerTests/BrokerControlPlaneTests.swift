import Broker
import Controller
import NodeKit
import SimWorld
import Simulator
import TernCore
import Testing

// The broker's control plane (registration, heartbeats, metadata fetches) against a controller the
// test plays.

private let controllerID = NodeID(100)

private func startBroker(seed: UInt64, disk: SimDisk) -> (broker: BrokerNode, sent: [PeerMessage]) {
    let configuration = BrokerConfiguration(brokerID: NodeID(1), clusterID: "test", controllerVoters: [controllerID])
    let broker = BrokerNode(configuration: configuration, environment: NodeEnvironment(
        nodeID: NodeID(1), disk: disk, dataDirectory: "/data", random: DeterministicRandom(seed: seed)))
    var effects: [NodeEffect] = []
    broker.handle(.start, now: .zero, effects: &effects)
    let sent = effects.compactMap { effect -> PeerMessage? in
        guard case let .send(to, bytes) = effect, to == controllerID else { return nil }
        return try? PeerMessage(decoding: bytes)
    }
    return (broker, sent)
}

@Suite struct BrokerControlPlaneTests {
    /// Answers travel by node id, so a controller's late answer to a process that has since
    /// restarted reaches the new process. Were it taken for an answer to the new process's own
    /// request, the new process would heartbeat with its predecessor's broker epoch (and the
    /// controller would never learn it restarted), or wait for metadata its controller has not
    /// committed yet.
    @Test func lateAnswersToThePreviousProcessAreNotTakenForItsOwn() throws {
        let disk = SimDisk(random: DeterministicRandom(seed: 3), configuration: .benignCrashes)
        let previous = startBroker(seed: 1, disk: disk).sent
        let (broker, _) = startBroker(seed: 2, disk: disk)
        for request in previous {
            var effects: [NodeEffect] = []
            let answer: PeerMessage
            switch request {
            case let .controllerRequest(correlationID, .brokerRegistration):
                answer = .controllerResponse(correlationID: correlationID, response: .brokerRegistration(
                    BrokerRegistrationResponse(error: .none, brokerEpoch: BrokerEpoch(7))))
            case let .fetchMetadata(correlationID, _):
                answer = .metadataEntries(correlationID: correlationID, committedOffset: Offset(99), entries: [])
            default:
                Issue.record("unexpected request \(request)")
                continue
            }
            broker.handle(.message(from: controllerID, bytes: answer.encoded()), now: .zero + .milliseconds(5), effects: &effects)
        }
        #expect(previous.count == 2)
        #expect(broker.brokerEpoch == nil)
        #expect(broker.knownCommittedOffset == .unknown)
    }
}
