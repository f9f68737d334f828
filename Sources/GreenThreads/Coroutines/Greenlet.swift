// greenlet's explicit, symmetric switching: any greenlet may switch to any
// other of its thread, passing a value; a finished greenlet returns to its
// parent.
import CContext

/// A function running on its own stack that other code of the same thread
/// switches to explicitly, as Python's `greenlet` does. Unlike a
/// `Coroutine`, there is no caller to return to on a yield: each switch
/// names where execution goes next.
///
///     var order: [Int] = []
///     var gr1: Greenlet!, gr2: Greenlet!
///     gr1 = Greenlet { _ in order.append(12); try gr2.switch(); order.append(34) }
///     gr2 = Greenlet { _ in order.append(56); try gr1.switch(); order.append(78) }
///     try gr1.switch()  // order == [12, 56, 34]
///
/// - `try g.switch(x)` starts `g` with `x` as its body's argument, or resumes
///   it so that *its* pending `switch` returns `x`; the call itself returns
///   when some greenlet switches back here, with the value that one passed.
/// - When a body returns, its greenlet is dead and its `parent` (by default
///   the greenlet that was current when it was created) resumes, receiving
///   the return value. An error escaping a body is thrown in the parent.
///   Switching to a dead greenlet switches to its parent.
/// - Dropping the last reference to a suspended greenlet throws
///   `GreenletExit` into it, so its body unwinds (its `defer`s run), and
///   frees its stack.
///
/// Greenlets never migrate: all of them run on the thread that created them
/// (inside a runtime, the green thread and its worker), and switching from
/// anywhere else throws `GreenletError.wrongThread`. Values are `Any`
/// because any greenlet may switch to any other.
///
/// - Warning: a body that captures its own greenlet strongly keeps it alive
///   while suspended; it is then never unwound. Capture cycles between
///   greenlets (as in the example) must be broken by the caller.
public final class Greenlet {
    // SAFETY: allocated in init and freed in deinit; the context in it is
    // only switched through while the greenlet is alive (the thread state
    // holds the running greenlet, `retiring` the one being left).
    let control: UnsafeMutablePointer<CoroutineControl>
    let owner: GreenletOwner
    let stackSize: Int
    let isRoot: Bool

    /// Where execution goes when this greenlet's body finishes. Nil only for
    /// a thread's root greenlet (the code that first used greenlets).
    public private(set) var parent: Greenlet?

    /// Makes a greenlet; the body first runs at the first switch to it.
    ///
    /// - Parameters:
    ///   - parent: receives control (and the return value) when the body
    ///     finishes. Defaults to the greenlet current now.
    ///   - stackSize: usable bytes for the body's stack (see `Coroutine`).
    ///   - body: receives the value of the first switch; its return value
    ///     goes to the parent.
    /// - Precondition: `parent`, if given, belongs to the calling thread.
    public init<R>(parent: Greenlet? = nil, stackSize: Int = 64 * 1024, _ body: @escaping (Any) throws -> R) {
        owner = GreenletThread.callerOwner
        isRoot = false
        self.stackSize = stackSize
        let parent = parent ?? Greenlet.current
        precondition(parent.owner == owner, "GreenThreads: a greenlet's parent must belong to the same thread")
        self.parent = parent
        control = .allocate(capacity: 1)
        control.initialize(to: CoroutineControl())
        // Captures the body only, never `self`: see GreenletThread.swift.
        control.pointee.work = {
            let outcome: Result<Any, any Error>
            do {
                let argument = try GreenletThread.completeSwitch()
                outcome = .success(try body(argument))
            } catch let exit as GreenletExit {
                outcome = .success(exit)
            } catch {
                outcome = .failure(error)
            }
            GreenletThread.existing.unsafelyUnwrapped.inFlight = outcome
        }
    }

    /// The root greenlet of `owner`: no stack of its own, its context is
    /// wherever the owner's code was when it last switched away.
    init(rootFor owner: GreenletOwner) {
        self.owner = owner
        isRoot = true
        stackSize = 0
        parent = nil
        control = .allocate(capacity: 1)
        control.initialize(to: CoroutineControl())
        control.pointee.state = .running
        gt_context_init_base(&control.pointee.context)
    }

    deinit {
        if !isRoot && control.pointee.state == .suspended { unwindAbandoned() }
        CoroutineSwitch.releaseStack(control)
        control.deinitialize(count: 1)
        control.deallocate()
    }

    /// The greenlet running the calling code: the thread's root greenlet
    /// when no other is running.
    ///
    /// - Precondition: no other green thread's greenlet is running on this
    ///   worker thread (see `GreenletError.busy`).
    public static var current: Greenlet {
        do {
            return try GreenletThread.forCaller().current
        } catch {
            preconditionFailure("GreenThreads: Greenlet.current: \(error)")
        }
    }

    /// Whether the body has finished (returned or thrown). A dead greenlet
    /// cannot run again; switching to it switches to its parent.
    public var isDead: Bool { control.pointee.state == .closed }

    /// Whether the body has started and not finished.
    public var isActive: Bool {
        let s = control.pointee.state
        return s == .running || s == .suspended
    }

    /// Switches to this greenlet, passing `value`: it starts the body with
    /// `value` as argument, or is the return value of this greenlet's
    /// pending `switch`.
    ///
    /// - Returns: the value passed by whichever greenlet switches back to
    ///   the caller (or a child's return value, when the caller is its
    ///   parent).
    /// - Throws: an error thrown into the caller by `throw(_:)`, or one that
    ///   escaped a child body; `GreenletExit` when the caller's own greenlet
    ///   is abandoned; `GreenletError.wrongThread` from another thread;
    ///   `RuntimeError.outOfStackMemory` if this greenlet has not started
    ///   and no stack could be mapped for it (nothing changed).
    @discardableResult
    public func `switch`(_ value: Any = ()) throws -> Any {
        try transfer(.success(value))
    }

    /// Switches to this greenlet and raises `error` there, at its pending
    /// switch. A greenlet that has not started dies without running its
    /// body, and the error goes to its parent. `GreenletExit` (the default)
    /// ends the greenlet quietly: its parent receives it as the value.
    ///
    /// - Returns: the value passed by whichever greenlet switches back to
    ///   the caller.
    /// - Throws: `error`, if it comes back to the caller unhandled (for
    ///   example when the caller is the parent of an unstarted greenlet);
    ///   otherwise as `switch(_:)`.
    @discardableResult
    public func `throw`(_ error: any Error = GreenletExit()) throws -> Any {
        try transfer(.failure(error))
    }

    private func transfer(_ payload: Result<Any, any Error>) throws -> Any {
        let ts = try GreenletThread.forCaller(owner: owner)
        guard let (from, to) = try ts.handOff(to: self, payload) else {
            return try payload.get()  // already current: a switch to oneself
        }
        gt_context_transfer(from, to)
        return try GreenletThread.completeSwitch()
    }

    /// Called from deinit of a suspended greenlet: nothing will ever switch
    /// to it again, so throw `GreenletExit` into it and let its body unwind,
    /// coming back here when it finishes.
    private func unwindAbandoned() {
        guard let ts = try? GreenletThread.forCaller(owner: owner) else {
            gt_write_stderr(
                "GreenThreads: a suspended greenlet was abandoned off its thread; its stack is freed without unwinding\n"
            )
            return
        }
        parent = ts.current
        do {
            _ = try transfer(.failure(GreenletExit()))
        } catch {
            gt_write_stderr("GreenThreads: error ignored while unwinding an abandoned greenlet: \(error)\n")
        }
    }
}
