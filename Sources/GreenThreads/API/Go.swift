import CContext

/// Starts a green thread on the runtime of the calling green thread, like
/// Go's `go` statement. Returns at once; the body runs concurrently.
///
/// Must be called from a green thread; from a plain OS thread use
/// `Runtime.spawn` (there is no implicit global runtime).
@discardableResult
public func go<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> JoinHandle<T> {
    guard let raw = gt_current_worker() else {
        preconditionFailure("GreenThreads: go { } called outside a green thread; use Runtime.spawn or Runtime.run")
    }
    // Guaranteed references only: a retain of the shared core per spawn
    // would bounce its reference count between every worker.
    let core = Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.coreAddress }
    return JoinHandle(fiber: Unmanaged<RuntimeCore>.fromOpaque(core)._withUnsafeGuaranteedRef { $0.spawn(body) })
}
