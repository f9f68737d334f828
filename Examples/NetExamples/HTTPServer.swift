import GreenThreads

/// A minimal HTTP/1.1 server: one green thread per connection, keep-alive,
/// requests answered in order by a handler. `http-hello` and the crawler's
/// test site are handlers on it.
public enum HTTPServer {
    public typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse

    /// How long a kept-alive connection may sit idle between requests.
    public static let idleTimeout: Duration = .seconds(30)

    /// Accepts connections until `listener` is closed, then waits for the
    /// open ones to end. Call it on a green thread.
    public static func serve(_ listener: TCPListener, log: @escaping @Sendable (String) -> Void = { _ in },
                             handler: @escaping Handler) throws {
        try serveConnections(listener, log: log) { conn in serveConnection(conn, handler: handler) }
    }

    /// Reads requests off `conn` and writes the handler's responses until
    /// the client closes, asks to (`Connection: close`, or HTTP/1.0 without
    /// keep-alive), stays idle too long, or sends a malformed request (which
    /// gets a 4xx/5xx answer first). Closes `conn`.
    public static func serveConnection(_ conn: TCPStream, handler: Handler) {
        defer { conn.close() }
        let reader = BufferedReader(StreamSource(conn, timeout: idleTimeout))
        let parser = HTTPParser()
        do {
            while let request = try parser.readRequest(from: reader) {
                let response = handler(request)
                let closing = !request.keepAlive
                try conn.write(response.serialized(closing: closing, includeBody: request.method != "HEAD"))
                if closing { return }
            }
        } catch let e as HTTPError {
            let answer = HTTPResponse(status: e.status, headers: HTTPHeaders([("Content-Type", "text/plain")]),
                                      body: Array("\(e)\n".utf8))
            try? conn.write(answer.serialized(closing: true))
        } catch {
            // Reset, idle timeout, shutdown: nobody to answer.
        }
    }
}
