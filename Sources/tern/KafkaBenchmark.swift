// `tern bench produce|consume`: throughput and latency against a running cluster over the Kafka
// protocol, in the spirit of kafka-producer-perf-test and kafka-consumer-perf-test.
import Client
import KafkaClient
import KafkaProtocol
import Posix
import TernCore

func runKafkaBenchmark(_ kind: String, _ arguments: [String]) {
    switch kind {
    case "produce": runProduceBenchmark(parseToolOptions(kafkaBenchmarkUsage) { () throws(UsageError) in try ProduceBenchmarkOptions(arguments) })
    case "consume": runConsumeBenchmark(parseToolOptions(kafkaBenchmarkUsage) { () throws(UsageError) in try ConsumeBenchmarkOptions(arguments) })
    default: fail("unknown benchmark '\(kind)'\n\(kafkaBenchmarkUsage)")
    }
}

private func runProduceBenchmark(_ options: ProduceBenchmarkOptions) {
    let partitionCount = ensureBenchmarkTopic(options)
    var configuration = IdempotentProducer.Configuration(lingerTime: .milliseconds(5), batchSizeBytes: 256 * 1024, maximumRecordsPerBatch: 2_000,
                                                         maximumBufferedRecords: options.windowRecords)
    configuration.acks = options.acks
    let network = KafkaNetworkClient(bootstrap: options.bootstrap, configuration: .init(clientID: "tern-bench-producer"))
    let producer = IdempotentProducer(bootstrapNodes: network.bootstrapNodes, configuration: configuration,
                                      random: DeterministicRandom(seed: UInt64(bitPattern: Clocks.monotonicNanoseconds())))
    var driver = SansIOClientDriver(client: producer, network: network)
    print("tern bench produce: \(options.recordCount) records of \(options.recordBytes) B to \(options.topic) (\(partitionCount) partitions),"
          + " at most \(options.windowRecords) unacknowledged, then \(options.syncRecordCount) one at a time;"
          + " acks=\(options.acks == -1 ? "all" : String(options.acks)), idempotent, batches up to \(configuration.batchSizeBytes / 1024) KiB"
          + " / \(configuration.maximumRecordsPerBatch) records, linger \(configuration.lingerTime) (none once the window is full)")
    var failures = ProduceFailures()
    var summary: [String] = []
    if options.recordCount > 0 {
        summary += runWindowedProduce(options, partitionCount: partitionCount, driver: &driver, failures: &failures)
    }
    if options.syncRecordCount > 0 {
        summary += runOneAtATimeProduce(options, partitionCount: partitionCount, driver: &driver, failures: &failures)
    }
    network.closeAll()
    print("(MB = 10^6 bytes of record values; latency is send() to acknowledgement, so it includes linger and time queued in the producer)")
    for line in summary { print("result \(line)") }
    if failures.count > 0 { failOperation("\(failures.count) records failed; first: \(failures.first ?? "?")") }
}

private struct ProduceFailures {
    var count = 0
    var first: String?

    mutating func note(_ completion: ProduceCompletion) {
        guard case let .failed(error, _) = completion.outcome else { return }
        count += 1
        if first == nil { first = "\(completion.topicPartition): \(kafkaErrorName(error))" }
    }
}

