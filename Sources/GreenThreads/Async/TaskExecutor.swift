// TaskExecutor.swift: a Swift `TaskExecutor` whose threads are the
// runtime's workers, so that Tasks and green threads share one pool of OS
// threads.
//
// ## The problem
//
// A service that mixes green threads and async code runs two schedulers,
// each with one OS thread per core: the runtime's workers and Swift's
// cooperative pool. Every hand-off between the two models (a Task sending
// to a green thread, a green thread waiting in `GreenThread.await`) is then
// a hand-off between threads of different pools: a futex wake on one side,
// a sleep on the other, and the message's cache lines moving between cores.
// Two pools of one thread per core also oversubscribe the machine twice.
//
// `Task(executorPreference: rt.taskExecutor)` (or `withTaskExecutorPreference`)
// runs a Task's jobs on the workers instead. A Task that wakes a green thread
// puts it in its worker's run-next slot; a green thread that resumes a Task
// queues its job on its own worker. Both sides of a hand-off then run on one
// core, as two green threads do. `GreenThread.await` called on a green
// thread starts its Task with this preference (GreenAwait.swift).
//
// ## Where a job runs: the scheduler's own stack
//
// A job is a slice of a Task that runs to its next suspension point and
// returns: it never parks. So it needs no stack of its own. The worker runs
// it on its OS thread's stack, in the scheduling loop, between two green
// threads: `job.runSynchronously(on:)` and back to the loop.
//
// Rejected: a carrier green thread per worker that drains the jobs. It
// would cost a green stack (small: a Task's synchronous frames would
// overflow it where the OS thread's 8 MB would not), a switch into it and
// back, and it would make a job that calls a blocking green operation park
// the carrier and every job queued behind it. On the loop's stack the
// worker is not inside a green thread (`WorkerLocal.current` is nil), so a
// job that calls `GreenThread.await` traps as in any Task, and one that
// blocks on a channel blocks its worker's OS thread, as it would block a
// thread of the cooperative pool: a Task uses the async forms.
//
// ## Queues
//
// Each worker has a `JobQueue` (FIFO, under a SpinLock), and the executor
// has one more, its injector, for jobs enqueued from any other thread.
//
//  * `enqueue` on one of the runtime's workers (a green thread resuming a
//    Task, a job starting another Task): the worker's own queue. It sets
//    `Interrupt.jobs` on its worker, one of the `toLoop` bits, so the next
//    switch goes back to the scheduling loop instead of straight to the next
//    green thread; the loop runs the jobs queued at that moment, then picks
//    a green thread as usual. The check costs the switch nothing: it is the
//    load of `interrupts` every switch makes already. A first job in an
//    empty queue notifies no idle worker (its worker is running and takes
//    it at its next switch, the quiet hand-off of Worker+RunQueue.swift);
//    a job queued behind others is surplus and calls `Idle.notifyWork`.
//  * `enqueue` anywhere else: the injector, then `Idle.notifyWork`. A
//    worker takes half of it (up to 32) into its own queue when it finds
//    no green thread to run, when it spins, and at its injector tick, when
//    it sets its own `Interrupt.jobs` so that busy workers serve it too.
//  * A spinning worker takes half of a peer's queue once the run-next grace
//    period is over (Worker+Idle.swift), for the same reason it leaves a
//    peer's run-next slot alone until then: the first job is usually the
//    partner of a hand-off its owner runs within microseconds.
//
// One batch at a time: the loop runs at most the jobs queued when it
// started, so a Task that keeps re-enqueueing itself (`Task.yield()`) lets
// the green threads of its worker run between rounds, and green threads
// that keep switching let the jobs run at every switch. Priorities are not
// ordered: a job's priority only travels with its Task.
//
// Taking a job moves it between two locked queues with a small buffer in
// between, never two locks at once: two thieves stealing from each other
// would deadlock on nested locks.
//
// ## Parking, deadlock detection, sysmon
//
// Queued jobs are visible work: `RuntimeCore.hasVisibleWork` reads every
// queue's length (release on push, acquire there), so a worker about to
// park re-checks them after its fence (the handshake of Worker.swift's
// header), and deadlock detection never reports while a job is queued. A
// job running keeps its worker off the sleeper list; each queue counts the
// jobs its worker ran into `activityEpoch`, so jobs that ran during a
// deadlock confirmation void it. A Task that is suspended on something
// outside the runtime (a sleep on Swift's clock, another library's I/O)
// is invisible, as an OS thread outside any runtime call is
// (RuntimeCore.swift); a Task waiting in `GreenThread.await` is counted
// (`taskWaits`).
//
// Sysmon sees a worker running jobs as not inside a green thread: a job
// that computes for long holds its worker without being preempted or
// handed off (a Task computes between suspension points, as on any
// executor), and a green thread it wakes waits until the job returns.
//
// ## Shutdown
//
// A job cannot be dropped cleanly: its Task would never finish, and
// whatever awaits it would hang. So jobs are neither lost nor dropped:
// while the runtime drains (step 2 of RuntimeCore.swift's shutdown) the
// workers keep running them; once the workers have stopped,
// `closeTaskExecutor` closes every queue and hands the jobs still in them to
// Swift's global concurrent executor, and an enqueue that finds its queue
// closed does the same. A Task that prefers this executor so finishes on the
// cooperative pool once the runtime is gone. The executor outlives the
// runtime as long as a Task holds it (a Task retains its preferred
// executor); it keeps only its injector and the `Idle` counters, never the
// core.

