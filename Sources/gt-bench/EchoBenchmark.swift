import GreenThreads
import LoadGenerator
import NetExamples

/// `echo` and `echo1000`: the echo-server example's serving code on a
/// runtime of W workers (one green thread per connection), driven in the
/// same process by the neutral load generator, whose threads are plain OS
/// threads. The value is ns per request (1e9 / requests per second, lower is
/// better); requests/s and the p50/p99 round trip come along as extras.
/// scripts/compare.sh runs the same load against the example, Go and
/// SwiftNIO servers as separate processes.
enum EchoBenchmark {
    /// Seconds of load per repeat.
    static let seconds = 2
    static let messageSize = 64

    static let all: [Benchmark] = [
        Benchmark(name: "echo", unit: "ns/request",
                  summary: "TCP echo over loopback, 100 connections x 64-byte messages, \(seconds) s of closed-loop load",
                  measureSample: { try measure(workers: $0, connections: 100) }),
        Benchmark(name: "echo1000", unit: "ns/request",
                  summary: "TCP echo over loopback, 1,000 connections x 64-byte messages, \(seconds) s of closed-loop load",
                  measureSample: { try measure(workers: $0, connections: 1000) }),
    ]

    static func measure(workers: Int, connections: Int) throws -> Sample {
        let rt = BenchRuntimes.runtime(workers: workers)
        let bound = Channel<TCPListener>(capacity: 1)
        let server = rt.spawn { () throws in
            do {
                let listener = try TCPListener(host: "127.0.0.1", port: 0)
                try bound.send(listener)
                try EchoServer.serve(listener)
            } catch {
                bound.close()  // the waiting main thread learns there is no listener
                throw error
            }
        }
        guard let listener = try bound.receive() else {
            try server.join()  // rethrows why the server could not start
            throw BenchmarkFailure(description: "echo: the server stopped before it listened")
        }
        let load: LoadResult
        do {
            load = try LoadGenerator.run(.init(
                port: listener.port, connections: connections, messageSize: messageSize,
                duration: .seconds(seconds), threads: LoadGenerator.threads(besideServerWorkers: workers)))
        } catch {
            listener.close()
            _ = try? server.join()
            throw BenchmarkFailure(description: "echo: \(error)")
        }
        // The generator has closed its connections, so once the listener
        // closes the server returns: no green thread outlives the repeat.
        listener.close()
        try server.join()
        if let failure = load.firstFailure {
            throw BenchmarkFailure(description: "echo: \(load.failedConnections) connection(s) failed: \(failure)")
        }
        let rps = load.requestsPerSecond
        guard rps > 0 else { throw BenchmarkFailure(description: "echo: no request completed") }
        return Sample(value: 1e9 / rps, extras: [("rps", rps), ("p50_us", load.micros(50)), ("p99_us", load.micros(99))])
    }
}
