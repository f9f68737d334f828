// Python's generator protocol (PEP 342 and PEP 380) on a stackful coroutine.
//
// ## Design
// The body runs on its own small stack, on the thread of whoever calls
// `start`, `send`, `throw` or `close`; those calls switch into it and it
// switches back at each `yield` (see CoroutineControl.swift for the switch).
// Being stackful, a yield may sit at any depth of ordinary function calls,
// which is what lets `yield.from` be a plain loop.
//
// Values cross the switch through typed slots in `CoroutineFrame`, raw
// memory next to the control block:
//
//     caller                               body
//     send(v):  sent = v ──resume──▶       yield returns sent
//               ◀──suspend── yielded = y   yield(y)
//     .yielded(yielded)
//     throw(e): error = e ──resume(raise)▶ yield throws error
//     close():  ──resume(exit)──▶          yield throws CoroutineExit
//     .returned(returned) or rethrow error ◀── body returns or throws
//
// ## Abandonment
// Dropping the last reference to a suspended coroutine resumes it with
// `exit` from `deinit`, so the pending yield throws `CoroutineExit`, the
// body's `defer`s run and its stack goes back to the pool (Python closes a
// generator when it is garbage-collected, for the same reason). This relies
// on the body's frames holding no reference to the coroutine object; see the
// invariants in CoroutineControl.swift.
import CContext

/// The typed exchange slots of one coroutine, beside its control block in a
/// single allocation.
@usableFromInline
struct CoroutineFrame<Sent, Yielded, Returned> {
    @usableFromInline var control = CoroutineControl()
    @usableFromInline var sent: Sent?
    @usableFromInline var yielded: Yielded?
    @usableFromInline var returned: Returned?
    /// An error to raise at the pending yield (`throw`), or the error that
    /// escaped the body.
    @usableFromInline var error: (any Error)?
}

/// A coroutine with Python's generator protocol: it yields `Yielded` values
/// out, receives `Sent` values in at each yield, and finally returns a
/// `Returned` value.
///
///     let co = Coroutine<Int, String, Int> { yield in
///         var total = 0
///         while true {
///             let n = try yield("ok \(total)")
///             if n == 0 { return total }
///             total += n
///         }
///     }
///     try co.start()   // .yielded("ok 0")
///     try co.send(5)   // .yielded("ok 5")
///     try co.send(0)   // .returned(5)
///
/// The body runs on its own stack on the calling thread: each call switches
/// into it and returns when it yields or finishes. A coroutine is not
/// thread-safe, but it may be resumed from different threads one after
/// another (for example by a green thread that migrates between workers).
///
/// Dropping the last reference to a suspended coroutine closes it: the
/// pending yield throws `CoroutineExit` and the body's `defer`s run.
///
/// - Warning: the body must not keep a strong reference to its own
///   coroutine (a capture cycle): a suspended body would then keep it alive
///   and it would never be closed.
public class Coroutine<Sent, Yielded, Returned> {
    /// The body: receives the yield handle and returns the final value.
    public typealias Body = (Yield) throws -> Returned
    /// The outcome of one step.
    public typealias Step = CoroutineStep<Yielded, Returned>
    @usableFromInline typealias Frame = CoroutineFrame<Sent, Yielded, Returned>

    // SAFETY: `frame` is allocated in init and freed in deinit, and nothing
    // else owns it. `control` points into it.
    @usableFromInline let frame: UnsafeMutablePointer<Frame>
    @usableFromInline let control: UnsafeMutablePointer<CoroutineControl>
    @usableFromInline let stackSize: Int

    /// The default usable stack size of a coroutine body: 64 KiB, committed
    /// page by page as the body touches it.
    public static var defaultStackSize: Int { CoroutineStackPool.defaultSize }

    /// Makes a coroutine; the body does not run until `start()`.
    ///
    /// - Parameters:
    ///   - stackSize: usable bytes for the body's stack (at least 16 KiB is
    ///     used). Stacks of the default size are pooled; others are mapped
    ///     and unmapped each time.
    ///   - body: the coroutine body; `yield(x)` hands `x` out and returns the
    ///     next sent value.
    public init(stackSize: Int = 64 * 1024, _ body: @escaping Body) {
        self.stackSize = stackSize
        frame = .allocate(capacity: 1)
        frame.initialize(to: Frame())
        control = UnsafeMutableRawPointer(frame)
            .advanced(by: MemoryLayout<Frame>.offset(of: \Frame.control).unsafelyUnwrapped)
            .assumingMemoryBound(to: CoroutineControl.self)
        // Captures the body and raw pointers only: never `self`.
        let f = frame
        let c = control
        control.pointee.work = {
            do {
                let r = try body(Yield(frame: f, control: c))
                f.pointee.returned = r
            } catch {
                f.pointee.error = error
            }
        }
    }

