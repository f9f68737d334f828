// Per-thread greenlet bookkeeping: which greenlet is running, the root
// greenlet standing for the thread's own stack, and the hand-off of a value
// (and of the greenlet just left) across each switch.
//
// ## Switch protocol
// Every switch, whether `switch`, `throw` or a body finishing, goes:
//   1. `handOff` (on the old stack): picks the live target, parks the value
//      in `inFlight`, moves the old current greenlet into `retiring`, makes
//      the target current, and returns the two raw context pointers.
//   2. The transfer, with no strong reference in the frame: a suspended
//      greenlet's own frame must not keep it alive, or dropping it could
//      never unwind it.
//   3. `completeSwitch` (on the new stack): takes `inFlight`, then drops
//      `retiring`. Only here, off its stack, may the greenlet we left be
//      released (which may run its deinit, which unwinds it with a nested
//      switch) or, if it finished, have its stack recycled.
//
// ## Identity
// "Thread" means the OS thread plus, inside a runtime, the green thread: two
// green threads that share a worker must not see each other's greenlets as
// current. The state is kept per OS thread and re-rooted when a different
// green thread starts using greenlets there while none is running.
import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Who a greenlet belongs to: the OS thread, and the green thread on it (if
/// any) that created it.
///
/// The OS thread is named by its `GreenletThread`'s serial number, not by
/// `pthread_self()`: glibc declares that function `const`, so an optimised
/// caller may reuse a value read before a switch after the green thread has
/// moved to another worker. The serial is reached through
/// `pthread_getspecific`, which is read afresh at every call.
struct GreenletOwner: Equatable {
    let thread: UInt64
    let greenThread: UInt64?
}

/// The greenlet state of one OS thread. Touched only by that thread.
final class GreenletThread {
    /// Unique for the life of the process (addresses are reused, serials not).
    let serial: UInt64
    /// Stands for the stack that first used greenlets (the thread's own
    /// stack, or a green thread's). Never dead while it is the root.
    var root: Greenlet
    /// The greenlet running now (strong: nothing else may keep it alive).
    var current: Greenlet
    /// The value or error travelling across the switch in progress.
    var inFlight: Result<Any, any Error>?
    /// The greenlet just switched away from, released by the side that
    /// switched in (see the protocol in the file header).
    var retiring: Greenlet?

    private init() {
        serial = greenletThreadSerial.add(1, ordering: .relaxed).newValue
        let owner = GreenletOwner(thread: serial, greenThread: GreenThread.current?.rawValue)
        root = Greenlet(rootFor: owner)
        current = root
    }

    /// The calling OS thread's state, if greenlets were used on it.
    static var existing: GreenletThread? {
        guard let raw = pthread_getspecific(greenletThreadKey) else { return nil }
        return Unmanaged<GreenletThread>.fromOpaque(raw).takeUnretainedValue()
    }

    /// The calling OS thread's state, created on first use (without the
    /// checks of `forCaller`).
    static var forThisThread: GreenletThread {
        if let ts = existing { return ts }
        let ts = GreenletThread()
        pthread_setspecific(greenletThreadKey, Unmanaged.passRetained(ts).toOpaque())
        return ts
    }

    /// The identity of the calling code.
    static var callerOwner: GreenletOwner {
        GreenletOwner(thread: forThisThread.serial, greenThread: GreenThread.current?.rawValue)
    }

    /// The calling thread's state, created on first use.
    ///
    /// - Parameter owner: the greenlet the caller wants to switch to must
    ///   belong to the caller; nil to skip that check.
    /// - Throws: `GreenletError.wrongThread` if `owner` is not the caller;
    ///   `GreenletError.busy` if another green thread's greenlet is running
    ///   on this OS thread.
    static func forCaller(owner expected: GreenletOwner? = nil) throws -> GreenletThread {
        let ts = forThisThread
        let owner = GreenletOwner(thread: ts.serial, greenThread: GreenThread.current?.rawValue)
        if let expected, expected != owner { throw GreenletError.wrongThread }
        if ts.root.owner != owner {
            guard ts.current === ts.root else { throw GreenletError.busy }
            // The previous owner is back at its root, so its root context is
            // about to go stale: retire it. Its greenlets, if resumed later
            // by the same owner, finish into the new root instead.
            ts.root.control.pointee.state = .closed
            ts.root = Greenlet(rootFor: owner)
            ts.current = ts.root
        }
        return ts
    }

    /// Step 1 of a switch: makes the first live greenlet from `target` up
    /// its parents current and returns the contexts to transfer between,
    /// or nil if that greenlet is already the current one.
    /// Throws `RuntimeError.outOfStackMemory`, before anything changed, if
    /// a greenlet starting needs a stack and none can be mapped.
    func handOff(
        to target: Greenlet, _ payload: Result<Any, any Error>
    ) throws(RuntimeError) -> (from: UnsafeMutablePointer<gt_context>, to: UnsafeMutablePointer<gt_context>)? {
        var dest = target
        while dest.isDead { dest = dest.parent ?? root }
        if dest === current { return nil }
        if dest.control.pointee.state == .created {
            try CoroutineSwitch.prepare(dest.control, stackSize: dest.stackSize, entry: greenletEntry)
        }
        let from = current
        if from.control.pointee.state == .running { from.control.pointee.state = .suspended }
        dest.control.pointee.state = .running
        inFlight = payload
        retiring = from
        current = dest
        return (CoroutineSwitch.contextPointer(from.control), CoroutineSwitch.contextPointer(dest.control))
    }

    /// Step 3 of a switch, first thing on the stack switched to.
    ///
    /// - Returns: the value the switcher passed.
    /// - Throws: the error the switcher passed.
    static func completeSwitch() throws -> Any {
        let ts = existing.unsafelyUnwrapped
        let payload = ts.inFlight.take().unsafelyUnwrapped
        if let left = ts.retiring.take(), left.isDead {
            CoroutineSwitch.releaseStack(left.control)
        }
        // `left` is released by here: its deinit, if this was the last
        // reference, has run (and unwound it if it was suspended).
        return try payload.get()
    }

    /// The end of a greenlet's body: it is dead, and its parent (or the
    /// first live ancestor) receives the outcome the body left in `inFlight`.
    @inline(never)
    static func finishCurrent() -> (from: UnsafeMutablePointer<gt_context>, to: UnsafeMutablePointer<gt_context>) {
        let ts = existing.unsafelyUnwrapped
        let outcome = ts.inFlight.take().unsafelyUnwrapped
        let dying = ts.current
        dying.control.pointee.state = .closed
        // Never nil: `dying` is alive and not the current greenlet after this.
        // It can fail only when the parent has not started and no stack can
        // be mapped for it; the dying body's stack has nowhere to return to.
        do {
            return try ts.handOff(to: dying.parent ?? ts.root, outcome).unsafelyUnwrapped
        } catch {
            fatalError("GreenThreads: a finished greenlet's unstarted parent could not start: \(error)")
        }
    }
}

/// The last serial handed to a `GreenletThread`.
private let greenletThreadSerial = Atomic<UInt64>(0)

/// The key of the per-thread `GreenletThread`, whose +1 the thread holds
/// until it exits.
private let greenletThreadKey: pthread_key_t = {
    var key = pthread_key_t()
    let err = pthread_key_create(&key) { raw in
        guard let raw else { return }
        Unmanaged<GreenletThread>.fromOpaque(raw).release()
    }
    precondition(err == 0, "GreenThreads: pthread_key_create failed (\(err))")
    return key
}()

/// The first code on a greenlet stack. Like `coroutineEntry`, but a
/// finished greenlet goes to its parent rather than back to a caller.
let greenletEntry: @convention(c) (UnsafeMutableRawPointer?) -> Void = { arg in
    let c = arg.unsafelyUnwrapped.assumingMemoryBound(to: CoroutineControl.self)
    runCoroutineWork(c)
    // The work left its outcome in `inFlight`; this frame holds only raw
    // pointers, so abandoning it leaks nothing.
    let (from, to) = GreenletThread.finishCurrent()
    gt_context_transfer(from, to)
    preconditionFailure("GreenThreads: a dead greenlet was resumed")
}
