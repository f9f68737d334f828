import CContext
import Synchronization

extension Worker {
    /// How often a busy worker whose deque still holds work polls the
    /// netpoller at its injector tick. The deque is LIFO for its owner: a
    /// batch polled on top of the last one runs first, and the older
    /// batch's threads wait behind every newer one (at 1,000 echo
    /// connections and 128-event batches, p99 went from 47 ms to 330 ms).
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
