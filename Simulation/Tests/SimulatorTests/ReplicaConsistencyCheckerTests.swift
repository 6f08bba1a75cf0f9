import Controller
@testable import SimWorld
@testable import Simulator
import TernCore
import Testing

/// The replication checkers' rules, fed bad histories they must reject.
@Suite struct ReplicaConsistencyCheckerTests {
    typealias Position = HighWatermarkChecker.LeaderPosition

    @Test func aHighWatermarkGoingBackWithinAnEpochIsCaught() {
        let before = Position(incarnation: 1, leaderEpoch: LeaderEpoch(4), highWatermark: Offset(10))
        let regressed = Position(incarnation: 1, leaderEpoch: LeaderEpoch(4), highWatermark: Offset(9))
        #expect(HighWatermarkChecker.regression(from: before, to: regressed)?.contains("from 10 to 9") == true)
        let grown = Position(incarnation: 1, leaderEpoch: LeaderEpoch(4), highWatermark: Offset(12))
        #expect(HighWatermarkChecker.regression(from: before, to: grown) == nil)
        // A new epoch or a new process starts afresh (it learns the HW again from its ISR).
        let nextEpoch = Position(incarnation: 1, leaderEpoch: LeaderEpoch(5), highWatermark: Offset(3))
        #expect(HighWatermarkChecker.regression(from: before, to: nextEpoch) == nil)
        let restarted = Position(incarnation: 2, leaderEpoch: LeaderEpoch(4), highWatermark: Offset(3))
        #expect(HighWatermarkChecker.regression(from: before, to: restarted) == nil)
        // A topic deleted and created again under the same name starts again at epoch 0.
        let first = Position(incarnation: 1, topicID: TopicID(high: 1, low: 1), leaderEpoch: LeaderEpoch(0), highWatermark: Offset(10))
        let recreated = Position(incarnation: 1, topicID: TopicID(high: 2, low: 2), leaderEpoch: LeaderEpoch(0), highWatermark: Offset(0))
        #expect(HighWatermarkChecker.regression(from: first, to: recreated) == nil)
    }

    @Test func replicasThatDifferBelowTheHighWatermarkAreCaught() {
        let leader: [UInt8] = [1, 2, 3, 4, 5]
        #expect(ReplicaConsistencyChecker.difference(expected: leader, actual: leader) == nil)
        #expect(ReplicaConsistencyChecker.difference(expected: leader, actual: [1, 2, 9, 4, 5])?.contains("byte 2") == true)
        #expect(ReplicaConsistencyChecker.difference(expected: leader, actual: [1, 2, 3]) != nil, "a shorter copy differs")
    }
}
