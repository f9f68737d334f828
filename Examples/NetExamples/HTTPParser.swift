/// Reads HTTP/1.x messages (RFC 9112) off a `BufferedReader`: the start
/// line, header fields, and a Content-Length body. Chunked bodies are out of
/// scope for these examples and are refused as `HTTPError.unsupported`.
public struct HTTPParser: Sendable {
    public var maxLineLength = 8192
    public var maxHeaderCount = 100
    public var maxBodyLength = 1 << 20

    public init() {}

    /// The next request, or nil if the stream ended cleanly between requests.
    public func readRequest<S>(from reader: BufferedReader<S>) throws -> HTTPRequest? {
        guard var request = try readRequestHead(from: reader) else { return nil }
        request.body = try readRequestBody(from: reader, for: request)
        return request
    }

    /// The next request's start line and header fields, without its body
    /// (a server times the head and the body apart); nil if the stream
    /// ended cleanly between requests.
    public func readRequestHead<S>(from reader: BufferedReader<S>) throws -> HTTPRequest? {
        var line: [UInt8]
        // RFC 9112 2.2: a server should ignore empty lines before a request line.
        repeat {
            guard let l = try reader.readLine(limit: maxLineLength) else { return nil }
            line = l
        } while line.isEmpty
        let text = String(decoding: line, as: UTF8.self)
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
              parts[0].allSatisfy(\.isTokenCharacter),
              let minor = Self.minorVersion(parts[2])
        else { throw HTTPError.badStartLine(text) }
        var request = HTTPRequest(method: String(parts[0]), target: String(parts[1]), minorVersion: minor)
        request.headers = try readHeaders(reader)
        return request
    }

    /// The body that follows `request`'s head (from `readRequestHead`).
    public func readRequestBody<S>(from reader: BufferedReader<S>, for request: HTTPRequest) throws -> [UInt8] {
        try readBody(reader, headers: request.headers)
    }

    /// The response to a request sent on this stream. A response to HEAD, or
    /// with status 1xx/204/304, has no body whatever its Content-Length says.
    public func readResponse<S>(from reader: BufferedReader<S>, requestMethod: String = "GET") throws -> HTTPResponse {
        guard let line = try reader.readLine(limit: maxLineLength) else { throw HTTPError.unexpectedEOF }
        let text = String(decoding: line, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, Self.minorVersion(parts[0]) != nil,
              parts[1].count == 3, let status = Int(parts[1]), (100...999).contains(status)
        else { throw HTTPError.badStartLine(text) }
        var response = HTTPResponse(status: status, reason: parts.count == 3 ? String(parts[2]) : "")
        response.headers = try readHeaders(reader)
        let bodiless = requestMethod == "HEAD" || (100..<200).contains(status) || status == 204 || status == 304
        response.body = bodiless ? [] : try readBody(reader, headers: response.headers)
        return response
    }

    private static func minorVersion(_ s: Substring) -> Int? {
        switch s {
        case "HTTP/1.1": return 1
        case "HTTP/1.0": return 0
        default: return nil
        }
    }

    private func readHeaders<S>(_ reader: BufferedReader<S>) throws -> HTTPHeaders {
        var headers = HTTPHeaders()
        while true {
            guard let line = try reader.readLine(limit: maxLineLength) else { throw HTTPError.unexpectedEOF }
            if line.isEmpty { return headers }
            let text = String(decoding: line, as: UTF8.self)
            // Folded continuation lines (obs-fold) are rejected, as RFC 9112 5.2 lets a server do.
            guard let colon = text.firstIndex(of: ":"), colon != text.startIndex,
                  text.first != " ", text.first != "\t",
                  text[..<colon].allSatisfy(\.isTokenCharacter)
            else { throw HTTPError.badHeader(text) }
            guard headers.fields.count < maxHeaderCount else { throw HTTPError.tooManyHeaders(limit: maxHeaderCount) }
            headers.add(String(text[..<colon]), text[text.index(after: colon)...].trimmingSpaces())
        }
    }

    private func readBody<S>(_ reader: BufferedReader<S>, headers: HTTPHeaders) throws -> [UInt8] {
        if headers["Transfer-Encoding"] != nil { throw HTTPError.unsupported("Transfer-Encoding") }
        let lengths = headers.values("Content-Length")
        guard let first = lengths.first else { return [] }
        // Repeated identical values are allowed (RFC 9110 8.6); differing ones are not.
        guard lengths.allSatisfy({ $0 == first }), !first.isEmpty, first.allSatisfy(\.isASCIIDigitCharacter),
              let length = Int(first)
        else { throw HTTPError.badContentLength(lengths.joined(separator: ", ")) }
        guard length <= maxBodyLength else { throw HTTPError.bodyTooLarge(limit: maxBodyLength) }
        return try reader.readBytes(length)
    }
}

extension Character {
    /// RFC 9110 `tchar`: what a method or header name may contain.
    var isTokenCharacter: Bool {
        guard let a = asciiValue, a > 0x20, a < 0x7f else { return false }
        return !"\"(),/:;<=>?@[\\]{}".contains(self)
    }

    var isASCIIDigitCharacter: Bool {
        guard let a = asciiValue else { return false }
        return a >= 0x30 && a <= 0x39
    }
}
