// SwiftNIO echo server: the peer of GreenThreads' echo-server example.
//
// Usage: nio-echo PORT [--workers N]
// Serves TCP echo on 127.0.0.1:PORT with a MultiThreadedEventLoopGroup of N
// threads (default: one per core) until killed. Prints
// "listening on 127.0.0.1:PORT" once it accepts connections.
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Writes every inbound buffer straight back; flushes once per read burst,
/// which is how NIO's own echo example batches its syscalls.
final class EchoHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

/// A line on stderr, written to fd 2 (Swift 6 treats the C `stderr` global
/// as shared mutable state).
func logError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

func usage(_ message: String) -> Never {
    logError("nio-echo: \(message)\nusage: nio-echo PORT [--workers N]")
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

let group = MultiThreadedEventLoopGroup(numberOfThreads: workers)
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(ChannelOptions.backlog, value: 4096)
    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(EchoHandler())
        }
    }

do {
    let server = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
    print("listening on 127.0.0.1:\(server.localAddress?.port ?? port)")
    fflush(nil)  // all streams: a script waits for this line on a pipe
    try server.closeFuture.wait()
} catch {
    logError("nio-echo: \(error)")
    exit(1)
}
