// Wall-clock bounds that survive a loaded machine.
//
// A test that bounds how long something takes measures the runtime only
// while the CPUs are free to run it. Beside other jobs (CPU hogs, other
// builds, the other suites of this very process, which run in parallel) a
// worker waits for a CPU like any busy thread, and a bound tight enough to
// catch a regression on a quiet machine fails for no fault of the code.
// Loosening each bound until it passes under load would blind it on a quiet
// machine; skipping it under load would blind it to hangs. So every timing
// bound of the test suites goes through `expectTimely`:
//
// * The test phrases the timed part as a trial that can run again from
//   scratch and returns its bounds (`TimingBound`).
// * A trial whose bounds all hold passes. One that fails runs again, up to
//   `attempts` times: a moment of contention no load figure shows (a burst
//   of the parallel suites) must not decide the verdict.
// * When every attempt failed, the last one decides. If the CPUs were busy
//   during it (`CPULoad`), each bound is checked with its loaded limit, by
//   default `loadedSlack` times the room: still a failure for a hang or a
//   missed wake-up, not for a late time slice. On a quiet machine the
//   bounds are checked as written.
//
// Bounds that follow from correctness rather than speed (a sleep never ends
// early, a deadline is never met before it passes) are not timing bounds:
// tests check them directly, on every run.
//
// This file is compiled into both test targets (the NetExamplesTests copy is
// a symbolic link to this one), so it uses nothing but the C library and
// the testing library.
#if canImport(Glibc)
import Glibc
#endif
import Testing

/// One wall-clock bound of a timed trial, as measured.
struct TimingBound: CustomStringConvertible {
    /// What was measured, for the failure message.
    let what: String
    /// Whether the bound holds as written.
    let holds: Bool
    /// Whether it holds as it stands on a busy machine.
    let holdsWhenLoaded: Bool
    let description: String

    /// `measured` must stay below `limit` (nanoseconds); on a busy machine
    /// below `loaded`, by default `loadedSlack` times `limit`.
    static func below(_ what: String, _ measured: Int64, _ limit: Int64, loaded: Int64? = nil) -> TimingBound {
        let loadedLimit = loaded ?? limit &* loadedSlack
        return TimingBound(
            what: what, holds: measured < limit, holdsWhenLoaded: measured < loadedLimit,
            description: "\(what): \(millis(measured)) ms, bound \(millis(limit)) ms (\(millis(loadedLimit)) ms when busy)")
    }

    /// `measured` must stay below `limit` (on a busy machine, `loaded`).
    static func below(_ what: String, _ measured: Duration, _ limit: Duration, loaded: Duration? = nil) -> TimingBound {
        below(what, nanoseconds(measured), nanoseconds(limit), loaded: loaded.map(nanoseconds))
    }

    /// `count` must reach `minimum`: events in a fixed span of wall time
    /// (ticks of a timer, round trips of a load), which a starved thread
    /// counts fewer of, or a latency that only a thread keeping its
    /// schedule drives up. On a busy machine `loaded`, by default a
    /// `loadedSlack`th of `minimum`.
    static func atLeast<N: BinaryInteger>(_ what: String, _ count: N, _ minimum: N, loaded: N? = nil) -> TimingBound {
        let loadedMinimum = loaded ?? (minimum + N(loadedSlack) - 1) / N(loadedSlack)
        return TimingBound(
            what: what, holds: count >= minimum, holdsWhenLoaded: count >= loadedMinimum,
            description: "\(what): \(count), bound \(minimum) (\(loadedMinimum) when busy)")
    }

    /// How much room a bound gets by default when the CPUs were busy during
    /// the trial.
    static let loadedSlack: Int64 = 10

    private static func millis(_ ns: Int64) -> String {
        let tenths = abs(ns) / 100_000
        return "\(ns < 0 ? "-" : "")\(tenths / 10).\(tenths % 10)"
    }

    private static func nanoseconds(_ d: Duration) -> Int64 {
        let (s, atto) = d.components
        return s &* 1_000_000_000 &+ atto / 1_000_000_000
    }
}

