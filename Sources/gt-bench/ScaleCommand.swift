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
            (the `run` rows plus speedup and efficiency); --plot draws speedup against workers \
            with scripts/plot-scale (python3; installs matplotlib on first use).
            """
    )

    static let defaultNames = ["fib", "skew", "pipeline", "spawn"]

    enum Statistic: String, ExpressibleByArgument, CaseIterable {
        case min, median
    }

    @Argument(help: "Benchmark names (see `gt-bench list`). Default: \(defaultNames.joined(separator: " ")).")
    var names: [String] = defaultNames

    @Option(help: "Comma-separated worker counts; 1 (the baseline) is added when missing.")
    var workers = "1,2,4,8"

    @Option(help: "Timed repeats per point (plus one warm-up run).")
    var repeats = 5

    @Option(help: "The repeat each point's time and speedup use: min (best of the repeats) or median.")
    var statistic: Statistic = .min

    @Flag(help: "Print one JSON object on stdout instead of a table.")
    var json = false

    @Option(help: "Also draw speedup against workers, one panel per benchmark, into this PNG file.")
    var plot: String?

    func validate() throws {
        guard repeats > 0 else { throw ValidationError("--repeats must be at least 1") }
        _ = try selected()
        _ = try workerCounts()
        if let plot, !plot.hasSuffix(".png") { throw ValidationError("--plot writes a PNG: give a FILE.png, got '\(plot)'") }
    }

    func selected() throws -> [Benchmark] {
        try names.map { name in
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
    }

    func workerCounts() throws -> [Int] {
        let counts = try parseWorkerCounts(workers)
        return counts.contains(1) ? counts : [1] + counts
    }

    func run() throws {
        let benches = try selected(), counts = try workerCounts()
        for b in benches {
            for w in counts { _ = try b.measure(w) }  // warm-up: stacks, queues and caches of every runtime
        }
        var samples: [String: [Int: [Sample]]] = [:]
        for round in 1...repeats {
            if !json { printError("scale: round \(round)/\(repeats)") }
            for b in benches {
                for w in counts { samples[b.name, default: [:]][w, default: []].append(try b.measure(w)) }
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
                results.append(m)
            }
        }
        let report = Report(results: results, fields: [("statistic", "\"\(statistic.rawValue)\"")])
        if json { print(report.json()) } else { printTable(results) }
        if let plot { try ScalePlot.draw(report: report, to: plot) }
    }

    private func pick(_ m: Measurement) -> Double {
        statistic == .min ? m.min : m.median
    }

    private func printTable(_ results: [Measurement]) {
        let cpus = Runtime.defaultWorkerCount
        let time = statistic == .min ? "best of \(repeats)" : "median of \(repeats)"
        print(pad("benchmark", 10) + pad("workers", 9) + pad("time (\(time))", 26) + pad("speedup", 9) + "efficiency")
        for m in results {
            let speedup = m.extras.first { $0.name == "speedup" }!.value
            let efficiency = m.extras.first { $0.name == "efficiency" }!.value
            print(pad(m.benchmark, 10) + pad("\(m.workers)", 9)
                  + pad("\(formatNumber(pick(m))) \(m.unit)", 26)
                  + pad(String(format2(speedup)), 9) + format2(efficiency)
                  + (m.workers > cpus ? "  (\(m.workers) workers on \(cpus) CPUs)" : ""))
        }
    }

    private func format2(_ v: Double) -> String {
        let s = "\((v * 100).rounded() / 100)"
        let decimals = s.split(separator: ".").last?.count ?? 0
        return s + String(repeating: "0", count: Swift.max(0, 2 - decimals))
    }
}
