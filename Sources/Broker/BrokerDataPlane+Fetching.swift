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
    /// The topics asked for, by the id the answer names them with.
    let topicNames: [KafkaUUID: String]
}

extension BrokerDataPlane {
    typealias FetchPartitionAnswer = KafkaWire.FetchResponse.PartitionData

    // MARK: Follower side

    /// Sends one fetch to each leader that has none in flight, covering every partition followed
    /// from it that is ready to fetch: Kafka's replica fetch, topics by id, this broker's id and
    /// epoch in its replica state, and Tern's own fields (how far this replica's log is durable,
    /// the loss it has acknowledged) in tagged fields.
    func sendReplicaFetches(now: Instant, effects: inout [NodeEffect]) {
        var byLeader: [NodeID: [(HostedPartition, FetchRequestParameters)]] = [:]
        for hosted in hostedInOrder {
            let replica = hosted.replica
            guard case let .follower(leader) = replica.role,
                  replicaFetches[leader] == nil, now >= replicaFetchNotBefore[leader] ?? .zero,
                  let parameters = replica.nextFetch(now: now) else { continue }
            byLeader[leader, default: []].append((hosted, parameters))
        }
        for leader in byLeader.keys.sorted() {
            let wanted = byLeader[leader]!  // in hostedInOrder: grouped by topic
            var topics: [KafkaWire.FetchRequest.FetchTopic] = []
            var topicNames: [KafkaUUID: String] = [:]
            for (hosted, parameters) in wanted {
                let topicPartition = hosted.topicPartition
                let partition = KafkaWire.FetchRequest.FetchPartition(
                    partition: topicPartition.partition, currentLeaderEpoch: parameters.currentLeaderEpoch.rawValue,
                    fetchOffset: parameters.fetchOffset.rawValue, lastFetchedEpoch: parameters.lastFetchedEpoch.rawValue,
                    logStartOffset: hosted.log.logStartOffset.rawValue,
                    partitionMaxBytes: Int32(clamping: configuration.replication.maximumFetchBytes),
                    ternReplicaDurableOffset: parameters.durableOffset.rawValue,
                    ternReplicaAcknowledgedLoss: parameters.acknowledgedLoss.rawValue)
                if topics.last?.topic == topicPartition.topic {
                    topics[topics.count - 1].partitions.append(partition)
                } else {
                    let topicID = hosted.topicID.kafkaUUID
                    topicNames[topicID] = topicPartition.topic
                    topics.append(KafkaWire.FetchRequest.FetchTopic(topic: topicPartition.topic, topicId: topicID, partitions: [partition]))
                }
            }
            // With data not yet synced here, the leader must not park the fetch: the next one
            // reports the sync, and the high watermark waits for it.
            let isLongPoll = wanted.allSatisfy { $0.1.durableOffset >= $0.1.fetchOffset }
            let request = KafkaWire.FetchRequest(
                replicaState: KafkaWire.FetchRequest.ReplicaState(replicaId: localID.rawValue,
                                                                  replicaEpoch: (brokerEpoch ?? BrokerEpoch(-1)).rawValue),
                maxWaitMs: isLongPoll ? Int32(clamping: configuration.replicaFetchWaitMax.milliseconds) : 0,
                minBytes: 1, maxBytes: configuration.replicaFetchMaxBytes, isolationLevel: IsolationLevel.readUncommitted.rawValue,
                topics: topics)
            let correlationID = takeCorrelationID()
            replicaFetches[leader] = InFlightReplicaFetch(
                correlationID: correlationID, sentAt: now,
                requests: Dictionary(uniqueKeysWithValues: wanted.map { ($0.0.topicPartition, $0.1) }),
                askedBy: Dictionary(uniqueKeysWithValues: wanted.map { ($0.0.topicPartition, $0.0.hostingNumber) }),
                isLongPoll: isLongPoll, topicNames: topicNames)
            let header = KafkaRequestHeader(apiKey: KafkaAPIKey.fetch.rawValue, apiVersion: SupportedAPIVersions.replicaFetchVersion,
                                            correlationID: Int32(truncatingIfNeeded: correlationID), clientID: "tern-broker-\(localID)")
            effects.append(.send(to: leader, bytes: PeerMessage.kafkaRequest(
                correlationID: correlationID, frame: encodeKafkaRequest(.fetch(request), header: header)).encoded()))
        }
    }

