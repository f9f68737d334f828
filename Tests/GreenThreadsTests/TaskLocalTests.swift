import CContext
import Synchronization
import Testing
@testable import GreenThreads

/// `TaskLocal.withValue` outside an async task binds on a per-OS-thread
/// list. These tests park, yield and migrate inside bindings and check
/// that each green thread (and each generator) sees only its own.
@Suite("Task-locals follow the green thread")
struct TaskLocalTests {
    enum Probe {
        @TaskLocal static var tag: Int = 0
        @TaskLocal static var name: String = "unbound"
    }

    @Test func attachesOnThisRuntime() throws {
        // The carrying is silent when the slot cannot be found; this pins
        // down that it was found on the Swift runtime the tests run with.
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let attached = try rt.run { gt_task_locals_attach_thread() }
        #expect(attached)
    }

    @Test func parkedBindingIsNotSeenByTheWorkersNextThread() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        let seen = try rt.run { () throws -> [String] in
            let gate = Channel<Int>(capacity: 0)
            let a = go { () throws -> [String] in
                try Probe.$name.withValue("A") { () throws -> [String] in
                    let before = Probe.name
                    _ = try gate.receive()  // parks with the binding open
                    return [before, Probe.name]
                }
            }
            let b = go { () throws -> [String] in
                let outside = Probe.name  // runs while A is parked, same worker
                let inside = Probe.$name.withValue("B") { () -> String in
                    GreenThread.yield()
                    return Probe.name
                }
                try gate.send(1)
                return [outside, inside, Probe.name]
            }
            return try a.join() + b.join()
        }
        #expect(seen == ["A", "A", "unbound", "B", "unbound"])
    }

    @Test func nestedBindingsSurviveMigrationRandomized() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        for round in 0..<5 {
            let bad = try rt.run { () throws -> Int in
                let hs = (0..<200).map { i in
                    go { () -> Int in
                        var rng = FastRandom(seed: UInt64(round * 1000 + i + 1))
                        var failures = 0
                        Probe.$tag.withValue(i) {
                            for step in 0..<20 {
                                Probe.$name.withValue("\(i)/\(step)") {
                                    if rng.next() % 4 == 0 {
                                        _ = try? GreenThread.sleep(for: .microseconds(Int64(rng.next() % 50)))
                                    } else {
                                        GreenThread.yield()
                                    }
                                    if Probe.tag != i || Probe.name != "\(i)/\(step)" { failures += 1 }
                                }
                                if Probe.name != "unbound" { failures += 1 }
                            }
                        }
                        if Probe.tag != 0 { failures += 1 }
                        return failures
                    }
                }
                return try joinAll(hs).reduce(0, +)
            }
            #expect(bad == 0)
        }
    }

    @Test func aFreshGreenThreadStartsUnbound() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let seen = try rt.run { () throws -> [Int] in
            try Probe.$tag.withValue(7) { () throws -> [Int] in
                let child = go { Probe.tag }
                return [Probe.tag, try child.join(), Probe.tag]
            }
        }
        #expect(seen == [7, 0, 7])
    }

    @Test func generatorBodyAndCallerKeepTheirOwnBindings() throws {
        // On a plain thread (the test's) and inside a green thread.
        @Sendable func drive() -> [String] {
            var seen: [String] = []
            let gen = Generator<String> { yield in
                try yield("body sees " + Probe.name)
                try Probe.$name.withValue("body") {
                    try yield("body sees " + Probe.name)
                    try yield("body sees " + Probe.name)
                }
                try yield("body sees " + Probe.name)
            }
            Probe.$name.withValue("caller") {
                while let s = gen.next() {
                    seen.append(s)
                    seen.append("caller sees " + Probe.name)
                }
            }
            seen.append("after: " + Probe.name)
            return seen
        }
        let expected = [
            "body sees unbound", "caller sees caller",
            "body sees body", "caller sees caller",
            "body sees body", "caller sees caller",
            "body sees unbound", "caller sees caller",
            "after: unbound",
        ]
        // A plain OS thread: the test function itself runs inside an async
        // task, whose bindings live in the task, not in the thread's slot.
        let plain = Mutex<[String]>([])
        onAnotherThread { let seen = drive(); plain.withLock { $0 = seen } }
        #expect(plain.withLock { $0 } == expected)
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        #expect(try rt.run { drive() } == expected)
        #expect(!gt_task_locals_thread_has_bindings())
    }
}
