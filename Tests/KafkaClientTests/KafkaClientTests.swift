import Testing
@testable import KafkaClient

@Suite struct BrokerAddressTests {
    @Test func parsesHostPortLists() throws {
        let addresses = try BrokerAddress.parseList("127.0.0.1:19092, localhost:19093,[::1]:19094,127.0.0.1:19092")
        #expect(addresses == [BrokerAddress(host: "127.0.0.1", port: 19092), BrokerAddress(host: "localhost", port: 19093),
                              BrokerAddress(host: "::1", port: 19094)])
        #expect(addresses[2].description == "[::1]:19094")
    }

    @Test func refusesMalformedAddresses() {
        for text in ["", "localhost", "localhost:", ":9092", "host:0", "host:70000", "host:abc", "::1:9092", "[::1]9092", "a:1,,b:2"] {
            #expect(throws: BrokerAddressError.self, "\(text)") { try BrokerAddress.parseList(text) }
        }
    }
}

@Suite struct LatencyHistogramTests {
    @Test func smallValuesAreExact() {
        var histogram = LatencyHistogram()
        for value in 1...10 { histogram.record(nanoseconds: Int64(value)) }
        #expect(histogram.percentileNanoseconds(0.5) == 5)
        #expect(histogram.percentileNanoseconds(0.9) == 9)
        #expect(histogram.percentileNanoseconds(1.0) == 10)
        #expect(histogram.percentileNanoseconds(0) == 1)
        #expect(histogram.count == 10)
    }

    @Test func percentilesStayWithinTheBucketError() {
        var histogram = LatencyHistogram()
        // 1 µs to 1 s, one sample per 997 ns step: nearest-rank truth is easy to compute.
        var values: [Int64] = []
        var value: Int64 = 1_000
        while value < 1_000_000_000 {
            values.append(value)
            histogram.record(nanoseconds: value)
            value += value / 50 + 997
        }
        for fraction in [0.5, 0.9, 0.99, 0.999] {
            let rank = Int((fraction * Double(values.count)).rounded(.up)) - 1
            let truth = values[rank]
            let reported = histogram.percentileNanoseconds(fraction)
            #expect(reported >= truth, "p\(fraction) reported \(reported) below the true \(truth)")
            #expect(Double(reported - truth) <= Double(truth) / Double(LatencyHistogram.subBucketCount) + 1,
                    "p\(fraction) reported \(reported), true \(truth)")
        }
        #expect(histogram.percentileNanoseconds(1.0) == values.last!)
    }

    @Test func bucketsAreContiguous() {
        var previousIndex = -1
        for value: Int64 in 0..<100_000 {
            let index = LatencyHistogram.bucketIndex(for: value)
            #expect(index == previousIndex || index == previousIndex + 1)
            #expect(LatencyHistogram.upperEdge(ofBucket: index) >= value)
            previousIndex = index
        }
    }

    @Test func mergeAddsCounts() {
        var first = LatencyHistogram()
        var second = LatencyHistogram()
        first.record(nanoseconds: 1_000_000, occurrences: 3)
        second.record(nanoseconds: 5_000_000)
        first.merge(second)
        #expect(first.count == 4)
        #expect(first.maximumNanoseconds == 5_000_000)
        #expect(first.percentileNanoseconds(0.75) < 1_020_000)
    }
}

@Suite struct PartitionerTests {
    @Test func murmur2MatchesKafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        #expect(KafkaPartitioner.murmur2(Array("21".utf8)) == -973_932_308)
        #expect(KafkaPartitioner.murmur2(Array("foobar".utf8)) == -790_332_482)
        #expect(KafkaPartitioner.murmur2(Array("a-little-bit-long-string".utf8)) == -985_981_536)
        #expect(KafkaPartitioner.murmur2(Array("a-little-bit-longer-string".utf8)) == -1_486_304_829)
        #expect(KafkaPartitioner.murmur2(Array("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8".utf8)) == -58_897_971)
    }

    @Test func partitionIsNonNegative() {
        for key in ["a", "b", "21", "foobar", ""] {
            let partition = KafkaPartitioner.partition(forKey: Array(key.utf8), partitionCount: 7)
            #expect((0..<7).contains(partition))
        }
    }
}

@Suite struct ToolOptionsTests {
    let bootstrap = ["--bootstrap", "127.0.0.1:19092"]

