import CContext
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

/// Every Net suite, one test at a time: the 10,000-connection test would
/// otherwise load the machine under the timing-sensitive ones.
@Suite("Net", .serialized)
enum NetSuites {}

/// A loopback listener and a client connected to it (not yet accepted).
func loopbackPair() throws -> (TCPListener, TCPStream) {
    let listener = try TCPListener(host: "127.0.0.1", port: 0)
    do {
        return (listener, try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5)))
    } catch {
        listener.close()
        throw error
    }
}

/// TCP over loopback: echo, end of stream, half-close, reset, deadlines,
/// close waking parked callers, and the errors of bad input.
extension NetSuites {
@Suite("NetTCP")
struct NetTCPTests {
    @Test func echoRoundTrip() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let reply = try rt.run { () throws -> [UInt8] in
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            #expect(listener.port > 0)
            let server = go {
                let conn = try listener.accept()
                while true {
                    let bytes = try conn.read(upTo: 4096)
                    if bytes.isEmpty { break }
                    try conn.write(bytes)
                }
                conn.close()
            }
            let client = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
            try client.write(Array("hello, green world".utf8))
            let reply = try client.readExactly(18)
            try client.shutdown(.write)
            #expect(try client.read(upTo: 16).isEmpty)
            try server.join()
            client.close()
            listener.close()
            return reply
        }
        #expect(String(decoding: reply, as: UTF8.self) == "hello, green world")
    }

