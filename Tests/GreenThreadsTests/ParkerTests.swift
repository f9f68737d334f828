import CContext
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import GreenThreads

/// The futex parking word (parker.c) that idle workers and blocked OS
/// threads sleep on: a one-waiter word, EMPTY / NOTIFIED / SLEEPING.
@Suite("Parker")
struct ParkerTests {
    /// One parking word, shareable with the OS threads of a test.
    final class Word: @unchecked Sendable {
        let p: UnsafeMutablePointer<gt_parker>
        init() {
            p = .allocate(capacity: 1)
            gt_parker_init(p)
        }
        deinit { p.deallocate() }
    }

    @Test func unparkBeforeParkDoesNotBlock() {
        let w = Word()
        gt_parker_unpark(w.p)
        let start = gt_now_ns()
        #expect(gt_parker_park(w.p, -1))  // no timeout: would hang if lost
        #expect(gt_now_ns() - start < 1_000_000_000)
        // The notification was consumed: the next park times out.
        #expect(!gt_parker_park(w.p, 1_000_000))
    }

    /// Notifications do not accumulate: one word, one pending wake-up.
    @Test func twoUnparksWakeOnePark() {
        let w = Word()
        gt_parker_unpark(w.p)
        gt_parker_unpark(w.p)
        #expect(gt_parker_park(w.p, 0))
        #expect(!gt_parker_park(w.p, 1_000_000))
    }

    @Test func parkWithATimeoutReturnsFalseAfterIt() {
        let w = Word()
        let timeout: Int64 = 20_000_000
        let start = gt_now_ns()
        #expect(!gt_parker_park(w.p, timeout))
        let waited = gt_now_ns() - start
        #expect(waited >= timeout)
        #expect(waited < 5_000_000_000)
        #expect(!gt_parker_park(w.p, 0))  // a zero timeout does not sleep
    }

    @Test func tryTakesOnlyAPendingNotification() {
        let w = Word()
        #expect(!gt_parker_try(w.p))
        gt_parker_unpark(w.p)
        #expect(gt_parker_try(w.p))
        #expect(!gt_parker_try(w.p))
    }

    /// A thread parked without a timeout is woken by another thread's
    /// unpark, and sees what that thread wrote before it (the unpark
    /// releases, the park acquires).
    @Test func crossThreadUnparkWakesTheSleeper() {
        for _ in 0..<20 {
            let w = Word()
            let message = Atomic<Int>(0)
            let parked = Atomic<Bool>(false)
            let woke = Atomic<Bool>(false)
            let sawMessage = Atomic<Int>(-1)
            let t = startThread {
                parked.store(true, ordering: .relaxed)
                woke.store(gt_parker_park(w.p, -1), ordering: .relaxed)
                sawMessage.store(message.load(ordering: .relaxed), ordering: .relaxed)
            }
            while !parked.load(ordering: .relaxed) {}
            // Give it time to reach the futex sleep (either way it must wake).
            usleep(1_000)
            message.store(42, ordering: .relaxed)
            gt_parker_unpark(w.p)
            joinThread(t)
            let didWake = woke.load(ordering: .relaxed)
            #expect(didWake)
            #expect(sawMessage.load(ordering: .relaxed) == 42)
        }
    }

    /// A timed park cut short by an unpark reports the wake-up, not a
    /// timeout, and returns long before the timeout.
    @Test func unparkEndsATimedParkEarly() {
        let w = Word()
        let result = Atomic<Int>(-1)
        let elapsed = Atomic<Int64>(0)
        let t = startThread {
            let start = gt_now_ns()
            result.store(gt_parker_park(w.p, 10_000_000_000) ? 1 : 0, ordering: .relaxed)
            elapsed.store(gt_now_ns() - start, ordering: .relaxed)
        }
        usleep(5_000)
        gt_parker_unpark(w.p)
        joinThread(t)
        #expect(result.load(ordering: .relaxed) == 1)
        #expect(elapsed.load(ordering: .relaxed) < 5_000_000_000)
    }
}