import CContext
import Synchronization

/// A FIFO of jobs under a spin lock: one per worker, and the executor's
/// injector (see the file header).
final class JobQueue: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `slots`, `capacity`, `head`, `count` and
    // `closed` are guarded by `lock`; `length` and `ran` are atomic.

    private let lock = SpinLock()
    @exclusivity(unchecked) private var slots: UnsafeMutablePointer<UnownedJob>
    @exclusivity(unchecked) private var capacity: Int  // a power of two
    @exclusivity(unchecked) private var head = 0
    @exclusivity(unchecked) private var count = 0
    @exclusivity(unchecked) private var closed = false
    /// `count`, readable without the lock: release on every change under
    /// the lock, so a reader that acquires it and finds jobs finds them
    /// under the lock too.
    private let length = Atomic<Int>(0)
    /// Jobs run from this queue (written by its worker only): part of
    /// `RuntimeCore.activityEpoch`.
    let ran = Atomic<Int>(0)

    /// How many a taker moves at once: half of the queue, at most this.
    static let batch = 32

    init() {
        capacity = 64
        slots = .allocate(capacity: capacity)
    }

    deinit {
        // Closed and drained at shutdown; jobs are trivial values anyway.
        slots.deallocate()
    }

    var isEmpty: Bool { length.load(ordering: .acquiring) == 0 }

    /// An estimate, exact for the owner while no thief takes from it.
    var approximateCount: Int { length.load(ordering: .relaxed) }

    /// Queues `job`; returns how many jobs were queued before it, or nil if
    /// the queue is closed (the caller hands the job elsewhere).
    func push(_ job: UnownedJob) -> Int? {
        lock.lock()
        if closed {
            lock.unlock()
            return nil
        }
        if count == capacity { grow() }
        (slots + ((head &+ count) & (capacity &- 1))).initialize(to: job)
        let before = count
        count &+= 1
        length.store(count, ordering: .releasing)
        lock.unlock()
        return before
    }

    /// The oldest job, if any.
    func pop() -> UnownedJob? {
        if length.load(ordering: .relaxed) == 0 { return nil }
        lock.lock()
        guard count > 0 else {
            lock.unlock()
            return nil
        }
        let job = slots[head]
        head = (head &+ 1) & (capacity &- 1)
        count &-= 1
        length.store(count, ordering: .releasing)
        lock.unlock()
        return job
    }

    /// Moves half of this queue (the oldest, at most `batch`) to the end of
    /// `other`, through a buffer: never two locks at once. Returns how many
    /// moved. Jobs that `other` refuses (closed) go to the global executor.
    func moveHalf(to other: JobQueue) -> Int {
        if length.load(ordering: .relaxed) == 0 { return 0 }
        return withUnsafeTemporaryAllocation(of: UnownedJob.self, capacity: Self.batch) { buffer in
            lock.lock()
            let n = min(Self.batch, (count + 1) / 2)
            for i in 0..<n {
                buffer[i] = slots[(head &+ i) & (capacity &- 1)]
            }
            head = (head &+ n) & (capacity &- 1)
            count &-= n
            length.store(count, ordering: .releasing)
            lock.unlock()
            for i in 0..<n where other.push(buffer[i]) == nil {
                GreenTaskExecutor.forward(buffer[i])
            }
            return n
        }
    }

    /// Refuses every later push and returns the jobs still queued.
    func close() -> [UnownedJob] {
        lock.lock()
        closed = true
        var jobs: [UnownedJob] = []
        jobs.reserveCapacity(count)
        for i in 0..<count { jobs.append(slots[(head &+ i) & (capacity &- 1)]) }
        head = 0
        count = 0
        length.store(0, ordering: .releasing)
        lock.unlock()
        return jobs
    }

    /// Doubles the ring, oldest job first (under the lock).
    private func grow() {
        let bigger = UnsafeMutablePointer<UnownedJob>.allocate(capacity: capacity * 2)
        for i in 0..<count { (bigger + i).initialize(to: slots[(head &+ i) & (capacity &- 1)]) }
        slots.deallocate()
        slots = bigger
        capacity *= 2
        head = 0
    }
}

