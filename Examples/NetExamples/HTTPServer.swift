import GreenThreads

// A minimal HTTP/1.1 server: one green thread per connection, which reads a
// request, calls the handler, writes the response, and goes round again
// (keep-alive); requests that arrive together (pipelined) are read out of
// the same buffer and answered in order.
//
// What a client may not do to it:
//
// * Send something malformed or too large. The parser's limits turn it into
//   an `HTTPError` whose status (400, 408, 413, 431, 501) the server answers
//   with `Connection: close` before it closes: once framing is in doubt,
//   nothing after the bad request on that connection can be trusted. The
//   close lingers (`closeLingering`): FIN first, then the client's leftover
//   bytes are read and dropped for a moment, so they do not reset the
//   connection before the client has read the answer.
// * Hold a connection (and its green thread) without finishing a request.
//   Two clocks: between requests, each read may wait `idleTimeout` (then the
//   connection closes silently, as nobody is mid-request); once a request's
//   first byte is in, its whole head must arrive within `headerTimeout`, a
//   deadline over all the reads of the head, not a bound per read, so a
//   client trickling a byte at a time (slowloris) gets no longer than one
//   sending nothing. Past it, the client gets 408 and the connection closes.
//   The body is read under the per-read idle timeout: the parser has bounded
//   its length by then.
// * Go away mid-request or mid-response. A read sees the end of the stream
//   or a reset, a write fails with EPIPE or a reset (never SIGPIPE: the
//   runtime sends with MSG_NOSIGNAL); either ends this connection's green
//   thread and nothing else.
//
// Rejected: one timeout per read for the head as well. It bounds the gap
// between bytes, not the head, so one byte every `idleTimeout` keeps a
// connection forever.

/// The HTTP/1.1 server of the examples (see the top of this file);
/// `http-hello` and the crawler's test site are handlers on it.
public enum HTTPServer {
    public typealias Handler = @Sendable (HTTPRequest) -> HTTPResponse

    /// How long a kept-alive connection may sit idle between requests.
    public static let idleTimeout: Duration = .seconds(30)

    /// How long a request's head (start line and header fields) may take
    /// to arrive, from its first byte.
    public static let headerTimeout: Duration = .seconds(10)

    /// Accepts connections until `listener` is closed, then waits for the
    /// open ones to end. Call it on a green thread.
    public static func serve(_ listener: TCPListener, idleTimeout: Duration = idleTimeout,
                             headerTimeout: Duration = headerTimeout,
                             log: @escaping @Sendable (String) -> Void = { _ in },
                             handler: @escaping Handler) throws {
        try serveConnections(listener, log: log) { conn in
            serveConnection(conn, idleTimeout: idleTimeout, headerTimeout: headerTimeout, handler: handler)
        }
    }

    /// Reads requests off `conn` and writes the handler's responses until
    /// the client closes, asks to (`Connection: close`, or HTTP/1.0 without
    /// keep-alive), stays idle too long, or sends a malformed, oversized or
    /// too slow request (which gets a 4xx/5xx answer first). Closes `conn`.
    public static func serveConnection(_ conn: TCPStream, idleTimeout: Duration = idleTimeout,
                                       headerTimeout: Duration = headerTimeout, handler: Handler) {
        defer { conn.close() }
        let source = ConnectionSource(conn, idleTimeout: idleTimeout)
        let reader = BufferedReader(source)
        let parser = HTTPParser()
        do {
            while try reader.fillIfEmpty() {
                source.startHead(within: headerTimeout)
                guard var request = try parser.readRequestHead(from: reader) else { return }
                source.endHead()
                request.body = try parser.readRequestBody(from: reader, for: request)
                let response = handler(request)
                let closing = !request.keepAlive
                try conn.write(response.serialized(closing: closing, includeBody: request.method != "HEAD"))
                if closing { return }
            }
        } catch let e as HTTPError {
            let answer = HTTPResponse(status: e.status, headers: HTTPHeaders([("Content-Type", "text/plain")]),
                                      body: Array("\(e)\n".utf8))
            try? conn.write(answer.serialized(closing: true), timeout: idleTimeout)
            closeLingering(conn)
        } catch {
            // Reset, idle timeout, shutdown: nobody to answer.
        }
    }
}

extension HTTPServer {
    /// How long, and for how many bytes, the server goes on reading (and
    /// dropping) what a refused client still sends, before it closes.
    static let lingerTime: Duration = .seconds(1)
    static let lingerBytes = 256 << 10

    /// Sends FIN, then reads until the client's end of stream (or for
    /// `lingerTime` / `lingerBytes`), so its bytes in flight (the rest of
    /// an oversized body, say) do not arrive at a closed socket: that
    /// makes the kernel answer RST, and a client that gets RST before it
    /// reads may lose the error response already in its receive buffer.
    static func closeLingering(_ conn: TCPStream) {
        guard (try? conn.shutdown(.write)) != nil else { return }
        let end = ContinuousClock.now + lingerTime
        var dropped = 0
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while dropped < lingerBytes {
            let left = end - ContinuousClock.now
            guard left > .zero, let n = try? conn.read(into: &buffer, timeout: left), n > 0 else { return }
            dropped += n
        }
    }
}

/// The connection as the server's byte source, with its two clocks: each
/// read waits at most `idleTimeout`, except while a request head is being
/// read, when all reads together must end by the head's deadline.
private final class ConnectionSource: ByteSource {
    private let conn: TCPStream
    private let idleTimeout: Duration
    private var head: (deadline: ContinuousClock.Instant, limit: Duration)?

    init(_ conn: TCPStream, idleTimeout: Duration) {
        self.conn = conn
        self.idleTimeout = idleTimeout
    }

    /// A request's first byte is in: its head must be complete within `limit`.
    func startHead(within limit: Duration) {
        head = (ContinuousClock.now + limit, limit)
    }

    func endHead() {
        head = nil
    }

    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let head else { return try conn.read(into: buffer, timeout: idleTimeout) }
        let left = head.deadline - ContinuousClock.now
        guard left > .zero else { throw HTTPError.headerTimeout(head.limit) }
        do {
            return try conn.read(into: buffer, timeout: left)
        } catch let e as NetError where e.kind == .timedOut {
            throw HTTPError.headerTimeout(head.limit)
        }
    }
}
