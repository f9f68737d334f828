// AsyncWaitTarget.swift: Swift concurrency and green threads waiting on each
// other, both ways, without either side blocking the other's threads.
//
// ## The problem
//
// Two schedulers share the process: the runtime's workers run green threads,
// Swift's cooperative pool (one thread per core) runs Tasks. Each side must
// be able to wait for the other, and neither may block a thread of the
// other's pool while it waits: a worker blocked in an async call stops every
// green thread queued behind it, and a pool thread blocked on a channel
// takes one of a handful of threads away from every Task of the process (on
// a two-core machine, two such waits stop all of Swift concurrency, and the
// Task that would end them never runs).
//
//  * Async code waiting on green things (`await channel.send(v)`,
//    `await channel.receive()`, `channel.values`, `WaitGroup.wait()`,
//    `GreenEvent.wait()`; `JoinHandle.value` uses the thread's completion
//    callback, JoinHandle.swift): this file. The Task suspends on a
//    continuation; whatever ends the wait resumes the continuation.
//  * A green thread waiting on async code (`GreenThread.await`):
//    GreenAwait.swift. The body runs as a Task; the green thread parks in
//    `Park.wait` and the Task's end wakes it.
//
// ## Rejected designs
//
//  * Running the green operation on a pool thread and blocking it there
//    (`channel.receive()` called from a Task). The deadlock above.
//  * Handing the wait to a green thread (`go { ch.receive() }` joined through
//    `JoinHandle.value`). Correct, but every receive spawns a thread, and a
//    cancelled Task leaves a green thread that may still take a value from
//    the channel and drop it.
//  * Polling (`tryReceive` in a loop with `Task.yield()` or a sleep between
//    tries). Burns a pool thread while nothing happens, adds latency up to
//    the poll period, and serves waiters in no order: a receiver that polls
//    can lose every value to green receivers that park.
//  * A special case for async waiters in channels and select. Every hot path
//    (send, receive, close, the select's cases) would grow a branch.
//
// ## The design: a target whose resume is a continuation
//
// A wait in the runtime is defined by its `WaitTarget`: the claim word that
// arbitrates who ends the wait, and `resumeFromWait`, which makes the waiter
// run again (WaitTarget.swift). `AsyncWaitTarget` is a third kind of target,
// beside the fiber and the OS thread's `ThreadWaiter`: its resume resumes an
// `UnsafeContinuation`. The async operation queues an ordinary `Waiter`
// bound to it, so a channel, a select on the other side, `close`, a
// WaitGroup or an event claim and resume it through the very code that
// serves green threads: claim under the primitive's lock, write the result,
// resume after unlocking. Task cancellation is one more party that may end
// the wait: its handler makes the same claim CAS, and only if it wins does
// it resume the waiter, with `.cancelled`.
//
// The waiter and the value slot cannot live on a stack, as a green thread's
// do (Waiter.swift): an async frame offers no address that outlives a
// suspension. They live in memory the target owns, freed with it, after the
// waiter is out of every queue.
//
// ## Protocol (`Park.waitAsync`)
//
//  1. Arm a fresh ticket on the target (as a fiber's park does).
//  2. Inside `withTaskCancellationHandler`, inside `withUnsafeContinuation`'s
//     body (synchronous, before the Task suspends): `register` takes the
//     primitive's lock, retries the operation and either completes it
//     (returns false: nothing was queued) or binds the waiter to the ticket
//     and queues it (returns true); it releases the lock either way.
//  3. Not queued: the operation is done. `disarm` closes the wait; if a
//     cancellation claimed it first, its resume is on its way and is
//     consumed as in step 4. Either way the operation's own result stands.
//  4. Queued: `install(continuation)`. A claimer may already have resumed
//     the target (between the queueing and this step): see "Installing"
//     below.
//  5. Resumed: `cause` says who ended the wait. `.notified`: a claimer
//     dequeued the waiter and wrote its outcome (and value) first. Anything
//     else: the waiter is still queued, dead (its claim fails for everyone);
//     `unlink` removes it under the lock before its memory can go.
//
// A value is never lost to a cancellation: the sender (or receiver) and the
// cancellation handler race on one CAS. If the counterpart wins, it moved
// the value and the operation returns it, although the Task is cancelled;
// if the cancellation wins, the counterpart's claim fails and it serves the
// next waiter, and the value stays with it.
//
// ## Installing the continuation
//
// The continuation exists only inside `withUnsafeContinuation`'s body, and
// the waiter becomes visible (step 2) inside that body too, before the
// continuation is stored; a cancellation handler can even run before the
// body does. So `state` arbitrates the two orders:
//
//  * `install` stores the continuation, then CASes `state` empty →
//    installed. If the CAS fails, a resume came first (`state` is
//    resumed): `install` resumes the continuation itself.
//  * `resumeFromWait` exchanges `state` to resumed. If it found installed,
//    it resumes the stored continuation; if it found empty, `install` will.
//
// Exactly one of the two resumes the continuation, once. The target is
// reused for the next wait of the same operation (`channel.values`
// re-arms it per value): `rearm` resets `state` to empty. Only the
// operation itself rearms, and only after its previous wait was resumed.
//
// | operation                                    | ordering  | pairs with                                     |
// |----------------------------------------------|-----------|------------------------------------------------|
// | arm: claim = ticket                          | release   | the claimer's acquiring CAS (WaitTarget.swift)  |
// | install: continuation, then CAS → installed  | release   | `resumeFromWait`'s acquiring exchange           |
// | claimer: cause (and result), then exchange   | release   | `install`'s failed CAS (acquiring), or the      |
// |                                              |           | continuation's resume (its own release/acquire) |
//
// ## Lifetime
//
// The Task holds the target for the whole operation; claimers reach it
// unretained (a `Waiter` records its target unretained), which is safe for
// the same reason as for a fiber: a queued waiter's target cannot finish its
// operation before the waiter is dequeued, by a claimer, or unlinked under
// the lock. `resumeFromWait` reads the continuation before resuming it and
// touches nothing afterwards: from the resume on, the Task may run and free
// the target.

