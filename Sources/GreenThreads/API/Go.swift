import CContext

/// Starts a green thread on the runtime of the calling green thread, like
/// Go's `go` statement. Returns at once; the body runs concurrently.
///
/// Must be called from a green thread; from a plain OS thread use
/// `Runtime.spawn` (there is no implicit global runtime).
@inlinable
@discardableResult
public func go<T: Sendable>(_ body: consuming @escaping @Sendable () throws -> T) -> JoinHandle<T> {
    // Inlined so that `TypedFiber<T>` is named where `T` is concrete: see
    // `Worker.spawnFiber`. Consuming: the caller's reference to the
    // closure's context becomes the fiber's, with no retain and release.
    JoinHandle(fiber: Worker.spawnFiber(on: Worker.ofCallingGreenThread(), consume body))
}
