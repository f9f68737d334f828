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
struct SpinLock: ~Copyable, @unchecked Sendable {
    private let held = Atomic<Bool>(false)

    init() {}

    @inline(__always)
    func lock() {
        while held.exchange(true, ordering: .acquiring) {
            // Spin on a plain load so waiting does not bounce the cache line.
            var spins = 0
            while held.load(ordering: .relaxed) {
                spins += 1
                if spins < 64 { gt_cpu_relax() } else { sched_yield(); spins = 0 }
            }
        }
    }

    @inline(__always)
    func tryLock() -> Bool {
        !held.load(ordering: .relaxed) && !held.exchange(true, ordering: .acquiring)
    }

    @inline(__always)
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
