import GreenThreads
import Testing
@testable import NetExamples

extension NetExampleSuites {
/// The http-hello example's server over loopback: keep-alive, close, bodies,
/// and malformed requests.
@Suite("HTTPServer")
struct HTTPServerTests {
    /// Runs `body` against an http-hello server on a free port.
    func withHello(idleTimeout: Duration = HTTPServer.idleTimeout, headerTimeout: Duration = HTTPServer.headerTimeout,
                   _ body: @escaping @Sendable (Int) throws -> Void) throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go {
                try HTTPServer.serve(listener, idleTimeout: idleTimeout, headerTimeout: headerTimeout,
                                     handler: HelloApp.respond)
            }
            defer {
                listener.close()
                _ = try? server.join()
            }
            try body(listener.port)
        }
    }

    @Test func keepAliveThenClose() throws {
        try withHello { port in
            let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            defer { conn.close() }
            let reader = BufferedReader(StreamSource(conn, timeout: .seconds(5)))
            let parser = HTTPParser()
            // Three requests on one connection, the second with a body; the
            // last asks to close.
            try conn.write(HTTPRequest(method: "GET", target: "/").serialized())
            let first = try parser.readResponse(from: reader)
            #expect(first.status == 200 && first.bodyText == HelloApp.greeting)
            #expect(first.headers["Connection"] == nil)

            let payload = (0..<10_000).map { UInt8(truncatingIfNeeded: $0) }
            try conn.write(HTTPRequest(method: "POST", target: "/echo", body: payload).serialized())
            #expect(try parser.readResponse(from: reader).body == payload)

            try conn.write(HTTPRequest(method: "GET", target: "/", headers: HTTPHeaders([("Connection", "close")])).serialized())
            let last = try parser.readResponse(from: reader)
            #expect(last.status == 200 && last.headers["Connection"] == "close")
            #expect(try conn.read(upTo: 16, timeout: .seconds(5)).isEmpty)  // the server closed
        }
    }

    @Test func pipelinedAndHead() throws {
        try withHello { port in
            let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            defer { conn.close() }
            try conn.write(Array("HEAD / HTTP/1.1\r\n\r\nGET /missing HTTP/1.1\r\n\r\nGET / HTTP/1.0\r\n\r\n".utf8))
            let reader = BufferedReader(StreamSource(conn, timeout: .seconds(5)))
            let parser = HTTPParser()
            let head = try parser.readResponse(from: reader, requestMethod: "HEAD")
            #expect(head.status == 200 && head.body.isEmpty)
            #expect(head.headers["Content-Length"] == "\(HelloApp.greeting.utf8.count)")
            #expect(try parser.readResponse(from: reader).status == 404)
            #expect(try parser.readResponse(from: reader).bodyText == HelloApp.greeting)
            #expect(try conn.read(upTo: 16, timeout: .seconds(5)).isEmpty)  // HTTP/1.0: closed after
        }
    }

    @Test func malformedRequestGets400AndClose() throws {
        try withHello { port in
            for (request, status) in [("BROKEN\r\n\r\n", 400),
                                      ("GET / HTTP/2.0\r\n\r\n", 400),
                                      ("GET  / HTTP/1.1\r\n\r\n", 400),
                                      ("G(T / HTTP/1.1\r\n\r\n", 400),
                                      ("GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
                                      ("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
                                      ("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400)] {
                let response = try exchangeOnce(port: port, Array(request.utf8))
                #expect(response.status == status, "\(request.debugDescription)")
            }
        }
    }

    /// Writes `request` on a fresh connection and returns the one response,
    /// after checking that it says `Connection: close` and that the server
    /// then closes the connection (the answer to every bad request).
    private func exchangeOnce(port: Int, _ request: [UInt8]) throws -> HTTPResponse {
        let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
        defer { conn.close() }
        try conn.write(request, timeout: .seconds(10))
        let reader = BufferedReader(StreamSource(conn, timeout: .seconds(10)))
        let response = try HTTPParser().readResponse(from: reader)
        #expect(response.headers["Connection"] == "close")
        #expect(try conn.read(upTo: 16, timeout: .seconds(10)).isEmpty)
        return response
    }

    @Test func oversizedHeadGets431() throws {
        let parser = HTTPParser()
        try withHello { port in
            // One header line past the line limit.
            let long = "GET / HTTP/1.1\r\nX-Long: \(String(repeating: "a", count: parser.maxLineLength))\r\n\r\n"
            let longLine = try exchangeOnce(port: port, Array(long.utf8)).status
            #expect(longLine == 431)
            // A request line past it.
            let target = "GET /\(String(repeating: "b", count: parser.maxLineLength)) HTTP/1.1\r\n\r\n"
            let longTarget = try exchangeOnce(port: port, Array(target.utf8)).status
            #expect(longTarget == 431)
            // More header lines than the limit, each short.
            let many = "GET / HTTP/1.1\r\n"
                + (0...parser.maxHeaderCount).map { "X-\($0): v\r\n" }.joined() + "\r\n"
            let manyFields = try exchangeOnce(port: port, Array(many.utf8)).status
            #expect(manyFields == 431)
        }
    }

    @Test func oversizedBodyGets413AndTransferCodingsGet501() throws {
        let limit = HTTPParser().maxBodyLength
        try withHello { port in
            // Refused on the head alone: the body is never read.
            let big = "POST /echo HTTP/1.1\r\nContent-Length: \(limit + 1)\r\n\r\n"
            let tooLarge = try exchangeOnce(port: port, Array(big.utf8)).status
            #expect(tooLarge == 413)
            for coding in ["chunked", "gzip, chunked", "identity"] {
                let request = "POST /echo HTTP/1.1\r\nTransfer-Encoding: \(coding)\r\n\r\n"
                let coded = try exchangeOnce(port: port, Array(request.utf8)).status
                #expect(coded == 501, "\(coding)")
            }
            // Refused with the body on its way: the answer still arrives
            // (the server's close lingers; see HTTPServer.closeLingering).
            let sending = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            defer { sending.close() }
            let sender = go { try? sending.write(Array(big.utf8) + Array(repeating: 1, count: limit + 1), timeout: .seconds(20)) }
            let refused = try HTTPParser().readResponse(from: BufferedReader(StreamSource(sending, timeout: .seconds(10))))
            #expect(refused.status == 413)
            _ = try sender.join()
            // The limit itself is still served.
            let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            defer { conn.close() }
            let payload = (0..<limit).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let writer = go { try conn.write(HTTPRequest(method: "POST", target: "/echo", body: payload).serialized()) }
            let reader = BufferedReader(StreamSource(conn, timeout: .seconds(20)))
            let response = try HTTPParser().readResponse(from: reader)
            try writer.join()
            #expect(response.status == 200 && response.body == payload)
        }
    }

    @Test func pipelinedResponsesKeepTheirOrder() throws {
        try withHello { port in
            let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            defer { conn.close() }
            // Fifty requests in one write, each with a body naming it; a GET
            // and a 404 among them.
            var wire: [UInt8] = []
            for i in 0..<50 {
                switch i % 10 {
                case 3: wire += HTTPRequest(method: "GET", target: "/").serialized()
                case 7: wire += HTTPRequest(method: "GET", target: "/nowhere-\(i)").serialized()
                default: wire += HTTPRequest(method: "POST", target: "/echo", body: Array("request \(i)".utf8)).serialized()
                }
            }
            try conn.write(wire, timeout: .seconds(10))
            let reader = BufferedReader(StreamSource(conn, timeout: .seconds(10)))
            let parser = HTTPParser()
            for i in 0..<50 {
                let response = try parser.readResponse(from: reader)
                switch i % 10 {
                case 3: #expect(response.status == 200 && response.bodyText == HelloApp.greeting, "response \(i)")
                case 7: #expect(response.status == 404 && response.bodyText.contains("/nowhere-\(i)"), "response \(i)")
                default: #expect(response.status == 200 && response.bodyText == "request \(i)", "response \(i)")
                }
            }
            // Still open: one more request on the same connection.
            try conn.write(HTTPRequest(method: "GET", target: "/").serialized())
            #expect(try parser.readResponse(from: reader).bodyText == HelloApp.greeting)
        }
    }

    @Test func slowHeadGets408AfterTheHeaderTimeout() throws {
        let limit = Duration.milliseconds(300)
        try withHello(headerTimeout: limit) { port in
            // A client that stops mid-head.
            let start = ContinuousClock.now
            let stalled = try exchangeOnce(port: port, Array("GET / HTTP/1.1\r\nHost: example\r\nX-Half".utf8))
            #expect(stalled.status == 408)
            #expect(ContinuousClock.now - start >= limit)  // a deadline never passes early

            // A client that trickles its head a byte at a time, each byte
            // well within the limit: the deadline covers the whole head.
            let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            defer { conn.close() }
            let trickle = go { () -> Int in
                var sent = 0
                let bytes = Array("GET / HTTP/1.1\r\n".utf8) + Array(repeating: UInt8(ascii: "X"), count: 400)
                for b in bytes {
                    // Stops when the server has closed (EPIPE or reset).
                    guard (try? conn.write([b], timeout: .seconds(5))) != nil else { break }
                    sent += 1
                    try? GreenThread.sleep(for: .milliseconds(20))
                }
                return sent
            }
            let reader = BufferedReader(StreamSource(conn, timeout: .seconds(10)))
            let response = try HTTPParser().readResponse(from: reader)
            #expect(response.status == 408)
            #expect(response.headers["Connection"] == "close")
            #expect(try conn.read(upTo: 16, timeout: .seconds(10)).isEmpty)
            // The server stopped reading long before the whole head was sent.
            #expect(try trickle.join() < 416)

            // A fast request on a kept-alive connection is not timed out by
            // the time it sat idle before it.
            let idle = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            defer { idle.close() }
            let idleReader = BufferedReader(StreamSource(idle, timeout: .seconds(10)))
            try idle.write(HTTPRequest(method: "GET", target: "/").serialized())
            #expect(try HTTPParser().readResponse(from: idleReader).status == 200)
            try GreenThread.sleep(for: limit * 2)
            try idle.write(HTTPRequest(method: "GET", target: "/").serialized())
            #expect(try HTTPParser().readResponse(from: idleReader).status == 200)
        }
    }

    @Test func idleConnectionsCloseAfterTheIdleTimeout() throws {
        let limit = Duration.milliseconds(300)
        try withHello(idleTimeout: limit) { port in
            let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
            defer { conn.close() }
            let reader = BufferedReader(StreamSource(conn, timeout: .seconds(10)))
            // Kept alive while it stays busy: requests closer together than the limit.
            var lastSent = ContinuousClock.now
            for i in 0..<4 {
                if i > 0 { try GreenThread.sleep(for: limit / 4) }
                lastSent = ContinuousClock.now
                try conn.write(HTTPRequest(method: "GET", target: "/").serialized())
                #expect(try HTTPParser().readResponse(from: reader).status == 200)
            }
            // Then idle: closed without a word. Never before the limit: the
            // server's idle wait began after our last request was sent.
            #expect(try conn.read(upTo: 16, timeout: .seconds(10)).isEmpty)
            #expect(ContinuousClock.now - lastSent >= limit)
        }
    }

    @Test func clientsThatVanishMidRequestLeaveTheServerServing() throws {
        try withHello { port in
            let head = Array("POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n".utf8)
            // (what, the bytes sent before going, whether it resets or closes)
            let abandoned: [(String, [UInt8], Bool)] = [
                ("mid-request-line, closed", Array("GET /ind".utf8), false),
                ("mid-header, closed", Array("GET / HTTP/1.1\r\nHost: exa".utf8), false),
                ("mid-header, reset", Array("GET / HTTP/1.1\r\nHost: exa".utf8), true),
                ("mid-body, closed", head + Array(repeating: 7, count: 5000), false),
                ("mid-body, reset", head + Array(repeating: 7, count: 5000), true),
                // Responses written to a client that is gone: EPIPE or a reset.
                ("pipelined, never read, reset",
                 Array((0..<200).map { _ in HTTPRequest(method: "GET", target: "/").serialized() }.joined()), true),
            ]
            for round in 0..<3 {
                let vanished = abandoned.map { (_, bytes, reset) in
                    go { () throws in
                        let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
                        try conn.write(bytes, timeout: .seconds(10))
                        if reset { try conn.setLingerZero() }
                        conn.close()
                    }
                }
                try joinAll(vanished)
                // Everyone else is still served, on fresh and kept-alive connections.
                let clients = (0..<20).map { _ in
                    go { () throws -> Int in
                        let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(10))
                        defer { conn.close() }
                        let reader = BufferedReader(StreamSource(conn, timeout: .seconds(10)))
                        var ok = 0
                        for _ in 0..<3 {
                            try conn.write(HTTPRequest(method: "GET", target: "/").serialized())
                            if try HTTPParser().readResponse(from: reader).bodyText == HelloApp.greeting { ok += 1 }
                        }
                        return ok
                    }
                }
                #expect(try joinAll(clients).reduce(0, +) == 60, "round \(round)")
            }
        }
    }

    @Test func manyConcurrentKeepAliveClients() throws {
        try withHello { port in
            let clients = (0..<100).map { _ in
                go { () throws -> Int in
                    let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(10))
                    defer { conn.close() }
                    let reader = BufferedReader(StreamSource(conn, timeout: .seconds(10)))
                    var ok = 0
                    for _ in 0..<10 {
                        try conn.write(HTTPRequest(method: "GET", target: "/").serialized())
                        if try HTTPParser().readResponse(from: reader).bodyText == HelloApp.greeting { ok += 1 }
                    }
                    return ok
                }
            }
            let answered = try joinAll(clients).reduce(0, +)
            #expect(answered == 1000)
        }
    }
}
}
