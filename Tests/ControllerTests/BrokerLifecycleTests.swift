@testable import Controller
import TernCore
import Testing

@Suite struct BrokerLifecycleTests {
    @Test func registrationGivesANewFencedEpochEachTime() {
        var harness = ControllerHarness()
        let incarnation = harness.newIncarnation()
        let first = harness.register(1, incarnation: incarnation)
        #expect(first == BrokerRegistrationResponse(error: .none, brokerEpoch: BrokerEpoch(1)))
        #expect(harness.image.broker(NodeID(1))?.isFenced == true)
        #expect(harness.image.broker(NodeID(1))?.registeredAtOffset == Offset(0))

        // The same process retrying (its reply was lost) gets a newer epoch, still fenced.
        let retry = harness.register(1, incarnation: incarnation)
        #expect(retry.brokerEpoch == BrokerEpoch(2))
        let other = harness.register(2)
        #expect(other.brokerEpoch == BrokerEpoch(3))
        #expect(harness.image.highestBrokerEpoch == BrokerEpoch(3))
    }

    @Test func brokerStaysFencedUntilCaughtUp() {
        var harness = ControllerHarness(brokers: [1])
        harness.register(2)
        let registeredAt = harness.image.broker(NodeID(2))!.registeredAtOffset

        let behind = harness.heartbeat(2, metadataOffset: registeredAt - 1)
        #expect(behind == BrokerHeartbeatResponse(error: .none, isCaughtUp: false, isFenced: true, shouldShutDown: false))
        #expect(harness.image.broker(NodeID(2))!.isFenced)

        let (caughtUp, records) = harness.runWithRecords { [now = harness.now, epoch = harness.epoch(of: 2)] in
            $0.heartbeat(BrokerHeartbeatRequest(brokerID: NodeID(2), brokerEpoch: epoch, metadataOffset: registeredAt), now: now)
        }
        #expect(caughtUp == BrokerHeartbeatResponse(error: .none, isCaughtUp: true, isFenced: false, shouldShutDown: false))
        #expect(records == [.unfenceBroker(BrokerAndEpoch(brokerID: NodeID(2), brokerEpoch: harness.epoch(of: 2)))])
        #expect(harness.image.activeBrokerIDs == nodes([1, 2]))

        // Heartbeats of a live broker propose nothing.
        let (steady, none) = harness.runWithRecords { [now = harness.now, epoch = harness.epoch(of: 2)] in
            $0.heartbeat(BrokerHeartbeatRequest(brokerID: NodeID(2), brokerEpoch: epoch, metadataOffset: Offset(1)), now: now)
        }
        #expect(!steady.isFenced && none.isEmpty)
    }

    @Test func wantFenceKeepsOrPutsABrokerFenced() {
        var harness = ControllerHarness(brokers: [1, 2])
        harness.register(3)
        #expect(harness.heartbeat(3, wantFence: true).isFenced)
        #expect(harness.image.broker(NodeID(3))!.isFenced)

        harness.createTopic("t", assignments: [[1, 2]])
        #expect(harness.heartbeat(1, wantFence: true).isFenced)
        #expect(harness.partition("t", 0).leader == NodeID(2))
        #expect(harness.partition("t", 0).isr == nodes([2]))
    }

    @Test func unknownBrokerAndStaleEpochAreRefused() {
        var harness = ControllerHarness(brokers: [1])
        let now = harness.now
        let unknown = harness.run { $0.heartbeat(BrokerHeartbeatRequest(brokerID: NodeID(9), brokerEpoch: BrokerEpoch(1), metadataOffset: Offset(0)), now: now) }
        #expect(unknown.error == .brokerIDNotRegistered)
        let stale = harness.run { $0.heartbeat(BrokerHeartbeatRequest(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(0), metadataOffset: Offset(0)), now: now) }
        #expect(stale.error == .staleBrokerEpoch)
    }

    @Test func aSecondProcessWithTheSameIDWaitsForTheFirstSessionToEnd() {
        var harness = ControllerHarness(brokers: [1, 2])
        let impostor = harness.newIncarnation()
        #expect(harness.register(1, incarnation: impostor).error == .duplicateBrokerRegistration)

        harness.expireSessions(except: [2])
        #expect(harness.image.broker(NodeID(1))!.isFenced)
        #expect(harness.register(1, incarnation: impostor).error == .none)
    }

    @Test func wrongClusterIsRefused() {
        var harness = ControllerHarness(configuration: ControllerConfiguration(clusterID: "prod"))
        let now = harness.now
        let request = BrokerRegistrationRequest(brokerID: NodeID(1), clusterID: "test", incarnationID: IncarnationID(high: 1, low: 1), endpoints: [])
        #expect(harness.run { $0.registerBroker(request, now: now) }.error == .inconsistentClusterID)
        let negative = BrokerRegistrationRequest(brokerID: NodeID(-3), clusterID: "prod", incarnationID: IncarnationID(high: 1, low: 1), endpoints: [])
        #expect(harness.run { $0.registerBroker(negative, now: now) }.error == .invalidRequest)
    }