import Synchronization

/// A wait of a Swift concurrency Task on a green primitive (a channel, a
/// WaitGroup, an event): a `WaitTarget` whose resume resumes a continuation
/// (see the file header).
final class AsyncWaitTarget: WaitTarget, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `continuation` is written by the waiting
    // Task before it publishes it through `state` (release), and read by the
    // one resumer that acquires it; `waiter` is owned by the protocol of
    // Waiter.swift (the waiting Task, the queue's lock, then its claimer).

    private static let empty: UInt8 = 0
    private static let installed: UInt8 = 1
    private static let resumed: UInt8 = 2

    private let state = Atomic<UInt8>(0)
    @exclusivity(unchecked) private var continuation: UnsafeContinuation<Void, Never>?
    /// The waiter queued for this target: out of every queue whenever the
    /// operation that owns the target is not suspended in `Park.waitAsync`.
    let waiter: WaiterRef

    override init() {
        waiter = .allocate(capacity: 1)
        waiter.initialize(to: Waiter())
        super.init()
    }

    deinit {
        precondition(!waiter.pointee.isQueued, "GreenThreads: an async waiter was freed while still queued")
        waiter.deinitialize(count: 1)
        waiter.deallocate()
    }

    /// Prepares the next wait: the previous one has been resumed and its
    /// waiter is in no queue.
    @inline(__always)
    func rearm() -> UInt64 {
        state.store(AsyncWaitTarget.empty, ordering: .relaxed)
        continuation = nil
        waiter.pointee.outcome = .waiting
        return arm()
    }

    /// Hands the suspended Task's continuation to whoever resumes the wait
    /// (or resumes it at once if that already happened).
    @inline(__always)
    func install(_ c: UnsafeContinuation<Void, Never>) {
        continuation = c
        let (exchanged, _) = state.compareExchange(
            expected: AsyncWaitTarget.empty, desired: AsyncWaitTarget.installed,
            successOrdering: .releasing, failureOrdering: .acquiring)
        if !exchanged { c.resume() }
    }

    override func resumeFromWait() {
        let old = state.exchange(AsyncWaitTarget.resumed, ordering: .acquiringAndReleasing)
        guard old == AsyncWaitTarget.installed else { return }  // `install` resumes it
        // Read before the resume: from its first instruction the Task may
        // run and free this target.
        let c = continuation.unsafelyUnwrapped
        c.resume()
    }
}

extension Park {
    /// The async counterpart of `waitQueued(_:lock:...)`: the protocol of
    /// the file header, steps 1-5.
    ///
    /// - Parameters:
    ///   - target: the operation's target, not waiting (fresh, or resumed).
    ///   - register: under the primitive's lock, which it takes and
    ///     releases: completes the operation and returns false, or binds
    ///     `target.waiter` to the waker (`attach`), queues it and returns
    ///     true.
    ///   - unlink: takes the lock and unlinks the waiter if it is queued.
    /// - Returns: nil if the operation completed without waiting; otherwise
    ///   why the wait ended (`.notified`: a claimer dequeued the waiter and
    ///   wrote its outcome; `.cancelled`: the Task was cancelled first, and
    ///   the waiter has been unlinked).
    static func waitAsync(
        _ target: AsyncWaitTarget,
        register: (WaiterRef, UnownedWaker) -> Bool,
        unlink: (WaiterRef) -> Void
    ) async -> WakeCause? {
        let ticket = target.rearm()
        var waited = true
        await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
                if !register(target.waiter, UnownedWaker(target: target, ticket: ticket)) {
                    waited = false
                    // Nothing queued; a cancellation that claimed the
                    // ticket first resumes the target, consumed by install.
                    if target.disarm(ticket) {
                        c.resume()
                        return
                    }
                }
                target.install(c)
            }
        } onCancel: {
            Waker(target: target, ticket: ticket).wake(.cancelled)
        }
        guard waited else { return nil }
        let cause = target.cause
        if cause != .notified { unlink(target.waiter) }
        return cause
    }
}
