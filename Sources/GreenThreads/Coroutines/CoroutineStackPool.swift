// Stacks for coroutines, generators and greenlets.
//
// ## Design
// A generator is often made, run for a few values and dropped, millions of
// times in a loop. Mapping a fresh stack costs 5–13 µs (mmap + mprotect +
// munmap + first-touch faults); taking a pooled one costs a lock and a
// pointer pop. So every stack of the default size goes back to a small
// process-wide LIFO when its coroutine finishes or is abandoned, and only
// stacks beyond `limit` (or of another size) are unmapped.
//
// The pool is process-wide rather than per thread because a generator may be
// created on one thread and finished on another (its caller, a green thread,
// migrated in between); a per-thread pool would then drain one thread and
// swell another.
//
// ## Rejected alternatives
// - A global `var` array: every access pays a dynamic exclusivity check
//   (~30 ns measured), more than the pop itself. Hence a `final class` with
//   `let` storage in raw memory and a `SpinLock`.
// - The scheduler's `StackPool`: it belongs to a runtime's workers, and
//   coroutines must also work on plain threads with no runtime at all.
// - `madvise(MADV_DONTNEED)` on return: 2.7 µs per stack, which would undo
//   the point of pooling; the pool is small, so its dirty pages are bounded
//   (`limit` × the few KiB a typical body touches).
import CContext
import Synchronization

/// Process-wide recycler of coroutine stacks.
final class CoroutineStackPool: @unchecked Sendable {
    // SAFETY (@unchecked Sendable): `items` and `count` are read and written
    // only while `lock` is held; the counters are atomics.

    static let shared = CoroutineStackPool()

    /// Default usable stack size of a coroutine. Lazily committed, so a
    /// body that stays shallow costs only the pages it touches; 64 KiB leaves
    /// room for a cold first `print` in a debug build (~14 KiB measured).
    static let defaultSize = 64 * 1024

    /// How many idle stacks are kept for reuse.
    static let limit = 128

    private let lock = SpinLock()
    private let items: UnsafeMutablePointer<gt_stack>  // Guarded by: lock
    private let count: UnsafeMutablePointer<Int>       // Guarded by: lock
    /// The mapping size of pooled stacks (`defaultSize` rounded to pages).
    let pooledSize: Int

    /// Stacks currently mapped: in use by a coroutine or idle in the pool.
    let mapped = Atomic<Int>(0)
    /// Stacks currently owned by a started, unfinished coroutine or greenlet.
    let inUse = Atomic<Int>(0)
    /// Tests only (in a child process: the pool is process-wide): a nonzero
    /// errno makes mapping fail as if the kernel had refused.
    let injectedMapErrno = Atomic<Int32>(0)

    private init() {
        items = .allocate(capacity: Self.limit)
        count = .allocate(capacity: 1)
        count.initialize(to: 0)
        let page = Int(gt_page_size())
        pooledSize = (Self.defaultSize + page - 1) & ~(page - 1)
    }

    /// A stack with at least `size` usable bytes.
    ///
    /// Throws `RuntimeError.outOfStackMemory` (StackMapFailure's text) when
    /// none is pooled and the kernel refuses to map one: the coroutine's
    /// first resume (`start`, `nextOrThrow`, `switch`) rethrows it, and the
    /// coroutine stays unstarted.
    func take(size: Int) throws(RuntimeError) -> gt_stack {
        let s = try pooledOrMapped(size)
        inUse.add(1, ordering: .relaxed)
        return s
    }

    private func pooledOrMapped(_ size: Int) throws(RuntimeError) -> gt_stack {
        // A smaller request gets a pooled stack too: it is only reserved
        // address space, and the pages the body does not touch cost nothing.
        if size <= pooledSize {
            lock.lock()
            if count.pointee > 0 {
                count.pointee -= 1
                let s = items[count.pointee]
                lock.unlock()
                return s
            }
            lock.unlock()
            return try map(pooledSize)
        }
        return try map(size)
    }

    /// Takes back a stack nothing runs on any more.
    func give(_ stack: gt_stack) {
        inUse.subtract(1, ordering: .relaxed)
        if stack.size == pooledSize {
            lock.lock()
            if count.pointee < Self.limit {
                items[count.pointee] = stack
                count.pointee += 1
                lock.unlock()
                return
            }
            lock.unlock()
        }
        var s = stack
        gt_stack_free(&s)
        mapped.subtract(1, ordering: .relaxed)
    }

    /// Idle stacks currently held for reuse.
    var pooledCount: Int {
        lock.withLock { count.pointee }
    }

    private func map(_ size: Int) throws(RuntimeError) -> gt_stack {
        var s = gt_stack()
        let injected = injectedMapErrno.load(ordering: .relaxed)
        let rc = injected != 0 ? -injected : gt_stack_alloc(size, &s)
        if rc != 0 {
            throw .outOfStackMemory(StackMapFailure(
                errno: -rc, stackSize: size, stacksMapped: mapped.load(ordering: .relaxed),
                maxMapCount: StackMapFailure.currentMaxMapCount(), owner: "the coroutine stack pool"
            ).description)
        }
        mapped.add(1, ordering: .relaxed)
        return s
    }
}