    @Test func silenceFencesAfterTheSessionTimeoutAndNotBefore() {
        var harness = ControllerHarness(configuration: ControllerConfiguration(brokerSessionTimeout: .seconds(9)), brokers: [1, 2, 3])
        harness.createTopic("t", assignments: [[1, 2, 3], [2, 3, 1]])
        let deadline = harness.controller.sessionDeadline(of: NodeID(1))!
        #expect(harness.controller.nextSessionDeadline == deadline)

        harness.advance(by: deadline - harness.now, keepingAlive: [2, 3])
        #expect(!harness.image.broker(NodeID(1))!.isFenced, "at the deadline itself the session still holds")
        harness.advance(by: .milliseconds(1), keepingAlive: [2, 3])
        #expect(harness.image.broker(NodeID(1))!.isFenced)

        // Leadership moved to the next live ISR member in replica order, with new epochs; 1 left the ISRs.
        let moved = harness.partition("t", 0)
        #expect(moved.leader == NodeID(2) && moved.isr == nodes([2, 3]))
        #expect(moved.leaderEpoch == LeaderEpoch(1) && moved.partitionEpoch == PartitionEpoch(1))
        let followerOnly = harness.partition("t", 1)
        #expect(followerOnly.leader == NodeID(2) && followerOnly.leaderEpoch == LeaderEpoch(0))
        #expect(followerOnly.isr == nodes([2, 3]) && followerOnly.partitionEpoch == PartitionEpoch(1))
    }

    @Test func heartbeatsKeepTheSessionAlive() {
        var harness = ControllerHarness(brokers: [1])
        for _ in 0..<20 { harness.advance(by: .seconds(2), keepingAlive: [1]) }
        #expect(!harness.image.broker(NodeID(1))!.isFenced)
    }

    @Test func brokersExpiringTogetherDoNotInheritEachOthersLeadership() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        harness.createTopic("t", assignments: [[1, 2, 3]])
        let (_, records) = harness.runWithRecords { [now = harness.now + .seconds(10)] controller in
            ControllerResult(records: controller.tick(now: now), reply: ())
        }
        #expect(harness.image.activeBrokerIDs.isEmpty)
        let partition = harness.partition("t", 0)
        #expect(partition.leader == nil && partition.leaderEpoch == LeaderEpoch(1), "one leader change, straight to offline")
        #expect(partition.isr == nodes([3]), "the last ISR member stays")
        // Broker 1's fencing takes the partition offline, broker 2's leaves 3 alone in the ISR, broker 3's changes nothing.
        #expect(records.filter { if case .partitionChange = $0 { return true } else { return false } }.count == 2)
        #expect(partition.partitionEpoch == PartitionEpoch(2))
    }

    @Test func restartedBrokerReregistersAndIsElectedAgainOnlyWhenCaughtUp() {
        var harness = ControllerHarness(brokers: [1])
        harness.createTopic("solo", assignments: [[1]])
        harness.expireSessions(except: [])
        #expect(harness.partition("solo", 0).leader == nil)
        #expect(harness.partition("solo", 0).isr == nodes([1]))

        let epochBefore = harness.epoch(of: 1)
        harness.register(1)
        #expect(harness.epoch(of: 1) > epochBefore)
        #expect(harness.partition("solo", 0).leader == nil, "registered brokers start fenced")
        let reply = harness.heartbeat(1)
        #expect(!reply.isFenced)
        let back = harness.partition("solo", 0)
        #expect(back.leader == NodeID(1) && back.leaderEpoch == LeaderEpoch(2) && back.partitionEpoch == PartitionEpoch(2))
    }

    /// A broker that restarts before its session ends (same id, new process) first hands over
    /// everything its previous incarnation led: the new registration starts fenced.
    @Test func reregistrationMovesLeadershipAway() {
        var harness = ControllerHarness(brokers: [1, 2])
        harness.createTopic("t", assignments: [[1, 2]])
        harness.expireSessions(except: [1, 2])
        harness.now += .seconds(30) // broker 1's old session ends; the tick has not run yet
        harness.heartbeat(2)
        #expect(harness.register(1).error == .none)
        let partition = harness.partition("t", 0)
        #expect(partition.leader == NodeID(2) && partition.isr == nodes([2]))
    }

    @Test func newControllerGivesEveryUnfencedBrokerAFreshSession() {
        var harness = ControllerHarness(brokers: [1, 2])
        harness.register(3)
        let failover = harness.now + .seconds(100)
        let controller = ControllerCore(image: harness.image, configuration: harness.controller.configuration, now: failover)
        #expect(controller.sessionDeadline(of: NodeID(1)) == failover + .seconds(9))
        #expect(controller.sessionDeadline(of: NodeID(3)) == nil, "fenced brokers need no session")
        var rebuilt = controller
        #expect(rebuilt.tick(now: failover + .seconds(9)).isEmpty)
        #expect(!rebuilt.tick(now: failover + .seconds(9) + .nanoseconds(1)).isEmpty)
    }

    @Test func producerIDBlocksFollowEachOther() {
        var harness = ControllerHarness(configuration: ControllerConfiguration(producerIDBlockSize: 1000), brokers: [1, 2])
        let first = harness.run { [epoch = harness.epoch(of: 1)] in $0.allocateProducerIDs(.init(brokerID: NodeID(1), brokerEpoch: epoch)) }
        let second = harness.run { [epoch = harness.epoch(of: 2)] in $0.allocateProducerIDs(.init(brokerID: NodeID(2), brokerEpoch: epoch)) }
        #expect(first == AllocateProducerIDsResponse(error: .none, blockStart: ProducerID(0), blockSize: 1000))
        #expect(second == AllocateProducerIDsResponse(error: .none, blockStart: ProducerID(1000), blockSize: 1000))
        #expect(harness.image.nextProducerID == ProducerID(2000))

        let stale = harness.run { $0.allocateProducerIDs(.init(brokerID: NodeID(1), brokerEpoch: BrokerEpoch(0))) }
        #expect(stale.error == .staleBrokerEpoch)
        let unknown = harness.run { $0.allocateProducerIDs(.init(brokerID: NodeID(7), brokerEpoch: BrokerEpoch(1))) }
        #expect(unknown.error == .brokerIDNotRegistered)
        #expect(harness.image.nextProducerID == ProducerID(2000))
    }
}
