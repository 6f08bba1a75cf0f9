import Controller
import KafkaProtocol
import LogStorage
import NodeKit
import TernCore

/// A follower fetch sent to one leader, with what was asked per partition (to check the answer).
struct InFlightReplicaFetch {
    let correlationID: UInt64
    let sentAt: Instant
    let requests: [TopicPartition: FetchRequestParameters]
    /// The hosting (`HostedPartition.hostingNumber`) each partition's request was made for. A
    /// partition deleted and created again under its name (or removed and re-added) while the
    /// fetch was out is another hosting, often with the same leader at the same epochs and
    /// offsets: the answer carries the old topic's records and must not reach it.
    let askedBy: [TopicPartition: UInt64]
    /// The leader may park it: an empty answer means it already waited, so fetch again at once.
    let isLongPoll: Bool
}

extension BrokerDataPlane {
    // MARK: Follower side

    /// Sends one fetch to each leader that has none in flight, covering every partition followed
    /// from it that is ready to fetch.
    func sendReplicaFetches(now: Instant, effects: inout [NodeEffect]) {
        var byLeader: [NodeID: [(TopicPartition, FetchRequestParameters)]] = [:]
        for topicPartition in hostedOrder {
            guard let replica = partitions[topicPartition]?.replica, case let .follower(leader) = replica.role,
                  replicaFetches[leader] == nil, now >= replicaFetchNotBefore[leader] ?? .zero,
                  let parameters = replica.nextFetch(now: now) else { continue }
            byLeader[leader, default: []].append((topicPartition, parameters))
        }
        for leader in byLeader.keys.sorted() {
            let wanted = byLeader[leader]!  // in hostedOrder: grouped by topic
            var topics: [FetchRequest.Topic] = []
            for (topicPartition, parameters) in wanted {
                let partition = FetchRequest.Partition(
                    partitionIndex: topicPartition.partition, currentLeaderEpoch: parameters.currentLeaderEpoch,
                    fetchOffset: parameters.fetchOffset, lastFetchedEpoch: parameters.lastFetchedEpoch,
                    logStartOffset: partitions[topicPartition]!.log.logStartOffset,
                    partitionMaxBytes: Int32(clamping: configuration.replication.maximumFetchBytes),
                    replicaDurableOffset: parameters.durableOffset, replicaAcknowledgedLoss: parameters.acknowledgedLoss)
                if topics.last?.name == topicPartition.topic {
                    topics[topics.count - 1].partitions.append(partition)
                } else {
                    topics.append(FetchRequest.Topic(name: topicPartition.topic, topicID: partitions[topicPartition]!.topicID.kafkaUUID,
                                                     partitions: [partition]))
                }
            }
            // With data not yet synced here, the leader must not park the fetch: the next one
            // reports the sync, and the high watermark waits for it.
            let isLongPoll = wanted.allSatisfy { $0.1.durableOffset >= $0.1.fetchOffset }
            let request = FetchRequest(replicaID: localID, replicaEpoch: brokerEpoch ?? BrokerEpoch(-1),
                                       maxWaitMilliseconds: isLongPoll ? Int32(clamping: configuration.replicaFetchWaitMax.milliseconds) : 0,
                                       minBytes: 1,
                                       maxBytes: configuration.replicaFetchMaxBytes, isolationLevel: .readUncommitted,
                                       topics: topics)
            let correlationID = takeCorrelationID()
            replicaFetches[leader] = InFlightReplicaFetch(
                correlationID: correlationID, sentAt: now, requests: Dictionary(uniqueKeysWithValues: wanted),
                askedBy: Dictionary(uniqueKeysWithValues: wanted.map { ($0.0, partitions[$0.0]!.hostingNumber) }),
                isLongPoll: isLongPoll)
            effects.append(.send(to: leader, bytes: PeerMessage.dataRequest(correlationID: correlationID,
                                                                            request: .fetch(request)).encoded()))
        }
    }

