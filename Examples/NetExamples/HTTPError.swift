/// Why an HTTP/1.1 message could not be read. A server answers the
/// request-side cases with `status` and closes the connection.
public enum HTTPError: Error, Equatable, CustomStringConvertible {
    /// A start line or header line longer than the limit.
    case lineTooLong(limit: Int)
    /// More header lines than the limit.
    case tooManyHeaders(limit: Int)
    /// Not "METHOD TARGET HTTP/1.x" / "HTTP/1.x CODE REASON".
    case badStartLine(String)
    /// A header line without a colon, with space before the colon, or folded.
    case badHeader(String)
    /// A Content-Length that is not a single non-negative integer.
    case badContentLength(String)
    /// A Content-Length over the reader's limit.
    case bodyTooLarge(limit: Int)
    /// A body framing these examples do not implement (Transfer-Encoding).
    case unsupported(String)
    /// The stream ended in the middle of a message.
    case unexpectedEOF
    /// A request head (start line and header fields) not complete within
    /// the server's header timeout of its first byte.
    case headerTimeout(Duration)

    /// The response status a server sends back for this error.
    public var status: Int {
        switch self {
        case .lineTooLong, .tooManyHeaders: return 431
        case .unsupported: return 501
        case .bodyTooLarge: return 413
        case .headerTimeout: return 408
        default: return 400
        }
    }

    public var description: String {
        switch self {
        case .lineTooLong(let limit): return "a line is longer than \(limit) bytes"
        case .tooManyHeaders(let limit): return "more than \(limit) header lines"
        case .badStartLine(let line): return "malformed start line: \(line)"
        case .badHeader(let line): return "malformed header line: \(line)"
        case .badContentLength(let m): return "bad Content-Length: \(m)"
        case .bodyTooLarge(let limit): return "a body larger than \(limit) bytes"
        case .unsupported(let what): return "not supported: \(what)"
        case .unexpectedEOF: return "the stream ended in the middle of a message"
        case .headerTimeout(let limit): return "the request head took longer than \(limit)"
        }
    }
}
