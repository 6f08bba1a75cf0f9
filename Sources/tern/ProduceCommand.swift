// `tern produce TOPIC`: the console producer. Each line of standard input becomes one record,
// sent by the idempotent producer; the command exits once every record is acknowledged.
import Client
import KafkaClient
import KafkaProtocol
import Posix
import TernCore

func runProduce(_ arguments: [String]) {
    let options = parseToolOptions(produceUsage) { () throws(UsageError) in try ProduceOptions(arguments) }
    let partitionCount = topicPartitionCount(options.topic, bootstrap: options.bootstrap)
    if let partition = options.partition, partition >= partitionCount {
        failOperation("topic '\(options.topic)' has \(partitionCount) partitions; there is no partition \(partition)")
    }

    var configuration = IdempotentProducer.Configuration()
    configuration.acks = options.acks
    let network = KafkaNetworkClient(bootstrap: options.bootstrap, configuration: .init(clientID: "tern-producer"))
    let producer = IdempotentProducer(bootstrapNodes: network.bootstrapNodes, configuration: configuration,
                                      random: DeterministicRandom(seed: UInt64(bitPattern: Clocks.monotonicNanoseconds())))
    var driver = SansIOClientDriver(client: producer, network: network)
    var input = StandardInputLines()
    var roundRobin: Int32 = 0
    var acknowledged = 0
    var failures: [String] = []
    var lastProgressNanoseconds = Clocks.monotonicNanoseconds()
    let stallLimitNanoseconds: Int64 = 120_000_000_000

    while true {
        // Take input only while the producer has room: its buffer bound is the back-pressure.
        if !input.reachedEnd, driver.client.unfinishedRecords < configuration.maximumBufferedRecords / 2 {
            let lines: [[UInt8]]
            do { lines = try input.readAvailable() } catch { failOperation("an input line is longer than \(StandardInputLines.maximumLineBytes) bytes") }
            for line in lines {
                var key: [UInt8]?
                var value = line
                if let separator = options.keySeparator, let index = line.firstIndex(of: Array(String(separator).utf8)[0]) {
                    key = Array(line[..<index])
                    value = Array(line[(index + 1)...])
                }
                let partition: Int32
                if let fixed = options.partition {
                    partition = fixed
                } else if let key {
                    partition = KafkaPartitioner.partition(forKey: key, partitionCount: partitionCount)
                } else {
                    partition = roundRobin
                    roundRobin = (roundRobin + 1) % partitionCount
                }
                do {
                    _ = try driver.client.send(TopicPartition(topic: options.topic, partition: partition), key: key, value: value,
                                               now: Clocks.wallClockNow())
                } catch {
                    failOperation("record refused: \(error)")
                }
            }
        }
        driver.step(maximumWait: .milliseconds(input.reachedEnd ? 100 : 20))
        for completion in driver.client.takeCompletions() {
            lastProgressNanoseconds = Clocks.monotonicNanoseconds()
            switch completion.outcome {
            case .written:
                acknowledged += 1
            case let .failed(error, possiblyWritten):
                let message = "\(completion.topicPartition): \(kafkaErrorName(error))" + (possiblyWritten ? " (possibly written)" : "")
                if !failures.contains(message) { printToStandardError("tern: record not acknowledged: \(message)") }
                failures.append(message)
            }
        }
        if input.reachedEnd && driver.client.unfinishedRecords == 0 { break }
        if driver.client.unfinishedRecords > 0, Clocks.monotonicNanoseconds() - lastProgressNanoseconds > stallLimitNanoseconds {
            failOperation("no acknowledgement for \(stallLimitNanoseconds / 1_000_000_000) s"
                          + (driver.lastNetworkError.map { "; last network error: \($0)" } ?? "")
                          + "; waiting: " + driver.client.unfinishedPartitions.joined(separator: "; "))
        }
    }
    network.closeAll()
    if !failures.isEmpty { failOperation("\(failures.count) record(s) failed, \(acknowledged) acknowledged") }
    printToStandardError("tern: \(acknowledged) record(s) acknowledged (acks=\(options.acks == -1 ? "all" : String(options.acks)))")
}

/// The topic's partition count from Metadata; exits 1 when the topic does not exist. A topic just
/// created may not have reached the broker asked yet (it applies the metadata log a moment after
/// the controller commits it), so "unknown topic" is retried for a few seconds, as Kafka's
/// clients retry it.
func topicPartitionCount(_ topic: String, bootstrap: [BrokerAddress]) -> Int32 {
    let admin = KafkaAdminClient(bootstrap: bootstrap)
    defer { admin.close() }
    let deadlineMilliseconds = Clocks.monotonicMilliseconds() + 10_000
    while true {
        do {
            let metadata = try admin.metadata(topics: [topic])
            guard let entry = metadata.topics.first(where: { $0.name == topic }) else { failOperation("the broker did not answer for topic '\(topic)'") }
            if entry.error == .none, !entry.partitions.isEmpty { return Int32(entry.partitions.count) }
            let code = entry.error == .none ? KafkaErrorCode.unknownTopicOrPartition : entry.error
            guard code.isRetriable, Clocks.monotonicMilliseconds() < deadlineMilliseconds else {
                failOperation("topic '\(topic)': \(kafkaErrorName(code))")
            }
            sleepMilliseconds(200)
        } catch {
            failOperation(error.description)
        }
    }
}
