import Testing

/// The suites that open sockets, one test at a time: each loads the machine
/// (the load generator runs flat out), and other targets' timing checks run
/// beside them.
@Suite("NetExamples", .serialized)
enum NetExampleSuites {}

import GreenThreads

/// Runs `serve` on a green thread of `rt` with a fresh loopback listener,
/// and returns that listener (for its port, and to close it) with the
/// server's handle. `serve` returns once the listener is closed.
func startServer(on rt: Runtime, _ serve: @escaping @Sendable (TCPListener) throws -> Void) throws
    -> (TCPListener, JoinHandle<Void>) {
    let bound = Channel<TCPListener>(capacity: 1)
    let server = rt.spawn { () throws in
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        try bound.send(listener)
        try serve(listener)
    }
    let listener = try #require(try bound.receive())
    return (listener, server)
}
