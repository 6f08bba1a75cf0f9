import SimWorld
import Simulator
import Testing

@Suite struct ClientConnectionTests {
    /// A client sends malformed frames to every broker while the network and connections fail
    /// under it: each malformed frame costs only its own connection (the broker closes it and
    /// answers nothing on it), the same client's good connection to that broker is still answered
    /// afterwards, and the producer and consumer beside it finish with every checker passing.
    @Test(arguments: [(UInt64(1), FaultProfile.none), (1, .network), (2, .all)])
    func aMalformedFrameUnderFaultsClosesOnlyItsConnection(seed: UInt64, profile: FaultProfile) throws {
        var layout = ClusterLayout()
        layout.produceWorkload = true
        layout.malformedFrameClient = true
        let outcome = ClusterSimulation(seed: seed, profile: profile, layout: layout, safetyPhase: .seconds(30),
                                        livenessPhase: .seconds(30)).run()
        #expect(outcome.report.passed, "\(String(describing: outcome.report.violation))")
        let client = try #require(outcome.malformedFrameClient)
        #expect(client.malformedFramesSent >= 20)
        #expect(client.malformedFramesAnswered == 0, "a broker answered a malformed frame")
        // Faults may reset a malformed connection before its frame lands; most are the broker's doing.
        #expect(client.malformedConnectionsClosed >= client.malformedFramesSent * 3 / 4)
        #expect(client.controlAnswersAfterAClose >= 10, "good connections stopped being answered after a bad one")
        // A good connection closes when its broker restarts (a planned shutdown, a crash), is not
        // serving yet, or a fault resets it; closing every connection on bad input would close
        // the good connection to that broker with each malformed one.
        #expect(client.controlConnectionsClosed * 10 < client.malformedConnectionsClosed * 7,
                "\(client.controlConnectionsClosed) good connections closed beside \(client.malformedConnectionsClosed) malformed ones")
        // Retention may delete records before the consumer reads them: the consumed-records
        // checker, which passed, judged completeness above each log start.
        #expect(outcome.acknowledgedWrites > 0 && outcome.consumedRecords > 0)
    }
}
