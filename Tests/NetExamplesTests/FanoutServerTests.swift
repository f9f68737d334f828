import GreenThreads
import Testing
@testable import NetExamples

extension NetExampleSuites {
/// The fan-out front end: a request asks every backend at once; a client
/// that hangs up cancels the backend calls still in flight.
@Suite("FanoutServer")
struct FanoutServerTests {
    static let backends = 6

    /// Runs `body` with a backend site (every page after `latency`) and a
    /// fan-out front end on it, and stops both afterwards.
    private func withServers<T: Sendable>(latency: Duration,
                                          _ body: @escaping @Sendable (FanoutServer, Int) throws -> T) throws -> T {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let site = CrawlSite(pages: Self.backends, latency: latency)
        let (backend, backendServer) = try startServer(on: rt) { try HTTPServer.serve($0, handler: site.respond) }
        let fanout = FanoutServer(backendPort: backend.port, backends: Self.backends)
        let (front, frontServer) = try startServer(on: rt) { try fanout.serve($0) }
        defer {
            front.close()
            backend.close()
            _ = try? frontServer.join()
            _ = try? backendServer.join()
        }
        return try rt.run { try body(fanout, front.port) }
    }

    @Test func aWaitingClientGetsEveryBackendsAnswer() throws {
        let (status, lines, counts) = try withServers(latency: .milliseconds(20)) { fanout, port in
            let reply = try HTTPClient.get(host: "127.0.0.1", port: port, path: "/search")
            return (reply.status, reply.bodyText.split(separator: "\n").count, fanout.stats)
        }
        #expect(status == 200)
        #expect(lines == Self.backends)
        #expect(counts.started == Self.backends && counts.completed == Self.backends && counts.cancelled == 0)
        #expect(counts.answered == 1 && counts.abandoned == 0)
    }

    @Test func aClientThatHangsUpCancelsTheBackendCalls() throws {
        let latency = Duration.seconds(2)
        let (counts, waited) = try withServers(latency: latency) { fanout, port in
            let conn = try TCPStream.connect(host: "127.0.0.1", port: port)
            let request = HTTPRequest(method: "GET", target: "/search",
                                      headers: HTTPHeaders([("Host", "127.0.0.1:\(port)"), ("Connection", "close")]))
            try conn.write(request.serialized())
            // All calls under way, then the client goes.
            let start = ContinuousClock.now
            while fanout.stats.started < Self.backends, ContinuousClock.now - start < .seconds(10) {
                try GreenThread.sleep(for: .milliseconds(1))
            }
            conn.close()
            let hungUp = ContinuousClock.now
            while fanout.stats.abandoned == 0, ContinuousClock.now - hungUp < .seconds(10) {
                try GreenThread.sleep(for: .milliseconds(1))
            }
            return (fanout.stats, ContinuousClock.now - hungUp)
        }
        #expect(counts.started == Self.backends)
        #expect(counts.cancelled == Self.backends, "\(counts)")
        #expect(counts.completed == 0 && counts.answered == 0 && counts.abandoned == 1)
        // Given up when the client left, not when the backends answered.
        #expect(waited < latency)
    }
}
}
