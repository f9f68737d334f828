import CContext
import Synchronization

/// The OS threads behind `GreenThread.blocking`: a bounded pool, started on
/// demand, each thread parked on its own futex word while idle.
///
/// The problem: a blocking call (file I/O, a C library, `getaddrinfo`) on
/// a green thread holds its worker's OS thread and every green thread
/// queued behind it. Sysmon's hand-off (Sysmon.swift) rescues the others
/// only after a threshold, at the price of one more OS thread running
/// green code. A call the program announces can instead leave the worker
/// at once: the green thread parks and a pool thread makes the call.
///
/// The protocol (API/GreenThread+Blocking.swift):
/// 1. The caller wraps its non-escaping body with `withoutActuallyEscaping`
///    in a `Job` and parks with a non-cancellable `Park.wait` whose
///    register step submits the job (at most `Configuration.blockingThreads`
///    threads, 64 by default; jobs queue FIFO when all are busy).
/// 2. A pool thread runs the body, which stores its result or error in the
///    caller's frame, drops the closure (else `withoutActuallyEscaping`
///    traps: the closure would still be referenced when the caller
///    returns), and wakes the caller through the job's `Waker`.
/// 3. The caller resumes and returns the value, or rethrows the error
///    through a `rescue` closure, the way Dispatch's `sync` keeps
///    `rethrows`.
///
/// A job runs a body that lives on the stack of a parked green thread. That
/// is safe because the caller is woken only after the body has returned,
/// and its wait is not cancellable: nothing can resume it while the body
/// still runs. Cancellation therefore does not abandon the body;
/// `isCancelled` is still set when it returns. On a plain OS thread, or
/// once the pool has shut down, the body runs inline. `inFlight` counts the
/// bodies running, which deadlock detection treats as activity.
final class BlockingPool: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the job queue, the slot lists, each slot's
    // `thread` and `stopping` are guarded by `lock`; `maxThreads` is immutable
    // and `inFlight` atomic.
    final class Job {
        /// Dropped before the waiter is woken: the caller's
        /// `withoutActuallyEscaping` traps if the closure is still
        /// referenced when it returns.
        var run: (() -> Void)?
        var waker: Waker?
        var next: Job?
        init(run: @escaping () -> Void) { self.run = run }
    }

    private final class Slot {
        let parker: UnsafeMutablePointer<gt_parker>
        var thread: UInt64 = 0
        init() {
            parker = .allocate(capacity: 1)
            gt_parker_init(parker)
        }
        deinit { parker.deallocate() }
    }

    let maxThreads: Int
    /// Bodies submitted and not yet finished (deadlock detection: their
    /// callers wait for the outside world).
    let inFlight = Atomic<Int>(0)

    private let lock = SpinLock()
    // Guarded by lock:
    private var head: Job?
    private var tail: Job?
    private var idle: [Slot] = []
    private var all: [Slot] = []
    private var stopping = false

    init(maxThreads: Int) {
        self.maxThreads = maxThreads
    }

    /// Queues `job`; returns false if the pool has shut down (the caller
    /// then runs the body itself).
    func submit(_ job: Job) -> Bool {
        lock.lock()
        if stopping { lock.unlock(); return false }
        inFlight.add(1, ordering: .relaxed)
        if let tail { tail.next = job } else { head = job }
        tail = job
        if let slot = idle.popLast() {
            lock.unlock()
            gt_parker_unpark(slot.parker)
            return true
        }
        if all.count < maxThreads {
            let slot = Slot()
            all.append(slot)
            lock.unlock()
            start(slot)
            return true
        }
        lock.unlock()  // every thread is busy: the first to finish takes it
        return true
    }

    private func start(_ slot: Slot) {
        let arg = Unmanaged.passRetained(ThreadArgs(pool: self, slot: slot)).toOpaque()
        var handle: UInt64 = 0
        let rc = gt_thread_start(blockingThreadMain, arg, &handle)
        precondition(rc == 0, "GreenThreads: could not start a blocking-pool thread (errno \(-rc))")
        lock.withLock { slot.thread = handle }
    }

    private final class ThreadArgs {
        let pool: BlockingPool
        let slot: Slot
        init(pool: BlockingPool, slot: Slot) { self.pool = pool; self.slot = slot }
    }

    fileprivate static func threadMain(_ arg: UnsafeMutableRawPointer) {
        let args = Unmanaged<ThreadArgs>.fromOpaque(arg).takeRetainedValue()
        args.pool.serve(args.slot)
    }

    private func serve(_ slot: Slot) {
        while true {
            lock.lock()
            if let job = head {
                head = job.next
                if head == nil { tail = nil }
                lock.unlock()
                job.next = nil
                do {
                    let body = job.run.unsafelyUnwrapped
                    job.run = nil
                    body()
                }
                inFlight.subtract(1, ordering: .releasing)
                job.waker.unsafelyUnwrapped.wake()
                continue
            }
            if stopping { lock.unlock(); return }
            idle.append(slot)
            lock.unlock()
            // Spurious returns are fine: the loop re-checks the queue.
            _ = gt_parker_park(slot.parker, -1)
            lock.withLock { idle.removeAll { $0 === slot } }
        }
    }

    /// Runtime shutdown (its green threads are gone): idle threads exit,
    /// busy ones after their body; each is joined for up to 200 ms.
    func shutdown() {
        lock.lock()
        stopping = true
        let slots = all
        lock.unlock()
        for s in slots { gt_parker_unpark(s.parker) }
        let deadline = gt_now_ns() + 200_000_000
        var stuck = 0
        for s in slots {
            let handle = lock.withLock { s.thread }
            if handle != 0, gt_thread_join_timeout(handle, max(0, deadline - gt_now_ns())) != 0 { stuck += 1 }
        }
        if stuck > 0 {
            gt_write_stderr("GreenThreads: \(stuck) blocking-pool thread(s) still inside a body at shutdown; left running\n")
        }
    }
}

private let blockingThreadMain: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    BlockingPool.threadMain(arg!)
}
