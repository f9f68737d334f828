// The `generator` benchmark: the cost of one resume of a suspended
// generator (switch in, yield an Int, switch back), on a plain thread.
import CContext
import GreenThreads

/// Nanoseconds per generator resume: 10^7 resumes of a generator yielding
/// Ints (the harness repeats it and takes the median).
func generatorBenchmark() -> Double {
    let resumes = 10_000_000
    var samples: [Double] = []
    for _ in 0..<1 {
        let gen = Generator<Int> { yield in
            var i = 0
            while true {
                try yield(i)
                i &+= 1
            }
        }
        _ = gen.next()  // start: maps the stack and runs to the first yield
        var sink = 0
        let start = gt_now_ns()
        for _ in 0..<resumes { sink &+= gen.next().unsafelyUnwrapped }
        let elapsed = gt_now_ns() - start
        // Keeps the loop from being optimised away: the sum is known.
        precondition(sink == resumes &* (resumes &+ 1) / 2, "generator benchmark: wrong sum")
        samples.append(Double(elapsed) / Double(resumes))
    }
    samples.sort()
    return samples[samples.count / 2]
}
