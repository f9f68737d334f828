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
// `collectingPolled` is set, readied threads go straight to its deque,
// where thieves can take them, and are counted; then one idle worker is
// woken per thread it will not run itself, up to the number asleep
// (`Idle.notifyWork(surplus:)`).
//
// A busy worker polls at its injector tick only when no idle worker is
// blocked in epoll_wait to collect readiness, and, while its deque still
// holds work, no more than every `busyPollNanos` (why: at that constant).

extension Worker {
    /// How often a busy worker whose deque still holds work polls the
    /// netpoller at its injector tick. The deque is LIFO for its owner: a
    /// batch polled on top of the last one runs first, and the older
    /// batch's threads wait behind every newer one (at 1,000 echo
    /// connections and 128-event batches, polling at every injector tick
    /// puts p99 at 330 ms instead of 47 ms).
    /// So, as in Go (a busy P never polls; sysmon does, after 10 ms), a
    /// worker works through what it polled before it polls again, and
    /// falls back to this bound only when its deque never empties.
    static let busyPollNanos: Int64 = 10_000_000

    /// A non-blocking netpoll whose woken green threads are handed out as a
    /// batch (Go's netpoll + injectglist): all of them go to our deque, where
    /// thieves can take them, and idle workers are woken for the surplus.
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

    /// Ends a collection begun by setting `collectingPolled`: wakes one idle
    /// worker per queued green thread we will not run next, up to the number
    /// asleep. One wake-up per readied thread (the default path) would pay a
    /// fence each and still wake at most one worker while any spins; one
    /// wake-up per batch would leave the other idle workers asleep while
    /// this one works through the whole batch alone.
    @inline(__always)
    func distributePolled(keepOne: Bool) -> Int {
        let l = local
        l.pointee.collectingPolled = false
        let n = l.pointee.polledCount
        l.pointee.polledCount = 0
        let surplus = keepOne ? n - 1 : n
        if surplus > 0 { idle.notifyWork(surplus: surplus) }
        return n
    }

    /// Queues a green thread readied during a netpoll batch (see
    /// `pollReady`). Returns false when no batch is being collected.
    @inline(__always)
    func collectPolled(_ fiber: Unmanaged<Fiber>) -> Bool {
        let l = local
        guard l.pointee.collectingPolled else { return false }
        pushLocal(fiber)
        l.pointee.polledCount += 1
        return true
    }
}
