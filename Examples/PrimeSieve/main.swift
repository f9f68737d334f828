// PrimeSieve: Go's concurrent prime sieve (from the Go tour and go/test/chan/sieve1.go).
//
// A generator green thread sends 2, 3, 4, ... down an unbuffered channel. The
// main green thread takes the first number, which is prime, prints it, and
// splices a filter green thread behind it that drops the multiples of that
// prime. Each prime adds one stage, so finding N primes builds a pipeline of
// N green threads passing values hand to hand.
//
// When the main thread has its N primes it returns; the generator and the
// filters are still parked in `send`. Shutting the runtime down cancels them:
// their parked `send` throws CancellationError and each one unwinds.
//
//     swift run PrimeSieve [count]
import GreenThreads

let count = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 100

/// Sends 2, 3, 4, ... to `out` until cancelled.
func generate(into out: Channel<Int>) throws {
    var i = 2
    while true {
        try out.send(i)
        i += 1
    }
}

/// Copies the values from `input` to `output`, dropping multiples of `prime`.
func filter(_ input: Channel<Int>, _ output: Channel<Int>, prime: Int) throws {
    for i in input where i % prime != 0 {
        try output.send(i)
    }
}

let runtime = Runtime()
let primes = try runtime.run { () -> [Int] in
    let numbers = Channel<Int>()
    go { try generate(into: numbers) }
    var ch = numbers
    var primes: [Int] = []
    for _ in 0..<count {
        guard let prime = try ch.receive() else { break }
        primes.append(prime)
        let next = Channel<Int>()
        let input = ch
        go { try filter(input, next, prime: prime) }
        ch = next
    }
    return primes
}
runtime.shutdown()  // cancels the parked pipeline

print(primes.map(String.init).joined(separator: " "))
