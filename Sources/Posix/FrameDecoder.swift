/// Cuts the bytes read from a connection into Kafka-style frames (`int32 size | size bytes`), for
/// both shells: the node host's connections and the tools' client.
///
/// A frame's size is checked against the limit as soon as its 4-byte prefix has arrived, before
/// any room is reserved for it, so a broken or hostile peer cannot make the reader allocate what a
/// size field claims. Bytes are read from the socket straight into the buffer's free tail; the
/// buffer holds at most one partial frame plus one read's worth beyond what was handed out.
public final class FrameDecoder {
    public let maximumFrameBytes: Int
    private let buffer = ByteBuffer()

    public init(maximumFrameBytes: Int) {
        precondition(maximumFrameBytes >= 0 && maximumFrameBytes <= Int(Int32.max), "frame sizes are int32")
        self.maximumFrameBytes = maximumFrameBytes
    }

    /// Bytes received but not yet handed out as a frame.
    public var bufferedBytes: Int { buffer.readableCount }

    /// Lets `body` read up to `count` bytes into the free tail; returns how many it read.
    public func read(upTo count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        buffer.write(upTo: count, body)
    }

    public func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(bytes)
    }

    public func append(_ bytes: [UInt8]) {
        buffer.append(bytes)
    }

    /// The next whole frame without its size prefix, or nil until more bytes arrive.
    public func nextFrame() throws(FrameError) -> [UInt8]? {
        guard buffer.readableCount >= 4 else { return nil }
        let size = buffer.readableInt32BigEndian()
        guard size >= 0 else { throw .negativeSize(size) }
        guard Int(size) <= maximumFrameBytes else { throw .tooLarge(sizeBytes: Int(size), maximumBytes: maximumFrameBytes) }
        guard buffer.readableCount >= 4 + Int(size) else { return nil }
        let frame = buffer.readableArray(from: 4, count: Int(size))
        buffer.consume(4 + Int(size))
        return frame
    }
}

public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case negativeSize(Int32)
    case tooLarge(sizeBytes: Int, maximumBytes: Int)

    /// The size field as it arrived.
    public var sizeField: Int32 {
        switch self {
        case let .negativeSize(size): size
        case let .tooLarge(size, _): Int32(clamping: size)
        }
    }

    public var description: String {
        switch self {
        case let .negativeSize(size): return "frame size \(size) is negative"
        case let .tooLarge(size, maximum): return "frame of \(size) bytes is over the \(maximum)-byte limit"
        }
    }
}
