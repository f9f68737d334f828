// ChannelTimer.swift: timers that deliver into a channel (GreenTimer,
// Ticker, after), on the timer heaps that already wake sleepers.
//
// ## The problem
//
// A service wants "give up after 200 ms", "tick every second", and wants to
// wait for either beside its data: so a timer must be a channel, which a
// `select` can wait on like any other. Three demands pull against each
// other. A server arms and disarms a timer per request, so creating and
// stopping one must cost about an allocation, and a million pending ones
// must stay cheap (O(log n) to arm, O(1) to stop, memory bounded by what
// is live, not by what was ever armed). A stopped or re-armed timer must
// not deliver a stale value afterwards (Go learned this the hard way:
// before Go 1.23 every `Stop`/`Reset` needed a racy drain by the caller).
// And timers must work from a plain OS thread too, where there is no
// worker and no heap.
//
// ## The design: a timer is a wait target
//
// A worker's `TimerHeap` holds `(deadline, Waker)` entries and fires one by
// winning the CAS of its target's `claim` from the entry's ticket to
// ticket+1 (WaitTarget.swift). A `ChannelTimer` is such a target: arming
// it takes a fresh ticket and adds one entry; firing is that claim,
// followed by `resumeFromWait`, which here sends the instant into the
// timer's channel (capacity 1) instead of resuming a thread. So:
//
//  * Stopping is the timer's own `disarm`: one CAS that makes the entry
//    stale. The heap drops stale entries lazily; the stopper reports each
//    one (`noteStale`), and once stale entries could be half the heap it
//    filters them out in O(n), O(1) per stop amortized, so a loop that
//    creates and stops timers keeps the heap at its live size.
//  * Re-arming (`reset`, a ticker's next tick) takes a new ticket; the old
//    entry, if still queued, can never match again.
//  * Nothing new fires timers: the workers' existing checks, idle workers'
//    timed sleeps and sysmon serve these entries with the sleepers'.
//
// ## Where a timer lives (TimerHome.swift)
//
// In the heap of the worker whose code creates it (a green thread, or the
// scheduler), on that runtime's clock, virtual time included: a ticker of a
// simulation ticks in simulated time. Made anywhere else (a plain OS
// thread, a blocking-pool thread) it lives in the process's one timer
// thread (TimerThread.swift), started at the first such timer. A timer
// keeps its home when stopped and re-armed from another thread.
//
// ## Stale values: Go 1.23's rule
//
// After `stop()` or `reset` returns, no value from before the call is ever
// received. Both take the timer's lock, withdraw the armed ticket, forget
// it (`ticket = 0`, or the new one), and drain the channel's buffer.
// `resumeFromWait` delivers only under the same lock and only if the
// ticket it claimed is still the timer's current one: a fire that won its
// claim just before a stop finds the ticket gone and drops its value. So
// the channel looks unbuffered to a reader that stops or resets, as Go
// 1.23's timer channels do, and as there, a value that fired but was not
// yet received counts as "not fired": `stop()` returns true when it
// drained one, or when it pre-empted a fire in flight, or when it disarmed
// a pending entry; false only once the value was received (or the timer
// was already stopped).
//
// A ticker re-arms inside that same locked step, on its period's grid:
// the next deadline is the first `deadline + k·period` after now, so a
// late fire does not make later ticks drift, and ticks a slow reader
// missed are dropped (the buffer holds one; `trySend` drops the rest).
//
// Rejected designs:
//  * A green thread per timer, sleeping and then sending: a stack and a
//    spawn per timer, and stopping it means cancelling a thread.
//  * A separate heap of timer objects with a removal index (Go's pre-1.14
//    timer buckets): O(log n) eager removal on every stop, and a second
//    structure the idle workers and sysmon would have to serve.
//  * Stop without draining (Go before 1.23): every caller of `reset` had to
//    drain the channel itself, and could not do it without a race.
//  * Stopping a timer when its `GreenTimer` is released (Go 1.23 collects
//    unreferenced timers): ARC releases an object after its last use, not
//    at the end of the scope, so `for t in Ticker(every:).channel` would
//    stop ticking at once. A timer runs until stopped, or until it fires.
//
// ## Protocol and orderings
//
// | step                                    | how                        | pairs with                          |
// |-----------------------------------------|----------------------------|-------------------------------------|
// | arm: ticket, then `heap.add`            | releasing store of claim;  | the heap's acquiring claim CAS      |
// |                                         | the heap's lock            | (fire pops under the same lock)     |
// | fire: claim CAS (heap), then lock       | acq_rel CAS                | stop/reset's `disarm` CAS           |
// | fire: deliver if `claim == ticket + 1`  | timer lock                 | stop/reset clearing `ticket`        |
// |   and that ticket is still current      |                            | under the same lock                 |
// | stop/reset: disarm, forget, drain       | timer lock, acq_rel CAS    | a fire waiting for the lock         |
//
// A fire's `resumeFromWait` also checks `now >= deadline`: the only claims
// made early are a runtime's shutdown (`drainAll` wakes every entry as
// cancelled), and a timer must not fire for that. Lock order: timer lock,
// then a channel's or the heap's lock; neither calls back into a timer
// while holding its own (the heap wakes after unlocking).
//
// Limits: a timer of a runtime that has shut down never fires; a
// green thread that waits only for a timer of the timer thread (one made
// on a plain OS thread) looks idle to the deadlock detector, like one
// waiting for any other outside sender (RuntimeCore.swift).