/// The throughput phase, like the NATS peer's async publish: records are sent as fast as the
/// window allows, each acknowledgement making room for the next record. Returns `result` lines.
private func runWindowedProduce(_ options: ProduceBenchmarkOptions, partitionCount: Int32,
                                driver: inout SansIOClientDriver<IdempotentProducer>, failures: inout ProduceFailures) -> [String] {
    let configuration = driver.client.configuration
    let window = options.windowRecords
    let value = [UInt8](repeating: UInt8(ascii: "x"), count: options.recordBytes)
    // Send times by record handle (handles count up from 1), in a ring as large as the window:
    // never more records than that are unanswered, so a slot is free when reused.
    var sendTimes = [Int64](repeating: 0, count: window)
    var histogram = LatencyHistogram()
    // Sticky partitioning: whole batches to one partition, then the next, as Kafka's default does.
    // A window smaller than a batch is one batch. Smaller turns, for more batches in flight, were
    // slower on the 3-broker, 2-core benchmark machine (window 1000, medians of 3: 166 records a
    // turn 232,000 records/s, 333 a turn 286,000, 1000 a turn 477,000): each request costs the
    // brokers more than the wait for its round trip.
    let batchBoundRecords = min(configuration.maximumRecordsPerBatch, max(1, configuration.batchSizeBytes / (options.recordBytes + 40)))
    let recordsPerPartitionTurn = min(batchBoundRecords, window)
    var sent = 0
    var acknowledged = 0
    var finished = 0
    let startNanoseconds = Clocks.monotonicNanoseconds()
    var progress = BenchmarkProgress(startNanoseconds: startNanoseconds)
    var lastAcknowledgementNanoseconds = startNanoseconds

    while finished < options.recordCount {
        let now = Clocks.wallClockNow()
        while sent < options.recordCount, driver.client.unfinishedRecords < window {
            let partition = Int32((sent / recordsPerPartitionTurn) % Int(partitionCount))
            let handle: RecordHandle
            do { handle = try driver.client.send(TopicPartition(topic: options.topic, partition: partition), key: nil, value: value, now: now) } catch {
                failOperation("record refused: \(error)")
            }
            sendTimes[Int(handle.rawValue % UInt64(window))] = Clocks.monotonicNanoseconds()
            sent += 1
        }
        // Nothing more can be added until acknowledgements arrive, so lingering would only add latency.
        driver.client.flush()
        // The window is full (or everything is sent): waiting for an answer is all there is to do.
        driver.step(maximumWait: .milliseconds(10))
        let completions = driver.client.takeCompletions()
        let ackNanoseconds = Clocks.monotonicNanoseconds()
        for completion in completions {
            finished += 1
            if case .written = completion.outcome {
                acknowledged += 1
                histogram.record(nanoseconds: ackNanoseconds - sendTimes[Int(completion.handle.rawValue % UInt64(window))])
            } else {
                failures.note(completion)
            }
        }
        if !completions.isEmpty { lastAcknowledgementNanoseconds = ackNanoseconds }
        if ackNanoseconds - lastAcknowledgementNanoseconds > 60_000_000_000 {
            failOperation("no acknowledgement for 60 s after \(acknowledged) records"
                          + (driver.lastNetworkError.map { "; last network error: \($0)" } ?? ""))
        }
        progress.report(records: acknowledged, bytes: Int64(acknowledged) * Int64(options.recordBytes), histogram: histogram,
                        nowNanoseconds: ackNanoseconds)
    }
    let seconds = Double(lastAcknowledgementNanoseconds - startNanoseconds) / 1e9
    let recordsPerSecond = Double(acknowledged) / seconds
    let megabytesPerSecond = Double(acknowledged) * Double(options.recordBytes) / seconds / 1e6
    print("windowed: \(acknowledged) records acknowledged in \(formatFixed(seconds, places: 2)) s with at most \(window) unacknowledged: "
          + "\(formatFixed(recordsPerSecond, places: 0)) records/s, \(formatFixed(megabytesPerSecond, places: 2)) MB/s")
    print("windowed latency: \(latencySummary(histogram))")
    return ["window_records=\(window)",
            "records_per_second=\(formatFixed(recordsPerSecond, places: 0))",
            "megabytes_per_second=\(formatFixed(megabytesPerSecond, places: 2))"]
        + latencyResults(histogram, prefix: "latency")
}

/// The latency phase, like the NATS peer's SYNC_PUB: one record at a time, each sent at once
/// (no linger) and acknowledged before the next is sent. Returns `result` lines.
private func runOneAtATimeProduce(_ options: ProduceBenchmarkOptions, partitionCount: Int32,
                                  driver: inout SansIOClientDriver<IdempotentProducer>, failures: inout ProduceFailures) -> [String] {
    let value = [UInt8](repeating: UInt8(ascii: "x"), count: options.recordBytes)
    var histogram = LatencyHistogram()
    // One unmeasured record first, so connecting, metadata and the producer id are not in the
    // figures when this phase runs alone.
    _ = produceOne(options, partition: 0, value: value, driver: &driver, failures: &failures)
    let startNanoseconds = Clocks.monotonicNanoseconds()
    for index in 0..<options.syncRecordCount {
        // Round robin, so every partition leader's latency is in the figures.
        let partition = Int32(index % Int(partitionCount))
        histogram.record(nanoseconds: produceOne(options, partition: partition, value: value, driver: &driver, failures: &failures))
    }
    let seconds = Double(Clocks.monotonicNanoseconds() - startNanoseconds) / 1e9
    let recordsPerSecond = Double(options.syncRecordCount) / seconds
    print("one at a time: \(options.syncRecordCount) records in \(formatFixed(seconds, places: 2)) s: \(formatFixed(recordsPerSecond, places: 0)) records/s")
    print("one-at-a-time latency: \(latencySummary(histogram))")
    return ["sync_records=\(options.syncRecordCount)", "sync_records_per_second=\(formatFixed(recordsPerSecond, places: 0))"]
        + latencyResults(histogram, prefix: "sync_latency")
}