    /// A data-plane answer from another broker (only follower fetches are sent today).
    public func handleResponse(_ response: DataResponse, correlationID: UInt64, from sender: NodeID, now: Instant,
                               effects: inout [NodeEffect]) {
        guard case let .fetch(fetch) = response, let inFlight = replicaFetches[sender],
              inFlight.correlationID == correlationID else { return }
        replicaFetches[sender] = nil
        var fetchedSomething = false
        var sawError = false
        for topic in fetch.topics {
            for answer in topic.partitions {
                let topicPartition = TopicPartition(topic: topic.name, partition: answer.partitionIndex)
                guard let parameters = inFlight.requests[topicPartition], let hosted = partitions[topicPartition],
                      inFlight.askedBy[topicPartition] == hosted.hostingNumber,
                      hosted.replica.role == .follower(leader: sender) else { continue }
                let result = Self.followerResult(answer)
                switch result {
                case let .records(bytes, _, _, _): fetchedSomething = fetchedSomething || !bytes.isEmpty
                case .divergingEpoch, .offsetOutOfRange: fetchedSomething = true
                case .error: sawError = true
                }
                handle(hosted.replica.handleFetchResponse(FollowerFetchResponse(request: parameters, result: result), wallClock: wallClock),
                       of: hosted, now: now)
                var appended: [UInt8] = []
                if case let .records(bytes, _, _, _) = result { appended = bytes }
                syncProducerState(hosted, appended: appended)
            }
        }
        // An error, or nothing new from a fetch the leader could not park: wait a little (or for
        // the local sync, which clears the wait) before asking again. An empty long poll already
        // waited at the leader.
        // A local sync that completed while the fetch was in flight cleared no pause (there was
        // none yet), so its progress must be reported now: pausing would hold the leader's high
        // watermark, and every acks=all produce waiting on it, for the whole backoff.
        let unreportedSync = inFlight.requests.contains { topicPartition, parameters in
            guard let log = partitions[topicPartition]?.log else { return false }
            return min(log.durableOffset, log.logEndOffset) > parameters.durableOffset
        }
        let fetchAgainNow = fetchedSomething || unreportedSync || (inFlight.isLongPoll && !sawError)
        if !fetchAgainNow || fetch.errorCode != .none {
            replicaFetchNotBefore[sender] = now + configuration.replicaFetchBackoff
        }
    }

    static func followerResult(_ partition: FetchResponse.Partition) -> FollowerFetchResult {
        if let diverging = partition.divergingEpoch {
            return .divergingEpoch(epoch: diverging.epoch, endOffset: diverging.endOffset, highWatermark: partition.highWatermark)
        }
        switch partition.errorCode {
        case .none:
            return .records(bytes: partition.records, highWatermark: partition.highWatermark,
                            logStartOffset: partition.logStartOffset, leaderLogEndOffset: partition.leaderLogEndOffset)
        case .offsetOutOfRange:
            return .offsetOutOfRange(logStartOffset: partition.logStartOffset, leaderLogEndOffset: partition.leaderLogEndOffset)
        default:
            return .error(partition.errorCode)
        }
    }

    // MARK: Fetch requests

    func handleFetch(_ request: FetchRequest, now: Instant) -> FetchResponse {
        var remainingBytes = max(0, Int(request.maxBytes))
        var topics: [FetchResponse.Topic] = []
        for topic in request.topics {
            var answers: [FetchResponse.Partition] = []
            for partition in topic.partitions {
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                if let replicaID = request.replicaID {
                    answers.append(answerFollowerFetch(partition, of: topicPartition, topicID: topic.topicID, from: replicaID,
                                                       brokerEpoch: request.replicaEpoch, now: now))
                } else {
                    let answer = answerConsumerFetch(partition, of: topicPartition, remainingBytes: remainingBytes)
                    remainingBytes = max(0, remainingBytes - answer.records.count)
                    answers.append(answer)
                }
            }
            topics.append(FetchResponse.Topic(name: topic.name, partitions: answers))
        }
        return FetchResponse(topics: topics)
    }

    /// The leader as the image knows it, sent with NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH.
    func leaderHint(_ topicPartition: TopicPartition) -> FetchResponse.LeaderHint? {
        image.partition(topicPartition).map { FetchResponse.LeaderHint(leaderID: $0.leader, leaderEpoch: $0.leaderEpoch) }
    }

    /// The hosted partition this broker leads, or the error Kafka answers instead.
    func ledPartition(_ topicPartition: TopicPartition, currentLeaderEpoch: LeaderEpoch) -> LeaderLookup {
        guard image.partition(topicPartition) != nil else { return .refused(.unknownTopicOrPartition) }
        guard let hosted = partitions[topicPartition], hosted.replica.isLeader else { return .refused(.notLeaderOrFollower) }
        // Corruption found in the leader's own log: it answers nothing until the controller has
        // recorded the loss and moved leadership to an intact replica (see `dataLossReports`).
        guard hosted.log.corruption == nil else { return .refused(.kafkaStorageError) }
        if currentLeaderEpoch != .none {
            if currentLeaderEpoch < hosted.replica.leaderEpoch { return .refused(.fencedLeaderEpoch) }
            if currentLeaderEpoch > hosted.replica.leaderEpoch { return .refused(.unknownLeaderEpoch) }
        }
        return .led(hosted)
    }

