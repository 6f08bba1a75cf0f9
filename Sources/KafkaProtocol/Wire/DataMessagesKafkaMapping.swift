import TernCore

// Mapping between the Kafka wire structs and Tern's logical data-plane messages, in both
// directions: the broker decodes a Kafka request into a `DataRequest` and answers with a
// `DataResponse`; Tern's CLI clients do the reverse.
//
// What the logical types do not carry is filled with Kafka's defaults: throttle time 0, topic ids
// all zero, no fetch session (id 0, epoch -1, so the client never sends incremental fetches), no
// preferred read replica, no authorized-operations bitfields, no per-record produce errors. Tern's
// own extensions (a fetch's replica epoch, durable offset and acknowledged loss, the leader's log end offset) do not
// travel over Kafka's wire and come back as "unknown". Fields a version lacks are dropped by that
// version's encoding (e.g. Fetch's diverging epoch below v12).

// MARK: - Shared conversions

/// Kafka's -1 (and any other negative id, such as the -2 "debug" replica) is "no node".
private func optionalNodeID(kafka raw: Int32) -> NodeID? { raw >= 0 ? NodeID(raw) : nil }

private func kafkaNodeID(_ node: NodeID?) -> Int32 { node?.rawValue ?? -1 }

/// Codes newer than Tern's table become UNKNOWN_SERVER_ERROR, which every client treats as a
/// non-retriable failure; the number itself is lost.
private func errorCode(kafka raw: Int16) -> KafkaErrorCode { KafkaErrorCode(rawValue: raw) ?? .unknownServerError }

/// Node lists where every member must be a node: nil if any id is negative, since the
/// data-plane codec cannot carry one.
private func nodeIDs(kafka raw: [Int32]) -> [NodeID]? {
    var nodes: [NodeID] = []
    nodes.reserveCapacity(raw.count)
    for id in raw {
        guard id >= 0 else { return nil }
        nodes.append(NodeID(id))
    }
    return nodes
}

/// Metadata topic names are nullable from v10 (topics by id). Tern has no topic ids, so a
/// nameless topic is asked for (or answered) as the empty name, which no topic has.
private func topicName(kafka name: String?) -> String { name ?? "" }

// MARK: - Broker side: Kafka request → DataRequest

