import GreenThreads

/// TCP echo, one green thread per connection: the server of the
/// `echo-server` example and of gt-bench's `echo` benchmark.
public enum EchoServer {
    /// Accepts connections until `listener` is closed, echoing each on its
    /// own green thread, then waits for those connections to end (their
    /// clients close them). Call it on a green thread.
    /// - Throws: a `NetError` from `accept` other than `.closed` and the
    ///   resource shortages `serveConnections` waits out.
    public static func serve(_ listener: TCPListener, log: @escaping @Sendable (String) -> Void = { _ in }) throws {
        try serveConnections(listener, log: log, handler: echo)
    }

    /// Copies everything `conn` sends back to it until it closes, then
    /// closes it. A reset or other error ends the connection quietly: it is
    /// the client's to report.
    public static func echo(_ conn: TCPStream) {
        defer { conn.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        do {
            while true {
                let n = try conn.read(into: buffer)
                if n == 0 { return }
                try conn.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            }
        } catch {
            return
        }
    }
}
