import CContext
#if canImport(Glibc)
import Glibc
#endif

// SocketIO.swift: the retry loop every socket operation shares.
//
// Try the syscall first; on EAGAIN park until the poller reports the
// direction ready (or the deadline passes), then try again. The fd is held
// open for the whole loop (`beginOperation`), and a wake caused by
// `close()` ends it with `.closed` instead of a syscall on a dead fd.
extension PollDescriptor {
    /// Runs `attempt` (a syscall shim returning a count or a negative
    /// errno) until it does not return -EAGAIN. Returns the count.
    @inline(__always)
    func perform(
        _ direction: Direction, deadline: Int64?, operation: @autoclosure () -> String,
        _ attempt: () -> Int
    ) throws -> Int {
        try beginOperation(operation())
        defer { endOperation() }
        while true {
            let n = attempt()
            if n >= 0 { return n }
            // A signal handler (a profiler's, the user's) ran mid-call.
            if n == -Int(EINTR) { continue }
            if n != -Int(EAGAIN) { throw NetError(errno: Int32(-n), operation: operation()) }
            try waitReady(direction, deadline: deadline, operation: operation())
            if isClosed { throw NetError(.closed, operation: operation()) }
        }
    }
}

/// Deadline for a call with an optional timeout (nil: none), on the
/// caller's runtime clock (monotonic on an OS thread).
@inline(__always)
func deadline(after timeout: Duration?) -> Int64? {
    timeout.map { Park.deadline(after: $0) }
}

/// Creates a non-blocking socket, or throws.
func makeSocket(family: Int32, type: Int32, operation: @autoclosure () -> String) throws(NetError) -> Int32 {
    let fd = gt_socket(family, type)
    if fd < 0 { throw NetError(errno: -fd, operation: operation()) }
    return fd
}

/// Binds and listens a fresh stream socket at `address`; returns the fd.
func listenSocket(at address: SocketAddress, backlog: Int, reuseAddress: Bool) throws(NetError) -> Int32 {
    var raw = address.raw
    let family = Int32(gt_sockaddr_family(&raw))
    let fd = try makeSocket(family: family, type: Int32(SOCK_STREAM.rawValue), operation: "listen \(address)")
    if reuseAddress { _ = gt_setsockopt_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) }
    var rc = gt_bind(fd, &raw)
    if rc == 0 { rc = gt_listen(fd, Int32(clamping: backlog)) }
    if rc != 0 {
        _ = gt_close(fd)
        throw NetError(errno: -rc, operation: "listen \(address)")
    }
    return fd
}

/// Accepts one connection on a listening descriptor.
func acceptConnection(on descriptor: PollDescriptor, timeout: Duration?) throws -> (fd: Int32, peer: SocketAddress) {
    var peer = gt_sockaddr()
    let fd = try descriptor.perform(.read, deadline: deadline(after: timeout), operation: "accept") {
        while true {
            let c = gt_accept(descriptor.fd, &peer)
            if c >= 0 || !isQueuedConnectionError(-c) { return Int(c) }
        }
    }
    return (Int32(fd), SocketAddress(raw: peer))
}

/// Errors of `accept` that concern one queued connection, not the
/// listener: the failed call took that connection off the queue, and the
/// next call gets the one behind it. A server must not stop listening over
/// them, so `accept` retries instead of throwing (Go retries ECONNABORTED;
/// Linux's accept(2) asks for the pending network errors it passes on to
/// be treated like EAGAIN).
func isQueuedConnectionError(_ e: Int32) -> Bool {
    switch e {
    case ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
        return true
    default:
        return false
    }
}

/// Non-blocking connect of a fresh socket to `address`; parks until the
/// handshake ends. Returns the connected socket's descriptor.
func connectSocket(to address: SocketAddress, deadline: Int64?) throws -> PollDescriptor {
    var raw = address.raw
    let family = Int32(gt_sockaddr_family(&raw))
    let fd = try makeSocket(family: family, type: Int32(SOCK_STREAM.rawValue), operation: "connect \(address)")
    let descriptor = PollDescriptor(fd: fd)
    do {
        let rc = gt_connect(fd, &raw)
        if rc == -EINPROGRESS || rc == -EAGAIN {
            // Writable once the handshake ends either way; SO_ERROR says how.
            _ = try descriptor.perform(.write, deadline: deadline, operation: "connect \(address)") {
                var revents: Int16 = 0
                let ready = gt_poll_one(fd, Int16(GT_POLLOUT), 0, &revents)
                return ready > 0 ? 0 : (ready < 0 ? Int(ready) : -Int(EAGAIN))
            }
            let err = gt_socket_error(fd)
            if err != 0 { throw NetError(errno: -err, operation: "connect \(address)") }
        } else if rc != 0 {
            throw NetError(errno: -rc, operation: "connect \(address)")
        }
        return descriptor
    } catch {
        descriptor.close()
        throw error
    }
}
