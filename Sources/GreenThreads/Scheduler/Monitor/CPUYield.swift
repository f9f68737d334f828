import CContext

// A worker that runs out of work gives its CPU away before it polls.
//
// Under load a server's worker never sleeps: each time its deque empties it
// polls, finds a few more sockets ready (the replies it just wrote let
// clients send again), and runs on. The kernel takes it off its CPU only at
// the end of a time slice, at 250 Hz a 4 ms tick, and until then a thread it
// woke that the kernel queued on the same CPU waits: a client on the same
// machine, another process, a blocking-pool thread finishing a call. On the
// echo benchmark that wait was every server's p99 at two workers on two
// cores (4.4 ms for ours, Go's and SwiftNIO's alike).
//
// `sched_yield` here lets those threads run now. What they do (send the
// next requests, finish a call) is what the poll then finds, in one batch
// instead of a trickle. With nothing else runnable on the CPU it returns at
// once, a syscall's cost, and it is made at most once per `cpuYieldNanos`,
// so a worker with one busy connection pays it on a tiny share of its
// requests. Only workers whose poller has sockets to watch do it: a
// compute-only runtime never calls it.
//
// And only when the runtime has a worker for every CPU it may use. With a
// CPU to spare the kernel runs woken threads there, and a yield can only
// hand ours to a thread that would have moved: at 1 worker on 2 cores, with
// the echo generator on the other, yielding raised p99 at 1,000 connections
// (medians of 12 pairs 16.5 against 14.7 ms, lower without it in 7, higher
// in 4) and CPU per request (7.7 against 7.2 µs).
extension Worker {
    /// On the echo benchmark (2 workers, 100 connections) p99 is 4.4 ms
    /// without yielding, 1.4-2.1 ms with 100 µs, 1.6-1.8 ms with a yield at
    /// every poll, 2.4-2.5 ms with 2 ms; requests/s drops with none.
    static let cpuYieldNanos: Int64 = 100_000

    /// Called by a worker out of local work, about to poll without blocking
    /// (`now`: the clock read it shares with the stalled-peer check).
    @inline(__always)
    func yieldCPUBeforePolling(now: Int64) {
        guard yieldsCPU, now - local.pointee.lastCPUYield >= Self.cpuYieldNanos else { return }
        gt_thread_yield_cpu()
        // Stamped after the yield: time spent off the CPU does not count
        // toward the next one.
        local.pointee.lastCPUYield = gt_now_ns()
        Self.bump(counters.cpuYields)
    }
}
