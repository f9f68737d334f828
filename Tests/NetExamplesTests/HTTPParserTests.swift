import Testing
@testable import NetExamples

/// The HTTP/1.1 reader of the http-hello example and the crawler: framing,
/// keep-alive rules, and every malformed input answered with an error.
@Suite("HTTPParser")
struct HTTPParserTests {
    func requests(_ text: String, chunks: [Int] = [Int.max]) throws -> [HTTPRequest] {
        let reader = BufferedReader(ScriptedSource(text, chunks: chunks), capacity: 16)
        var out: [HTTPRequest] = []
        while let r = try HTTPParser().readRequest(from: reader) { out.append(r) }
        return out
    }

    func error(_ text: String) -> HTTPError? {
        do {
            _ = try requests(text)
            return nil
        } catch let e as HTTPError {
            return e
        } catch {
            return nil
        }
    }

    @Test func simpleGet() throws {
        let r = try requests("GET /index.html HTTP/1.1\r\nHost: example\r\nAccept:  */* \r\n\r\n")
        #expect(r.count == 1)
        #expect(r[0].method == "GET")
        #expect(r[0].target == "/index.html")
        #expect(r[0].minorVersion == 1)
        #expect(r[0].headers["host"] == "example")
        #expect(r[0].headers["Accept"] == "*/*")
        #expect(r[0].body.isEmpty)
        #expect(r[0].keepAlive)
    }

    @Test func keepAliveRules() throws {
        let r = try requests(
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"
            + "GET / HTTP/1.0\r\n\r\n"
            + "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
            + "GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n")
        #expect(r.map(\.keepAlive) == [false, false, true, false])
    }

    @Test func pipelinedRequestsWithBodies() throws {
        let text = "POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
            + "POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
            + "\r\nGET /x HTTP/1.1\n\n"  // a stray CRLF before a request, bare LFs
        let r = try requests(text)
        #expect(r.map(\.target) == ["/echo", "/echo", "/x"])
        #expect(r[0].body == Array("hello".utf8))
        #expect(r[1].body.isEmpty)
    }

    @Test func anySplitParsesTheSame() throws {
        let body = String(repeating: "0123456789", count: 50)
        let text = "PUT /a HTTP/1.1\r\nContent-Length: \(body.count)\r\nX-Long: \(String(repeating: "y", count: 300))\r\n\r\n\(body)"
            + "GET /b HTTP/1.1\r\n\r\n"
        let whole = try requests(text)
        var rng = SeededRandom(state: 42)
        for _ in 0..<200 {
            let chunks = (0..<8).map { _ in Int.random(in: 1...40, using: &rng) }
            #expect(try requests(text, chunks: chunks) == whole)
        }
        #expect(whole.count == 2)
        #expect(whole[0].body == Array(body.utf8))
    }

    @Test func cleanEndBetweenRequests() throws {
        #expect(try requests("").isEmpty)
        #expect(try requests("GET / HTTP/1.1\r\n\r\n").count == 1)
    }

