// `gt-bench stress`: a randomized soak of every primitive at once, with
// invariant checks, ending in one verdict line.
//
// ## The problem
//
// A scheduler bug rarely crashes: it loses a wake-up (a thread parks
// forever), delivers a message twice or not at all, hands a lock to a
// thread that already left, or leaks a stack, a descriptor or a green
// thread a little at a time. Unit tests exercise one primitive in one
// shape; services hit all of them at once, on every worker, for hours.
// The soak does what a service does, for as long as it is asked, and
// checks after every round what a service would only notice days later.
//
// ## Rounds
//
// One runtime (one worker per CPU unless --workers says otherwise) serves
// the whole run, as a service keeps its runtime. Rounds run one after
// another until --duration has passed; each is one `rt.run`, whose main
// green thread spawns a subset of the workload families at once, 1-3
// instances of each, each instance in its own green thread, and joins them:
//
//   channels  P producers and C consumers on one channel of capacity 0, 1,
//             2-16 or 64-1024, each operation plain, try+yield, select with
//             a timeout or select with default; closed after the producers,
//             or early while they still send.
//   fan-in    a select over 2-4 channels (each with its producer), with
//             timeouts and defaults, by 1-3 consumers.
//   mutex     a plain counter incremented under a GreenMutex, a yield inside
//             some critical sections, each thread inside its own @TaskLocal
//             binding.
//   semaphore permits taken by acquire, acquire(timeout:) or tryAcquire.
//   condition a bounded queue on a GreenMutex and two GreenConditions, some
//             waits timed.
//   cancel    green threads cancelled in every kind of wait.
//   spawn     a nested spawn tree and a burst under WaitGroup.go.
//   yield     threads yielding in a loop.
//   timers    sleeps, select timeouts and defaults on idle channels, and in
//             some rounds 5,000 sleepers of 60 ms (stack compaction).
//   tcp       a loopback echo server and clients writing and reading at once.
//   blocking  `GreenThread.blocking` calls that return or throw.
//   generator generators consumed across yields, some abandoned.
//
// ## What is checked, and why
//
// Inside each workload (a violation fails the run with what was seen):
//  * exactly-once delivery: every message carries (source, sequence); over
//    all receivers each sent message arrives once, nothing unsent arrives,
//    and each receiver sees each source's messages in order (a channel is
//    FIFO and a source sends one at a time). With an early close, a send
//    that threw `closed` must not have been delivered and every send that
//    returned must have been: the boundary of close is checked too.
//  * exact counters: a non-atomic counter under GreenMutex equals the
//    increments (and never two threads inside); never more than k inside a
//    k-permit semaphore, k permits at the end; the condition queue's items
//    all come out once; every yield, spawn and generator accounted for.
//  * task-locals: a thread's own `@TaskLocal` binding is what it reads after
//    every park and yield (another thread's binding would show its index),
//    and nothing is bound once its scope ended.
//  * cancellation: each cancelled wait throws `CancellationError` (sleep
//    and a polling loop return early instead), never a value that looks
//    like success; afterwards no cancelled receiver or sender is still
//    queued, and neither the mutex nor a semaphore permit went to a
//    thread that had left.
//  * time: no sleep or select timeout ends before its duration (on the
//    runtime's monotonic clock); a select with default on idle channels
//    never waits; a sleeper's stack is intact after compaction.
//  * bytes: every echoed byte comes back in order, and both ends agree on
//    the count.
//
// After every round, from the OS thread (the runtime is idle):
//  * no leaked green threads: `stats.live` back to 0, and `stats.spawned`
//    grew by exactly the spawns the workloads counted plus the round's main
//    thread (a spawn lost or counted twice shows here);
//  * no stack left compacted (`stats.stacksCompacted` 0), and no stack
//    leaked: stacks stay mapped until shutdown (pooled when free), so
//    `stats.stacksMapped` is the peak concurrency, which after warm-up may
//    not pass the warm-up's peak by more than half + 4,096 (a stack not
//    returned to its pool adds one per round, for ever);
//  * no leaked descriptors: /proc/self/fd equals the set taken after the
//    runtime started (sockets, the poller's own descriptors);
//  * resident memory flat after warm-up: the first quarter of the run
//    (at least 3 rounds), whose first two rounds are envelope rounds with
//    every family at its largest, sets the high-water mark that pools and
//    malloc reach; afterwards RSS may not exceed it by more than 20 % +
//    32 MiB. A leak of a stack, a waiter or a buffer per round grows
//    without bound and crosses that line; the pools' normal breathing
//    (stacks trimmed and refaulted, malloc arenas) stays well inside.
//    `--no-rss-check` drops this one check for sanitizer builds, whose
//    shadow memory and freed-memory quarantine grow by design.
// At the end, after `shutdown`: every stack unmapped (`stacksMapped` 0), no
// live thread, and the descriptors back to the set before the runtime.
//
// ## Replay and hangs
//
// Everything is drawn from SplitMix64 streams forked from --seed (printed
// when chosen at random): each round's families and sizes, each thread's
// modes and waits. The runtime's own random choices (select among ready
// cases, steal victims) are seeded with it too. A failing seed therefore
// replays the same operations; the interleaving still varies with timing,
// so a failure may need a few runs of its seed to recur.
//
// A watchdog OS thread ends the process with the FAILED line if no
// operation completes for --stall seconds (a lost wake-up parks a thread
// forever; `Runtime.run` would wait with it), naming the round and the
// workloads not yet finished, or if a workload failed and its round did not
// end within 5 s. The soak never hangs.
//
// Rejected: a fresh runtime per round (it would check shutdown, not the
// long life of one runtime, and reset exactly the pools whose growth the
// RSS check is for); checking RSS against the first round alone (the
// first rounds map stacks and grow pools by design: a flat line needs a
// warm-up); random sizes in the warm-up (a later round larger than any
// before would look like a leak).
import ArgumentParser
import CContext
import GreenThreads
#if canImport(Glibc)
import Glibc
#endif

