// AsyncSync.swift: waits on Sync primitives from async code.
//
// Each queues an `AsyncWaitTarget`'s waiter in the primitive's own list,
// under its lock, on the rules of the synchronous wait beside it: the
// condition is re-checked under the lock before queueing, and the waker
// (`add` reaching zero, `set`) claims and resumes the waiter through the code
// that wakes green threads (AsyncWaitTarget.swift).

extension WaitGroup {
    /// Waits until the counter is zero, suspending the Task (never blocking
    /// a thread).
    ///
    /// - Throws: `CancellationError` if the Task is cancelled while it
    ///   waits.
    public func wait() async throws {
        if lock.withLock({ counter == 0 }) { return }
        let cause = await Park.waitAsync(AsyncWaitTarget(), register: { waiter, waker in
            lock.lock()
            defer { lock.unlock() }
            if counter == 0 { return false }
            waiter.attach(waker)
            waiters.append(waiter)
            return true
        }, unlink: { waiter in lock.withLock { waiters.remove(waiter) } })
        if let cause, cause != .notified { throw CancellationError() }
    }
}

extension GreenEvent {
    /// Waits until the event is set, suspending the Task (never blocking a
    /// thread); returns at once if it is.
    ///
    /// - Throws: `CancellationError` if the Task is cancelled while it
    ///   waits.
    public func wait() async throws {
        if flag.load(ordering: .acquiring) { return }
        let cause = await Park.waitAsync(AsyncWaitTarget(), register: { waiter, waker in
            lock.lock()
            defer { lock.unlock() }
            // Re-checked under the lock: a `set` cannot slip in between.
            if flag.load(ordering: .relaxed) { return false }
            waiter.attach(waker)
            waiters.append(waiter)
            return true
        }, unlink: { waiter in lock.withLock { waiters.remove(waiter) } })
        if let cause, cause != .notified { throw CancellationError() }
    }
}
