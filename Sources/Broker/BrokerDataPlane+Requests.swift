import Controller
import KafkaProtocol
import LogStorage
import NodeKit
import TernCore

/// A Produce request waiting for some of its partitions (`acks=all`).
struct ParkedProduce {
    let client: NodeID
    let correlationID: UInt64
    let deadline: Instant
    var response: ProduceResponse
    var waits: [ProduceWait]
}

/// One partition of a parked Produce and what it waits for.
struct ProduceWait {
    enum Condition: Equatable {
        /// The replica's answer to this `acks=all` append.
        case ticket(AppendTicket)
        /// A retried batch already in the log: done once the high watermark passes its last offset.
        case highWatermarkAbove(Offset)
    }

    let topicPartition: TopicPartition
    let topicIndex: Int
    let partitionIndex: Int
    let condition: Condition
    let baseOffset: Offset
}

struct ParkedInitProducerID {
    let client: NodeID
    let correlationID: UInt64
    let deadline: Instant
}

extension BrokerDataPlane {
    /// Answers a data-plane request from a client or another broker; some answers come later.
    public func handleRequest(_ request: DataRequest, correlationID: UInt64, from sender: NodeID, now: Instant,
                              effects: inout [NodeEffect]) {
        func reply(_ response: DataResponse) {
            effects.append(.send(to: sender, bytes: PeerMessage.dataResponse(correlationID: correlationID, response: response).encoded()))
        }
        switch request {
        case let .produce(produce):
            if let response = handleProduce(produce, correlationID: correlationID, from: sender, now: now) { reply(.produce(response)) }
        case let .fetch(fetch):
            let response = handleFetch(fetch, now: now)
            if !parkFetchIfWaiting(fetch, response: response, correlationID: correlationID, from: sender, now: now) {
                reply(.fetch(response))
            }
        case let .listOffsets(listOffsets):
            reply(.listOffsets(handleListOffsets(listOffsets)))
        case let .metadata(metadata):
            reply(.metadata(handleMetadata(metadata)))
        case let .offsetForLeaderEpoch(offsetForLeaderEpoch):
            reply(.offsetForLeaderEpoch(handleOffsetForLeaderEpoch(offsetForLeaderEpoch)))
        case let .initProducerID(initProducerID):
            if let response = handleInitProducerID(initProducerID, correlationID: correlationID, from: sender, now: now) {
                reply(.initProducerID(response))
            }
        }
    }

    // MARK: Produce

    /// The answer now, or nil when it is parked until replication (or the timeout) decides.
    /// acks=0 is answered too (Kafka sends nothing): a client that does not wait ignores it.
    func handleProduce(_ request: ProduceRequest, correlationID: UInt64, from client: NodeID, now: Instant) -> ProduceResponse? {
        func everyPartition(_ code: KafkaErrorCode) -> ProduceResponse {
            ProduceResponse(topics: request.topics.map { topic in
                ProduceResponse.Topic(name: topic.name, partitions: topic.partitions.map {
                    ProduceResponse.Partition(partitionIndex: $0.partitionIndex, errorCode: code)
                })
            })
        }
        guard let acks = Acks(rawValue: request.acks) else { return everyPartition(.invalidRequiredAcks) }
        // TODO: transactional produce (needs the transaction coordinator).
        if request.transactionalID != nil { return everyPartition(.transactionAbortable) }
        // Refused before anything is appended, so a retry cannot duplicate it.
        if acks == .all, parkedProduces.count >= configuration.maximumParkedProduceRequests { return everyPartition(.requestTimedOut) }

        var response = ProduceResponse(topics: [])
        var waits: [ProduceWait] = []
        for (topicIndex, topic) in request.topics.enumerated() {
            var answers: [ProduceResponse.Partition] = []
            for (partitionIndex, partition) in topic.partitions.enumerated() {
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                let (answer, condition) = produce(partition.records, to: topicPartition, acks: acks, now: now)
                answers.append(answer)
                if let condition {
                    waits.append(ProduceWait(topicPartition: topicPartition, topicIndex: topicIndex, partitionIndex: partitionIndex,
                                             condition: condition, baseOffset: answer.baseOffset))
                }
            }
            response.topics.append(ProduceResponse.Topic(name: topic.name, partitions: answers))
        }
        if waits.isEmpty { return response }
        let parkedID = nextParkedProduceID
        nextParkedProduceID += 1
        let timeout = Duration.milliseconds(Int64(max(0, request.timeoutMilliseconds)))
        parkedProduces[parkedID] = ParkedProduce(client: client, correlationID: correlationID, deadline: now + timeout,
                                                 response: response, waits: waits)
        for wait in waits {
            if case let .ticket(ticket) = wait.condition { parkedProduceByTicket[wait.topicPartition, default: [:]][ticket] = parkedID }
        }
        return nil
    }

