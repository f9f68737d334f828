import Dispatch
import GreenThreads
import Logging
import Metrics
import Synchronization

/// A runtime's statistics published through swift-metrics, and its
/// hand-offs written through swift-log.
///
/// The runtime already counts everything worth watching (`RuntimeStats`):
/// per-worker counters bumped with relaxed atomics on the paths that do the
/// work, summed only when someone reads `Runtime.stats`. This type reads
/// them on a timer and sets one swift-metrics object per figure:
///
/// - **Gauges** for what is a level: live green threads, stacks mapped and
///   compacted, stack address space, workers, replacement workers.
/// - **Counters** for what only grows: spawned, completed, steals (local
///   and remote, as a `kind` dimension), parks, switches, hand-offs,
///   preemption requests, stack compactions. Each poll increments a counter
///   by what its figure grew since the previous poll, so a counter's total
///   is the runtime's own count, whatever the interval. The first poll
///   starts from zero, which is where the runtime's counts start: a bridge
///   attached late still reports every spawn since the runtime began.
///
/// **Rejected: calling swift-metrics where the runtime counts.** A spawn, a
/// steal or a park would each pay a call through an existential handler
/// (a lock in most backends) on the scheduler's hottest paths, and the core
/// library would need the dependency. Polling costs one pass over the
/// workers' counters per interval, and nothing at all between polls.
///
/// **Rejected: polling from a green thread.** It would count itself in
/// `live` and `switches`, keep a worker from parking once a second, and
/// stop reporting exactly when reports matter most: when every worker is
/// stuck inside a green thread that never yields (which is what a hand-off
/// is). The timer runs on a Dispatch queue, on an OS thread of its own.
///
/// **Hand-offs.** Sysmon only counts them (`RuntimeStats.handoffs`); a poll
/// that sees the count grow writes one warning through the logger, with the
/// number of new hand-offs and the replacement workers running, so a stuck
/// green thread shows in the logs within one interval.
///
/// Polls are serialised by a mutex: the timer and a direct `update()` may
/// race, and each delta must be taken against the figures the other
/// published, or a growth would be counted twice.
public final class RuntimeMetrics: Sendable {
    /// The runtime this bridge reads.
    public let runtime: Runtime
    /// The start of every metric's label, `"greenthreads"` by default:
    /// labels are `PREFIX_live_threads`, `PREFIX_spawned_total` and so on.
    public let prefix: String

    private let gauges: Gauges
    private let counters: Counters
    private let logger: Logger?
    private let state = Mutex(State())

    private struct State {
        var last = RuntimeStats()
        var timer: (any DispatchSourceTimer)?
    }

    /// Creates the metrics of `runtime`, registered with `factory`.
    ///
    /// - Parameters:
    ///   - runtime: The runtime to read.
    ///   - prefix: The start of every label; letters, digits and `_` keep
    ///     the labels valid for every backend (Prometheus included).
    ///   - dimensions: Added to every metric, for example
    ///     `[("runtime", "io")]` to tell two runtimes of one process apart.
    ///   - factory: Where the metrics are made; by default the one
    ///     `MetricsSystem.bootstrap` installed.
    ///   - logger: Where hand-offs are written; nil writes nothing.
    public init(
        runtime: Runtime,
        prefix: String = "greenthreads",
        dimensions: [(String, String)] = [],
        factory: any MetricsFactory = MetricsSystem.factory,
        logger: Logger? = nil
    ) {
        self.runtime = runtime
        self.prefix = prefix
        self.logger = logger
        gauges = Gauges(prefix: prefix, dimensions: dimensions, factory: factory)
        counters = Counters(prefix: prefix, dimensions: dimensions, factory: factory)
    }

    deinit {
        state.withLock { $0.timer?.cancel() }
    }

    /// Reads `runtime.stats` once and publishes it: sets every gauge, and
    /// increments every counter by its growth since the previous update.
    ///
    /// The timer started by `start(interval:)` calls this; call it directly
    /// to publish at moments of your own (before a scrape, at shutdown).
    /// Safe from any thread, green or not.
    public func update() {
        let stackSize = runtime.configuration.stackSize
        let (now, grown) = state.withLock { state in
            let now = runtime.stats
            gauges.set(now, stackSize: stackSize)
            counters.add(now, since: state.last)
            defer { state.last = now }
            return (now, now.handoffs - state.last.handoffs)
        }
        if grown > 0, let logger {
            logger.warning(
                "GreenThreads: sysmon started \(grown) replacement worker(s) for worker(s) stuck in one green thread",
                metadata: [
                    "handoffs": "\(now.handoffs)",
                    "replacement_workers": "\(now.replacementWorkers)",
                ]
            )
        }
    }

