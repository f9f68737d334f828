import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Serves `router` on 127.0.0.1 at a port the kernel picks, runs `body`
/// with that port, then shuts the server down gracefully.
///
/// The port comes from the listening channel itself (`onServerRunning`), so
/// two tests never race for a fixed port, and `body` never starts before
/// the server accepts.
///
/// The server stops by a graceful shutdown of its service group, never by
/// cancelling the task that serves it: a cancelled NIO server can drop a
/// connection it accepted but had not yet handed to a handler, whose writer
/// then traps in its deinit ("Deinited NIOAsyncWriter without calling
/// finish()"). A graceful shutdown stops accepting, serves what was
/// accepted, and closes idle keep-alive connections (the shared
/// `HTTPClient` keeps them pooled).
public func withLocalServer<T: Sendable>(
    _ router: Router<BasicRequestContext>,
    _ body: @Sendable (Int) async throws -> T
) async throws -> T {
    let (ports, announce) = AsyncStream.makeStream(of: Int.self)
    var logger = Logger(label: "local-server")
    logger.logLevel = .warning
    let app = Application(
        router: router,
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            announce.yield(channel.localAddress?.port ?? 0)
            announce.finish()
        },
        logger: logger
    )
    let services = ServiceGroup(services: [app], logger: logger)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            // A server that fails to start ends the stream, so the wait
            // below returns nil instead of waiting for a port forever.
            defer { announce.finish() }
            try await services.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            await services.triggerGracefulShutdown()
            throw LocalServerError.didNotStart
        }
        let result: Result<T, any Error>
        do {
            result = .success(try await body(port))
        } catch {
            result = .failure(error)
        }
        await services.triggerGracefulShutdown()
        try await group.waitForAll()
        return try result.get()
    }
}

/// Why `withLocalServer` could not run its body.
public enum LocalServerError: Error {
    /// The server stopped before it listened (the address was refused).
    case didNotStart
}
