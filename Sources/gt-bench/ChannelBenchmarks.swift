// Channel, select and mutex workloads for gt-bench. Each function runs its
// workload once on a fresh runtime and returns the figure (lower is better);
// the harness repeats and takes the median. The workloads are meant to match
// Go twins line for line (the Go shapes are in each doc comment).
import CContext
import GreenThreads

/// The four channel/sync benchmarks, ready for the registry.
enum ChannelBenchmarks {
    static let all: [Benchmark] = [
        Benchmark(name: "pingpong", unit: "ns/roundtrip",
                  summary: "unbuffered round trip between two green threads, 10^6 round trips",
                  measure: pingpongBenchmark),
        Benchmark(name: "chan", unit: "ns/message",
                  summary: "buffered channel (capacity 1024), one producer, one consumer, 10^7 ints",
                  measure: chanBenchmark),
        Benchmark(name: "select", unit: "ns/message",
                  summary: "fan-in: one select over 4 channels (capacity 128) fed by 4 producers, 10^6 ints",
                  measure: selectBenchmark),
    ] + SelectBenchmarks.variants + [
        Benchmark(name: "mutex", unit: "ns/op",
                  summary: "8 green threads incrementing one counter under a GreenMutex, 2*10^6 increments",
                  measure: mutexBenchmark),
    ]
}

/// Nanoseconds per unbuffered round trip between two green threads.
///
/// Go twin: `ping, pong := make(chan int), make(chan int)`; one goroutine
/// does `for v := range ping { pong <- v }`, the other 10^6 times
/// `ping <- i; <-pong`.
func pingpongBenchmark(workers: Int) throws -> Double {
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
                guard try pong.receive() == i else { throw BenchmarkFailure(description: "pingpong: wrong value") }
            }
            ping.close()
            try echo.join()
        }
    }
    return ns / Double(roundTrips)
}

/// Nanoseconds per message through a buffered channel of capacity 1024,
/// one producer and one consumer, 10^7 ints.
///
/// Go twin: `ch := make(chan int, 1024)`; a goroutine sends 0..<10^7 and
/// closes; the main goroutine sums `for v := range ch`.
func chanBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let messages = 10_000_000
    let ns = try rt.run { () throws -> Double in
        let ch = Channel<Int>(capacity: 1024)
        var sum = 0
        let ns = try elapsedNanos {
            let producer = go { () throws in
                for i in 0..<messages { try ch.send(i) }
                ch.close()
            }
            for v in ch { sum &+= v }
            try producer.join()
        }
        guard sum == messages &* (messages &- 1) / 2 else { throw BenchmarkFailure(description: "chan: wrong sum") }
        return ns
    }
    return ns / Double(messages)
}

/// Nanoseconds per message in a fan-in: four producers each send 2.5*10^5
/// ints on their own channel (capacity 128); one consumer takes all 10^6
/// with a select over the four.
///
/// Go twin: the same four `make(chan int, 128)`, and a loop of 10^6
/// `select { case v := <-a: ...; case v := <-b: ...; ... }`.
func selectBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let perProducer = 250_000, producers = 4
    let total = perProducer * producers
    let ns = try rt.run { () throws -> Double in
        let chans = (0..<producers).map { _ in Channel<Int>(capacity: 128) }
        var sum = 0
        let ns = try elapsedNanos {
            let senders = chans.map { ch in
                go { () throws in for i in 0..<perProducer { try ch.send(i) } }
            }
            let a = chans[0], b = chans[1], c = chans[2], d = chans[3]
            for _ in 0..<total {
                sum &+= try select {
                    Case.receive(a) { v in v.unsafelyUnwrapped }
                    Case.receive(b) { v in v.unsafelyUnwrapped }
                    Case.receive(c) { v in v.unsafelyUnwrapped }
                    Case.receive(d) { v in v.unsafelyUnwrapped }
                }
            }
            _ = try joinAll(senders)
        }
        guard sum == producers &* perProducer &* (perProducer &- 1) / 2 else {
            throw BenchmarkFailure(description: "select: wrong sum")
        }
        return ns
    }
    return ns / Double(total)
}

/// Nanoseconds per lock-increment-unlock, 8 green threads contending for
/// one GreenMutex, 2*10^6 increments in all.
///
/// Go twin: 8 goroutines each doing 250,000 `mu.Lock(); n++; mu.Unlock()`.
func mutexBenchmark(workers: Int) throws -> Double {
    let rt = BenchRuntimes.runtime(workers: workers)
    let threads = 8, perThread = 250_000
    final class Counter: @unchecked Sendable {
        // SAFETY: only touched under `mutex`.
        var value = 0
        let mutex = GreenMutex()
    }
    let ns = try rt.run { () throws -> Double in
        let counter = Counter()
        let ns = try elapsedNanos {
            let hs = (0..<threads).map { _ in
                go { () throws in
                    for _ in 0..<perThread {
                        try counter.mutex.withLock { counter.value &+= 1 }
                    }
                }
            }
            _ = try joinAll(hs)
        }
        guard counter.value == threads * perThread else { throw BenchmarkFailure(description: "mutex: lost increments") }
        return ns
    }
    return ns / Double(threads * perThread)
}