struct StressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stress",
        abstract: "Randomized soak of every primitive at once, with invariant checks; ends with `stress: OK ...` or `stress: FAILED ...` (exit 1)."
    )

    @Option(help: "Seconds to run rounds for.")
    var duration: Double = 60

    @Option(help: "Seed of every random choice (default: random, printed), to replay a failure.")
    var seed: UInt64?

    @Option(help: "Worker threads (default: one per CPU).")
    var workers: Int?

    @Option(help: "Seconds without any completed operation before the run is called hung.")
    var stall: Int = 30

    @Flag(inversion: .prefixedNo,
          help: "Check that resident memory stays flat after warm-up (off for sanitizer builds, whose shadow memory and quarantine grow by design).")
    var rssCheck = true

    func validate() throws {
        guard duration >= 0 else { throw ValidationError("--duration must not be negative") }
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        guard stall >= 1 else { throw ValidationError("--stall must be at least 1 second") }
    }

    func run() throws {
        var entropy = SystemRandomNumberGenerator()
        let seed = self.seed ?? entropy.next()
        let workers = self.workers ?? Runtime.defaultWorkerCount
        printError("stress: seed=\(seed) workers=\(workers) duration=\(Int(duration)) s")
        let soak = StressSoak(seed: seed, workers: workers, seconds: duration, stallSeconds: stall, rssCheck: rssCheck)
        do {
            let summary = try soak.run()
            print("stress: OK seed=\(seed) duration=\(summary.seconds)s rounds=\(summary.rounds) ops=\(summary.ops)")
        } catch {
            print("stress: FAILED seed=\(seed): \(error)")
            throw ExitCode(1)
        }
    }
}

/// One soak: the runtime, the rounds and the checks between them.
struct StressSoak {
    let seed: UInt64
    let workers: Int
    let seconds: Double
    let stallSeconds: Int
    let rssCheck: Bool

    struct Summary {
        var seconds: Int
        var rounds: Int
        var ops: Int
    }

    /// A workload family: its name and its body, run in a green thread of
    /// its own with its own draw.
    typealias Family = (name: String, body: @Sendable (inout StressDraw, StressContext) throws -> Void)

    static let families: [Family] = [
        ("channels", StressChannels.manyToMany),
        ("fan-in", StressChannels.fanIn),
        ("mutex", StressSync.mutexCounter),
        ("semaphore", StressSync.semaphoreBound),
        ("condition", StressSync.conditionQueue),
        ("cancel", StressSync.cancellation),
        ("spawn", StressSystem.spawnTree),
        ("yield", StressSystem.yields),
        ("timers", StressSystem.timers),
        ("tcp", StressSystem.tcpEcho),
        ("blocking", StressSystem.blocking),
        ("generator", StressSystem.generators),
    ]

