import CContext

/// Starts a green thread on the runtime of the calling green thread, like
/// Go's `go` statement. Returns at once; the body runs concurrently.
///
/// Must be called from a green thread; from a plain OS thread use
/// `Runtime.spawn` (there is no implicit global runtime).
@inlinable
@discardableResult
public func go<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> JoinHandle<T> {
    // Inlined so that `TypedFiber<T>` is allocated where `T` is concrete:
    // see `RuntimeCore.submit`.
    RuntimeCore.ofCallingGreenThread()._withUnsafeGuaranteedRef { core in
        let fiber = TypedFiber(id: core.newFiberIDForCaller(), core: core, body: body)
        core.submitFromCaller(fiber)
        return JoinHandle(fiber: fiber)
    }
}
