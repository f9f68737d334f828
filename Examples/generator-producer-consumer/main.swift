// generator-producer-consumer: the producer/consumer example of Python's
// generator tutorials, where the consumer is a coroutine driven by `send`:
//
//     def consumer():
//         r = ''
//         while True:
//             n = yield r
//             if not n:
//                 return
//             print('[CONSUMER] Consuming %s...' % n)
//             r = '200 OK'
//
//     def produce(c):
//         c.send(None)
//         for n in range(1, 6):
//             print('[PRODUCER] Producing %s...' % n)
//             r = c.send(n)
//             print('[PRODUCER] Consumer return: %s' % r)
//         c.close()
//
// No threads and no locks: producer and consumer take turns on one thread,
// each `send` switching to the consumer's stack and each `yield` back.
//
//     swift run generator-producer-consumer
import GreenThreads

/// Receives item numbers, acknowledges each one; 0 ends it, returning how
/// many it consumed.
let consumer = Coroutine<Int, String, Int> { yield in
    var reply = ""
    var consumed = 0
    defer { print("[CONSUMER] Closed after \(consumed) items.") }
    while true {
        let n = try yield(reply)
        if n == 0 { return consumed }
        print("[CONSUMER] Consuming \(n)...")
        consumed += 1
        reply = "200 OK"
    }
}

func produce(_ c: Coroutine<Int, String, Int>) throws {
    try c.start()  // Python's c.send(None): run to the first yield
    for n in 1...5 {
        print("[PRODUCER] Producing \(n)...")
        let reply = try c.send(n)
        print("[PRODUCER] Consumer return: \(reply.yieldedValue ?? "-")")
    }
    try c.close()
}

try produce(consumer)
print("consumer state: \(consumer.state)")

// A consumer can also end on its own and hand back a result.
let summer = Coroutine<Int, Int, Int> { yield in
    var total = 0
    while true {
        let n = try yield(total)
        if n == 0 { return total }
        total += n
    }
}
try summer.start()
for n in [3, 4, 5] { try summer.send(n) }
if case .returned(let total) = try summer.send(0) {
    print("summer returned \(total); state: \(summer.state)")
}
