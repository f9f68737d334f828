// SimPy-style discrete-event simulation on a virtual clock: electric cars
// share a charging station (a resource with two chargers), and a year of
// traffic runs in milliseconds. The same seed prints the same log.
//
//     swift run ChargingStation [seed] [days]
import GreenThreads

let arguments = CommandLine.arguments
let seed = arguments.count > 1 ? UInt64(arguments[1]) ?? 1 : 1
let days = arguments.count > 2 ? Int(arguments[2]) ?? 365 : 365

/// A resource with `capacity` identical slots, like simpy.Resource: a
/// buffered channel holding one token per free slot.
struct Resource: Sendable {
    let tokens: Channel<Int>
    init(capacity: Int) throws {
        tokens = Channel(capacity: capacity)
        for slot in 0..<capacity { try tokens.send(slot) }
    }
    func request() throws -> Int { try tokens.receive()! }
    func release(_ slot: Int) throws { try tokens.send(slot) }
}

func stamp(_ d: Duration) -> String {
    let minutes = d.components.seconds / 60
    let day = minutes / (24 * 60), hh = minutes / 60 % 24, mm = minutes % 60
    return "day \(day) \(hh < 10 ? "0" : "")\(hh):\(mm < 10 ? "0" : "")\(mm)"
}

let rt = Runtime(configuration: .init(workers: 1, clock: .virtual, seed: seed))
let (served, waitedMinutes, lines) = try rt.run { () throws -> (Int, Int64, [String]) in
    var served = 0
    let station = try Resource(capacity: 2)
    let log = Channel<String>(capacity: 1 << 16)
    let waited = Channel<Int64>(capacity: 1 << 16)
    var cars: [JoinHandle<Void>] = []
    // The source process, as in SimPy: sleep until the next arrival, then
    // start that car's process. Gaps of 1 or 20 minutes are picked by the
    // seeded scheduler: a select over two ready channels takes one at random.
    let short = Channel<Int>(capacity: 1), long = Channel<Int>(capacity: 1)
    let horizon = Duration.seconds(Int64(days) * 24 * 3600)
    var car = 0
    while rt.now < horizon {
        try short.send(1)
        try long.send(20)
        let gap = try select {
            Case.receive(short) { $0! }
            Case.receive(long) { $0! }
        }
        _ = short.tryReceive()
        _ = long.tryReceive()
        try GreenThread.sleep(for: .seconds(60 * gap))
        let id = car
        cars.append(go { () throws in
            let arrived = rt.now
            let charger = try station.request()
            try waited.send((rt.now - arrived).components.seconds / 60)
            if id < 5 { try log.send("\(stamp(rt.now)) car \(id) charges at charger \(charger)") }
            try GreenThread.sleep(for: .seconds(60 * (charger == 0 ? 12 : 18)))
            if id < 5 { try log.send("\(stamp(rt.now)) car \(id) leaves") }
            try station.release(charger)
        })
        car += 1
        if cars.count >= 1024 {  // keep the handle list short
            try joinAll(Array(cars.prefix(512)))
            cars.removeFirst(512)
        }
    }
    served = car
    try joinAll(cars)
    log.close()
    waited.close()
    let waits = Array(waited)
    return (served, waits.reduce(0, +), Array(log))
}
for line in lines { print(line) }
print("seed \(seed): \(served) cars over \(days) days, mean wait \(served > 0 ? waitedMinutes / Int64(served) : 0) min, simulated \(stamp(rt.now))")
rt.shutdown()