extension DataRequest {
    /// The data-plane request a Kafka request carries; nil for the other APIs (admin, ApiVersions)
    /// and for values Tern cannot represent (an isolation level other than 0 or 1), which the
    /// broker answers as an invalid request.
    public init?(kafka request: KafkaRequest, version: Int16) {
        switch request {
        case let .produce(wire):
            self = .produce(ProduceRequest(
                transactionalID: wire.transactionalId, acks: wire.acks, timeoutMilliseconds: wire.timeoutMs,
                topics: wire.topicData.map { topic in
                    ProduceRequest.Topic(name: topic.name, partitions: topic.partitionData.map {
                        ProduceRequest.Partition(partitionIndex: $0.index, records: $0.records)
                    })
                }))
        case let .fetch(wire):
            guard let isolationLevel = IsolationLevel(rawValue: wire.isolationLevel) else { return nil }
            self = .fetch(FetchRequest(
                replicaID: optionalNodeID(kafka: wire.replicaId), maxWaitMilliseconds: wire.maxWaitMs, minBytes: wire.minBytes,
                maxBytes: wire.maxBytes, isolationLevel: isolationLevel,
                topics: wire.topics.map { topic in
                    FetchRequest.Topic(name: topic.topic, partitions: topic.partitions.map {
                        FetchRequest.Partition(
                            partitionIndex: $0.partition, currentLeaderEpoch: LeaderEpoch($0.currentLeaderEpoch),
                            fetchOffset: Offset($0.fetchOffset), lastFetchedEpoch: LeaderEpoch($0.lastFetchedEpoch),
                            logStartOffset: Offset($0.logStartOffset), partitionMaxBytes: $0.partitionMaxBytes)
                    })
                }))
        case let .listOffsets(wire):
            guard let isolationLevel = IsolationLevel(rawValue: wire.isolationLevel) else { return nil }
            self = .listOffsets(ListOffsetsRequest(
                replicaID: optionalNodeID(kafka: wire.replicaId), isolationLevel: isolationLevel,
                topics: wire.topics.map { topic in
                    ListOffsetsRequest.Topic(name: topic.name, partitions: topic.partitions.map {
                        ListOffsetsRequest.Partition(partitionIndex: $0.partitionIndex, currentLeaderEpoch: LeaderEpoch($0.currentLeaderEpoch),
                                                     timestampMilliseconds: $0.timestamp)
                    })
                }))
        case let .metadata(wire):
            var topics = wire.topics?.map { topicName(kafka: $0.name) }
            // Version 0 has no null array: there an empty list asks for every topic.
            if version == 0, topics?.isEmpty ?? true { topics = nil }
            self = .metadata(MetadataRequest(topics: topics, allowAutoTopicCreation: wire.allowAutoTopicCreation))
        case let .initProducerID(wire):
            self = .initProducerID(InitProducerIDRequest(
                transactionalID: wire.transactionalId, transactionTimeoutMilliseconds: wire.transactionTimeoutMs,
                producerID: ProducerID(wire.producerId), producerEpoch: ProducerEpoch(wire.producerEpoch)))
        case let .offsetForLeaderEpoch(wire):
            self = .offsetForLeaderEpoch(OffsetForLeaderEpochRequest(
                replicaID: optionalNodeID(kafka: wire.replicaId),
                topics: wire.topics.map { topic in
                    OffsetForLeaderEpochRequest.Topic(name: topic.topic, partitions: topic.partitions.map {
                        OffsetForLeaderEpochRequest.Partition(partitionIndex: $0.partition,
                                                              currentLeaderEpoch: LeaderEpoch($0.currentLeaderEpoch),
                                                              leaderEpoch: LeaderEpoch($0.leaderEpoch))
                    })
                }))
        case .apiVersions, .createTopics, .deleteTopics, .describeConfigs, .createPartitions, .electLeaders, .describeCluster:
            return nil
        }
    }
}

// MARK: - Broker side: DataResponse → Kafka response