    /// Validates and appends one partition's batch. The condition, if any, is what the answer waits for.
    private func produce(_ records: [UInt8], to topicPartition: TopicPartition, acks: Acks,
                         now: Instant) -> (ProduceResponse.Partition, ProduceWait.Condition?) {
        func refuse(_ code: KafkaErrorCode) -> (ProduceResponse.Partition, ProduceWait.Condition?) {
            (ProduceResponse.Partition(partitionIndex: topicPartition.partition, errorCode: code), nil)
        }
        let hosted: HostedPartition
        switch ledPartition(topicPartition, currentLeaderEpoch: .none) {
        case let .led(found): hosted = found
        case let .refused(code): return refuse(code)
        }
        let header: RecordBatchHeader
        do {
            header = try RecordBatch.validateProduce(records, maximumMessageBytes: configuration.maximumMessageBytes).header
        } catch {
            return refuse(error.kafkaErrorCode)
        }
        let log = hosted.log
        func accepted(_ baseOffset: Offset, _ code: KafkaErrorCode = .none) -> ProduceResponse.Partition {
            ProduceResponse.Partition(partitionIndex: topicPartition.partition, errorCode: code,
                                      baseOffset: code == .none ? baseOffset : .unknown, logStartOffset: log.logStartOffset)
        }
        switch hosted.producerState.validate(header) {
        case .append:
            break
        case let .duplicate(firstOffset, lastOffset):
            // A retry of a batch already in the log gets its original offsets, once they are as
            // durable as the retry asked for.
            if acks == .all, log.highWatermark <= lastOffset { return (accepted(firstOffset), .highWatermarkAbove(lastOffset)) }
            return (accepted(firstOffset), nil)
        case let .reject(code):
            return refuse(code)
        }
        var bytes = records
        switch hosted.replica.appendClientBatch(&bytes, acks: acks, now: now, wallClock: wallClock) {
        case let .completed(info, error):
            hosted.producerState.recordAppended(header, firstOffset: info.firstOffset)
            partitionsWithNewData.insert(topicPartition)
            return (accepted(info.firstOffset, error), nil)
        case let .pending(info, ticket):
            hosted.producerState.recordAppended(header, firstOffset: info.firstOffset)
            partitionsWithNewData.insert(topicPartition)
            return (accepted(info.firstOffset), .ticket(ticket))
        case let .rejected(code, _):
            return refuse(code)
        }
    }

    /// An `acks=all` append was answered by its replica.
    func completeParkedProduce(_ topicPartition: TopicPartition, ticket: AppendTicket, error: KafkaErrorCode, baseOffset: Offset) {
        guard let parkedID = parkedProduceByTicket[topicPartition]?.removeValue(forKey: ticket),
              var parked = parkedProduces[parkedID],
              let position = parked.waits.firstIndex(where: { $0.topicPartition == topicPartition && $0.condition == .ticket(ticket) })
        else { return }
        if parkedProduceByTicket[topicPartition]?.isEmpty == true { parkedProduceByTicket[topicPartition] = nil }
        let wait = parked.waits.remove(at: position)
        settle(wait, in: &parked, error: error, baseOffset: baseOffset)
        parkedProduces[parkedID] = parked
        pendingProduceAnswers.append(parkedID)
    }

    private func settle(_ wait: ProduceWait, in parked: inout ParkedProduce, error: KafkaErrorCode, baseOffset: Offset) {
        parked.response.topics[wait.topicIndex].partitions[wait.partitionIndex].errorCode = error
        parked.response.topics[wait.topicIndex].partitions[wait.partitionIndex].baseOffset = error == .none ? baseOffset : .unknown
    }

    /// Sends the parked produces whose last partition was just settled.
    func sendFinishedProduces(effects: inout [NodeEffect]) {
        let candidates = pendingProduceAnswers.sorted()
        pendingProduceAnswers.removeAll()
        for parkedID in candidates {
            guard let parked = parkedProduces[parkedID], parked.waits.isEmpty else { continue }
            parkedProduces[parkedID] = nil
            effects.append(.send(to: parked.client, bytes: PeerMessage.dataResponse(
                correlationID: parked.correlationID, response: .produce(parked.response)).encoded()))
        }
    }

