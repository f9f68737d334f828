import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// `Idle`'s bookkeeping on its own: a fresh `Idle` and workers no thread
/// runs (DetachedCore), so the counters and the parker words are exactly
/// what the calls made them. A worker was woken iff its parker holds a
/// notification (`gt_parker_try` consumes it).
@Suite("Idle")
struct IdleTests {
    private static func sleepers(_ n: Int, in detached: DetachedCore) -> [Worker] {
        (0..<n).map { detached.worker(index: $0) }
    }

    private static func notified(_ workers: [Worker]) -> [Int] {
        workers.indices.filter { gt_parker_try(workers[$0].parker) }
    }

    @Test func spinningIsCappedAtHalfTheBusyWorkers() {
        let idle = Idle(workerCount: 4, capacity: 4)
        #expect(idle.tryStartSpinning())   // 0 of 4 busy spin
        #expect(idle.tryStartSpinning())   // 1 of 4
        #expect(!idle.tryStartSpinning())  // 2 of 4: enough
        #expect(idle.spinning.load(ordering: .relaxed) == 2)
        #expect(!idle.stopSpinning())      // one spinner left
        #expect(idle.stopSpinning())       // the last one out
        #expect(idle.spinning.load(ordering: .relaxed) == 0)

        // Sleepers are not busy: with 2 of 4 asleep, one spinner is the cap.
        let detached = DetachedCore()
        let ws = Self.sleepers(2, in: detached)
        for w in ws { idle.addSleeper(w) }
        #expect(idle.tryStartSpinning())
        #expect(!idle.tryStartSpinning())
        #expect(idle.anyIdle)
    }

    @Test func aLoneWorkerNeverSpins() {
        let idle = Idle(workerCount: 1, capacity: 1)
        #expect(!idle.tryStartSpinning())
        #expect(idle.spinning.load(ordering: .relaxed) == 0)
        #expect(!idle.anyIdle)
    }

    /// `notifyWork` wakes the most recent sleeper, which inherits a
    /// spinning count; while anyone spins, further notifications wake
    /// nobody.
    @Test func notifyWakesTheWarmestSleeperAndHandsItTheSpinningCount() {
        let detached = DetachedCore()
        let ws = Self.sleepers(3, in: detached)
        let idle = Idle(workerCount: 3, capacity: 3)
        idle.notifyWork()  // nobody asleep: nothing to do
        #expect(idle.spinning.load(ordering: .relaxed) == 0)
        for w in ws { idle.addSleeper(w) }
        #expect(idle.sleeping.load(ordering: .relaxed) == 3)

        idle.notifyWork()
        #expect(Self.notified(ws) == [2])
        #expect(idle.sleeping.load(ordering: .relaxed) == 2)
        #expect(idle.spinning.load(ordering: .relaxed) == 1)

        idle.notifyWork()
        idle.notifyWorkAfterSeqCstPublish()
        #expect(Self.notified(ws) == [])
        #expect(idle.sleeping.load(ordering: .relaxed) == 2)

        // The woken worker found work and stopped spinning: the next
        // notification wakes the next sleeper.
        #expect(idle.stopSpinning())
        idle.notifyWorkAfterSeqCstPublish()
        #expect(Self.notified(ws) == [1])
        #expect(idle.sleeping.load(ordering: .relaxed) == 1)
        #expect(idle.spinning.load(ordering: .relaxed) == 1)

        // The woken worker is off the list: taking itself out fails (its
        // unpark and spinning count are on their way); a sleeper still on
        // the list takes itself out.
        #expect(!idle.removeSleeper(ws[1]))
        #expect(idle.removeSleeper(ws[0]))
        #expect(idle.sleeping.load(ordering: .relaxed) == 0)
        #expect(Self.notified(ws) == [])
    }

    /// A burst of concurrent notifications from many OS threads wakes one
    /// sleeper between them, not one each.
    @Test func concurrentNotificationsWakeAtMostOne() {
        let detached = DetachedCore()
        let ws = Self.sleepers(4, in: detached)
        let idle = Idle(workerCount: 4, capacity: 4)
        for w in ws { idle.addSleeper(w) }
        let go = Atomic<Bool>(false)
        let threads = (0..<8).map { _ in
            startThread {
                while !go.load(ordering: .acquiring) {}
                for _ in 0..<1_000 { idle.notifyWork() }
            }
        }
        go.store(true, ordering: .releasing)
        threads.forEach { joinThread($0) }
        #expect(Self.notified(ws).count == 1)
        #expect(idle.sleeping.load(ordering: .relaxed) == 3)
        #expect(idle.spinning.load(ordering: .relaxed) == 1)
    }

