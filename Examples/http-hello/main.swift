// http-hello: a small HTTP/1.1 server on 127.0.0.1:PORT, one green thread
// per connection, keep-alive, until killed.
//
//     swift run -c release http-hello PORT [--workers N]
//     curl -i http://127.0.0.1:PORT/                      # Hello, world!
//     curl -i --data-binary @file http://127.0.0.1:PORT/echo
//     wrk -c 100 -d 5 http://127.0.0.1:PORT/              # keep-alive load
//
// It parses the request line, the header fields and Content-Length bodies,
// and honours `Connection: close` (and HTTP/1.0's default of closing).
// Malformed requests get a 400 (431, 413, 501), a request head not complete
// within 10 s of its first byte a 408, and the connection closes.
import GreenThreads
import NetExamples
#if canImport(Glibc)
import Glibc
#endif

let arguments = ServerArguments.fromCommandLine(program: "http-hello")
raiseOpenFileLimit()
let runtime = arguments.workers.map { Runtime(workers: $0) } ?? Runtime()
do {
    try runtime.run {
        let listener = try TCPListener(host: "127.0.0.1", port: arguments.port)
        printNow("listening on http://127.0.0.1:\(listener.port)/")
        try HTTPServer.serve(listener, log: { logError("http-hello: \($0)") }, handler: HelloApp.respond)
    }
} catch {
    logError("http-hello: \(error)")
    exit(1)
}
