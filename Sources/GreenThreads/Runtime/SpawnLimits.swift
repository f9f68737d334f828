import CContext
import Synchronization

// SpawnLimits.swift: limits become errors. A spawn past
// `Configuration.maxGreenThreads`, or one whose stack cannot be mapped, ends
// that one green thread with a `RuntimeError` its `join` throws; the runtime
// goes on serving the threads it has.
//
// ## The problem
//
// A service under load meets the machine's limits: address space or memory
// for stacks (RLIMIT_AS, overcommit), the kernel's mapping limit
// (`vm.max_map_count`, StackMapFailure.swift), or a bound the service sets
// itself so that an overload is refused rather than absorbed. Stopping the
// process there turns one refused request into an outage. But `go` and
// `spawn` do not throw (a spawn is as cheap as a function call, and a
// throwing `go` would put `try` on every spawn for a failure most programs
// never see), and a stack is bound only when the thread first *runs*, on a
// worker, long after `go` returned (Worker+Stacks.swift): there is no caller
// left to hand an error to. The one party that learns the thread's outcome
// is whoever joins it.
//
// ## The design
//
// A thread that cannot run ends as if its body had thrown: `failUnrun` sets
// the error as its outcome and wakes its joiners, its run state becomes
// `finished`, and the counters see it spawned and completed (so
// `stats.live` goes back to zero). It never gets a stack, never enters the
// registry, and never runs a line of its body; its body's captures are
// released at once. A thread nobody joins is reported like any other
// unjoined failure (`unhandledErrorHandler`, or a line on stderr), so a
// discarded `go { }` past the limit is not lost silently.
//
// * Past `maxGreenThreads` (`admit`): decided at submission, on the
//   spawning thread, before the thread is queued. The handle's join throws
//   `.tooManyGreenThreads` at once; nothing was queued, so nothing needs
//   the scheduler's reference.
// * No stack (`endUnrun`): decided in `bindStack`, on the worker about to
//   switch into the thread. `contextToRun` returns nil, and the worker goes
//   to its scheduling loop instead (from `switchAway`, whose pending action
//   for the leaving thread is already recorded) or picks again (from the
//   loop itself). The scheduler's reference is dropped there.
//
// ## Counting live threads
//
// `RuntimeStats.live` is the sum of per-worker counters: exact, but a loop
// over the workers, too dear to run on every spawn. With a limit, one
// shared counter (`liveThreads`) is incremented at submission and
// decremented at retirement: a contended read-modify-write per spawn and
// exit, which a runtime that asked for a limit pays, and one without does
// not (`maxLive == 0`: one load and a branch that is never taken on each
// side). The increment comes first and the check after, so concurrent
// spawns can never admit more than the limit between them; a refused one
// gives its increment back (for a moment the count may read one high, and a
// spawn racing that moment may be refused too).
//
// ## Rejected designs
//
// * A throwing `go`/`spawn`. It could only report the limit, not the stack
//   (that failure comes later, on a worker), and it would put `try` on every
//   spawn.
// * Mapping the stack at spawn. It would surface the failure on the caller,
//   but every spawn would take a stack while queued, and a burst of short
//   threads would touch one stack each instead of reusing one hot stack
//   (Worker+Stacks.swift).
// * A reserve stack per worker to run the failing thread on, so that its
//   error is raised by its own body. The thread retiring on the reserve
//   still stands on it while the next thread is bound, so a second failure
//   in a row needs a second reserve; ending the thread unrun needs none.
// * Stopping the process with the explanation (Go's behaviour). The text of
//   StackMapFailure is kept: it is the error's description.

extension RuntimeCore {
    /// Counts `fiber` live, or, if that would pass `maxLive`, ends it unrun
    /// with `.tooManyGreenThreads` and returns false (it must not be
    /// queued). Only while `maxLive != 0`.
    @inline(never)
    func admit(_ fiber: Fiber) -> Bool {
        if liveThreads.add(1, ordering: .relaxed).newValue <= maxLive { return true }
        liveThreads.subtract(1, ordering: .relaxed)
        // A fiber reused from a cache keeps its registry entry until now.
        fiber.unregister()
        fiber.failUnrun(RuntimeError.tooManyGreenThreads(limit: maxLive))
        fiber.runState.store(Fiber.RunState.finished.rawValue, ordering: .releasing)
        return false
    }

    /// A live thread retired (only while `maxLive != 0`). Out of line: the
    /// retire path of a runtime without a limit keeps its shape.
    @inline(never)
    func releaseLive() {
        liveThreads.subtract(1, ordering: .relaxed)
    }
}

extension Worker {
    /// Ends the thread `contextToRun` was about to run, which could get no
    /// stack: its joiners get `error`, it counts as completed, and the
    /// scheduler's reference (taken at spawn) is dropped. The caller must
    /// not touch `fiber` afterwards.
    @inline(never)
    func endUnrun(_ fiber: Fiber, _ error: RuntimeError) {
        local.pointee.current = nil
        fiber.unregister()
        fiber.failUnrun(error)
        fiber.runState.store(Fiber.RunState.finished.rawValue, ordering: .releasing)
        Self.bump(counters.completed)
        if limitsLive { Unmanaged.passUnretained(core)._withUnsafeGuaranteedRef { $0.releaseLive() } }
        Unmanaged.passUnretained(fiber).release()
    }
}
