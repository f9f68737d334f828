import GreenThreads
let rt = Runtime(workers: 2)
let v = try rt.run { () -> Int in
    let hs = (0..<10).map { i in go { i * 2 } }
    return try joinAll(hs).reduce(0, +)
}
print(v, rt.stats)
