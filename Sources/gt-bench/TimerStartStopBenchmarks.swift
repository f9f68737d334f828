// The `timer` and `ticker` workloads: what arming and disarming a timer
// costs, the pattern of a request handler that starts a timeout and stops
// it when the reply comes first.
import GreenThreads

enum TimerStartStopBenchmarks {
    /// Start/stop pairs per run.
    static let operations = 1_000_000

    static let all: [Benchmark] = [
        Benchmark(name: "timer", unit: "ns/op",
                  summary: "GreenTimer(after: 1 h) then stop(), 10^6 times on one green thread (create+stop)",
                  measure: { try startStop(workers: $0) { GreenTimer(after: .seconds(3600)).stop() } }),
        Benchmark(name: "ticker", unit: "ns/op",
                  summary: "Ticker(every: 1 h) then stop(), 10^6 times on one green thread (create+stop)",
                  measure: { try startStop(workers: $0) { Ticker(every: .seconds(3600)).stop() } }),
    ]

    /// Nanoseconds per `body` (one create and one stop), on a green thread.
    ///
    /// Go twins: 10^6 × `t := time.NewTimer(time.Hour); t.Stop()`, and the
    /// same with `time.NewTicker`.
    static func startStop(workers: Int, _ body: @escaping @Sendable () -> Void) throws -> Double {
        let rt = BenchRuntimes.runtime(workers: workers)
        let n = operations
        let ns = try rt.run { () -> Double in
            elapsedNanos { for _ in 0..<n { body() } }
        }
        return ns / Double(n)
    }
}
