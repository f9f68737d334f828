// Hummingbird hello server: the peer of GreenThreads' http-hello example.
//
// Usage: hummingbird-hello PORT [--workers N]
// Serves HTTP/1.1 on 127.0.0.1:PORT until killed: GET / answers
// "Hello, world!\n" as text/plain; charset=utf-8, the body http-hello sends.
// Prints "listening on 127.0.0.1:PORT" once it accepts connections.
//
// Threads: NIO's singleton event loop group, sized to N, is installed as
// Swift concurrency's global executor, so the route handlers (async) and the
// socket I/O share the same N threads - the worker count the other servers get,
// and the set-up NIO recommends for servers that mix async code with I/O.
import Hummingbird
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A line on stderr, written to fd 2 (Swift 6 treats the C `stderr` global
/// as shared mutable state).
func logError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

func usage(_ message: String) -> Never {
    logError("hummingbird-hello: \(message)\nusage: hummingbird-hello PORT [--workers N]")
    exit(2)
}

var args = Array(CommandLine.arguments.dropFirst())
var workers = System.coreCount
if let i = args.firstIndex(of: "--workers") {
    guard i + 1 < args.count, let n = Int(args[i + 1]), n > 0 else { usage("--workers needs a positive integer") }
    workers = n
    args.removeSubrange(i...(i + 1))
}
guard args.count == 1, let port = Int(args[0]), (0...65535).contains(port) else {
    usage("PORT must be an integer in 0...65535")
}

// 1,000 client connections need more descriptors than the usual soft limit.
var limit = rlimit()
if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

// Both before the first use of the singleton group, from the main thread.
NIOSingletons.groupLoopCountSuggestion = workers
guard NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor() else {
    logError("hummingbird-hello: cannot run Swift concurrency on the NIO event loops")
    exit(1)
}

let router = Router()
router.get("/") { _, _ -> String in "Hello, world!\n" }

var logger = Logger(label: "hummingbird-hello")
logger.logLevel = .warning  // no per-request or start-up chatter on stdout
let app = Application(
    router: router,
    configuration: .init(address: .hostname("127.0.0.1", port: port), backlog: 4096),
    onServerRunning: { channel in
        print("listening on 127.0.0.1:\(channel.localAddress?.port ?? port)")
        fflush(nil)  // all streams: a script waits for this line on a pipe
    },
    eventLoopGroupProvider: .singleton,
    logger: logger
)
do {
    try await app.runService()
} catch {
    logError("hummingbird-hello: \(error)")
    exit(1)
}
