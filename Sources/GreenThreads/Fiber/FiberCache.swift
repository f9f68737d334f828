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

    private var items: UnsafeMutablePointer<Unmanaged<Fiber>>
    private var capacity: Int
    private(set) var count = 0

    init() {
        capacity = 64
        items = .allocate(capacity: capacity)
    }

    deinit {
        for i in 0..<count { items[i].release() }
        items.deallocate()
    }

    @inline(__always)
    mutating func take() -> Unmanaged<Fiber>? {
        if count == 0 { return nil }
        count -= 1
        return items[count]
    }

    @inline(__always)
    mutating func put(_ fiber: Unmanaged<Fiber>) {
        if count == capacity { grow() }
        items[count] = fiber
        count += 1
    }

    private mutating func grow() {
        let bigger = UnsafeMutablePointer<Unmanaged<Fiber>>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: items, count: count)
        items.deallocate()
        items = bigger
        capacity *= 2
    }

    /// Hands the oldest half to `shared`.
    mutating func spillHalf(into shared: SharedFiberCache) {
        let half = count / 2
        shared.put(UnsafeBufferPointer(start: items, count: half))
        items.update(from: items + half, count: count - half)
        count -= half
    }

    /// Appends `fibers` (their references move here).
    mutating func append(_ fibers: UnsafeBufferPointer<Unmanaged<Fiber>>) {
        while count + fibers.count > capacity { grow() }
        (items + count).initialize(from: fibers.baseAddress!, count: fibers.count)
        count += fibers.count
    }

    /// Releases every fiber held (shutdown, once the worker has stopped).
    mutating func removeAll() {
        for i in 0..<count { items[i].release() }
        count = 0
    }
}

/// The fiber cache shared by all workers of a runtime, for fibers that
/// finished on a worker that does not spawn. Bounded: past `limit` a spill
/// releases its fibers instead (a million sleepers that all finish at once
/// need not stay allocated).
final class SharedFiberCache: @unchecked Sendable {
    static let limit = 1 << 16
    private let lock = SpinLock()
    // Raw storage under `lock`: batches move with one copy, and a class
    // `var` array would pay a dynamic exclusivity check per access.
    private let items = UnsafeMutablePointer<Unmanaged<Fiber>>.allocate(capacity: limit)
    @exclusivity(unchecked) private var count = 0

    deinit {
        for i in 0..<count { items[i].release() }
        items.deallocate()
    }

    func put(_ fibers: UnsafeBufferPointer<Unmanaged<Fiber>>) {
        lock.lock()
        let k = min(fibers.count, Self.limit - count)
        (items + count).initialize(from: fibers.baseAddress!, count: k)
        count += k
        lock.unlock()
        for f in fibers.dropFirst(k) { f.release() }
    }

    /// Moves up to `n` fibers into `cache`; returns whether there were any.
    func take(upTo n: Int, into cache: inout FiberCache) -> Bool {
        lock.lock()
        let k = min(n, count)
        count -= k
        cache.append(UnsafeBufferPointer(start: items + count, count: k))
        lock.unlock()
        return k > 0
    }

    /// Releases every fiber held (shutdown).
    func removeAll() {
        lock.lock()
        let all = Array(UnsafeBufferPointer(start: items, count: count))
        count = 0
        lock.unlock()
        for f in all { f.release() }
    }
}