/// A `TaskExecutor` that runs Tasks on a runtime's workers, between its
/// green threads (`Runtime.taskExecutor`).
///
/// ```swift
/// let rt = Runtime()
/// let task = Task(executorPreference: rt.taskExecutor) {
///     try await ping.send(1)          // a green thread receives it,
///     return try await pong.receive() // on the same worker
/// }
/// ```
///
/// A Task that prefers this executor runs its code on the workers instead
/// of Swift's cooperative pool, so a service that mixes Tasks and green
/// threads runs one pool of OS threads, and hand-offs between the two stay
/// on one core. Its code runs on the worker's own stack, never inside a
/// green thread: it must use the async forms of channel and sync
/// operations (`await ch.send(v)`), as on any executor, because a blocking
/// one would block the worker's OS thread.
///
/// Once the runtime has shut down, jobs still queued, and any enqueued
/// later, run on Swift's global concurrent executor: a Task that prefers
/// this executor still finishes.
public final class GreenTaskExecutor: TaskExecutor {
    /// Jobs enqueued from threads that are not workers of this runtime.
    let injector = JobQueue()
    let idle: Idle

    init(idle: Idle) {
        self.idle = idle
    }

    /// Queues a job of a Task that prefers this executor: on the calling
    /// worker's own queue when called on one of the runtime's workers,
    /// otherwise on the shared queue, waking an idle worker. After shutdown
    /// the job goes to Swift's global executor instead, so it still runs.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let mine = ObjectIdentifier(self)
        // Guaranteed reference: the worker outlives the call, and a strong
        // local would cost a retain/release pair per job.
        if let raw = gt_current_worker(), let queued = Unmanaged<Worker>.fromOpaque(raw)._withUnsafeGuaranteedRef({ w in
            ObjectIdentifier(w.taskExecutor) == mine ? w.pushJob(unowned) : nil
        }) {
            if !queued { Self.forward(unowned) }
            return
        }
        guard injector.push(unowned) != nil else { return Self.forward(unowned) }
        idle.notifyWork()
    }

    /// Hands a job to Swift's global concurrent executor: the runtime is
    /// gone (see the file header, "Shutdown").
    static func forward(_ job: UnownedJob) {
        globalConcurrentExecutor.enqueue(ExecutorJob(job))
    }
}