    /// Retried batches waiting for the high watermark, and any wait whose partition this broker
    /// no longer leads.
    func resolveHighWatermarkWaits(effects: inout [NodeEffect]) {
        for parkedID in parkedProduces.keys.sorted() {
            guard var parked = parkedProduces[parkedID] else { continue }
            var changed = false
            for wait in parked.waits {
                guard case let .highWatermarkAbove(lastOffset) = wait.condition else { continue }
                let replica = partitions[wait.topicPartition]?.replica
                if replica?.isLeader != true {
                    settle(wait, in: &parked, error: .notLeaderOrFollower, baseOffset: wait.baseOffset)
                } else if replica!.highWatermark > lastOffset {
                    settle(wait, in: &parked, error: .none, baseOffset: wait.baseOffset)
                } else {
                    continue
                }
                parked.waits.removeAll { $0.topicPartition == wait.topicPartition && $0.condition == wait.condition }
                changed = true
            }
            if changed {
                parkedProduces[parkedID] = parked
                pendingProduceAnswers.append(parkedID)
            }
        }
        sendFinishedProduces(effects: &effects)
    }

    /// Produces past their timeout answer REQUEST_TIMED_OUT for the partitions still waiting
    /// (the data may yet be committed; an idempotent retry is deduplicated).
    func expireParkedProduces(now: Instant, effects: inout [NodeEffect]) {
        for parkedID in parkedProduces.keys.sorted() {
            guard var parked = parkedProduces[parkedID], now >= parked.deadline else { continue }
            for wait in parked.waits {
                settle(wait, in: &parked, error: .requestTimedOut, baseOffset: .unknown)
                if case let .ticket(ticket) = wait.condition { parkedProduceByTicket[wait.topicPartition]?[ticket] = nil }
            }
            parked.waits.removeAll()
            parkedProduces[parkedID] = parked
            pendingProduceAnswers.append(parkedID)
        }
        sendFinishedProduces(effects: &effects)
    }

    // MARK: ListOffsets, OffsetForLeaderEpoch, Metadata

    func handleListOffsets(_ request: ListOffsetsRequest) -> ListOffsetsResponse {
        ListOffsetsResponse(topics: request.topics.map { topic in
            ListOffsetsResponse.Topic(name: topic.name, partitions: topic.partitions.map { partition in
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                let hosted: HostedPartition
                switch ledPartition(topicPartition, currentLeaderEpoch: partition.currentLeaderEpoch) {
                case let .led(found): hosted = found
                case let .refused(code): return ListOffsetsResponse.Partition(partitionIndex: partition.partitionIndex, errorCode: code)
                }
                let log = hosted.log
                let offset: Offset
                switch partition.timestampMilliseconds {
                case ListOffsetsRequest.Partition.earliestTimestamp: offset = log.logStartOffset
                // No transactions yet, so the last stable offset is the high watermark.
                case ListOffsetsRequest.Partition.latestTimestamp: offset = log.highWatermark
                default:
                    // TODO: lookup by timestamp (needs a time index).
                    return ListOffsetsResponse.Partition(partitionIndex: partition.partitionIndex, errorCode: .unsupportedVersion)
                }
                let epoch = offset > log.logStartOffset ? log.leaderEpochs.epoch(containing: offset - 1) : log.leaderEpochs.epoch(containing: offset)
                return ListOffsetsResponse.Partition(partitionIndex: partition.partitionIndex, offset: offset,
                                                     leaderEpoch: epoch ?? .none)
            })
        })
    }

    func handleOffsetForLeaderEpoch(_ request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
        OffsetForLeaderEpochResponse(topics: request.topics.map { topic in
            OffsetForLeaderEpochResponse.Topic(name: topic.name, partitions: topic.partitions.map { partition in
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                switch ledPartition(topicPartition, currentLeaderEpoch: partition.currentLeaderEpoch) {
                case let .refused(code):
                    return OffsetForLeaderEpochResponse.Partition(partitionIndex: partition.partitionIndex, errorCode: code)
                case let .led(hosted):
                    let (epoch, end) = hosted.replica.endOffset(forEpoch: partition.leaderEpoch)
                    return OffsetForLeaderEpochResponse.Partition(partitionIndex: partition.partitionIndex, leaderEpoch: epoch, endOffset: end)
                }
            })
        })
    }

