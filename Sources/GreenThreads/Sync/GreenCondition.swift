// GreenCondition.swift: a condition variable paired with a GreenMutex.
//
// ## Design
//
// A FIFO of parked waiters under a SpinLock. `wait` queues itself *before*
// releasing the mutex (both inside Park's register step, before the
// switch), so a `signal` made by whoever takes the mutex next always finds
// it: no wake-up is lost between unlock and park.
//
// After waking, the waiter re-acquires the mutex without regard to
// cancellation: a caller's `defer { mutex.unlock() }` must stay balanced
// whichever way `wait` ends.

/// A condition variable for green threads, used with a `GreenMutex` (Go's
/// `sync.Cond`, POSIX's `pthread_cond_t`).
///
/// ```swift
/// try mutex.lock()
/// defer { mutex.unlock() }
/// while queue.isEmpty { try ready.wait(mutex) }   // always re-check: another
/// let item = queue.removeFirst()                  // thread may have run first
/// ```
///
/// Waiters are woken in FIFO order. There are no spurious wake-ups, but a
/// woken waiter re-acquires the mutex after others may have changed the
/// state, so the predicate must be re-checked in a loop.
public final class GreenCondition: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `waiters` is guarded by `lock`.

    private let lock = SpinLock()
    @exclusivity(unchecked) private var waiters = WaiterList()  // Guarded by: lock

    /// Creates a condition with no waiters.
    public init() {}

    /// Atomically releases `mutex` and waits for `signal` or `broadcast`;
    /// re-acquires `mutex` before returning (or throwing).
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Precondition: the caller holds `mutex`.
    /// - Throws: `CancellationError` if the calling green thread (or a
    ///   cancel scope around the call) is cancelled while waiting,
    ///   `DeadlineExceeded` if a `withDeadline` scope's deadline passes.
    ///   The mutex is held again either way.
    public func wait(_ mutex: GreenMutex) throws {
        _ = try wait(mutex, deadline: nil)
    }

    /// Like `wait(_:)`, but gives up after `timeout`.
    /// - Returns: true if signalled, false if the timeout passed first.
    /// - Throws: `CancellationError` or `DeadlineExceeded`, as `wait(_:)`.
    ///   The mutex is held again in every case.
    public func wait(_ mutex: GreenMutex, timeout: Duration) throws -> Bool {
        try wait(mutex, deadline: Park.deadline(after: timeout))
    }

    private func wait(_ mutex: GreenMutex, deadline: Int64?) throws -> Bool {
        let (cause, queued) = Waiter.withTemporary { me -> (cause: WakeCause, queued: Bool) in
            lock.lock()
            // Queued first, the mutex released second: see the file header.
            return Park.waitQueued(me, lock: lock, reason: .other("GreenCondition.wait"), deadline: deadline,
                                   releasing: mutex,
                                   enqueue: { waiters.append($0) }, unlink: { waiters.remove($0) })
        }
        // Interrupted before queueing: the mutex was never released.
        if !queued { try cause.throwIfInterrupted() }
        mutex.lockUncancellable()
        switch cause {
        case .notified: return true
        case .timedOut: return false
        case .cancelled, .deadlock: throw CancellationError()
        case .deadlineExceeded: throw DeadlineExceeded()
        }
    }

    /// Wakes the longest-waiting thread, if any. Holding the mutex while
    /// signalling is allowed but not required.
    public func signal() {
        lock.lock()
        let w = waiters.popClaimed()
        lock.unlock()
        w?.resume()
    }

    /// Wakes every waiting thread.
    public func broadcast() {
        lock.lock()
        let woken = waiters.claimAll()
        lock.unlock()
        woken.resumeAll()
    }

    /// Queued waiters, live or dead (for tests).
    var waiterCount: Int { lock.withLock { waiters.count } }
}
