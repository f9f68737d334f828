/// Where a `BufferedReader` gets its bytes: a socket in the examples, a
/// scripted byte sequence in the tests.
public protocol ByteSource {
    /// Reads at least one byte into `buffer` (parking or blocking until some
    /// arrive) and returns the count, or 0 at the end of the stream.
    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// Lines and counted bodies out of a byte stream, for the HTTP/1.1 parser:
/// it reads the source in large chunks and keeps what it has not handed out
/// yet, so a request that arrives split across packets, or two pipelined
/// requests in one packet, both parse.
public final class BufferedReader<Source: ByteSource> {
    private let source: Source
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0

    public init(_ source: Source, capacity: Int = 8192) {
        precondition(capacity > 0, "BufferedReader needs a positive capacity (got \(capacity))")
        self.source = source
        buffer = [UInt8](repeating: 0, count: capacity)
    }

    /// Bytes read from the source but not yet handed out.
    public var buffered: Int { end - start }

    /// The next line without its "\r\n" (a bare "\n" ends a line too, as
    /// RFC 9112 allows a recipient to accept), or nil if the stream ended
    /// before the line's first byte.
    /// - Throws: `HTTPError.lineTooLong` past `limit` bytes,
    ///   `HTTPError.unexpectedEOF` if the stream ends mid-line.
    public func readLine(limit: Int) throws -> [UInt8]? {
        var scanned = 0
        while true {
            if let nl = buffer[(start + scanned)..<end].firstIndex(of: UInt8(ascii: "\n")) {
                var lineEnd = nl
                if lineEnd > start && buffer[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
                guard lineEnd - start <= limit else { throw HTTPError.lineTooLong(limit: limit) }
                let line = Array(buffer[start..<lineEnd])
                start = nl + 1
                return line
            }
            scanned = end - start
            guard scanned <= limit else { throw HTTPError.lineTooLong(limit: limit) }
            if try fill() == 0 {
                if scanned == 0 { return nil }
                throw HTTPError.unexpectedEOF
            }
        }
    }

    /// Whether input is at hand: true at once if bytes are buffered, else
    /// after reading some from the source; false at the end of the stream.
    /// (A server waits here between requests, under its idle timeout.)
    public func fillIfEmpty() throws -> Bool {
        if start < end { return true }
        return try fill() > 0
    }

    /// Exactly `count` bytes.
    /// - Throws: `HTTPError.unexpectedEOF` if the stream ends first.
    public func readBytes(_ count: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            if start == end, try fill() == 0 { throw HTTPError.unexpectedEOF }
            let take = Swift.min(count - out.count, end - start)
            out.append(contentsOf: buffer[start..<(start + take)])
            start += take
        }
        return out
    }

    /// Reads more from the source behind what is buffered; returns the count
    /// read, 0 at the end of the stream.
    private func fill() throws -> Int {
        if start == end {
            start = 0
            end = 0
        } else if end == buffer.count {
            if start > 0 {
                // Slide the unread bytes to the front before growing.
                buffer.replaceSubrange(0..<(end - start), with: buffer[start..<end])
                end -= start
                start = 0
            }
            if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        }
        let n = try buffer.withUnsafeMutableBytes { raw in
            try source.readSome(into: UnsafeMutableRawBufferPointer(rebasing: raw[end...]))
        }
        end += n
        return n
    }
}
