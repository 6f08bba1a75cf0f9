import KafkaProtocol

/// Cuts the bytes read from a connection into Kafka frames (`int32 size | size bytes`).
///
/// A frame's size is checked against the limit as soon as its 4-byte prefix has arrived, before
/// any room is reserved for it, so a broken or hostile peer cannot make the client allocate what
/// a size field claims. The buffer holds at most one partial frame plus one read's worth.
public struct FrameAssembler: Sendable {
    public let maximumFrameBytes: Int
    private var buffer: [UInt8] = []
    private var readIndex = 0

    public init(maximumFrameBytes: Int = KafkaFraming.maximumFrameBytes) {
        precondition(maximumFrameBytes > 0, "the frame limit must be positive")
        self.maximumFrameBytes = maximumFrameBytes
    }

    /// Bytes received but not yet returned as a frame.
    public var bufferedBytes: Int { buffer.count - readIndex }

    public mutating func append<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame without its size prefix, or nil until more bytes arrive.
    public mutating func nextFrame() throws(FrameError) -> [UInt8]? {
        guard bufferedBytes >= 4 else { return nil }
        let size = Int32(bitPattern: UInt32(buffer[readIndex]) << 24 | UInt32(buffer[readIndex + 1]) << 16
                         | UInt32(buffer[readIndex + 2]) << 8 | UInt32(buffer[readIndex + 3]))
        guard size >= 0 else { throw .negativeSize(size) }
        guard Int(size) <= maximumFrameBytes else { throw .tooLarge(sizeBytes: Int(size), maximumBytes: maximumFrameBytes) }
        let frameEnd = readIndex + 4 + Int(size)
        guard buffer.count >= frameEnd else {
            // Checked above, so reserving now is bounded by the limit.
            buffer.reserveCapacity(frameEnd)
            return nil
        }
        let frame = Array(buffer[(readIndex + 4)..<frameEnd])
        readIndex = frameEnd
        compact()
        return frame
    }

    /// Drops consumed bytes once they are most of the buffer, so copying stays linear overall.
    private mutating func compact() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 4 * 1024 * 1024)
            readIndex = 0
        } else if readIndex >= 64 * 1024 && readIndex * 2 >= buffer.count {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
    }
}

public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case negativeSize(Int32)
    case tooLarge(sizeBytes: Int, maximumBytes: Int)

    public var description: String {
        switch self {
        case let .negativeSize(size): return "frame size \(size) is negative"
        case let .tooLarge(size, maximum): return "frame of \(size) bytes is over the \(maximum)-byte limit"
        }
    }
}
