// fibonacci-generator: the classic infinite Python generator,
//
//     def fib():
//         a, b = 0, 1
//         while True:
//             yield a
//             a, b = b, a + b
//
// as a GreenThreads `Generator`. The body is an endless loop; it runs only
// as far as the consumer asks, and when the consumer stops the abandoned
// generator is unwound (its `defer` runs) and its stack is recycled.
//
//     swift run fibonacci-generator [count]
import GreenThreads

let count = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 15

/// Fibonacci numbers, forever (until the next one would overflow `Int`).
func fibonacci() -> Generator<Int> {
    Generator { yield in
        var (a, b) = (0, 1)
        while true {
            try yield(a)
            let (next, overflow) = a.addingReportingOverflow(b)
            if overflow {
                try yield(b)
                return
            }
            (a, b) = (b, next)
        }
    }
}

print("first \(count):", Array(fibonacci().prefix(count)))

// Project Euler 2: the sum of the even Fibonacci numbers below four million.
// `prefix(while:)` stops pulling at the first number too large, abandoning
// the generator mid-loop.
let evenSum = fibonacci().prefix { $0 < 4_000_000 }.filter { $0 % 2 == 0 }.reduce(0, +)
print("sum of even terms below 4,000,000:", evenSum)

// Generators compose: zip two of them lazily.
for (i, (f, g)) in zip(fibonacci(), fibonacci().dropFirst()).prefix(5).enumerated() {
    print("ratio \(i + 1): \(g) / \(f) =", f == 0 ? "-" : String(Double(g) / Double(f)))
}

// Until Int overflows: how many Fibonacci numbers fit in 64 bits.
print("terms that fit in Int:", fibonacci().reduce(0) { n, _ in n + 1 })
