// `tern consume TOPIC`: the console consumer. Prints each record's value (and key, offset on
// request) as a line; runs until interrupted, or until --max-records or --exit-at-end is met.
#if canImport(Glibc)
import Posix
import Glibc
#endif
import Client
import KafkaClient
import KafkaProtocol
import TernCore

func runConsume(_ arguments: [String]) {
    let options = parseToolOptions(consumeUsage) { () throws(UsageError) in try ConsumeOptions(arguments) }
    let partitionCount = topicPartitionCount(options.topic, bootstrap: options.bootstrap)
    let partitions: [Int32]
    if let partition = options.partition {
        guard partition < partitionCount else {
            failOperation("topic '\(options.topic)' has \(partitionCount) partitions; there is no partition \(partition)")
        }
        partitions = [partition]
    } else {
        partitions = Array(0..<partitionCount)
    }
    // --exit-at-end stops at the end each partition had when consumption began.
    var endOffsets: [Int32: Offset] = [:]
    if options.exitAtEnd {
        let admin = KafkaAdminClient(bootstrap: options.bootstrap)
        do { endOffsets = try admin.offsets(topic: options.topic, partitions: partitions, timestampMilliseconds: ListOffsetsTimestamp.latest) } catch {
            failOperation(error.description)
        }
        admin.close()
    }

    let network = KafkaNetworkClient(bootstrap: options.bootstrap, configuration: .init(clientID: "tern-consumer"))
    let start: ConsumerStartPosition = options.fromBeginning ? .earliest : .latest
    let consumer = Consumer(assignments: partitions.map { (TopicPartition(topic: options.topic, partition: $0), start) },
                            bootstrapNodes: network.bootstrapNodes,
                            random: DeterministicRandom(seed: UInt64(bitPattern: Clocks.monotonicNanoseconds())))
    var driver = SansIOClientDriver(client: consumer, network: network)
    var printed = 0
    var output = StandardOutput()
    while true {
        driver.step(maximumWait: .milliseconds(100))
        for event in driver.client.takeEvents() { reportConsumerEvent(event) }
        for record in driver.client.takeRecords() {
            var line = ""
            if options.printOffset { line += "\(record.topicPartition.partition)@\(record.offset)\t" }
            if options.printKey { line += (record.key.map { String(decoding: $0, as: UTF8.self) } ?? "null") + "\t" }
            line += record.value.map { String(decoding: $0, as: UTF8.self) } ?? "null"
            output.writeLine(line)
            printed += 1
            if let maximum = options.maximumRecords, printed >= maximum {
                output.flush()
                return
            }
        }
        output.flush()
        if options.exitAtEnd, partitions.allSatisfy({ partition in
            let position = driver.client.position(of: TopicPartition(topic: options.topic, partition: partition))
            return position != nil && position! >= (endOffsets[partition] ?? .zero)
        }) {
            return
        }
    }
}

/// Resets and truncations are reported and consumption goes on; a partition the consumer had to
/// stop (data it cannot read, such as a compressed batch: the tern client does not decompress
/// yet) ends the command, rather than waiting forever for records it will never deliver.
func reportConsumerEvent(_ event: ConsumerEvent) {
    if case let .partitionStopped(topicPartition, reason) = event {
        failOperation("cannot read \(topicPartition): \(reason)")
    }
    printToStandardError("tern: \(event)")
}

/// Standard output through write(2) in large pieces: print() per record would be a syscall each
/// when the output is a pipe.
struct StandardOutput {
    private var buffer: [UInt8] = []

    mutating func writeLine(_ line: String) {
        buffer.append(contentsOf: line.utf8)
        buffer.append(UInt8(ascii: "\n"))
        if buffer.count >= 64 * 1024 { flush() }
    }

    mutating func flush() {
        var written = 0
        while written < buffer.count {
            let count = buffer.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + written, $0.count - written) }
            if count <= 0 {
                if count < 0 && errno == EINTR { continue }
                exit(count < 0 && errno == EPIPE ? 0 : 1)  // a closed pipe (| head) ends the consumer quietly
            }
            written += count
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
