import CContext
import Synchronization

/// A runtime's notion of "now", in nanoseconds: the monotonic clock, or a
/// virtual clock for discrete-event simulation.
///
/// Virtual time stands still while any green thread can run and jumps to
/// the next timer's deadline the moment every worker is idle (see
/// `Worker.parkIdle`), so a simulation of years runs in milliseconds and,
/// on one worker with a fixed seed, gives the same interleaving every run.
final class RuntimeClock: @unchecked Sendable {
    let isVirtual: Bool
    /// `now()` at the runtime's start: `Runtime.now` counts from here.
    let origin: Int64
    private let virtualNow = Atomic<Int64>(0)

    init(virtual: Bool) {
        isVirtual = virtual
        origin = virtual ? 0 : gt_now_ns()
    }

    @inline(__always)
    func now() -> Int64 {
        isVirtual ? virtualNow.load(ordering: .acquiring) : gt_now_ns()
    }

    /// Virtual clocks only: moves time forward to `instant` (never back;
    /// racing advancers settle on the later instant).
    func advance(to instant: Int64) {
        var current = virtualNow.load(ordering: .relaxed)
        while instant > current {
            let (done, seen) = virtualNow.compareExchange(
                expected: current, desired: instant, ordering: .acquiringAndReleasing)
            if done { return }
            current = seen
        }
    }
}
