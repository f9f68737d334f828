import GreenThreads
import LoadGenerator
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import NetExamples

extension NetExampleSuites {
/// The echo-server example's serving code over loopback.
@Suite("EchoServer")
struct EchoServerTests {
    @Test func manyClientsEchoAndTheServerStopsCleanly() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go { try EchoServer.serve(listener) }
            // 100 clients at once, sizes from one byte to past a socket buffer.
            let clients = (0..<100).map { i in
                go { () throws -> Bool in
                    let size = i % 20 == 0 ? 300_000 : 1 + i * 37 % 2000
                    let message = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
                    let conn = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(10))
                    defer { conn.close() }
                    // Write and read at once: a large message does not fit the
                    // socket buffers, so writing it all first could deadlock.
                    let writer = go { try conn.write(message) }
                    let echo = try conn.readExactly(size, timeout: .seconds(20))
                    try writer.join()
                    try conn.shutdown(.write)
                    // The server closes its side after our end of stream.
                    let rest = try conn.read(upTo: 16, timeout: .seconds(10))
                    return echo == message && rest.isEmpty
                }
            }
            #expect(try joinAll(clients).allSatisfy { $0 })
            // All clients are gone: closing the listener ends serve().
            listener.close()
            try server.join()
        }
    }

    /// One round of load, `duration` long. A round that completed nothing
    /// gets one more, of two seconds: the machine may have been taken for
    /// the whole round (the 10,000-connection test's two processes run
    /// beside these suites), while a stalled server serves nothing in either.
    private func serveRound(port: Int, connections: Int, threads: Int, _ duration: Duration) throws -> LoadResult {
        let config = LoadGenerator.Configuration(
            port: port, connections: connections, messageSize: 64, duration: duration, threads: threads)
        let first = try LoadGenerator.run(config)
        if first.requests > 0 || first.failedConnections > 0 { return first }
        var longer = config
        longer.duration = .seconds(2)
        return try LoadGenerator.run(longer)
    }

    /// A long-lived one-worker server taking burst after burst of new
    /// connections, as scripts/compare.sh drives it, while a green thread
    /// beside it keeps blocking the worker in raw `usleep` calls: with
    /// sysmon's thresholds this low, the worker's queue keeps moving to a
    /// spare and back. Every burst must be served; none may stall the server.
    @Test func burstsOfNewConnectionsAcrossHandoffs() throws {
        let rounds = getenv("GT_BURST_ROUNDS").flatMap { Int(String(cString: $0)) } ?? 12
        let rt = Runtime(configuration: .init(
            workers: 1, preemptionThreshold: .microseconds(200), handoffThreshold: .microseconds(500)))
        defer { rt.shutdown() }
        let (listener, server) = try startServer(on: rt) { try EchoServer.serve($0) }
        let stop = Channel<Void>(capacity: 1)
        let blocker = rt.spawn {
            while stop.tryReceive() == nil {
                usleep(2_000)  // unannounced: only sysmon notices
                try GreenThread.sleep(for: .milliseconds(1))
            }
        }
        for round in 0..<rounds {
            let connections = round % 2 == 0 ? 300 : 40
            let result = try serveRound(port: listener.port, connections: connections, threads: 2, .milliseconds(40))
            #expect(result.failedConnections == 0, "round \(round): \(result.firstFailure ?? "")")
            // Not a speed check: a worker blocked two thirds of the time
            // serves slowly, but a server that serves nothing has stalled.
            #expect(result.requests > 0, "round \(round): no round trip over \(connections) connections (\(rt.stats))")
        }
        try stop.send(())
        try blocker.join()
        listener.close()
        try server.join()
        #expect(rt.stats.handoffs > 0, "the blocking calls were meant to force hand-offs")
    }

    /// Hand-offs, then silence. Handlers block their worker in raw
    /// `usleep` (no timer anywhere in the server), so sysmon brings a spare
    /// in; once the load stops, the spare retires while the worker sleeps.
    /// Whichever thread sleeps last must still be watching the sockets:
    /// the next burst's connections must be accepted and served.
    @Test func aRetiringSpareLeavesTheSocketsWatched() throws {
        // Each message blocks its handler for 1.5 ms, past sysmon's whole
        // path to a hand-off (the 200 µs preemption request, its 1 ms
        // grace, the 500 µs threshold), so every message handled while
        // other connections wait hands the worker's queue to a spare. (A
        // handler blocking 300 µs needed four messages in a row without a
        // switch, which depended on how fast the client answered.) A trial
        // without a single hand-off exercised nothing, and runs again.
        try expectTimely { () throws -> [TimingBound] in
            let rounds = getenv("GT_BURST_ROUNDS").flatMap { Int(String(cString: $0)) } ?? 20
            let rt = Runtime(configuration: .init(
                workers: 1, preemptionThreshold: .microseconds(200), handoffThreshold: .microseconds(500)))
            defer { rt.shutdown() }
            let (listener, server) = try startServer(on: rt) { listener in
                try serveConnections(listener, log: { _ in }) { conn in
                    defer { conn.close() }
                    while let bytes = try? conn.readExactly(64) {
                        usleep(1_500)  // unannounced: only sysmon notices
                        if (try? conn.write(bytes)) == nil { return }
                    }
                }
            }
            for round in 0..<rounds {
                let result = try serveRound(port: listener.port, connections: 16, threads: 1, .milliseconds(30))
                #expect(result.failedConnections == 0, "round \(round): \(result.firstFailure ?? "")")
                #expect(result.requests > 0, "round \(round): the server stopped serving (\(rt.stats))")
                usleep(20_000)  // silence: the spare retires, everyone sleeps
            }
            listener.close()
            try server.join()
            return [.atLeast("hand-offs the blocking handlers forced", rt.stats.handoffs, 1, loaded: 1)]
        }
    }

    @Test func serveReturnsOnlyAfterOpenConnectionsEnd() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go { try EchoServer.serve(listener) }
            let conn = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
            try conn.write([1, 2, 3])
            #expect(try conn.readExactly(3, timeout: .seconds(5)) == [1, 2, 3])
            listener.close()
            try GreenThread.sleep(for: .milliseconds(50))
            #expect(!server.isFinished)  // still serving the open connection
            try conn.write([4])
            #expect(try conn.readExactly(1, timeout: .seconds(5)) == [4])
            conn.close()
            try server.join()
        }
    }
}
}
