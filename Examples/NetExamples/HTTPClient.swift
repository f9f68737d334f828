import GreenThreads

/// Just enough HTTP/1.1 client for the crawler: one GET per connection.
public enum HTTPClient {
    /// Fetches `path` from `host:port` and returns the response (any status).
    /// - Throws: `NetError` (refused, reset, timed out) or `HTTPError` (a
    ///   malformed response).
    public static func get(host: String, port: Int, path: String, timeout: Duration = .seconds(10)) throws -> HTTPResponse {
        let conn = try TCPStream.connect(host: host, port: port, timeout: timeout)
        defer { conn.close() }
        let request = HTTPRequest(method: "GET", target: path,
                                  headers: HTTPHeaders([("Host", "\(host):\(port)"), ("Connection", "close")]))
        try conn.write(request.serialized(), timeout: timeout)
        return try HTTPParser().readResponse(from: BufferedReader(StreamSource(conn, timeout: timeout)))
    }
}
