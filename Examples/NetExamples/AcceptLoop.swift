import GreenThreads
#if canImport(Glibc)
import Glibc
#endif

/// Accepts connections on `listener` until it is closed, running `handler`
/// on a green thread of its own for each, then waits for every handler to
/// return. Out of descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS,
/// ENOMEM), it waits a moment and goes on: the pending connection stays
/// queued, and serving resumes as soon as other connections close. (Errors
/// of single queued connections never reach it: `accept` skips those.)
/// - Throws: a `NetError` from `accept` other than `.closed` and the
///   resource shortages above (after the open connections end), or
///   `CancellationError`.
func serveConnections(_ listener: TCPListener, log: @Sendable (String) -> Void,
                      handler: @escaping @Sendable (TCPStream) -> Void) throws {
    let connections = WaitGroup()
    var failure: (any Error)?
    accepting: while true {
        do {
            let conn = try listener.accept()
            connections.go { handler(conn) }
        } catch let e as NetError where e.kind == .closed {
            break accepting
        } catch let e as NetError where e.kind == .tooManyOpenFiles || e.errno == ENOBUFS || e.errno == ENOMEM {
            log("\(e); retrying in 10 ms")
            try GreenThread.sleep(for: .milliseconds(10))
        } catch {
            failure = error
            break accepting
        }
    }
    try connections.wait()
    if let failure { throw failure }
}
