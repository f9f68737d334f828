// The `pipeline` benchmark: a channel pipeline whose stages do real work,
// so more workers can run stages side by side. It is the scaling twin of
// `chan`: `chan` times the hand-off alone (one producer, one consumer, no
// work, so a second worker can only add cross-core traffic); here each item
// costs ~1 µs of computation per stage, the shape of a parse → transform →
// encode chain, and the question is how well the scheduler keeps every
// stage of every pipeline busy when items move between workers.
//
// Four independent pipelines of four stages give sixteen busy green threads
// at once: enough parallel work for every worker count gt-bench scale runs
// by default (up to 8), while a single pipeline would cap the speedup at its
// stage count. Capacity 64 lets a stage run ahead of the next one, so a
// stage parks and wakes once per batch of items rather than once per item.
import GreenThreads

enum PipelineWorkload {
    static let pipelines = 4
    static let stages = 4
    static let items = 10_000  // per pipeline
    static let capacity = 64
    static let iterationsPerStage = 1_000  // xorshift steps: ~1 µs

    /// Nanoseconds per item per stage (the work unit a stage does).
    static func benchmark(workers: Int) throws -> Double {
        let rt = BenchRuntimes.runtime(workers: workers)
        let ns = try rt.run { () throws -> Double in
            var sums: [Int] = []
            var work: UInt64 = 0
            let ns = try elapsedNanos {
                var sinks: [JoinHandle<Int>] = []
                var sources: [JoinHandle<Void>] = []
                var stageHandles: [JoinHandle<UInt64>] = []
                for _ in 0..<pipelines {
                    let source = Channel<Int>(capacity: capacity)
                    sources.append(go { () throws in
                        for i in 0..<items { try source.send(i) }
                        source.close()
                    })
                    var input = source
                    for _ in 0..<stages {
                        let from = input, to = Channel<Int>(capacity: capacity)
                        stageHandles.append(go { () throws -> UInt64 in
                            var acc: UInt64 = 0
                            for v in from {
                                acc &+= busyWork(UInt64(v), iterations: iterationsPerStage)
                                try to.send(v)
                            }
                            to.close()
                            return acc
                        })
                        input = to
                    }
                    let last = input
                    sinks.append(go { () -> Int in
                        var sum = 0
                        for v in last { sum &+= v }
                        return sum
                    })
                }
                _ = try joinAll(sources)
                sums = try joinAll(sinks)
                work = try joinAll(stageHandles).reduce(0, &+)
            }
            let expected = items &* (items &- 1) / 2
            guard sums.allSatisfy({ $0 == expected }) else {
                throw BenchmarkFailure(description: "pipeline: an item was lost or duplicated (sums \(sums))")
            }
            guard work != 0 else { throw BenchmarkFailure(description: "pipeline: work checksum is zero") }
            return ns
        }
        return ns / Double(pipelines * stages * items)
    }
}
