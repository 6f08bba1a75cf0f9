import Controller
import KafkaProtocol
import NodeKit
import TernCore

/// A fetch that found less than it asked for, waiting (Kafka's delayed fetch) until enough data
/// arrives, something changes that it must hear about, or its wait runs out.
struct ParkedFetch {
    let requester: DataPlaneRequester
    let request: KafkaWire.FetchRequest
    /// The partitions it reads, to know which appends concern it.
    let reads: [TopicPartition]
    let deadline: Instant
}

extension BrokerDataPlane {
    /// Parks `request` when its answer is not yet worth sending: no error, no divergence, fewer
    /// record bytes than `minBytes`, and the client allows a wait. False when it must be answered now.
    func parkFetchIfWaiting(_ request: KafkaWire.FetchRequest, response: KafkaWire.FetchResponse, from requester: DataPlaneRequester,
                            now: Instant) -> Bool {
        guard request.maxWaitMs > 0, parkedFetches.count < configuration.maximumParkedFetchRequests,
              !Self.isWorthAnswering(response, minBytes: request.minBytes) else { return false }
        let parkedID = nextParkedFetchID
        nextParkedFetchID += 1
        // The answer names each topic, whether the request did or gave its id.
        let reads = response.responses.flatMap { topic in
            topic.partitions.map { TopicPartition(topic: topic.topic, partition: $0.partitionIndex) }
        }
        parkedFetches[parkedID] = ParkedFetch(requester: requester, request: request, reads: reads,
                                              deadline: now + .milliseconds(Int64(request.maxWaitMs)))
        return true
    }

    /// An answer goes out at once when it carries records enough, or anything the client must act
    /// on (an error, a divergence, a leader change).
    static func isWorthAnswering(_ response: KafkaWire.FetchResponse, minBytes: Int32) -> Bool {
        if response.errorCode != KafkaErrorCode.none.rawValue { return true }
        var recordBytes = 0
        for topic in response.responses {
            for partition in topic.partitions {
                if partition.errorCode != KafkaErrorCode.none.rawValue || partition.divergingEpoch != nil { return true }
                recordBytes += partition.records.count
            }
        }
        return recordBytes >= max(1, Int(minBytes))
    }

    /// Which parked fetches to read again.
    enum ParkedFetchRecheck {
        /// Only those whose wait has run out (answered with whatever there is).
        case expiredOnly
        /// Every one (roles may have changed).
        case every
        /// Those naming one of these partitions, plus the expired ones.
        case reading(Set<TopicPartition>)
    }

    /// Answers the parked fetches that now have enough to say (re-reading their partitions), and
    /// those whose wait has run out, with whatever there is.
    func answerParkedFetches(now: Instant, recheck: ParkedFetchRecheck) {
        guard !parkedFetches.isEmpty else { return }
        for parkedID in parkedFetches.keys.sorted() {
            guard let parked = parkedFetches[parkedID] else { continue }
            let expired = now >= parked.deadline
            if !expired && !Self.mayHaveNewData(parked, recheck: recheck) { continue }
            let response = handleFetch(parked.request, version: parked.requester.version, now: now)
            guard expired || Self.isWorthAnswering(response, minBytes: parked.request.minBytes) else { continue }
            parkedFetches[parkedID] = nil
            answer(.fetch(response), to: parked.requester)
        }
    }

    private static func mayHaveNewData(_ parked: ParkedFetch, recheck: ParkedFetchRecheck) -> Bool {
        switch recheck {
        case .expiredOnly: return false
        case .every: return true
        case let .reading(changed): return parked.reads.contains { changed.contains($0) }
        }
    }
}