    /// A leader's answer to this broker's replica fetch (the only request brokers send each other).
    public func handleReplicaFetchResponse(_ frame: [UInt8], correlationID: UInt64, from sender: NodeID, now: Instant) {
        guard let inFlight = replicaFetches[sender], inFlight.correlationID == correlationID else { return }
        replicaFetches[sender] = nil
        guard case let .fetch(fetch)? = try? decodeKafkaResponse(frame.dropFirst(KafkaFraming.sizePrefixBytes), apiKey: .fetch,
                                                                 apiVersion: SupportedAPIVersions.replicaFetchVersion).response else {
            replicaFetchNotBefore[sender] = now + configuration.replicaFetchBackoff
            return
        }
        var fetchedSomething = false
        var sawError = false
        for topic in fetch.responses {
            guard let name = inFlight.topicNames[topic.topicId] else { continue }
            for answer in topic.partitions {
                let topicPartition = TopicPartition(topic: name, partition: answer.partitionIndex)
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
        if !fetchAgainNow || fetch.errorCode != KafkaErrorCode.none.rawValue {
            replicaFetchNotBefore[sender] = now + configuration.replicaFetchBackoff
        }
    }

    static func followerResult(_ partition: FetchPartitionAnswer) -> FollowerFetchResult {
        let highWatermark = Offset(partition.highWatermark)
        if let diverging = partition.divergingEpoch {
            return .divergingEpoch(epoch: LeaderEpoch(diverging.epoch), endOffset: Offset(diverging.endOffset), highWatermark: highWatermark)
        }
        let logStartOffset = Offset(partition.logStartOffset)
        let leaderLogEndOffset = Offset(partition.ternLeaderLogEndOffset)
        switch KafkaErrorCode(rawValue: partition.errorCode) ?? .unknownServerError {
        case .none:
            return .records(bytes: partition.records, highWatermark: highWatermark, logStartOffset: logStartOffset,
                            leaderLogEndOffset: leaderLogEndOffset)
        case .offsetOutOfRange:
            return .offsetOutOfRange(logStartOffset: logStartOffset, leaderLogEndOffset: leaderLogEndOffset)
        case let code:
            return .error(code)
        }
    }

    // MARK: Fetch requests

    /// A follower's id and broker epoch: Kafka's replica state from v15, the replica id before
    /// (a consumer sends -1, or -2 for a debugging tool).
    private static func fetchingReplica(_ request: KafkaWire.FetchRequest, version: Int16) -> (NodeID, BrokerEpoch)? {
        if version >= 15 {
            guard let state = request.replicaState, state.replicaId >= 0 else { return nil }
            return (NodeID(state.replicaId), BrokerEpoch(state.replicaEpoch))
        }
        return request.replicaId >= 0 ? (NodeID(request.replicaId), BrokerEpoch(-1)) : nil
    }

    func handleFetch(_ request: KafkaWire.FetchRequest, version: Int16, now: Instant) -> KafkaWire.FetchResponse {
        let follower = Self.fetchingReplica(request, version: version)
        let namesTopicsByID = version >= 13
        var remainingBytes = max(0, Int(request.maxBytes))
        var responses: [KafkaWire.FetchResponse.FetchableTopicResponse] = []
        for topic in request.topics {
            let name = namesTopicsByID ? image.topic(id: TopicID(kafka: topic.topicId))?.name : topic.topic
            var answers: [FetchPartitionAnswer] = []
            for partition in topic.partitions {
                guard let name else {
                    answers.append(FetchPartitionAnswer(partitionIndex: partition.partition, errorCode: KafkaErrorCode.unknownTopicID.rawValue))
                    continue
                }
                let topicPartition = TopicPartition(topic: name, partition: partition.partition)
                if let (replicaID, brokerEpoch) = follower {
                    answers.append(answerFollowerFetch(partition, of: topicPartition, topicID: namesTopicsByID ? topic.topicId : .zero,
                                                       from: replicaID, brokerEpoch: brokerEpoch, now: now))
                } else {
                    let answer = answerConsumerFetch(partition, of: topicPartition, remainingBytes: remainingBytes)
                    remainingBytes = max(0, remainingBytes - answer.records.count)
                    answers.append(answer)
                }
            }
            responses.append(KafkaWire.FetchResponse.FetchableTopicResponse(topic: name ?? "", topicId: topic.topicId, partitions: answers))
        }
        return KafkaWire.FetchResponse(errorCode: KafkaErrorCode.none.rawValue, sessionId: 0, responses: responses)
    }

    /// A partition's refusal, with the leader as the image knows it for NOT_LEADER_OR_FOLLOWER and
    /// FENCED_LEADER_EPOCH (Kafka's `current_leader`, so a client need not ask Metadata first).
    func refusedFetch(_ index: Int32, of topicPartition: TopicPartition, code: KafkaErrorCode) -> FetchPartitionAnswer {
        var answer = FetchPartitionAnswer(partitionIndex: index, errorCode: code.rawValue)
        if code == .notLeaderOrFollower || code == .fencedLeaderEpoch, let registration = image.partition(topicPartition) {
            answer.currentLeader = KafkaWire.FetchResponse.LeaderIdAndEpoch(leaderId: registration.leader?.rawValue ?? -1,
                                                                             leaderEpoch: registration.leaderEpoch.rawValue)
        }
        return answer
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

    private func answerFollowerFetch(_ partition: KafkaWire.FetchRequest.FetchPartition, of topicPartition: TopicPartition,
                                     topicID: KafkaUUID, from follower: NodeID, brokerEpoch: BrokerEpoch,
                                     now: Instant) -> FetchPartitionAnswer {
        let index = partition.partition
        guard image.partition(topicPartition) != nil else { return refusedFetch(index, of: topicPartition, code: .unknownTopicOrPartition) }
        guard let hosted = partitions[topicPartition] else { return refusedFetch(index, of: topicPartition, code: .notLeaderOrFollower) }
        // Kafka's Fetch v13 check: a follower of another topic of this name (one of the two has
        // not yet applied its deletion and re-creation) must neither get these records nor have
        // its position counted toward this topic's high watermark. Both wait for the metadata.
        // The id was already resolved through the image, which the hosted replicas follow; this
        // holds the line should they ever part.
        guard topicID == .zero || topicID == hosted.topicID.kafkaUUID else {
            return FetchPartitionAnswer(partitionIndex: index, errorCode: KafkaErrorCode.unknownTopicID.rawValue)
        }
        let outcome = hosted.replica.handleFollowerFetch(
            follower: follower, fetchOffset: Offset(partition.fetchOffset), lastFetchedEpoch: LeaderEpoch(partition.lastFetchedEpoch),
            followerDurableOffset: Offset(partition.ternReplicaDurableOffset), followerBrokerEpoch: brokerEpoch,
            followerAcknowledgedLoss: PartitionEpoch(partition.ternReplicaAcknowledgedLoss),
            followerLogStartOffset: Offset(partition.logStartOffset),
            currentLeaderEpoch: LeaderEpoch(partition.currentLeaderEpoch), now: now)
        handle(outcome.update, of: hosted, now: now)
        switch outcome.result {
        case let .records(bytes, highWatermark, logStartOffset, leaderLogEndOffset):
            return FetchPartitionAnswer(partitionIndex: index, highWatermark: highWatermark.rawValue,
                                        lastStableOffset: highWatermark.rawValue, logStartOffset: logStartOffset.rawValue,
                                        records: bytes, ternLeaderLogEndOffset: leaderLogEndOffset.rawValue)
        case let .divergingEpoch(epoch, endOffset, highWatermark):
            return FetchPartitionAnswer(partitionIndex: index, highWatermark: highWatermark.rawValue,
                                        logStartOffset: hosted.log.logStartOffset.rawValue,
                                        divergingEpoch: KafkaWire.FetchResponse.EpochEndOffset(epoch: epoch.rawValue, endOffset: endOffset.rawValue),
                                        ternLeaderLogEndOffset: hosted.log.logEndOffset.rawValue)
        case let .offsetOutOfRange(logStartOffset, leaderLogEndOffset):
            return FetchPartitionAnswer(partitionIndex: index, errorCode: KafkaErrorCode.offsetOutOfRange.rawValue,
                                        highWatermark: hosted.log.highWatermark.rawValue, logStartOffset: logStartOffset.rawValue,
                                        ternLeaderLogEndOffset: leaderLogEndOffset.rawValue)
        case let .error(code):
            return refusedFetch(index, of: topicPartition, code: code)
        }
    }

    /// Consumers read from the leader, up to the high watermark.
    private func answerConsumerFetch(_ partition: KafkaWire.FetchRequest.FetchPartition, of topicPartition: TopicPartition,
                                     remainingBytes: Int) -> FetchPartitionAnswer {
        let index = partition.partition
        let hosted: HostedPartition
        switch ledPartition(topicPartition, currentLeaderEpoch: LeaderEpoch(partition.currentLeaderEpoch)) {
        case let .led(found): hosted = found
        case let .refused(code): return refusedFetch(index, of: topicPartition, code: code)
        }
        let log = hosted.log
        let highWatermark = log.highWatermark
        var answer = FetchPartitionAnswer(partitionIndex: index, highWatermark: highWatermark.rawValue,
                                          lastStableOffset: highWatermark.rawValue, logStartOffset: log.logStartOffset.rawValue)
        let fetchOffset = Offset(partition.fetchOffset)
        guard fetchOffset >= log.logStartOffset, fetchOffset <= log.logEndOffset else {
            answer.errorCode = KafkaErrorCode.offsetOutOfRange.rawValue
            return answer
        }
        // Between the high watermark and the log end there is nothing a consumer may see yet.
        guard fetchOffset < highWatermark else { return answer }
        // The first batch is returned whole whatever the limits, so a consumer always progresses.
        let maxBytes = max(1, min(Int(max(0, partition.partitionMaxBytes)), remainingBytes))
        do {
            answer.records = try log.read(from: fetchOffset, maxBytes: maxBytes, maximumOffset: highWatermark).bytes
        } catch .offsetOutOfRange {
            answer.errorCode = KafkaErrorCode.offsetOutOfRange.rawValue
        } catch {
            answer.errorCode = KafkaErrorCode.kafkaStorageError.rawValue
        }
        return answer
    }
}

/// A partition this broker leads, or the error Kafka answers instead.
enum LeaderLookup {
    case led(HostedPartition)
    case refused(KafkaErrorCode)
}