/// Sends one record, waits for its outcome and returns the nanoseconds that took.
private func produceOne(_ options: ProduceBenchmarkOptions, partition: Int32, value: [UInt8],
                        driver: inout SansIOClientDriver<IdempotentProducer>, failures: inout ProduceFailures) -> Int64 {
    let startNanoseconds = Clocks.monotonicNanoseconds()
    let handle: RecordHandle
    do {
        handle = try driver.client.send(TopicPartition(topic: options.topic, partition: partition), key: nil, value: value,
                                        now: Clocks.wallClockNow())
    } catch {
        failOperation("record refused: \(error)")
    }
    driver.client.flush()
    while true {
        driver.step(maximumWait: .milliseconds(100))
        for completion in driver.client.takeCompletions() where completion.handle == handle {
            failures.note(completion)
            return Clocks.monotonicNanoseconds() - startNanoseconds
        }
        if Clocks.monotonicNanoseconds() - startNanoseconds > 60_000_000_000 {
            failOperation("no acknowledgement for 60 s for a single record"
                          + (driver.lastNetworkError.map { "; last network error: \($0)" } ?? ""))
        }
    }
}

private func latencySummary(_ histogram: LatencyHistogram) -> String {
    "p50 \(formatMilliseconds(histogram.percentileNanoseconds(0.5))) ms, p99 \(formatMilliseconds(histogram.percentileNanoseconds(0.99))) ms,"
        + " p999 \(formatMilliseconds(histogram.percentileNanoseconds(0.999))) ms, max \(formatMilliseconds(histogram.maximumNanoseconds)) ms,"
        + " mean \(formatMilliseconds(Int64(histogram.meanNanoseconds))) ms"
}

private func latencyResults(_ histogram: LatencyHistogram, prefix: String) -> [String] {
    ["\(prefix)_p50_ms=\(formatMilliseconds(histogram.percentileNanoseconds(0.5)))",
     "\(prefix)_p99_ms=\(formatMilliseconds(histogram.percentileNanoseconds(0.99)))",
     "\(prefix)_p999_ms=\(formatMilliseconds(histogram.percentileNanoseconds(0.999)))",
     "\(prefix)_max_ms=\(formatMilliseconds(histogram.maximumNanoseconds))"]
}

/// Creates the topic when missing and waits until every partition has a leader.
private func ensureBenchmarkTopic(_ options: ProduceBenchmarkOptions) -> Int32 {
    let admin = KafkaAdminClient(bootstrap: options.bootstrap)
    defer { admin.close() }
    do {
        let existing = try admin.metadata(topics: [options.topic]).topics.first { $0.name == options.topic }
        if existing == nil || existing!.error == .unknownTopicOrPartition {
            let results = try admin.createTopics([NewTopic(name: options.topic, partitionCount: options.partitionCount,
                                                           replicationFactor: options.replicationFactor)])
            for result in results where !result.succeeded && result.errorCode != 36 {  // 36: created meanwhile
                failOperation("cannot create topic '\(options.topic)': \(result.errorDescription)")
            }
            printToStandardError("created topic \(options.topic)")
        }
        for _ in 0..<300 {
            if let topic = try admin.metadata(topics: [options.topic]).topics.first(where: { $0.name == options.topic }),
               topic.error == .none, !topic.partitions.isEmpty, topic.partitions.allSatisfy({ $0.leaderID != nil }) {
                return Int32(topic.partitions.count)
            }
            _ = admin.network.poll(timeout: .milliseconds(100))
        }
        failOperation("topic '\(options.topic)' has partitions without a leader after 30 s")
    } catch {
        failOperation(error.description)
    }
}

