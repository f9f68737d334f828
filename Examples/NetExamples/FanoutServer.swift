import GreenThreads
import Synchronization

/// A front end that answers each request by asking `backends` backend
/// servers at once (a group), and gives them all up the moment its client
/// hangs up: a green thread watching the client's side of the connection
/// cancels the request's scope, which cancels the group, which cancels
/// every backend call still in flight (their sockets close at once).
///
/// One request per connection: the client's next bytes would be read by
/// the watcher, so a request asking for keep-alive is answered and closed.
public final class FanoutServer: Sendable {
    /// How the backend calls ended, over the server's life.
    public struct Counts: Sendable, Equatable {
        public var started = 0
        public var completed = 0
        public var cancelled = 0
        /// Requests whose client hung up before the answer.
        public var abandoned = 0
        public var answered = 0
    }

    public let backendPort: Int
    public let backends: Int
    private let counts = Mutex(Counts())

    /// - Parameters:
    ///   - backendPort: where the backends listen (on 127.0.0.1): backend
    ///     `i` is `GET /page/i` there, as a `CrawlSite` serves.
    ///   - backends: how many calls each request fans out to, at least 1.
    public init(backendPort: Int, backends: Int) {
        precondition(backends >= 1, "FanoutServer needs at least one backend (got \(backends))")
        self.backendPort = backendPort
        self.backends = backends
    }

    public var stats: Counts { counts.withLock { $0 } }

    /// Accepts connections until `listener` is closed. Call it on a green
    /// thread.
    public func serve(_ listener: TCPListener) throws {
        try serveConnections(listener, log: { _ in }) { conn in self.serveConnection(conn) }
    }

    func serveConnection(_ conn: TCPStream) {
        defer { conn.close() }
        let reader = BufferedReader(StreamSource(conn, timeout: HTTPServer.idleTimeout))
        guard let request = try? HTTPParser().readRequest(from: reader) else { return }
        let response: HTTPResponse
        do {
            let parts = try withCancelScope { scope in
                // Nothing more comes from a client that waits for its
                // answer; end of stream means it hung up.
                let watcher = go {
                    if let bytes = try? conn.read(upTo: 1), bytes.isEmpty { scope.cancel() }
                }
                defer {
                    watcher.cancel()
                    _ = try? watcher.join()
                }
                return try withGreenGroup(limit: backends) { (group: GreenGroup<String>) in
                    for i in 0..<backends { try group.go(name: "backend \(i) for \(request.target)") { try self.call(i) } }
                }
            }
            response = HTTPResponse(status: 200, headers: HTTPHeaders([("Content-Type", "text/plain")]),
                                    body: Array((parts.joined(separator: "\n") + "\n").utf8))
        } catch is CancellationError {
            counts.withLock { $0.abandoned += 1 }
            return
        } catch {
            response = HTTPResponse(status: 502, headers: HTTPHeaders([("Content-Type", "text/plain")]),
                                    body: Array("a backend failed: \(error)\n".utf8))
        }
        counts.withLock { $0.answered += 1 }
        try? conn.write(response.serialized(closing: true))
    }

    /// One backend call, counted.
    private func call(_ i: Int) throws -> String {
        counts.withLock { $0.started += 1 }
        do {
            let reply = try HTTPClient.get(host: "127.0.0.1", port: backendPort, path: CrawlSite.path(i))
            guard reply.status == 200 else { throw Crawler.Failure(description: "backend \(i): status \(reply.status)") }
            counts.withLock { $0.completed += 1 }
            return "backend \(i): \(reply.body.count) bytes"
        } catch is CancellationError {
            counts.withLock { $0.cancelled += 1 }
            throw CancellationError()
        }
    }
}
