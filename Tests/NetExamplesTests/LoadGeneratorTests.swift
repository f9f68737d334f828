import GreenThreads
@testable import LoadGenerator
import Testing
@testable import NetExamples

extension NetExampleSuites {
/// The neutral load generator against our echo server, a lying server and
/// nobody; and its histogram.
@Suite("LoadGenerator")
struct LoadGeneratorTests {
    /// Runs `serve` on a listener inside a runtime and the generator against
    /// it from this OS thread, briefly: the generator runs flat out, and
    /// other suites' timing checks run beside it.
    func drive(connections: Int, duration: Duration = .milliseconds(50), threads: Int = 1, rate: Double? = nil,
               serve: @escaping @Sendable (TCPListener) throws -> Void) throws -> LoadResult {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let (listener, server) = try startServer(on: rt, serve)
        defer {
            listener.close()
            _ = try? server.join()
        }
        return try LoadGenerator.run(.init(port: listener.port, connections: connections, messageSize: 64,
                                           duration: duration, threads: threads, rate: rate))
    }

    @Test func measuresOurEchoServer() throws {
        let result = try drive(connections: 20) { try EchoServer.serve($0) }
        #expect(result.failedConnections == 0 && result.firstFailure == nil)
        #expect(result.requests > 20)
        #expect(result.requestsPerSecond > 0)
        #expect(result.latency.min <= result.latency.value(atPercentile: 50))
        #expect(result.latency.value(atPercentile: 50) <= result.latency.value(atPercentile: 99))
        #expect(result.latency.value(atPercentile: 99) <= result.latency.max)
    }

    @Test func detectsAWrongEcho() throws {
        // Echoes every message reversed: the right length, the wrong bytes.
        let result = try drive(connections: 8) { listener in
            try serveConnections(listener, log: { _ in }) { conn in
                defer { conn.close() }
                while let bytes = try? conn.readExactly(64), (try? conn.write(Array(bytes.reversed()))) != nil {}
            }
        }
        #expect(result.failedConnections == 8)
        #expect(result.firstFailure == "the echo differs from the message sent")
        #expect(result.requests == 0)
    }

    @Test func fixedRateSendsOnSchedule() throws {
        // 2,000/s for 0.5 s over 20 connections and 2 threads: ~1,000 round
        // trips, against a server far faster than that.
        try expectTimely { () throws -> [TimingBound] in
            let result = try drive(connections: 20, duration: .milliseconds(500), threads: 2, rate: 2000) {
                try EchoServer.serve($0)
            }
            #expect(result.failedConnections == 0 && result.firstFailure == nil)
            // Never ahead of the schedule; behind it only when starved.
            #expect(result.requests <= 1010, "\(result.requests) round trips at 2,000/s in 0.5 s")
            return [.atLeast("round trips at 2,000/s in 0.5 s", result.requests, 800)]
        }
    }

    @Test func fixedRateChargesAServerThatFallsBehind() throws {
        // Each echo takes 20 ms; 4 connections at 400/s want one every 10 ms
        // each. A closed loop just waits (round trips ~20 ms); at the fixed
        // rate the messages queue up behind the late ones, and each is
        // timed from when it was due, so the round trips keep growing.
        let slow: @Sendable (TCPListener) throws -> Void = { listener in
            try serveConnections(listener, log: { _ in }) { conn in
                defer { conn.close() }
                while let bytes = try? conn.readExactly(64) {
                    if (try? GreenThread.sleep(for: .milliseconds(20))) == nil { return }  // shutting down
                    if (try? conn.write(bytes)) == nil { return }
                }
            }
        }
        try expectTimely { () throws -> [TimingBound] in
            let closed = try drive(connections: 4, duration: .milliseconds(400), serve: slow)
            let paced = try drive(connections: 4, duration: .milliseconds(400), rate: 400, serve: slow)
            #expect(closed.failedConnections == 0 && paced.failedConnections == 0)
            let closedP50 = closed.latency.value(atPercentile: 50)
            #expect(closedP50 >= 20_000_000)
            // Busy or not, the queue behind the late echoes must show.
            return [.atLeast("paced p99 (ns) at a rate the server cannot keep, against 3 closed-loop p50s",
                             paced.latency.value(atPercentile: 99), 3 * closedP50, loaded: 2 * closedP50)]
        }
    }

    @Test func refusedAndBadConfiguration() throws {
        // A port nobody listens on: bind one, learn its number, close it.
        let port = try { () throws -> Int in
            let l = try TCPListener(host: "127.0.0.1", port: 0)
            defer { l.close() }
            return l.port
        }()
        #expect(throws: LoadError.self) { try LoadGenerator.run(.init(port: port, connections: 3, duration: .milliseconds(50))) }
        #expect(throws: LoadError.self) { try LoadGenerator.run(.init(port: 0)) }
        #expect(throws: LoadError.self) { try LoadGenerator.run(.init(port: 1, connections: 0)) }
        #expect(throws: LoadError.self) { try LoadGenerator.run(.init(port: 1, messageSize: 0)) }
        #expect(throws: LoadError.self) { try LoadGenerator.run(.init(host: "no.such.host.invalid", port: 1)) }
        for rate in [0, -5, .infinity, .nan] as [Double] {
            #expect(throws: LoadError.self) { try LoadGenerator.run(.init(port: 1, rate: rate)) }
        }
    }

    /// The generator keeps off the server's cores when it can, and shares
    /// them all when the server takes every one.
    @Test func threadsBesideAServer() {
        #expect(LoadGenerator.threads(cores: 2, besideServerWorkers: 1) == 1)
        #expect(LoadGenerator.threads(cores: 2, besideServerWorkers: 2) == 2)
        #expect(LoadGenerator.threads(cores: 2, besideServerWorkers: 8) == 2)
        #expect(LoadGenerator.threads(cores: 8, besideServerWorkers: 2) == 4)
        #expect(LoadGenerator.threads(cores: 4, besideServerWorkers: 1) == 3)
        #expect(LoadGenerator.threads(cores: 1, besideServerWorkers: 1) == 1)
        #expect(LoadGenerator.threads(cores: 6, besideServerWorkers: nil) == 4)
        #expect(LoadGenerator.threads(cores: 0, besideServerWorkers: nil) == 1)
        #expect(LoadGenerator.defaultThreads >= 1 && LoadGenerator.defaultThreads <= 4)
    }

    @Test func histogramPrecision() {
        // Every value lands in a bucket that contains it and is at most 1/64 of it wide.
        var rng = SeededRandom(state: 7)
        for _ in 0..<100_000 {
            let v = UInt64.random(in: 0...(1 << UInt64.random(in: 1...50, using: &rng)), using: &rng)
            let (low, width) = LatencyHistogram.bucket(LatencyHistogram.index(of: v))
            #expect(low <= v && v < low + width)
            #expect(width == 1 || width * 64 <= v)
        }
        var h = LatencyHistogram()
        for v in 1...10_000 { h.record(UInt64(v) * 1000) }
        for (p, exact) in [(50.0, 5_000_000.0), (99.0, 9_900_000.0), (99.9, 9_990_000.0)] {
            let got = Double(h.value(atPercentile: p))
            #expect(abs(got - exact) / exact < 0.02, "p\(p) = \(got), expected about \(exact)")
        }
        #expect(h.count == 10_000 && h.min == 1000 && h.max == 10_000_000)
        var merged = LatencyHistogram()
        merged.merge(h)
        merged.merge(h)
        #expect(merged.count == 20_000 && merged.value(atPercentile: 50) == h.value(atPercentile: 50))
        #expect(LatencyHistogram().value(atPercentile: 99) == 0)
    }
}
}
