import CContext

/// Where a `ChannelTimer` waits: the heap of the worker that created it, on
/// its runtime's clock, or the heap of the process's timer thread for one
/// created outside every runtime (ChannelTimer.swift, "Where a timer lives").
///
/// It holds the worker (one reference for heap, clock and idle workers
/// alike: a timer that outlives its runtime can still be stopped), not the
/// three parts: every create and free of a timer would retain and release
/// each, and the clock and `Idle` are shared by every worker.
struct TimerHome {
    /// nil: the timer thread's heap.
    private let worker: Worker?

    /// The calling worker's heap, else the timer thread's.
    static func ofCaller() -> TimerHome {
        TimerHome(worker: gt_current_worker().map { Unmanaged<Worker>.fromOpaque($0).takeUnretainedValue() })
    }

    var heap: TimerHeap { worker?.timers ?? TimerThread.shared.heap }

    var clock: RuntimeClock { worker?.clock ?? TimerThread.shared.clock }

    /// After `heap.add`: makes sure someone wakes for `deadline` (as
    /// `Park` does for a sleep).
    @inline(__always)
    func timerAdded(deadline: Int64) {
        if let worker {
            // A virtual clock is advanced by the last idle worker: no
            // sleeper needs waking for a new timer.
            if !worker.clock.isVirtual { worker.idle.timerAdded(deadline: deadline) }
        } else {
            TimerThread.shared.timerAdded(deadline: deadline)
        }
    }

    /// `duration` in nanoseconds, clamped to the range of `Int64`.
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? Int64.min : Int64.max }
        return ns.addingSaturating(attoseconds / 1_000_000_000)
    }
}
