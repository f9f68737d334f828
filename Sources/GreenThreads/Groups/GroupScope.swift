// GroupScope.swift: the bookkeeping of one green group that does not depend
// on its result type: how many children run, the first error, whether the
// group is cancelled, the order children ended in, the threads parked on
// the group, and the children to cancel and to wait for. The protocol is in
// the header of GreenGroup.swift.
//
// Non-generic on purpose: code of this module is not specialized for the
// caller's result type, and every use of a generic class here would cost a
// metadata lookup. `GreenGroup<T>` keeps only the result slots, guarded by
// this scope's lock.

/// The type-independent state of a `GreenGroup`, and its waits.
final class GroupScope: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: every var is guarded by `lock`, except
    // `outer`, which is guarded by the owning fiber's `groupsLock`
    // (OpenGroups.swift). `core` and `limit` are immutable.

    let core: RuntimeCore
    let limit: Int
    let lock = SpinLock()
    /// The group the owning thread had open when it opened this one.
    @exclusivity(unchecked) var outer: GroupScope?

    /// Children started and not yet ended (their bodies may still run).
    @exclusivity(unchecked) private(set) var running = 0              // Guarded by: lock
    /// Set by the first error, by the owning thread's cancellation, or by
    /// the owner being cancelled already when it opened the group.
    @exclusivity(unchecked) private(set) var cancelled = false        // Guarded by: lock
    /// Set once `close` has seen every child end.
    @exclusivity(unchecked) private(set) var closed = false           // Guarded by: lock
    @exclusivity(unchecked) private(set) var firstError: (any Error)?  // Guarded by: lock
    /// Children whose `finished` state nobody has seen yet: the ones to
    /// cancel, and to wait for at the end (pruned as they finish).
    @exclusivity(unchecked) private var children: [Fiber] = []         // Guarded by: lock
    @exclusivity(unchecked) private var pruneAt = 64                   // Guarded by: lock
    /// Indices of the children that returned, in the order they ended, from
    /// `completedHead` on: what `next()` hands out.
    @exclusivity(unchecked) private var completed: [Int] = []          // Guarded by: lock
    @exclusivity(unchecked) private var completedHead = 0              // Guarded by: lock
    /// Threads waiting for a child to end (a free slot, `next()`, `close`),
    /// all woken at each change: there are rarely more than one or two.
    @exclusivity(unchecked) private var waiters = WaiterList()         // Guarded by: lock

    init(core: RuntimeCore, limit: Int) {
        self.core = core
        self.limit = limit
    }

    // MARK: Starting a child

    /// Waits for a free slot and counts the caller's child as running;
    /// `slot` (called under the lock) reserves its result slot and returns
    /// its index.
    /// - Throws: `CancellationError` if the group is cancelled (nothing is
    ///   started then), or if the calling green thread is cancelled while
    ///   it waits for a slot.
    func reserve(_ slot: () -> Int) throws -> Int {
        lock.lock()
        while true {
            if closed {
                lock.unlock()
                preconditionFailure("GreenThreads: GreenGroup.go called after its withGreenGroup returned")
            }
            if cancelled {
                lock.unlock()
                throw CancellationError()
            }
            if running < limit { break }
            let cause = awaitChange(cancellable: true, reason: "GreenGroup.go (waiting for a free slot)")
            if cause != .notified {
                lock.unlock()
                try cause.throwUnlessNotified()
            }
        }
        running += 1
        let index = slot()
        lock.unlock()
        return index
    }

    /// Records a child just spawned, so that cancellation and `close` find
    /// it. A group cancelled since `reserve` cancels it here: `cancelAll`
    /// could not see it yet.
    func adopt(_ child: Fiber) {
        lock.lock()
        if closed {
            // Started by a thread outside the group while it closed: the
            // child has ended already (`close` saw `running` reach 0), all
            // but its last instructions.
            lock.unlock()
            Self.waitFinished(child)
            return
        }
        if children.count >= pruneAt {
            children.removeAll { $0.state == .finished }
            pruneAt = Swift.max(64, 2 * children.count)
        }
        children.append(child)
        let cancelNow = cancelled
        lock.unlock()
        if cancelNow { child.core.cancel(child) }
    }

    // MARK: A child's end

    /// A child ended: with `error`, or with its value, which `store` (called
    /// under the lock) puts in the child's slot. The first error cancels the
    /// group. Wakes every waiter to look again.
    func childEnded(index: Int, error: (any Error)?, store: () -> Void) {
        lock.lock()
        running -= 1
        var toCancel: [Fiber] = []
        if let error {
            if firstError == nil { firstError = error }
            toCancel = cancelLocked()
        } else {
            store()
            completed.append(index)
        }
        let woken = waiters.claimAll()
        lock.unlock()
        woken.resumeAll()
        for child in toCancel { child.core.cancel(child) }
    }

    /// The owner's body threw: `error` is the group's unless a child's came
    /// first; the group is cancelled.
    func fail(_ error: any Error) {
        lock.lock()
        if firstError == nil { firstError = error }
        let toCancel = cancelLocked()
        let woken = waiters.claimAll()
        lock.unlock()
        woken.resumeAll()
        for child in toCancel { child.core.cancel(child) }
    }

    /// Cancels every child still running and refuses new ones; wakes the
    /// waiters (a `go` waiting for a slot then throws at once). Idempotent.
    func cancelAll() {
        lock.lock()
        let toCancel = cancelLocked()
        let woken = waiters.claimAll()
        lock.unlock()
        woken.resumeAll()
        for child in toCancel { child.core.cancel(child) }
    }

    /// Marks the group cancelled; the children to cancel once the lock is
    /// released (cancelling resumes threads: never under a spin lock).
    private func cancelLocked() -> [Fiber] {
        if cancelled { return [] }
        cancelled = true
        return children.filter { $0.state != .finished }
    }

    // MARK: Taking results

    /// The index of the next child to have returned, in the order they
    /// ended, passed to `take` under the lock; nil once no child is running
    /// and every returned one was taken.
    /// - Throws: the group's first error once there is one; `CancellationError`
    ///   if the calling green thread is cancelled while it waits.
    func next<R>(_ take: (Int) -> R) throws -> R? {
        lock.lock()
        while true {
            if closed {
                lock.unlock()
                preconditionFailure("GreenThreads: GreenGroup.next called after its withGreenGroup returned")
            }
            if let firstError {
                lock.unlock()
                throw firstError
            }
            if completedHead < completed.count {
                let index = completed[completedHead]
                completedHead += 1
                if completedHead == completed.count {
                    completed.removeAll(keepingCapacity: true)
                    completedHead = 0
                }
                let r = take(index)
                lock.unlock()
                return r
            }
            if running == 0 {
                lock.unlock()
                return nil
            }
            let cause = awaitChange(cancellable: true, reason: "GreenGroup.next")
            if cause != .notified {
                lock.unlock()
                try cause.throwUnlessNotified()
            }
        }
    }

    // MARK: The end

    /// Waits until every child has ended and finished (its stack and count
    /// given back), then closes the group; `finish` runs under the lock,
    /// after the last child ended.
    ///
    /// The first wait is interruptible: a cancel scope or deadline around
    /// the group that trips (or a cancel of the owner) fails the group with
    /// that error, which cancels the children. Every later wait is not: no
    /// child may outlive its group, and a tripped scope stays tripped, so
    /// an interruptible wait would return at once, in a loop.
    func close<R>(_ finish: (_ firstError: (any Error)?) -> R) -> R {
        lock.lock()
        var interrupted = false
        while running > 0 {
            let cause = awaitChange(cancellable: !interrupted, reason: "withGreenGroup (its children to end)")
            if cause == .notified || interrupted { continue }
            interrupted = true
            lock.unlock()
            fail(cause == .deadlineExceeded ? DeadlineExceeded() : CancellationError())
            lock.lock()
        }
        closed = true
        let last = children
        children = []
        let r = finish(firstError)
        lock.unlock()
        for child in last { Self.waitFinished(child) }
        return r
    }

    /// A child reports its end from inside its body's last steps, a few
    /// instructions before its thread retires (and `stats.live` drops):
    /// wait those out, so nothing of the group is live once it returns.
    /// The group holds the fiber, so it cannot be reused meanwhile.
    private static func waitFinished(_ child: Fiber) {
        while child.state != .finished { GreenThread.yield() }
    }

    // MARK: Waiting

    /// Parks the caller until the next change (a child's end, a
    /// cancellation of the group). Called and returns with `lock` held.
    /// Returns why the wait ended: `.notified`, or for a cancellable wait
    /// an interruption (a cancel of the calling green thread, a tripped
    /// scope around it); an uncancellable wait always returns `.notified`.
    private func awaitChange(cancellable: Bool, reason: StaticString) -> WakeCause {
        Waiter.withTemporary { me -> WakeCause in
            waiters.append(me)
            var registered = false
            let cause = Park.waitQueued(reason: .other(reason), cancellable: cancellable) { waker in
                me.attach(waker)
                registered = true
                lock.unlock()
                return true
            }
            // Not registered: cancelled before the park, the lock still held.
            if registered { lock.lock() }
            // Ended other than by a claim: still queued, unlink it.
            if cause != .notified { waiters.remove(me) }
            return cause
        }
    }
}
