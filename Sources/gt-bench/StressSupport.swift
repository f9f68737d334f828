// What the stress soak's workloads share: the seeded generator, the shared
// context (spawn and operation counts, the first failure, what is still
// running), the watchdog thread and the process probes (open descriptors,
// resident memory). The design is in StressCommand.swift's header.
import CContext
import GreenThreads
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// SplitMix64: every choice the soak makes comes from one of these, each
/// seeded from its parent's stream before anything runs concurrently, so a
/// seed replays the same operations whatever the interleaving.
struct StressRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int { Int.random(in: range, using: &self) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
    mutating func micros(_ range: ClosedRange<Int>) -> Duration { .microseconds(int(range)) }
}

/// A round's parameters: drawn at random, or all at their maximum in an
/// envelope round (the warm-up's, so that later rounds stay inside the
/// memory high-water mark the warm-up reached).
struct StressDraw {
    var rng: StressRandom
    let envelope: Bool

    mutating func size(_ range: ClosedRange<Int>) -> Int { envelope ? range.upperBound : rng.int(range) }
    mutating func seed() -> UInt64 { rng.next() }
}

/// A broken invariant: the soak's verdict names it.
struct StressFailure: Error, CustomStringConvertible {
    let description: String
}

func require(_ condition: Bool, _ what: @autoclosure () -> String) throws {
    if !condition { throw StressFailure(description: what()) }
}

/// A plain value shared by green threads that only touch it under a
/// `GreenMutex` (or, for a counter read after a join, not concurrently).
final class StressBox<Value>: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: every access is serialized by the
    // GreenMutex its user holds, or ordered by a join / WaitGroup.wait.
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// What every workload reports to, and the watchdog reads.
final class StressContext: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: `running`, `failure` and `phase` are read
    // and written only under `lock`, never across a green-thread switch;
    // the counters are atomics.
    /// Operations done (a message sent or received, a lock taken, a
    /// sleep...): the watchdog's sign of progress, and the final tally.
    let ops = StressCounter()
    /// Green threads the workloads spawned this round (`go` through `spawn`).
    let spawns = StressCounter()
    private let lock = PthreadLock()
    private var running: [String: Int] = [:]
    private var details: [String: [String]] = [:]
    private var failure: String?
    private var phase = "starting"

    func tick(_ n: Int = 1) { ops.add(n) }

    /// `go`, counted: the driver checks the runtime's spawn count against it.
    @discardableResult
    func spawn<T: Sendable>(_ body: @escaping @Sendable () throws -> T) -> JoinHandle<T> {
        spawns.add(1)
        return go(body)
    }

    /// Runs one workload, keeping its name in the running set meanwhile and
    /// keeping its failure, if it is the first, for the watchdog.
    func run(_ name: String, _ body: () throws -> Void) throws {
        lock.withLock { running[name, default: 0] += 1 }
        do {
            try body()
        } catch {
            record("\(name): \(error)")
            lock.withLock { running[name, default: 1] -= 1 }
            throw StressFailure(description: "\(name): \(error)")
        }
        lock.withLock {
            running[name, default: 1] -= 1
            if running[name] == 0 { running[name] = nil; details[name] = nil }
        }
    }

    /// What a running workload is doing (its sizes), for a hang report;
    /// kept, with its family's other instances', until none is running.
    func describe(_ name: String, _ detail: String) {
        lock.withLock { details[name, default: []].append(detail) }
    }

    func record(_ what: String) {
        lock.withLock { if failure == nil { failure = what } }
    }

    func setPhase(_ text: String) { lock.withLock { phase = text } }

    /// (first failure, phase, the workloads not yet finished), for the watchdog.
    func snapshot() -> (failure: String?, phase: String, running: [String]) {
        lock.withLock {
            (failure, phase, running.filter { $0.value > 0 }.keys.sorted().map { name in
                details[name].map { "\(name) [\($0.joined(separator: "; "))]" } ?? name
            })
        }
    }
}

/// An OS thread that ends the process if the soak stops making progress:
/// no operation for `stall` seconds (a hang or a lost wake-up), or a
/// failure recorded by a workload whose round then does not end within a
/// few seconds (a broken invariant often strands the threads around it).
enum StressWatchdog {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    static func start(context: StressContext, seed: UInt64, stallSeconds: Int) {
        let box = Unmanaged.passRetained(Box { watch(context, seed, stallSeconds) })
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "gt-bench stress: cannot start the watchdog thread (\(rc))")
        pthread_detach(thread)
    }

    private static func watch(_ context: StressContext, _ seed: UInt64, _ stallSeconds: Int) {
        var lastOps = context.ops.value
        var quietSeconds = 0
        var failedSeconds = 0
        while true {
            sleep(1)
            let ops = context.ops.value
            let (failure, phase, running) = context.snapshot()
            if ops != lastOps { quietSeconds = 0; lastOps = ops } else { quietSeconds += 1 }
            if failure != nil { failedSeconds += 1 }
            let unfinished = running.isEmpty ? "" : " (unfinished: \(running.joined(separator: ", ")))"
            if let failure, failedSeconds >= 5 {
                die("stress: FAILED seed=\(seed): \(failure); then no end to \(phase) in 5 s\(unfinished)")
            }
            if quietSeconds >= stallSeconds {
                die("stress: FAILED seed=\(seed): hang: no progress for \(stallSeconds) s in \(phase)\(unfinished)")
            }
        }
    }

    /// Writes the verdict and exits at once: the green threads it would
    /// wait for are the ones that hang.
    private static func die(_ line: String) -> Never {
        fflush(nil)
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        _exit(1)
    }
}

/// The process's open file descriptors, each with what it points at
/// (`socket:[...]`, a path), from /proc/self/fd. The directory's own
/// descriptor is left out.
func openDescriptors() -> [Int32: String] {
    guard let dir = opendir("/proc/self/fd") else { return [:] }
    let own = dirfd(dir)
    var result: [Int32: String] = [:]
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        guard let fd = Int32(name), fd != own else { continue }
        var target = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
        result[fd] = n > 0 ? String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }
    closedir(dir)
    return result
}

/// Descriptors open now that were not in `baseline`, as "fd -> target"
/// (empty when none leaked). Closing is synchronous, but a socket's last
/// close may trail its green thread's end by a few instructions, so this
/// looks again for up to a second before it reports.
func leakedDescriptors(since baseline: [Int32: String]) -> [String] {
    var extra: [String] = []
    for _ in 0..<100 {
        let now = openDescriptors()
        extra = now.filter { baseline[$0.key] != $0.value }.sorted { $0.key < $1.key }.map { "\($0.key) -> \($0.value)" }
        if extra.isEmpty { return [] }
        usleep(10_000)
    }
    return extra
}

let mebibyte = 1_048_576

/// An atomic counter green threads share (an `Atomic` itself cannot be
/// captured by an escaping closure).
final class StressCounter: Sendable {
    private let atomic = Atomic<Int>(0)

    /// Adds `n` and returns the new value.
    @discardableResult
    func add(_ n: Int = 1) -> Int { atomic.add(n, ordering: .relaxed).newValue }
    var value: Int { atomic.load(ordering: .relaxed) }
}
