// echo-server: TCP echo on 127.0.0.1:PORT, one green thread per connection,
// one worker per core, until killed. The server outside load generators
// (and scripts/compare.sh, against Go's and SwiftNIO's) drive.
//
//     swift run -c release echo-server PORT [--workers N]
//
// Prints "listening on 127.0.0.1:PORT" once it accepts connections (PORT 0
// picks a free port). A bad PORT exits with status 2; a port in use, 1.
import GreenThreads
import NetExamples
#if canImport(Glibc)
import Glibc
#endif

let arguments = ServerArguments.fromCommandLine(program: "echo-server")
// A thousand clients need more descriptors than the default soft limit.
raiseOpenFileLimit()
let runtime = arguments.workers.map { Runtime(workers: $0) } ?? Runtime()
do {
    try runtime.run {
        let listener = try TCPListener(host: "127.0.0.1", port: arguments.port)
        printNow("listening on 127.0.0.1:\(listener.port)")
        try EchoServer.serve(listener, log: { logError("echo-server: \($0)") })
    }
} catch {
    logError("echo-server: \(error)")
    exit(1)
}
