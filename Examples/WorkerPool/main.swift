// WorkerPool: fan-out / fan-in with channels, a WaitGroup and select.
//
// Jobs go out on one channel to a fixed pool of worker green threads
// (fan-out: whichever worker is free takes the next job); results come back
// on another channel (fan-in) to a collector. A WaitGroup closes the results
// channel once every worker has finished, which ends the collector's loop.
// The collector also shows `select` with a timeout: it prints a progress
// line whenever no result arrived for a while.
//
//     swift run WorkerPool [jobs] [workers]
import GreenThreads

struct Job: Sendable {
    let id: Int
    let n: Int
}

struct Outcome: Sendable {
    let job: Int
    let worker: Int
    let collatzSteps: Int
}

/// Some CPU work per job: the length of n's Collatz sequence.
func collatzSteps(_ start: Int) -> Int {
    var n = start, steps = 0
    while n != 1 {
        n = n % 2 == 0 ? n / 2 : 3 * n + 1
        steps += 1
    }
    return steps
}

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let jobCount = arguments.first ?? 1_000
let workerCount = arguments.dropFirst().first ?? 8

let runtime = Runtime()
let (outcomes, ticks) = try runtime.run { () throws -> ([Outcome], Int) in
    let jobs = Channel<Job>(capacity: 16)
    let results = Channel<Outcome>(capacity: 16)
    let workers = WaitGroup()

    // Fan-out: every worker pulls from the same jobs channel.
    for w in 1...workerCount {
        workers.go {
            for job in jobs {
                if job.id % 97 == 0 { try GreenThread.sleep(for: .milliseconds(20)) }  // an occasional slow job
                try results.send(Outcome(job: job.id, worker: w, collatzSteps: collatzSteps(job.n)))
            }
        }
    }
    // Close the results once every worker is done, so the collector ends.
    go { () throws in
        try workers.wait()
        results.close()
    }
    // Feed the jobs, then close: each worker's loop ends when they run out.
    go { () throws in
        for id in 0..<jobCount { try jobs.send(Job(id: id, n: 1_000_000 + id)) }
        jobs.close()
    }

    // Fan-in, with a progress line whenever results pause for 5 ms.
    var collected: [Outcome] = []
    var ticks = 0
    var open = true
    while open {
        try select {
            Case.receive(results) { outcome in
                if let outcome { collected.append(outcome) } else { open = false }
            }
            Case.timeout(.milliseconds(5)) {
                ticks += 1
                print("collector: \(collected.count) of \(jobCount) results so far")
            }
        }
    }
    return (collected, ticks)
}
runtime.shutdown()

var perWorker = [Int](repeating: 0, count: workerCount + 1)
for o in outcomes { perWorker[o.worker] += 1 }
let longest = outcomes.max { $0.collatzSteps < $1.collatzSteps }
print("\(outcomes.count) results from \(workerCount) workers (\(ticks) progress ticks)")
for w in 1...workerCount { print("  worker \(w): \(perWorker[w]) jobs") }
if let longest { print("longest Collatz sequence: job \(longest.job), \(longest.collatzSteps) steps") }