    @Test func topicsCreateTakesEveryOption() throws {
        let options = try TopicsOptions(["create", "events", "--partitions", "6", "--replication-factor=3",
                                         "--config", "retention.ms=1000", "--config", "segment.bytes=1048576"] + bootstrap)
        #expect(options.command == .create(NewTopic(name: "events", partitionCount: 6, replicationFactor: 3,
                                                    configs: [("retention.ms", "1000"), ("segment.bytes", "1048576")])))
        #expect(options.bootstrap == [BrokerAddress(host: "127.0.0.1", port: 19092)])
        #expect(try TopicsOptions(["create", "events"] + bootstrap).command == .create(NewTopic(name: "events")))
    }

    @Test func topicsActions() throws {
        #expect(try TopicsOptions(["list"] + bootstrap).command == .list)
        #expect(try TopicsOptions(["describe"] + bootstrap).command == .describe(name: nil))
        #expect(try TopicsOptions(["describe", "events"] + bootstrap).command == .describe(name: "events"))
        #expect(try TopicsOptions(bootstrap + ["delete", "events"]).command == .delete(name: "events"))
    }

    @Test func usageErrors() {
        let bad: [[String]] = [
            ["list"], ["list", "--bootstrap"], ["frobnicate"] + bootstrap, ["create"] + bootstrap,
            ["create", "a", "--partitions", "0"] + bootstrap, ["create", "a", "--config", "novalue"] + bootstrap,
            ["delete", "a", "--partitions", "3"] + bootstrap, ["list", "--verbose"] + bootstrap,
        ]
        for arguments in bad {
            #expect(throws: UsageError.self, "\(arguments)") { try TopicsOptions(arguments) }
        }
    }

    @Test func produceAndConsumeOptions() throws {
        let produce = try ProduceOptions(["events", "--acks", "1", "--key-separator", ":"] + bootstrap)
        #expect(produce.topic == "events" && produce.acks == 1 && produce.keySeparator == ":" && produce.partition == nil)
        #expect(try ProduceOptions(["events"] + bootstrap).acks == -1)
        #expect(throws: UsageError.self) { try ProduceOptions(["events", "--acks", "2"] + self.bootstrap) }
        #expect(throws: UsageError.self) { try ProduceOptions(["events", "--key-separator", "::"] + self.bootstrap) }

        let consume = try ConsumeOptions(["events", "--from-beginning", "--partition", "2", "--max-records", "10",
                                          "--exit-at-end", "--print-key"] + bootstrap)
        #expect(consume.fromBeginning && consume.exitAtEnd && consume.printKey && !consume.printOffset)
        #expect(consume.partition == 2 && consume.maximumRecords == 10)
        #expect(throws: UsageError.self) { try ConsumeOptions(["events", "--from-beginning=yes"] + self.bootstrap) }
    }

    @Test func benchmarkOptions() throws {
        let produce = try ProduceBenchmarkOptions(["--topic", "bench", "--records", "1,000", "--record-bytes", "200",
                                                   "--partitions", "3"] + bootstrap)
        #expect(produce.recordCount == 1_000 && produce.recordBytes == 200 && produce.partitionCount == 3)
        #expect(produce.acks == -1 && produce.replicationFactor == 3)
        #expect(try ProduceBenchmarkOptions(["--topic", "t"] + bootstrap).recordCount == 1_000_000)
        let windowed = try ProduceBenchmarkOptions(["--topic", "t", "--window", "5000", "--sync-records", "100"] + bootstrap)
        #expect(windowed.windowRecords == 5_000 && windowed.syncRecordCount == 100)
        #expect(try ProduceBenchmarkOptions(["--topic", "t"] + bootstrap).windowRecords == 1_000)
        #expect(try ProduceBenchmarkOptions(["--topic", "t", "--records", "0", "--sync-records", "10"] + bootstrap).recordCount == 0)
        #expect(throws: UsageError.self) { try ProduceBenchmarkOptions(["--topic", "t", "--records", "0"] + self.bootstrap) }
        #expect(throws: UsageError.self) { try ProduceBenchmarkOptions(["--topic", "t", "--window", "0"] + self.bootstrap) }
        #expect(throws: UsageError.self) { try ProduceBenchmarkOptions(self.bootstrap) }
        let consume = try ConsumeBenchmarkOptions(["--topic", "bench", "--records", "500"] + bootstrap)
        #expect(consume.recordCount == 500)
        #expect(try ConsumeBenchmarkOptions(["--topic", "bench"] + bootstrap).recordCount == nil)
    }
}
