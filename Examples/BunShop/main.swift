// BunShop: producer/consumer with a bounded channel.
//
// A cook bakes buns onto a tray that holds five; hungry eaters take them off
// as fast as they can eat. When the tray is full the cook waits (parks), when
// it is empty the eaters wait; nobody spins and no OS thread blocks. After
// the last bun the cook closes the tray, and each eater's `for bun in tray`
// loop ends once the tray is empty.
//
//     swift run BunShop [buns] [eaters]
import GreenThreads

struct Bun: Sendable {
    let number: Int
    let filling: String
}

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let bunCount = arguments.first ?? 30
let eaterCount = arguments.dropFirst().first ?? 3
let fillings = ["red bean", "custard", "pork", "lotus seed", "char siu"]

let runtime = Runtime()
let eaten = try runtime.run { () throws -> [Int] in
    let tray = Channel<Bun>(capacity: 5)

    let cook = go { () throws in
        for n in 1...bunCount {
            try GreenThread.sleep(for: .milliseconds(2))  // baking takes a moment
            try tray.send(Bun(number: n, filling: fillings[n % fillings.count]))
        }
        print("cook: all \(bunCount) buns baked, closing the tray")
        tray.close()
    }

    let eaters = (1...eaterCount).map { id in
        go { () -> Int in
            var count = 0
            for bun in tray {
                count += 1
                print("eater \(id): bun #\(bun.number) (\(bun.filling))")
                try GreenThread.sleep(for: .milliseconds(3 + 2 * id))  // chewing
            }
            return count
        }
    }

    try cook.join()
    return try joinAll(eaters)
}
runtime.shutdown()

for (i, n) in eaten.enumerated() { print("eater \(i + 1) ate \(n) buns") }
print("total: \(eaten.reduce(0, +)) of \(bunCount)")
