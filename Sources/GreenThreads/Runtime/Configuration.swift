extension Runtime {
    /// How the runtime learns the machine's NUMA nodes, which decide where
    /// workers sit and whom they steal from first (`Runtime.topology`):
    /// `.auto`, `.disabled`, `.simulated(nodes:)` or `.simulated(distances:)`.
    ///
    /// A struct of static members rather than an enum, because the two
    /// simulations share the name `simulated`, and Swift cannot tell apart
    /// enum cases that differ only in their labels when matching them.
    public struct NUMAMode: Sendable, Equatable {
        enum Kind: Sendable, Equatable {
            case auto
            case disabled
            case simulatedNodes(Int)
            case simulatedDistances([[Int]])
        }

        let kind: Kind

        /// Read the machine through libnuma, loaded at run time: each CPU's
        /// node, the distances between nodes, memory per node, restricted
        /// to the CPUs this process may use. Without libnuma, or on a
        /// kernel without NUMA, one node (`Topology.note` says why).
        public static let auto = NUMAMode(kind: .auto)

        /// One node: every worker steals from every other equally.
        public static let disabled = NUMAMode(kind: .disabled)

        /// A fake topology that splits the workers into `nodes` consecutive
        /// groups, 10 apart within a node and 20 between any two, for tests
        /// and for planning NUMA machines on a single-node box.
        ///
        /// - Precondition (checked by `Runtime.init`): `nodes` ≥ 1.
        public static func simulated(nodes: Int) -> NUMAMode {
            NUMAMode(kind: .simulatedNodes(nodes))
        }

        /// A fake topology with an explicit distance matrix in ACPI SLIT
        /// units, one row per node: `distances[i][j]` is how far node `i`
        /// is from node `j`. The workers are split into consecutive groups,
        /// one per node, as with `simulated(nodes:)`.
        ///
        /// - Precondition (checked by `Runtime.init`): the matrix is square
        ///   and not empty, 10 on the diagonal, and 11...254 elsewhere (a
        ///   remote node is farther than a local one; 255 means unreachable
        ///   in a SLIT). It need not be symmetric: the firmware may describe
        ///   one direction as farther, and Linux reports it as it is.
        public static func simulated(distances: [[Int]]) -> NUMAMode {
            NUMAMode(kind: .simulatedDistances(distances))
        }
    }

    /// The clock that sleeps, timeouts and `Runtime.now` use.
    public enum ClockMode: Sendable, Equatable {
        /// The monotonic clock.
        case real
        /// Virtual time for discrete-event simulation: it stands still while
        /// any green thread can run and jumps to the next timer once every
        /// worker is idle. Ten simulated years take milliseconds.
        case virtual
    }

    /// How a runtime is built. Every field has a default.
    public struct Configuration: Sendable {
        /// Smallest accepted stack: a first, cold `print` needs ~14 KiB.
        public static let minimumStackSize = 16 * 1024

        /// OS worker threads. Default: one per CPU available to the process.
        public var workers: Int
        /// Bytes of stack per green thread. Mapped lazily: a green thread
        /// costs the pages it touches, not this.
        public var stackSize: Int
        /// NUMA grouping of workers.
        public var numa: NUMAMode
        /// Whether to pin each worker to its CPU (workers fill the CPUs of
        /// one node before the next). nil, the default: pin exactly when
        /// there is one worker per CPU this process may use. true pins the
        /// workers that have a CPU of their own: none when workers
        /// outnumber CPUs. Replacement workers are never pinned.
        public var pinWorkers: Bool?
        /// Detect runtimes where every green thread is parked forever and
        /// throw `RuntimeError.deadlock` from `run` / `join` on OS threads.
        public var deadlockDetection: Bool
        /// How long `shutdown` lets cancelled green threads unwind.
        public var shutdownGracePeriod: Duration
        /// Called with an error thrown by a green thread that nobody joined
        /// (when its last handle is dropped). Default: one line on stderr.
        public var unhandledErrorHandler: (@Sendable (GreenThread.ID, any Error) -> Void)?
        /// `.virtual` for simulations (see `ClockMode`).
        public var clock: ClockMode
        /// Seeds every scheduling choice that is random (which case a
        /// `select` takes among ready ones, steal victims). With one worker
        /// and a virtual clock, the same program and seed replay the same
        /// interleaving. nil: seeded from the clock.
        public var seed: UInt64?
        /// Most OS threads `GreenThread.blocking` runs bodies on at once
        /// (started on demand; further calls queue). Default 64.
        public var blockingThreads: Int
        /// How long a green thread may run without switching, while others
        /// wait, before the runtime's monitor (sysmon) asks it to yield at its
        /// next `GreenThread.checkpoint()`. nil: never ask. Go uses 10 ms.
        public var preemptionThreshold: Duration?
        /// How long a worker may stay inside one green thread, while others
        /// wait and no worker is idle, before sysmon starts a replacement
        /// worker so the waiting green threads keep running (a green thread
        /// in an unannounced blocking call, or a loop that never calls
        /// `checkpoint()`). The replacement retires once the stuck worker
        /// switches again. nil: never. Neither applies under `.virtual` time.
        public var handoffThreshold: Duration?
        /// When a long `GreenThread.sleep` gives its stack's memory back
        /// while it sleeps (see `StackCompaction`). nil: never; stacks keep
        /// their touched pages (at least one 4 KiB page per sleeper).
        public var stackCompaction: StackCompaction?
        /// A signal that makes the runtime write ``Runtime/dump()`` to
        /// stderr, as Go does on SIGQUIT: for example `SIGQUIT`, then
        /// `kill -QUIT <pid>` (or `Ctrl-\` in a terminal). The process goes
        /// on running. The previous action for that signal is kept and put
        /// back at shutdown (Swift's crash backtracer handles SIGQUIT on
        /// Linux). nil, the default: no signal is touched.
        ///
        /// - Precondition (checked by `Runtime.init`): not a signal that
        ///   reports a fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP,
        ///   SIGSYS) nor one that cannot be caught (SIGKILL, SIGSTOP).
        public var dumpSignal: Int32?

        /// Most green threads alive at once (spawned and not yet finished,
        /// parked ones included). A spawn past it does not run: its `join`
        /// throws `RuntimeError.tooManyGreenThreads`, and `go`/`spawn` still
        /// return at once (they never throw). A spawn whose stack cannot be
        /// mapped fails the same way, with `RuntimeError.outOfStackMemory`.
        /// nil, the default: no limit beyond memory.
        public var maxGreenThreads: Int?

        public init(
            workers: Int = Runtime.defaultWorkerCount,
            stackSize: Int = 256 * 1024,
            numa: NUMAMode = .auto,
            pinWorkers: Bool? = nil,
            deadlockDetection: Bool = true,
            shutdownGracePeriod: Duration = .seconds(2),
            unhandledErrorHandler: (@Sendable (GreenThread.ID, any Error) -> Void)? = nil,
            clock: ClockMode = .real,
            seed: UInt64? = nil,
            blockingThreads: Int = 64,
            preemptionThreshold: Duration? = .milliseconds(10),
            handoffThreshold: Duration? = .milliseconds(20),
            stackCompaction: StackCompaction? = StackCompaction(),
            dumpSignal: Int32? = nil,
            maxGreenThreads: Int? = nil
        ) {
            self.workers = workers
            self.stackSize = stackSize
            self.numa = numa
            self.pinWorkers = pinWorkers
            self.deadlockDetection = deadlockDetection
            self.shutdownGracePeriod = shutdownGracePeriod
            self.unhandledErrorHandler = unhandledErrorHandler
            self.clock = clock
            self.seed = seed
            self.blockingThreads = blockingThreads
            self.preemptionThreshold = preemptionThreshold
            self.handoffThreshold = handoffThreshold
            self.stackCompaction = stackCompaction
            self.dumpSignal = dumpSignal
            self.maxGreenThreads = maxGreenThreads
        }
    }
}

