import KafkaProtocol
import LogStorage
@testable import Simulator
import TernCore
import Testing

/// The timestamp-lookups checker's rule, fed answers it must reject.
@Suite struct TimestampLookupCheckerTests {
    /// Offsets 0, 1, 2 at 100, 50 (a producer's clock behind) and 200 ms.
    let records = [(0, 100), (1, 50), (2, 200)].map { TimestampedOffset(offset: Offset(Int64($0.0)), timestamp: Int64($0.1)) }

    func problem(_ got: (Int64, Int64)?, _ target: Int64, before: Int64 = 3) -> String? {
        TimestampLookupChecker.problem(got.map { TimestampedOffset(offset: Offset($0.0), timestamp: $0.1) }, target: target,
                                       records: records, highWatermarkBefore: Offset(before))
    }

    @Test func aLookupMustNameTheFirstRecordReachingTheTime() {
        #expect(problem((0, 100), 60) == nil)
        #expect(problem((1, 50), 60) != nil, "a record older than asked")
        #expect(problem((2, 200), 60) != nil, "not the first one reaching the time")
        #expect(problem(nil, 60) != nil, "a committed record reaches it")
        #expect(problem((2, 200), 150) == nil)
        #expect(problem(nil, 201) == nil)
        #expect(problem((2, 200), 201) != nil)
        #expect(problem((2, 199), 150) != nil, "the record's own timestamp, not another")
    }

    @Test func aRecordCommittedDuringTheHandlingEventMayBeMissing() {
        // The high watermark went from 2 to 3 in the event: the record at 2 may or may not count.
        #expect(problem(nil, 150, before: 2) == nil)
        #expect(problem((2, 200), 150, before: 2) == nil)
        #expect(problem(nil, 60, before: 2) != nil, "offset 0 was committed before the event")
    }

    @Test func theMaxTimestampQueryNamesTheNewestRecord() {
        #expect(problem((2, 200), ListOffsetsTimestamp.maxTimestamp) == nil)
        #expect(problem((0, 100), ListOffsetsTimestamp.maxTimestamp) != nil)
        #expect(problem(nil, ListOffsetsTimestamp.maxTimestamp) != nil)
        // With offset 2 committed during the event, the newest of the first two also stands.
        #expect(problem((0, 100), ListOffsetsTimestamp.maxTimestamp, before: 2) == nil)
        #expect(problem((1, 50), ListOffsetsTimestamp.maxTimestamp, before: 2) != nil, "never the newest of any prefix")
    }
}
