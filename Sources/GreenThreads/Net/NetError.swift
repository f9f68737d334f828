import CContext
#if canImport(Glibc)
import Glibc
#endif

/// A failed socket or fd operation: what went wrong, the operation, and the
/// errno the kernel reported (0 when the failure is not the kernel's, such
/// as a read on a stream that was closed).
///
/// ```swift
/// do { _ = try TCPStream.connect(host: "127.0.0.1", port: 1) }
/// catch let e as NetError where e.kind == .connectionRefused { ... }
/// ```
public struct NetError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The cases a caller usually wants to tell apart; everything else is
    /// `.other` (see `errno`).
    public enum Kind: Sendable, Equatable {
        /// ECONNREFUSED: nobody listens at that address.
        case connectionRefused
        /// EADDRINUSE: the address (port) is taken.
        case addressInUse
        /// EADDRNOTAVAIL: no local interface has that address.
        case addressNotAvailable
        /// ECONNRESET: the peer reset the connection (RST).
        case connectionReset
        /// EPIPE: writing after the connection was shut down.
        case brokenPipe
        /// The call's deadline passed first (ETIMEDOUT for connect).
        case timedOut
        /// The socket was closed (by `close()`, possibly while this call
        /// was parked on it).
        case closed
        /// A host that is neither a numeric address nor a resolvable name,
        /// a port out of range, or a path too long for a Unix socket.
        case badAddress
        /// Name resolution (getaddrinfo) failed.
        case resolutionFailed
        /// EMFILE/ENFILE: the process (or system) is out of file descriptors.
        case tooManyOpenFiles
        /// ENETUNREACH/EHOSTUNREACH.
        case unreachable
        /// EBADF: not an open file descriptor.
        case badDescriptor
        /// EPERM from epoll: the fd cannot be polled (a regular file).
        case notPollable
        /// Another green thread already waits on that fd in this direction
        /// through `GreenThread.waitReadable`/`waitWritable`.
        case busy
        /// The stream ended before `readExactly` got its bytes.
        case unexpectedEOF
        /// The runtime whose poller watched this fd shut down.
        case runtimeShutDown
        /// Any other errno.
        case other
    }

    public let kind: Kind
    /// The errno, or 0.
    public let errno: Int32
    /// What was being done ("connect 127.0.0.1:1", "read", "accept", ...).
    public let operation: String
    /// Extra words (a resolver message), or "".
    public let detail: String

    public init(_ kind: Kind, errno: Int32 = 0, operation: String, detail: String = "") {
        self.kind = kind
        self.errno = errno
        self.operation = operation
        self.detail = detail
    }

    /// From a negative errno returned by a CContext shim.
    init(errno code: Int32, operation: String) {
        self.init(Self.kind(ofErrno: code), errno: code, operation: operation)
    }

    static func kind(ofErrno e: Int32) -> Kind {
        switch e {
        case ECONNREFUSED: return .connectionRefused
        case EADDRINUSE: return .addressInUse
        case EADDRNOTAVAIL: return .addressNotAvailable
        case ECONNRESET, ECONNABORTED: return .connectionReset
        case EPIPE: return .brokenPipe
        case ETIMEDOUT: return .timedOut
        case EMFILE, ENFILE: return .tooManyOpenFiles
        case ENETUNREACH, EHOSTUNREACH: return .unreachable
        case EBADF: return .badDescriptor
        case EINVAL, EAFNOSUPPORT, ENAMETOOLONG: return .badAddress
        default: return .other
        }
    }

    public var description: String {
        var s = "\(operation): "
        switch kind {
        case .closed: s += "use of a closed socket"
        case .timedOut where errno == 0: s += "deadline exceeded"
        case .unexpectedEOF: s += "unexpected end of stream"
        case .runtimeShutDown: s += "the runtime polling this fd has shut down"
        case .busy where errno == EEXIST: s += "fd already registered with the poller (another waiter, or a socket GreenThreads owns)"
        case .notPollable where errno == EPERM: s += "fd cannot be polled (a regular file?)"
        default:
            if errno != 0 {
                var buf = [CChar](repeating: 0, count: 128)
                s += buf.withUnsafeMutableBufferPointer { String(cString: gt_strerror(errno, $0.baseAddress, $0.count)) }
            } else {
                s += "\(kind)"
            }
        }
        if !detail.isEmpty { s += " (\(detail))" }
        if errno != 0 { s += " [errno \(errno)]" }
        return s
    }
}
