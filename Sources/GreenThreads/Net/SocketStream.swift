import CContext
#if canImport(Glibc)
import Glibc
#endif

/// A connected byte stream (TCP or Unix-domain): what `TCPStream` and
/// `UnixStream` share.
///
/// Every call parks the calling green thread while the socket is not ready
/// (its worker runs other green threads); on a plain OS thread it blocks
/// the thread. One reader and one writer may use a stream at once, from
/// different green threads (like Go's `net.Conn`); whole `write`s from
/// several writers do not interleave.
///
/// `timeout:` on each call is a deadline for that whole call; nil waits as
/// long as it takes. Expiry throws `NetError` `.timedOut`; the stream stays
/// usable. Cancelling the green thread (`JoinHandle.cancel`) ends a parked
/// call with `CancellationError`.
public class SocketStream: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: both fields are immutable references to
    // objects that guard their own state (PollDescriptor, GreenMutex).
    // Unchecked only because the class is open to subclasses (TCPStream,
    // UnixStream), which add no stored state.
    let descriptor: PollDescriptor
    /// Serializes whole writes (a partial write parks mid-way).
    private let writeLock = GreenMutex()

    init(descriptor: PollDescriptor) {
        self.descriptor = descriptor
    }

    deinit {
        descriptor.close()
    }

    /// The socket's file descriptor (owned by this object: do not close it).
    public var fileDescriptor: Int32 { descriptor.fd }

    // MARK: Reading

    /// Reads what is available, up to `buffer.count` bytes, parking until at
    /// least one byte (or the end of the stream) arrives.
    /// - Returns: the count read; 0 at the end of the stream (or for an
    ///   empty buffer).
    /// - Throws: `NetError` (`.connectionReset`, `.timedOut`, `.closed`, ...)
    ///   or `CancellationError`.
    public func read(into buffer: UnsafeMutableRawBufferPointer, timeout: Duration? = nil) throws -> Int {
        if buffer.isEmpty { return 0 }
        let fd = descriptor.fd
        return try descriptor.performStreamRead(capacity: buffer.count, deadline: deadline(after: timeout), operation: "read") {
            gt_read(fd, buffer.baseAddress, buffer.count)
        }
    }

    /// Reads up to `buffer.count` bytes into `buffer` (its count is left
    /// unchanged). Returns the count read; 0 at the end of the stream.
    public func read(into buffer: inout [UInt8], timeout: Duration? = nil) throws -> Int {
        try buffer.withUnsafeMutableBytes { try read(into: $0, timeout: timeout) }
    }

    /// Reads what is available, up to `maxLength` bytes.
    /// - Returns: the bytes; `[]` at the end of the stream.
    public func read(upTo maxLength: Int, timeout: Duration? = nil) throws -> [UInt8] {
        precondition(maxLength > 0, "GreenThreads: read(upTo:) needs a positive length (got \(maxLength))")
        return try [UInt8](unsafeUninitializedCapacity: maxLength) { buffer, count in
            count = try read(into: UnsafeMutableRawBufferPointer(buffer), timeout: timeout)
        }
    }

    /// Reads exactly `count` bytes.
    /// - Throws: `NetError` `.unexpectedEOF` if the stream ends first (the
    ///   bytes read so far are lost with it), or any `read` error.
    public func readExactly(_ count: Int, timeout: Duration? = nil) throws -> [UInt8] {
        precondition(count >= 0, "GreenThreads: readExactly needs a count >= 0 (got \(count))")
        let end = deadline(after: timeout)
        let fd = descriptor.fd
        return try [UInt8](unsafeUninitializedCapacity: count) { buffer, filled in
            while filled < count {
                let n = try descriptor.performStreamRead(capacity: count - filled, deadline: end, operation: "read") {
                    gt_read(fd, buffer.baseAddress! + filled, count - filled)
                }
                if n == 0 { throw NetError(.unexpectedEOF, operation: "readExactly(\(count)) after \(filled) bytes") }
                filled += n
            }
        }
    }

    // MARK: Writing

    /// Writes all of `buffer`, parking whenever the socket's send buffer is
    /// full.
    /// - Throws: `NetError` (`.brokenPipe`, `.connectionReset`, `.timedOut`,
    ///   `.closed`) or `CancellationError`; some bytes may have been sent.
    public func write(_ buffer: UnsafeRawBufferPointer, timeout: Duration? = nil) throws {
        let end = deadline(after: timeout)
        try writeLock.withLock {
            var sent = 0
            while sent < buffer.count {
                sent += try writeSome(UnsafeRawBufferPointer(rebasing: buffer[sent...]), deadline: end)
            }
        }
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: [UInt8], timeout: Duration? = nil) throws {
        try bytes.withUnsafeBytes { try write($0, timeout: timeout) }
    }

    /// Writes the UTF-8 bytes of `string`.
    public func write(_ string: String, timeout: Duration? = nil) throws {
        var s = string
        try s.withUTF8 { try write(UnsafeRawBufferPointer($0), timeout: timeout) }
    }

    /// One write: as many bytes of `buffer` as the socket takes now
    /// (parking until it takes at least one). Returns the count.
    public func writeSome(_ buffer: UnsafeRawBufferPointer, timeout: Duration? = nil) throws -> Int {
        try writeSome(buffer, deadline: deadline(after: timeout))
    }

    private func writeSome(_ buffer: UnsafeRawBufferPointer, deadline: Int64?) throws -> Int {
        if buffer.isEmpty { return 0 }
        let fd = descriptor.fd
        return try descriptor.perform(.write, deadline: deadline, operation: "write") {
            gt_write(fd, buffer.baseAddress, buffer.count)
        }
    }

    // MARK: Ending

    /// Which half of a stream `shutdown` ends.
    public enum ShutdownDirection: Sendable {
        /// No more reads (further reads return end of stream).
        case read
        /// Sends FIN: the peer reads end of stream; this side can still read.
        case write
        /// Both.
        case both
    }

    /// Half-closes the stream (`shutdown(2)`); the fd stays open until
    /// `close()`.
    public func shutdown(_ direction: ShutdownDirection) throws {
        try descriptor.beginOperation("shutdown")
        defer { descriptor.endOperation() }
        let how: Int32
        switch direction {
        case .read: how = Int32(SHUT_RD)
        case .write: how = Int32(SHUT_WR)
        case .both: how = Int32(SHUT_RDWR)
        }
        let rc = gt_shutdown(descriptor.fd, how)
        if rc != 0 { throw NetError(errno: -rc, operation: "shutdown") }
    }

    /// Closes the stream. Green threads parked in a call on it wake and
    /// throw `NetError` `.closed`; so does every later call. The fd itself
    /// is closed once no call is inside it. Idempotent; deinit also closes.
    public func close() {
        descriptor.close()
    }

    /// Whether `close()` was called.
    public var isClosed: Bool { descriptor.isClosed }

    /// The local address.
    public var localAddress: SocketAddress {
        get throws {
            try descriptor.beginOperation("getsockname")
            defer { descriptor.endOperation() }
            var a = gt_sockaddr()
            let rc = gt_local_address(descriptor.fd, &a)
            if rc != 0 { throw NetError(errno: -rc, operation: "getsockname") }
            return SocketAddress(raw: a)
        }
    }

    /// The peer's address.
    public var peerAddress: SocketAddress {
        get throws {
            try descriptor.beginOperation("getpeername")
            defer { descriptor.endOperation() }
            var a = gt_sockaddr()
            let rc = gt_peer_address(descriptor.fd, &a)
            if rc != 0 { throw NetError(errno: -rc, operation: "getpeername") }
            return SocketAddress(raw: a)
        }
    }
}