    private func answerFollowerFetch(_ partition: FetchRequest.Partition, of topicPartition: TopicPartition, topicID: KafkaUUID,
                                     from follower: NodeID, brokerEpoch: BrokerEpoch, now: Instant) -> FetchResponse.Partition {
        let index = partition.partitionIndex
        guard image.partition(topicPartition) != nil else { return FetchResponse.Partition(partitionIndex: index, errorCode: .unknownTopicOrPartition) }
        guard let hosted = partitions[topicPartition] else {
            return FetchResponse.Partition(partitionIndex: index, errorCode: .notLeaderOrFollower, currentLeader: leaderHint(topicPartition))
        }
        // Kafka's Fetch v13 check: a follower of another topic of this name (one of the two has
        // not yet applied its deletion and re-creation) must neither get these records nor have
        // its position counted toward this topic's high watermark. Both wait for the metadata.
        guard topicID == .zero || topicID == hosted.topicID.kafkaUUID else {
            return FetchResponse.Partition(partitionIndex: index, errorCode: .unknownTopicID)
        }
        let outcome = hosted.replica.handleFollowerFetch(
            follower: follower, fetchOffset: partition.fetchOffset, lastFetchedEpoch: partition.lastFetchedEpoch,
            followerDurableOffset: partition.replicaDurableOffset, followerBrokerEpoch: brokerEpoch,
            followerAcknowledgedLoss: partition.replicaAcknowledgedLoss, currentLeaderEpoch: partition.currentLeaderEpoch, now: now)
        handle(outcome.update, of: hosted, now: now)
        switch outcome.result {
        case let .records(bytes, highWatermark, logStartOffset, leaderLogEndOffset):
            return FetchResponse.Partition(partitionIndex: index, highWatermark: highWatermark, lastStableOffset: highWatermark,
                                           logStartOffset: logStartOffset, leaderLogEndOffset: leaderLogEndOffset, records: bytes)
        case let .divergingEpoch(epoch, endOffset, highWatermark):
            return FetchResponse.Partition(partitionIndex: index, highWatermark: highWatermark,
                                           logStartOffset: hosted.log.logStartOffset, leaderLogEndOffset: hosted.log.logEndOffset,
                                           divergingEpoch: FetchResponse.DivergingEpoch(epoch: epoch, endOffset: endOffset))
        case let .offsetOutOfRange(logStartOffset, leaderLogEndOffset):
            return FetchResponse.Partition(partitionIndex: index, errorCode: .offsetOutOfRange, highWatermark: hosted.log.highWatermark,
                                           logStartOffset: logStartOffset, leaderLogEndOffset: leaderLogEndOffset)
        case let .error(code):
            let hint = code == .notLeaderOrFollower || code == .fencedLeaderEpoch ? leaderHint(topicPartition) : nil
            return FetchResponse.Partition(partitionIndex: index, errorCode: code, currentLeader: hint)
        }
    }

    /// Consumers read from the leader, up to the high watermark. (TODO: park the fetch until
    /// `minBytes` arrive or `maxWait` passes, answered when the high watermark moves.)
    private func answerConsumerFetch(_ partition: FetchRequest.Partition, of topicPartition: TopicPartition,
                                     remainingBytes: Int) -> FetchResponse.Partition {
        let index = partition.partitionIndex
        let hosted: HostedPartition
        switch ledPartition(topicPartition, currentLeaderEpoch: partition.currentLeaderEpoch) {
        case let .led(found): hosted = found
        case let .refused(code):
            let hint = code == .notLeaderOrFollower || code == .fencedLeaderEpoch ? leaderHint(topicPartition) : nil
            return FetchResponse.Partition(partitionIndex: index, errorCode: code, currentLeader: hint)
        }
        let log = hosted.log
        let highWatermark = log.highWatermark
        var answer = FetchResponse.Partition(partitionIndex: index, highWatermark: highWatermark, lastStableOffset: highWatermark,
                                             logStartOffset: log.logStartOffset)
        guard partition.fetchOffset >= log.logStartOffset, partition.fetchOffset <= log.logEndOffset else {
            answer.errorCode = .offsetOutOfRange
            return answer
        }
        // Between the high watermark and the log end there is nothing a consumer may see yet.
        guard partition.fetchOffset < highWatermark else { return answer }
        // The first batch is returned whole whatever the limits, so a consumer always progresses.
        let maxBytes = max(1, min(Int(max(0, partition.partitionMaxBytes)), remainingBytes))
        do {
            answer.records = try log.read(from: partition.fetchOffset, maxBytes: maxBytes, maximumOffset: highWatermark).bytes
        } catch .offsetOutOfRange {
            answer.errorCode = .offsetOutOfRange
        } catch {
            answer.errorCode = .kafkaStorageError
        }
        return answer
    }
}

/// A partition this broker leads, or the error Kafka answers instead.
enum LeaderLookup {
    case led(HostedPartition)
    case refused(KafkaErrorCode)
}

extension TopicID {
    /// The id as Kafka's wire protocol carries it.
    var kafkaUUID: KafkaUUID { KafkaUUID(mostSignificantBits: high, leastSignificantBits: low) }
}