extension Runtime {
    /// The executor that runs Tasks on this runtime's workers, between its
    /// green threads: `Task(executorPreference: rt.taskExecutor) { ... }`
    /// or `withTaskExecutorPreference(rt.taskExecutor) { ... }`.
    public var taskExecutor: GreenTaskExecutor { core.taskExecutor }
}

extension Worker {
    /// `enqueue` on this worker (its own thread): queues the job here and
    /// sends the next switch back to the scheduling loop. Returns false if
    /// the runtime has shut down.
    @inline(__always)
    func pushJob(_ job: UnownedJob) -> Bool {
        guard let before = jobs.push(job) else { return false }
        markJobsPending()
        // Behind another job: surplus work, worth an idle worker's look.
        if before > 0 { idle.notifyWork() }
        return true
    }

    /// Sends this worker's next switch to the scheduling loop (owner only;
    /// the bit is cleared by `runJobs`).
    @inline(__always)
    func markJobsPending() {
        if interrupts.load(ordering: .relaxed) & Interrupt.jobs == 0 {
            interrupts.bitwiseOr(Interrupt.jobs, ordering: .relaxed)
        }
    }

    /// The injector tick's share: jobs from outside wait in the executor's
    /// injector, and a worker busy with green threads serves them too.
    @inline(__always)
    func noticeInjectedJobs() {
        if !taskExecutor.injector.isEmpty { markJobsPending() }
    }

    /// Runs, on the scheduling loop's stack, the jobs queued on this worker
    /// when it starts, or else a batch taken from the executor's injector.
    /// Returns whether any ran.
    @discardableResult
    func runJobs() -> Bool {
        if interrupts.load(ordering: .relaxed) & Interrupt.jobs != 0 {
            interrupts.bitwiseAnd(~Interrupt.jobs, ordering: .relaxed)
        }
        var budget = jobs.approximateCount
        if budget == 0 { budget = taskExecutor.injector.moveHalf(to: jobs) }
        if budget == 0 { return false }
        // Found work: a spinner stops spinning, and the last one out wakes
        // a replacement (as `found` does for a green thread).
        if local.pointee.isSpinning {
            local.pointee.isSpinning = false
            if idle.stopSpinning() { idle.notifyWork() }
        }
        let executor = taskExecutor.asUnownedTaskExecutor()
        var ran = 0
        while ran < budget, let job = jobs.pop() {
            job.runSynchronously(on: executor)
            ran &+= 1
        }
        jobs.ran.store(jobs.ran.load(ordering: .relaxed) &+ ran, ordering: .relaxed)
        if !jobs.isEmpty { markJobsPending() }
        return ran > 0
    }

    /// A spinning worker's look for jobs: the executor's injector, and
    /// once `takePeers` (the run-next grace period is over) half of a
    /// peer's queue. Returns whether this worker's own queue now has some.
    func takeJobs(takePeers: Bool) -> Bool {
        if taskExecutor.injector.moveHalf(to: jobs) > 0 { return true }
        guard takePeers else { return false }
        for group in victims {
            for v in group {
                let moved = v._withUnsafeGuaranteedRef { victim in
                    victim === self ? 0 : victim.jobs.moveHalf(to: jobs)
                }
                if moved > 0 { return true }
            }
        }
        return false
    }
}

extension RuntimeCore {
    /// Whether any job waits in the executor's injector or a worker's queue.
    func hasQueuedJobs() -> Bool {
        if !taskExecutor.injector.isEmpty { return true }
        for w in workers where !w.jobs.isEmpty { return true }
        return false
    }

    /// Jobs run so far, for `activityEpoch`.
    var jobsRun: Int {
        var n = 0
        for w in workers { n &+= w.jobs.ran.load(ordering: .relaxed) }
        return n
    }

    /// Shutdown, once the workers have stopped: closes every job queue and
    /// hands what they held to the global executor (the file header).
    func closeTaskExecutor() {
        for job in taskExecutor.injector.close() { GreenTaskExecutor.forward(job) }
        for w in workers {
            for job in w.jobs.close() { GreenTaskExecutor.forward(job) }
        }
    }
}