extension DataResponse {
    /// The Kafka response for a request of `version`; fields that version lacks are dropped when
    /// it is encoded.
    public func kafkaResponse(version: Int16) -> KafkaResponse {
        switch self {
        case let .produce(response):
            return .produce(KafkaWire.ProduceResponse(
                responses: response.topics.map { topic in
                    KafkaWire.ProduceResponse.TopicProduceResponse(name: topic.name, partitionResponses: topic.partitions.map {
                        KafkaWire.ProduceResponse.PartitionProduceResponse(
                            index: $0.partitionIndex, errorCode: $0.errorCode.rawValue, baseOffset: $0.baseOffset.rawValue,
                            logAppendTimeMs: $0.logAppendTimeMilliseconds, logStartOffset: $0.logStartOffset.rawValue)
                    })
                },
                throttleTimeMs: response.throttleTimeMilliseconds))
        case let .fetch(response):
            return .fetch(KafkaWire.FetchResponse(
                errorCode: response.errorCode.rawValue, sessionId: 0,
                responses: response.topics.map { topic in
                    KafkaWire.FetchResponse.FetchableTopicResponse(topic: topic.name, partitions: topic.partitions.map { partition in
                        KafkaWire.FetchResponse.PartitionData(
                            partitionIndex: partition.partitionIndex, errorCode: partition.errorCode.rawValue,
                            highWatermark: partition.highWatermark.rawValue, lastStableOffset: partition.lastStableOffset.rawValue,
                            logStartOffset: partition.logStartOffset.rawValue,
                            divergingEpoch: partition.divergingEpoch.map {
                                KafkaWire.FetchResponse.EpochEndOffset(epoch: $0.epoch.rawValue, endOffset: $0.endOffset.rawValue)
                            },
                            currentLeader: partition.currentLeader.map {
                                KafkaWire.FetchResponse.LeaderIdAndEpoch(leaderId: kafkaNodeID($0.leaderID), leaderEpoch: $0.leaderEpoch.rawValue)
                            },
                            abortedTransactions: partition.abortedTransactions.map {
                                KafkaWire.FetchResponse.AbortedTransaction(producerId: $0.producerID.rawValue, firstOffset: $0.firstOffset.rawValue)
                            },
                            preferredReadReplica: -1,
                            records: partition.records)
                    })
                }))
        case let .listOffsets(response):
            return .listOffsets(KafkaWire.ListOffsetsResponse(topics: response.topics.map { topic in
                KafkaWire.ListOffsetsResponse.ListOffsetsTopicResponse(name: topic.name, partitions: topic.partitions.map {
                    KafkaWire.ListOffsetsResponse.ListOffsetsPartitionResponse(
                        partitionIndex: $0.partitionIndex, errorCode: $0.errorCode.rawValue, timestamp: $0.timestampMilliseconds,
                        offset: $0.offset.rawValue, leaderEpoch: $0.leaderEpoch.rawValue)
                })
            }))
        case let .metadata(response):
            return .metadata(KafkaWire.MetadataResponse(
                brokers: response.brokers.map {
                    KafkaWire.MetadataResponse.MetadataResponseBroker(nodeId: $0.nodeID.rawValue, host: $0.host, port: $0.port, rack: $0.rack)
                },
                clusterId: response.clusterID, controllerId: kafkaNodeID(response.controllerID),
                topics: response.topics.map { topic in
                    KafkaWire.MetadataResponse.MetadataResponseTopic(
                        errorCode: topic.errorCode.rawValue, name: topic.name, topicId: .zero, isInternal: topic.isInternal,
                        partitions: topic.partitions.map {
                            KafkaWire.MetadataResponse.MetadataResponsePartition(
                                errorCode: $0.errorCode.rawValue, partitionIndex: $0.partitionIndex, leaderId: kafkaNodeID($0.leaderID),
                                leaderEpoch: $0.leaderEpoch.rawValue, replicaNodes: $0.replicaNodes.map(\.rawValue),
                                isrNodes: $0.isrNodes.map(\.rawValue), offlineReplicas: $0.offlineReplicas.map(\.rawValue))
                        })
                }))
        case let .initProducerID(response):
            return .initProducerID(KafkaWire.InitProducerIdResponse(
                errorCode: response.errorCode.rawValue, producerId: response.producerID.rawValue,
                producerEpoch: response.producerEpoch.rawValue))
        case let .offsetForLeaderEpoch(response):
            return .offsetForLeaderEpoch(KafkaWire.OffsetForLeaderEpochResponse(topics: response.topics.map { topic in
                KafkaWire.OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult(topic: topic.name, partitions: topic.partitions.map {
                    KafkaWire.OffsetForLeaderEpochResponse.EpochEndOffset(
                        errorCode: $0.errorCode.rawValue, partition: $0.partitionIndex, leaderEpoch: $0.leaderEpoch.rawValue,
                        endOffset: $0.endOffset.rawValue)
                })
            }))
        }
    }
}

// MARK: - Client side: DataRequest → Kafka request

