import CContext
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import GreenThreads

/// Recursion that never ends on its own (`limit` is never reached), with a
/// frame the optimizer cannot drop.
@inline(never)
func recurseDeeply(_ depth: Int, limit: Int) -> Int {
    var frame = (depth, depth &+ 1, depth &+ 2, depth &+ 3, depth &+ 4, depth &+ 5, depth &+ 6, depth &+ 7)
    withUnsafeMutableBytes(of: &frame) { gt_compiler_barrier(); $0[0] ^= 1 }
    if depth == limit { return frame.0 }
    // Subtraction, not addition: an associative combination would let the
    // optimizer turn the recursion into a loop with an accumulator.
    return recurseDeeply(depth &+ 1, limit: limit) &- frame.1
}

/// A fault outside any guard region: a write to page zero.
private func writeThroughNull() -> Int {
    let p = UnsafeMutablePointer<Int>(bitPattern: 64)!
    gt_compiler_barrier()
    p.pointee = 1
    return p.pointee
}

/// A line on stderr, unbuffered (the child is about to die).
private func say(_ s: String) { gt_write_stderr(s + "\n") }

private func text(_ result: ExitTest.Result?) -> String {
    String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
}

/// The id a child printed as "spawned #ID".
private func spawnedID(in stderr: String) -> String? {
    guard let r = stderr.firstRange(of: "spawned #") else { return nil }
    return String(stderr[r.upperBound...].prefix { $0.isNumber })
}

@Suite("StackOverflow")
struct StackOverflowTests {
    @Test("a green thread's stack overflow names the thread and its stack size, then aborts")
    func overflowIsReported() async {
        let result = await #expect(processExitsWith: .signal(SIGABRT), observing: [\.standardErrorContent]) {
            let rt = Runtime(configuration: .init(workers: 1, stackSize: 64 * 1024))
            // The id is said before the thread may overflow.
            let gate = Channel<Int>(capacity: 1)
            let h = rt.spawn(name: "deep-recursion") { () -> Int in
                _ = try gate.receive()
                return recurseDeeply(0, limit: -1)
            }
            say("spawned #\(h.id.rawValue)")
            try? gate.send(1)
            _ = try? h.join()
        }
        let stderr = text(result)
        let id = spawnedID(in: stderr)
        #expect(id != nil)
        #expect(stderr.contains("green thread #\(id ?? "?") \"deep-recursion\" overflowed its 65536-byte stack"))
        #expect(stderr.contains("Runtime.Configuration.stackSize"))
    }

    @Test("an unnamed green thread's report leaves the name out")
    func unnamedOverflow() async {
        let result = await #expect(processExitsWith: .signal(SIGABRT), observing: [\.standardErrorContent]) {
            let rt = Runtime(configuration: .init(workers: 2, stackSize: 32 * 1024))
            let gate = Channel<Int>(capacity: 1)
            let h = rt.spawn { () -> Int in
                // Deep after a park and a yield: not on its first run.
                _ = try gate.receive()
                GreenThread.yield()
                return recurseDeeply(0, limit: -1)
            }
            say("spawned #\(h.id.rawValue)")
            try? gate.send(1)
            _ = try? h.join()
        }
        let stderr = text(result)
        #expect(stderr.contains("green thread #\(spawnedID(in: stderr) ?? "?") overflowed its 32768-byte stack"))
    }

    @Test("a coroutine's stack overflow is reported as a coroutine's")
    func coroutineOverflow() async {
        let result = await #expect(processExitsWith: .signal(SIGABRT), observing: [\.standardErrorContent]) {
            let rt = Runtime(workers: 1)
            _ = try? rt.run { () -> Int in
                let g = Generator<Int>(stackSize: 32 * 1024) { yield in try yield(recurseDeeply(0, limit: -1)) }
                return g.next() ?? 0
            }
        }
        #expect(text(result).contains("a coroutine overflowed its"))
    }

    @Test("a green thread that resumed a generator is still named when it overflows")
    func overflowAfterAGenerator() async {
        let result = await #expect(processExitsWith: .signal(SIGABRT), observing: [\.standardErrorContent]) {
            let rt = Runtime(configuration: .init(workers: 1, stackSize: 64 * 1024))
            _ = try? rt.run { () -> Int in
                let g = Generator<Int> { yield in try yield(1) }
                _ = g.next()
                return recurseDeeply(0, limit: -1)
            }
        }
        #expect(text(result).contains("green thread #"))
        #expect(text(result).contains("overflowed its 65536-byte stack"))
    }

    @Test("a fault outside any guard region stays a plain crash by its own signal")
    func otherFaultsAreUntouched() async {
        let result = await #expect(processExitsWith: .signal(SIGSEGV), observing: [\.standardErrorContent]) {
            let rt = Runtime(workers: 1)
            _ = try? rt.run { writeThroughNull() }
        }
        #expect(!text(result).contains("overflowed"))
    }

    @Test("a handler installed before the runtime still gets the faults that are not overflows")
    func previousHandlerIsChained() async {
        await #expect(processExitsWith: .exitCode(42)) {
            var sa = sigaction()
            sa.__sigaction_handler.sa_sigaction = { _, _, _ in _exit(42) }
            sa.sa_flags = SA_SIGINFO
            sigaction(SIGSEGV, &sa, nil)
            let rt = Runtime(workers: 1)
            _ = try? rt.run { writeThroughNull() }
        }
    }

    @Test("an overflow is still reported when an earlier handler exists")
    func overflowBeatsThePreviousHandler() async {
        let result = await #expect(processExitsWith: .signal(SIGABRT), observing: [\.standardErrorContent]) {
            var sa = sigaction()
            sa.__sigaction_handler.sa_sigaction = { _, _, _ in _exit(42) }
            sa.sa_flags = SA_SIGINFO | SA_ONSTACK
            sigaction(SIGSEGV, &sa, nil)
            let rt = Runtime(configuration: .init(workers: 1, stackSize: 32 * 1024))
            _ = try? rt.run { recurseDeeply(0, limit: -1) }
        }
        #expect(text(result).contains("overflowed its 32768-byte stack"))
    }
}