    /// From the image this broker has applied. Fenced brokers are left out, as Kafka lists only
    /// live ones.
    func handleMetadata(_ request: MetadataRequest) -> MetadataResponse {
        let brokers = image.brokers.filter { !$0.isFenced }.map { registration in
            let endpoint = registration.endpoints.first
            return MetadataResponse.Broker(nodeID: registration.brokerID, host: endpoint?.host ?? "",
                                           port: Int32(endpoint?.port ?? 0), rack: registration.rack)
        }
        // TODO: auto topic creation (CreateTopics through the controller).
        let topics = (request.topics ?? image.topicNames).map { name -> MetadataResponse.Topic in
            guard let topic = image.topic(named: name) else {
                return MetadataResponse.Topic(errorCode: .unknownTopicOrPartition, name: name, partitions: [])
            }
            return MetadataResponse.Topic(name: name, partitions: topic.partitions.enumerated().map { index, registration in
                MetadataResponse.Partition(errorCode: registration.leader == nil ? .leaderNotAvailable : .none,
                                           partitionIndex: Int32(index), leaderID: registration.leader,
                                           leaderEpoch: registration.leaderEpoch, replicaNodes: registration.replicas,
                                           isrNodes: registration.isr)
            })
        }
        // Clients send admin requests to the node named controller; any broker forwards them, so
        // a controller that is not a live broker (or is unreachable for clients) is named as this one.
        let controllerID = brokers.contains { $0.nodeID == controller } ? controller : localID
        return MetadataResponse(brokers: brokers, clusterID: clusterID, controllerID: controllerID, topics: topics)
    }

    // MARK: InitProducerID

    /// Hands out producer ids from a block the controller allocated to this broker; asks for a
    /// block (and parks the request) when none is left. Every request gets a new id with epoch 0.
    /// TODO: KIP-360 epoch bumps for a known producer, and transactional ids (coordinator).
    func handleInitProducerID(_ request: InitProducerIDRequest, correlationID: UInt64, from client: NodeID,
                              now: Instant) -> InitProducerIDResponse? {
        if request.transactionalID != nil { return InitProducerIDResponse(errorCode: .coordinatorNotAvailable) }
        if let id = takeProducerID() { return InitProducerIDResponse(producerID: id, producerEpoch: ProducerEpoch(0)) }
        guard parkedInitProducerIDs.count < configuration.maximumParkedInitProducerIDRequests else {
            return InitProducerIDResponse(errorCode: .coordinatorLoadInProgress)
        }
        parkedInitProducerIDs.append(ParkedInitProducerID(client: client, correlationID: correlationID,
                                                          deadline: now + configuration.controllerRequestTimeout))
        return nil
    }

    private func takeProducerID() -> ProducerID? {
        guard let block = producerIDBlock, block.next < block.end else { return nil }
        producerIDBlock = (block.next + 1, block.end)
        return ProducerID(block.next)
    }

    func requestProducerIDBlockIfNeeded(now: Instant, effects: inout [NodeEffect]) {
        guard !parkedInitProducerIDs.isEmpty, allocateProducerIDsInFlight == nil, now >= allocateProducerIDsRetryAt,
              let brokerEpoch else { return }
        let correlationID = takeCorrelationID()
        allocateProducerIDsInFlight = InFlightControllerRequest(correlationID: correlationID, sentAt: now)
        effects.append(.send(to: controller, bytes: PeerMessage.controllerRequest(
            correlationID: correlationID,
            request: .allocateProducerIDs(AllocateProducerIDsRequest(brokerID: localID, brokerEpoch: brokerEpoch))).encoded()))
    }

    func answerParkedInitProducerIDs(effects: inout [NodeEffect]) {
        while let parked = parkedInitProducerIDs.first, let id = takeProducerID() {
            parkedInitProducerIDs.removeFirst()
            effects.append(.send(to: parked.client, bytes: PeerMessage.dataResponse(
                correlationID: parked.correlationID,
                response: .initProducerID(InitProducerIDResponse(producerID: id, producerEpoch: ProducerEpoch(0)))).encoded()))
        }
    }

    /// Parked InitProducerID requests past their deadline get a retriable error.
    func expireParkedInitProducerIDs(now: Instant, effects: inout [NodeEffect]) {
        while let parked = parkedInitProducerIDs.first, now >= parked.deadline {
            parkedInitProducerIDs.removeFirst()
            effects.append(.send(to: parked.client, bytes: PeerMessage.dataResponse(
                correlationID: parked.correlationID,
                response: .initProducerID(InitProducerIDResponse(errorCode: .coordinatorLoadInProgress))).encoded()))
        }
    }
}
