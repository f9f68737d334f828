// GreenMutex.swift: a mutual-exclusion lock that parks green threads.
//
// ## Design (after Go's sync.Mutex)
//
// An atomic state word serves the uncontended case with one CAS each way;
// contended lockers queue a `Waiter` under `queueLock` and park.
//
// Normal mode: unlock releases the lock and wakes the first waiter, which
// then competes for it with threads that arrive meanwhile ("barging"). The
// newcomers are already running on a CPU, so they usually win; that keeps
// throughput high (no hand-off switch on every unlock) and is why a woken
// waiter that loses goes back to the *front* of the queue.
//
// Starvation mode: once the first waiter has waited more than 1 ms, unlock
// hands ownership to it directly: the lock never becomes free, so newcomers
// cannot barge and queue at the back instead. The mode ends when a waiter
// that gets the lock waited less than 1 ms, or is the last one. This bounds
// the wait of every waiter at the cost of a switch per unlock while it lasts.
//
// ## Invariants
//
//  * `locked` in `state` is set exactly while some thread owns the mutex,
//    including the interval between a starvation-mode hand-off and the new
//    owner running.
//  * `waiting` in `state` is set whenever `waiters` is non-empty (it may
//    also be set, briefly, when the queue just emptied). Lockers set it
//    and queue in one `queueLock` section; the unlock fast path (a CAS from
//    exactly `locked` to 0) therefore fails whenever someone may be queued,
//    and the slow path, under `queueLock`, sees the queue. No wake-up is
//    lost.
//  * While `starving`, `locked` stays set as long as a live waiter remains.
//
// ## Memory ordering
//
// | operation                | ordering  | pairs with                                   |
// |--------------------------|-----------|----------------------------------------------|
// | lock: CAS setting locked | acquiring | the releasing clear of `locked` in unlock    |
// | unlock: clear locked     | releasing | the acquiring CAS of the next locker         |
// | hand-off                 | (resume)  | the waiter's resume: fiber run-state CAS or  |
// |                          |           | futex word, both release → acquire           |
// | `waiting` bit updates    | relaxed   | ordered by `queueLock`                       |

import CContext
import Synchronization