import Synchronization

/// One timer or ticker: a `WaitTarget` whose wake-up sends the instant
/// into `channel`. Public faces: `GreenTimer`, `Ticker`, `after(_:)`.
final class ChannelTimer: WaitTarget, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `period`, `deadline` and `ticket` are
    // guarded by `lock` (or written in init before the timer is
    // published); `home` and `channel` never change.

    /// Receives the instant of each fire; never closed.
    let channel = Channel<ContinuousClock.Instant>(capacity: 1)
    private let home: TimerHome
    private let lock = SpinLock()
    /// Nanoseconds between ticks; 0 for a one-shot timer. Guarded by: lock.
    @exclusivity(unchecked) private var period: Int64
    /// When the armed entry is due, on `home.clock`. Guarded by: lock.
    @exclusivity(unchecked) private var deadline: Int64 = 0
    /// The armed ticket, or 0 when nothing will fire. Guarded by: lock.
    @exclusivity(unchecked) private var ticket: UInt64 = 0
    /// Whether the timer sent a value since it was last withdrawn, which
    /// may still be in the buffer: a stop that finds false need not try to
    /// drain (the common create-then-stop of a timeout). Guarded by: lock.
    @exclusivity(unchecked) private var sent = false

    /// Starts a timer due `delay` from now (at once if it is not positive)
    /// that repeats every `period` nanoseconds (0: once).
    init(after delay: Duration, period: Int64) {
        home = TimerHome.ofCaller()
        self.period = period
        super.init()
        // Nothing else can reach the timer yet: no lock needed.
        let added = start(after: delay)
        if added { home.timerAdded(deadline: deadline) }
    }

    /// Stops the timer; see the file header for what true means.
    func stop() -> Bool {
        lock.lock()
        let (pending, disarmed) = withdrawLocked()
        lock.unlock()
        if disarmed { home.noteStale() }
        return pending
    }

    /// Stops the timer and arms it again, due `delay` from now, repeating
    /// every `period` nanoseconds if given (else as before). Returns what
    /// `stop()` would have.
    func reset(after delay: Duration, period: Int64? = nil) -> Bool {
        lock.lock()
        let (pending, disarmed) = withdrawLocked()
        if let period { self.period = period }
        let added = start(after: delay)
        let due = deadline
        lock.unlock()
        if disarmed { home.noteStale() }
        if added { home.timerAdded(deadline: due) }
        return pending
    }

    /// Withdraws the armed ticket and drains the buffer (lock held).
    /// `pending`: a value will now never be received that would have been;
    /// `disarmed`: a heap entry turned stale.
    private func withdrawLocked() -> (pending: Bool, disarmed: Bool) {
        let t = ticket
        ticket = 0
        // Failing, the heap has claimed `t` (its fire will find the ticket
        // gone), or a shutdown did.
        let disarmed = t != 0 && disarm(t)
        let drained = sent && channel.tryReceive() != nil
        sent = false
        return (t != 0 || drained, disarmed)
    }

    /// Arms the timer `delay` from now, or fires it at once when that is
    /// not in the future. Lock held (or the timer unpublished). Returns
    /// whether an entry went into the heap.
    private func start(after delay: Duration) -> Bool {
        let ns = TimerHome.nanoseconds(delay)
        if ns <= 0 && period == 0 {
            sent = channel.trySend(ContinuousClock.now)
            return false
        }
        let now = home.now()
        deadline = ns <= 0 ? now : now.addingSaturating(ns)
        ticket = arm()
        home.add(deadline: deadline, waker: Waker(target: self, ticket: ticket))
        return true
    }

    /// The heap's claim won: deliver, unless the claim is stale or early.
    override func resumeFromWait() {
        lock.lock()
        let t = ticket
        let now = home.now()
        guard t != 0, claim.load(ordering: .acquiring) == t &+ 1, now >= deadline else {
            lock.unlock()
            return
        }
        if channel.trySend(ContinuousClock.now) { sent = true }
        // Once the runtime shuts down, a ticker's next entry would never
        // fire (and would keep its worker): it stops with the runtime.
        if period == 0 || home.isClosing {
            ticket = 0
            lock.unlock()
            return
        }
        // The next point of the grid after now: missed ticks are dropped.
        let behind = (now - deadline) / period + 1
        let (step, overflow) = period.multipliedReportingOverflow(by: behind)
        deadline = overflow ? Int64.max : deadline.addingSaturating(step)
        ticket = arm()
        home.add(deadline: deadline, waker: Waker(target: self, ticket: ticket))
        let due = deadline
        lock.unlock()
        home.timerAdded(deadline: due)
    }
}

extension Int64 {
    /// `self + other`, clamped to `Int64.max` / `Int64.min`.
    @inline(__always)
    func addingSaturating(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? Int64.max : Int64.min) : sum
    }
}
