import GreenThreads
import Synchronization
struct Boom: Error {}
let seen = Atomic<Int>(0)
let rt = Runtime(configuration: .init(workers: 1, unhandledErrorHandler: { id, error in
    print("handler", id, error)
    seen.add(1, ordering: .relaxed)
}))
try rt.run {
    for _ in 0..<3 { go { () throws -> Int in throw Boom() } }
    GreenThread.sleep(for: .milliseconds(20))
}
print("after run", seen.load(ordering: .relaxed), rt.stats)
rt.shutdown()
print("after shutdown", seen.load(ordering: .relaxed))
