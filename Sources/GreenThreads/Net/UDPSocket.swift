import CContext
#if canImport(Glibc)
import Glibc
#endif

/// A UDP socket: datagrams to and from any address.
///
/// ```swift
/// let a = try UDPSocket(host: "127.0.0.1", port: 0)
/// let b = try UDPSocket(host: "127.0.0.1", port: 0)
/// try a.send(Array("ping".utf8), to: b.localAddress)
/// let (bytes, from) = try b.receive()        // parks until a datagram arrives
/// ```
public final class UDPSocket: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: both fields are immutable (PollDescriptor
    // guards its own state).
    let descriptor: PollDescriptor
    /// The address bound (its port is the one picked for port 0).
    public let localAddress: SocketAddress

    /// Binds to `host` (numeric, or a name resolved through getaddrinfo)
    /// at `port` (0: any free port).
    /// - Throws: `NetError` `.addressInUse`, `.badAddress`, ...
    public init(host: String, port: Int) throws {
        let address = try SocketAddress.resolveIP(host: host, port: port, operation: "bind")
        var raw = address.raw
        let fd = try makeSocket(family: Int32(gt_sockaddr_family(&raw)), type: Int32(SOCK_DGRAM.rawValue),
                                operation: "bind \(address)")
        let rc = gt_bind(fd, &raw)
        if rc != 0 {
            _ = gt_close(fd)
            throw NetError(errno: -rc, operation: "bind \(address)")
        }
        descriptor = PollDescriptor(fd: fd)
        localAddress = SocketAddress.local(of: fd)
    }

    deinit {
        descriptor.close()
    }

    /// The port bound.
    public var port: Int { localAddress.port }

    /// Sends one datagram to `address`.
    /// - Throws: `NetError` (`.badAddress` for a wrong family, EMSGSIZE as
    ///   `.other` for a datagram too large, `.closed`, `.timedOut`).
    public func send(_ bytes: [UInt8], to address: SocketAddress, timeout: Duration? = nil) throws {
        var to = address.raw
        let fd = descriptor.fd
        _ = try bytes.withUnsafeBytes { buffer in
            try descriptor.perform(.write, deadline: deadline(after: timeout), operation: "send to \(address)") {
                gt_sendto(fd, buffer.baseAddress, buffer.count, &to)
            }
        }
    }

    /// Receives one datagram (truncated to `maxLength` bytes), parking
    /// until one arrives.
    public func receive(upTo maxLength: Int = 65536, timeout: Duration? = nil) throws -> (bytes: [UInt8], from: SocketAddress) {
        precondition(maxLength > 0, "GreenThreads: receive(upTo:) needs a positive length (got \(maxLength))")
        var from = gt_sockaddr()
        let fd = descriptor.fd
        let bytes = try [UInt8](unsafeUninitializedCapacity: maxLength) { buffer, count in
            count = try descriptor.perform(.read, deadline: deadline(after: timeout), operation: "receive") {
                gt_recvfrom(fd, buffer.baseAddress, maxLength, &from)
            }
        }
        return (bytes, SocketAddress(raw: from))
    }

    /// Closes the socket; parked calls wake and throw `NetError` `.closed`.
    /// Idempotent; deinit also closes.
    public func close() {
        descriptor.close()
    }
}
