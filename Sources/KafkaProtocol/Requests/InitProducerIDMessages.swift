import TernCore

/// Kafka's InitProducerId request (API key 22): a producer id and epoch for an idempotent or
/// transactional producer, or an epoch bump for one that already has them (KIP-360).
public struct InitProducerIDRequest: Equatable, Sendable {
    /// nil for an idempotent producer.
    public var transactionalID: String?
    /// Kafka sends -1 from idempotent producers.
    public var transactionTimeoutMilliseconds: Int32
    /// The producer's current id and epoch when it asks for a bump; `.none` for a new producer.
    public var producerID: ProducerID
    public var producerEpoch: ProducerEpoch

    public init(transactionalID: String? = nil, transactionTimeoutMilliseconds: Int32,
                producerID: ProducerID = .none, producerEpoch: ProducerEpoch = .none) {
        self.transactionalID = transactionalID
        self.transactionTimeoutMilliseconds = transactionTimeoutMilliseconds
        self.producerID = producerID
        self.producerEpoch = producerEpoch
    }
}

/// Kafka's InitProducerId response.
public struct InitProducerIDResponse: Equatable, Sendable {
    public var errorCode: KafkaErrorCode
    public var producerID: ProducerID
    public var producerEpoch: ProducerEpoch

    public init(errorCode: KafkaErrorCode = .none, producerID: ProducerID = .none, producerEpoch: ProducerEpoch = .none) {
        self.errorCode = errorCode
        self.producerID = producerID
        self.producerEpoch = producerEpoch
    }
}

// MARK: - Codec

extension InitProducerIDRequest: DataCodable {
    static let minimumEncodedBytes = 1 + 4 + 8 + 2

    func encode(into writer: inout ByteWriter) {
        writer.writeOptionalDataString(transactionalID)
        writer.writeInt32(transactionTimeoutMilliseconds)
        writer.writeInt64(producerID.rawValue)
        writer.writeInt16(producerEpoch.rawValue)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        transactionalID = try reader.readOptionalString()
        transactionTimeoutMilliseconds = try reader.readInt32()
        producerID = ProducerID(try reader.readInt64())
        producerEpoch = ProducerEpoch(try reader.readInt16())
    }
}

extension InitProducerIDResponse: DataCodable {
    static let minimumEncodedBytes = 2 + 8 + 2

    func encode(into writer: inout ByteWriter) {
        writer.writeErrorCode(errorCode)
        writer.writeInt64(producerID.rawValue)
        writer.writeInt16(producerEpoch.rawValue)
    }

    init(decoding reader: inout DataMessageReader) throws(DecodeError) {
        errorCode = try reader.readErrorCode()
        producerID = ProducerID(try reader.readInt64())
        producerEpoch = ProducerEpoch(try reader.readInt16())
    }
}
