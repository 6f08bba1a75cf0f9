import KafkaProtocol
import Posix
import TernCore

// `tern bench codec`: what a Produce request and a Fetch answer cost to encode and decode in
// Kafka's wire format, the one message format a broker handles: a client's Produce as the broker
// reads it, a consumer's Fetch answer (v12) and a follower's replica fetch answer (v15, with
// Tern's tagged fields).

let codecBenchmarkUsage = """
    usage: tern bench codec [--records N] [--value-bytes B] [--rounds R] [--only TEXT]
      One batch of N records (default 1000) of B-byte values (default 100) in a Produce request
      and in a Fetch answer. Each line: microseconds per call, median of R rounds (default 9) of
      enough iterations to take about 50 ms each. Encodes and decodes are timed apart: a decode
      reads a frame that was encoded once, as a broker reads what arrived. --only runs the lines
      whose name contains TEXT (for a profiler).
    """

func runCodecBenchmark(_ arguments: [String]) {
    var records = 1_000
    var valueBytes = 100
    var rounds = 9
    var only: String?
    var index = 0
    while index < arguments.count {
        let flag = arguments[index]
        if flag == "--only", index + 1 < arguments.count {
            only = arguments[index + 1]
            index += 2
            continue
        }
        guard index + 1 < arguments.count, let value = Int(arguments[index + 1]), value > 0 else {
            fail("\(flag) needs a positive integer\n\(codecBenchmarkUsage)")
        }
        switch flag {
        case "--records": records = value
        case "--value-bytes": valueBytes = value
        case "--rounds": rounds = value
        default: fail("unknown option '\(flag)'\n\(codecBenchmarkUsage)")
        }
        index += 2
    }

    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    var random = DeterministicRandom(seed: 42)
    for _ in 0..<records {
        builder.append(key: nil, value: (0..<valueBytes).map { _ in UInt8(truncatingIfNeeded: random.next()) })
    }
    let batch = builder.build()
    print("codec: one \(batch.count)-byte batch of \(records) records, \(valueBytes)-byte values; µs per call, median of \(rounds) rounds")

    let produceVersion: Int16 = 9
    let produceHeader = KafkaRequestHeader(apiKey: .produce, apiVersion: produceVersion, correlationID: 7, clientID: "bench")
    let wireProduce = wireProduceRequest(batch)
    let produceFrame = encodeKafkaRequest(wireProduce, header: produceHeader)
    report("produce request v\(produceVersion): encode", rounds: rounds, only: only) {
        encodeKafkaRequest(wireProduce, header: produceHeader).count == produceFrame.count
    }
    report("produce request v\(produceVersion): decode", rounds: rounds, only: only) {
        (try? decodeKafkaRequest(produceFrame[4...]))?.header.correlationID == 7
    }

    var answer = KafkaWire.FetchResponse.PartitionData(partitionIndex: 0, highWatermark: Int64(records), lastStableOffset: Int64(records),
                                                       logStartOffset: 0, records: batch)
    let consumerFetch = KafkaResponse.fetch(KafkaWire.FetchResponse(responses: [.init(topic: "bench", partitions: [answer])]))
    answer.ternLeaderLogEndOffset = Int64(records)
    let replicaFetch = KafkaResponse.fetch(KafkaWire.FetchResponse(responses: [
        .init(topicId: KafkaUUID(mostSignificantBits: 1, leastSignificantBits: 2), partitions: [answer]),
    ]))
    for (kind, response, version) in [("consumer", consumerFetch, Int16(12)), ("replica", replicaFetch, SupportedAPIVersions.replicaFetchVersion)] {
        let header = KafkaRequestHeader(apiKey: .fetch, apiVersion: version, correlationID: 9, clientID: "bench")
        let frame = encodeKafkaResponse(response, for: header)
        report("fetch answer v\(version) (\(kind)): encode", rounds: rounds, only: only) {
            encodeKafkaResponse(response, for: header).count == frame.count
        }
        report("fetch answer v\(version) (\(kind)): decode", rounds: rounds, only: only) {
            (try? decodeKafkaResponse(frame[4...], apiKey: .fetch, apiVersion: version)) != nil
        }
    }
}

private func wireProduceRequest(_ batch: [UInt8]) -> KafkaRequest {
    var partition = KafkaWire.ProduceRequest.PartitionProduceData()
    partition.index = 0
    partition.records = batch
    var topic = KafkaWire.ProduceRequest.TopicProduceData()
    topic.name = "bench"
    topic.partitionData = [partition]
    var request = KafkaWire.ProduceRequest()
    request.acks = -1
    request.timeoutMs = 30_000
    request.topicData = [topic]
    return .produce(request)
}

/// Runs `operation` (which must succeed) for about 50 ms per round and prints the median
/// microseconds per call.
/// Skips the line unless its name contains `only` (when given).
private func report(_ name: String, rounds: Int, only: String?, _ operation: () -> Bool) {
    if let only, !name.contains(only) { return }
    var calibration = 1
    while true {
        let start = Clocks.monotonicNanoseconds()
        for _ in 0..<calibration { precondition(operation(), "\(name): the round trip failed") }
        if Clocks.monotonicNanoseconds() - start >= 50_000_000 || calibration >= 1 << 20 { break }
        calibration *= 2
    }
    var perCall: [Double] = []
    for _ in 0..<rounds {
        let start = Clocks.monotonicNanoseconds()
        for _ in 0..<calibration { precondition(operation(), "\(name): the round trip failed") }
        perCall.append(Double(Clocks.monotonicNanoseconds() - start) / Double(calibration) / 1_000)
    }
    perCall.sort()
    let median = perCall[perCall.count / 2]
    let padding = String(repeating: " ", count: max(1, 86 - name.count))
    print("  \(name)\(padding)\(formatFixed(median, places: 2)) µs")
}