private func runConsumeBenchmark(_ options: ConsumeBenchmarkOptions) {
    let partitionCount = topicPartitionCount(options.topic, bootstrap: options.bootstrap)
    let partitions = Array(0..<partitionCount)
    let admin = KafkaAdminClient(bootstrap: options.bootstrap)
    let available: Int64
    do {
        let starts = try admin.offsets(topic: options.topic, partitions: partitions, timestampMilliseconds: ListOffsetsTimestamp.earliest)
        let ends = try admin.offsets(topic: options.topic, partitions: partitions, timestampMilliseconds: ListOffsetsTimestamp.latest)
        available = partitions.reduce(0) { $0 + (ends[$1]!.rawValue - starts[$1]!.rawValue) }
    } catch {
        failOperation(error.description)
    }
    admin.close()
    let goal = options.recordCount ?? Int(available)
    guard goal > 0 else { failOperation("topic '\(options.topic)' holds no records; produce some first (tern bench produce)") }
    print("tern bench consume: \(goal) records from the beginning of \(options.topic) (\(partitionCount) partitions, \(available) records there now)")

    let network = KafkaNetworkClient(bootstrap: options.bootstrap, configuration: .init(clientID: "tern-bench-consumer"))
    let consumer = Consumer(assignments: partitions.map { (TopicPartition(topic: options.topic, partition: $0), .earliest) },
                            bootstrapNodes: network.bootstrapNodes,
                            configuration: Consumer.Configuration(maximumBufferedRecords: 100_000),
                            random: DeterministicRandom(seed: UInt64(bitPattern: Clocks.monotonicNanoseconds())))
    var driver = SansIOClientDriver(client: consumer, network: network)
    let startNanoseconds = Clocks.monotonicNanoseconds()
    var firstRecordNanoseconds: Int64?
    var lastRecordNanoseconds = startNanoseconds
    var records = 0
    var bytes: Int64 = 0
    var progress = BenchmarkProgress(startNanoseconds: startNanoseconds)
    while records < goal {
        driver.step(maximumWait: .milliseconds(100))
        let now = Clocks.monotonicNanoseconds()
        for event in driver.client.takeEvents() { reportConsumerEvent(event) }
        let batch = driver.client.takeRecords()
        if !batch.isEmpty {
            if firstRecordNanoseconds == nil { firstRecordNanoseconds = now }
            lastRecordNanoseconds = now
        }
        for record in batch {
            records += 1
            bytes += Int64((record.value?.count ?? 0) + (record.key?.count ?? 0))
        }
        if now - lastRecordNanoseconds > Int64(options.timeoutSeconds) * 1_000_000_000 {
            failOperation("no record for \(options.timeoutSeconds) s after \(records) of \(goal)"
                          + (driver.lastNetworkError.map { "; last network error: \($0)" } ?? ""))
        }
        progress.report(records: records, bytes: bytes, histogram: nil, nowNanoseconds: now)
    }
    network.closeAll()
    let seconds = Double(lastRecordNanoseconds - startNanoseconds) / 1e9
    print("\(records) records (\(formatFixed(Double(bytes) / 1e6, places: 2)) MB of keys and values) in \(formatFixed(seconds, places: 2)) s: "
          + "\(formatFixed(Double(records) / seconds, places: 0)) records/s, \(formatFixed(Double(bytes) / seconds / 1e6, places: 2)) MB/s")
    print("time to first record: \(formatMilliseconds((firstRecordNanoseconds ?? startNanoseconds) - startNanoseconds)) ms (metadata, offsets, first fetch)")
    print("result records_per_second=\(formatFixed(Double(records) / seconds, places: 0))")
    print("result megabytes_per_second=\(formatFixed(Double(bytes) / seconds / 1e6, places: 2))")
}

/// One line a second on standard error: the last second's rate and the latency so far.
private struct BenchmarkProgress {
    let startNanoseconds: Int64
    var lastReportNanoseconds: Int64
    var lastRecords = 0
    var lastBytes: Int64 = 0

    init(startNanoseconds: Int64) {
        self.startNanoseconds = startNanoseconds
        lastReportNanoseconds = startNanoseconds
    }

    mutating func report(records: Int, bytes: Int64, histogram: LatencyHistogram?, nowNanoseconds: Int64) {
        let elapsed = nowNanoseconds - lastReportNanoseconds
        guard elapsed >= 1_000_000_000 else { return }
        let seconds = Double(elapsed) / 1e9
        var line = "\(records) records, \(formatFixed(Double(records - lastRecords) / seconds, places: 0)) records/s, "
            + "\(formatFixed(Double(bytes - lastBytes) / seconds / 1e6, places: 2)) MB/s"
        if let histogram, !histogram.isEmpty {
            line += ", latency so far p50 \(formatMilliseconds(histogram.percentileNanoseconds(0.5))) ms"
                + " p99 \(formatMilliseconds(histogram.percentileNanoseconds(0.99))) ms"
        }
        printToStandardError(line)
        lastReportNanoseconds = nowNanoseconds
        lastRecords = records
        lastBytes = bytes
    }
}
