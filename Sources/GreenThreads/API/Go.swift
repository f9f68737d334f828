/// Starts a green thread on the runtime of the calling green thread, like
/// Go's `go` statement. Returns at once; the body runs concurrently.
///
/// Must be called from a green thread; from a plain OS thread use
/// `Runtime.spawn` (there is no implicit global runtime).
@discardableResult
public func go<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> JoinHandle<T> {
    guard let worker = Worker.current else {
        preconditionFailure("GreenThreads: go { } called outside a green thread; use Runtime.spawn or Runtime.run")
    }
    return JoinHandle(fiber: worker.core.spawn(body))
}
