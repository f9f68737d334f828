import ArgumentParser
import CContext
import GreenThreads
#if canImport(Glibc)
import Glibc
#endif

/// One named workload, the same as its twin in scripts/peers.
struct Benchmark: Sendable {
    let name: String
    let unit: String
    let summary: String
    /// Runs on the calling thread whatever the worker count: measured once,
    /// reported as workers = 1.
    var singleThreaded = false
    /// Set when the workload's point is memory: how many items (sleepers)
    /// it held at once at most, so the report adds peak RSS per item.
    var rssItems: (@Sendable () -> Int)? = nil
    /// The most peak RSS per item the project accepts (bytes), reported
    /// as met or missed beside the figure; nil: no memory target.
    var rssTargetPerItem: Int? = nil
    /// Runs the workload once on `workers` workers and returns the figure
    /// (lower is better) and any side figures.
    let measure: @Sendable (_ workers: Int) throws -> Sample

    init(name: String, unit: String, summary: String, singleThreaded: Bool = false,
         rssItems: (@Sendable () -> Int)? = nil, rssTargetPerItem: Int? = nil,
         measure: @escaping @Sendable (_ workers: Int) throws -> Double) {
        self.init(name: name, unit: unit, summary: summary, singleThreaded: singleThreaded,
                  rssItems: rssItems, rssTargetPerItem: rssTargetPerItem,
                  measureSample: { Sample(value: try measure($0)) })
    }

    init(name: String, unit: String, summary: String, singleThreaded: Bool = false,
         rssItems: (@Sendable () -> Int)? = nil, rssTargetPerItem: Int? = nil,
         measureSample: @escaping @Sendable (_ workers: Int) throws -> Sample) {
        self.name = name
        self.unit = unit
        self.summary = summary
        self.singleThreaded = singleThreaded
        self.rssItems = rssItems
        self.rssTargetPerItem = rssTargetPerItem
        self.measure = measureSample
    }
}

/// One run's figure, plus named side figures a benchmark reports beside
/// it (echo: requests/s and latency percentiles), each lower- or
/// higher-is-better as its name says.
struct Sample: Sendable {
    let value: Double
    var extras: [(name: String, value: Double)] = []
}

/// A median over repeats, with its spread.
struct Measurement: Sendable {
    let benchmark: String
    let workers: Int
    let unit: String
    let samples: [Double]
    /// The median of each side figure over the repeats, in the benchmark's order.
    var extras: [(name: String, value: Double)] = []
    let peakRSSBytes: Int
    /// `Benchmark.rssItems`, if the benchmark measures memory.
    var rssItems: Int? = nil
    /// `Benchmark.rssTargetPerItem`.
    var rssTargetPerItem: Int? = nil

    /// Peak RSS over the items the workload held at once, if it says.
    var bytesPerItem: Double? {
        rssItems.map { Double(peakRSSBytes) / Double($0) }
    }

    /// Whether `bytesPerItem` is within the target, if there is one.
    var rssTargetMet: Bool? {
        guard let target = rssTargetPerItem, let perItem = bytesPerItem else { return nil }
        return perItem <= Double(target)
    }

    init(benchmark: String, workers: Int, unit: String, samples: [Sample], peakRSSBytes: Int,
         rssItems: Int? = nil, rssTargetPerItem: Int? = nil) {
        self.benchmark = benchmark
        self.workers = workers
        self.unit = unit
        self.samples = samples.map(\.value)
        self.peakRSSBytes = peakRSSBytes
        self.rssItems = rssItems
        self.rssTargetPerItem = rssTargetPerItem
        for (i, extra) in (samples.first?.extras ?? []).enumerated() {
            let values = samples.compactMap { $0.extras.count > i ? $0.extras[i].value : nil }
            extras.append((extra.name, Self.median(values)))
        }
    }

    static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return .nan }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    var median: Double { Self.median(samples) }
    var min: Double { samples.min() ?? 0 }
    var max: Double { samples.max() ?? 0 }
}

/// Wall-clock nanoseconds taken by `body`.
@inline(never)
func elapsedNanos(_ body: () throws -> Void) rethrows -> Double {
    let t0 = gt_now_ns()
    try body()
    return Double(gt_now_ns() - t0)
}

/// A CPU-bound step the optimizer cannot remove (xorshift64), the same
/// loop as the peers' skew workload.
@inline(never)
func busyWork(_ seed: UInt64, iterations: Int) -> UInt64 {
    var x = seed | 1
    var acc: UInt64 = 0
    for _ in 0..<iterations {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        acc &+= x
    }
    return acc
}

/// One runtime per worker count, kept for the whole gt-bench process, as a
/// service keeps its runtime: the warm-up run and the timed repeats then
/// measure a warmed scheduler (pooled stacks, grown queues), exactly as the
/// Go twin measures a warmed Go runtime, not the cost of mapping stacks
/// into a brand-new one each time.
final class BenchRuntimes: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `runtimes` is read and written only under
    // `lock`; nothing else is mutable.
    private static let shared = BenchRuntimes()
    private let lock = PthreadLock()
    private var runtimes: [Int: Runtime] = [:]
    private var pinWorkers: Bool?

    /// `--pin`: nil pins when there is a worker per CPU (the runtime's
    /// default); true or false forces it. Set before the first runtime.
    static func setPinning(_ pin: Bool?) {
        shared.lock.withLock { shared.pinWorkers = pin }
    }

    static func runtime(workers: Int) -> Runtime {
        shared.lock.withLock {
            if let rt = shared.runtimes[workers] { return rt }
            let rt = Runtime(configuration: .init(workers: workers, pinWorkers: shared.pinWorkers))
            shared.runtimes[workers] = rt
            return rt
        }
    }

    /// Shuts down the runtime of one worker count: after a workload that
    /// leaves a million stacks pooled, so that the next worker count's
    /// runtime does not need a million more mappings beside them.
    static func shutdown(workers: Int) {
        let rt = shared.lock.withLock { shared.runtimes.removeValue(forKey: workers) }
        rt?.shutdown()
    }

    static func shutdownAll() {
        let all = shared.lock.withLock {
            let all = Array(shared.runtimes.values)
            shared.runtimes.removeAll()
            return all
        }
        for rt in all { rt.shutdown() }
    }
}

/// The placement option `run` and `scale` share.
struct PlacementOptions: ParsableArguments {
    @Option(help: "Pin workers to CPUs: auto (when there is a worker per CPU, the runtime's default), on, off.")
    var pin: PinChoice = .auto
}

/// `--pin`: how gt-bench's runtimes place their workers.
enum PinChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, on, off

    var pinWorkers: Bool? {
        switch self {
        case .auto: return nil
        case .on: return true
        case .off: return false
        }
    }
}

/// A plain pthread mutex: gt-bench's bookkeeping runs on the main thread,
/// never across a green-thread switch.
final class PthreadLock: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `mutex` is touched only through
    // pthread_mutex_*, which serialize the threads that share it; a stored
    // property of a class, it never moves.
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
}