/// Runs `trial`, a timed scenario that returns its bounds, until they hold
/// or `attempts` runs have failed; then records the last run's failed
/// bounds, checked as written on a quiet machine and with their loaded
/// limits on a busy one (see the top of this file).
func expectTimely(
    attempts: Int = 3,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ trial: () throws -> [TimingBound]
) rethrows {
    precondition(attempts >= 1)
    for attempt in 1...attempts {
        let before = CPULoad.sample()
        let bounds = try trial()
        let load = CPULoad.since(before)
        let failed = bounds.filter { !$0.holds }
        if failed.isEmpty { return }
        guard attempt == attempts else { continue }
        let busy = load.isBusy
        for bound in failed where !busy || !bound.holdsWhenLoaded {
            Issue.record("\(bound); \(attempts) attempts, the last \(busy ? "busy" : "quiet"): \(load)",
                         sourceLocation: sourceLocation)
        }
    }
}

/// How crowded the CPUs were over a span of wall time.
///
/// The kernel's CPU pressure figure (/proc/pressure/cpu, "some") counts the
/// time during which at least one runnable task waited for a CPU: over the
/// span of a trial it says directly whether anything (our threads included)
/// had to queue. Without it (kernels before 4.20, or PSI turned off) the
/// one-minute load average stands in: at or above the CPU count, a runnable
/// thread often waits.
struct CPULoad: CustomStringConvertible {
    /// Time some task waited for a CPU, in µs, and when it was read (ns).
    let stalledMicros: Int64?
    let at: Int64
    /// Over a span: the share of it some task waited (0...1), if known.
    var stalledShare: Double?
    var loadAverage: Double

    /// A span is busy when some task waited for a CPU during a tenth of it
    /// or more.
    static let busyShare = 0.1

    var isBusy: Bool {
        if let stalledShare { return stalledShare >= Self.busyShare }
        return loadAverage >= Double(Self.cpuCount)
    }

    var description: String {
        let share = stalledShare.map { "CPU wait \(Int($0 * 100))% of the trial, " } ?? ""
        return "\(share)load \(loadAverage) on \(Self.cpuCount) CPUs"
    }

    static func sample() -> CPULoad {
        CPULoad(stalledMicros: pressureStallMicros(), at: now(), stalledShare: nil, loadAverage: loadAverage())
    }

    /// The load over the span since `start` (a `sample()`).
    static func since(_ start: CPULoad) -> CPULoad {
        var end = sample()
        let span = end.at - start.at
        if let a = start.stalledMicros, let b = end.stalledMicros, span > 0 {
            end.stalledShare = min(1, Double(b - a) * 1_000 / Double(span))
        }
        return end
    }

    static let cpuCount = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    private static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// The "some ... total=" field of /proc/pressure/cpu.
    private static func pressureStallMicros() -> Int64? {
        guard let line = firstLine(of: "/proc/pressure/cpu"), line.hasPrefix("some"),
              let total = line.split(separator: " ").first(where: { $0.hasPrefix("total=") })
        else { return nil }
        return Int64(total.dropFirst("total=".count))
    }

    /// The one-minute load average (/proc/loadavg), 0 if unreadable.
    static func loadAverage() -> Double {
        guard let line = firstLine(of: "/proc/loadavg"), let first = line.split(separator: " ").first
        else { return 0 }
        return Double(first) ?? 0
    }

    private static func firstLine(of path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 256)
        guard fgets(&buf, Int32(buf.count), f) != nil else { return nil }
        let bytes = buf.prefix { $0 != 0 && $0 != 0x0A }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Polls `condition` every millisecond (from an OS thread, not a green
/// thread) for up to `seconds`, or `TimingBound.loadedSlack` times as long
/// when the CPUs were busy meanwhile. Returns whether it came to hold.
func eventually(seconds: Double = 2, _ condition: () -> Bool) -> Bool {
    let start = CPULoad.sample()
    let span = Int64(seconds * 1e9)
    var deadline = start.at + span
    var extended = false
    while true {
        if condition() { return true }
        let load = CPULoad.since(start)
        if load.at >= deadline {
            guard !extended, load.isBusy else { return condition() }
            deadline = start.at + span &* TimingBound.loadedSlack
            extended = true
        }
        usleep(1_000)
    }
}
