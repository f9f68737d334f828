// The `deadline` workload for gt-bench: what a deadline scope adds to a
// wait that succeeds, beside `pingpong`, the same round trip without one.
import CContext
import GreenThreads

enum DeadlineBenchmark {
    static let all: [Benchmark] = [
        Benchmark(name: "deadline", unit: "ns/roundtrip",
                  summary: "pingpong with each receive in its own withDeadline(after: 1 hour) scope, 10^6 round trips (compare with pingpong)",
                  measure: deadlineBenchmark),
    ]
}

/// Nanoseconds per unbuffered round trip whose receive runs inside a fresh
/// one-hour deadline scope: the scope's set-up and tear-down on every round
/// trip (its node's timer entry, armed by an earlier scope, is reused while
/// the new deadline is no earlier), and the receive's check of it.
///
/// Go twin: as `pingpong`, but each `<-pong` is
/// `ctx, cancel := context.WithTimeout(bg, time.Hour)` then
/// `select { case v := <-pong: ...; case <-ctx.Done(): }` and `cancel()`.
func deadlineBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let roundTrips = 1_000_000
    let ns = try rt.run { () throws -> Double in
        let ping = Channel<Int>(), pong = Channel<Int>()
        return try elapsedNanos {
            let echo = go { () throws in
                for v in ping { try pong.send(v) }
            }
            for i in 0..<roundTrips {
                try ping.send(i)
                let v = try withDeadline(after: .seconds(3600)) { try pong.receive() }
                guard v == i else { throw BenchmarkFailure(description: "deadline: wrong value") }
            }
            ping.close()
            try echo.join()
        }
    }
    return ns / Double(roundTrips)
}
