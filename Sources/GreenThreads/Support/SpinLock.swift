import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A test-and-test-and-set lock for the runtime's own critical sections,
/// which are a handful of instructions long and never contain a switch.
///
/// `Synchronization.Mutex` records its owning thread, so it breaks the
/// moment a green thread migrates while holding it; this lock has no owner
/// and is only ever held between two lines of runtime code.
///
/// `lock` and `unlock` are `@inlinable` so that the channel fast paths,
/// which are specialized in client code, take the lock without a call; the
/// contended wait stays out of line.
@usableFromInline
struct SpinLock: ~Copyable, @unchecked Sendable {
    // SAFETY: @unchecked Sendable: its only state is an atomic flag, and
    // ~Copyable keeps it one instance that every user shares.
    @usableFromInline let held = Atomic<Bool>(false)

    @inlinable init() {}

    @inlinable @inline(__always)
    func lock() {
        // acquiring: pairs with the releasing store in `unlock`.
        if held.exchange(true, ordering: .acquiring) { lockContended() }
    }

    @usableFromInline @inline(never)
    func lockContended() {
        repeat {
            // Spin on a plain load so waiting does not bounce the cache line.
            var spins = 0
            while held.load(ordering: .relaxed) {
                spins += 1
                if spins < 64 { gt_cpu_relax() } else { sched_yield(); spins = 0 }
            }
        } while held.exchange(true, ordering: .acquiring)
    }

    @inline(__always)
    func tryLock() -> Bool {
        !held.load(ordering: .relaxed) && !held.exchange(true, ordering: .acquiring)
    }

    @inlinable @inline(__always)
    func unlock() {
        held.store(false, ordering: .releasing)
    }

    @inline(__always)
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}