extension Runtime {
    /// Compaction of sleeping stacks: while a green thread sleeps long
    /// enough, the used top of its stack (usually under 1 KiB) is copied to
    /// the heap and the stack's pages go back to the kernel; they are copied
    /// back, at the same addresses, just before it runs again. A sleeper
    /// then costs about a third of its resident page.
    ///
    /// The price is time: a compaction and the page fault of the copy back
    /// cost several microseconds per sleep, so only sleeps that are long
    /// and numerous are compacted (gt-bench `timers` and `timers-rss`
    /// measure both sides: docs/BENCHMARKS.md).
    ///
    /// Only `GreenThread.sleep` compacts, since nothing else holds the
    /// address of a sleeper's stack. The one rule for user code: while a
    /// green thread sleeps, no *other* thread may read or write memory on
    /// its stack (a pointer from `withUnsafeMutablePointer(to:)` to one of
    /// its locals, handed to another thread). Such a write would be lost.
    /// Code that does this needs `stackCompaction: nil`.
    public struct StackCompaction: Sendable, Equatable {
        /// Sleeps shorter than this are never compacted. Default 50 ms: a
        /// compaction round trip costs ~5–20 µs here (a batched madvise and
        /// a page fault), at most 0.04 % of such a sleep.
        public var minimumSleep: Duration
        /// Compact only while at least this many timers are pending in the
        /// runtime (all workers' heaps): below that, the pages saved are not
        /// worth the time. Default 4,096 (16 MiB of sleeping stack pages).
        /// 0 compacts every long enough sleep.
        public var minimumSleepers: Int

        public init(minimumSleep: Duration = .milliseconds(50), minimumSleepers: Int = 4_096) {
            self.minimumSleep = minimumSleep
            self.minimumSleepers = minimumSleepers
        }
    }
}
