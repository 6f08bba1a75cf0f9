@testable import Controller
import TernCore
import Testing

@Suite struct LeaderElectionTests {
    /// "t" with replicas [1, 2, 3] led by 1, and the ISR shrunk to [1, 2] by the leader.
    static func clusterWithLaggingReplica(_ configuration: ControllerConfiguration = ControllerConfiguration(),
                                          topicConfigs: [ConfigEntry] = []) -> ControllerHarness {
        var harness = ControllerHarness(configuration: configuration, brokers: [1, 2, 3])
        let topicID = harness.createTopic("t", assignments: [[1, 2, 3]], configs: topicConfigs)
        let reply = harness.run { [epoch = harness.epoch(of: 1)] in
            $0.alterPartition(AlterPartitionRequest(brokerID: NodeID(1), brokerEpoch: epoch, partitions: [
                .init(topicID: topicID, partition: 0, leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0),
                      newISR: [.init(brokerID: NodeID(1)), .init(brokerID: NodeID(2))]),
            ]))
        }
        #expect(reply.partitions.first?.error == ControllerErrorCode.none)
        return harness
    }

    @Test func fencedLeaderIsReplacedByTheFirstLiveISRMemberInReplicaOrder() {
        var harness = ControllerHarness(brokers: [1, 2, 3, 4])
        harness.createTopic("t", assignments: [[1, 4, 3, 2]])
        harness.expireSessions(except: [2, 3, 4])
        let partition = harness.partition("t", 0)
        #expect(partition.leader == NodeID(4), "replica order, not broker id order")
        #expect(partition.isr == nodes([4, 3, 2]))
        #expect(partition.leaderEpoch == LeaderEpoch(1) && partition.partitionEpoch == PartitionEpoch(1))
    }

    @Test func noLiveISRMemberMeansOfflineWhenUncleanElectionIsOff() {
        var harness = Self.clusterWithLaggingReplica()
        harness.expireSessions(except: [3])
        let partition = harness.partition("t", 0)
        #expect(partition.leader == nil, "3 is alive but was not in the ISR")
        #expect(partition.isr == nodes([2]), "the last ISR member to die stays in the ISR")
        #expect(partition.leaderEpoch == LeaderEpoch(1))

        // Nothing changes on later ticks while the ISR is dead.
        let records = harness.controller.tick(now: harness.now)
        #expect(records.isEmpty)

        // The last ISR member comes back: a clean election.
        harness.register(2)
        harness.heartbeat(2)
        let back = harness.partition("t", 0)
        #expect(back.leader == NodeID(2) && back.isr == nodes([2]) && back.leaderEpoch == LeaderEpoch(2))
    }

    @Test func fencingNeverShrinksTheISRBelowMinInSyncReplicas() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        harness.createTopic("t", assignments: [[1, 2, 3]], configs: [ConfigEntry(name: "min.insync.replicas", value: "2")])
        harness.expireSessions(except: [1, 2])
        #expect(harness.partition("t", 0).isr == nodes([1, 2]), "3 leaves: two members remain")
        harness.expireSessions(except: [1])
        let partition = harness.partition("t", 0)
        #expect(partition.isr == nodes([1, 2]), "2 stays: it holds every committed record")
        #expect(partition.leader == NodeID(1))
        harness.expireSessions(except: [])
        let offline = harness.partition("t", 0)
        #expect(offline.leader == nil && offline.isr == nodes([1, 2]))
        // Either member coming back is a clean leader.
        harness.startBroker(2)
        #expect(harness.partition("t", 0).leader == NodeID(2))
        #expect(harness.partition("t", 0).isr == nodes([1, 2]))
    }

    @Test func theControllersDefaultMinInSyncReplicasAppliesToTopicsWithoutTheirOwn() {
        var harness = ControllerHarness(configuration: ControllerConfiguration(defaultMinInSyncReplicas: 2), brokers: [1, 2, 3])
        harness.createTopic("t", assignments: [[1, 2, 3]])
        harness.expireSessions(except: [1, 2])
        harness.expireSessions(except: [1])
        #expect(harness.partition("t", 0).isr == nodes([1, 2]), "server.properties' min.insync.replicas=2 keeps two members")
    }

    @Test func uncleanElectionPicksALiveReplicaWhenEnabled() {
        var harness = Self.clusterWithLaggingReplica(ControllerConfiguration(uncleanLeaderElectionEnabled: true))
        harness.expireSessions(except: [3])
        let partition = harness.partition("t", 0)
        #expect(partition.leader == NodeID(3) && partition.isr == nodes([3]))
        #expect(partition.leaderEpoch == LeaderEpoch(1))
    }

    @Test func topicConfigOverridesTheClusterDefault() {
        var off = Self.clusterWithLaggingReplica(ControllerConfiguration(uncleanLeaderElectionEnabled: true),
                                                 topicConfigs: [ConfigEntry(name: "unclean.leader.election.enable", value: "false")])
        off.expireSessions(except: [3])
        #expect(off.partition("t", 0).leader == nil)

        var on = Self.clusterWithLaggingReplica(topicConfigs: [ConfigEntry(name: "unclean.leader.election.enable", value: "TRUE")])
        on.expireSessions(except: [3])
        #expect(on.partition("t", 0).leader == NodeID(3))
    }

    @Test func enablingUncleanElectionLaterElectsOfflinePartitions() {
        var harness = Self.clusterWithLaggingReplica()
        harness.expireSessions(except: [3])
        #expect(harness.partition("t", 0).leader == nil)
        let reply = harness.run {
            $0.alterConfigs(AlterConfigsRequest(resources: [
                .init(resource: .cluster, changes: [.init(name: "unclean.leader.election.enable", value: "true")]),
            ]))
        }
        #expect(reply.resources.map(\.error) == [.none])
        #expect(harness.partition("t", 0).leader == NodeID(3))
    }

    @Test func electLeadersUncleanOnRequest() {
        var harness = Self.clusterWithLaggingReplica()
        harness.expireSessions(except: [3])
        let offline = TopicPartition(topic: "t", partition: 0)
        let reply = harness.run { $0.electLeaders(ElectLeadersRequest(electionType: .unclean, partitions: [offline])) }
        #expect(reply.partitions == [.init(topicPartition: offline, error: .none)])
        #expect(harness.partition("t", 0).leader == NodeID(3))

        let again = harness.run { $0.electLeaders(ElectLeadersRequest(electionType: .unclean, partitions: [offline])) }
        #expect(again.partitions.first?.error == .electionNotNeeded)
    }

    @Test func preferredLeaderElection() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        harness.createTopic("t", assignments: [[1, 2, 3], [2, 3, 1]])
        let first = TopicPartition(topic: "t", partition: 0)
        let second = TopicPartition(topic: "t", partition: 1)

        harness.expireSessions(except: [2, 3])
        #expect(harness.partition("t", 0).leader == NodeID(2))
        // Preferred broker 1 is fenced and out of the ISR: not available.
        let unavailable = harness.run { $0.electLeaders(ElectLeadersRequest(electionType: .preferred, partitions: [first, second])) }
        #expect(unavailable.partitions.map(\.error) == [.preferredLeaderNotAvailable, .electionNotNeeded])

        // Broker 1 returns and is put back in the ISR by the leader; now the election moves leadership.
        harness.register(1)
        harness.heartbeat(1)
        let current = harness.partition("t", 0)
        let topicID = harness.image.topic(named: "t")!.topicID
        _ = harness.run { [epoch = harness.epoch(of: 2), brokerEpoch1 = harness.epoch(of: 1)] in
            $0.alterPartition(AlterPartitionRequest(brokerID: NodeID(2), brokerEpoch: epoch, partitions: [
                .init(topicID: topicID, partition: 0, leaderEpoch: current.leaderEpoch, partitionEpoch: current.partitionEpoch,
                      newISR: current.isr.map { .init(brokerID: $0) } + [.init(brokerID: NodeID(1), brokerEpoch: brokerEpoch1)]),
            ]))
        }
        let all = harness.run { $0.electLeaders(ElectLeadersRequest(electionType: .preferred, partitions: nil)) }
        #expect(all.partitions == [.init(topicPartition: first, error: .none)], "partitions needing nothing are left out")
        let moved = harness.partition("t", 0)
        #expect(moved.leader == NodeID(1) && moved.leaderEpoch == current.leaderEpoch.next)

        let unknown = harness.run { $0.electLeaders(ElectLeadersRequest(electionType: .preferred, partitions: [TopicPartition(topic: "t", partition: 9)])) }
        #expect(unknown.partitions.first?.error == .unknownTopicOrPartition)
    }
}

