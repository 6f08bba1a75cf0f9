import LogStorage
import TernCore
import Testing

@Suite struct LeaderEpochCacheTests {
    func cache() -> LeaderEpochCache {
        var cache = LeaderEpochCache()
        cache.assign(epoch: LeaderEpoch(1), startOffset: Offset(0))
        cache.assign(epoch: LeaderEpoch(3), startOffset: Offset(100))
        cache.assign(epoch: LeaderEpoch(6), startOffset: Offset(250))
        return cache
    }

    @Test func endOffsetForEpoch() {
        let epochs = cache()
        let end = Offset(300)
        #expect(epochs.endOffset(for: LeaderEpoch(6), logEndOffset: end) == (LeaderEpoch(6), end))
        #expect(epochs.endOffset(for: LeaderEpoch(1), logEndOffset: end) == (LeaderEpoch(1), Offset(100)))
        #expect(epochs.endOffset(for: LeaderEpoch(2), logEndOffset: end) == (LeaderEpoch(1), Offset(100)), "largest epoch at or below")
        #expect(epochs.endOffset(for: LeaderEpoch(5), logEndOffset: end) == (LeaderEpoch(3), Offset(250)))
        #expect(epochs.endOffset(for: LeaderEpoch(7), logEndOffset: end) == (LeaderEpoch.none, Offset.unknown))
        #expect(LeaderEpochCache().endOffset(for: LeaderEpoch(1), logEndOffset: end) == (LeaderEpoch.none, Offset.unknown))
    }

    @Test func olderThanEveryKnownEpoch() {
        var epochs = LeaderEpochCache()
        epochs.assign(epoch: LeaderEpoch(4), startOffset: Offset(10))
        #expect(epochs.endOffset(for: LeaderEpoch(2), logEndOffset: Offset(20)) == (LeaderEpoch(2), Offset(10)))
    }

    @Test func assignRejectsRegressionsAndReplacesConflicts() {
        var epochs = cache()
        let regression = epochs.assign(epoch: LeaderEpoch(2), startOffset: Offset(400))
        #expect(!regression, "an older epoch after a newer one is invalid")
        #expect(epochs == cache())
        let conflict = epochs.assign(epoch: LeaderEpoch(4), startOffset: Offset(200))
        #expect(conflict)
        #expect(epochs.entries.map(\.epoch) == [LeaderEpoch(1), LeaderEpoch(3), LeaderEpoch(4)])
        let known = epochs.assign(epoch: LeaderEpoch(4), startOffset: Offset(260))
        #expect(known, "a known epoch is not moved")
        #expect(epochs.entries.last?.startOffset == Offset(200))
    }

    @Test func truncation() {
        var fromEnd = cache()
        fromEnd.truncate(fromEnd: Offset(250))
        #expect(fromEnd.latestEpoch == LeaderEpoch(3))
        var fromStart = cache()
        fromStart.truncate(fromStart: Offset(120))
        #expect(fromStart.entries == [.init(epoch: LeaderEpoch(3), startOffset: Offset(120)), .init(epoch: LeaderEpoch(6), startOffset: Offset(250))])
    }
}
