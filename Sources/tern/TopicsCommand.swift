// `tern topics create|list|describe|delete`: admin requests over the Kafka protocol.
import KafkaClient
import KafkaProtocol
import TernCore

func runTopics(_ arguments: [String]) {
    let options = parseToolOptions(topicsUsage) { () throws(UsageError) in try TopicsOptions(arguments) }
    let admin = KafkaAdminClient(bootstrap: options.bootstrap)
    defer { admin.close() }
    do {
        switch options.command {
        case let .create(topic):
            let results = try admin.createTopics([topic])
            try reportTopicResults(results, verb: "created")
        case .list:
            let metadata = try admin.metadata(topics: nil)
            for name in metadata.topics.map(\.topicName).sorted() { print(name) }
        case let .describe(name):
            let metadata = try admin.metadata(topics: name.map { [$0] })
            if let name, let topic = metadata.topics.first(where: { $0.name == name }), topic.error != .none {
                failOperation("topic '\(name)': \(kafkaErrorName(topic.error))")
            }
            printTopicDescriptions(metadata)
        case let .delete(name):
            let results = try admin.deleteTopics([name])
            try reportTopicResults(results, verb: "deleted")
        }
    } catch {
        failOperation(error.description)
    }
}

private func reportTopicResults(_ results: [TopicOperationResult], verb: String) throws(KafkaClientError) {
    guard !results.isEmpty else { failOperation("the broker answered for no topic") }
    var failed = false
    for result in results {
        if result.succeeded {
            print("\(verb) topic \(result.name)")
        } else {
            printToStandardError("tern: topic '\(result.name)' not \(verb): \(result.errorDescription)")
            failed = true
        }
    }
    if failed { exitWithoutMessage(code: 1) }
}

private func printTopicDescriptions(_ metadata: KafkaWire.MetadataResponse) {
    for topic in metadata.topics.sorted(by: { $0.topicName < $1.topicName }) {
        let replicationFactor = topic.partitions.first?.replicaNodes.count ?? 0
        print("topic \(topic.topicName)  partitions \(topic.partitions.count)  replication-factor \(replicationFactor)"
              + (topic.isInternal ? "  internal" : ""))
        for partition in topic.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) {
            let leader = partition.leaderID.map { String($0.rawValue) } ?? "none"
            let flags = [partition.isrNodes.count < partition.replicaNodes.count ? "under-replicated" : nil,
                         partition.leaderID == nil ? "offline" : nil].compactMap { $0 }
            print("  partition \(partition.partitionIndex)  leader \(leader)  epoch \(partition.leaderEpoch)"
                  + "  replicas \(nodeList(partition.replicaIDs))  isr \(nodeList(partition.isrIDs))"
                  + (flags.isEmpty ? "" : "  " + flags.joined(separator: " ")))
        }
    }
}

func nodeList(_ nodes: [NodeID]) -> String { nodes.isEmpty ? "-" : nodes.map { String($0.rawValue) }.joined(separator: ",") }

