/// Finished green-thread objects kept for reuse, so that a steady stream of
/// short threads does not pay malloc and free (and the object's init and
/// deinit) per spawn: Go's per-P and global free lists of G's.
///
/// ## Which fibers are kept
///
/// A fiber is kept when it finished with a value of a trivial type (Void,
/// Int, ...): no error (an unjoined error must still reach the handler when
/// its last handle goes) and nothing whose deinit someone could wait for.
/// The cache holds the scheduler's reference, taken at spawn.
///
/// ## When one is reused
///
/// Only when the cache's reference is the *only* one: no `JoinHandle` copy,
/// no timer entry, no waker, no `Registry.forEach` snapshot. Everything that
/// may still look at a fiber holds a strong reference (channel waiters,
/// which do not, are unlinked before their thread resumes), so a fiber
/// nobody else references cannot be read by anyone while it is reset. A
/// fiber that is still referenced gets no second chance: it is released,
/// and freed by whoever drops it last, as without the cache.
///
/// Each worker keeps a LIFO (the most recently finished are warmest in
/// cache). Past `spillAt` half of it moves to the runtime's shared pool,
/// and a worker that runs dry refills a batch from there: fork-join code
/// spawns on one worker and finishes threads on another (the thief).
struct FiberCache: ~Copyable {
    static let spillAt = 512
    static let refillBatch = 128

    private var items = LocalLIFO<Unmanaged<Fiber>>(capacity: 64)
    var count: Int { items.count }

    deinit {
        items.forEach { Self.drop($0.pointee) }
    }

    /// Releases a cached fiber that will not be reused: out of the
    /// registry first (see `Fiber.isRegistered`).
    static func drop(_ fiber: Unmanaged<Fiber>) {
        fiber._withUnsafeGuaranteedRef { $0.unregister() }
        fiber.release()
    }

    @inline(__always)
    mutating func take() -> Unmanaged<Fiber>? {
        items.take()
    }

    @inline(__always)
    mutating func put(_ fiber: Unmanaged<Fiber>) {
        items.put(fiber)
    }

    /// Hands the oldest half to `shared`.
    mutating func spillHalf(into shared: SharedFiberCache) {
        items.removeOldest(count / 2) { shared.put($0) }
    }

    /// Allocates the buffer again from the calling thread while it is
    /// empty, so that first touch puts it on that thread's node
    /// (Worker+Memory.swift).
    mutating func reallocateBuffer() {
        if count == 0 { items = LocalLIFO(capacity: 64) }
    }

    /// Releases every fiber held (shutdown, once the worker has stopped).
    mutating func removeAll() {
        items.forEach { Self.drop($0.pointee) }
        items.removeAll()
    }
}

/// The fiber cache shared by all workers of a runtime, for fibers that
/// finished on a worker that does not spawn. A FIFO: a refill takes the
/// fibers that have waited longest, whose handles are most likely gone (a
/// thief's newest spills are threads its victim may not have joined yet).
/// Bounded: past `limit` a spill drops its fibers instead (a million
/// sleepers that all finish at once need not stay allocated).
final class SharedFiberCache: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the ring (`items`, `head`, `count`) is read
    // and written only under `lock`.
    static let limit = 1 << 16
    private static let mask = limit - 1
    private let lock = SpinLock()
    // A ring in raw storage under `lock`: a class `var` array would pay a
    // dynamic exclusivity check per access.
    private let items = UnsafeMutablePointer<Unmanaged<Fiber>>.allocate(capacity: limit)
    @exclusivity(unchecked) private var head = 0
    @exclusivity(unchecked) private var count = 0

    deinit {
        for i in 0..<count { FiberCache.drop(items[(head + i) & Self.mask]) }
        items.deallocate()
    }

    func put(_ fibers: UnsafeBufferPointer<Unmanaged<Fiber>>) {
        lock.lock()
        let k = min(fibers.count, Self.limit - count)
        for i in 0..<k { items[(head + count + i) & Self.mask] = fibers[i] }
        count += k
        lock.unlock()
        for f in fibers.dropFirst(k) { FiberCache.drop(f) }
    }

    /// Moves up to `n` of the oldest fibers into `cache`; returns whether
    /// there were any.
    func take(upTo n: Int, into cache: inout FiberCache) -> Bool {
        lock.lock()
        let k = min(n, count)
        for i in 0..<k { cache.put(items[(head + i) & Self.mask]) }
        head = (head + k) & Self.mask
        count -= k
        lock.unlock()
        return k > 0
    }

    /// Releases every fiber held (shutdown).
    func removeAll() {
        lock.lock()
        let all = (0..<count).map { items[(head + $0) & Self.mask] }
        head = 0
        count = 0
        lock.unlock()
        for f in all { FiberCache.drop(f) }
    }
}
