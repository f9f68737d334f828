// GreenEvent.swift: a flag that threads can wait to be set (Python's
// threading.Event, gevent's Event).
//
// ## The problem
//
// "Wait until it has happened" for any number of waiters, where "it" may
// have happened long ago (then the wait returns at once) and may be undone
// (`clear`) for a later round. A WaitGroup counts and cannot be re-armed;
// a GreenCondition needs a mutex and a predicate loop around it.
//
// ## Protocol
//
// The flag lives in an atomic, so that `isSet` and a `wait` on a set event
// take no lock (one acquiring load). Changes of the flag and the waiter
// list happen under one SpinLock:
//
//  * `set` stores the flag and claims every queued waiter in one locked
//    section, then resumes them after it. A waiter is resumed with
//    `.notified` exactly when a `set` claimed it, so a `clear` right after
//    the `set` cannot take the wake-up back (Python's rule: a wait that the
//    set ended returns true even if the flag is already clear again).
//  * `wait` re-checks the flag under the lock before it queues: a `set`
//    cannot fall between the check and the queueing (a lost wake-up).
//  * A waiter that ends by cancellation (or a deadline) was not claimed and
//    unlinks itself (Park.waitQueued).
//
// ## Memory ordering
//
// | operation                        | ordering  | pairs with                                 |
// |----------------------------------|-----------|--------------------------------------------|
// | set: store flag (under lock)     | releasing | `wait`/`isSet`'s acquiring load            |
// | wait: load flag (fast path)      | acquiring | `set`'s releasing store                    |
// | set → a queued waiter            | (resume)  | the resume's release → acquire             |
// | clear: store flag (under lock)   | relaxed   | ordered by the SpinLock                    |
//
// So whatever the setter wrote before `set` is visible to every thread that
// returns from `wait` because of it.

import Synchronization

/// A flag that green threads and OS threads can wait on (Python's
/// `threading.Event`, gevent's `Event`).
///
/// ```swift
/// let ready = GreenEvent()
/// go { loadIndex(); ready.set() }
/// try ready.wait()          // returns once the index is loaded
/// ```
///
/// `set` wakes every waiter; a `wait` on an event that is already set
/// returns at once. `clear` re-arms it for a later round.
public final class GreenEvent: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `flag` is atomic (changed only under
    // `lock`); `waiters` is guarded by `lock`.

    let flag = Atomic<Bool>(false)
    let lock = SpinLock()
    @exclusivity(unchecked) var waiters = WaiterList()  // Guarded by: lock

    /// Creates an event that is not set.
    public init() {}

    /// Whether the event is set (a snapshot).
    public var isSet: Bool { flag.load(ordering: .acquiring) }

    /// Sets the event and wakes every thread waiting for it. Setting a set
    /// event does nothing. Callable from any thread.
    public func set() {
        lock.lock()
        // releasing: pairs with the lock-free check in `wait` and `isSet`.
        flag.store(true, ordering: .releasing)
        let woken = waiters.claimAll()
        lock.unlock()
        woken.resumeAll()
    }

    /// Clears the event: later `wait`s wait for the next `set`. Threads
    /// already woken by a `set` stay woken. Callable from any thread.
    public func clear() {
        lock.withLock { flag.store(false, ordering: .relaxed) }
    }

    /// Waits until the event is set; returns at once if it is.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Throws: `CancellationError` if the calling green thread is
    ///   cancelled while waiting.
    public func wait() throws {
        if try !wait(deadline: nil) { throw CancellationError() }
    }

    /// Like `wait()`, but gives up after `timeout`.
    /// - Returns: true if the event was set, false if the timeout passed
    ///   first.
    /// - Throws: `CancellationError` if the calling green thread is
    ///   cancelled while waiting.
    public func wait(timeout: Duration) throws -> Bool {
        try wait(deadline: Park.deadline(after: timeout))
    }

    private func wait(deadline: Int64?) throws -> Bool {
        if flag.load(ordering: .acquiring) { return true }
        lock.lock()
        // Re-checked under the lock: a `set` cannot slip in between this
        // check and the queueing.
        if flag.load(ordering: .relaxed) {
            lock.unlock()
            return true
        }
        let (cause, _) = Waiter.withTemporary { me in
            Park.waitQueued(me, lock: lock, reason: .other("GreenEvent.wait"), deadline: deadline,
                            enqueue: { waiters.append($0) }, unlink: { waiters.remove($0) })
        }
        switch cause {
        case .notified: return true
        case .timedOut: return false
        case .cancelled, .deadlock: throw CancellationError()
        case .deadlineExceeded: throw DeadlineExceeded()
        }
    }

    /// Queued waiters, live or dead (for tests).
    var waiterCount: Int { lock.withLock { waiters.count } }
}
