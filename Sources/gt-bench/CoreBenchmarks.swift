import GreenThreads
import Synchronization

/// The scheduler's own workloads: switch, spawn, fib, skew.
enum CoreBenchmarks {
    static let all: [Benchmark] = [
        Benchmark(name: "switch", unit: "ns/switch",
                  summary: "two green threads yielding to each other, 10^7 switches",
                  measure: switchCost),
        Benchmark(name: "spawn", unit: "ns/spawn",
                  summary: "spawn+join 10^6 empty green threads in batches of 10^4",
                  measure: spawnCost),
        Benchmark(name: "fib", unit: "ms",
                  summary: "fork-join fib(27), one green thread per call",
                  measure: fibTime),
        Benchmark(name: "skew", unit: "ms",
                  summary: "10^4 tasks of ~50 us all spawned from one green thread (stealing)",
                  measure: skewTime),
        Benchmark(name: "checkpoint", unit: "ns/call",
                  summary: "GreenThread.checkpoint() in a green thread's loop, 10^8 calls, no request pending",
                  singleThreaded: true, measure: { _ in try checkpointCost() }),
    ]

    static func switchCost(workers: Int) throws -> Double {
        let rt = BenchRuntimes.runtime(workers: workers)
        let perThread = 5_000_000
        let ns = try rt.run { () throws -> Double in
            try elapsedNanos {
                let a = go { for _ in 0..<perThread { GreenThread.yield() } }
                let b = go { for _ in 0..<perThread { GreenThread.yield() } }
                try a.join()
                try b.join()
            }
        }
        return ns / Double(2 * perThread)
    }

    static func spawnCost(workers: Int) throws -> Double {
        let rt = BenchRuntimes.runtime(workers: workers)
        let batches = 100, batch = 10_000
        let ns = try rt.run { () throws -> Double in
            var handles: [JoinHandle<Void>] = []
            handles.reserveCapacity(batch)
            return try elapsedNanos {
                for _ in 0..<batches {
                    for _ in 0..<batch { handles.append(go {}) }
                    for h in handles { try h.join() }
                    handles.removeAll(keepingCapacity: true)
                }
            }
        }
        return ns / Double(batches * batch)
    }

    /// The price of a preemption point in a hot loop when sysmon has
    /// nothing to ask (the common case): what a long loop pays per call.
    static func checkpointCost() throws -> Double {
        let rt = BenchRuntimes.runtime(workers: 1)
        let calls = 100_000_000
        return try rt.run { () -> Double in
            var sink = 0
            let ns = elapsedNanos {
                for i in 0..<calls {
                    sink &+= i
                    GreenThread.checkpoint()
                }
            }
            precondition(sink == calls &* (calls &- 1) / 2, "checkpoint benchmark: wrong sum")
            return ns / Double(calls)
        }
    }

    static func fib(_ n: Int) -> Int {
        if n < 2 { return n }
        let h = go { fib(n - 1) }
        let b = fib(n - 2)
        return ((try? h.join()) ?? 0) + b
    }

    static func fibTime(workers: Int) throws -> Double {
        let rt = BenchRuntimes.runtime(workers: workers)
        var result = 0
        let ns = try elapsedNanos { result = try rt.run { fib(27) } }
        guard result == 196_418 else { throw BenchmarkFailure(description: "fib(27) gave \(result)") }
        return ns / 1e6
    }

    static func skewTime(workers: Int) throws -> Double {
        let rt = BenchRuntimes.runtime(workers: workers)
        let ns = try elapsedNanos {
            let sum = try rt.run { () throws -> UInt64 in
                let hs = (0..<10_000).map { i in go { busyWork(UInt64(i), iterations: 50_000) } }
                return try joinAll(hs).reduce(0, &+)
            }
            guard sum != 0 else { throw BenchmarkFailure(description: "skew checksum is zero") }
        }
        return ns / 1e6
    }
}
