// generator-pipeline: David Beazley's coroutine pipeline ("A Curious Course
// on Coroutines and Concurrency", 2009), from Python to GreenThreads.
//
// A source pushes lines into a chain of coroutines, each of which receives
// values with `yield` and passes them on with `send`:
//
//     source ──▶ grep("python") ──▶ broadcast ──┬──▶ printer
//                                               └──▶ counter
//
// Python primes each coroutine with a `@coroutine` decorator that calls
// `next()` once; here `primed` does the same with `start()`. Closing the
// head closes the whole pipeline: each stage's pending `yield` throws
// CoroutineExit, and each stage closes its targets on the way out.
//
//     swift run generator-pipeline
import GreenThreads

/// A sink: a coroutine that only receives.
typealias Sink = Coroutine<String, Void, Void>

/// Makes a coroutine and runs it to its first `yield`, so it is ready for
/// `send` (Python's `@coroutine` decorator).
func primed(_ body: @escaping Sink.Body) -> Sink {
    let co = Sink(body)
    try! co.start()
    return co
}

/// Passes on the lines that contain `pattern`.
func grep(_ pattern: String, into target: Sink) -> Sink {
    primed { yield in
        defer { try? target.close() }
        while true {
            let line = try yield(())
            if line.contains(pattern) { try target.send(line) }
        }
    }
}

/// Sends every line to each of `targets`.
func broadcast(to targets: [Sink]) -> Sink {
    primed { yield in
        defer { for t in targets { try? t.close() } }
        while true {
            let line = try yield(())
            for t in targets { try t.send(line) }
        }
    }
}

/// Prints each line it receives.
func printer() -> Sink {
    primed { yield in
        while true { print("  matched: \(try yield(()))") }
    }
}

/// Counts what it receives and reports when the pipeline closes.
func counter(_ label: String) -> Sink {
    primed { yield in
        var n = 0
        defer { print("\(label): \(n) lines") }
        while true {
            _ = try yield(())
            n += 1
        }
    }
}

/// The data: a generator, so lines are produced only as the pipeline asks.
let source = Generator<String> { yield in
    let text = """
        Python generators can receive values with send.
        Greenlets switch explicitly between stacks.
        A python pipeline pushes data instead of pulling it.
        Go channels connect goroutines.
        python coroutines are primed with next() before the first send.
        """
    for line in text.split(separator: "\n") { try yield(String(line)) }
}

print("source -> grep(\"python\") -> broadcast -> [printer, counter]")
let pipeline = grep("python", into: broadcast(to: [printer(), counter("matched")]))
var fed = 0
for line in source {
    try pipeline.send(line)
    fed += 1
}
print("fed \(fed) lines; closing the pipeline")
try pipeline.close()
print("pipeline state: \(pipeline.state)")
