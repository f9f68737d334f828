// The `timers` workload: a million green threads asleep at once.
import CContext
import GreenThreads
import Synchronization

/// Sleepers in the `timers` workload, and how long each sleeps.
enum TimerWorkload {
    static let sleepers = 1_000_000
    static let sleep = Duration.seconds(1)
    static let sleepNanos = 1_000_000_000.0
    /// Green threads asleep right now, and the most ever asleep at once
    /// (over all runs): the divisor of the RSS figure.
    static let asleep = Atomic<Int>(0)
    static let peakAsleep = Atomic<Int>(0)

    /// Counts one more sleeper and raises the peak if it is one.
    @inline(__always)
    static func fallAsleep() {
        let now = asleep.add(1, ordering: .relaxed).newValue
        var peak = peakAsleep.load(ordering: .relaxed)
        while now > peak {
            let (done, seen) = peakAsleep.compareExchange(expected: peak, desired: now, ordering: .relaxed)
            if done { break }
            peak = seen
        }
    }
}

/// Nanoseconds of overhead per sleeper: spawn 10^6 green threads that each
/// sleep 1 s then `done()` a WaitGroup, wait for the group, and take the
/// wall time minus the one second every sleeper spent asleep, per sleeper.
///
/// The memory figure is the process's peak RSS divided by the most sleepers
/// ever asleep at once (`Benchmark.rssItems`). That is not always 10^6:
/// where a page fault costs microseconds (a VM), spawning a million takes
/// longer than the 1 s sleep, so the first wake before the last sleep.
/// Every peer counts its sleepers the same way (an atomic add around the
/// sleep, a CAS for the peak).
///
/// Go twin: `wg.Add(N)`; N × `go func() { up(); time.Sleep(time.Second);
/// asleep.Add(-1); wg.Done() }()`; `wg.Wait()`.
func timersBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let n = TimerWorkload.sleepers
    let ns = try rt.run { () throws -> Double in
        let wg = WaitGroup()
        wg.add(n)
        return try elapsedNanos {
            for _ in 0..<n {
                go {
                    TimerWorkload.fallAsleep()
                    try GreenThread.sleep(for: TimerWorkload.sleep)
                    TimerWorkload.asleep.subtract(1, ordering: .relaxed)
                    wg.done()
                }
            }
            try wg.wait()
        }
    }
    return (ns - TimerWorkload.sleepNanos) / Double(n)
}