extension DataRequest {
    /// The Kafka request to send at `version`. Consumers' fetches are sessionless (id 0, epoch -1).
    /// A Metadata request for no topics cannot be said in v0 (an empty list there means all).
    public func kafkaRequest(version: Int16) -> KafkaRequest {
        switch self {
        case let .produce(request):
            return .produce(KafkaWire.ProduceRequest(
                transactionalId: request.transactionalID, acks: request.acks, timeoutMs: request.timeoutMilliseconds,
                topicData: request.topics.map { topic in
                    KafkaWire.ProduceRequest.TopicProduceData(name: topic.name, partitionData: topic.partitions.map {
                        KafkaWire.ProduceRequest.PartitionProduceData(index: $0.partitionIndex, records: $0.records)
                    })
                }))
        case let .fetch(request):
            return .fetch(KafkaWire.FetchRequest(
                replicaId: kafkaNodeID(request.replicaID), maxWaitMs: request.maxWaitMilliseconds, minBytes: request.minBytes,
                maxBytes: request.maxBytes, isolationLevel: request.isolationLevel.rawValue, sessionId: 0, sessionEpoch: -1,
                topics: request.topics.map { topic in
                    KafkaWire.FetchRequest.FetchTopic(topic: topic.name, partitions: topic.partitions.map {
                        KafkaWire.FetchRequest.FetchPartition(
                            partition: $0.partitionIndex, currentLeaderEpoch: $0.currentLeaderEpoch.rawValue,
                            fetchOffset: $0.fetchOffset.rawValue, lastFetchedEpoch: $0.lastFetchedEpoch.rawValue,
                            logStartOffset: $0.logStartOffset.rawValue, partitionMaxBytes: $0.partitionMaxBytes)
                    })
                }))
        case let .listOffsets(request):
            return .listOffsets(KafkaWire.ListOffsetsRequest(
                replicaId: kafkaNodeID(request.replicaID), isolationLevel: request.isolationLevel.rawValue,
                topics: request.topics.map { topic in
                    KafkaWire.ListOffsetsRequest.ListOffsetsTopic(name: topic.name, partitions: topic.partitions.map {
                        KafkaWire.ListOffsetsRequest.ListOffsetsPartition(
                            partitionIndex: $0.partitionIndex, currentLeaderEpoch: $0.currentLeaderEpoch.rawValue,
                            timestamp: $0.timestampMilliseconds)
                    })
                }))
        case let .metadata(request):
            let topics = request.topics?.map { KafkaWire.MetadataRequest.MetadataRequestTopic(topicId: .zero, name: $0) }
            return .metadata(KafkaWire.MetadataRequest(
                topics: version == 0 ? (topics ?? []) : topics, allowAutoTopicCreation: request.allowAutoTopicCreation))
        case let .initProducerID(request):
            return .initProducerID(KafkaWire.InitProducerIdRequest(
                transactionalId: request.transactionalID, transactionTimeoutMs: request.transactionTimeoutMilliseconds,
                producerId: request.producerID.rawValue, producerEpoch: request.producerEpoch.rawValue))
        case let .offsetForLeaderEpoch(request):
            return .offsetForLeaderEpoch(KafkaWire.OffsetForLeaderEpochRequest(
                replicaId: kafkaNodeID(request.replicaID),
                topics: request.topics.map { topic in
                    KafkaWire.OffsetForLeaderEpochRequest.OffsetForLeaderTopic(topic: topic.name, partitions: topic.partitions.map {
                        KafkaWire.OffsetForLeaderEpochRequest.OffsetForLeaderPartition(
                            partition: $0.partitionIndex, currentLeaderEpoch: $0.currentLeaderEpoch.rawValue,
                            leaderEpoch: $0.leaderEpoch.rawValue)
                    })
                }))
        }
    }
}

// MARK: - Client side: Kafka response → DataResponse

