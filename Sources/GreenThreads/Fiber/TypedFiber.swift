import CContext
import Synchronization

/// A green thread with a body returning `T`: the fiber and the shared state
/// its `JoinHandle`s read (one allocation per spawn, not two).
///
/// Written so that spawning instantiates no generic type but this class:
/// code in this module is not specialized for the caller's `T`, and each
/// `Result<T, Error>` or `Optional<T>` it touched would cost a metadata
/// lookup (a hashed, locked table) per spawn. So the value lives in raw
/// storage typed only through `T`'s own value witnesses, and the error in
/// an existential.
@usableFromInline
final class TypedFiber<T>: Fiber, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the outcome and the joiners are guarded by
    // `lock` (and settled once `done` is set); `body` is stored before the
    // fiber is queued and read only by the worker that runs it. The rest is
    // Fiber's (see there).

    /// Set by `Worker.spawnFiber` for a reused fiber, in the inlined caller:
    /// stored there, the caller's reference moves in. Passed to a method of
    /// this module instead, it was turned into a borrowed argument, retained
    /// inside and released by a thunk.
    @exclusivity(unchecked) @usableFromInline var body: (() throws -> T)?
    private let lock = SpinLock()
    /// Holds the value once `succeeded`; nil for zero-sized `T` (Void).
    private let storage: UnsafeMutablePointer<T>?
    // Guarded by `lock` (or settled once `done` is set).
    @exclusivity(unchecked) private var succeeded = false
    @exclusivity(unchecked) private var failure: (any Error)?
    /// The first joiner (usually the only one: no array per join), then
    /// any others. Unowned: a joiner stays parked, so alive, until its
    /// claim is won, and one whose wait ends otherwise (cancelled, or a
    /// deadlock) removes itself under `lock` before it returns; so the body's
    /// end, claiming under `lock`, only ever touches live joiners. A strong
    /// `Waker` here cost three atomic pairs per join on the joiner's
    /// reference count, from both workers when the thread was stolen.
    @exclusivity(unchecked) private var joiner: UnownedWaker?
    @exclusivity(unchecked) private var joiners: [UnownedWaker] = []
    @exclusivity(unchecked) private var callbacks: [() -> Void] = []
    let done = Atomic<Bool>(false)
    /// Someone looked at the result: an error it held was handled.
    private let observed = Atomic<Bool>(false)

    /// A thread spawned by a green thread on `worker`.
    @usableFromInline
    init(worker: Unmanaged<Worker>, name: String?, file: StaticString, line: UInt, body: @escaping () throws -> T) {
        self.body = body
        storage = MemoryLayout<T>.size == 0 ? nil : .allocate(capacity: 1)
        let (core, anchor) = worker._withUnsafeGuaranteedRef { ($0.core, $0.anchor ?? CoreAnchor(core: $0.core)) }
        super.init(core: core, anchor: anchor, name: name, file: file, line: line)
    }

    /// A thread spawned from outside the runtime's workers.
    @usableFromInline
    init(core: RuntimeCore, name: String?, file: StaticString, line: UInt, body: @escaping () throws -> T) {
        self.body = body
        storage = MemoryLayout<T>.size == 0 ? nil : .allocate(capacity: 1)
        // A fresh anchor: outside threads spawn rarely, and a shared one
        // would have to outlive a shutdown racing their spawn.
        super.init(core: core, anchor: CoreAnchor(core: core), name: name, file: file, line: line)
    }

    /// Makes a fiber taken from the cache, its new `body` already set, new
    /// again. It finished with a trivial value (nothing to deinitialize) and
    /// nobody else references it (FiberCache.swift); the deque push that
    /// publishes it orders these plain writes before whoever runs or joins
    /// it. Then queues it on `worker`, like a new one, with the name of its
    /// new spawn.
    @usableFromInline
    func restart(on worker: Unmanaged<Worker>, name newName: String?) {
        // Most spawns are unnamed: skip the copy and release of nil.
        if newName != nil || name != nil { name = newName }
        resetForReuse()
        succeeded = false
        done.store(false, ordering: .relaxed)
        observed.store(false, ordering: .relaxed)
        worker._withUnsafeGuaranteedRef { $0.submitSpawned(self) }
    }

    deinit {
        if succeeded { storage?.deinitialize(count: 1) }
        storage?.deallocate()
        // A cancelled thread that unwound with CancellationError did what
        // it was asked: not worth a report.
        if let failure, !observed.load(ordering: .relaxed), !(failure is CancellationError) {
            core.reportUnhandled(failure, thread: id, name: name)
        }
    }

    override func runBody() {
        var error: (any Error)?
        do {
            let value = try body.unsafelyUnwrapped()
            if let storage { storage.initialize(to: consume value) }
        } catch let e {
            error = e
        }
        // Drop the captures now, not when the last handle goes. (Not
        // `body.take()`, nor a move through a pointer or `swap`: in this
        // unspecialized code each looks up the metadata of
        // `Optional<() throws -> T>` on every call, dearer than the retain
        // and release they save.)
        body = nil
        settle(error: error)
    }

    /// Ends a thread that never ran (a spawn past `maxGreenThreads`, or no
    /// stack to run on): `error` is its outcome, as if its body had thrown.
    override func failUnrun(_ error: any Error) {
        body = nil
        settle(error: error)
    }

    /// Records the outcome and wakes the joiners: the end of every thread.
    @inline(__always)
    private func settle(error: (any Error)?) {
        // Reusable once finished: a value with no deinit to delay, and no
        // error whose report waits for the last handle to go.
        recyclable = error == nil && _isPOD(T.self)
        lock.lock()
        if let error { failure = error } else { succeeded = true }
        done.store(true, ordering: .releasing)
        // Most threads finish before anyone joins them: skip the swaps.
        // (`joiners` holds anyone only after `joiner` does.)
        if joiner == nil && callbacks.isEmpty {
            lock.unlock()
            return
        }
        // Claimed under the lock (see `joiner`), resumed after it: a resume
        // may wake a sleeping worker, a futex call.
        var first = joiner
        joiner = nil
        if let j = first, !j.claim() { first = nil }
        if joiners.isEmpty && callbacks.isEmpty {
            lock.unlock()
            first?.resume()
        } else {
            wakeOthersAndUnlock(first: first)
        }
    }

    /// The body's end when more than one joiner or a callback waits
    /// (called under `lock`, which it releases).
    @inline(never)
    private func wakeOthersAndUnlock(first: UnownedWaker?) {
        var toWake: [UnownedWaker] = []
        var toCall: [() -> Void] = []
        swap(&toWake, &joiners)
        toWake.removeAll { !$0.claim() }
        swap(&toCall, &callbacks)
        lock.unlock()
        first?.resume()
        for j in toWake { j.resume() }
        for c in toCall { c() }
    }

    /// Waits for the body to finish and returns its result. Cancelling the
    /// *joining* green thread ends the wait with CancellationError.
    func join() throws -> T {
        if !done.load(ordering: .acquiring) {
            var mine: UnownedWaker?
            let cause = Park.waitQueued(reason: .join(id), cancellable: true, core: core) { waker in
                lock.lock()
                defer { lock.unlock() }
                if done.load(ordering: .relaxed) { return false }
                if joiner == nil { joiner = waker } else { joiners.append(waker) }
                mine = waker
                return true
            }
            // Ended some other way: leave no waker behind (see `joiner`).
            if cause != .notified, let mine { withdraw(mine) }
            switch cause {
            case .notified, .timedOut: break
            case .cancelled: throw CancellationError()
            case .deadlineExceeded: throw DeadlineExceeded()
            case .deadlock: throw RuntimeError.deadlock(core.deadlockReport ?? DeadlockReport(blocked: []))
            }
        }
        return try value()
    }

    /// Joiners registered, for tests: a join that gave up leaves none.
    var joinerCount: Int {
        lock.withLock { (joiner == nil ? 0 : 1) + joiners.count }
    }

    /// Removes a joiner whose wait ended other than by the body's end.
    private func withdraw(_ waker: UnownedWaker) {
        lock.lock()
        if let j = joiner, j.isSameWait(as: waker) {
            // Keep `joiners` behind `joiner`, as the body's end expects.
            joiner = joiners.isEmpty ? nil : joiners.removeFirst()
        } else {
            joiners.removeAll { $0.isSameWait(as: waker) }
        }
        lock.unlock()
    }

    /// The outcome of a finished body (`done` must be true).
    func value() throws -> T {
        observed.store(true, ordering: .relaxed)
        // `done` was read with acquire: the fields below are settled.
        if let failure { throw failure }
        if let storage { return storage.pointee }
        // Zero-sized T: every value is the same, conjure it without storage.
        return UnsafeMutableRawPointer(bitPattern: 0x10)!.assumingMemoryBound(to: T.self).pointee
    }

    /// Calls `callback` once the body finishes (now if it has).
    func onCompletion(_ callback: @escaping () -> Void) {
        observed.store(true, ordering: .relaxed)
        lock.lock()
        if done.load(ordering: .relaxed) {
            lock.unlock()
            callback()
            return
        }
        callbacks.append(callback)
        lock.unlock()
    }
}