@Suite struct AlterPartitionTests {
    struct Fixture {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        var topicID: TopicID

        init() {
            topicID = harness.createTopic("t", assignments: [[1, 2, 3]])
        }

        /// An AlterPartition from `broker` (its current epoch unless told) for partition 0.
        mutating func alter(from broker: Int32 = 1, brokerEpoch: BrokerEpoch? = nil, leaderEpoch: Int32? = nil,
                            partitionEpoch: Int32? = nil, isr: [AlterPartitionRequest.ISRMember]) -> (AlterPartitionResponse, [MetadataRecord]) {
            let current = harness.partition("t", 0)
            let request = AlterPartitionRequest(
                brokerID: NodeID(broker), brokerEpoch: brokerEpoch ?? harness.epoch(of: broker), partitions: [
                    .init(topicID: topicID, partition: 0, leaderEpoch: leaderEpoch.map(LeaderEpoch.init) ?? current.leaderEpoch,
                          partitionEpoch: partitionEpoch.map(PartitionEpoch.init) ?? current.partitionEpoch, newISR: isr),
                ])
            return harness.runWithRecords { $0.alterPartition(request) }
        }
    }

    static func members(_ ids: [Int32]) -> [AlterPartitionRequest.ISRMember] { ids.map { .init(brokerID: NodeID($0)) } }

