import TernCore

// Tern's typed identifiers over the generated Metadata structs, for the code that reads them
// (clients and tools). Kafka's wire uses -1 for "no node"; a negative id is never a node.

private func node(_ raw: Int32) -> NodeID? { raw >= 0 ? NodeID(raw) : nil }

extension KafkaWire.MetadataResponse {
    public var controllerID: NodeID? { node(controllerId) }
}

extension KafkaWire.MetadataResponse.MetadataResponseBroker {
    public var nodeID: NodeID { NodeID(nodeId) }
}

extension KafkaWire.MetadataResponse.MetadataResponseTopic {
    /// Topics are named in every answer Tern gives (it offers clients no topic ids).
    public var topicName: String { name ?? "" }
    public var error: KafkaErrorCode { KafkaErrorCode(wire: errorCode) }
}

extension KafkaWire.MetadataResponse.MetadataResponsePartition {
    public var leaderID: NodeID? { KafkaErrorCode(wire: errorCode) == .leaderNotAvailable ? nil : node(leaderId) }
    public var replicaIDs: [NodeID] { replicaNodes.compactMap(node) }
    public var isrIDs: [NodeID] { isrNodes.compactMap(node) }
}
