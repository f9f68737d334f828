import CContext
import GreenThreads

/// One named workload, the same as its twin in scripts/peers.
struct Benchmark: Sendable {
    let name: String
    let unit: String
    let summary: String
    /// Runs on the calling thread whatever the worker count: measured once,
    /// reported as workers = 1.
    var singleThreaded = false
    /// Runs the workload once on `workers` workers and returns the figure
    /// (lower is better).
    let measure: @Sendable (_ workers: Int) throws -> Double
}

/// A median over repeats, with its spread.
struct Measurement: Sendable {
    let benchmark: String
    let workers: Int
    let unit: String
    let samples: [Double]
    let peakRSSBytes: Int

    var median: Double {
        let s = samples.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    var min: Double { samples.min() ?? 0 }
    var max: Double { samples.max() ?? 0 }
}

/// Wall-clock nanoseconds taken by `body`.
@inline(never)
func elapsedNanos(_ body: () throws -> Void) rethrows -> Double {
    let t0 = gt_now_ns()
    try body()
    return Double(gt_now_ns() - t0)
}

/// A CPU-bound step the optimizer cannot remove (xorshift64), the same
/// loop as the peers' skew workload.
@inline(never)
func busyWork(_ seed: UInt64, iterations: Int) -> UInt64 {
    var x = seed | 1
    var acc: UInt64 = 0
    for _ in 0..<iterations {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        acc &+= x
    }
    return acc
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
}