    @Test func shrinkAndExpandWithCompareAndSet() {
        var fixture = Fixture()
        let (shrunk, records) = fixture.alter(isr: Self.members([1, 3]))
        #expect(records.count == 1)
        #expect(shrunk.partitions == [.init(topicID: fixture.topicID, partition: 0, error: .none, leader: NodeID(1),
                                            leaderEpoch: LeaderEpoch(0), isr: nodes([1, 3]), partitionEpoch: PartitionEpoch(1))])
        let (expanded, _) = fixture.alter(isr: Self.members([1, 3, 2]))
        #expect(expanded.partitions.first?.partitionEpoch == PartitionEpoch(2))
        #expect(fixture.harness.partition("t", 0).isr == nodes([1, 3, 2]))
        #expect(fixture.harness.partition("t", 0).leaderEpoch == LeaderEpoch(0), "ISR changes keep the leader epoch")
    }

    @Test func stalePartitionEpochLosesTheCompareAndSet() {
        var fixture = Fixture()
        _ = fixture.alter(isr: Self.members([1, 2]))
        let (stale, records) = fixture.alter(partitionEpoch: 0, isr: Self.members([1]))
        #expect(records.isEmpty)
        let result = stale.partitions.first!
        #expect(result.error == .invalidUpdateVersion)
        #expect(result.isr == nodes([1, 2]) && result.partitionEpoch == PartitionEpoch(1), "the reply carries the current state")
    }

    @Test func twoChangesToOnePartitionInOneRequestConflict() {
        var fixture = Fixture()
        let request = AlterPartitionRequest(brokerID: NodeID(1), brokerEpoch: fixture.harness.epoch(of: 1), partitions: [
            .init(topicID: fixture.topicID, partition: 0, leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0), newISR: Self.members([1, 2])),
            .init(topicID: fixture.topicID, partition: 0, leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0), newISR: Self.members([1, 3])),
        ])
        let reply = fixture.harness.run { $0.alterPartition(request) }
        #expect(reply.partitions.map(\.error) == [.none, .invalidUpdateVersion])
    }

    @Test func staleLeaderEpochIsFenced() {
        var fixture = Fixture()
        let (reply, _) = fixture.alter(leaderEpoch: 7, isr: Self.members([1, 2]))
        #expect(reply.partitions.first?.error == .fencedLeaderEpoch)
    }

    @Test func onlyTheLeaderMayAlter() {
        var fixture = Fixture()
        let (reply, records) = fixture.alter(from: 2, isr: Self.members([1, 2]))
        #expect(reply.partitions.first?.error == .notLeaderOrFollower && records.isEmpty)
    }

    @Test func staleBrokerEpochRefusesTheWholeRequest() {
        var fixture = Fixture()
        let (reply, _) = fixture.alter(brokerEpoch: BrokerEpoch(0), isr: Self.members([1, 2]))
        #expect(reply.error == .staleBrokerEpoch && reply.partitions.isEmpty)
    }

    @Test(arguments: [
        ([2, 3] as [Int32], "the leader must stay in the ISR"),
        ([1, 4], "members must be replicas"),
        ([1, 1, 2], "no duplicates"),
        ([], "not empty"),
    ])
    func malformedISRIsInvalid(isr: [Int32], rule: String) {
        var fixture = Fixture()
        let (reply, records) = fixture.alter(isr: Self.members(isr))
        #expect(reply.partitions.first?.error == .invalidRequest, "\(rule)")
        #expect(records.isEmpty)
    }

    @Test func addedMembersMustBeLiveAndCurrent() {
        var fixture = Fixture()
        _ = fixture.alter(isr: Self.members([1, 2]))
        fixture.harness.expireSessions(except: [1, 2])
        #expect(fixture.harness.image.broker(NodeID(3))!.isFenced)
        let (fenced, _) = fixture.alter(isr: Self.members([1, 2, 3]))
        #expect(fenced.partitions.first?.error == .ineligibleReplica)

        fixture.harness.register(3)
        let (stillFenced, _) = fixture.alter(isr: Self.members([1, 2, 3]))
        #expect(stillFenced.partitions.first?.error == .ineligibleReplica)
        fixture.harness.heartbeat(3)

        // The leader saw broker 3 fetch under an older epoch: refused (KIP-903).
        let (staleMember, _) = fixture.alter(isr: Self.members([1, 2]) + [.init(brokerID: NodeID(3), brokerEpoch: BrokerEpoch(3))])
        #expect(staleMember.partitions.first?.error == .ineligibleReplica)
        let current = fixture.harness.epoch(of: 3)
        let (accepted, _) = fixture.alter(isr: Self.members([1, 2]) + [.init(brokerID: NodeID(3), brokerEpoch: current)])
        #expect(accepted.partitions.first?.error == ControllerErrorCode.none)
    }

    @Test func unchangedISRProposesNothing() {
        var fixture = Fixture()
        let (reply, records) = fixture.alter(isr: Self.members([1, 2, 3]))
        #expect(reply.partitions.first?.error == ControllerErrorCode.none && records.isEmpty)
    }

    @Test func unknownPartition() {
        var fixture = Fixture()
        let request = AlterPartitionRequest(brokerID: NodeID(1), brokerEpoch: fixture.harness.epoch(of: 1), partitions: [
            .init(topicID: TopicID(high: 1, low: 1), partition: 0, leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0), newISR: []),
            .init(topicID: fixture.topicID, partition: 5, leaderEpoch: LeaderEpoch(0), partitionEpoch: PartitionEpoch(0), newISR: []),
        ])
        let reply = fixture.harness.run { $0.alterPartition(request) }
        #expect(reply.partitions.map(\.error) == [.unknownTopicOrPartition, .unknownTopicOrPartition])
    }

    /// A stale request for a deleted topic can never touch a new topic of the same name.
    @Test func requestsForADeletedTopicDoNotReachItsSuccessor() {
        var fixture = Fixture()
        let oldID = fixture.topicID
        _ = fixture.harness.run { $0.deleteTopics(DeleteTopicsRequest(names: ["t"])) }
        let newID = fixture.harness.createTopic("t", assignments: [[1, 2, 3]])
        #expect(newID != oldID)
        let (reply, records) = fixture.alter(isr: Self.members([1, 2]))
        #expect(reply.partitions.first?.error == .unknownTopicOrPartition && records.isEmpty)
    }
}