    @Test func malformedInputIsAnError() {
        #expect(error("GET / HTTP/1.1\r\nHost: x\r\n") == .unexpectedEOF)
        #expect(error("GET / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort") == .unexpectedEOF)
        #expect(error("GET /\r\n\r\n") == .badStartLine("GET /"))
        #expect(error("GET / HTTP/2.0\r\n\r\n") == .badStartLine("GET / HTTP/2.0"))
        #expect(error("GE(T / HTTP/1.1\r\n\r\n") == .badStartLine("GE(T / HTTP/1.1"))
        #expect(error("GET  / HTTP/1.1\r\n\r\n") == .badStartLine("GET  / HTTP/1.1"))
        #expect(error("GET / HTTP/1.1\r\nNo colon here\r\n\r\n") == .badHeader("No colon here"))
        #expect(error("GET / HTTP/1.1\r\nName : v\r\n\r\n") == .badHeader("Name : v"))
        #expect(error("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n") == .badHeader(" folded"))
        #expect(error("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n") == .badContentLength("-1"))
        #expect(error("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
                == .badContentLength("1, 2"))
        #expect(error("GET / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n") == .bodyTooLarge(limit: 1 << 20))
        #expect(error("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == .unsupported("Transfer-Encoding"))
        #expect(error("GET /\(String(repeating: "a", count: 9000)) HTTP/1.1\r\n\r\n") == .lineTooLong(limit: 8192))
        let many = (0..<101).map { "H\($0): v\r\n" }.joined()
        #expect(error("GET / HTTP/1.1\r\n\(many)\r\n") == .tooManyHeaders(limit: 100))
    }

    @Test func errorStatuses() {
        #expect(HTTPError.badHeader("x").status == 400)
        #expect(HTTPError.lineTooLong(limit: 1).status == 431)
        #expect(HTTPError.bodyTooLarge(limit: 1).status == 413)
        #expect(HTTPError.unsupported("x").status == 501)
    }

    @Test func responses() throws {
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
            + "HTTP/1.1 204 No Content\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"  // to a HEAD: no body follows
        let reader = BufferedReader(ScriptedSource(text, chunks: [3]))
        let p = HTTPParser()
        #expect(try p.readResponse(from: reader).bodyText == "abc")
        #expect(try p.readResponse(from: reader).status == 204)
        let head = try p.readResponse(from: reader, requestMethod: "HEAD")
        #expect(head.body.isEmpty && head.headers["content-length"] == "7")
        #expect(throws: HTTPError.unexpectedEOF) { try p.readResponse(from: reader) }
    }

    @Test func serializedRoundTrip() throws {
        let response = HTTPResponse(status: 404, headers: HTTPHeaders([("X-A", "1")]), body: Array("nope".utf8))
        let wire = String(decoding: response.serialized(closing: true), as: UTF8.self)
        #expect(wire == "HTTP/1.1 404 Not Found\r\nX-A: 1\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope")
        let back = try HTTPParser().readResponse(from: BufferedReader(ScriptedSource(wire)))
        #expect(back.status == 404 && back.reason == "Not Found" && back.bodyText == "nope")

        let request = HTTPRequest(method: "POST", target: "/echo", headers: HTTPHeaders([("Host", "h")]), body: [1, 2, 3])
        let parsed = try requests(String(decoding: request.serialized(), as: UTF8.self))
        #expect(parsed.first?.body == [1, 2, 3])
    }

    @Test func helloAppRoutes() {
        #expect(HelloApp.respond(to: HTTPRequest(method: "GET", target: "/")).bodyText == HelloApp.greeting)
        #expect(HelloApp.respond(to: HTTPRequest(method: "POST", target: "/echo", body: [9])).body == [9])
        let wrong = HelloApp.respond(to: HTTPRequest(method: "DELETE", target: "/"))
        #expect(wrong.status == 405 && wrong.headers["Allow"] == "GET, HEAD")
        #expect(HelloApp.respond(to: HTTPRequest(method: "GET", target: "/nope")).status == 404)
    }

    @Test func serverArguments() throws {
        #expect(try ServerArguments.parse(["8080"]) == ServerArguments(port: 8080, workers: nil))
        #expect(try ServerArguments.parse(["--workers", "3", "0"]) == ServerArguments(port: 0, workers: 3))
        #expect(throws: ServerArguments.Problem.missingPort) { try ServerArguments.parse([]) }
        #expect(throws: ServerArguments.Problem.badPort("70000")) { try ServerArguments.parse(["70000"]) }
        #expect(throws: ServerArguments.Problem.badPort("http")) { try ServerArguments.parse(["http"]) }
        #expect(throws: ServerArguments.Problem.badWorkers("0")) { try ServerArguments.parse(["1", "--workers", "0"]) }
        #expect(throws: ServerArguments.Problem.unexpected("2")) { try ServerArguments.parse(["1", "2"]) }
    }
}
