import ArgumentParser
import CContext
import GreenThreads
#if canImport(Glibc)
import Glibc
#endif

/// Every benchmark gt-bench knows, in listing order.
let registry: [Benchmark] = CoreBenchmarks.all + ChannelBenchmarks.all + [
    Benchmark(name: "pipeline", unit: "ns/item",
              summary: "4 channel pipelines (capacity 64) of 4 stages, ~1 us of work per item per stage, 10^4 items each (ns per item per stage)",
              measure: PipelineWorkload.benchmark),
    Benchmark(name: CeilingWorkload.name, unit: "ms",
              summary: "N plain OS threads sharing 10^8 xorshift steps, no green threads: the machine's own speedup for N threads",
              measure: CeilingWorkload.benchmark),
    Benchmark(name: "generator", unit: "ns/resume",
              summary: "resume a suspended generator that yields an Int, 10^7 times",
              singleThreaded: true, measure: { _ in generatorBenchmark() }),
    Benchmark(name: "timers", unit: "ns/sleeper",
              summary: "10^6 green threads each sleeping 1 s, joined by a WaitGroup (overhead beyond the 1 s; + peak RSS per sleeper asleep at once)",
              rssItems: { TimerWorkload.peakAsleep.load(ordering: .relaxed) }, measure: timersBenchmark),
] + TimerStartStopBenchmarks.all + [
    Benchmark(name: "parkmany", unit: "ns/thread",
              summary: "10^6 green threads parked at once on one channel, woken by close (spawn+park+wake+exit per thread; + peak RSS per parked thread, target <= 6 KiB)",
              rssItems: { ParkManyWorkload.threads }, rssTargetPerItem: ParkManyWorkload.rssTargetPerThread,
              measure: parkManyBenchmark),
    Benchmark(name: "await-bridge", unit: "ns/await",
              summary: "a green thread's GreenThread.await of an async function that returns at once, beside a Task's await Task { }.value (ratio target <= 2); Task<->green ping-pong through channels beside an AsyncStream ping-pong between two Tasks (ratio target <= 1)",
              measureSample: AwaitBridgeWorkload.benchmark),
] + DeadlineBenchmark.all + EchoBenchmark.all

@main
struct GTBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gt-bench",
        abstract: "GreenThreads benchmarks: the same workloads as the Go, Boost.Fiber and Swift concurrency peers.",
        subcommands: [List.self, Run.self, ScaleCommand.self, LoadGenCommand.self, StressCommand.self]
    )

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every benchmark, one per line.")

        func run() {
            let width = registry.map(\.name.count).max() ?? 0
            for b in registry {
                print(pad(b.name, width) + "  [\(b.unit)]  \(b.summary)")
            }
        }
    }

    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run benchmarks: a table, or JSON with --json.")

        @Argument(help: "Benchmark names (see `gt-bench list`), or `all`.")
        var names: [String] = ["all"]

        @Option(help: "Comma-separated worker counts, e.g. 1,2. Default: 1 and every CPU.")
        var workers: String?

        @Option(help: "Timed repeats per point; the median is reported.")
        var repeats: Int = 5

        @Flag(help: ArgumentHelp(
            "No warm-up run: the first timed run meets fresh stacks, heap and page tables.",
            discussion: "Run one benchmark at one worker count with --repeats 1 per process for a cold start as a program's first burst sees it; the peers' COLD=1 does the same."))
        var cold = false

        @Flag(help: "Print one JSON object on stdout instead of a table.")
        var json = false

        @OptionGroup var placement: PlacementOptions

        func validate() throws {
            guard repeats > 0 else { throw ValidationError("--repeats must be at least 1") }
            _ = try selected()
            _ = try workerCounts()
        }

        func selected() throws -> [Benchmark] {
            if names == ["all"] { return registry }
            return try names.map { name in
                guard let b = registry.first(where: { $0.name == name }) else {
                    throw ValidationError("unknown benchmark '\(name)'; known: \(registry.map(\.name).joined(separator: ", "))")
                }
                return b
            }
        }

        func workerCounts() throws -> [Int] {
            guard let workers else {
                let n = Runtime.defaultWorkerCount
                return n > 1 ? [1, n] : [1]
            }
            return try parseWorkerCounts(workers)
        }

        func run() throws {
            BenchRuntimes.setPinning(placement.pin.pinWorkers)
            var results: [Measurement] = []
            for b in try selected() {
                for w in b.singleThreaded ? [1] : try workerCounts() {
                    if !cold { _ = try b.measure(w) }  // warm-up: page in stacks, code and caches
                    var samples: [Sample] = []
                    for _ in 0..<repeats { samples.append(try b.measure(w)) }
                    let m = Measurement(benchmark: b.name, workers: w, unit: b.unit, samples: samples,
                                        peakRSSBytes: Int(gt_peak_resident_bytes()), rssItems: b.rssItems?(),
                                        rssTargetPerItem: b.rssTargetPerItem)
                    results.append(m)
                    if b.rssItems != nil { BenchRuntimes.shutdown(workers: w) }
                    if !json { printRow(m) }
                }
            }
            BenchRuntimes.shutdownAll()
            if json { print(Report(results: results).json()) }
        }

        private func printRow(_ m: Measurement) {
            func f(_ v: Double) -> String { formatNumber(v) }
            print("\(pad(m.benchmark, 10)) workers=\(m.workers)  "
                  + "median \(f(m.median)) \(m.unit)  (min \(f(m.min)), max \(f(m.max)), n=\(m.samples.count))  "
                  + "peak RSS \(m.peakRSSBytes / 1_048_576) MiB"
                  + m.extras.map { "  \($0.name) \(f($0.value))" }.joined()
                  + (m.bytesPerItem.map { " (\(Int($0)) B per item, \(m.rssItems!) items at once)" } ?? "")
                  + (m.rssTargetMet.map { " target <= \(m.rssTargetPerItem!) B per item: \($0 ? "met" : "MISSED")" } ?? ""))
        }
    }
}

/// `--workers 1,2,4`: positive integers separated by commas, in the order given.
func parseWorkerCounts(_ list: String) throws -> [Int] {
    try list.split(separator: ",").map { part in
        guard let n = Int(part.filter { $0 != " " }), n > 0 else {
            throw ValidationError("--workers takes positive integers separated by commas, got '\(part)'")
        }
        return n
    }
}

/// A progress line on stderr, so stdout stays the table or the JSON.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

func pad(_ s: String, _ width: Int) -> String {
    s + String(repeating: " ", count: max(0, width - s.count))
}

func formatNumber(_ v: Double) -> String {
    let scaled = (v * 100).rounded() / 100
    return "\(scaled)"
}
