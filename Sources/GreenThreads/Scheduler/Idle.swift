import CContext
import Synchronization

// Idle.swift: which workers are looking for work, which are asleep, and
// whom to wake when work appears (Go's spinning-M bookkeeping).
//
// Why wake at most one worker per burst, and why a parking worker cannot
// miss work published meanwhile, is argued in Worker.swift's header ("The
// spin/park handshake"). This file holds the counters that argument runs on:
// two atomic counters, `spinning` and `sleeping`, and a sleeper list under a
// `SpinLock`.
//
// ## Spinning
//
// `tryStartSpinning` allows a new spinner while 2·spinning < workers −
// sleeping (Go: 2*nmspinning < nprocs - npidle): beyond half of the busy
// workers, more spinners only fight over the same cache lines. The check and
// the increment are separate steps, so the cap can be overshot for a moment;
// it is only an optimisation. A spinner that finds work stops spinning, and
// if it was the last one it calls `notifyWork`, so someone keeps looking:
// wake-ups ramp up one worker at a time while work keeps turning up.
//
// ## Waking
//
// `notifyWork` runs after a publish: full fence, then, if nobody spins and
// someone sleeps, `wakeOne`. That wins `spinning` 0 → 1 by CAS, pops the
// *last* sleeper (the warmest cache; passing over the one in epoll_wait
// while another exists, since that one keeps watching the fds), and unparks
// it. The woken worker **inherits** that spinning count; with no sleeper to
// pop, the count is given back. So one submission wakes at most one worker,
// and so does a burst of concurrent ones: only a winner of 0 → 1 wakes
// anyone, and the count stays at 1 or more until the woken worker finds work
// or sleeps again. A netpoll batch (`notifyWork(surplus:)`) wakes up to one
// sleeper per surplus thread, less the workers already spinning, the first
// through the same CAS; each extra one also starts out spinning and hands its
// count back on finding work or sleeping again.
//
// `removeSleeper` (a worker that stopped sleeping by itself) and the
// notifiers settle races under the lock: whoever takes a worker off the list
// owns its wake-up. A worker that finds itself already taken off knows an
// unpark and a spinning count are on their way.
//
// ## Timed sleep
//
// A worker sleeps no later than the earliest deadline of *any* worker's
// timers, so every sleeping worker doubles as the timer thread of busy ones:
// timers are fired under a try-lock by whoever gets there, and the threads
// they wake land in the *firing* worker's run-next slot, so they move to the
// idle worker. `sleepUntil` is about the earliest moment a sleeper wakes by
// itself; a green thread arming an earlier timer while nobody spins wakes
// one (`timerAdded`), so a worker stuck in a long computation does not make
// its sleepers oversleep.
//
// ## The parker
//
// A worker sleeps on a `gt_parker` (parker.c), a one-waiter futex word:
// EMPTY / NOTIFIED / SLEEPING. `unpark` exchanges in NOTIFIED (release) and
// makes the `FUTEX_WAKE` syscall only if the old value was SLEEPING, so
// unparking a worker that is not asleep costs no syscall. `park` consumes a
// pending notification without sleeping, treats futex returns as possibly
// spurious, and leaves SLEEPING by CAS on timeout, so a notification landing
// at that moment is not lost.

