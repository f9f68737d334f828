import CContext
#if canImport(Glibc)
import Glibc
#endif

extension GreenThread {
    /// Parks the calling green thread until `fd` (one the caller owns: a
    /// pipe, an eventfd, a socket made elsewhere) is readable, or `timeout`
    /// passes. A plain OS thread blocks in poll(2) instead.
    ///
    /// The fd is watched only for the duration of the call (added to and
    /// removed from the runtime's epoll set), so the caller keeps full
    /// ownership; do not close it while waiting.
    /// - Throws: `NetError` `.badDescriptor` (not an open fd), `.notPollable`
    ///   (a regular file), `.busy` (another green thread is waiting on it,
    ///   or it is a GreenThreads socket), `.timedOut`; or
    ///   `CancellationError`.
    public static func waitReadable(_ fd: Int32, timeout: Duration? = nil) throws {
        try waitReady(fd, .read, timeout: timeout)
    }

    /// Like `waitReadable`, for writability.
    public static func waitWritable(_ fd: Int32, timeout: Duration? = nil) throws {
        try waitReady(fd, .write, timeout: timeout)
    }

    private static func waitReady(_ fd: Int32, _ direction: PollDescriptor.Direction, timeout: Duration?) throws {
        let operation = direction == .read ? "waitReadable(\(fd))" : "waitWritable(\(fd))"
        let events = Int16(direction == .read ? GT_POLLIN | GT_POLLRDHUP : GT_POLLOUT)
        // Ready now (the common case), or not an fd at all: no epoll work.
        let check = { () -> Int in
            var revents: Int16 = 0
            let n = gt_poll_one(fd, events, 0, &revents)
            if n < 0 { return Int(n) }
            if revents & Int16(GT_POLLNVAL) != 0 { return -Int(EBADF) }
            return n > 0 ? 0 : -Int(EAGAIN)
        }
        if fd < 0 { throw NetError(.badDescriptor, errno: EBADF, operation: operation) }
        let first = check()
        if first == 0 { return }
        if first != -Int(EAGAIN) { throw NetError(errno: Int32(-first), operation: operation) }
        let descriptor = PollDescriptor(fd: fd, ownsFD: false)
        defer { descriptor.close() }
        _ = try descriptor.perform(direction, deadline: deadline(after: timeout), operation: operation, check)
    }
}
