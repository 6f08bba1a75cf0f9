import NodeKit
import SimWorld
import Simulator
import TernCore
import Testing

/// The simulated layouts match the shipped ones (cluster-configs/): dedicated controllers and
/// brokers, combined nodes alone (three-node, single-node), and combined nodes with dedicated
/// brokers beside them (five-node: three combined nodes and two brokers).
@Suite struct ClusterLayoutTests {
    /// Every process but the clients, by node id.
    func roles(_ layout: ClusterLayout) -> [Int32: NodeRoles] {
        Dictionary(uniqueKeysWithValues: layout.nodes.filter { !$0.roles.contains(.client) }.map { ($0.id.rawValue, $0.roles) })
    }

    @Test func dedicatedControllersAndBrokers() {
        let layout = ClusterLayout(controllers: 3, brokers: 5)
        #expect(layout.controllerIDs.map(\.rawValue) == [1, 2, 3])
        #expect(layout.brokerIDs.map(\.rawValue) == [101, 102, 103, 104, 105])
        #expect(roles(layout) == [1: .controller, 2: .controller, 3: .controller,
                                  101: .broker, 102: .broker, 103: .broker, 104: .broker, 105: .broker])
    }

    @Test func combinedNodesAlone() {
        let layout = ClusterLayout(controllers: 0, brokers: 0, combined: 3)
        #expect(layout.brokerIDs == layout.controllerIDs)
        #expect(roles(layout) == [1: [.controller, .broker], 2: [.controller, .broker], 3: [.controller, .broker]])
        #expect(ClusterLayout(controllers: 0, brokers: 0, combined: 1).replicationFactor == 1)
    }

    @Test func combinedNodesWithDedicatedBrokers() {
        let layout = ClusterLayout(controllers: 0, brokers: 2, combined: 3)
        #expect(layout.controllerIDs.map(\.rawValue) == [1, 2, 3])
        #expect(layout.brokerIDs.map(\.rawValue) == [1, 2, 3, 101, 102])
        #expect(roles(layout) == [1: [.controller, .broker], 2: [.controller, .broker], 3: [.controller, .broker],
                                  101: .broker, 102: .broker])
        #expect(layout.replicationFactor == 3)
    }

    @Test func combinedNodesWithDedicatedBrokersKeepEveryWrite() {
        var layout = ClusterLayout(controllers: 0, brokers: 2, combined: 3)
        layout.produceWorkload = true
        let outcome = ClusterSimulation(seed: 1, profile: .none, layout: layout, safetyPhase: .seconds(15),
                                        livenessPhase: .seconds(20)).run()
        #expect(outcome.report.passed, "\(String(describing: outcome.report.violation))")
        #expect(outcome.report.nodeCount == 8, "3 combined nodes, 2 brokers and 3 clients")
        #expect(outcome.acknowledgedWrites > 0 && outcome.consumedRecords >= outcome.acknowledgedWrites)
    }
}
