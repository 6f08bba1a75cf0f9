// libFuzzer entry point for the Kafka request decoder and the RecordBatch parser: bytes a client
// could send must give a decoded value or a thrown error, never a trap, a leak or an out-of-bounds
// access (AddressSanitizer watches the latter). Built by Fuzz/run; not part of Package.swift.
import KafkaProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = count > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: count)) : []
    fuzzRequestDecoder(bytes)
    fuzzRecordBatch(bytes)
    return 0
}

/// The broker's first look at a frame (size prefix already removed by the runtime).
private func fuzzRequestDecoder(_ bytes: [UInt8]) {
    do {
        let decoded = try decodeKafkaRequest(ArraySlice(bytes))
        checkRoundTrip(decoded)
        // What the broker does next with a decoded request: map it to the data plane's request,
        // whose produced records the leader then validates.
        if case .produce(let request)? = DataRequest(kafka: decoded.body, version: decoded.header.apiVersion) {
            for topic in request.topics {
                for partition in topic.partitions {
                    _ = try? RecordBatch.validateProduce(partition.records, maxMessageBytes: RecordBatch.defaultMaxMessageBytes)
                }
            }
        }
    } catch {
        // Any thrown decode error is the right answer to bad input.
    }
}

/// A decoded request encodes (as a client would send it) to bytes that decode to the same request:
/// the broker's decoder and the tools' encoder agree on every value the decoder accepts. Skipped
/// for an ApiVersions above the supported max, which decodes to a placeholder body on purpose.
private func checkRoundTrip(_ decoded: DecodedKafkaRequest) {
    guard let key = KafkaAPIKey(rawValue: decoded.header.apiKey),
          SupportedAPIVersions.range(of: key).contains(decoded.header.apiVersion) else { return }
    let frame = encodeKafkaRequest(decoded.body, header: decoded.header)
    let again: DecodedKafkaRequest
    do {
        again = try decodeKafkaRequest(frame[4...])
    } catch {
        fatalError("re-encoded \(key) v\(decoded.header.apiVersion) request does not decode: \(error)")
    }
    precondition(again == decoded, "\(key) v\(decoded.header.apiVersion) request changed in a round trip")
}

/// The bytes read as one produced batch, and as a fetched stream of batches.
private func fuzzRecordBatch(_ bytes: [UInt8]) {
    _ = try? RecordBatch.validateProduce(bytes, maxMessageBytes: RecordBatch.defaultMaxMessageBytes)
    var start = 0
    while start < bytes.count, let batch = try? RecordBatch(bytes, at: start) {
        _ = try? batch.records()
        start = batch.range.upperBound
    }
}
