import TernCore

extension MetadataImage {
    /// Version of `canonicalEncoding()`; bump it whenever the layout changes.
    public static let canonicalEncodingVersion: UInt32 = 1

    /// The image as bytes that depend only on its content: brokers by id, topics by name,
    /// partitions by index, configuration by resource then name. Two nodes that applied the same
    /// records up to the same offset produce the same bytes, whatever order their dictionaries
    /// hold things in.
    public func canonicalEncoding() -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        writer.writeUnsignedVarint(Self.canonicalEncodingVersion)
        writer.writeInt64(offset.rawValue)
        writer.writeInt64(highestBrokerEpoch.rawValue)
        writer.writeInt64(nextProducerID.rawValue)
        writer.writeList(brokers) { writer, broker in broker.encodeCanonically(into: &writer) }
        writer.writeList(topics) { writer, topic in topic.encodeCanonically(into: &writer) }
        writer.writeList(configuredResources) { writer, resource in
            resource.encode(into: &writer)
            writer.writeList(configs(for: resource)) { writer, entry in entry.encode(into: &writer) }
        }
        return writer.take()
    }

    /// A 64-bit FNV-1a digest of `canonicalEncoding()`: equal images have equal digests in every
    /// process (unlike `hashValue`, which Swift seeds per process).
    public var digest: UInt64 { stableDigest(canonicalEncoding()) }
}

extension BrokerRegistration {
    func encodeCanonically(into writer: inout ByteWriter) {
        BrokerRegistrationRecord(brokerID: brokerID, brokerEpoch: brokerEpoch, incarnationID: incarnationID,
                                 endpoints: endpoints, rack: rack).encode(into: &writer)
        writer.writeBool(isFenced)
        writer.writeBool(inControlledShutdown)
        writer.writeInt64(registeredAtOffset.rawValue)
        writer.writeInt64(controlledShutdownOffset?.rawValue ?? -1)
    }
}

extension TopicImage {
    func encodeCanonically(into writer: inout ByteWriter) {
        TopicRecord(name: name, topicID: topicID, configs: configs).encode(into: &writer)
        writer.writeList(partitions) { writer, partition in
            writer.writeNodeIDs(partition.replicas)
            writer.writeNodeIDs(partition.isr)
            writer.writeOptionalNodeID(partition.leader)
            writer.writeInt32(partition.leaderEpoch.rawValue)
            writer.writeInt32(partition.partitionEpoch.rawValue)
            writer.writeNodeIDs(partition.addingReplicas)
            writer.writeNodeIDs(partition.removingReplicas)
            writer.writeList(partition.dataLoss) { writer, loss in loss.encode(into: &writer) }
        }
    }
}
