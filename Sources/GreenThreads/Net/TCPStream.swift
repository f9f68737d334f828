import CContext
#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection.
///
/// ```swift
/// let s = try TCPStream.connect(host: "127.0.0.1", port: 8080, timeout: .seconds(5))
/// try s.write(Array("ping".utf8))
/// let reply = try s.read(upTo: 4096)      // [] once the peer closed
/// s.close()
/// ```
/// Nagle's algorithm is off (TCP_NODELAY), as in Go: small writes go out
/// at once.
public final class TCPStream: SocketStream, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: no stored state beyond SocketStream's (see
    // there).
    override init(descriptor: PollDescriptor) {
        _ = gt_setsockopt_int(descriptor.fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        super.init(descriptor: descriptor)
    }

    /// Connects to `host` (a numeric IPv4/IPv6 address, or a name resolved
    /// through getaddrinfo on a blocking thread) at `port`, trying each
    /// resolved address in turn.
    /// - Parameters:
    ///   - host: a numeric IPv4 or IPv6 address, or a host name.
    ///   - port: the TCP port, 0-65535.
    ///   - timeout: for the whole call, resolution included; nil waits as
    ///     long as the kernel does.
    /// - Throws: `NetError` (`.connectionRefused`, `.timedOut`,
    ///   `.badAddress`, `.resolutionFailed`, ...) for the last address
    ///   tried, or `CancellationError`.
    public static func connect(host: String, port: Int, timeout: Duration? = nil) throws -> TCPStream {
        let end = deadline(after: timeout)
        let addresses = try SocketAddress.resolve(host: host, port: port)
        var lastError: (any Error)?
        for address in addresses {
            do {
                return TCPStream(descriptor: try connectSocket(to: address, deadline: end))
            } catch let e as NetError where e.kind != .timedOut {
                lastError = e
            }
        }
        throw lastError ?? NetError(.badAddress, operation: "connect \(host):\(port)")
    }

    /// Connects to one address.
    public static func connect(to address: SocketAddress, timeout: Duration? = nil) throws -> TCPStream {
        guard address.family != .unix else {
            throw NetError(.badAddress, operation: "connect \(address)", detail: "not an IP address; use UnixStream")
        }
        return TCPStream(descriptor: try connectSocket(to: address, deadline: deadline(after: timeout)))
    }

    /// Makes the next `close()` reset the connection (SO_LINGER 0: the peer
    /// gets RST, not FIN). For tests and for abandoning a connection.
    public func setLingerZero() throws {
        try descriptor.beginOperation("setsockopt SO_LINGER")
        defer { descriptor.endOperation() }
        let rc = gt_set_linger_zero(descriptor.fd)
        if rc != 0 { throw NetError(errno: -rc, operation: "setsockopt SO_LINGER") }
    }
}
