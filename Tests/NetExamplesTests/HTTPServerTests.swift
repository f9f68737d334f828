import GreenThreads
import Testing
@testable import NetExamples

extension NetExampleSuites {
/// The http-hello example's server over loopback: keep-alive, close, bodies,
/// and malformed requests.
@Suite("HTTPServer")
struct HTTPServerTests {
    /// Runs `body` against an http-hello server on a free port.
    func withHello(_ body: @escaping @Sendable (Int) throws -> Void) throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go { try HTTPServer.serve(listener, handler: HelloApp.respond) }
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
                                      ("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
                                      ("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400)] {
                let conn = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
                defer { conn.close() }
                try conn.write(Array(request.utf8))
                let reader = BufferedReader(StreamSource(conn, timeout: .seconds(5)))
                let response = try HTTPParser().readResponse(from: reader)
                #expect(response.status == status)
                #expect(response.headers["Connection"] == "close")
                #expect(try conn.read(upTo: 16, timeout: .seconds(5)).isEmpty)
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
