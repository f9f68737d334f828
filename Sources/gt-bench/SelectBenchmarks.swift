// The select workloads beyond the fan-in (`select`, in
// ChannelBenchmarks.swift): what a select costs when it finds nothing and
// takes default, when it carries a timeout that never fires, and when two
// green threads ping-pong through selects. Each matches its Go twin in
// scripts/peers/go (the Go shape is in each doc comment).
import GreenThreads

enum SelectBenchmarks {
    static let variants: [Benchmark] = [
        Benchmark(name: "select-default", unit: "ns/select",
                  summary: "select over 2 empty channels with default (the polling cost), 10^7 selects",
                  measure: selectDefaultBenchmark),
        Benchmark(name: "select-timeout", unit: "ns/message",
                  summary: "receive or a 1 s timeout that never fires, one producer (capacity 128), 10^6 ints",
                  measure: selectTimeoutBenchmark),
        Benchmark(name: "select-pingpong", unit: "ns/roundtrip",
                  summary: "unbuffered round trip where both sides select on the channel and a quit channel, 10^6 round trips",
                  measure: selectPingpongBenchmark),
    ]
}

/// Nanoseconds per select over two empty channels with a default case.
///
/// Go twin: `a, b := make(chan int), make(chan int)`; 10^7 times
/// `select { case <-a: hits++; case <-b: hits++; default: misses++ }`.
func selectDefaultBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let selects = 10_000_000
    let ns = try rt.run { () throws -> Double in
        let a = Channel<Int>(), b = Channel<Int>()
        var misses = 0
        let ns = try elapsedNanos {
            for _ in 0..<selects {
                misses &+= try select {
                    Case.receive(a) { _ in 0 }
                    Case.receive(b) { _ in 0 }
                    Case.default { 1 }
                }
            }
        }
        guard misses == selects else { throw BenchmarkFailure(description: "select-default: a case fired") }
        return ns
    }
    return ns / Double(selects)
}

/// Nanoseconds per message received through a select that also waits for
/// a 1 s timeout, which never fires: one producer sends 10^6 ints on a
/// channel of capacity 128.
///
/// Go twin: the producer `for i := range n { ch <- i }`; the consumer 10^6
/// times `select { case v := <-ch: sum += v; case <-time.After(time.Second): }`.
func selectTimeoutBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let messages = 1_000_000
    let ns = try rt.run { () throws -> Double in
        let ch = Channel<Int>(capacity: 128)
        var sum = 0, timeouts = 0
        let ns = try elapsedNanos {
            let producer = go { () throws in for i in 0..<messages { try ch.send(i) } }
            for _ in 0..<messages {
                try select {
                    Case.receive(ch) { v in sum &+= v.unsafelyUnwrapped }
                    Case.timeout(.seconds(1)) { timeouts += 1 }
                }
            }
            try producer.join()
        }
        guard timeouts == 0, sum == messages &* (messages &- 1) / 2 else {
            throw BenchmarkFailure(description: "select-timeout: wrong sum or a timeout fired")
        }
        return ns
    }
    return ns / Double(messages)
}

/// Nanoseconds per round trip between two green threads that each select
/// on the exchange channel and on a quit channel nobody closes until the
/// end.
///
/// Go twin: `ping, pong, quit := make(chan int), make(chan int), make(chan struct{})`;
/// the echo loops `select { case v := <-ping: select { case pong <- v: case <-quit: return } case <-quit: return }`;
/// the main goroutine 10^6 times `select { case ping <- i: case <-quit: }` then
/// `select { case v := <-pong: ...; case <-quit: }`.
func selectPingpongBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let roundTrips = 1_000_000
    let ns = try rt.run { () throws -> Double in
        let ping = Channel<Int>(), pong = Channel<Int>(), quit = Channel<Int>()
        return try elapsedNanos {
            let echo = go { () throws in
                while let v = try select({
                    Case.receive(ping) { v in v }
                    Case.receive(quit) { _ in nil }
                }) {
                    let sent = try select {
                        Case.send(pong, v) { true }
                        Case.receive(quit) { _ in false }
                    }
                    if !sent { return }
                }
            }
            for i in 0..<roundTrips {
                try select {
                    Case.send(ping, i) { () }
                    Case.receive(quit) { _ in () }
                }
                let back = try select {
                    Case.receive(pong) { v in v }
                    Case.receive(quit) { _ in nil }
                }
                guard back == i else { throw BenchmarkFailure(description: "select-pingpong: wrong value") }
            }
            quit.close()
            try echo.join()
        }
    }
    return ns / Double(roundTrips)
}
