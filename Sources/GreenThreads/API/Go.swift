import CContext

/// Starts a green thread on the runtime of the calling green thread, like
/// Go's `go` statement. Returns at once; the body runs concurrently.
///
/// ```swift
/// go { work() }
/// go(name: "conn \(id)") { serve(conn) }
/// ```
///
/// Must be called from a green thread; from a plain OS thread use
/// `Runtime.spawn` (there is no implicit global runtime).
///
/// - Parameters:
///   - name: shown by ``GreenThread/name``, ``Runtime/dump()``, deadlock
///     reports and the line for an error nobody joined. nil: no name.
///   - file: the spawn site's file, recorded for ``Runtime/dump()``;
///     leave the default.
///   - line: the spawn site's line; leave the default.
///   - body: what the green thread runs; its value or error is the
///     returned handle's ``JoinHandle/join()``.
@inlinable
@discardableResult
public func go<T: Sendable>(
    name: String? = nil, file: StaticString = #fileID, line: UInt = #line,
    _ body: consuming @escaping @Sendable () throws -> T
) -> JoinHandle<T> {
    // Inlined so that `TypedFiber<T>` is named where `T` is concrete: see
    // `Worker.spawnFiber`. Consuming: the caller's reference to the
    // closure's context becomes the fiber's, with no retain and release.
    JoinHandle(fiber: Worker.spawnFiber(
        on: Worker.ofCallingGreenThread(), name: name, file: file, line: line, consume body))
}
