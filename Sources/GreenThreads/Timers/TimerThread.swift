import CContext
import Synchronization

/// The home of timers created outside every runtime (on a plain OS thread):
/// one heap and one OS thread that sleeps until its earliest deadline and
/// fires it. Started at the first such timer, it lives as long as the
/// process. A runtime is not a candidate: there may be none, or several,
/// and a timer must not die with whichever one was picked.
///
/// No lost wake-up (Dekker, as between `Idle` and a parking worker): the
/// thread publishes the deadline it will sleep until, fences, and reads the
/// heap's earliest deadline again; a creator adds its entry (which lowers
/// that deadline under the heap's lock), fences, and reads what the thread
/// published. At least one of them sees the other's write: the thread does
/// not sleep past the new entry, or the creator unparks it (and the parker
/// keeps a notification that comes before the thread sleeps).
final class TimerThread: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the heap has its own lock, `sleepUntil`
    // is atomic, and the parker is touched only through gt_parker calls.

    static let shared = TimerThread()

    let heap: TimerHeap
    let clock = RuntimeClock(virtual: false)
    private let parker: UnsafeMutablePointer<gt_parker>
    /// The deadline the thread sleeps until (`Int64.max`: none).
    private let sleepUntil = Atomic<Int64>(Int64.max)

    private init() {
        heap = TimerHeap(clock: clock)
        parker = .allocate(capacity: 1)
        gt_parker_init(parker)
        // The thread's reference: it runs until the process exits.
        let me = Unmanaged.passRetained(self).toOpaque()
        var handle: UInt64 = 0
        let err = gt_thread_start({ raw in
            Unmanaged<TimerThread>.fromOpaque(raw.unsafelyUnwrapped).takeUnretainedValue().run()
        }, me, &handle)
        precondition(err == 0, "GreenThreads: cannot start the timer thread for timers made outside a runtime (error \(-err))")
    }

    /// Called after an entry due at `deadline` went into the heap.
    func timerAdded(deadline: Int64) {
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if deadline < sleepUntil.load(ordering: .relaxed) { gt_parker_unpark(parker) }
    }

    private func run() {
        while true {
            heap.fireExpiredIfAny()
            let next = heap.nextDeadline.load(ordering: .acquiring)
            sleepUntil.store(next, ordering: .relaxed)
            atomicMemoryFence(ordering: .sequentiallyConsistent)
            if heap.nextDeadline.load(ordering: .relaxed) < next { continue }
            if next == Int64.max {
                _ = gt_parker_park(parker, -1)
                continue
            }
            let timeout = next - gt_now_ns()
            // Not positive: due now, but the firing lost the heap's lock to
            // a creator for a moment; try again.
            if timeout > 0 { _ = gt_parker_park(parker, timeout) }
        }
    }
}
