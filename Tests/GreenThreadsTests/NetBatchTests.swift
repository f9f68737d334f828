import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

extension NetSuites {
/// A netpoll batch is handed out whole: many fds become ready at once while
/// the workers sleep (one of them in epoll_wait), the polling worker queues
/// every readied thread and wakes idle workers for the surplus. Nothing may
/// be lost or run twice, whichever worker polls and however many it wakes.
@Suite("NetBatch")
struct NetBatchTests {
    @Test(arguments: [1, 2, 3, 4])
    func manyFDsReadyAtOnceWakeEveryWaiterOnce(seed: UInt64) throws {
        let waiters = 48
        let rt = Runtime(configuration: .init(workers: 4, seed: seed))
        defer { rt.shutdown() }
        var pipes: [(r: Int32, w: Int32)] = []
        for _ in 0..<waiters {
            var fds: [Int32] = [0, 0]
            try #require(pipe(&fds) == 0)
            pipes.append((fds[0], fds[1]))
        }
        defer { for p in pipes { close(p.r); close(p.w) } }
        let snapshot = pipes
        let rounds = try rt.run { () throws -> [Int] in
            var mix = seed &* 0x9E37_79B9_7F4A_7C15
            func next(_ n: UInt64) -> UInt64 { mix = mix &* 6364136223846793005 &+ 1442695040888963407; return (mix >> 33) % n }
            var woken: [Int] = []
            for _ in 0..<25 {
                let handles = snapshot.map { p in go { () throws -> Int in
                    try GreenThread.waitReadable(p.r, timeout: .seconds(10))
                    var byte: UInt8 = 0
                    return read(p.r, &byte, 1)
                } }
                // From an OS thread, after a random pause: the workers are
                // spinning, asleep, or one is blocked in epoll_wait.
                let pause = UInt32(next(3000))
                GreenThread.blocking {
                    usleep(pause)
                    var byte: UInt8 = 1
                    for p in snapshot { _ = write(p.w, &byte, 1) }
                }
                // Each waiter read its own byte: woken exactly once.
                woken.append(try handles.reduce(0) { $0 + (try $1.join() == 1 ? 1 : 0) })
            }
            return woken
        }
        #expect(rounds == Array(repeating: waiters, count: 25))
    }
}
}
