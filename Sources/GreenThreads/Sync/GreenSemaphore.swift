// GreenSemaphore.swift: a counting semaphore that parks green threads.
//
// ## Invariants
//
//  * `permits > 0` implies no live waiter is queued: `release` hands its
//    permit straight to the first live waiter (claim, then resume) and only
//    banks it when there is none. So permits go to waiters in FIFO order,
//    and a newcomer cannot overtake a queued waiter.
//  * A waiter resumed with `.notified` owns one permit; one that ends by
//    cancellation or timeout owns none (nobody claimed it) and unlinks
//    itself.

/// A counting semaphore for green threads: `acquire` takes a permit,
/// waiting while none is free; `release` returns one.
///
/// ```swift
/// let slots = GreenSemaphore(value: 4)   // at most 4 downloads at once
/// try slots.acquire()
/// defer { slots.release() }
/// ```
///
/// Waiters are served first-come first-served.
public final class GreenSemaphore: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: both fields are guarded by `lock`.

    private let lock = SpinLock()
    @exclusivity(unchecked) private var permits: Int                        // Guarded by: lock
    @exclusivity(unchecked) private var waiters = WaiterList()  // Guarded by: lock

    /// Creates a semaphore holding `value` permits.
    /// - Precondition: `value >= 0`.
    public init(value: Int) {
        precondition(value >= 0, "GreenThreads: GreenSemaphore needs a non-negative initial value; got \(value)")
        permits = value
    }

    /// Takes a permit, waiting until one is free.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Throws: `CancellationError` if the calling green thread (or a
    ///   cancel scope around the call) is cancelled while waiting,
    ///   `DeadlineExceeded` if a `withDeadline` scope's deadline passes; no
    ///   permit is taken.
    public func acquire() throws {
        _ = try acquire(deadline: nil)
    }

    /// Takes a permit, waiting at most `timeout`.
    /// - Returns: whether a permit was taken.
    /// - Throws: `CancellationError` or `DeadlineExceeded`, as `acquire()`.
    public func acquire(timeout: Duration) throws -> Bool {
        try acquire(deadline: Park.deadline(after: timeout))
    }

    /// Takes a permit if one is free. Never waits.
    public func tryAcquire() -> Bool {
        lock.withLock {
            if permits == 0 { return false }
            permits -= 1
            return true
        }
    }

    private func acquire(deadline: Int64?) throws -> Bool {
        lock.lock()
        if permits > 0 {
            permits -= 1
            lock.unlock()
            return true
        }
        // Still under `lock` from the check above: a release cannot slip in
        // between and bank a permit we would not see.
        let (cause, _) = Waiter.withTemporary { me in
            Park.waitQueued(me, lock: lock, reason: .other("GreenSemaphore.acquire"), deadline: deadline,
                            enqueue: { waiters.append($0) }, unlink: { waiters.remove($0) })
        }
        switch cause {
        case .notified: return true  // the releaser handed us its permit
        case .timedOut: return false
        case .cancelled, .deadlock: throw CancellationError()
        case .deadlineExceeded: throw DeadlineExceeded()
        }
    }

    /// Returns a permit: hands it to the longest waiter, if any, else keeps
    /// it for the next `acquire`. Callable from any thread.
    public func release() {
        lock.lock()
        let w = waiters.popClaimed()
        if w == nil { permits += 1 }
        lock.unlock()
        w?.resume()
    }

    /// Permits free right now (a snapshot).
    public var count: Int { lock.withLock { permits } }

    /// Queued waiters, live or dead (for tests).
    var waiterCount: Int { lock.withLock { waiters.count } }
}
