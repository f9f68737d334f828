import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// PollDescriptor.swift: one fd's readiness state and its lifetime.
//
// ## Per-direction state (read, write), guarded by `lock`
//
//     (idle) ──edge, nobody waits──▶ ready ──an operation parks──▶ consumed: (idle), retry the syscall
//     (idle) ──EAGAIN, park──▶ waiting[wakers] ──edge──▶ (idle); every waker woken, each retries
//     waiting ──deadline/cancel──▶ the waiter removes its own stale waker
//     any ──close()──▶ closing: wakers woken, they see `closing` and throw .closed
//
// An edge that finds only stale wakers (their waits ended by a timer or a
// cancel) counts as unobserved and sets `ready`, so it cannot be lost. Waking
// happens under `lock`: a waiter that registers right after an edge either
// sees `ready` or is in the list the edge wakes (never neither). The locks a
// wake takes (injector, Idle) never take an fd lock, so there is no cycle.
//
// ## Lifetime: the fd is closed exactly once, when nobody uses it
//
// `useCount` packs (operations in flight << 1) | closedBit. Every operation
// enters with `beginOperation` (refused once closed) and leaves with
// `endOperation`. `close()` sets the bit and wakes every waiter; whoever
// brings the count to "closed, nobody inside" (the closer, or the last
// operation to leave) deregisters and closes the fd. So a green thread never
// issues a syscall on an fd number that was closed (and maybe reused).
final class PollDescriptor: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `fd` and `ownsFD` are immutable, the use
    // count and the read hints are atomics, `registrationTag` is guarded by the
    // poller's `tableLock` and the waiters and ready flags by `lock`.
    enum Direction: Int { case read = 0, write = 1 }

    let fd: Int32
    /// Whether `close()` closes the fd (false for fds users own).
    private let ownsFD: Bool
    /// Set by the poller at registration. Guarded by: the poller's tableLock.
    @exclusivity(unchecked) var registrationTag: UInt64 = 0

    private let useCount = Atomic<Int>(0)
    // The stream-read hint (StreamRead.swift).
    /// Reads inside `performStreamRead` now.
    let streamReaders = Atomic<Int>(0)
    /// The last stream read returned less than it asked for.
    let streamDrained = Atomic<Bool>(false)
    /// Two reads overlapped once, or an event reported the end of the
    /// stream, an error or urgent data: never park first again here.
    let alwaysReadFirst = Atomic<Bool>(false)
    private static let closedBit = 1

    private let lock = SpinLock()
    // Guarded by lock:
    @exclusivity(unchecked) private var poller: Poller?
    @exclusivity(unchecked) private var closing = false
    @exclusivity(unchecked) private var readReady = false
    @exclusivity(unchecked) private var writeReady = false
    @exclusivity(unchecked) private var readers: [Waker] = []
    @exclusivity(unchecked) private var writers: [Waker] = []

    init(fd: Int32, ownsFD: Bool = true) {
        self.fd = fd
        self.ownsFD = ownsFD
    }

    // MARK: Lifetime

    /// Enters an operation; throws `.closed` once `close()` has begun.
    @inline(__always)
    func beginOperation(_ operation: @autoclosure () -> String) throws(NetError) {
        var current = useCount.load(ordering: .relaxed)
        while true {
            if current & Self.closedBit != 0 { throw NetError(.closed, operation: operation()) }
            let (done, seen) = useCount.compareExchange(
                expected: current, desired: current + 2, ordering: .acquiring)
            if done { return }
            current = seen
        }
    }

    @inline(__always)
    func endOperation() {
        // Acquire-release: the last one out sees every other's syscalls done
        // before it closes the fd.
        if useCount.subtract(2, ordering: .acquiringAndReleasing).newValue == Self.closedBit { finish() }
    }

    var isClosed: Bool { useCount.load(ordering: .acquiring) & Self.closedBit != 0 }

    /// Closes: refuses new operations, wakes parked ones (they throw
    /// `.closed`), and closes the fd once the last operation has left.
    /// Idempotent; returns whether this call did it.
    @discardableResult
    func close() -> Bool {
        let old = useCount.bitwiseOr(Self.closedBit, ordering: .acquiringAndReleasing).oldValue
        if old & Self.closedBit != 0 { return false }
        lock.lock()
        closing = true
        let woken = wakeAll()
        lock.unlock()
        _ = woken
        if old == 0 { finish() }
        return true
    }

    private func finish() {
        let p = lock.withLock { () -> Poller? in
            let p = poller
            poller = nil
            return p
        }
        p?.deregister(self)
        if ownsFD { _ = gt_close(fd) }
    }

    /// The poller shut down: forget it (a later wait on another runtime
    /// registers there) and wake whoever waits here.
    func pollerClosed() {
        lock.lock()
        _ = wakeAll()
        poller = nil
        lock.unlock()
    }

    /// Under lock: wakes every waiter of both directions.
    private func wakeAll() -> Int {
        var n = 0
        for w in readers where w.wake() { n += 1 }
        for w in writers where w.wake() { n += 1 }
        let count = readers.count + writers.count
        if count > 0 { poller?.ioWaiters.subtract(count, ordering: .relaxed) }
        readers.removeAll()
        writers.removeAll()
        return n
    }

    // MARK: Readiness (from the poller)

    /// Delivers an epoll event: wakes the waiters of each direction it
    /// covers, or remembers the edge if nobody (live) waits.
    func deliver(events: UInt32, poller: Poller) -> Int {
        let readMask = GT_EPOLLIN | GT_EPOLLRDHUP | GT_EPOLLHUP | GT_EPOLLERR
        let writeMask = GT_EPOLLOUT | GT_EPOLLHUP | GT_EPOLLERR
        var woke = 0
        // The end of the stream, an error or urgent data: conditions a read
        // finds without a new edge to announce them, so a read must never
        // park first again (StreamRead.swift). Before the wake-ups below:
        // a reader woken (or finding `ready`) by this event sees it.
        if events & (GT_EPOLLRDHUP | GT_EPOLLHUP | GT_EPOLLERR | GT_EPOLLPRI) != 0 {
            alwaysReadFirst.store(true, ordering: .releasing)
        }
        lock.lock()
        if events & readMask != 0 {
            let n = wake(&readers, poller: poller)
            if n == 0 { readReady = true }
            woke += n
        }
        if events & writeMask != 0 {
            let n = wake(&writers, poller: poller)
            if n == 0 { writeReady = true }
            woke += n
        }
        lock.unlock()
        return woke
    }

    @inline(__always)
    private func wake(_ list: inout [Waker], poller: Poller) -> Int {
        if list.isEmpty { return 0 }
        var n = 0
        for w in list where w.wake() { n += 1 }
        poller.ioWaiters.subtract(list.count, ordering: .relaxed)
        list.removeAll(keepingCapacity: true)
        return n
    }

    // MARK: Waiting

    /// Parks the caller until the fd may be ready in `direction` (or
    /// `deadline`, monotonic ns on the runtime's clock, passes). A spurious
    /// return is allowed: callers retry their syscall and come back.
    /// On a plain OS thread, blocks in poll(2).
    func waitReady(_ direction: Direction, deadline: Int64?, operation: @autoclosure () -> String) throws {
        guard let worker = Worker.current, worker.local.pointee.current != nil else {
            return try waitOnThread(direction, deadline: deadline, operation: operation())
        }
        let poller = worker.poller
        let fiber = worker.local.pointee.current!.takeUnretainedValue()
        try ensureRegistered(with: poller, operation: operation())
        var refused: NetError.Kind?
        let cause = Park.wait(
            reason: .other(direction == .read ? "fd read readiness" : "fd write readiness"),
            deadline: deadline, cancellable: true
        ) { waker in
            lock.lock()
            if closing { lock.unlock(); refused = .closed; return false }
            guard let registered = self.poller else { lock.unlock(); refused = .runtimeShutDown; return false }
            if direction == .read {
                if readReady { readReady = false; lock.unlock(); return false }
                readers.append(waker)
            } else {
                if writeReady { writeReady = false; lock.unlock(); return false }
                writers.append(waker)
            }
            registered.ioWaiters.add(1, ordering: .sequentiallyConsistent)
            lock.unlock()
            // Nobody blocked in epoll_wait: somebody must come round to
            // poll. If this worker has nothing else queued, that is this
            // worker, on its way to findRunnable; otherwise it may stay busy
            // for long, so wake a sleeper to take the poller role (see
            // Poller). Waking one on every park would cost a futex wake per
            // request on a server whose other worker is idle.
            if !registered.blockerRole.load(ordering: .relaxed), worker.hasLocalWork { worker.idle.notifyWork() }
            return true
        }
        switch cause {
        case .notified:
            if let refused { throw NetError(refused, operation: operation()) }
        case .timedOut:
            removeStaleWaiter(direction, fiber: fiber)
            throw NetError(.timedOut, operation: operation())
        case .cancelled:
            removeStaleWaiter(direction, fiber: fiber)
            throw CancellationError()
        case .deadlineExceeded:
            removeStaleWaiter(direction, fiber: fiber)
            throw DeadlineExceeded()
        case .deadlock:
            removeStaleWaiter(direction, fiber: fiber)
            throw NetError(.other, operation: operation(), detail: "deadlock")
        }
    }

    /// Registers the fd with `poller` on its first wait. Under `lock`, so a
    /// reader and a writer arriving together register once (a second
    /// EPOLL_CTL_ADD would fail with EEXIST). Lock order: fd lock, then the
    /// poller's table lock (never the reverse; see `Poller.close`).
    private func ensureRegistered(with poller: Poller, operation: @autoclosure () -> String) throws(NetError) {
        lock.lock()
        defer { lock.unlock() }
        if self.poller != nil { return }
        if closing { throw NetError(.closed, operation: operation()) }
        let rc = poller.register(self)
        if rc == -ESHUTDOWN { throw NetError(.runtimeShutDown, operation: operation()) }
        switch -rc {
        case 0: break
        case EPERM: throw NetError(.notPollable, errno: EPERM, operation: operation())
        case EEXIST: throw NetError(.busy, errno: EEXIST, operation: operation())
        default: throw NetError(errno: -rc, operation: operation())
        }
        self.poller = poller
    }

    /// Our wait ended by timer or cancel: take our waker out if an edge has
    /// not already (a stale one would make the next edge look observed).
    private func removeStaleWaiter(_ direction: Direction, fiber: Fiber) {
        lock.lock()
        defer { lock.unlock() }
        if direction == .read {
            if let i = readers.firstIndex(where: { $0.target === fiber }) {
                readers.remove(at: i)
                poller?.ioWaiters.subtract(1, ordering: .relaxed)
            }
        } else if let i = writers.firstIndex(where: { $0.target === fiber }) {
            writers.remove(at: i)
            poller?.ioWaiters.subtract(1, ordering: .relaxed)
        }
    }

    /// A plain OS thread: poll(2) in slices, so that `close()` from another
    /// thread is noticed within one slice (poll does not wake on close).
    private func waitOnThread(_ direction: Direction, deadline: Int64?, operation: @autoclosure () -> String) throws {
        let slice: Int64 = 50_000_000
        let events = Int16(direction == .read ? GT_POLLIN | GT_POLLRDHUP : GT_POLLOUT)
        // A deadline scope's deadline, when earlier than the call's own
        // (see Deadline.swift); and a cancel scope, checked every slice.
        let scopes = WaitScopes.current
        let scopeDeadline = scopes?.deadline ?? .max
        while true {
            if isClosed { throw NetError(.closed, operation: operation()) }
            if let cause = scopes?.interruption { try cause.throwIfInterrupted() }
            var timeout = slice
            if scopeDeadline != .max && scopeDeadline < deadline ?? .max {
                let left = scopeDeadline - gt_now_ns()
                if left <= 0 { throw DeadlineExceeded() }
                timeout = min(left, slice)
            } else if let deadline {
                let left = deadline - gt_now_ns()
                if left <= 0 { throw NetError(.timedOut, operation: operation()) }
                timeout = min(left, slice)
            }
            var revents: Int16 = 0
            let rc = gt_poll_one(fd, events, timeout, &revents)
            if rc < 0 && rc != -EINTR { throw NetError(errno: -rc, operation: operation()) }
            if rc > 0 {
                if revents & Int16(GT_POLLNVAL) != 0 { throw NetError(.badDescriptor, errno: EBADF, operation: operation()) }
                return
            }
        }
    }
}
