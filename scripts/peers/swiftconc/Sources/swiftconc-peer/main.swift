// Swift-concurrency peer for the GreenThreads benchmarks.
//
// Tasks are Swift's green threads, run by the global cooperative executor.
// Its pool size cannot be set: on Linux neither
// LIBDISPATCH_COOPERATIVE_POOL_STRICT nor
// SWIFT_CONCURRENCY_COOPERATIVE_THREAD_BOUNDS has any effect, but libdispatch
// sizes the pool from the process's CPU affinity, read once at start-up.
// So for each worker count this program re-executes itself under
// `taskset -c 0-(n-1)`, which gives a pool of exactly n threads (and n cores).
//
// Usage: swiftconc-peer [switch|spawn|fib|skew|timers|parkmany ...] [--workers 1,2]
// Prints: RESULT peer=swiftconc benchmark=<name> workers=<n> value=<median> unit=<unit>
import Foundation
import Synchronization

let switchYields = 10_000_000  // total over both tasks
let spawnTotal = 1_000_000
let spawnBatch = 10_000
let fibN = 27
let fibExpected = 196_418
let skewTasks = 10_000
let skewIters = 50_000  // dependent xorshift steps per task: ~50-100 µs
let timerSleeps = 1_000_000
let parkTasks = 1_000_000

/// Set in the re-executed child, whose pool is already pinned to its size.
let pinnedEnv = "SWIFTCONC_PEER_PINNED"

func nanoseconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
}

// MARK: - Benchmarks (each returns one measurement)

/// Two tasks yielding to each other. With one pool thread every yield is a
/// switch to the other task; with more threads they would simply run side by
/// side, which is why this only runs at workers=1.
func benchSwitch() async -> Double {
    let start = ContinuousClock.now
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<2 {
            group.addTask {
                for _ in 0..<switchYields / 2 { await Task.yield() }
            }
        }
    }
    return nanoseconds(since: start) / Double(switchYields)
}

/// Spawn a batch of empty child tasks, then join the whole batch.
func benchSpawn() async -> Double {
    let start = ContinuousClock.now
    for _ in 0..<spawnTotal / spawnBatch {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<spawnBatch { group.addTask {} }
            await group.waitForAll()
        }
    }
    return nanoseconds(since: start) / Double(spawnTotal)
}

/// `async let` is Swift's spawn-then-join of a child task.
func fib(_ n: Int) async -> Int {
    if n < 2 { return n }
    async let a = fib(n - 1)
    let b = await fib(n - 2)
    return await a + b
}

func benchFib() async -> Double {
    let start = ContinuousClock.now
    let r = await fib(fibN)
    let ms = nanoseconds(since: start) / 1e6
    guard r == fibExpected else {
        FileHandle.standardError.write("fib(\(fibN)) = \(r), want \(fibExpected)\n".data(using: .utf8)!)
        exit(1)
    }
    return ms
}

/// Dependent xorshift64 chain folded into an accumulator: cannot be
/// vectorized, and the result is consumed so it cannot be dropped.
func spin(_ seed: UInt64) -> UInt64 {
    var x = seed | 1
    var acc: UInt64 = 0
    for _ in 0..<skewIters {
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        acc &+= x
    }
    return acc
}

/// One task spawns every CPU-bound child, so other threads only get work by
/// taking it from the shared pool.
func benchSkew() async -> Double {
    let start = ContinuousClock.now
    let sum = await withTaskGroup(of: UInt64.self) { group in
        for i in 0..<skewTasks {
            group.addTask { spin(UInt64(i)) }
        }
        return await group.reduce(0, &+)
    }
    let ms = nanoseconds(since: start) / 1e6
    if sum == 0 { print("skew: zero checksum") }  // consume the results
    return ms
}

/// Tasks asleep in benchTimers now, and the most ever asleep at once (over
/// this process's runs): the divisor of timers-rss.
enum Sleepers {
    static let asleep = Atomic<Int>(0)
    static let peak = Atomic<Int>(0)

    static func fallAsleep() {
        let now = asleep.add(1, ordering: .relaxed).newValue
        var seen = peak.load(ordering: .relaxed)
        while now > seen {
            let (done, current) = peak.compareExchange(expected: seen, desired: now, ordering: .relaxed)
            if done { break }
            seen = current
        }
    }
}

/// 10^6 child tasks each sleeping one second (Task.sleep), awaited by their
/// group; the overhead beyond the second, per sleeper.
func benchTimers() async -> Double {
    let start = ContinuousClock.now
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<timerSleeps {
            group.addTask {
                Sleepers.fallAsleep()
                try? await Task.sleep(for: .seconds(1))
                Sleepers.asleep.subtract(1, ordering: .relaxed)
            }
        }
    }
    return (nanoseconds(since: start) - 1e9) / Double(timerSleeps)
}

