import CContext
import Testing
@testable import GreenThreads

/// `RuntimeCore.cancel` claims a wait through the fiber's armed ticket,
/// with no register step in between: the wait is claimable from the moment
/// it is armed. These rounds cancel from a plain OS thread, so that the
/// cancel runs truly beside the worker that is starting the wait.
@Suite("Cancel races", .serialized)
struct CancelRaceTests {
    /// A cancel landing anywhere in the start of a sleep (before the flag
    /// check, between arming and the switch, or once parked) ends it with
    /// `CancellationError`; none finds the thread in a state a wake cannot
    /// handle (which traps in `Fiber.ready`).
    @Test(arguments: [1, 2])
    func cancelRacesTheStartOfAWait(workers: Int) throws {
        let rt = Runtime(workers: workers)
        defer { rt.shutdown() }
        var cancelled = 0
        var rng = FiberReuseTests.Choices(state: 0x5DEE_CE66_D1CE_4E5B)
        for _ in 0..<3_000 {
            let before = rng.next(64)
            let h = rt.spawn { () throws -> Void in
                var x = 0
                for i in 0..<before { x &+= i; gt_compiler_barrier() }
                _ = x
                try GreenThread.sleep(for: .seconds(30))
            }
            let spin = rng.next(64)
            for _ in 0..<spin { gt_cpu_relax() }
            h.cancel()
            do {
                try h.join()
                Issue.record("a 30 s sleep returned although its thread was cancelled")
            } catch is CancellationError {
                cancelled += 1
            }
        }
        #expect(cancelled == 3_000)
    }
}
