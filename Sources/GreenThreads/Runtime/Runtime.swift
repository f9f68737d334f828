import CContext
#if canImport(Glibc)
import Glibc
#endif

/// An M:N scheduler: green threads multiplexed over one OS worker thread
/// per core, with work stealing between the workers.
///
/// ```swift
/// let rt = Runtime()                       // one worker per available CPU
/// let total = try rt.run {                 // the "main" green thread
///     let parts = (0..<8).map { i in go { work(i) } }
///     return try joinAll(parts).reduce(0, +)
/// }
/// rt.shutdown()                            // or let it go out of scope
/// ```
public final class Runtime: Sendable {
    @usableFromInline let core: RuntimeCore

    /// Creates a runtime with `workers` OS threads (default: one per CPU
    /// this process may run on).
    public convenience init(workers: Int = Runtime.defaultWorkerCount) {
        self.init(configuration: Configuration(workers: workers))
    }

    /// Creates a runtime from a full configuration.
    public init(configuration: Configuration) {
        precondition(configuration.workers > 0,
                     "GreenThreads: Runtime needs at least one worker (got workers: \(configuration.workers))")
        precondition(configuration.stackSize >= Configuration.minimumStackSize,
                     "GreenThreads: stackSize must be at least \(Configuration.minimumStackSize) bytes (got \(configuration.stackSize))")
        precondition(configuration.blockingThreads > 0,
                     "GreenThreads: blockingThreads must be at least 1 (got \(configuration.blockingThreads))")
        if let failure = configuration.numa.validationFailure { preconditionFailure(failure) }
        if let signal = configuration.dumpSignal, let refusal = DumpListener.refusal(of: signal) {
            preconditionFailure(refusal)
        }
        for (name, value) in [("preemptionThreshold", configuration.preemptionThreshold),
                              ("handoffThreshold", configuration.handoffThreshold)] {
            if let value {
                precondition(value > .zero, "GreenThreads: \(name) must be positive or nil (got \(value))")
            }
        }
        if let limit = configuration.maxGreenThreads {
            precondition(limit > 0, "GreenThreads: maxGreenThreads must be positive or nil (got \(limit))")
        }
        if let compaction = configuration.stackCompaction {
            precondition(compaction.minimumSleep >= .zero,
                         "GreenThreads: stackCompaction.minimumSleep must not be negative (got \(compaction.minimumSleep))")
            precondition(compaction.minimumSleepers >= 0,
                         "GreenThreads: stackCompaction.minimumSleepers must not be negative (got \(compaction.minimumSleepers))")
        }
        core = RuntimeCore(configuration: configuration)
    }

    deinit {
        core.shutdown()
    }

    /// The number of CPUs this process may run on (its affinity mask).
    public static var defaultWorkerCount: Int {
        max(1, Topology.availableCPUs().count)
    }

    /// Runs `body` as a green thread and blocks the calling OS thread until
    /// it returns; returns its value or rethrows its error.
    ///
    /// Throws `RuntimeError.deadlock` if every green thread ends up parked
    /// with nothing (no timer, no other thread, no I/O) left to wake them.
    /// Must be called from a plain OS thread, not from a green thread.
    ///
    /// `file` and `line` record where the green thread was started, for
    /// ``dump()``: leave the defaults.
    public func run<T: Sendable>(
        file: StaticString = #fileID, line: UInt = #line, _ body: @escaping @Sendable () throws -> T
    ) throws -> T {
        precondition(Worker.current == nil,
                     "GreenThreads: Runtime.run called from inside a green thread; use go { } and join() there")
        precondition(!core.closed.load(ordering: .acquiring), "GreenThreads: run on a runtime that was shut down")
        let main = core.spawn(file: file, line: line, body)
        defer {
            // The result is published a few instructions before the main
            // thread's stack is recycled; wait those out so that `stats`
            // read right after `run` counts it as completed.
            while main.state != .finished && main.done.load(ordering: .acquiring) { sched_yield() }
        }
        return try main.join()
    }

    /// Starts a green thread on this runtime, from any thread.
    ///
    /// - Parameters:
    ///   - name: shown by ``GreenThread/name``, ``dump()``, deadlock
    ///     reports and the line for an error nobody joined. nil: no name.
    ///   - file: the spawn site's file, for ``dump()``; leave the default.
    ///   - line: the spawn site's line; leave the default.
    ///   - body: what the green thread runs.
    @inlinable
    @discardableResult
    public func spawn<T: Sendable>(
        name: String? = nil, file: StaticString = #fileID, line: UInt = #line,
        _ body: consuming @escaping @Sendable () throws -> T
    ) -> JoinHandle<T> {
        // Inlined, and consuming, for the same reasons as `go`.
        if let w = Worker.calling(of: core) {
            return JoinHandle(fiber: Worker.spawnFiber(on: w, name: name, file: file, line: line, consume body))
        }
        let fiber = TypedFiber(core: core, name: name, file: file, line: line, body: body)
        core.submitExternal(fiber)
        return JoinHandle(fiber: fiber)
    }

    /// Cancels every green thread, waits (up to the configured grace
    /// period) for them to unwind, joins the workers and unmaps every stack.
    /// Idempotent; also done by deinit.
    public func shutdown() {
        core.shutdown()
    }

    /// Time since the runtime started, on its clock (virtual time for a
    /// `.virtual` runtime).
    public var now: Duration {
        .nanoseconds(core.clock.now() - core.clock.origin)
    }

    /// Counters since the runtime started.
    public var stats: RuntimeStats { core.stats }

    /// Number of worker threads.
    public var workerCount: Int { core.baseWorkerCount }

    /// How each worker was placed: (worker, NUMA node id, CPU). The CPU is
    /// the one the worker is given (and pinned to when pinning is on); nil
    /// when workers outnumber the CPUs.
    public var placement: [(worker: Int, node: Int, cpu: Int?)] {
        (0..<core.baseWorkerCount).map { ($0, core.topology.nodeID(ofWorker: $0), core.topology.cpu(ofWorker: $0)) }
    }

    /// The NUMA nodes this runtime placed its workers on, their CPUs, and
    /// the distances between them (see ``Runtime/Topology``).
    public var topology: Topology { core.topology }
}