    @Test func ipv6Loopback() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "::1", port: 0)
            #expect(listener.localAddress.family == .ipv6)
            let server = go { () throws -> [UInt8] in
                let c = try listener.accept()
                return try c.readExactly(3)
            }
            let s = try TCPStream.connect(host: "::1", port: listener.port)
            try s.write([1, 2, 3])
            #expect(try server.join() == [1, 2, 3])
            #expect(try s.peerAddress.port == listener.port)
        }
    }

    @Test func plainOSThreadsBlockInsteadOfParking() throws {
        // No runtime at all: the same calls block the thread (poll(2)).
        let listener = try TCPListener(host: "127.0.0.1", port: 0)
        let client = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
        let server = try listener.accept(timeout: .seconds(5))
        try client.write(Array(repeating: 7, count: 100_000))
        var got = 0
        while got < 100_000 { got += try server.read(upTo: 65536, timeout: .seconds(5)).count }
        #expect(got == 100_000)
        #expect(throws: NetError.self) { _ = try server.read(upTo: 1, timeout: .milliseconds(20)) }
        client.close(); server.close(); listener.close()
    }

    @Test func peerClosingMidReadGivesEndOfStream() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let reader = go { () throws -> ([UInt8], [UInt8]) in
                let c = try listener.accept()
                let first = try c.read(upTo: 100)
                let second = try c.read(upTo: 100)  // parked when the peer closes
                return (first, second)
            }
            let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            try s.write([42])
            try GreenThread.sleep(for: .milliseconds(20))
            s.close()
            let (first, second) = try reader.join()
            #expect(first == [42])
            #expect(second.isEmpty)
        }
    }

    @Test func resetIsAnError() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let reader = go { () throws -> NetError? in
                let c = try listener.accept()
                do {
                    _ = try c.read(upTo: 100)
                    return nil
                } catch let e as NetError { return e }
            }
            let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            try GreenThread.sleep(for: .milliseconds(20))
            try s.setLingerZero()
            s.close()
            let e = try reader.join()
            #expect(e?.kind == .connectionReset)
            #expect(e?.errno == ECONNRESET)
        }
    }

    /// A connection reset while still in the accept queue is that
    /// connection's failure, not the listener's: Linux hands it out and its
    /// first read reports the reset, and the connection behind it is served.
    /// Where accept4 itself fails for one queued connection (ECONNABORTED
    /// when the kernel cannot name the peer, or a pending network error),
    /// `accept` skips it the same way instead of throwing.
    @Test func aResetInTheAcceptQueueStaysWithItsConnection() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            // Both handshakes complete in the backlog; nobody accepts yet.
            let (listener, doomed) = try loopbackPair()
            try doomed.setLingerZero()
            doomed.close()
            let good = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
            try good.write(Array("ok".utf8))
            let first = try listener.accept(timeout: .seconds(5))
            #expect(throws: NetError.self) { _ = try first.read(upTo: 16) }
            let second = try listener.accept(timeout: .seconds(5))
            #expect(try second.readExactly(2) == Array("ok".utf8))
            for c in [first, second, good] { c.close() }
            listener.close()
        }
        #expect(isQueuedConnectionError(ECONNABORTED) && isQueuedConnectionError(EPROTO))
        #expect(!isQueuedConnectionError(EMFILE) && !isQueuedConnectionError(EBADF) && !isQueuedConnectionError(EINVAL))
    }

    @Test func halfClose() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go {
                let c = try listener.accept()
                var all: [UInt8] = []
                while true {
                    let b = try c.read(upTo: 10)
                    if b.isEmpty { break }  // the client's FIN
                    all += b
                }
                try c.write(Array("got \(all.count)".utf8))  // still writable
                c.close()
            }
            let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            try s.write(Array(repeating: 1, count: 25))
            try s.shutdown(.write)
            var reply: [UInt8] = []
            while true {
                let b = try s.read(upTo: 100)
                if b.isEmpty { break }
                reply += b
            }
            #expect(String(decoding: reply, as: UTF8.self) == "got 25")
            #expect(throws: NetError.self) { try s.write([1]) }
            try server.join()
        }
    }

    @Test func readDeadlineFires() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try expectTimely {
            try rt.run { () throws -> [TimingBound] in
                let listener = try TCPListener(host: "127.0.0.1", port: 0)
                let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
                let peer = try listener.accept()
                let t0 = gt_now_ns()
                do {
                    _ = try s.read(upTo: 10, timeout: .milliseconds(50))
                    Issue.record("read returned without data")
                } catch let e as NetError {
                    #expect(e.kind == .timedOut)
                }
                let waited = gt_now_ns() - t0
                #expect(waited >= 50_000_000, "the deadline fired early")
                // The stream still works after a timeout.
                try peer.write([9])
                #expect(try s.read(upTo: 10, timeout: .seconds(5)) == [9])
                // An accept deadline too.
                #expect(throws: NetError.self) { _ = try listener.accept(timeout: .milliseconds(20)) }
                return [.below("a 50 ms read deadline", waited, 2_000_000_000)]
            }
        }
    }

    @Test func connectTimeoutAgainstAFullBacklog() throws {
        // A listener that never accepts, with its accept queue full: the
        // kernel drops further SYNs, so connect can only time out.
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0, backlog: 0)
            var held: [TCPStream] = []
            var timedOut = false
            for _ in 0..<16 {
                do {
                    held.append(try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .milliseconds(200)))
                } catch let e as NetError {
                    #expect(e.kind == .timedOut)
                    timedOut = true
                    break
                }
            }
            #expect(timedOut)
            for h in held { h.close() }
            listener.close()
        }
    }

    @Test func closeWakesAParkedReaderWithAClearError() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            let peer = try listener.accept()
            let reader = go { () -> NetError? in
                do { _ = try s.read(upTo: 10); return nil } catch let e as NetError { return e } catch { return nil }
            }
            let acceptor = go { () -> NetError? in
                do { _ = try listener.accept(); return nil } catch let e as NetError { return e } catch { return nil }
            }
            try GreenThread.sleep(for: .milliseconds(30))
            s.close()
            listener.close()
            #expect(try reader.join()?.kind == .closed)
            #expect(try acceptor.join()?.kind == .closed)
            s.close()  // idempotent
            #expect(throws: NetError.self) { _ = try s.read(upTo: 1) }
            do { _ = try s.read(upTo: 1) } catch let e as NetError {
                #expect(e.kind == .closed)
                #expect(e.description.contains("closed"))
            }
            peer.close()
        }
    }

    @Test func cancellingAParkedReaderThrowsCancellationError() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            let peer = try listener.accept()
            let reader = go { () -> String in
                do { _ = try s.read(upTo: 10); return "read" } catch is CancellationError { return "cancelled" } catch { return "\(error)" }
            }
            try GreenThread.sleep(for: .milliseconds(20))
            reader.cancel()
            #expect(try reader.join() == "cancelled")
            // The stream is intact: a later read gets the data.
            try peer.write([5])
            #expect(try s.read(upTo: 10, timeout: .seconds(5)) == [5])
        }
    }

    @Test func badInputGivesClearErrors() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            // Port in use (SO_REUSEADDR does not allow two listeners).
            do {
                _ = try TCPListener(host: "127.0.0.1", port: listener.port)
                Issue.record("second listener bound")
            } catch let e as NetError {
                #expect(e.kind == .addressInUse)
                #expect(e.errno == EADDRINUSE)
            }
            // Refused: nobody listens on the port we just closed.
            let port = listener.port
            listener.close()
            do {
                _ = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
                Issue.record("connected to a closed port")
            } catch let e as NetError {
                #expect(e.kind == .connectionRefused)
                #expect(e.description.contains("refused"))
            }
            // Bad addresses.
            #expect(throws: NetError.self) { _ = try SocketAddress(host: "300.1.2.3", port: 1) }
            #expect(throws: NetError.self) { _ = try SocketAddress(host: "127.0.0.1", port: 70000) }
            do {
                _ = try TCPStream.connect(host: "no such host.invalid", port: 80, timeout: .seconds(5))
                Issue.record("resolved a bad name")
            } catch let e as NetError {
                #expect(e.kind == .resolutionFailed || e.kind == .badAddress)
            }
            do {
                _ = try TCPListener(host: "192.0.2.1", port: 0)  // not a local address
                Issue.record("bound a foreign address")
            } catch let e as NetError {
                #expect(e.kind == .addressNotAvailable)
            }
        }
    }

    @Test func namesResolveThroughBlocking() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let s = try TCPStream.connect(host: "localhost", port: listener.port, timeout: .seconds(5))
            let c = try listener.accept()
            try s.write([1])
            #expect(try c.read(upTo: 1) == [1])
        }
    }
}
}
