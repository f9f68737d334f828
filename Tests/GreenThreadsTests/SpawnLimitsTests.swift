import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// Waits (from a green thread) until every handle's thread is parked or
/// finished.
private func waitUntilSettled<T>(_ hs: [JoinHandle<T>]) throws {
    let start = gt_now_ns()
    while hs.contains(where: { !$0.isFinished && $0.fiber.state != .parked }) {
        guard gt_now_ns() - start < 30_000_000_000 else { throw TimedOut() }
        try GreenThread.sleep(for: .milliseconds(1))
    }
}

/// Waits (from an OS thread) until the runtime counts no live green thread.
private func waitUntilNoneLive(_ rt: Runtime) -> Bool {
    let start = gt_now_ns()
    while rt.stats.live != 0 || rt.core.liveThreads.load(ordering: .relaxed) != 0 {
        if gt_now_ns() - start > 10_000_000_000 { return false }
        usleep(1_000)
    }
    return true
}

/// Each outcome of joining `hs`: the value, or the error thrown.
private func outcomes<T>(_ hs: [JoinHandle<T>]) -> [Result<T, any Error>] {
    hs.map { h in Result { try h.join() } }
}

private func isTooMany(_ r: Result<some Any, any Error>) -> Bool {
    if case .failure(let e) = r, case RuntimeError.tooManyGreenThreads = e { return true }
    return false
}

private func isOutOfStacks(_ r: Result<some Any, any Error>) -> Bool {
    if case .failure(let e) = r, case RuntimeError.outOfStackMemory = e { return true }
    return false
}

/// Collects the errors the runtime reports for threads nobody joined.
private final class Reports: @unchecked Sendable {
    private let lock = SpinLock()
    private var errors: [any Error] = []
    func add(_ e: any Error) { lock.withLock { errors.append(e) } }
    var all: [any Error] { lock.withLock { errors } }
}

@Suite("SpawnLimits", .serialized)
struct SpawnLimitsTests {
    @Test("a spawn past maxGreenThreads throws from join, and the runtime goes on")
    func spawnPastTheLimitThrows() throws {
        let rt = Runtime(configuration: .init(workers: 2, maxGreenThreads: 10))
        defer { rt.shutdown() }
        let (first, extra, after) = try rt.run { () throws -> ([Result<Int, any Error>], [Result<Int, any Error>], Int) in
            // The main green thread is one of the ten.
            let gate = Channel<Int>(capacity: 0)
            let parked = (0..<9).map { i in go { () -> Int in _ = try gate.receive(); return i } }
            try waitUntilSettled(parked)
            let refused = (0..<3).map { i in go { i } }
            let extra = outcomes(refused)
            gate.close()
            let first = outcomes(parked)
            // Room again: a full set of new threads runs.
            let after = try joinAll((0..<9).map { i in go { i } }).reduce(0, +)
            return (first, extra, after)
        }
        #expect(first.map { (try? $0.get()) ?? -1 } == Array(0..<9))
        #expect(extra.count == 3 && extra.allSatisfy(isTooMany))
        #expect(after == 36)
        #expect(waitUntilNoneLive(rt))
    }

    @Test("spawns from outside the runtime respect the limit too")
    func outsideSpawnsAreCounted() throws {
        let rt = Runtime(configuration: .init(workers: 1, maxGreenThreads: 2))
        defer { rt.shutdown() }
        let gate = Channel<Int>(capacity: 0)
        let a = rt.spawn { try gate.receive() ?? 0 }
        let b = rt.spawn { try gate.receive() ?? 0 }
        let c = rt.spawn { 3 }
        #expect(isTooMany(Result { try c.join() }))
        #expect(String(describing: Result { try c.join() }).contains("maxGreenThreads"))
        gate.close()
        #expect(try a.join() == 0 && b.join() == 0)
        #expect(waitUntilNoneLive(rt))
        #expect(try rt.spawn { 4 }.join() == 4)
    }

    @Test("a refused spawn nobody joins is reported, not lost")
    func unjoinedRefusalIsReported() throws {
        let reports = Reports()
        let rt = Runtime(configuration: .init(
            workers: 1, unhandledErrorHandler: { _, e in reports.add(e) }, maxGreenThreads: 1))
        defer { rt.shutdown() }
        try rt.run { _ = go { 1 } }  // the handle is dropped at once
        #expect(reports.all.count == 1)
        #expect(reports.all.contains { if case RuntimeError.tooManyGreenThreads(let limit) = $0 { limit == 1 } else { false } })
    }

