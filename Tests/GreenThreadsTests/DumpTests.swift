import CContext
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

/// Names and dumps: `go(name:)`, `GreenThread.name`, `Runtime.dump()`, the
/// names in deadlock reports, and `dumpSignal`.
@Suite("Dump", .serialized)
struct DumpTests {
    /// `rt.dump()` once it shows `needle`, or the last one after 10 s.
    private func dump(of rt: Runtime, showing needle: String) -> String {
        let deadline = gt_now_ns() + 10_000_000_000
        var text = rt.dump()
        while !text.contains(needle) && gt_now_ns() < deadline {
            _ = try? GreenThread.sleep(for: .milliseconds(5))
            text = rt.dump()
        }
        return text
    }

    @Test func dumpShowsParkedThreadNameWaitSiteAndCaller() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let ch = Channel<Int>()
        @Sendable @inline(never) func receiveInDumpTestUniqueFrame() throws -> Int? { try ch.receive() }
        let line = #line + 1
        let handle = rt.spawn(name: "dump receiver") { try receiveInDumpTestUniqueFrame() }
        let text = dump(of: rt, showing: "\"dump receiver\" [parked: receive from a channel")
        let paragraph = text.split(separator: "\n\n").first { $0.contains("\"dump receiver\"") }.map(String.init) ?? ""
        #expect(paragraph.hasPrefix("green thread #"), "\(text)")
        #expect(paragraph.contains("\"dump receiver\" [parked: receive from a channel, "), "\(text)")
        #expect(paragraph.contains("spawned at GreenThreadsTests/DumpTests.swift:\(line)"), "\(text)")
        // The caller's frame, named from the executable's symbol table (a
        // local function has no dynamic symbol).
        #expect(paragraph.contains("receiveInDumpTestUniqueFrame"), "\(text)")
        // And the runtime's own frames below it, innermost first.
        let frames = paragraph.split(separator: "\n").dropFirst().map(String.init)
        let caller = frames.firstIndex { $0.contains("receiveInDumpTestUniqueFrame") }
        let channel = frames.firstIndex { $0.contains("Channel") && $0.contains("receive") }
        if let caller, let channel { #expect(channel < caller, "\(text)") } else {
            Issue.record("frames missing:\n\(text)")
        }
        ch.close()
        #expect(try handle.join() == nil)
    }

    @Test func dumpShowsRunnableRunningAndCountsOnlyLiveThreads() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let text = try rt.run { () -> String in
            let ch = Channel<Int>()
            let sleeper = go(name: "sleeper") { try GreenThread.sleep(for: .seconds(60)) }
            let receiver = go(name: "receiver") { _ = try ch.receive() }
            // Both park before the main thread runs again (one worker).
            GreenThread.yield()
            GreenThread.yield()
            let text = rt.dump()
            sleeper.cancel()
            ch.close()
            #expect(throws: CancellationError.self) { try sleeper.join() }
            try receiver.join()
            return text
        }
        #expect(text.hasPrefix("GreenThreads dump: 3 green threads on 1 worker"), "\(text)")
        #expect(text.contains("\"sleeper\" [parked: sleep, "), "\(text)")
        #expect(text.contains("\"receiver\" [parked: receive from a channel, "), "\(text)")
        // The caller of dump() is the one running.
        #expect(text.contains("[running]:\n  spawned at GreenThreadsTests/DumpTests.swift:"), "\(text)")
        let after = rt.dump()
        #expect(after.hasPrefix("GreenThreads dump: 0 green threads"), "\(after)")
    }

    @Test func nameIsTheCallingThreadsOwn() throws {
        #expect(GreenThread.name == nil)
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let (named, unnamed, main, outside) = try rt.run { () throws -> (String?, String?, String?, String?) in
            let named = try go(name: "conn 42") { GreenThread.name }.join()
            let unnamed = try go { GreenThread.name }.join()
            return (named, unnamed, GreenThread.name, nil)
        }
        let spawned = try rt.spawn(name: "from outside") { GreenThread.name }.join()
        #expect(named == "conn 42")
        #expect(unnamed == nil)
        #expect(main == nil)
        #expect(outside == nil)
        #expect(spawned == "from outside")
        // A cached fiber reused by an unnamed spawn does not keep the name.
        let reused = try rt.run { () throws -> [String?] in
            var names: [String?] = []
            for i in 0..<20 {
                names.append(try go(name: i % 2 == 0 ? "even \(i)" : nil) { GreenThread.name }.join())
            }
            return names
        }
        #expect(reused == (0..<20).map { $0 % 2 == 0 ? "even \($0)" : nil })
    }

    @Test func deadlockReportNamesTheThreads() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        do {
            try rt.run {
                let ch = Channel<Int>()
                _ = try go(name: "stuck receiver") { try ch.receive() }.join()
            }
            Issue.record("run returned although every green thread is parked forever")
        } catch RuntimeError.deadlock(let report) {
            let entry = report.blocked.first { $0.name == "stuck receiver" }
            #expect(entry?.waitingFor == "receive from a channel")
            #expect(report.blocked.contains { $0.name == nil && $0.waitingFor.hasPrefix("join of green thread") })
            #expect(report.description.contains("\"stuck receiver\" waits on receive from a channel"), "\(report)")
        }
    }

    @Test func durationsReadLikeGos() {
        #expect(RuntimeCore.duration(nanos: 3_000_000) == "3 ms")
        #expect(RuntimeCore.duration(nanos: 1_250_000_000) == "1.2 s")
        #expect(RuntimeCore.duration(nanos: 61e9) == "1 minute")
        #expect(RuntimeCore.duration(nanos: 185e9) == "3 minutes")
        #expect(RuntimeCore.duration(nanos: -5) == "0 ms")
    }

    @Test func dumpSignalRestoresThePreviousActionAtShutdown() throws {
        let signal = SIGUSR2
        var mine = sigaction()
        mine.__sigaction_handler.sa_handler = SIG_IGN
        var saved = sigaction()
        sigaction(signal, &mine, &saved)
        defer { sigaction(signal, &saved, nil) }
        func current() -> sigaction {
            var now = sigaction()
            sigaction(signal, nil, &now)
            return now
        }
        let rt = Runtime(configuration: .init(workers: 1, dumpSignal: signal))
        #expect(unsafeBitCast(current().__sigaction_handler.sa_handler, to: Int.self)
            != unsafeBitCast(SIG_IGN, to: Int.self))
        #expect(current().sa_flags & SA_SIGINFO != 0)
        rt.shutdown()
        #expect(unsafeBitCast(current().__sigaction_handler.sa_handler, to: Int.self)
            == unsafeBitCast(SIG_IGN, to: Int.self))
    }

    /// The child of `dumpSignalWritesTheDumpToStderr`: a runtime listening
    /// for SIGQUIT, one named thread parked on a channel, "ready" on stderr,
    /// then waiting to be killed. Does nothing unless run as that child.
    @Test func dumpSignalChild() throws {
        guard Environment.value("GT_DUMP_SIGNAL_CHILD") != nil else { return }
        let rt = Runtime(configuration: .init(workers: 2, dumpSignal: SIGQUIT))
        defer { rt.shutdown() }
        let ch = Channel<Int>()
        // Not a tail call (the barrier comes after), so that its frame is on
        // the stack for the dump to show in optimized builds too.
        @Sendable @inline(never) func parkForTheSignalDump() throws -> Int? {
            let v = try ch.receive()
            gt_compiler_barrier()
            return v
        }
        let parked = rt.spawn(name: "signal sleeper") { try parkForTheSignalDump() }
        _ = dump(of: rt, showing: "\"signal sleeper\" [parked")
        gt_write_stderr("ready\n")
        var ts = timespec(tv_sec: 30, tv_nsec: 0)
        nanosleep(&ts, nil)
        ch.close()
        #expect(try parked.join() == nil)
    }

    @Test func dumpSignalWritesTheDumpToStderr() throws {
        let child = try ChildProcess(test: "dumpSignalChild", environment: ["GT_DUMP_SIGNAL_CHILD=1"])
        child.read(until: "ready\n")
        #expect(child.output.contains("ready\n"))
        kill(child.pid, SIGQUIT)
        child.read(until: "parkForTheSignalDump")
        child.read(until: "spawned at GreenThreadsTests/DumpTests.swift:")
        kill(child.pid, SIGKILL)
        let status = child.wait()
        // Killed by our SIGKILL: the SIGQUIT asked for a dump, it did not
        // end the process.
        #expect(status & 0x7f == SIGKILL, "the child ended otherwise (status \(status)):\n\(child.output)")
        let output = child.output
        #expect(output.contains("GreenThreads dump: "), "\(output)")
        #expect(output.contains("\"signal sleeper\" [parked: receive from a channel, "), "\(output)")
        #expect(output.contains("parkForTheSignalDump"), "\(output)")
    }

    /// The child of `unhandledErrorLineNamesTheThread`: a named thread that
    /// throws, never joined, with the default report on stderr.
    @Test func unhandledErrorChild() throws {
        guard Environment.value("GT_UNHANDLED_ERROR_CHILD") != nil else { return }
        let rt = Runtime(workers: 1)
        try rt.run {
            go(name: "failing one") { () throws -> Int in throw Boom(code: 17) }
            try GreenThread.sleep(for: .milliseconds(20))
        }
        rt.shutdown()
        #expect(rt.stats.live == 0)
    }

    @Test func unhandledErrorLineNamesTheThread() throws {
        let child = try ChildProcess(test: "unhandledErrorChild", environment: ["GT_UNHANDLED_ERROR_CHILD=1"])
        child.read(until: "never joined")
        let status = child.wait()
        #expect(status == 0, "\(child.output)")
        #expect(child.output.contains("\"failing one\" failed and was never joined: Boom(code: 17)"), "\(child.output)")
    }
}