/// Coordinates idle workers: who is spinning (looking for work to steal),
/// who is asleep, and whom to wake when work appears.
final class Idle: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the counters are atomics; `sleepers` is
    // guarded by `lock`; everything else is immutable after init.

    let spinning = Atomic<Int>(0)
    let sleeping = Atomic<Int>(0)
    /// About the earliest moment a sleeping worker wakes by itself (its
    /// timer deadline); `Int64.max` when none will. Approximate on purpose:
    /// an error costs at most one needless wake-up.
    let sleepUntil = Atomic<Int64>(Int64.max)
    private let lock = SpinLock()
    private var sleepers: [Worker] = []
    /// Workers taking part in scheduling: the configured ones plus the
    /// replacement workers sysmon has activated (SpareWorker.swift).
    let activeWorkers: Atomic<Int>
    /// Rung when a worker stops sleeping, in case sysmon sleeps too.
    let sysmonBell = SysmonBell()

    init(workerCount: Int, capacity: Int) {
        activeWorkers = Atomic(workerCount)
        sleepers.reserveCapacity(capacity)
    }

    /// Whether some worker is spinning or asleep, and so could run work
    /// that another worker makes visible. Relaxed and approximate: a stale
    /// answer costs one needless exposure or defers one to the next switch.
    @inline(__always)
    var anyIdle: Bool {
        spinning.load(ordering: .relaxed) != 0 || sleeping.load(ordering: .relaxed) != 0
    }

    /// May the caller start spinning? (Go: 2*nmspinning < nprocs - npidle.)
    func tryStartSpinning() -> Bool {
        // A lone worker has nobody to steal from; what comes from outside
        // arrives with a wake-up anyway.
        let workerCount = activeWorkers.load(ordering: .relaxed)
        if workerCount == 1 { return false }
        let s = spinning.load(ordering: .relaxed)
        if 2 * s >= workerCount - sleeping.load(ordering: .relaxed) { return false }
        spinning.add(1, ordering: .sequentiallyConsistent)
        return true
    }

    /// Stops spinning. Returns true if the caller was the last spinner.
    func stopSpinning() -> Bool {
        spinning.subtract(1, ordering: .sequentiallyConsistent).newValue == 0
    }

    /// Called after publishing work. Wakes one sleeper if nobody is looking.
    @inline(__always)
    func notifyWork() {
        // StoreLoad: our published work must be visible before we read
        // `spinning`; pairs with the fence in `Worker.parkIdle`.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if spinning.load(ordering: .relaxed) != 0 || sleeping.load(ordering: .relaxed) == 0 { return }
        wakeOne()
    }

    /// `notifyWork` after a publish that was itself a sequentially
    /// consistent read-modify-write (`Worker.pushRunNext`'s exchange): that
    /// exchange takes the fence's place, so the wake of a green thread costs
    /// no separate fence. Argument (C++20 [atomics.order]): a sleeper P
    /// changes `sleeping`/`spinning`, then fences (F_P), then reads the
    /// run-next slots. If our seq_cst load of a counter missed P's change,
    /// that load precedes F_P in the total order S; our exchange precedes
    /// our load in S; so the exchange precedes F_P, and P's re-check, after
    /// F_P, sees the published thread. Either we see P, or P sees the work.
    @inline(__always)
    func notifyWorkAfterSeqCstPublish() {
        if spinning.load(ordering: .sequentiallyConsistent) != 0
            || sleeping.load(ordering: .sequentiallyConsistent) == 0 { return }
        wakeOne()
    }

    /// Called after publishing `count` runnable green threads at once (a
    /// netpoll batch): wakes up to `count` sleepers, less the workers
    /// already spinning (each will take some of the batch). Go's
    /// injectglist starts one idle P per readied goroutine the same way.
    ///
    /// With `count` ≥ 1 it wakes at least one sleeper whenever `notifyWork`
    /// would, so the no-lost-wake-up argument is unchanged; the extra
    /// sleepers it wakes each start out spinning, like any woken worker, and
    /// hand their spinning count back on finding work or sleeping again.
    func notifyWork(surplus count: Int) {
        // StoreLoad, as in notifyWork: pairs with the fence in parkIdle.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        let spinners = spinning.load(ordering: .relaxed)
        let sleepers = sleeping.load(ordering: .relaxed)
        if sleepers == 0 { return }
        if spinners == 0 {
            // The first wake-up goes through the usual CAS, so that a
            // concurrent notifier and we wake one worker between us, not two.
            wakeOne()
            wakeMore(min(count, sleepers) - 1)
        } else {
            wakeMore(min(count, sleepers) - spinners)
        }
    }

    /// Wakes up to `count` more sleepers, giving each a spinning count.
    private func wakeMore(_ count: Int) {
        if count <= 0 { return }
        var woken: [Worker] = []
        lock.lock()
        while woken.count < count, let worker = popSleeper() {
            sleeping.subtract(1, ordering: .relaxed)
            woken.append(worker)
        }
        lock.unlock()
        if woken.isEmpty { return }
        spinning.add(woken.count, ordering: .sequentiallyConsistent)
        for worker in woken { worker.unpark() }
        sysmonBell.ring()  // a worker left the sleeper list: sysmon watches again
    }

    private func wakeOne() {
        guard spinning.compareExchange(
            expected: 0, desired: 1, ordering: .sequentiallyConsistent
        ).exchanged else { return }
        lock.lock()
        let worker = popSleeper()
        if worker != nil { sleeping.subtract(1, ordering: .relaxed) }
        lock.unlock()
        if let worker {
            // The spinning count we took is now the woken worker's.
            worker.unpark()
            sysmonBell.ring()
        } else {
            _ = spinning.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    /// The warmest sleeper, passing over the one blocked in epoll_wait
    /// while another exists: that one keeps watching the fds. Under lock.
    private func popSleeper() -> Worker? {
        guard let last = sleepers.last else { return nil }
        if !last.inPoll.load(ordering: .relaxed) || sleepers.count == 1 { return sleepers.removeLast() }
        return sleepers.remove(at: sleepers.count - 2)
    }

    /// A green thread armed a timer. If every sleeper would oversleep it
    /// and nobody spins (a spinner recomputes its sleep from all timers),
    /// wake one so that a busy worker's timer still fires on time.
    @inline(__always)
    func timerAdded(deadline: Int64) {
        if sleeping.load(ordering: .relaxed) == 0 || deadline >= sleepUntil.load(ordering: .relaxed) { return }
        notifyWork()
    }

    func noteSleep(until deadline: Int64) {
        var current = sleepUntil.load(ordering: .relaxed)
        while deadline < current {
            let (done, now) = sleepUntil.compareExchange(expected: current, desired: deadline, ordering: .relaxed)
            if done { return }
            current = now
        }
    }

    func addSleeper(_ worker: Worker) {
        lock.lock()
        sleepers.append(worker)
        sleeping.add(1, ordering: .sequentiallyConsistent)
        lock.unlock()
    }

    /// Takes the caller back out of the sleeper list. Returns false if a
    /// notifier already took it out, in which case an unpark (and a
    /// spinning count) is on its way to the caller.
    func removeSleeper(_ worker: Worker) -> Bool {
        guard takeOut(worker, spinning: false) else { return false }
        sysmonBell.ring()
        return true
    }

    /// Wakes one particular sleeper as `wakeOne` would (it inherits a
    /// spinning count). Sysmon uses it to tell a sleeping replacement
    /// worker to retire. False if `worker` is not asleep.
    func wake(_ worker: Worker) -> Bool {
        guard takeOut(worker, spinning: true) else { return false }
        worker.unpark()  // through the eventfd if it sleeps in epoll_wait
        return true
    }

    /// Removes `worker` from the sleeper list, handing it a spinning count
    /// if asked; false if it was not there.
    private func takeOut(_ worker: Worker, spinning handOver: Bool) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let i = sleepers.firstIndex(where: { $0 === worker }) else { return false }
        sleepers.remove(at: i)
        sleeping.subtract(1, ordering: .relaxed)
        if handOver { spinning.add(1, ordering: .sequentiallyConsistent) }
        return true
    }

    /// Shutdown: wake everyone, without handing out spinning counts.
    func wakeAll() {
        lock.lock()
        let all = sleepers
        sleepers.removeAll()
        sleeping.store(0, ordering: .relaxed)
        lock.unlock()
        for w in all { w.unpark() }
    }
}
