// `gt-bench scale`: how each workload's time falls as workers are added.
//
// A scaling curve is a ratio of two times (t1 / tN), so noise in either end
// moves the whole curve. Two choices follow from that:
//
//  - Repeats run in rounds across worker counts (round 1: 1, 2, 4, 8
//    workers; round 2: the same ...), never all repeats of one count in a
//    row, so a burst of outside load or a frequency change lands on every
//    count alike instead of bending the curve at one point.
//  - The speedup uses the best repeat by default: other work on the machine
//    only ever adds time to a run, so the minimum is the closest reading of
//    what the scheduler itself costs. `--statistic median` is there for
//    quiet machines and for comparing with the median tables of `run`.
//
// Worker counts beyond the CPU count are kept on purpose: they measure
// oversubscription (more workers than cores), where a scheduler that spins
// or migrates green threads carelessly loses against its own 2-worker time.
// Beside the workloads, `ceiling` times plain OS threads sharing a loop: the
// speedup the machine itself allows at that moment, the line the workload
// curves are read against (see CeilingBenchmark.swift).
//
// Every point reuses the workload of `gt-bench run` on the process-wide
// runtime of that worker count (BenchRuntimes), so `scale fib` at 2 workers
// and `run fib --workers 2` time the same code.
import ArgumentParser
import CContext
import GreenThreads