/// The stand-in for a closed channel: tasks suspend on a continuation that
/// `open` resumes, all at once. Swift concurrency has no channel; a task
/// parked on a continuation is its cheapest way to wait.
final class Gate: Sendable {
    private struct State {
        var waiters: [CheckedContinuation<Void, Never>] = []
        var open = false
    }
    private let state = Mutex(State())
    let arrived = Atomic<Int>(0)

    func wait() async {
        arrived.add(1, ordering: .relaxed)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if resumeNow { c.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for c in waiters { c.resume() }
    }
}

/// 10^6 child tasks suspended at once on one gate, resumed together, awaited
/// by their group: spawn+park+wake+exit per task.
func benchParkMany() async -> Double {
    let gate = Gate()
    let start = ContinuousClock.now
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<parkTasks {
            group.addTask { await gate.wait() }
        }
        while gate.arrived.load(ordering: .relaxed) < parkTasks { await Task.yield() }
        gate.open()
    }
    return nanoseconds(since: start) / Double(parkTasks)
}

struct Benchmark {
    let name: String
    let unit: String
    let singleWorker: Bool
    let run: () async -> Double
}

let benchmarks = [
    Benchmark(name: "switch", unit: "ns/switch", singleWorker: true, run: benchSwitch),
    Benchmark(name: "spawn", unit: "ns/spawn", singleWorker: false, run: benchSpawn),
    Benchmark(name: "fib", unit: "ms", singleWorker: false, run: benchFib),
    Benchmark(name: "skew", unit: "ms", singleWorker: false, run: benchSkew),
    Benchmark(name: "timers", unit: "ns/sleeper", singleWorker: false, run: benchTimers),
    Benchmark(name: "parkmany", unit: "ns/thread", singleWorker: false, run: benchParkMany),
]

// MARK: - Driver

func usage() -> Never {
    FileHandle.standardError.write("usage: swiftconc-peer [switch|spawn|fib|skew|timers|parkmany ...] [--workers 1,2]\n".data(using: .utf8)!)
    exit(2)
}

var selected: [Benchmark] = []
var workers = [1, 2]
var args = CommandLine.arguments.dropFirst()
while let arg = args.popFirst() {
    if arg == "--workers", let list = args.popFirst() {
        workers = list.split(separator: ",").map { Int($0) ?? 0 }
        if workers.contains(where: { $0 < 1 }) { usage() }
    } else if let b = benchmarks.first(where: { $0.name == arg }) {
        selected.append(b)
    } else {
        usage()
    }
}
if selected.isEmpty { selected = benchmarks }

let env = ProcessInfo.processInfo.environment
if env[pinnedEnv] == nil {
    // Parent: one pinned child per worker count.
    let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    var failed = false
    for w in workers {
        guard w <= ProcessInfo.processInfo.activeProcessorCount else {
            FileHandle.standardError.write("swiftconc-peer: skipping workers=\(w): only \(ProcessInfo.processInfo.activeProcessorCount) CPUs\n".data(using: .utf8)!)
            continue
        }
        let names = selected.filter { w == 1 || !$0.singleWorker }.map(\.name)
        if names.isEmpty { continue }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
        child.arguments = ["-c", "0-\(w - 1)", me] + names + ["--workers", "\(w)"]
        child.environment = env.merging([pinnedEnv: "1"]) { $1 }
        try child.run()
        child.waitUntilExit()
        if child.terminationStatus != 0 { failed = true }
    }
    exit(failed ? 1 : 0)
}

// Child: the pool is pinned to exactly workers[0] threads.
let repeats = Int(env["REPEATS"] ?? "").flatMap { $0 > 0 ? $0 : nil } ?? 5
let w = workers[0]
for b in selected {
    _ = await b.run()  // warm-up: let the pool spin up and the allocator settle
    var values: [Double] = []
    for _ in 0..<repeats { values.append(await b.run()) }
    values.sort()
    let n = values.count
    let median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2
    print("RESULT peer=swiftconc benchmark=\(b.name) workers=\(w) value=\(String(format: "%.3f", median)) unit=\(b.unit)")
    if b.name == "timers" {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)  // ru_maxrss: KiB on Linux
        let peak = max(1, Sleepers.peak.load(ordering: .relaxed))
        print("RESULT peer=swiftconc benchmark=timers-rss workers=\(w) "
              + "value=\(String(format: "%.1f", Double(ru.ru_maxrss) * 1024 / Double(peak))) unit=B/sleeper at_once=\(peak)")
    }
    if b.name == "parkmany" {
        var ru = rusage()
        getrusage(RUSAGE_SELF.rawValue, &ru)
        print("RESULT peer=swiftconc benchmark=parkmany-rss workers=\(w) "
              + "value=\(String(format: "%.1f", Double(ru.ru_maxrss) * 1024 / Double(parkTasks))) unit=B/thread at_once=\(parkTasks)")
    }
    fflush(nil)  // the parent reads our output through a pipe
}
