// fanout-server: a front end whose every request asks 8 backends at once
// (`withGreenGroup`), and which gives them all up the moment its client
// hangs up (a green thread watching the connection cancels the request's
// `withCancelScope`). It starts the backends (each answers after LATENCY_MS)
// and the front end inside the process, then plays two clients: one that
// waits for its answer, one that hangs up after 100 ms. It prints what
// happened to the backend calls of each.
//
//     swift run -c release fanout-server [LATENCY_MS]      (default 500 ms)
import GreenThreads
import NetExamples
#if canImport(Glibc)
import Glibc
#endif

let args = Array(CommandLine.arguments.dropFirst())
guard args.count <= 1, let latencyMs = args.first.map({ Int($0) }) ?? 500, (1...60_000).contains(latencyMs) else {
    logError("fanout-server: LATENCY_MS must be in 1...60000\nusage: fanout-server [LATENCY_MS]")
    exit(2)
}

let backends = 8
do {
    try Runtime().run {
        let site = CrawlSite(pages: backends, latency: .milliseconds(latencyMs))
        let backendListener = try TCPListener(host: "127.0.0.1", port: 0)
        let backendServer = go { try HTTPServer.serve(backendListener, handler: site.respond) }
        let fanout = FanoutServer(backendPort: backendListener.port, backends: backends)
        let frontListener = try TCPListener(host: "127.0.0.1", port: 0)
        let frontServer = go { try fanout.serve(frontListener) }
        defer {
            frontListener.close()
            backendListener.close()
            _ = try? frontServer.join()
            _ = try? backendServer.join()
        }
        let clock = ContinuousClock()

        var reply: HTTPResponse?
        let waited = try clock.measure {
            reply = try HTTPClient.get(host: "127.0.0.1", port: frontListener.port, path: "/search")
        }
        print("a client that waits: status \(reply?.status ?? 0) after \(waited), \(fanout.stats.completed) backend calls completed")

        let conn = try TCPStream.connect(host: "127.0.0.1", port: frontListener.port)
        let request = HTTPRequest(method: "GET", target: "/search",
                                  headers: HTTPHeaders([("Host", "127.0.0.1"), ("Connection", "close")]))
        try conn.write(request.serialized())
        try GreenThread.sleep(for: .milliseconds(100))
        conn.close()
        let hungUp = clock.now
        while fanout.stats.abandoned == 0, clock.now - hungUp < .seconds(10) {
            try GreenThread.sleep(for: .milliseconds(1))
        }
        let s = fanout.stats
        print("a client that hangs up after 100 ms: \(s.cancelled) of \(backends) backend calls cancelled, "
              + "\(clock.now - hungUp) after it left (each backend takes \(latencyMs) ms)")
    }
} catch {
    logError("fanout-server: \(error)")
    exit(1)
}
