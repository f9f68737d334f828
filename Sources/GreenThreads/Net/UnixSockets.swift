import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A listening Unix-domain stream socket at a filesystem path.
///
/// The socket file is created by `init` and removed by `close()` (as Go's
/// `net.UnixListener` does); a path that already exists is `.addressInUse`.
public final class UnixListener: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `descriptor` and `path` are immutable
    // (PollDescriptor guards its own state) and `unlinked` is atomic.
    let descriptor: PollDescriptor
    /// The socket's path.
    public let path: String
    private let unlinked = Atomic<Bool>(false)

    /// Binds and listens at `path`.
    /// - Throws: `NetError` `.addressInUse` (the path exists), `.badAddress`
    ///   (empty or longer than 107 bytes), or another errno.
    public init(path: String, backlog: Int = 1024) throws {
        let address = try SocketAddress(unixPath: path)
        descriptor = PollDescriptor(fd: try listenSocket(at: address, backlog: backlog, reuseAddress: false))
        self.path = path
    }

    deinit {
        close()
    }

    /// Waits for the next connection; parks the green thread meanwhile.
    public func accept(timeout: Duration? = nil) throws -> UnixStream {
        let (fd, _) = try acceptConnection(on: descriptor, timeout: timeout)
        return UnixStream(descriptor: PollDescriptor(fd: fd))
    }

    /// Stops listening and removes the socket file. Idempotent.
    public func close() {
        descriptor.close()
        if !unlinked.exchange(true, ordering: .relaxed) { _ = path.withCString { unlink($0) } }
    }
}

/// A connected Unix-domain stream socket.
public final class UnixStream: SocketStream, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: no stored state beyond SocketStream's (see
    // there).

    /// Connects to the listener at `path`.
    /// - Throws: `NetError` (`.connectionRefused` if nobody listens there,
    ///   ENOENT as `.other` if the path does not exist, `.badAddress`).
    public static func connect(path: String, timeout: Duration? = nil) throws -> UnixStream {
        let address = try SocketAddress(unixPath: path)
        return UnixStream(descriptor: try connectSocket(to: address, deadline: deadline(after: timeout)))
    }
}
