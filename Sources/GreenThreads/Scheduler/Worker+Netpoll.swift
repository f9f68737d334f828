import CContext
import Synchronization

// Worker+Netpoll.swift: handing out what a netpoll readied.
//
// Readiness ends waits through the ordinary wakers, and a wake made on a
// worker lands in its run-next slot. For a netpoll that readies dozens of
// threads at once that would be wrong twice over: each wake would displace
// the previous one into the deque and pay a notification (a fence) of its
// own, and the one idle worker it woke would be alone against the whole
// batch. So a worker that polls collects (Go's netpoll + injectglist): while
// `collectingPolled` is set, readied threads are linked into the worker's
// `polled` list and counted; then the batch goes to its deque, where thieves
// can take them, and one idle worker is woken per thread it will not run
// itself, up to the number asleep (`Idle.notifyWork(surplus:)`).
//
// ## First ready, first served
//
// The deque is LIFO for its owner. A batch pushed on top of queued work
// runs before that work, and a busy worker polls while its deque still
// holds the previous batch (`busyPollNanos`): each new batch would overtake
// the older ones, and the thread of a connection readied early would wait
// for as long as newer readiness kept coming, one old thread served per
// fairness tick (every 31st pick). Under load that is a server whose p99
// latency is many times its median, the longest-waiting connections
// served last. Go puts what netpoll readied at the tail of the P's FIFO run
// queue (`injectglist` → `runqput` without `next`), behind older work;
// Tokio's worker queue is FIFO too, and what its I/O driver wakes goes to
// the back, all but the last (its LIFO slot). So a batch goes *under* what
// the deque holds:
//
//   1. the batch is collected off the deque, in the `polled` list, newest
//      event at the head (each readied thread is prepended, and the poller
//      dispatches in epoll's order, oldest readiness first);
//   2. if the deque holds anything, the owner lifts it all off, oldest
//      first (`takeOldest`, as a thief would: a CAS on `top` each);
//   3. the batch is pushed from its head, so the first event reported ends
//      at the bottom and runs first, and a blocked poller's extra rounds
//      (Net/Poller.swift, `blockIdle`) queue behind its first;
//   4. the lifted threads are pushed back in the order they came off, so
//      they keep their order among themselves and all run before the batch.
//
// Thieves still take from the top, which now holds the batch's newest
// threads: work that was just readied, which another worker may as well
// run.
//
// Rejected:
// * The batch at the deque's far end directly. `top` belongs to the
//   thieves, who advance it by CAS; an owner that moved it back would
//   race them for the slots below (the Chase–Lev argument in Deque.swift
//   assumes `top` never decreases).
// * A FIFO queue of its own for polled threads: one more place for every
//   pick and every thief to look, for a case that arises only at a busy
//   worker's periodic poll.
// * The injector (Go's route for a poll made without a P): a lock per
//   batch, and the injector tick brings injected threads back on top of the
//   deque, ahead of older work again.
//
// Cost: one CAS and one push per lifted thread, paid only by a poll that
// finds the deque non-empty. Idle workers poll with empty queues, so that
// is a busy worker's periodic poll: at most once per `busyPollNanos`, at
// most a deque's capacity (1,024) of threads. While lifted (between steps 2
// and 4, no syscall in between) the threads are out of thieves' sight; an
// idle worker that parks in that window loses nothing, since the owner is
// awake and runs them, and the batch's notification comes after step 4.
//
// ## When a busy worker polls
//
// At its injector tick, only when no idle worker is blocked in epoll_wait
// to collect readiness, and, while its deque still holds work, no more than
// every `busyPollNanos` (why: at that constant).

extension Worker {
    /// How often a busy worker whose deque still holds work polls the
    /// netpoller at its injector tick. What such a poll readies queues
    /// behind that work, so polling sooner would run none of it sooner on
    /// this worker (the kernel keeps readiness in order meanwhile); it
    /// would only cost more epoll_waits and lifts. The bound keeps
    /// readiness from waiting forever behind a deque that never empties:
    /// a worker works through its queue and polls when it runs dry, and
    /// falls back to this only otherwise (Go's sysmon polls the same way,
    /// once the last poll is 10 ms old).
    static let busyPollNanos: Int64 = 10_000_000

    /// A non-blocking netpoll whose woken green threads are handed out as a
    /// batch (Go's netpoll + injectglist): all of them go to our deque,
    /// under what it already holds, where thieves can take them, and idle
    /// workers are woken for the surplus.
    /// `keepOne`: the caller is about to run one of them itself (it is out
    /// of work); otherwise (a busy worker's periodic poll) all are surplus.
    /// Returns how many green threads it queued.
    @inline(never)
    func pollReady(keepOne: Bool) -> Int {
        local.pointee.collectingPolled = true
        local.pointee.lastPoll = gt_now_ns()
        poller.poll(into: pollEvents)
        return distributePolled(keepOne: keepOne)
    }

    /// Ends a collection begun by setting `collectingPolled`: queues the
    /// batch (`queuePolled`), then wakes one idle worker per queued green
    /// thread we will not run next, up to the number asleep. One wake-up per
    /// readied thread (the default path) would pay a fence each and still
    /// wake at most one worker while any spins; one wake-up per batch would
    /// leave the other idle workers asleep while this one works through the
    /// whole batch alone.
    @inline(__always)
    func distributePolled(keepOne: Bool) -> Int {
        let l = local
        l.pointee.collectingPolled = false
        let n = l.pointee.polledCount
        guard n > 0 else { return 0 }
        l.pointee.polledCount = 0
        queuePolled()
        let surplus = keepOne ? n - 1 : n
        if surplus > 0 { idle.notifyWork(surplus: surplus) }
        return n
    }

    /// Links a green thread readied during a netpoll batch into the
    /// `polled` list, at its head (see `pollReady`). Returns false when no
    /// batch is being collected.
    @inline(__always)
    func collectPolled(_ fiber: Unmanaged<Fiber>) -> Bool {
        let l = local
        guard l.pointee.collectingPolled else { return false }
        let head = l.pointee.polled
        fiber._withUnsafeGuaranteedRef { $0.queueNext = head }
        l.pointee.polled = fiber
        l.pointee.polledCount += 1
        return true
    }

    /// Steps 2–4 of the header: the `polled` list goes to the deque under
    /// whatever the deque holds, the list's head deepest.
    @inline(never)
    private func queuePolled() {
        let l = local
        var older = FiberBatch()
        if !deque.isEmptyForOwner {
            while let bits = deque.takeOldest() { older.append(bits) }
            // `append` links each to the next; the last one's link is stale.
            older.last?._withUnsafeGuaranteedRef { $0.queueNext = nil }
        }
        pushChain(l.pointee.polled)
        l.pointee.polled = nil
        pushChain(older.first)
    }

    /// Pushes green threads linked through `queueNext`, first to last,
    /// unlinking each.
    @inline(__always)
    func pushChain(_ first: Unmanaged<Fiber>?) {
        var next = first
        while let f = next {
            next = f._withUnsafeGuaranteedRef { f in
                let rest = f.queueNext
                f.queueNext = nil
                return rest
            }
            pushLocal(f)
        }
    }
}
