import Controller
import KafkaProtocol
import LogStorage
import NodeKit
import TernCore

/// Who a data-plane answer goes to: a client connection (through the front door, by the
/// connection's pseudo node id, always negative) or another broker (a follower's replica fetch),
/// with the request's correlation id and the version to answer in.
public struct DataPlaneRequester: Equatable, Sendable {
    public let node: NodeID
    public let correlationID: UInt64
    public let version: Int16

    public init(node: NodeID, correlationID: UInt64, version: Int16) {
        self.node = node
        self.correlationID = correlationID
        self.version = version
    }

    /// Client connections' pseudo node ids are negative; nodes' ids never are.
    public var isClient: Bool { node.rawValue < 0 }
}

/// A data-plane answer, taken by the broker node at the end of the event and sent on its way.
public struct DataPlaneAnswer: Sendable {
    public let requester: DataPlaneRequester
    public let response: KafkaResponse
}

/// A Produce request waiting for some of its partitions (`acks=all`).
struct ParkedProduce {
    let requester: DataPlaneRequester
    let deadline: Instant
    var response: KafkaWire.ProduceResponse
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
    let requester: DataPlaneRequester
    let deadline: Instant
}

extension BrokerDataPlane {
    /// Answers a data-plane request from a client or another broker; some answers come later.
    /// The front door hands over only the data-plane APIs.
    public func handleRequest(_ request: KafkaRequest, from requester: DataPlaneRequester, now: Instant) {
        switch request {
        case let .produce(produce):
            if let response = handleProduce(produce, from: requester, now: now) { answer(.produce(response), to: requester) }
        case let .fetch(fetch):
            let response = handleFetch(fetch, version: requester.version, now: now)
            if !parkFetchIfWaiting(fetch, response: response, from: requester, now: now) { answer(.fetch(response), to: requester) }
        case let .listOffsets(listOffsets):
            answer(.listOffsets(handleListOffsets(listOffsets)), to: requester)
        case let .metadata(metadata):
            answer(.metadata(handleMetadata(metadata, version: requester.version)), to: requester)
        case let .offsetForLeaderEpoch(offsetForLeaderEpoch):
            answer(.offsetForLeaderEpoch(handleOffsetForLeaderEpoch(offsetForLeaderEpoch)), to: requester)
        case let .initProducerID(initProducerID):
            if let response = handleInitProducerID(initProducerID, from: requester, now: now) {
                answer(.initProducerID(response), to: requester)
            }
        case let .deleteRecords(deleteRecords):
            handleDeleteRecords(deleteRecords, from: requester, now: now)
        case .apiVersions, .createTopics, .deleteTopics, .describeConfigs, .alterConfigs, .incrementalAlterConfigs, .createPartitions, .electLeaders,
             .alterPartitionReassignments, .describeCluster:
            preconditionFailure("API \(request.apiKey) is not a data-plane request")
        }
    }

    func answer(_ response: KafkaResponse, to requester: DataPlaneRequester) {
        answers.append(DataPlaneAnswer(requester: requester, response: response))
    }

    /// The answers made since the last call, in the order they were made. Called after every
    /// event, so most calls find none and allocate nothing.
    public func takeAnswers() -> [DataPlaneAnswer] {
        guard !answers.isEmpty else { return [] }
        defer { answers = [] }
        return answers
    }

    // MARK: Produce

