import CContext
#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket.
///
/// ```swift
/// let listener = try TCPListener(host: "127.0.0.1", port: 0)   // any free port
/// print(listener.port)
/// while true {
///     let conn = try listener.accept()                          // parks, not the worker
///     go { try echo(conn) }
/// }
/// ```
/// `SO_REUSEADDR` is set, so a restarted server can bind the port its
/// predecessor's connections still hold in TIME_WAIT.
public final class TCPListener: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: both fields are immutable (PollDescriptor
    // guards its own state).
    let descriptor: PollDescriptor
    /// The address actually bound (its port is the one picked for port 0).
    public let localAddress: SocketAddress

    /// Binds and listens on `host` ("127.0.0.1", "::1", "0.0.0.0", "::",
    /// or a name, resolved through getaddrinfo) at `port` (0: any free
    /// port).
    /// - Throws: `NetError` `.addressInUse`, `.badAddress`,
    ///   `.addressNotAvailable`, `.resolutionFailed`, ...
    public init(host: String, port: Int, backlog: Int = 1024) throws {
        let address = try SocketAddress.resolveIP(host: host, port: port, operation: "listen")
        let fd = try listenSocket(at: address, backlog: backlog, reuseAddress: true)
        descriptor = PollDescriptor(fd: fd)
        localAddress = SocketAddress.local(of: fd)
    }

    deinit {
        descriptor.close()
    }

    /// The port bound.
    public var port: Int { localAddress.port }

    /// The listening socket's file descriptor (owned by this object).
    public var fileDescriptor: Int32 { descriptor.fd }

    /// Waits for the next connection; parks the green thread meanwhile.
    /// A queued connection that failed before it was taken (aborted by its
    /// peer, or carrying a network error) is skipped, not reported: the
    /// listener is fine, and the next connection is accepted instead.
    /// - Throws: `NetError` (`.tooManyOpenFiles` when the process is out of
    ///   fds: the connection stays queued and a later `accept` can take it;
    ///   `.closed`; `.timedOut`) or `CancellationError`.
    public func accept(timeout: Duration? = nil) throws -> TCPStream {
        let (fd, _) = try acceptConnection(on: descriptor, timeout: timeout)
        return TCPStream(descriptor: PollDescriptor(fd: fd))
    }

    /// Stops listening. A green thread parked in `accept` wakes and throws
    /// `NetError` `.closed`. Idempotent; deinit also closes.
    public func close() {
        descriptor.close()
    }
}
