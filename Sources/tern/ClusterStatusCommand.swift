// `tern cluster status`: the controller, the brokers, and the partitions that need attention,
// from one Metadata answer (plus DescribeCluster when the broker offers it).
import KafkaClient
import KafkaProtocol
import TernCore

func runClusterStatus(_ arguments: [String]) {
    let options = parseToolOptions(clusterStatusUsage) { () throws(UsageError) in try ClusterStatusOptions(arguments) }
    let admin = KafkaAdminClient(bootstrap: options.bootstrap)
    defer { admin.close() }
    let cluster: ClusterDescription
    let metadata: KafkaWire.MetadataResponse
    do {
        cluster = try admin.describeCluster()
        metadata = try admin.metadata(topics: nil)
    } catch {
        failOperation(error.description)
    }
    let liveBrokers = Set(cluster.brokers.map(\.nodeID)).union(metadata.brokers.map(\.nodeID))
    print("cluster id         \(cluster.clusterID ?? metadata.clusterId ?? "unknown")")
    let controller = cluster.controllerID ?? metadata.controllerID
    print("active controller  \(controller.map { String($0.rawValue) } ?? "none known")"
          + (cluster.source == .describeCluster ? "" : " (from Metadata)"))

    // Kafka lists only live (unfenced) brokers; a broker named as a replica but not listed is
    // fenced or down.
    var replicaNodes = Set<NodeID>()
    for partition in metadata.topics.flatMap(\.partitions) { replicaNodes.formUnion(partition.replicaIDs) }
    let brokers = (cluster.brokers.count >= metadata.brokers.count ? cluster.brokers : metadata.brokers).sorted { $0.nodeID < $1.nodeID }
    print("brokers            \(brokers.count) live")
    for broker in brokers {
        let address = BrokerAddress(host: broker.host, port: UInt16(clamping: broker.port))
        print("  broker \(broker.nodeID)  \(address)  live" + (broker.nodeID == controller ? "  (controller)" : "")
              + (broker.rack.map { "  rack \($0)" } ?? ""))
    }
    for node in replicaNodes.subtracting(liveBrokers).sorted() {
        print("  broker \(node)  -  not live (hosts replicas, absent from Metadata: fenced or down)")
    }

    var partitionCount = 0
    var underReplicated: [String] = []
    var offline: [String] = []
    for topic in metadata.topics.sorted(by: { $0.topicName < $1.topicName }) {
        for partition in topic.partitions.sorted(by: { $0.partitionIndex < $1.partitionIndex }) {
            partitionCount += 1
            let name = "\(topic.topicName)-\(partition.partitionIndex)"
            if partition.leaderID == nil {
                offline.append("\(name)  replicas \(nodeList(partition.replicaIDs))  isr \(nodeList(partition.isrIDs))")
            } else if partition.isrNodes.count < partition.replicaNodes.count {
                underReplicated.append("\(name)  leader \(partition.leaderID!)  replicas \(nodeList(partition.replicaIDs))"
                                       + "  isr \(nodeList(partition.isrIDs))")
            }
        }
    }
    print("topics             \(metadata.topics.count) (\(partitionCount) partitions)")
    print("under-replicated   \(underReplicated.count)")
    for line in underReplicated { print("  \(line)") }
    print("offline            \(offline.count)")
    for line in offline { print("  \(line)") }
}
