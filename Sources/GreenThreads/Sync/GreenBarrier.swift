// GreenBarrier.swift: a reusable rendezvous of a fixed number of threads
// (Python's threading.Barrier, Tokio's Barrier, Java's CyclicBarrier).
//
// ## The problem
//
// N threads work in phases; none may start phase k+1 before all finished
// phase k. The barrier must be reusable (the same object for every phase),
// and a party that can no longer arrive must not leave the others waiting
// forever.
//
// ## Protocol
//
// One SpinLock guards the count of arrivals in the current generation,
// the generation number, the broken flag and the waiter list.
//
//  * The first `parties - 1` arrivals of a generation queue and park. The
//    last one trips the barrier: it claims every queued waiter with outcome
//    `.completed`, resets the count and bumps the generation, all in one
//    locked section, and resumes them after it. A thread that arrives after
//    the trip belongs to the next generation: the barrier is reusable at
//    once.
//  * Each arrival learns its index (0 for the first, `parties - 1` for the
//    one that trips it) under the lock, so exactly one party per generation
//    gets each index (Python's return value; Tokio's `is_leader` is the
//    tripping one).
//
// ## A party that gives up: the barrier breaks
//
// A waiter cancelled (or past a deadline) cannot simply leave: the others
// counted on N arrivals, and if it withdrew silently they would wait for a
// replacement that, in a fixed group of N workers, never comes. So it
// *breaks* the barrier (Python's and Java's rule): it throws
// `CancellationError` itself, every other waiter of its generation is woken
// with `GreenBarrierError.broken` (outcome `.closed`), and later arrivals
// throw `broken` at once until `reset()`. A group that cancels its members
// on the first error thus unblocks all of them, not only the cancelled one.
//
// A cancellation that races with the trip loses or wins as one claim: if
// the tripping thread claimed the waiter first, it passes (the generation
// is complete); if the cancellation won, the tripping thread skips it (a
// dead claim) and the others pass, and the cancelled waiter, finding its
// generation already over, throws `CancellationError` without breaking the
// next generation.
//
// Rejected: Tokio's model, where a dropped `wait` future leaves its arrival
// counted, so the generation still trips when the others arrive. A
// cancelled green thread would then have "arrived" at a phase it did not
// finish, and the others would run ahead of it unknowingly.
//
// ## Memory ordering
//
// Everything a party wrote before arriving is published to every party
// that passes the same generation: the arrivals' SpinLock sections order
// them before the trip, and the tripping thread's resume of each waiter is
// a release that the waiter's wake-up acquires.

/// Why `GreenBarrier.arriveAndWait` could not pass.
public enum GreenBarrierError: Error, Sendable, Equatable {
    /// A party waiting at the barrier was cancelled (or its deadline
    /// passed), or `reset()` was called while threads waited: the barrier
    /// is broken until `reset()`.
    case broken
}

/// A reusable barrier for a fixed number of parties (Python's
/// `threading.Barrier`, Java's `CyclicBarrier`): each `arriveAndWait`
/// waits until `parties` threads have arrived, then all of them continue,
/// and the barrier is ready for the next round.
///
/// ```swift
/// let phase = GreenBarrier(parties: workers)
/// for worker in 0..<workers {
///     go {
///         for step in steps {
///             compute(step, worker)
///             if try phase.arriveAndWait() == 0 { report(step) }  // one party per round
///         }
///     }
/// }
/// ```
///
/// A waiting party that is cancelled breaks the barrier: the other waiters
/// throw `GreenBarrierError.broken`, as does every later arrival until
/// `reset()`.
public final class GreenBarrier: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `parties` never changes; the rest is
    // guarded by `lock`.

    /// The number of threads that must arrive for the barrier to trip.
    public let parties: Int

    private let lock = SpinLock()
    @exclusivity(unchecked) private var arrived = 0             // Guarded by: lock
    @exclusivity(unchecked) private var generation: UInt64 = 0  // Guarded by: lock
    @exclusivity(unchecked) private var broken = false          // Guarded by: lock
    @exclusivity(unchecked) private var waiters = WaiterList()  // Guarded by: lock

    /// Creates a barrier for `parties` threads.
    /// - Precondition: `parties > 0`.
    public init(parties: Int) {
        // fatalError, not precondition: an optimized build keeps its
        // message, which names the misuse.
        guard parties > 0 else { fatalError("GreenThreads: GreenBarrier needs at least one party; got parties: \(parties)") }
        self.parties = parties
    }

    /// Arrives at the barrier and waits until all `parties` threads of
    /// this round have arrived.
    ///
    /// Callable from a green thread (parks) or an OS thread (blocks).
    /// - Returns: this thread's arrival index in the round, from 0 (the
    ///   first) to `parties - 1` (the last, whose arrival releases the
    ///   others); each index goes to exactly one party per round, so a test
    ///   such as `== 0` picks one leader.
    /// - Throws: `CancellationError` if the calling green thread is
    ///   cancelled while waiting (it then breaks the barrier);
    ///   `GreenBarrierError.broken` if the barrier is or becomes broken.
    @discardableResult
    public func arriveAndWait() throws -> Int {
        lock.lock()
        if broken {
            lock.unlock()
            throw GreenBarrierError.broken
        }
        let index = arrived
        if index == parties - 1 {
            // Last to arrive: trip it and start the next generation.
            let woken = waiters.claimAll(outcome: .completed)
            arrived = 0
            generation &+= 1
            lock.unlock()
            woken.resumeAll()
            return index
        }
        arrived += 1
        let myGeneration = generation
        var brokenWaiters = ClaimedWaiters()
        let (cause, outcome) = Waiter.withTemporary { me -> (WakeCause, Waiter.Outcome) in
            let (cause, _) = Park.waitQueued(me, lock: lock, reason: .other("GreenBarrier.arriveAndWait"),
                                        enqueue: { waiters.append($0) },
                                        unlink: { me in
                                            // Under `lock`, after a wait that
                                            // no trip ended: break our round,
                                            // if it is still the current one.
                                            waiters.remove(me)
                                            if generation == myGeneration && !broken {
                                                breakLocked(into: &brokenWaiters)
                                            }
                                        })
            return (cause, me.pointee.outcome)
        }
        brokenWaiters.resumeAll()
        try cause.throwUnlessNotified()
        if outcome == .closed { throw GreenBarrierError.broken }
        return index
    }

    /// Makes a broken barrier usable again, starting a new round with no
    /// arrivals. Threads waiting at the barrier when it is called throw
    /// `GreenBarrierError.broken` (Python's `reset`).
    public func reset() {
        lock.lock()
        var woken = ClaimedWaiters()
        if !waiters.isEmpty { waiters.claimAll(outcome: .closed, into: &woken) }
        arrived = 0
        generation &+= 1
        broken = false
        lock.unlock()
        woken.resumeAll()
    }

    /// Whether the barrier is broken (a snapshot).
    public var isBroken: Bool { lock.withLock { broken } }

    /// Threads waiting for the current round to complete (a snapshot).
    public var waitingCount: Int { lock.withLock { arrived } }

    /// Under `lock`: marks the barrier broken and claims every waiter of
    /// the round, to be woken with `broken` once the lock is released.
    private func breakLocked(into woken: inout ClaimedWaiters) {
        broken = true
        arrived = 0
        generation &+= 1
        waiters.claimAll(outcome: .closed, into: &woken)
    }

    /// Queued waiters, live or dead (for tests).
    var waiterCount: Int { lock.withLock { waiters.count } }
}