    deinit {
        if control.pointee.state == .suspended {
            control.pointee.exitDelivered = true
            CoroutineSwitch.resume(control, .exit)
            if let error = frame.pointee.error.take(), !(error is CoroutineExit) {
                // Nobody is left to rethrow to; say so rather than lose it
                // (Python prints "Exception ignored in: <generator ...>").
                gt_write_stderr("GreenThreads: error ignored while closing an abandoned coroutine: \(error)\n")
            }
        }
        CoroutineSwitch.releaseStack(control)
        frame.deinitialize(count: 1)
        frame.deallocate()
    }

    /// Where the coroutine is in its life.
    public final var state: CoroutineState { control.pointee.state }

    /// Runs the body up to its first yield (Python's `next(co)` or
    /// `co.send(None)` on a fresh generator).
    ///
    /// - Returns: `.yielded(y)` at the first yield, or `.returned(r)` if the
    ///   body finished without yielding.
    /// - Throws: whatever error escapes the body (the coroutine is then
    ///   closed); `CoroutineError.alreadyStarted`, `.closed` or
    ///   `.alreadyRunning` if it is not in the `created` state;
    ///   `RuntimeError.outOfStackMemory` if no stack could be mapped for the
    ///   body (the coroutine stays `created`).
    @discardableResult
    public final func start() throws -> Step {
        switch control.pointee.state {
        case .created:
            try CoroutineSwitch.prepare(control, stackSize: stackSize)
            CoroutineSwitch.start(control)
            return try outcome()
        case .suspended: throw CoroutineError.alreadyStarted
        case .running: throw CoroutineError.alreadyRunning
        case .closed: throw CoroutineError.closed
        }
    }

    /// Resumes the body: its pending yield returns `value`.
    ///
    /// - Returns: `.yielded(y)` at the next yield, or `.returned(r)`.
    /// - Throws: whatever error escapes the body (the coroutine is then
    ///   closed); `CoroutineError.notStarted` before `start()`, `.closed`
    ///   after it finished, `.alreadyRunning` from inside its own body.
    @discardableResult
    @inlinable
    public final func send(_ value: Sent) throws -> Step {
        let c = control
        switch c.pointee.state {
        case .suspended:
            frame.pointee.sent = value
            CoroutineSwitch.resume(c, .proceed)
            return try outcome()
        case .created: throw CoroutineError.notStarted
        case .running: throw CoroutineError.alreadyRunning
        case .closed: throw CoroutineError.closed
        }
    }

    /// Raises `error` at the pending yield, as Python's `co.throw(error)`.
    ///
    /// If the body catches it and yields again, that is the result. A
    /// coroutine that has not started, or has finished, cannot catch it: a
    /// created one is closed without running, and the error is rethrown.
    ///
    /// - Throws: `error` (or whatever replaced it) if the body does not
    ///   handle it; the coroutine is then closed. `CoroutineError.alreadyRunning`
    ///   from inside its own body.
    @discardableResult
    public final func `throw`(_ error: any Error) throws -> Step {
        let c = control
        switch c.pointee.state {
        case .suspended:
            frame.pointee.error = error
            CoroutineSwitch.resume(c, .raise)
            return try outcome()
        case .created:
            closeUnstarted()
            throw error
        case .running: throw CoroutineError.alreadyRunning
        case .closed: throw error
        }
    }

    /// Finishes the coroutine: the pending yield throws `CoroutineExit`, so
    /// the body's `defer`s and `catch` blocks run. A no-op on a created
    /// (never started) or closed coroutine.
    ///
    /// - Throws: an error other than `CoroutineExit` that escaped the body
    ///   while it unwound; `CoroutineError.yieldAfterClose` if the body
    ///   tried to yield again (it is closed either way);
    ///   `CoroutineError.alreadyRunning` from inside its own body.
    public final func close() throws {
        let c = control
        switch c.pointee.state {
        case .created: closeUnstarted()
        case .closed: return
        case .running: throw CoroutineError.alreadyRunning
        case .suspended:
            c.pointee.exitDelivered = true
            CoroutineSwitch.resume(c, .exit)
            // A yield after exitDelivered throws instead of suspending, so
            // the body has necessarily finished.
            CoroutineSwitch.releaseStack(c)
            frame.pointee.returned = nil
            let error = frame.pointee.error.take()
            if let error, !(error is CoroutineExit) { throw error }
            if c.pointee.ignoredExit { throw CoroutineError.yieldAfterClose }
        }
    }

    /// Reads the result of a resume: a yield, or the end of the body.
    @inlinable @inline(__always)
    final func outcome() throws -> Step {
        if control.pointee.state == .suspended {
            return .yielded(frame.pointee.yielded.take().unsafelyUnwrapped)
        }
        return try finished()
    }

    /// The body has just ended: recycle its stack and report how.
    @usableFromInline
    final func finished() throws -> Step {
        CoroutineSwitch.releaseStack(control)
        if let error = frame.pointee.error.take() { throw error }
        return .returned(frame.pointee.returned.take().unsafelyUnwrapped)
    }

    /// Closes a coroutine whose body never ran: there is nothing to unwind,
    /// only the body's captures to release.
    private final func closeUnstarted() {
        control.pointee.work = nil
        control.pointee.state = .closed
    }
}
