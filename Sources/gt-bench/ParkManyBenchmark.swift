// The `parkmany` workload: a million green threads parked at once on one
// channel, then all woken by closing it.
import GreenThreads
import Synchronization

/// Green threads in the `parkmany` workload, all parked at the same time.
enum ParkManyWorkload {
    static let threads = 1_000_000
    /// The project's target for peak RSS per parked green thread at 10^6
    /// (6 KiB): a parked thread holds its stack's top page, its fiber and
    /// its closure, and stack compaction, where it applies, is counted in.
    static let rssTargetPerThread = 6 * 1_024
    /// Green threads that have reached their receive, over all runs' current
    /// one: main closes the channel once every thread got there.
    static let arrived = Atomic<Int>(0)
}

/// Nanoseconds per green thread to spawn it, park it on an empty channel,
/// wake it by `close`, and let it finish: spawn 10^6 green threads that each
/// count themselves in and `receive()` from one unbuffered channel; once all
/// are in, close the channel and wait for a WaitGroup.
///
/// Unlike `timers`, every thread is parked at once (main waits for all of
/// them before the close), so the memory figure is simply peak RSS over
/// 10^6: what a parked green thread costs.
///
/// Go twin: N × `go func() { arrived.Add(1); <-ch; wg.Done() }()`; wait until
/// `arrived == N` (Gosched); `close(ch)`; `wg.Wait()`.
func parkManyBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let n = ParkManyWorkload.threads
    return try rt.run { () throws -> Double in
        ParkManyWorkload.arrived.store(0, ordering: .relaxed)
        let gate = Channel<Int>(capacity: 0)
        let wg = WaitGroup()
        wg.add(n)
        let ns = try elapsedNanos {
            for _ in 0..<n {
                go {
                    ParkManyWorkload.arrived.add(1, ordering: .relaxed)
                    _ = try gate.receive()
                    wg.done()
                }
            }
            while ParkManyWorkload.arrived.load(ordering: .relaxed) < n { GreenThread.yield() }
            gate.close()
            try wg.wait()
        }
        return ns / Double(n)
    }
}
