import CContext
import Synchronization

/// A green thread with a body returning `T`: the fiber and the shared state
/// its `JoinHandle`s read (one allocation per spawn, not two).
final class TypedFiber<T>: Fiber, @unchecked Sendable {
    private var body: (() throws -> T)?
    private let lock = SpinLock()
    private var result: Result<T, any Error>?
    private var joiners: [Waker] = []
    private var callbacks: [(Result<T, any Error>) -> Void] = []
    let done = Atomic<Bool>(false)
    /// Someone looked at the result: an error it held was handled.
    private let observed = Atomic<Bool>(false)

    init(id: UInt64, core: RuntimeCore, stack: gt_stack, body: @escaping () throws -> T) {
        self.body = body
        super.init(id: id, core: core, stack: stack)
    }

    deinit {
        // A cancelled thread that unwound with CancellationError did what
        // it was asked: not worth a report.
        if case .failure(let error)? = result, !observed.load(ordering: .relaxed), !(error is CancellationError) {
            core.reportUnhandled(error, thread: id)
        }
    }

    override func runBody() {
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try body.unsafelyUnwrapped())
        } catch {
            outcome = .failure(error)
        }
        body = nil  // drop captures now, not when the last handle goes
        lock.lock()
        result = outcome
        done.store(true, ordering: .releasing)
        let toWake = joiners
        let toCall = callbacks
        joiners = []
        callbacks = []
        lock.unlock()
        for j in toWake { j.wake() }
        for c in toCall { c(outcome) }
    }

    /// Waits for the body to finish and returns its result. Cancelling the
    /// *joining* green thread ends the wait with CancellationError.
    func join() throws -> T {
        if !done.load(ordering: .acquiring) {
            let cause = Park.wait(reason: .join(id), cancellable: true, core: core) { waker in
                lock.lock()
                defer { lock.unlock() }
                if result != nil { return false }
                joiners.append(waker)
                return true
            }
            switch cause {
            case .notified, .timedOut: break
            case .cancelled: throw CancellationError()
            case .deadlock: throw RuntimeError.deadlock(core.deadlockReport ?? DeadlockReport(blocked: []))
            }
        }
        return try finishedResult().get()
    }

    func finishedResult() -> Result<T, any Error> {
        observed.store(true, ordering: .relaxed)
        return lock.withLock { result.unsafelyUnwrapped }
    }

    /// Calls `callback` with the result once the body finishes (now if it has).
    func onCompletion(_ callback: @escaping (Result<T, any Error>) -> Void) {
        lock.lock()
        if let result {
            lock.unlock()
            observed.store(true, ordering: .relaxed)
            callback(result)
            return
        }
        callbacks.append(callback)
        observed.store(true, ordering: .relaxed)
        lock.unlock()
    }
}
