import CContext
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4, IPv6 or Unix-domain socket address.
///
/// ```swift
/// let a = try SocketAddress(host: "::1", port: 8080)     // numeric only, no lookup
/// let all = try SocketAddress.resolve(host: "localhost", port: 80)  // getaddrinfo
/// ```
public struct SocketAddress: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The address family.
    public enum Family: Sendable, Equatable {
        case ipv4, ipv6, unix
    }

    var raw: gt_sockaddr

    init(raw: gt_sockaddr) {
        self.raw = raw
    }

    /// A numeric IPv4 ("127.0.0.1") or IPv6 ("::1" or "[::1]") address.
    /// - Throws: `NetError` `.badAddress` if `host` is not numeric or
    ///   `port` is outside 0...65535. Use `resolve` for names.
    public init(host: String, port: Int) throws(NetError) {
        var a = gt_sockaddr()
        let rc = host.withCString { gt_sockaddr_from_numeric($0, Int32(clamping: port), &a) }
        if rc != 0 {
            let why = (0...65535).contains(port) ? "not a numeric IP address" : "port out of range"
            throw NetError(.badAddress, errno: -rc, operation: "address \(host):\(port)", detail: why)
        }
        raw = a
    }

    /// A Unix-domain socket path.
    /// - Throws: `NetError` `.badAddress` if the path is empty or too long
    ///   (108 bytes on Linux).
    public init(unixPath path: String) throws(NetError) {
        var a = gt_sockaddr()
        let rc = path.withCString { gt_sockaddr_from_path($0, &a) }
        if rc != 0 {
            throw NetError(.badAddress, errno: -rc, operation: "unix address \(path)",
                           detail: path.isEmpty ? "empty path" : "path too long")
        }
        raw = a
    }

    /// The first IPv4 or IPv6 address `host` resolves to, for a socket to
    /// bind; a Unix path is a `.badAddress` for `operation`.
    static func resolveIP(host: String, port: Int, operation: String) throws -> SocketAddress {
        let address = try resolve(host: host, port: port)[0]
        guard address.family != .unix else {
            throw NetError(.badAddress, operation: "\(operation) \(host)", detail: "not an IP address")
        }
        return address
    }

    /// The address socket `fd` is bound to.
    static func local(of fd: Int32) -> SocketAddress {
        var bound = gt_sockaddr()
        _ = gt_local_address(fd, &bound)
        return SocketAddress(raw: bound)
    }

    /// Every address `host` resolves to (numeric hosts without a lookup).
    /// Names go through getaddrinfo inside `GreenThread.blocking`, so a slow
    /// resolver parks only the calling green thread.
    public static func resolve(host: String, port: Int) throws(NetError) -> [SocketAddress] {
        if let numeric = try? SocketAddress(host: host, port: port) { return [numeric] }
        guard (0...65535).contains(port) else {
            throw NetError(.badAddress, operation: "resolve \(host):\(port)", detail: "port out of range")
        }
        if host.isEmpty { throw NetError(.badAddress, operation: "resolve", detail: "empty host") }
        let capacity = 16
        let (n, addresses) = GreenThread.blocking { () -> (Int32, [gt_sockaddr]) in
            var out = [gt_sockaddr](repeating: gt_sockaddr(), count: capacity)
            let n = host.withCString { gt_resolve($0, Int32(port), Int32(SOCK_STREAM.rawValue), &out, Int32(capacity)) }
            return (n, out)
        }
        if n < 0 {
            let code = -n
            if code > GT_EAI_BASE {
                throw NetError(.resolutionFailed, operation: "resolve \(host)",
                               detail: String(cString: gt_resolve_error(code)))
            }
            throw NetError(.resolutionFailed, errno: code, operation: "resolve \(host)")
        }
        if n == 0 { throw NetError(.resolutionFailed, operation: "resolve \(host)", detail: "no addresses") }
        return addresses.prefix(Int(n)).map { SocketAddress(raw: $0) }
    }

    public var family: Family {
        switch withUnsafePointer(to: raw, { Int32(gt_sockaddr_family($0)) }) {
        case AF_INET: return .ipv4
        case AF_INET6: return .ipv6
        default: return .unix
        }
    }

    /// The port; 0 for a Unix address.
    public var port: Int {
        max(0, Int(withUnsafePointer(to: raw) { gt_sockaddr_port($0) }))
    }

    /// The numeric host ("127.0.0.1", "::1"), or a Unix socket's path.
    public var host: String {
        var a = raw
        var buf = [CChar](repeating: 0, count: 128)
        if gt_sockaddr_host(&a, &buf, buf.count) != 0 { return "?" }
        return String(decoding: buf.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String {
        switch family {
        case .ipv4: return "\(host):\(port)"
        case .ipv6: return "[\(host)]:\(port)"
        case .unix: return host
        }
    }

    var bytes: [UInt8] {
        withUnsafeBytes(of: raw.storage) { Array($0.prefix(Int(raw.length))) }
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool { a.bytes == b.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