@Suite struct ControlledShutdownTests {
    @Test func shutdownMovesLeadershipThenWaitsForOthersThenGrants() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        harness.createTopic("t", assignments: [[1, 2, 3], [2, 1, 3]])
        harness.createTopic("solo", assignments: [[1]])
        harness.createTopic("other", assignments: [[3, 2]])

        // 1. The broker asks: leadership moves, it leaves the ISRs, the partition only it holds goes offline.
        let asked = harness.heartbeat(1, wantShutDown: true)
        #expect(asked == BrokerHeartbeatResponse(error: .none, isCaughtUp: true, isFenced: false, shouldShutDown: false))
        let registration = harness.image.broker(NodeID(1))!
        #expect(registration.inControlledShutdown && !registration.isFenced)
        #expect(harness.image.partitionsLed(by: NodeID(1)).isEmpty)
        #expect(harness.partition("t", 0).leader == NodeID(2) && harness.partition("t", 0).isr == nodes([2, 3]))
        #expect(harness.partition("t", 1).isr == nodes([2, 3]))
        #expect(harness.partition("solo", 0).leader == nil && harness.partition("solo", 0).isr == nodes([1]))
        #expect(harness.partition("other", 0).partitionEpoch == PartitionEpoch(0), "partitions without broker 1 are untouched")