    func run() throws -> Summary {
        let descriptorsBefore = openDescriptors()
        let context = StressContext()
        StressWatchdog.start(context: context, seed: seed, stallSeconds: stallSeconds)
        let rt = Runtime(configuration: .init(workers: workers, seed: seed))
        let descriptorsIdle = openDescriptors()
        let start = gt_now_ns()
        let warmupEnd = start + Int64(seconds * 0.25 * 1e9)
        let end = start + Int64(seconds * 1e9)
        var nextReport = start + 10_000_000_000
        var rounds = StressRandom(seed: seed)
        var round = 0
        var warmMax = 0
        var laterMax = 0
        var warmStacks = 0
        do {
            repeat {
                context.setPhase("round \(round)")
                let roundSeed = rounds.next()
                let envelope = round < 2
                let before = rt.stats
                context.spawns.add(-context.spawns.value)
                try rt.run { try Self.round(seed: roundSeed, envelope: envelope, context) }
                context.setPhase("the checks after round \(round)")
                try checkQuiet(rt, before: before, spawns: context.spawns.value, round: round)
                let leaked = leakedDescriptors(since: descriptorsIdle)
                try require(leaked.isEmpty, "round \(round) left descriptors open: \(leaked.joined(separator: ", "))")
                let rss = Int(gt_resident_bytes())
                let stacks = rt.stats.stacksMapped
                let now = gt_now_ns()
                if round < 3 || now < warmupEnd {
                    warmMax = max(warmMax, rss)
                    warmStacks = max(warmStacks, stacks)
                } else {
                    let stackLimit = warmStacks + warmStacks / 2 + 4_096
                    try require(stacks <= stackLimit,
                                "stacks mapped grew after warm-up: \(stacks) at round \(round), warm-up peak \(warmStacks) (limit \(stackLimit))")
                    laterMax = max(laterMax, rss)
                    let limit = warmMax + warmMax / 5 + 32 * mebibyte
                    try require(!rssCheck || rss <= limit,
                                "RSS grew after warm-up: \(rss / mebibyte) MiB at round \(round), warm-up peak \(warmMax / mebibyte) MiB (limit \(limit / mebibyte) MiB)")
                }
                round += 1
                if now >= nextReport {
                    nextReport += 10_000_000_000
                    printError("stress: \((now - start) / 1_000_000_000) s, \(round) rounds, \(context.ops.value) ops, RSS \(rss / mebibyte) MiB (warm-up peak \(warmMax / mebibyte) MiB)")
                }
            } while gt_now_ns() < end
        } catch {
            context.record("\(error)")
            throw error
        }
        context.setPhase("shutdown")
        rt.shutdown()
        let after = rt.stats
        try require(after.live == 0 && after.stacksMapped == 0 && after.stacksCompacted == 0,
                    "after shutdown: \(after.live) live green threads, \(after.stacksMapped) stacks mapped, \(after.stacksCompacted) compacted")
        let leaked = leakedDescriptors(since: descriptorsBefore)
        try require(leaked.isEmpty, "after shutdown, descriptors still open: \(leaked.joined(separator: ", "))")
        printError("stress: RSS warm-up peak \(warmMax / mebibyte) MiB, afterwards peak \(laterMax / mebibyte) MiB")
        return Summary(seconds: Int((gt_now_ns() - start) / 1_000_000_000), rounds: round, ops: context.ops.value)
    }

    /// One round, as the main green thread: the families drawn for it (all
    /// of them in an envelope round), 1-3 instances of each (3 in an
    /// envelope round), each in its own green thread.
    static func round(seed: UInt64, envelope: Bool, _ ctx: StressContext) throws {
        var rng = StressRandom(seed: seed)
        var chosen = families.filter { _ in envelope || rng.chance(0.5) }
        if chosen.isEmpty { chosen = [families[rng.int(0...families.count - 1)]] }
        let handles = chosen.flatMap { family in
            (0..<(envelope ? 3 : rng.int(1...3))).map { _ in
                let drawSeed = rng.next()
                return ctx.spawn {
                    var draw = StressDraw(rng: StressRandom(seed: drawSeed), envelope: envelope)
                    try ctx.run(family.name) { try family.body(&draw, ctx) }
                }
            }
        }
        // Every family is joined before the first failure is rethrown, so
        // the checks after the round never see threads still running.
        var failure: (any Error)?
        for h in handles {
            do { try h.join() } catch { failure = failure ?? error }
        }
        if let failure { throw failure }
    }

    /// The runtime is quiet after a round: no live green thread, as many
    /// spawns as the workloads made (plus the round's main thread), no stack
    /// left compacted. A thread's completion is counted a few instructions
    /// after its join returns, so this looks again for up to 5 s.
    private func checkQuiet(_ rt: Runtime, before: RuntimeStats, spawns: Int, round: Int) throws {
        var s = rt.stats
        let start = gt_now_ns()
        while !(s.live == 0 && s.stacksCompacted == 0 && s.completed == s.spawned) && gt_now_ns() - start < 5_000_000_000 {
            usleep(100)
            s = rt.stats
        }
        try require(s.live == 0, "round \(round) left \(s.live) green threads alive")
        try require(s.stacksCompacted == 0, "round \(round) left \(s.stacksCompacted) stacks compacted")
        try require(s.spawned - before.spawned == spawns + 1,
                    "round \(round): the runtime counted \(s.spawned - before.spawned) spawns, the workloads made \(spawns + 1)")
    }
}
