import CContext

/// Where a `ChannelTimer` waits: the heap of the worker that created it, on
/// its runtime's clock, or the heap of the process's timer thread for one
/// created outside every runtime (ChannelTimer.swift, "Where a timer lives").
struct TimerHome {
    let heap: TimerHeap
    let clock: RuntimeClock
    /// The runtime's idle workers, told of a deadline earlier than they
    /// would wake for; nil for the timer thread's heap.
    let idle: Idle?

    /// The calling worker's heap, else the timer thread's.
    static func ofCaller() -> TimerHome {
        guard let raw = gt_current_worker() else { return TimerThread.shared.home }
        return Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { worker in
            TimerHome(heap: worker.timers, clock: worker.clock, idle: worker.idle)
        }
    }

    /// After `heap.add`: makes sure someone wakes for `deadline` (as
    /// `Park` does for a sleep).
    @inline(__always)
    func timerAdded(deadline: Int64) {
        if let idle {
            // A virtual clock is advanced by the last idle worker: no
            // sleeper needs waking for a new timer.
            if !clock.isVirtual { idle.timerAdded(deadline: deadline) }
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
