// Python-style generators: a body that yields values, consumed lazily as a
// Swift Sequence.
import CContext

/// A lazily evaluated sequence whose elements a body yields one at a time,
/// as a Python generator does.
///
///     let gen = Generator<Int> { yield in
///         for i in 0..<3 { try yield(i) }
///     }
///     Array(gen)  // [0, 1, 2]
///
/// Each call to `next()` resumes the body on its own small stack, on the
/// calling thread, until it yields the next element. The generator is its
/// own iterator, so it is single-pass: a second iteration continues where
/// the first stopped. It works on plain threads and inside green threads
/// alike, and may be resumed from different threads one after another.
///
/// A generator is a `Coroutine` that receives nothing and returns nothing,
/// so `send(())`, `throw(_:)` and `close()` work on it too.
///
/// Abandoning an unfinished generator (dropping its last reference) closes
/// it: the pending `yield` throws `CoroutineExit`, the body's `defer`s run
/// and its stack is recycled.
///
/// - Warning: the body must not capture the generator itself strongly: the
///   suspended body would keep it alive, so it could never be abandoned.
public final class Generator<Element>: Coroutine<Void, Element, Void>, Sequence, IteratorProtocol {
    /// Makes a generator; the body first runs at the first `next()`.
    ///
    /// - Parameters:
    ///   - stackSize: usable bytes for the body's stack (see `Coroutine`).
    ///   - body: yields the elements with `try yield(x)`; returning ends the
    ///     sequence. It should let `CoroutineExit` propagate.
    public override init(stackSize: Int = 64 * 1024, _ body: @escaping Body) {
        super.init(stackSize: stackSize, body)
    }

    /// Resumes the body until it yields the next element.
    ///
    /// - Returns: the next element, or nil once the body has returned.
    /// - Precondition: the body does not throw (other than by letting
    ///   `CoroutineExit` through): a Swift `Sequence` cannot propagate an
    ///   error. Use `nextOrThrow()` for a body that may throw. Calling
    ///   `next()` from the generator's own body is also a precondition failure.
    @inlinable @inline(__always)
    public func next() -> Element? {
        do {
            return try nextOrThrow()
        } catch {
            Self.bodyThrew(error)
        }
    }

    /// Out of line: keeps the message formatting out of every inlined `next()`.
    @usableFromInline
    static func bodyThrew(_ error: any Error) -> Never {
        preconditionFailure("GreenThreads: Generator.next(): \(error) (use nextOrThrow() for a body that throws)")
    }

    /// Resumes the body until it yields the next element, rethrowing an
    /// error that escapes it.
    ///
    /// - Returns: the next element, or nil once the body has finished
    ///   (then and after, the generator is closed).
    /// - Throws: the error that escaped the body (once; the generator is
    ///   then closed); `CoroutineError.alreadyRunning` from the generator's
    ///   own body; `RuntimeError.outOfStackMemory` if no stack could be
    ///   mapped for the body's first run (the generator stays unstarted).
    @inlinable @inline(__always)
    public func nextOrThrow() throws -> Element? {
        let c = control
        switch c.pointee.state {
        case .suspended:
            frame.pointee.sent = ()
            CoroutineSwitch.resume(c, .proceed)
        case .created:
            try CoroutineSwitch.prepare(c, stackSize: stackSize)
            CoroutineSwitch.start(c)
        case .closed:
            return nil
        case .running:
            throw CoroutineError.alreadyRunning
        }
        if c.pointee.state == .suspended {
            return frame.pointee.yielded.take().unsafelyUnwrapped
        }
        return try finish()
    }

    /// The body has just ended: recycle its stack and report how.
    @usableFromInline
    func finish() throws -> Element? {
        CoroutineSwitch.releaseStack(control)
        if let error = frame.pointee.error.take() { throw error }
        return nil
    }
}
