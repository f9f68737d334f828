import CContext
import Synchronization

/// A runtime's notion of "now", in nanoseconds: the monotonic clock, or a
/// virtual clock for discrete-event simulation.
///
/// Every deadline is computed from `now()` (through `Park.deadline(after:)`,
/// which asks the caller's worker for its runtime's clock), so a virtual
/// clock needs nothing else to change. It is an atomic counter that moves
/// only in `Worker.parkIdle`: the worker that finds every worker asleep
/// (itself included), no visible work and a pending timer advances it to
/// the earliest deadline, leaves the sleeper list and fires the due timers;
/// the others sleep without a timeout, and a worker whose peers all sleep
/// skips its spin (only a timer can bring work). Time therefore stands
/// still while any green thread can run and jumps the moment every worker
/// is idle, so a year of simulated events costs only their scheduling (the
/// ChargingStation example). Sockets still work in real time beside it:
/// the worker blocked in epoll_wait sleeps without a timeout, and the last
/// idle worker still advances the clock.
///
/// **Seeded runs.** `Configuration.seed` fixes each worker's two
/// generators: `rng` for choices a program can observe (which ready case a
/// `select` takes) and `stealRng` for steal victims. They are separate
/// because how often an idle worker tries to steal depends on wall-clock
/// spinning; one shared generator would make seeded runs diverge. With one
/// worker and a virtual clock the same program and seed replay the same
/// interleaving. A virtual clock starts no sysmon (Sysmon.swift), whose
/// wall-clock decisions would break that.
final class RuntimeClock: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `virtualNow` is atomic; the rest is
    // immutable after init.

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