        // 2. Not granted while another live broker has not applied the metadata that far.
        let shutdownOffset = registration.controlledShutdownOffset!
        harness.heartbeat(2, metadataOffset: shutdownOffset - 1)
        harness.heartbeat(3)
        #expect(!harness.heartbeat(1, wantShutDown: true).shouldShutDown)

        // 3. Granted once it has: the broker is fenced and may stop.
        harness.heartbeat(2, metadataOffset: shutdownOffset)
        let granted = harness.heartbeat(1, wantShutDown: true)
        #expect(granted == BrokerHeartbeatResponse(error: .none, isCaughtUp: true, isFenced: true, shouldShutDown: true))
        #expect(harness.image.broker(NodeID(1))!.isFenced)
        // Retried heartbeats keep getting the same answer.
        #expect(harness.heartbeat(1, wantShutDown: true).shouldShutDown)

        // Shutting-down and fenced brokers are never chosen as leaders or placed.
        let placement = harness.run { $0.createTopics(CreateTopicsRequest(topics: [.init(name: "new", partitionCount: 6, replicationFactor: 2)])) }
        #expect(placement.topics.first?.error == ControllerErrorCode.none)
        #expect(harness.image.topic(named: "new")!.partitions.allSatisfy { !$0.replicas.contains(NodeID(1)) })

        // 4. The broker restarts at once (no waiting for its session: it is fenced): new epoch,
        //    caught up, unfenced, and its lone partition is back.
        #expect(harness.register(1).error == ControllerErrorCode.none)
        harness.heartbeat(1)
        #expect(harness.partition("solo", 0).leader == NodeID(1))
    }

    @Test func brokerInShutdownCannotJoinAnISR() {
        var harness = ControllerHarness(brokers: [1, 2, 3])
        let topicID = harness.createTopic("t", assignments: [[2, 1, 3]])
        harness.heartbeat(1, wantShutDown: true)
        #expect(harness.partition("t", 0).isr == nodes([2, 3]))
        let reply = harness.run { [epoch = harness.epoch(of: 2), current = harness.partition("t", 0)] in
            $0.alterPartition(AlterPartitionRequest(brokerID: NodeID(2), brokerEpoch: epoch, partitions: [
                .init(topicID: topicID, partition: 0, leaderEpoch: current.leaderEpoch, partitionEpoch: current.partitionEpoch,
                      newISR: [.init(brokerID: NodeID(2)), .init(brokerID: NodeID(3)), .init(brokerID: NodeID(1))]),
            ]))
        }
        #expect(reply.partitions.first?.error == .ineligibleReplica)
    }

    @Test func fencedBrokerMayStopAtOnce() {
        var harness = ControllerHarness(brokers: [1])
        harness.register(2)
        let reply = harness.heartbeat(2, metadataOffset: Offset(0), wantShutDown: true)
        #expect(reply.shouldShutDown && reply.isFenced)
    }

    @Test func shutdownSessionExpiryStillFences() {
        var harness = ControllerHarness(brokers: [1, 2])
        harness.heartbeat(1, wantShutDown: true)
        harness.expireSessions(except: [2])
        #expect(harness.image.broker(NodeID(1))!.isFenced)
    }
}
