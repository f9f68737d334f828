import GreenThreads

/// A socket as a `ByteSource`, with an optional deadline per read (a
/// keep-alive connection that stays idle that long is dropped).
public struct StreamSource: ByteSource {
    public let stream: SocketStream
    public let timeout: Duration?

    public init(_ stream: SocketStream, timeout: Duration? = nil) {
        self.stream = stream
        self.timeout = timeout
    }

    public func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try stream.read(into: buffer, timeout: timeout)
    }
}
