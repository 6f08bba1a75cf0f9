@testable import Client
import KafkaProtocol
import TernCore
import Testing

@Suite struct MetadataCacheTests {
    private func loadedCache() -> MetadataCache {
        var cache = MetadataCache(bootstrapNodes: [NodeID(1)], random: DeterministicRandom(seed: 1))
        cache.track(topic: "events")
        let first = cache.nextRequest(now: startTime)
        #expect(first?.destination == NodeID(1))
        #expect(first?.request.topics?.map(\.name) == ["events"])
        cache.apply(metadataAnswer(leader: NodeID(2), epoch: 5), now: startTime)
        return cache
    }

    @Test func learnsLeadersAndBrokers() {
        let cache = loadedCache()
        #expect(cache.usableLeader(for: topicPartition0)?.leaderID == NodeID(2))
        #expect(cache.usableLeader(for: topicPartition0)?.leaderEpoch == LeaderEpoch(5))
        #expect(cache.sortedBrokerIDs == brokerIDs)
    }

    @Test(arguments: [KafkaErrorCode.notLeaderOrFollower, .fencedLeaderEpoch, .unknownTopicOrPartition, .leaderNotAvailable])
    func staleOnLeadershipErrorsAndRefreshesAfterBackoff(error: KafkaErrorCode) {
        var cache = loadedCache()
        let invalidated = cache.noteError(error, for: topicPartition0)
        #expect(invalidated)
        #expect(cache.usableLeader(for: topicPartition0) == nil)
        // The backoff (100 ms) holds the refresh back.
        let refresh1 = cache.nextRequest(now: startTime + .milliseconds(50))
        #expect(refresh1 == nil)
        let refresh2 = cache.nextRequest(now: startTime + .milliseconds(100))
        #expect(refresh2 != nil)
        let advanced = cache.apply(metadataAnswer(leader: NodeID(3), epoch: 6), now: startTime + .milliseconds(101))
        #expect(advanced == [topicPartition0])
        #expect(cache.usableLeader(for: topicPartition0)?.leaderID == NodeID(3))
    }

    @Test func otherErrorsLeaveMetadataAlone() {
        var cache = loadedCache()
        let invalidated = cache.noteError(.notEnoughReplicas, for: topicPartition0)
        #expect(!invalidated)
        #expect(cache.usableLeader(for: topicPartition0)?.leaderID == NodeID(2))
    }

    @Test func neverRegressesToAnOlderEpoch() {
        var cache = loadedCache()
        cache.noteError(.notLeaderOrFollower, for: topicPartition0)
        var now = startTime + .milliseconds(100)
        let refresh3 = cache.nextRequest(now: now)
        #expect(refresh3 != nil)
        // A lagging broker still names the old leader at an older epoch.
        let advanced = cache.apply(metadataAnswer(leader: NodeID(1), epoch: 4), now: now)
        #expect(advanced.isEmpty)
        #expect(cache.leader(for: topicPartition0)?.leaderEpoch == LeaderEpoch(5))
        #expect(cache.usableLeader(for: topicPartition0) == nil, "still stale: the refresh did not answer for it")
        // It asks again after the backoff.
        let refresh4 = cache.nextRequest(now: now + .milliseconds(50))
        #expect(refresh4 == nil)
        now = now + .milliseconds(100)
        let refresh5 = cache.nextRequest(now: now)
        #expect(refresh5 != nil)
        cache.apply(metadataAnswer(leader: NodeID(3), epoch: 6), now: now)
        #expect(cache.usableLeader(for: topicPartition0)?.leaderID == NodeID(3))
    }

    @Test func aLeaderlessPartitionKeepsBeingRefreshedEvenWhenALaggingBrokerAnswers() {
        var cache = loadedCache()
        cache.noteError(.notLeaderOrFollower, for: topicPartition0)
        var now = startTime + .milliseconds(100)
        #expect(cache.nextRequest(now: now) != nil)
        // Offline at epoch 6: no leader to send to.
        cache.apply(metadataAnswer(leader: nil, epoch: 6), now: now)
        #expect(cache.usableLeader(for: topicPartition0) == nil)
        // A broker that lags answers with epoch 5 (found by the simulator: the producer then
        // waited for the five-minute maximumAge while the partition had long had a leader again).
        now = now + .seconds(1)
        #expect(cache.nextRequest(now: now) != nil)
        cache.apply(metadataAnswer(leader: NodeID(2), epoch: 5), now: now)
        now = now + .seconds(1)
        #expect(cache.nextRequest(now: now) != nil, "still no leader: ask again after the backoff")
        cache.apply(metadataAnswer(leader: NodeID(3), epoch: 7), now: now)
        #expect(cache.usableLeader(for: topicPartition0)?.leaderID == NodeID(3))
    }

    @Test func leaderHintOnlyMovesForward() {
        var cache = loadedCache()
        cache.noteError(.notLeaderOrFollower, for: topicPartition0)
        cache.noteLeaderHint(leaderID: NodeID(1), leaderEpoch: LeaderEpoch(5), for: topicPartition0)
        #expect(cache.usableLeader(for: topicPartition0) == nil)
        cache.noteLeaderHint(leaderID: NodeID(3), leaderEpoch: LeaderEpoch(7), for: topicPartition0)
        #expect(cache.usableLeader(for: topicPartition0)?.leaderID == NodeID(3))
    }

    @Test func lostRefreshIsRetried() {
        var cache = MetadataCache(bootstrapNodes: [NodeID(1)], random: DeterministicRandom(seed: 1))
        cache.track(topic: "events")
        let refresh6 = cache.nextRequest(now: startTime)
        #expect(refresh6 != nil)
        let refresh7 = cache.nextRequest(now: startTime)
        #expect(refresh7 == nil, "one refresh in flight at a time")
        cache.requestFailed(now: startTime)
        let refresh8 = cache.nextRequest(now: startTime + .milliseconds(100))
        #expect(refresh8 != nil)
    }
}