struct ScaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Run benchmarks over worker counts: time, speedup (t1/tN) and efficiency (speedup/N).",
        discussion: """
            Repeats run in rounds over the worker counts, so drift hits every count alike. \
            Beyond the CPU count a point measures oversubscription. --json prints one object \
            (the `run` rows plus speedup, efficiency and the scheduler's steals, worker parks \
            and switches per run); --plot draws speedup against workers \
            with scripts/plot-scale (python3; installs matplotlib on first use).
            """
    )

    static let defaultNames = ["fib", "skew", "pipeline", "spawn"]

    enum Statistic: String, ExpressibleByArgument, CaseIterable {
        case min, median
    }

    @Argument(help: "Benchmark names (see `gt-bench list`). Default: \(defaultNames.joined(separator: " ")).")
    var names: [String] = defaultNames

    @Option(help: "Comma-separated worker counts; 1 (the baseline) comes first, added when missing.")
    var workers = "1,2,4,8"

    @Option(help: "Timed repeats per point (plus one warm-up run).")
    var repeats = 5

    @Option(help: "The repeat each point's time and speedup use: min (best of the repeats) or median.")
    var statistic: Statistic = .min

    @Flag(help: "Print one JSON object on stdout instead of a table.")
    var json = false

    @Flag(inversion: .prefixedNo, help: "Also time `ceiling` (plain OS threads, no scheduler) at each count: the machine's own speedup, to read the curves against.")
    var ceiling = true

    @Flag(help: "Add the scheduler's activity per run to the table: steals, worker parks (sleeps for lack of work), switches. --json always has them.")
    var stats = false

    @Option(help: "Also draw speedup against workers, one panel per benchmark, into this PNG file.")
    var plot: String?

    @OptionGroup var placement: PlacementOptions

    func validate() throws {
        guard repeats > 0 else { throw ValidationError("--repeats must be at least 1") }
        _ = try selected()
        _ = try workerCounts()
        if let plot, !plot.hasSuffix(".png") { throw ValidationError("--plot writes a PNG: give a FILE.png, got '\(plot)'") }
    }

    func selected() throws -> [Benchmark] {
        let listed = try names.map { name in
            guard let b = registry.first(where: { $0.name == name }) else {
                throw ValidationError("unknown benchmark '\(name)'; known: \(registry.map(\.name).joined(separator: ", "))")
            }
            guard !b.singleThreaded else {
                throw ValidationError("'\(name)' runs on one thread whatever the worker count: nothing to scale")
            }
            guard b.rssItems == nil else {
                throw ValidationError("'\(name)' measures memory and holds its runtime's pools between rounds; use `gt-bench run \(name)`")
            }
            return b
        }
        guard ceiling, !names.contains(CeilingWorkload.name),
              let reference = registry.first(where: { $0.name == CeilingWorkload.name }) else {
            return listed
        }
        return listed + [reference]
    }

    func workerCounts() throws -> [Int] {
        var counts: [Int] = [1]
        for n in try parseWorkerCounts(workers) where !counts.contains(n) { counts.append(n) }
        return counts
    }

    func run() throws {
        BenchRuntimes.setPinning(placement.pin.pinWorkers)
        let benches = try selected(), counts = try workerCounts()
        for b in benches {
            for w in counts { _ = try b.measure(w) }  // warm-up: stacks, queues and caches of every runtime
        }
        var samples: [String: [Int: [Sample]]] = [:]
        var activity: [String: [Int: Activity]] = [:]
        for round in 1...repeats {
            if !json { printError("scale: round \(round)/\(repeats)") }
            for b in benches {
                for w in counts {
                    // `ceiling` runs plain OS threads: no runtime to read (nor to start for it).
                    let counted = b.name != CeilingWorkload.name
                    let before = counted ? BenchRuntimes.runtime(workers: w).stats : RuntimeStats()
                    samples[b.name, default: [:]][w, default: []].append(try b.measure(w))
                    if counted {
                        activity[b.name, default: [:]][w, default: Activity()].add(before, BenchRuntimes.runtime(workers: w).stats)
                    }
                }
            }
        }
        BenchRuntimes.shutdownAll()

        var results: [Measurement] = []
        for b in benches {
            let points = counts.map { w in
                Measurement(benchmark: b.name, workers: w, unit: b.unit, samples: samples[b.name]![w]!,
                            peakRSSBytes: Int(gt_peak_resident_bytes()))
            }
            let base = pick(points[counts.firstIndex(of: 1)!])
            for var m in points {
                let speedup = base / pick(m)
                m.extras += [("speedup", speedup), ("efficiency", speedup / Double(m.workers))]
                if let a = activity[b.name]?[m.workers] {
                    m.extras += [("steals", a.perRun(\.steals)), ("workerParks", a.perRun(\.parks)),
                                 ("switches", a.perRun(\.switches))]
                }
                results.append(m)
            }
        }
        let report = Report(results: results, fields: [("statistic", "\"\(statistic.rawValue)\"")])
        if json { print(report.json()) } else { printTable(results) }
        if let plot { try ScalePlot.draw(report: report, to: plot) }
    }

    /// What the scheduler did during the timed runs of one point, from
    /// the runtime's counters: the first thing to read when a curve bends
    /// (many worker parks: idle workers sleeping and being woken; steals
    /// near the spawn count: work moves for nearly every green thread).
    struct Activity {
        var runs = 0
        var steals = 0, parks = 0, switches = 0

        mutating func add(_ before: RuntimeStats, _ after: RuntimeStats) {
            runs += 1
            steals += after.steals - before.steals
            parks += after.parks - before.parks
            switches += after.switches - before.switches
        }

        func perRun(_ field: KeyPath<Activity, Int>) -> Double {
            Double(self[keyPath: field]) / Double(Swift.max(runs, 1))
        }
    }

    private func pick(_ m: Measurement) -> Double {
        statistic == .min ? m.min : m.median
    }

    private func printTable(_ results: [Measurement]) {
        let cpus = Runtime.defaultWorkerCount
        let time = statistic == .min ? "best of \(repeats)" : "median of \(repeats)"
        print(pad("benchmark", 10) + pad("workers", 9) + pad("time (\(time))", 26) + pad("speedup", 9)
              + pad("efficiency", 12) + (stats ? pad("steals/run", 12) + pad("worker parks/run", 18) + "switches/run" : ""))
        for m in results {
            let speedup = m.extras.first { $0.name == "speedup" }!.value
            let efficiency = m.extras.first { $0.name == "efficiency" }!.value
            print(pad(m.benchmark, 10) + pad("\(m.workers)", 9)
                  + pad("\(formatNumber(pick(m))) \(m.unit)", 26)
                  + pad(format2(speedup), 9) + pad(format2(efficiency), 12)
                  + (stats ? pad(extra(m, "steals"), 12) + pad(extra(m, "workerParks"), 18) + pad(extra(m, "switches"), 12) : "")
                  + (m.workers > cpus ? "  (\(m.workers) workers on \(cpus) CPUs)" : ""))
        }
    }

    private func extra(_ m: Measurement, _ name: String) -> String {
        m.extras.first { $0.name == name }.map { "\(Int($0.value.rounded()))" } ?? "-"
    }

    private func format2(_ v: Double) -> String {
        let s = "\((v * 100).rounded() / 100)"
        let decimals = s.split(separator: ".").last?.count ?? 0
        return s + String(repeating: "0", count: Swift.max(0, 2 - decimals))
    }
}