    /// A netpoll batch wakes one sleeper per surplus thread, less the
    /// workers already spinning, and never more than are asleep.
    @Test func surplusWakesOnePerThreadLessTheSpinners() {
        let detached = DetachedCore()
        let ws = Self.sleepers(4, in: detached)
        let idle = Idle(workerCount: 6, capacity: 4)
        for w in ws { idle.addSleeper(w) }

        idle.notifyWork(surplus: 2)
        #expect(Self.notified(ws).count == 2)
        #expect(idle.sleeping.load(ordering: .relaxed) == 2)
        #expect(idle.spinning.load(ordering: .relaxed) == 2)

        idle.notifyWork(surplus: 2)  // the 2 spinners cover it
        #expect(Self.notified(ws) == [])
        #expect(idle.sleeping.load(ordering: .relaxed) == 2)

        _ = idle.stopSpinning()
        idle.notifyWork(surplus: 3)  // 2 asleep, less 1 spinner: one more
        #expect(Self.notified(ws).count == 1)
        #expect(idle.sleeping.load(ordering: .relaxed) == 1)
        #expect(idle.spinning.load(ordering: .relaxed) == 2)

        for _ in 0..<2 { _ = idle.stopSpinning() }
        idle.notifyWork(surplus: 10)  // only one left asleep
        #expect(Self.notified(ws).count == 1)
        #expect(idle.sleeping.load(ordering: .relaxed) == 0)
        #expect(idle.spinning.load(ordering: .relaxed) == 1)
    }

    /// The sleeper blocked in epoll_wait keeps watching the fds while
    /// another sleeper can be woken instead.
    @Test func theSleeperInEpollWaitIsWokenLast() {
        let detached = DetachedCore()
        let ws = Self.sleepers(2, in: detached)
        let idle = Idle(workerCount: 2, capacity: 2)
        for w in ws { idle.addSleeper(w) }
        ws[1].inPoll.store(true, ordering: .relaxed)
        idle.notifyWork()
        #expect(Self.notified(ws) == [0])
        ws[1].inPoll.store(false, ordering: .relaxed)
        #expect(idle.removeSleeper(ws[1]))
    }

    /// `wake(worker)` hands that worker a spinning count; `wakeAll`
    /// (shutdown) wakes everyone and hands out none.
    @Test func wakeOneParticularAndWakeAll() {
        let detached = DetachedCore()
        let ws = Self.sleepers(3, in: detached)
        let idle = Idle(workerCount: 3, capacity: 3)
        for w in ws { idle.addSleeper(w) }
        #expect(idle.wake(ws[0]))
        #expect(!idle.wake(ws[0]))  // no longer asleep
        #expect(Self.notified(ws) == [0])
        #expect(idle.spinning.load(ordering: .relaxed) == 1)
        #expect(idle.sleeping.load(ordering: .relaxed) == 2)

        idle.wakeAll()
        #expect(Self.notified(ws) == [1, 2])
        #expect(idle.sleeping.load(ordering: .relaxed) == 0)
        #expect(idle.spinning.load(ordering: .relaxed) == 1)
    }

    /// A timer armed earlier than every sleeper's wake-up, while nobody
    /// spins, wakes a sleeper; a later one wakes nobody.
    @Test func anEarlierTimerWakesASleeper() {
        let detached = DetachedCore()
        let ws = Self.sleepers(1, in: detached)
        let idle = Idle(workerCount: 2, capacity: 1)
        idle.addSleeper(ws[0])
        idle.noteSleep(until: 1_000)
        idle.noteSleep(until: 5_000)  // keeps the earliest
        #expect(idle.sleepUntil.load(ordering: .relaxed) == 1_000)
        idle.timerAdded(deadline: 2_000)
        #expect(Self.notified(ws) == [])
        idle.timerAdded(deadline: 500)
        #expect(Self.notified(ws) == [0])
        #expect(idle.sleeping.load(ordering: .relaxed) == 0)
    }
}
