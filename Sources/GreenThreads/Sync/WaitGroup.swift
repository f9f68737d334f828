// WaitGroup.swift: waits for a collection of green threads to finish.
//
// ## Invariants
//
//  * `counter >= 0` (a negative counter is a caller bug and traps, as in Go).
//  * While `counter == 0`, `waiters` holds no live waiter: `wait` returns
//    at once then, and the `add` that brings the counter to zero claims
//    every queued waiter under the lock and resumes them after it.

/// Waits for a set of tasks to finish (Go's `sync.WaitGroup`).
///
/// ```swift
/// let wg = WaitGroup()
/// for url in urls {
///     wg.add(1)
///     go { defer { wg.done() }; fetch(url) }
/// }
/// try wg.wait()
/// ```
public final class WaitGroup: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: both fields are guarded by `lock`.

    let lock = SpinLock()
    @exclusivity(unchecked) var counter = 0                         // Guarded by: lock
    @exclusivity(unchecked) var waiters = WaiterList()  // Guarded by: lock

    /// Creates a wait group with a zero counter.
    public init() {}

    /// Adds `delta` (which may be negative) to the counter; when it reaches
    /// zero, every `wait` returns. Callable from any thread.
    /// - Precondition: the counter does not go negative.
    public func add(_ delta: Int = 1) {
        lock.lock()
        counter += delta
        let now = counter
        let woken = now == 0 ? waiters.claimAll() : ClaimedWaiters()
        lock.unlock()
        precondition(now >= 0, "GreenThreads: WaitGroup counter went negative (more done() than add())")
        woken.resumeAll()
    }

    /// Decrements the counter by one.
    public func done() {
        add(-1)
    }

    /// Waits until the counter is zero.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Throws: `CancellationError` if the calling green thread (or a
    ///   cancel scope around the call) is cancelled while waiting,
    ///   `DeadlineExceeded` if a `withDeadline` scope's deadline passes.
    public func wait() throws {
        lock.lock()
        if counter == 0 {
            lock.unlock()
            return
        }
        let (cause, _) = Waiter.withTemporary { me in
            Park.waitQueued(me, lock: lock, reason: .other("WaitGroup.wait"),
                            enqueue: { waiters.append($0) }, unlink: { waiters.remove($0) })
        }
        try cause.throwUnlessNotified()
    }

    /// Adds one to the counter and runs `body` in a new green thread of the
    /// caller's runtime, which calls `done()` when `body` returns or throws
    /// (Go 1.25's `WaitGroup.Go`).
    /// - Precondition: called from a green thread.
    @inlinable
    @discardableResult
    public func go<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> JoinHandle<T> {
        add(1)
        return GreenThreads.go {
            defer { self.done() }
            return try body()
        }
    }

    /// The counter (a snapshot).
    public var count: Int { lock.withLock { counter } }

    /// Queued waiters, live or dead (for tests).
    var waiterCount: Int { lock.withLock { waiters.count } }
}