extension DataResponse {
    /// The data-plane response a Kafka response carries; nil for the other APIs and for values the
    /// logical types cannot hold (a negative broker or replica id).
    public init?(kafka response: KafkaResponse, version: Int16) {
        switch response {
        case let .produce(wire):
            self = .produce(ProduceResponse(
                topics: wire.responses.map { topic in
                    ProduceResponse.Topic(name: topic.name, partitions: topic.partitionResponses.map {
                        ProduceResponse.Partition(
                            partitionIndex: $0.index, errorCode: errorCode(kafka: $0.errorCode), baseOffset: Offset($0.baseOffset),
                            logAppendTimeMilliseconds: $0.logAppendTimeMs, logStartOffset: Offset($0.logStartOffset))
                    })
                },
                throttleTimeMilliseconds: wire.throttleTimeMs))
        case let .fetch(wire):
            self = .fetch(FetchResponse(
                errorCode: errorCode(kafka: wire.errorCode),
                topics: wire.responses.map { topic in
                    FetchResponse.Topic(name: topic.topic, partitions: topic.partitions.map { partition in
                        FetchResponse.Partition(
                            partitionIndex: partition.partitionIndex, errorCode: errorCode(kafka: partition.errorCode),
                            highWatermark: Offset(partition.highWatermark), lastStableOffset: Offset(partition.lastStableOffset),
                            logStartOffset: Offset(partition.logStartOffset),
                            divergingEpoch: partition.divergingEpoch.map {
                                FetchResponse.DivergingEpoch(epoch: LeaderEpoch($0.epoch), endOffset: Offset($0.endOffset))
                            },
                            currentLeader: partition.currentLeader.map {
                                FetchResponse.LeaderHint(leaderID: optionalNodeID(kafka: $0.leaderId), leaderEpoch: LeaderEpoch($0.leaderEpoch))
                            },
                            abortedTransactions: (partition.abortedTransactions ?? []).map {
                                FetchResponse.AbortedTransaction(producerID: ProducerID($0.producerId), firstOffset: Offset($0.firstOffset))
                            },
                            records: partition.records)
                    })
                }))
        case let .listOffsets(wire):
            self = .listOffsets(ListOffsetsResponse(topics: wire.topics.map { topic in
                ListOffsetsResponse.Topic(name: topic.name, partitions: topic.partitions.map {
                    ListOffsetsResponse.Partition(
                        partitionIndex: $0.partitionIndex, errorCode: errorCode(kafka: $0.errorCode), timestampMilliseconds: $0.timestamp,
                        offset: Offset($0.offset), leaderEpoch: LeaderEpoch($0.leaderEpoch))
                })
            }))
        case let .metadata(wire):
            var brokers: [MetadataResponse.Broker] = []
            for broker in wire.brokers {
                guard broker.nodeId >= 0 else { return nil }
                brokers.append(MetadataResponse.Broker(nodeID: NodeID(broker.nodeId), host: broker.host, port: broker.port, rack: broker.rack))
            }
            var topics: [MetadataResponse.Topic] = []
            for topic in wire.topics {
                var partitions: [MetadataResponse.Partition] = []
                for partition in topic.partitions {
                    guard let replicas = nodeIDs(kafka: partition.replicaNodes), let isr = nodeIDs(kafka: partition.isrNodes),
                          let offline = nodeIDs(kafka: partition.offlineReplicas) else { return nil }
                    partitions.append(MetadataResponse.Partition(
                        errorCode: errorCode(kafka: partition.errorCode), partitionIndex: partition.partitionIndex,
                        leaderID: optionalNodeID(kafka: partition.leaderId), leaderEpoch: LeaderEpoch(partition.leaderEpoch),
                        replicaNodes: replicas, isrNodes: isr, offlineReplicas: offline))
                }
                topics.append(MetadataResponse.Topic(errorCode: errorCode(kafka: topic.errorCode), name: topicName(kafka: topic.name),
                                                     isInternal: topic.isInternal, partitions: partitions))
            }
            self = .metadata(MetadataResponse(brokers: brokers, clusterID: wire.clusterId,
                                              controllerID: optionalNodeID(kafka: wire.controllerId), topics: topics))
        case let .initProducerID(wire):
            self = .initProducerID(InitProducerIDResponse(
                errorCode: errorCode(kafka: wire.errorCode), producerID: ProducerID(wire.producerId),
                producerEpoch: ProducerEpoch(wire.producerEpoch)))
        case let .offsetForLeaderEpoch(wire):
            self = .offsetForLeaderEpoch(OffsetForLeaderEpochResponse(topics: wire.topics.map { topic in
                OffsetForLeaderEpochResponse.Topic(name: topic.topic, partitions: topic.partitions.map {
                    OffsetForLeaderEpochResponse.Partition(
                        partitionIndex: $0.partition, errorCode: errorCode(kafka: $0.errorCode), leaderEpoch: LeaderEpoch($0.leaderEpoch),
                        endOffset: Offset($0.endOffset))
                })
            }))
        case .apiVersions, .createTopics, .deleteTopics, .describeConfigs, .createPartitions, .electLeaders, .describeCluster:
            return nil
        }
    }
}
