import KafkaProtocol

/// One request and one response of every Kafka API Tern speaks, with every field set to a
/// non-default value that exists in the API's highest generated version, so that a round trip at
/// that version must give the same value back.
enum KafkaWireSamples {
    static let records: [UInt8] = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 31) }

    static let requests: [KafkaRequest] = [
        .produce(.init(transactionalId: "txn-1", acks: -1, timeoutMs: 30_000, topicData: [
            .init(name: "orders", partitionData: [.init(index: 0, records: records), .init(index: 3, records: [])]),
            .init(name: "empty", partitionData: []),
        ])),
        .fetch(.init(clusterId: "cluster-ü", replicaId: -1, maxWaitMs: 500, minBytes: 1, maxBytes: 52_428_800, isolationLevel: 1,
                     sessionId: 0, sessionEpoch: -1, topics: [
            .init(topic: "orders", partitions: [
                .init(partition: 2, currentLeaderEpoch: 9, fetchOffset: 1_234_567_890_123, lastFetchedEpoch: 8,
                      logStartOffset: 100, partitionMaxBytes: 1_048_576),
            ]),
        ], forgottenTopicsData: [.init(topic: "old", partitions: [1, 2])], rackId: "rack-a")),
        .listOffsets(.init(replicaId: -1, isolationLevel: 1, topics: [
            .init(name: "orders", partitions: [.init(partitionIndex: 0, currentLeaderEpoch: 4, timestamp: -1),
                                               .init(partitionIndex: 1, currentLeaderEpoch: -1, timestamp: -2)]),
        ])),
        .metadata(.init(topics: [.init(topicId: .zero, name: "orders"), .init(name: nil)], allowAutoTopicCreation: false,
                        includeTopicAuthorizedOperations: true)),
        .apiVersions(.init(clientSoftwareName: "librdkafka", clientSoftwareVersion: "2.0.2")),
        .createTopics(.init(topics: [
            .init(name: "new", numPartitions: -1, replicationFactor: -1,
                  assignments: [.init(partitionIndex: 0, brokerIds: [1, 2, 3])],
                  configs: [.init(name: "cleanup.policy", value: "compact"), .init(name: "retention.ms", value: nil)]),
        ], timeoutMs: 15_000, validateOnly: true)),
        .deleteTopics(.init(topicNames: ["a", "b"], timeoutMs: 5_000)),
        .deleteRecords(.init(topics: [.init(name: "orders", partitions: [.init(partitionIndex: 0, offset: 120),
                                                                         .init(partitionIndex: 1, offset: -1)])],
                             timeoutMs: 30_000)),
        .initProducerID(.init(transactionalId: "app-7", transactionTimeoutMs: 60_000, producerId: 4_000_000_001, producerEpoch: 3)),
        .offsetForLeaderEpoch(.init(replicaId: 2, topics: [
            .init(topic: "orders", partitions: [.init(partition: 5, currentLeaderEpoch: 12, leaderEpoch: 11)]),
        ])),
        .describeConfigs(.init(resources: [
            .init(resourceType: 2, resourceName: "orders", configurationKeys: ["retention.ms"]),
            .init(resourceType: 4, resourceName: "1", configurationKeys: nil),
        ], includeSynonyms: true, includeDocumentation: true)),
        .alterConfigs(.init(resources: [.init(resourceType: 2, resourceName: "orders", configs: [.init(name: "retention.ms", value: "1000")])],
                            validateOnly: false)),
        .createPartitions(.init(topics: [
            .init(name: "orders", count: 6, assignments: [.init(brokerIds: [1, 2])]),
            .init(name: "other", count: 3, assignments: nil),
        ], timeoutMs: 1_000, validateOnly: true)),
        .electLeaders(.init(electionType: 1, topicPartitions: [.init(topic: "orders", partitions: [0, 1])], timeoutMs: 9_000)),
        .incrementalAlterConfigs(.init(resources: [.init(resourceType: 2, resourceName: "orders", configs: [
            .init(name: "retention.ms", configOperation: 0, value: "1000"), .init(name: "cleanup.policy", configOperation: 1, value: nil),
        ])], validateOnly: true)),
        .alterPartitionReassignments(.init(timeoutMs: 30_000, topics: [
            .init(name: "orders", partitions: [.init(partitionIndex: 0, replicas: [3, 1, 2]), .init(partitionIndex: 1, replicas: nil)]),
        ])),
        .describeCluster(.init(includeClusterAuthorizedOperations: true, endpointType: 2)),
    ]

    static let responses: [KafkaResponse] = [
        .produce(.init(responses: [
            .init(name: "orders", partitionResponses: [
                .init(index: 0, errorCode: 0, baseOffset: 42, logAppendTimeMs: 1_700_000_000_000, logStartOffset: 7,
                      recordErrors: [.init(batchIndex: 1, batchIndexErrorMessage: "bad")], errorMessage: "partly",
                      currentLeader: .init(leaderId: 2, leaderEpoch: 5)),
            ]),
        ], throttleTimeMs: 10, nodeEndpoints: [.init(nodeId: 2, host: "127.0.0.1", port: 19092, rack: "r1")])),
        .fetch(.init(throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses: [
            .init(topic: "orders", partitions: [
                .init(partitionIndex: 0, errorCode: 0, highWatermark: 10, lastStableOffset: 9, logStartOffset: 1,
                      divergingEpoch: .init(epoch: 3, endOffset: 8), currentLeader: .init(leaderId: 1, leaderEpoch: 4),
                      snapshotId: .init(endOffset: 5, epoch: 2),
                      abortedTransactions: [.init(producerId: 77, firstOffset: 3)], preferredReadReplica: -1, records: records),
                .init(partitionIndex: 1, errorCode: 6, highWatermark: -1, abortedTransactions: nil, records: []),
            ]),
        ])),
        .listOffsets(.init(throttleTimeMs: 1, topics: [
            .init(name: "orders", partitions: [.init(partitionIndex: 0, errorCode: 0, timestamp: -1, offset: 1_000, leaderEpoch: 4)]),
        ])),
        .metadata(.init(throttleTimeMs: 0, brokers: [
            .init(nodeId: 1, host: "127.0.0.1", port: 19092, rack: nil),
            .init(nodeId: 2, host: "127.0.0.2", port: 19093, rack: "r2"),
        ], clusterId: "tern-cluster", controllerId: 1, topics: [
            .init(errorCode: 0, name: "orders", topicId: .zero, isInternal: false, partitions: [
                .init(errorCode: 0, partitionIndex: 0, leaderId: 1, leaderEpoch: 3, replicaNodes: [1, 2], isrNodes: [1], offlineReplicas: [2]),
            ], topicAuthorizedOperations: 0),
            .init(errorCode: 3, name: "missing", partitions: []),
        ])),
        .apiVersions(.init(errorCode: 0, apiKeys: SupportedAPIVersions.apiVersionsEntries, throttleTimeMs: 0,
                           supportedFeatures: [.init(name: "metadata.version", minVersion: 1, maxVersion: 20)],
                           finalizedFeaturesEpoch: 5, finalizedFeatures: [.init(name: "metadata.version", maxVersionLevel: 20, minVersionLevel: 20)],
                           zkMigrationReady: true)),
        .createTopics(.init(throttleTimeMs: 0, topics: [
            .init(name: "new", topicId: .zero, errorCode: 0, errorMessage: nil, topicConfigErrorCode: 1, numPartitions: 3, replicationFactor: 2,
                  configs: [.init(name: "cleanup.policy", value: "delete", readOnly: false, configSource: 5, isSensitive: false)]),
        ])),
        .deleteTopics(.init(throttleTimeMs: 0, responses: [.init(name: "a", errorCode: 0), .init(name: "b", errorCode: 3)])),
        .deleteRecords(.init(throttleTimeMs: 0, topics: [.init(name: "orders", partitions: [
            .init(partitionIndex: 0, lowWatermark: 120, errorCode: 0), .init(partitionIndex: 1, lowWatermark: -1, errorCode: 1),
        ])])),
        .initProducerID(.init(throttleTimeMs: 0, errorCode: 0, producerId: 1_000, producerEpoch: 0)),
        .offsetForLeaderEpoch(.init(throttleTimeMs: 0, topics: [
            .init(topic: "orders", partitions: [.init(errorCode: 0, partition: 5, leaderEpoch: 11, endOffset: 900)]),
        ])),
        .describeConfigs(.init(throttleTimeMs: 0, results: [
            .init(errorCode: 0, errorMessage: nil, resourceType: 2, resourceName: "orders", configs: [
                .init(name: "retention.ms", value: "604800000", readOnly: false, configSource: 5, isSensitive: false,
                      synonyms: [.init(name: "log.retention.ms", value: nil, source: 4)], configType: 5, documentation: nil),
            ]),
        ])),
        .alterConfigs(.init(throttleTimeMs: 0, responses: [.init(errorCode: 0, errorMessage: nil, resourceType: 2, resourceName: "orders")])),
        .createPartitions(.init(throttleTimeMs: 0, results: [.init(name: "orders", errorCode: 37, errorMessage: "too few")])),
        .electLeaders(.init(throttleTimeMs: 0, errorCode: 0, replicaElectionResults: [
            .init(topic: "orders", partitionResult: [.init(partitionId: 0, errorCode: 84, errorMessage: nil)]),
        ])),
        .incrementalAlterConfigs(.init(throttleTimeMs: 0, responses: [
            .init(errorCode: 40, errorMessage: "segment.bytes: too small", resourceType: 2, resourceName: "orders"),
        ])),
        .alterPartitionReassignments(.init(throttleTimeMs: 0, errorCode: 0, errorMessage: nil, responses: [
            .init(name: "orders", partitions: [.init(partitionIndex: 0, errorCode: 0, errorMessage: nil),
                                               .init(partitionIndex: 1, errorCode: 85, errorMessage: "no reassignment in progress")]),
        ])),
        .describeCluster(.init(throttleTimeMs: 0, errorCode: 0, errorMessage: nil, endpointType: 1, clusterId: "tern-cluster", controllerId: 1,
                               brokers: [.init(brokerId: 1, host: "127.0.0.1", port: 19092, rack: nil)], clusterAuthorizedOperations: 0)),
    ]
}
