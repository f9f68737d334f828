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
    /// nil: the timer thread's heap. Keeps `heap` and `clock` alive (the
    /// timer thread's live as long as the process).
    private let worker: Worker?
    /// Unretained (`worker` owns them), and Unmanaged rather than
    /// `unowned(unsafe)`, through which a call still retains and releases:
    /// the create and stop paths touch no reference count for them.
    private let heapRef: Unmanaged<TimerHeap>
    private let clockRef: Unmanaged<RuntimeClock>

    private init(worker: Worker?, heap: TimerHeap, clock: RuntimeClock) {
        self.worker = worker
        heapRef = .passUnretained(heap)
        clockRef = .passUnretained(clock)
    }

    /// The calling worker's heap, else the timer thread's.
    static func ofCaller() -> TimerHome {
        guard let raw = gt_current_worker() else {
            let thread = TimerThread.shared
            return TimerHome(worker: nil, heap: thread.heap, clock: thread.clock)
        }
        return Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { worker in
            TimerHome(worker: worker, heap: worker.timers, clock: worker.clock)
        }
    }

    /// The heap's reference, for tests.
    var heap: TimerHeap { heapRef.takeUnretainedValue() }

    /// Now, on the home's clock.
    @inline(__always)
    func now() -> Int64 { clockRef._withUnsafeGuaranteedRef { $0.now() } }

    @inline(__always)
    func add(deadline: Int64, waker: Waker) {
        heapRef._withUnsafeGuaranteedRef { $0.add(deadline: deadline, waker: waker) }
    }

    /// A timer of this heap was disarmed: its entry is stale.
    @inline(__always)
    func noteStale() { heapRef._withUnsafeGuaranteedRef { $0.noteStale() } }

    /// Whether the home's runtime is shutting down: its heaps are being
    /// drained, so an entry added now would never fire.
    var isClosing: Bool { worker?.closing.load(ordering: .relaxed) ?? false }

    /// After `heap.add`: makes sure someone wakes for `deadline` (as
    /// `Park` does for a sleep).
    @inline(__always)
    func timerAdded(deadline: Int64) {
        if let worker {
            // A virtual clock is advanced by the last idle worker: no
            // sleeper needs waking for a new timer.
            if !clockRef._withUnsafeGuaranteedRef({ $0.isVirtual }) { worker.idle.timerAdded(deadline: deadline) }
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
