import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// The netpoller on its own: a fresh `Poller` with pipes registered by
/// hand, polled from the test thread; its idle-worker sleep with a worker no
/// thread runs (DetachedCore); and one readiness wait through a 1-worker
/// runtime.
@Suite("Poller", .serialized)
struct PollerTests {
    private static func makePipe() throws -> (r: Int32, w: Int32) {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        return (fds[0], fds[1])
    }

    private static func events(_ events: PollEvents, _ n: Int) -> [gt_poll_event] {
        (0..<n).map { events.base[$0] }
    }

    /// Readiness of a registered fd is reported once per edge, under the
    /// tag the registration gave it; a deregistered fd reports nothing.
    @Test func registeredPipeReadinessIsReported() throws {
        let poller = Poller()
        defer { poller.close() }
        let p = try Self.makePipe()
        defer { close(p.r) }  // the writer's end is closed below
        let d = PollDescriptor(fd: p.r, ownsFD: false)
        let buffer = PollEvents.allocate()
        defer { buffer.deallocate() }

        let inUseBefore = poller.inUse.load(ordering: .relaxed)
        #expect(!inUseBefore)
        #expect(poller.register(d) == 0)
        let inUseAfter = poller.inUse.load(ordering: .relaxed)
        #expect(inUseAfter)
        #expect(poller.poll(into: buffer) == 0)  // an empty pipe: not readable

        var byte: UInt8 = 7
        #expect(write(p.w, &byte, 1) == 1)
        let n = poller.poll(into: buffer)
        #expect(n == 1)
        let first = Self.events(buffer, n)
        #expect(first.map(\.data) == [d.registrationTag])
        #expect(first.allSatisfy { $0.events & GT_EPOLLIN != 0 })
        // Edge-triggered: the same readiness is not reported again.
        #expect(poller.poll(into: buffer) == 0)

        // The writer's end closing is an edge too (hang-up).
        close(p.w)
        let m = poller.poll(into: buffer)
        #expect(m == 1)
        #expect(Self.events(buffer, m).allSatisfy { $0.data == d.registrationTag && $0.events & GT_EPOLLHUP != 0 })

        poller.deregister(d)
        #expect(poller.poll(into: buffer) == 0)
    }

    @Test func registeringAClosedFDOrOnAClosedPollerFails() throws {
        let poller = Poller()
        defer { poller.close() }
        let p = try Self.makePipe()
        close(p.r)
        close(p.w)
        #expect(poller.register(PollDescriptor(fd: p.r, ownsFD: false)) == -EBADF)
        poller.close()
        #expect(poller.isClosed)
        let q = try Self.makePipe()
        defer { close(q.r); close(q.w) }
        #expect(poller.register(PollDescriptor(fd: q.r, ownsFD: false)) == -ESHUTDOWN)
    }

    /// The idle worker's sleep in epoll_wait: a notification that came
    /// first means no sleep at all; otherwise it lasts until the timeout,
    /// or until an fd becomes ready.
    @Test func blockIdleEndsOnANotificationATimeoutOrReadiness() throws {
        let detached = DetachedCore()
        let w = detached.worker()
        let poller = Poller()
        defer { poller.close() }

        // Unparked first: the Dekker check after setting inPoll skips
        // epoll_wait and reports the notification.
        gt_parker_unpark(w.parker)
        var start = gt_now_ns()
        #expect(poller.blockIdle(worker: w, timeout: 10_000_000_000))
        #expect(gt_now_ns() - start < 5_000_000_000)
        let inPoll = w.inPoll.load(ordering: .relaxed)
        #expect(!inPoll)
        let blockerRole = poller.blockerRole.load(ordering: .relaxed)
        #expect(!blockerRole)

        // Nothing happens: the timeout ends it, not a notification.
        start = gt_now_ns()
        #expect(!poller.blockIdle(worker: w, timeout: 20_000_000))
        #expect(gt_now_ns() - start >= 20_000_000)

        // An fd becomes ready while it sleeps: the event ends the sleep.
        let p = try Self.makePipe()
        defer { close(p.r); close(p.w) }
        let d = PollDescriptor(fd: p.r, ownsFD: false)
        #expect(poller.register(d) == 0)
        let writer = p.w
        let t = startThread {
            usleep(20_000)
            var byte: UInt8 = 1
            _ = write(writer, &byte, 1)
        }
        start = gt_now_ns()
        #expect(!poller.blockIdle(worker: w, timeout: 10_000_000_000))
        let slept = gt_now_ns() - start
        joinThread(t)
        #expect(slept < 5_000_000_000)
        #expect(poller.lastPolled.load(ordering: .relaxed) >= start)
        poller.deregister(d)
    }

    /// Through a runtime: a green thread waiting for a pipe to become
    /// readable is woken by a write from a plain OS thread.
    @Test func aGreenThreadWaitingOnAPipeIsWokenByReadiness() throws {
        let rt = Runtime(configuration: .init(workers: 1))
        defer { rt.shutdown() }
        let p = try Self.makePipe()
        defer { close(p.r); close(p.w) }
        let (r, wfd) = p
        let poller = rt.core.poller
        let writer = startThread {
            // Write only once the green thread has registered the pipe (a
            // write before its first readiness check would let it return
            // without waiting, as a loaded machine can arrange); a bounded
            // wait, so a broken registration fails the test, not hangs it.
            let giveUp = gt_now_ns() + 10_000_000_000
            while !poller.inUse.load(ordering: .acquiring) && gt_now_ns() < giveUp { usleep(1_000) }
            usleep(5_000)
            var byte: UInt8 = 9
            _ = write(wfd, &byte, 1)
        }
        let got = try rt.run { () throws -> Int in
            try GreenThread.waitReadable(r, timeout: .seconds(10))
            var byte: UInt8 = 0
            return read(r, &byte, 1) == 1 ? Int(byte) : -1
        }
        joinThread(writer)
        #expect(got == 9)
        let inUse = poller.inUse.load(ordering: .relaxed)
        #expect(inUse, "the green thread never registered the pipe with the poller")
    }
}