    /// The answer now, or nil when it is parked until replication (or the timeout) decides.
    /// acks=0 is answered too (Kafka sends nothing): the front door drops it.
    func handleProduce(_ request: KafkaWire.ProduceRequest, from requester: DataPlaneRequester,
                       now: Instant) -> KafkaWire.ProduceResponse? {
        func everyPartition(_ code: KafkaErrorCode) -> KafkaWire.ProduceResponse {
            KafkaWire.ProduceResponse(responses: request.topicData.map { topic in
                KafkaWire.ProduceResponse.TopicProduceResponse(name: topic.name, partitionResponses: topic.partitionData.map {
                    Self.producePartition($0.index, error: code)
                })
            })
        }
        guard let acks = Acks(rawValue: request.acks) else { return everyPartition(.invalidRequiredAcks) }
        // TODO: transactional produce (needs the transaction coordinator).
        if request.transactionalId != nil { return everyPartition(.transactionAbortable) }
        // Refused before anything is appended, so a retry cannot duplicate it.
        if acks == .all, parkedProduces.count >= configuration.maximumParkedProduceRequests { return everyPartition(.requestTimedOut) }

        var response = KafkaWire.ProduceResponse(responses: [])
        var waits: [ProduceWait] = []
        for (topicIndex, topic) in request.topicData.enumerated() {
            var answers: [KafkaWire.ProduceResponse.PartitionProduceResponse] = []
            for (partitionIndex, partition) in topic.partitionData.enumerated() {
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.index)
                let (answer, condition) = produce(partition.records, to: topicPartition, acks: acks, now: now)
                answers.append(answer)
                if let condition {
                    waits.append(ProduceWait(topicPartition: topicPartition, topicIndex: topicIndex, partitionIndex: partitionIndex,
                                             condition: condition, baseOffset: Offset(answer.baseOffset)))
                }
            }
            response.responses.append(KafkaWire.ProduceResponse.TopicProduceResponse(name: topic.name, partitionResponses: answers))
        }
        if waits.isEmpty { return response }
        let parkedID = nextParkedProduceID
        nextParkedProduceID += 1
        let timeout = Duration.milliseconds(Int64(max(0, request.timeoutMs)))
        parkedProduces[parkedID] = ParkedProduce(requester: requester, deadline: now + timeout, response: response, waits: waits)
        for wait in waits {
            if case let .ticket(ticket) = wait.condition { parkedProduceByTicket[wait.topicPartition, default: [:]][ticket] = parkedID }
        }
        return nil
    }

    /// One partition's answer; the base offset is Kafka's -1 unless the batch was accepted, and
    /// so is the log append time unless the topic stamps one.
    static func producePartition(_ index: Int32, error: KafkaErrorCode, baseOffset: Offset = .unknown,
                                 logAppendTime: Int64 = -1,
                                 logStartOffset: Offset = .unknown) -> KafkaWire.ProduceResponse.PartitionProduceResponse {
        KafkaWire.ProduceResponse.PartitionProduceResponse(
            index: index, errorCode: error.rawValue, baseOffset: error == .none ? baseOffset.rawValue : Offset.unknown.rawValue,
            logAppendTimeMs: error == .none ? logAppendTime : -1, logStartOffset: logStartOffset.rawValue)
    }

    /// Validates and appends one partition's batch. The condition, if any, is what the answer waits for.
    private func produce(_ records: [UInt8], to topicPartition: TopicPartition, acks: Acks,
                         now: Instant) -> (KafkaWire.ProduceResponse.PartitionProduceResponse, ProduceWait.Condition?) {
        func refuse(_ code: KafkaErrorCode) -> (KafkaWire.ProduceResponse.PartitionProduceResponse, ProduceWait.Condition?) {
            (Self.producePartition(topicPartition.partition, error: code), nil)
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
        func accepted(_ baseOffset: Offset, _ code: KafkaErrorCode = .none, appended: AppendInfo? = nil) -> KafkaWire.ProduceResponse.PartitionProduceResponse {
            let logAppendTime = log.configuration.messageTimestampType == .logAppendTime ? appended?.maxTimestamp ?? -1 : -1
            return Self.producePartition(topicPartition.partition, error: code, baseOffset: baseOffset, logAppendTime: logAppendTime,
                                         logStartOffset: log.logStartOffset)
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
            // The log start tells a producer refused as unknown whether retention explains it.
            return (Self.producePartition(topicPartition.partition, error: code, logStartOffset: log.logStartOffset), nil)
        }
        var bytes = records
        switch hosted.replica.appendClientBatch(&bytes, acks: acks, now: now, wallClock: wallClock) {
        case let .completed(info, error):
            hosted.producerState.recordAppended(header, firstOffset: info.firstOffset)
            partitionsWithNewData.insert(topicPartition)
            return (accepted(info.firstOffset, error, appended: info), nil)
        case let .pending(info, ticket):
            hosted.producerState.recordAppended(header, firstOffset: info.firstOffset)
            partitionsWithNewData.insert(topicPartition)
            return (accepted(info.firstOffset, appended: info), .ticket(ticket))
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
        parked.response.responses[wait.topicIndex].partitionResponses[wait.partitionIndex].errorCode = error.rawValue
        parked.response.responses[wait.topicIndex].partitionResponses[wait.partitionIndex].baseOffset =
            error == .none ? baseOffset.rawValue : Offset.unknown.rawValue
    }

    /// Sends the parked produces whose last partition was just settled.
    func sendFinishedProduces() {
        let candidates = pendingProduceAnswers.sorted()
        pendingProduceAnswers.removeAll()
        for parkedID in candidates {
            guard let parked = parkedProduces[parkedID], parked.waits.isEmpty else { continue }
            parkedProduces[parkedID] = nil
            answer(.produce(parked.response), to: parked.requester)
        }
    }

    /// Retried batches waiting for the high watermark, and any wait whose partition this broker
    /// no longer leads.
    func resolveHighWatermarkWaits() {
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
        sendFinishedProduces()
    }

    /// Produces past their timeout answer REQUEST_TIMED_OUT for the partitions still waiting
    /// (the data may yet be committed; an idempotent retry is deduplicated).
    func expireParkedProduces(now: Instant) {
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
        sendFinishedProduces()
    }

    // MARK: ListOffsets, OffsetForLeaderEpoch, Metadata

    func handleListOffsets(_ request: KafkaWire.ListOffsetsRequest) -> KafkaWire.ListOffsetsResponse {
        typealias PartitionResponse = KafkaWire.ListOffsetsResponse.ListOffsetsPartitionResponse
        return KafkaWire.ListOffsetsResponse(topics: request.topics.map { topic in
            KafkaWire.ListOffsetsResponse.ListOffsetsTopicResponse(name: topic.name, partitions: topic.partitions.map { partition in
                let topicPartition = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                let hosted: HostedPartition
                switch ledPartition(topicPartition, currentLeaderEpoch: LeaderEpoch(partition.currentLeaderEpoch)) {
                case let .led(found): hosted = found
                case let .refused(code): return PartitionResponse(partitionIndex: partition.partitionIndex, errorCode: code.rawValue)
                }
                let found: TimestampedOffset?
                do { found = try Self.listOffset(partition.timestamp, in: hosted.log) } catch {
                    return PartitionResponse(partitionIndex: partition.partitionIndex, errorCode: KafkaErrorCode.kafkaStorageError.rawValue)
                }
                guard let found else {
                    return PartitionResponse(partitionIndex: partition.partitionIndex, timestamp: -1, offset: -1)
                }
                let log = hosted.log
                // The latest offset is the next record's: its epoch is the last record's.
                let epochOffset = partition.timestamp == ListOffsetsTimestamp.latest && found.offset > log.logStartOffset
                    ? found.offset - 1 : found.offset
                let epoch = log.leaderEpochs.epoch(containing: epochOffset)
                return PartitionResponse(partitionIndex: partition.partitionIndex, timestamp: found.timestamp,
                                         offset: found.offset.rawValue, leaderEpoch: (epoch ?? .none).rawValue)
            })
        })
    }

    /// What ListOffsets answers for one partition: a position (latest, earliest) with no
    /// timestamp, or a record found by its timestamp; nil when no record qualifies (Kafka then
    /// answers offset and timestamp -1). Everything is looked for below the high watermark: no
    /// transactions yet, so it is also the last stable offset `read_committed` asks for.
    static func listOffset(_ timestamp: Int64, in log: PartitionLog) throws(LogError) -> TimestampedOffset? {
        switch timestamp {
        case ListOffsetsTimestamp.latest:
            return TimestampedOffset(offset: log.highWatermark, timestamp: -1)
        case ListOffsetsTimestamp.earliest, ListOffsetsTimestamp.earliestLocal:
            return TimestampedOffset(offset: log.logStartOffset, timestamp: -1)
        case ListOffsetsTimestamp.latestTiered:
            return nil  // nothing is tiered: Kafka answers -1 when remote storage is off
        case ListOffsetsTimestamp.maxTimestamp:
            return try log.maxTimestampOffset(below: log.highWatermark)
        default:
            return try log.offset(forTimestamp: timestamp, below: log.highWatermark)
        }
    }

    func handleOffsetForLeaderEpoch(_ request: KafkaWire.OffsetForLeaderEpochRequest) -> KafkaWire.OffsetForLeaderEpochResponse {
        typealias EpochEndOffset = KafkaWire.OffsetForLeaderEpochResponse.EpochEndOffset
        return KafkaWire.OffsetForLeaderEpochResponse(topics: request.topics.map { topic in
            KafkaWire.OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult(topic: topic.topic, partitions: topic.partitions.map { partition in
                let topicPartition = TopicPartition(topic: topic.topic, partition: partition.partition)
                switch ledPartition(topicPartition, currentLeaderEpoch: LeaderEpoch(partition.currentLeaderEpoch)) {
                case let .refused(code):
                    return EpochEndOffset(errorCode: code.rawValue, partition: partition.partition)
                case let .led(hosted):
                    let (epoch, end) = hosted.replica.endOffset(forEpoch: LeaderEpoch(partition.leaderEpoch))
                    return EpochEndOffset(partition: partition.partition, leaderEpoch: epoch.rawValue, endOffset: end.rawValue)
                }
            })
        })
    }

    /// From the image this broker has applied. Fenced brokers are left out, as Kafka lists only
    /// live ones. Topics are named (Tern gives clients no topic ids): a nameless topic of v10+
    /// is asked for as the empty name, which no topic has; v0 has no null list, so there an empty
    /// one asks for every topic.
    func handleMetadata(_ request: KafkaWire.MetadataRequest, version: Int16) -> KafkaWire.MetadataResponse {
        let brokers = image.brokers.filter { !$0.isFenced }.map { registration in
            let endpoint = registration.endpoints.first
            return KafkaWire.MetadataResponse.MetadataResponseBroker(
                nodeId: registration.brokerID.rawValue, host: endpoint?.host ?? "", port: Int32(endpoint?.port ?? 0),
                rack: registration.rack)
        }
        var names = request.topics?.map { $0.name ?? "" }
        if version == 0, names?.isEmpty ?? true { names = nil }
        // Versions before 4 have no flag: they always allowed creation.
        let mayCreate = version < 4 || request.allowAutoTopicCreation
        let topics = (names ?? image.topicNames).map { name -> KafkaWire.MetadataResponse.MetadataResponseTopic in
            guard let topic = image.topic(named: name) else {
                return KafkaWire.MetadataResponse.MetadataResponseTopic(errorCode: unknownTopicAnswer(name, mayCreate: mayCreate).rawValue,
                                                                        name: name, partitions: [])
            }
            return KafkaWire.MetadataResponse.MetadataResponseTopic(name: name, partitions: topic.partitions.enumerated().map { index, registration in
                KafkaWire.MetadataResponse.MetadataResponsePartition(
                    errorCode: (registration.leader == nil ? KafkaErrorCode.leaderNotAvailable : .none).rawValue,
                    partitionIndex: Int32(index), leaderId: registration.leader?.rawValue ?? -1,
                    leaderEpoch: registration.leaderEpoch.rawValue, replicaNodes: registration.replicas.map(\.rawValue),
                    isrNodes: registration.isr.map(\.rawValue), offlineReplicas: [])
            })
        }
        // Clients send admin requests to the node named controller; any broker forwards them, so
        // a controller that is not a live broker (or is unreachable for clients) is named as this one.
        let controllerID = brokers.contains { $0.nodeId == controller.rawValue } ? controller : localID
        return KafkaWire.MetadataResponse(brokers: brokers, clusterId: clusterID, controllerId: controllerID.rawValue, topics: topics)
    }

    // MARK: InitProducerID

    /// Hands out producer ids from a block the controller allocated to this broker; asks for a
    /// block (and parks the request) when none is left. Every request gets a new id with epoch 0.
    /// TODO: KIP-360 epoch bumps for a known producer, and transactional ids (coordinator).
    func handleInitProducerID(_ request: KafkaWire.InitProducerIdRequest, from requester: DataPlaneRequester,
                              now: Instant) -> KafkaWire.InitProducerIdResponse? {
        if request.transactionalId != nil { return Self.initProducerIDFailure(.coordinatorNotAvailable) }
        if let id = takeProducerID() { return KafkaWire.InitProducerIdResponse(producerId: id.rawValue, producerEpoch: 0) }
        guard parkedInitProducerIDs.count < configuration.maximumParkedInitProducerIDRequests else {
            return Self.initProducerIDFailure(.coordinatorLoadInProgress)
        }
        parkedInitProducerIDs.append(ParkedInitProducerID(requester: requester, deadline: now + configuration.controllerRequestTimeout))
        return nil
    }

    private static func initProducerIDFailure(_ code: KafkaErrorCode) -> KafkaWire.InitProducerIdResponse {
        KafkaWire.InitProducerIdResponse(errorCode: code.rawValue, producerId: ProducerID.none.rawValue,
                                         producerEpoch: ProducerEpoch.none.rawValue)
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

    func answerParkedInitProducerIDs() {
        while let parked = parkedInitProducerIDs.first, let id = takeProducerID() {
            parkedInitProducerIDs.removeFirst()
            answer(.initProducerID(KafkaWire.InitProducerIdResponse(producerId: id.rawValue, producerEpoch: 0)), to: parked.requester)
        }
    }

    /// Parked InitProducerID requests past their deadline get a retriable error.
    func expireParkedInitProducerIDs(now: Instant) {
        while let parked = parkedInitProducerIDs.first, now >= parked.deadline {
            parkedInitProducerIDs.removeFirst()
            answer(.initProducerID(Self.initProducerIDFailure(.coordinatorLoadInProgress)), to: parked.requester)
        }
    }
}