/// A mutual-exclusion lock for green threads: a waiting green thread parks
/// (its worker runs others), a waiting OS thread blocks.
///
/// Unlike `Synchronization.Mutex`, it has no owning OS thread, so it may be
/// held across `GreenThread.yield`, channel operations and any other park,
/// and may be unlocked on another worker than the one that locked it (a
/// green thread migrates). Not recursive. Fair under contention: a waiter
/// that waits more than 1 ms gets the lock handed to it (Go's starvation
/// mode).
///
/// ```swift
/// let m = GreenMutex()
/// try m.withLock { counter += 1 }
/// ```
public final class GreenMutex: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `state` is atomic; `waiters` and
    // `starving` are guarded by `queueLock`.

    // The uncontended paths below are @inlinable, so that a client's
    // `withLock` compiles to the two atomics and the body, with no call into
    // this module and no unspecialized generic closure call (otherwise two
    // thirds of an uncontended lock/unlock pair).
    @usableFromInline static let locked: UInt32 = 1
    private static let waiting: UInt32 = 2
    /// Go's starvationThresholdNs.
    static let starvationThreshold: Int64 = 1_000_000

    @usableFromInline let state = Atomic<UInt32>(0)
    private let queueLock = SpinLock()
    @exclusivity(unchecked) private var waiters = WaiterList()  // Guarded by: queueLock
    @exclusivity(unchecked) private var starving = false                    // Guarded by: queueLock

    /// Creates an unlocked mutex.
    public init() {}

    /// Acquires the mutex, waiting while another thread holds it.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Throws: `CancellationError` if the calling green thread (or a
    ///   cancel scope around the call) is cancelled while waiting,
    ///   `DeadlineExceeded` if a `withDeadline` scope's deadline passes;
    ///   the mutex is then not held. A free mutex is acquired even by a
    ///   cancelled thread.
    @inlinable
    public func lock() throws {
        if tryLock() { return }
        try lockContended()
    }

    /// `lock` when the mutex was not free at first glance.
    @usableFromInline
    func lockContended() throws {
        try lockSlow(cancellable: true).throwIfInterrupted()
    }

    /// Acquires the mutex; cancellation does not end the wait. For callers
    /// that must hold the lock before they can return (condition variables,
    /// `Once`).
    func lockUncancellable() {
        if tryLock() { return }
        _ = lockSlow(cancellable: false)
    }

    /// Acquires the mutex if it is free. Never waits.
    @inlinable
    public func tryLock() -> Bool {
        var s = state.load(ordering: .relaxed)
        while s & Self.locked == 0 {
            let (done, current) = state.compareExchange(
                expected: s, desired: s | Self.locked,
                successOrdering: .acquiring, failureOrdering: .relaxed)
            if done { return true }
            s = current
        }
        return false
    }

    /// Releases the mutex. Any thread may unlock it, not only the one that
    /// locked it (as in Go).
    /// - Precondition: the mutex is locked.
    @inlinable
    public func unlock() {
        // releasing: publishes the critical section to the next locker.
        if state.compareExchange(
            expected: Self.locked, desired: 0,
            successOrdering: .releasing, failureOrdering: .relaxed
        ).exchanged { return }
        unlockSlow()
    }

    /// Runs `body` holding the mutex and returns its result.
    /// - Throws: `CancellationError` if cancelled while waiting for the
    ///   mutex (then `body` does not run), or what `body` throws.
    @inlinable
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try lock()
        defer { unlock() }
        return try body()
    }

    // MARK: Slow paths

    /// Returns true once the mutex is held, false if cancelled first.
    private func lockSlow(cancellable: Bool) -> WakeCause {
        Waiter.withTemporary { me in lockSlow(me, cancellable: cancellable) }
    }

    /// `lockSlow` with its waiter, one for all its rounds (it keeps the
    /// time of the first queueing).
    private func lockSlow(_ me: WaiterRef, cancellable: Bool) -> WakeCause {
        var requeueAtFront = false
        while true {
            if spin() { return .notified }
            var acquired = false
            var queued = false
            let cause = Park.waitQueued(reason: .other("GreenMutex.lock"), cancellable: cancellable) { waker in
                queueLock.lock()
                // Take the lock if it came free since `spin`, else announce
                // a waiter; atomically, so an unlock cannot slip between.
                var s = state.load(ordering: .relaxed)
                while true {
                    let free = s & Self.locked == 0
                    let (done, current) = state.compareExchange(
                        expected: s, desired: s | (free ? Self.locked : Self.waiting),
                        successOrdering: .acquiring, failureOrdering: .relaxed)
                    if done {
                        if free {
                            acquired = true
                            queueLock.unlock()
                            return false
                        }
                        break
                    }
                    s = current
                }
                if me.pointee.queuedAt == 0 { me.pointee.queuedAt = gt_now_ns() }
                me.attach(waker)
                if requeueAtFront { waiters.prepend(me) } else { waiters.append(me) }
                queued = true
                queueLock.unlock()
                return true
            }
            // Acquired in the register step: ours, even if a cancellation
            // raced in afterwards.
            if acquired { return .notified }
            if !queued { return cause }  // already interrupted: never queued
            if cause == .notified {
                if me.pointee.outcome == .completed { return .notified }  // starvation mode: handed to us
                // Woken to compete; if a newcomer wins, keep our place.
                requeueAtFront = true
                continue
            }
            // Cancelled while queued: nobody dequeued us.
            queueLock.lock()
            waiters.remove(me)
            if waiters.isEmpty { state.bitwiseAnd(~Self.waiting, ordering: .relaxed) }
            queueLock.unlock()
            return cause
        }
    }

    /// Spins briefly, retrying the lock, when the holder may be running on
    /// another CPU. On a one-worker runtime it cannot be (we occupy the only
    /// worker), so spinning would only delay it.
    private func spin() -> Bool {
        if let worker = Worker.current, worker.core.workers.count < 2 { return tryLock() }
        for round in 0..<4 {
            for _ in 0..<(8 << round) { gt_cpu_relax() }
            if state.load(ordering: .relaxed) & Self.locked == 0, tryLock() { return true }
        }
        return false
    }

    @usableFromInline
    func unlockSlow() {
        queueLock.lock()
        precondition(state.load(ordering: .relaxed) & Self.locked != 0,
                     "GreenThreads: unlock of an unlocked GreenMutex")
        let next = waiters.popClaimed()
        if waiters.isEmpty { state.bitwiseAnd(~Self.waiting, ordering: .relaxed) }
        if let next {
            let waited = gt_now_ns() - next.pointee.queuedAt
            if starving || waited > Self.starvationThreshold {
                // Hand off: `locked` stays set and ownership moves to
                // `next`; its resume (below) publishes our critical section.
                next.pointee.outcome = .completed
                starving = waited > Self.starvationThreshold && !waiters.isEmpty
            } else {
                state.bitwiseAnd(~Self.locked, ordering: .releasing)
            }
        } else {
            starving = false
            state.bitwiseAnd(~Self.locked, ordering: .releasing)
        }
        queueLock.unlock()
        next?.resume()
    }

    /// Queued waiters, live or dead (for tests).
    var waiterCount: Int { queueLock.withLock { waiters.count } }
}