    @Test("a stack that cannot be mapped fails that spawn with the explanation, and the runtime goes on")
    func stackMapFailureFailsTheSpawn() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        // The main green thread itself: `run` rethrows its join's error.
        rt.core.injectedStackMapErrno.store(ENOMEM, ordering: .relaxed)
        var failure: (any Error)?
        do { _ = try rt.run { 1 } } catch { failure = error }
        rt.core.injectedStackMapErrno.store(0, ordering: .relaxed)
        guard case RuntimeError.outOfStackMemory(let text)? = failure else {
            Issue.record("run did not throw outOfStackMemory: \(String(describing: failure))")
            return
        }
        #expect(text.contains("could not map a 262144-byte green stack (errno 12, ENOMEM)"))
        #expect(text.contains(gt_stack_uses_guard_regions() ? "64 per mapping" : "vm.max_map_count is "))
        #expect(String(describing: failure!) == text)

        // Threads spawned by a green thread while no stack can be mapped:
        // each fails alone; those with a stack keep running.
        let core = rt.core
        let (early, failed, late) = try rt.run { () throws -> ([Result<Int, any Error>], [Result<Int, any Error>], [Result<Int, any Error>]) in
            let gate = Channel<Int>(capacity: 0)
            let early = (0..<4).map { i in go { () -> Int in _ = try gate.receive(); return i } }
            try waitUntilSettled(early)
            core.injectedStackMapErrno.store(ENOMEM, ordering: .relaxed)
            let doomed = (0..<20).map { i in go { () -> Int in _ = try gate.receive(); return i } }
            try waitUntilSettled(doomed)
            core.injectedStackMapErrno.store(0, ordering: .relaxed)
            let failed = outcomes(doomed)
            let late = (0..<4).map { i in go { () -> Int in _ = try gate.receive(); return 10 + i } }
            try waitUntilSettled(late)
            gate.close()
            return (outcomes(early), failed, outcomes(late))
        }
        #expect(early.map { (try? $0.get()) ?? -1 } == Array(0..<4))
        #expect(failed.count == 20 && failed.allSatisfy(isOutOfStacks))
        #expect(late.map { (try? $0.get()) ?? -1 } == Array(10..<14))
        #expect(waitUntilNoneLive(rt))
        #expect(rt.stats.spawned == rt.stats.completed)
    }

    @Test("with RLIMIT_AS exhausted by stacks, spawns fail with outOfStackMemory and the runtime keeps serving")
    func addressSpaceExhaustion() async {
        await #expect(processExitsWith: .success) {
            // 1 MiB stacks, so that a few hundred exhaust the headroom
            // while the heap (small objects, already-made arenas) still has
            // room.
            let rt = Runtime(configuration: .init(workers: 1, stackSize: 1 << 20))
            // Warm up first: the worker's malloc arena and the runtime's
            // own allocations are made before the limit.
            guard (try? rt.run { try joinAll((0..<64).map { i in go { i } }).count }) == 64 else { exit(10) }
            var limit = rlimit()
            getrlimit(Int32(RLIMIT_AS.rawValue), &limit)
            var lowered = limit
            lowered.rlim_cur = rlim_t(virtualMemorySize() + 256 << 20)
            guard setrlimit(Int32(RLIMIT_AS.rawValue), &lowered) == 0 else { exit(11) }
            let result = try? rt.run { () throws -> (ran: Int, refused: Int, other: Int, text: String) in
                let gate = Channel<Int>(capacity: 0)
                let hs = (0..<2_000).map { _ in go { () -> Int in _ = try gate.receive(); return 1 } }
                try waitUntilSettled(hs)
                gate.close()
                var ran = 0, refused = 0, other = 0
                var text = ""
                for h in hs {
                    do { ran += try h.join() } catch RuntimeError.outOfStackMemory(let t) { refused += 1; text = t } catch { other += 1 }
                }
                return (ran, refused, other, text)
            }
            guard let result else { exit(12) }
            guard result.ran > 0, result.refused > 0, result.other == 0, result.ran + result.refused == 2_000 else { exit(13) }
            guard result.text.contains("ENOMEM") else { exit(14) }
            // Still serving, limit and all: finished threads gave their stacks back.
            guard (try? rt.run { try joinAll((0..<100).map { i in go { i } }).reduce(0, +) }) == 4_950 else { exit(15) }
            let start = gt_now_ns()
            while rt.stats.live != 0 && gt_now_ns() - start < 10_000_000_000 { usleep(1_000) }
            guard rt.stats.live == 0 else { exit(16) }
            exit(0)
        }
    }

    /// The queued-connection case is NetFDLimitsTests'; here the accept is
    /// parked when the connection arrives, so the wake-up itself meets
    /// EMFILE. Edge-triggered readiness fires once: the connection stays
    /// queued, and the next accept must find it without a new edge.
    @Test("a parked accept woken into EMFILE throws tooManyOpenFiles, and accepts once fds are free")
    func parkedAcceptMeetsEMFILE() async {
        await #expect(processExitsWith: .success) {
            let rt = Runtime(workers: 1)
            let code = (try? rt.run { () throws -> Int32 in
                let listener = try TCPListener(host: "127.0.0.1", port: 0)
                let parked = go { () -> Int32 in
                    do {
                        _ = try listener.accept(timeout: .seconds(10))
                        return 20
                    } catch let e as NetError where e.kind == .tooManyOpenFiles && e.errno == EMFILE {
                        return 0
                    } catch {
                        return 21
                    }
                }
                try GreenThread.sleep(for: .milliseconds(50))
                // The client's socket exists before the limit drops; its
                // connect needs no new fd, the server's accept does.
                let client = gt_socket(AF_INET, Int32(SOCK_STREAM.rawValue))
                guard client >= 0 else { return 22 }
                var address = gt_sockaddr()
                guard gt_sockaddr_from_numeric("127.0.0.1", Int32(listener.port), &address) == 0 else { return 23 }
                var lowestFree: Int32 = 0
                while fcntl(lowestFree, F_GETFD) != -1 { lowestFree += 1 }
                let old = setFDLimit(UInt(lowestFree))
                let rc = gt_connect(client, &address)
                guard rc == 0 || rc == -EINPROGRESS else { return 24 }
                let parkedResult = try parked.join()
                var o = old
                setrlimit(Int32(RLIMIT_NOFILE.rawValue), &o)
                guard parkedResult == 0 else { return parkedResult }
                let conn = try listener.accept(timeout: .seconds(5))
                try conn.write([9])
                var byte: UInt8 = 0
                var revents: Int16 = 0
                guard gt_poll_one(client, Int16(GT_POLLIN), 5_000_000_000, &revents) > 0,
                      gt_read(client, &byte, 1) == 1, byte == 9 else { return 25 }
                _ = gt_close(client)
                return 0
            }) ?? 26
            exit(code)
        }
    }

    @Test("a generator, coroutine or greenlet whose stack cannot be mapped throws from its first resume")
    func coroutineStackMapFailureThrows() async {
        // In a child process: the coroutine stack pool is process-wide, and
        // other suites map coroutine stacks concurrently.
        await #expect(processExitsWith: .success) {
            func refused(_ body: () throws -> Void) -> Bool {
                do { try body() } catch RuntimeError.outOfStackMemory(let text) {
                    return text.contains("could not map") && text.contains("the coroutine stack pool")
                } catch { return false }
                return false
            }
            let pool = CoroutineStackPool.shared
            pool.injectedMapErrno.store(ENOMEM, ordering: .relaxed)
            // Larger than the pooled size: always mapped, never pooled.
            let big = 1 << 20
            let g = Generator<Int>(stackSize: big) { yield in try yield(7) }
            let co = Coroutine<Int, Int, Int>(stackSize: big) { yield in try yield(1) + 1 }
            let gl = Greenlet(stackSize: big) { (x: Any) in x }
            guard refused({ _ = try g.nextOrThrow() }) else { exit(1) }
            guard refused({ _ = try co.start() }) else { exit(2) }
            guard refused({ _ = try gl.switch(5) }) else { exit(3) }
            guard pool.inUse.load(ordering: .relaxed) == 0, pool.mapped.load(ordering: .relaxed) == 0 else { exit(4) }
            // Nothing started, nothing broken: with memory back, each runs.
            pool.injectedMapErrno.store(0, ordering: .relaxed)
            guard (try? g.nextOrThrow()) == 7 else { exit(5) }
            guard case .yielded(1)? = try? co.start(), case .returned(3)? = try? co.send(2) else { exit(6) }
            guard (try? gl.switch(5)) as? Int == 5 else { exit(7) }
            exit(0)
        }
    }
}

/// VmSize of this process, in bytes (what RLIMIT_AS limits): the first
/// field of /proc/self/statm, in pages.
private func virtualMemorySize() -> Int {
    guard let f = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 128)
    guard fgets(&line, Int32(line.count), f) != nil else { return 0 }
    let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let first = text.split(separator: " ").first, let pages = Int(first) else { return 0 }
    return pages * Int(gt_page_size())
}
