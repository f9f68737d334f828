import ArgumentParser
import LoadGenerator

/// `gt-bench loadgen`: the neutral echo client every server is measured with.
struct LoadGenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "Drive a TCP echo server: each connection sends a message, waits for its echo, repeats.",
        discussion: """
            Plain POSIX sockets and epoll on a few OS threads (no green threads), so it loads \
            GreenThreads, Go and SwiftNIO servers alike. Prints requests/s and p50/p99/p99.9 \
            round-trip latency; exits 1 if a connection fails.
            """
    )

    @Option(help: "Server address.")
    var host = "127.0.0.1"

    @Option(help: "Server port.")
    var port: Int

    @Option(help: "Concurrent connections, each with one message in flight.")
    var connections = 100

    @Option(help: "Bytes per message.")
    var size = 64

    @Option(help: "Seconds of timed load, after every connection is up.")
    var duration: Double = 5

    @Option(help: "Load generator OS threads (default: one per core, at most 4, or see --server-workers).")
    var threads: Int?

    @Option(help: "Worker threads of the server under test, on this machine: the generator takes the cores the server leaves free (all of them if it leaves none). Not with --threads.")
    var serverWorkers: Int?

    @Option(help: "Send at this many requests/s (over all connections), each round trip timed from when its message was due; default: closed loop, each connection sending again as soon as its echo is back.")
    var rate: Double?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be in (0, 3600] seconds") }
        if threads != nil && serverWorkers != nil {
            throw ValidationError("give --threads or --server-workers, not both")
        }
        if let w = serverWorkers, w < 1 { throw ValidationError("--server-workers must be at least 1") }
    }

    private var chosenThreads: Int {
        threads ?? LoadGenerator.threads(besideServerWorkers: serverWorkers)
    }

    func run() throws {
        let config = LoadGenerator.Configuration(
            host: host, port: port, connections: connections, messageSize: size,
            duration: .nanoseconds(Int64(duration * 1e9)), threads: chosenThreads, rate: rate)
        let result: LoadResult
        do {
            result = try LoadGenerator.run(config)
        } catch let e as LoadError {
            throw RuntimeFailure("loadgen: \(e)")
        }
        print(json ? result.json() : result.text())
        if let failure = result.firstFailure {
            throw RuntimeFailure("loadgen: \(result.failedConnections) connection(s) failed; first: \(failure)")
        }
    }
}

/// An error printed as its message, exit code 1.
struct RuntimeFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension LoadResult {
    func text() -> String {
        let c = configuration
        return "\(c.host):\(c.port)  connections=\(c.connections) size=\(c.messageSize) threads=\(threads)  "
            + (c.rate.map { "rate=\(formatNumber($0))/s  " } ?? "")
            + "\(formatNumber(requestsPerSecond)) requests/s  "
            + "p50 \(formatNumber(micros(50))) us  p99 \(formatNumber(micros(99))) us  "
            + "p99.9 \(formatNumber(micros(99.9))) us  max \(formatNumber(Double(latency.max) / 1000)) us  "
            + "(\(requests) requests in \(formatNumber(Double(elapsedNanos) / 1e9)) s)"
    }

    func json() -> String {
        let c = configuration
        func n(_ v: Double) -> String { v.isFinite ? "\((v * 1000).rounded() / 1000)" : "null" }
        return "{\"host\": \"\(c.host)\", \"port\": \(c.port), \"connections\": \(c.connections), "
            + "\"size\": \(c.messageSize), \"threads\": \(threads), \"requests\": \(requests), "
            + "\"seconds\": \(n(Double(elapsedNanos) / 1e9)), \"rps\": \(n(requestsPerSecond)), "
            + "\"p50_us\": \(n(micros(50))), \"p99_us\": \(n(micros(99))), \"p999_us\": \(n(micros(99.9))), "
            + "\"max_us\": \(n(Double(latency.max) / 1000)), \"failed_connections\": \(failedConnections), "
            + "\"rate\": \(c.rate.map(n) ?? "null")}"
    }
}
