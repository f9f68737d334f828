import CContext
import Synchronization

/// The spawn path of a green thread: everything `go` does, reaching the
/// calling worker once and retaining nothing but the new fiber.
extension Worker {
    /// The worker running the calling green thread, for `go`. Unretained:
    /// the worker outlives every green thread it runs, and a retain here
    /// would be an atomic pair per spawn.
    @usableFromInline
    @inline(__always)
    static func ofCallingGreenThread() -> Unmanaged<Worker> {
        guard let raw = gt_current_worker() else {
            preconditionFailure("GreenThreads: go { } called outside a green thread; use Runtime.spawn or Runtime.run")
        }
        return Unmanaged.fromOpaque(raw)
    }

    /// The calling thread's worker if it is one of `core`'s, unretained.
    @usableFromInline
    @inline(__always)
    static func calling(of core: RuntimeCore) -> Unmanaged<Worker>? {
        guard let raw = gt_current_worker() else { return nil }
        let w = Unmanaged<Worker>.fromOpaque(raw)
        return w._withUnsafeGuaranteedRef { $0.coreAddress == Unmanaged.passUnretained(core).toOpaque() } ? w : nil
    }

    /// Makes and queues a green thread running `body`, spawned by a green
    /// thread on this worker.
    ///
    /// Inlined into the caller, so that `TypedFiber<T>` is named where `T`
    /// is concrete: its metadata is then cached per call site, where in
    /// this module's unspecialized code every mention would cost a hashed
    /// metadata lookup (~300 instructions).
    ///
    /// Static, on an unretained worker, and consuming `body`: the closure's
    /// context passes from the caller to the fiber without a retain and
    /// release (an instance method would need the worker in a closure,
    /// which could only borrow `body`).
    @inlinable
    @inline(__always)
    static func spawnFiber<T>(
        on worker: Unmanaged<Worker>, name: String?, file: StaticString, line: UInt,
        _ body: consuming @escaping () throws -> T
    ) -> TypedFiber<T> {
        if let cached = worker._withUnsafeGuaranteedRef({ $0.reusableFiber(ObjectIdentifier(TypedFiber<T>.self)) }) {
            // Its class was checked. The cache's +1 becomes the caller's;
            // `restart` submits it, taking the scheduler's.
            let fiber = Unmanaged<TypedFiber<T>>.fromOpaque(cached.toOpaque()).takeRetainedValue()
            fiber.body = consume body
            // The site here, plain stores like `body` (nobody else references
            // a reused fiber yet); the name in `restart`, out of line: stored
            // here, the release of the old name made the compiler guard the
            // fiber with a retain and release (+60 instructions a spawn).
            fiber.spawnFile = file
            fiber.spawnLine = line
            fiber.restart(on: worker, name: name)
            return fiber
        }
        let fiber = TypedFiber(worker: worker, name: name, file: file, line: line, body: consume body)
        worker._withUnsafeGuaranteedRef { $0.submitSpawned(fiber) }
        return fiber
    }

    /// A finished fiber of class `type` from this worker's cache that
    /// nobody else references (see FiberCache.swift), with the cache's +1;
    /// or nil.
    @usableFromInline
    func reusableFiber(_ type: ObjectIdentifier) -> Unmanaged<Fiber>? {
        guard let u = local.pointee.fibers.take() ?? refillFibers() else { return nil }
        // Released at the end of this scope unless reused.
        var fiber = u.takeRetainedValue()
        guard ObjectIdentifier(Swift.type(of: fiber)) == type, isKnownUniquelyReferenced(&fiber) else {
            fiber.unregister()  // see FiberCache.drop
            return nil
        }
        // Acquire: pairs with the release in the last other holder's
        // swift_release, so its reads of the old result are over before we
        // overwrite it. (The uniqueness load is acquire-strength already
        // on every supported target; this documents and guarantees it.)
        atomicMemoryFence(ordering: .acquiring)
        return Unmanaged.passRetained(fiber)
    }

    @inline(never)
    private func refillFibers() -> Unmanaged<Fiber>? {
        guard sharedFibers.take(upTo: FiberCache.refillBatch, into: &local.pointee.fibers) else { return nil }
        return local.pointee.fibers.take()
    }

    /// Keeps a retired fiber (its scheduler reference) for reuse.
    func cacheFiber(_ f: Unmanaged<Fiber>) {
        local.pointee.fibers.put(f)
        if local.pointee.fibers.count > FiberCache.spillAt {
            local.pointee.fibers.spillHalf(into: sharedFibers)
        }
    }

    /// Queues a green thread made on this worker: gives it its ID (disjoint
    /// per-worker sequences, no shared counter), the scheduler's reference,
    /// and a place on the local deque.
    @usableFromInline
    func submitSpawned(_ fiber: Fiber) {
        local.pointee.nextLocalID &+= 1
        fiber.id = local.pointee.nextLocalID &* core.idStride &+ UInt64(index + 1)
        // Spawned while the runtime shuts down: starts cancelled.
        if closing.load(ordering: .relaxed) { fiber.cancelled.store(true, ordering: .relaxed) }
        // Not in the registry yet (unless reused): a thread joins it when it
        // first runs (bindStack), on the worker that will most likely also
        // retire it, so spawn and exit never contend on a shard lock.
        if !fiber.isRegistered { fiber.registryShard = index }
        // Guaranteed: the core outlives its workers; no retain per spawn.
        if limitsLive && !Unmanaged.passUnretained(core)._withUnsafeGuaranteedRef({ $0.admit(fiber) }) { return }
        Self.bump(counters.spawned)
        pushLocal(Unmanaged.passRetained(fiber))  // the scheduler's reference, dropped or cached at retire
        // With this worker the only active one, nobody can be asleep: skip
        // the full fence. (A spare activated meanwhile that misses the push
        // only leaves it to us: it is on our own deque, so nothing strands.)
        if idle.activeWorkers.load(ordering: .relaxed) > 1 { idle.notifyWork() }
    }
}