    /// Starts publishing every `interval`, the first time at once. Calling
    /// it again replaces the running timer.
    ///
    /// The timer holds this object weakly: dropping the last reference
    /// stops it, as `stop()` does.
    public func start(interval: Duration = .seconds(1)) {
        precondition(interval > .zero, "GreenThreadsMetrics: interval must be positive (got \(interval))")
        let (seconds, attoseconds) = interval.components
        let nanos = Int(clamping: seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000)
        let queue = DispatchQueue(label: "\(prefix).metrics")
        // Made, armed and swapped under the lock: neither `cancel` nor
        // `resume` waits for the handler (which takes the same lock on its
        // queue), and a timer never leaves the lock, so no second start can
        // interleave and leave two running.
        state.withLock { state in
            state.timer?.cancel()
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now(), repeating: .nanoseconds(max(1, nanos)))
            timer.setEventHandler { [weak self] in self?.update() }
            timer.resume()
            state.timer = timer
        }
    }

    /// Stops the timer `start(interval:)` started. Updates already running
    /// finish; none starts after this returns. A no-op when not started.
    public func stop() {
        state.withLock { state in
            state.timer?.cancel()
            state.timer = nil
        }
    }
}

/// The levels: set to the runtime's figure on each poll.
private struct Gauges: Sendable {
    let live: Gauge
    let stacksMapped: Gauge
    let stacksCompacted: Gauge
    let stackBytes: Gauge
    let workers: Gauge
    let replacementWorkers: Gauge

    init(prefix: String, dimensions: [(String, String)], factory: any MetricsFactory) {
        func gauge(_ name: String) -> Gauge {
            Gauge(label: "\(prefix)_\(name)", dimensions: dimensions, factory: factory)
        }
        live = gauge("live_threads")
        stacksMapped = gauge("stacks_mapped")
        stacksCompacted = gauge("stacks_compacted")
        stackBytes = gauge("stack_bytes")
        workers = gauge("workers")
        replacementWorkers = gauge("replacement_workers")
    }

    func set(_ s: RuntimeStats, stackSize: Int) {
        live.record(s.live)
        stacksMapped.record(s.stacksMapped)
        stacksCompacted.record(s.stacksCompacted)
        stackBytes.record(s.stacksMapped * stackSize)
        workers.record(s.workers)
        replacementWorkers.record(s.replacementWorkers)
    }
}

/// The running totals: incremented by each poll's growth.
private struct Counters: Sendable {
    let spawned: Counter
    let completed: Counter
    let localSteals: Counter
    let remoteSteals: Counter
    let parks: Counter
    let switches: Counter
    let handoffs: Counter
    let preemptionRequests: Counter
    let stackCompactions: Counter

    init(prefix: String, dimensions: [(String, String)], factory: any MetricsFactory) {
        func counter(_ name: String, _ extra: [(String, String)] = []) -> Counter {
            Counter(label: "\(prefix)_\(name)_total", dimensions: dimensions + extra, factory: factory)
        }
        spawned = counter("spawned")
        completed = counter("completed")
        localSteals = counter("steals", [("kind", "local")])
        remoteSteals = counter("steals", [("kind", "remote")])
        parks = counter("parks")
        switches = counter("switches")
        handoffs = counter("handoffs")
        preemptionRequests = counter("preemption_requests")
        stackCompactions = counter("stack_compactions")
    }

    func add(_ now: RuntimeStats, since last: RuntimeStats) {
        // Each figure is a sum of per-worker counters that only grow, read
        // by one poll at a time (the mutex): read-read coherence keeps each
        // load at or past the previous one, so no difference is negative.
        // The `> 0` test skips the call for figures that did not move.
        func bump(_ counter: Counter, _ figure: KeyPath<RuntimeStats, Int>) {
            let delta = now[keyPath: figure] - last[keyPath: figure]
            if delta > 0 { counter.increment(by: delta) }
        }
        bump(spawned, \.spawned)
        bump(completed, \.completed)
        bump(localSteals, \.localSteals)
        bump(remoteSteals, \.remoteSteals)
        bump(parks, \.parks)
        bump(switches, \.switches)
        bump(handoffs, \.handoffs)
        bump(preemptionRequests, \.preemptionRequests)
        bump(stackCompactions, \.stackCompactions)
    }
}
