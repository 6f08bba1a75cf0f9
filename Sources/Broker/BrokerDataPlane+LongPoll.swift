import Controller
import KafkaProtocol
import NodeKit
import TernCore

/// A fetch that found less than it asked for, waiting (Kafka's delayed fetch) until enough data
/// arrives, something changes that it must hear about, or its wait runs out.
struct ParkedFetch {
    let client: NodeID
    let correlationID: UInt64
    let request: FetchRequest
    let deadline: Instant
}

extension BrokerDataPlane {
    /// Parks `request` when its answer is not yet worth sending: no error, no divergence, fewer
    /// record bytes than `minBytes`, and the client allows a wait. False when it must be answered now.
    func parkFetchIfWaiting(_ request: FetchRequest, response: FetchResponse, correlationID: UInt64, from client: NodeID,
                            now: Instant) -> Bool {
        guard request.maxWaitMilliseconds > 0, parkedFetches.count < configuration.maximumParkedFetchRequests,
              !Self.isWorthAnswering(response, minBytes: request.minBytes) else { return false }
        let parkedID = nextParkedFetchID
        nextParkedFetchID += 1
        parkedFetches[parkedID] = ParkedFetch(client: client, correlationID: correlationID, request: request,
                                              deadline: now + .milliseconds(Int64(request.maxWaitMilliseconds)))
        return true
    }

    /// An answer goes out at once when it carries records enough, or anything the client must act
    /// on (an error, a divergence, a leader change).
    static func isWorthAnswering(_ response: FetchResponse, minBytes: Int32) -> Bool {
        if response.errorCode != .none { return true }
        var recordBytes = 0
        for topic in response.topics {
            for partition in topic.partitions {
                if partition.errorCode != .none || partition.divergingEpoch != nil { return true }
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
    func answerParkedFetches(now: Instant, effects: inout [NodeEffect], recheck: ParkedFetchRecheck) {
        guard !parkedFetches.isEmpty else { return }
        for parkedID in parkedFetches.keys.sorted() {
            guard let parked = parkedFetches[parkedID] else { continue }
            let expired = now >= parked.deadline
            if !expired && !Self.mayHaveNewData(parked.request, recheck: recheck) { continue }
            let response = handleFetch(parked.request, now: now)
            guard expired || Self.isWorthAnswering(response, minBytes: parked.request.minBytes) else { continue }
            parkedFetches[parkedID] = nil
            effects.append(.send(to: parked.client, bytes: PeerMessage.dataResponse(
                correlationID: parked.correlationID, response: .fetch(response)).encoded()))
        }
    }

    private static func mayHaveNewData(_ request: FetchRequest, recheck: ParkedFetchRecheck) -> Bool {
        switch recheck {
        case .expiredOnly: return false
        case .every: return true
        case let .reading(changed):
            return request.topics.contains { topic in
                topic.partitions.contains { changed.contains(TopicPartition(topic: topic.name, partition: $0.partitionIndex)) }
            }
        }
    }
}
