import Synchronization
import Testing
@testable import GreenThreads

// The readiness word that non-blocking polls and a select with default read
// without the lock (Channel.swift, "Readiness without the lock"): a clear
// bit must mean "not ready", and every flip of a bit must change the word.

/// The bits the state calls for, read under the channel's lock.
private func expectedBits<E>(_ c: Channel<E>) -> (word: UInt, bits: UInt) {
    c.lock.withLock {
        var bits: UInt = 0
        if c.closed || c.ring.count > 0 || !c.senders.isEmpty { bits |= Channel<E>.receiveReady }
        if c.closed || c.ring.count < c.capacity || !c.receivers.isEmpty { bits |= Channel<E>.sendReady }
        return (c.readiness.load(ordering: .relaxed), bits)
    }
}

@Suite("Channel readiness word")
struct ChannelReadinessTests {
    @Test("bits follow the buffer: empty, partly full, full, drained, closed")
    func bufferedBits() {
        let c = Channel<Int>(capacity: 2)
        func bits() -> UInt { c.readinessWord() & Channel<Int>.readinessBits }
        #expect(bits() == Channel<Int>.sendReady)
        let w0 = c.readinessWord()
        #expect(c.trySend(1))
        #expect(bits() == Channel<Int>.sendReady | Channel<Int>.receiveReady)
        #expect(c.readinessWord() != w0, "a flip must change the word")
        #expect(c.trySend(2))
        #expect(bits() == Channel<Int>.receiveReady)
        #expect(!c.trySend(3), "full: the lock-free check or the locked poll refuses")
        #expect(c.tryReceive() == 1)
        #expect(c.tryReceive() == 2)
        #expect(bits() == Channel<Int>.sendReady)
        #expect(c.tryReceive() == nil)
        c.close()
        #expect(bits() == Channel<Int>.sendReady | Channel<Int>.receiveReady)
    }

    @Test("an unbuffered channel is ready only while a counterpart is parked")
    func unbufferedBits() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            let c = Channel<Int>()
            #expect(c.readinessWord() & Channel<Int>.readinessBits == 0)
            #expect(c.tryReceive() == nil)
            #expect(!c.trySend(0))
            let receiver = go { try c.receive() }
            while c.waiterCount == 0 { GreenThread.yield() }
            #expect(c.readinessWord() & Channel<Int>.sendReady != 0, "a parked receiver makes send ready")
            #expect(c.trySend(7))
            #expect(try receiver.join() == 7)
            #expect(c.readinessWord() & Channel<Int>.readinessBits == 0)
            let sender = go { try c.send(9) }
            while c.waiterCount == 0 { GreenThread.yield() }
            #expect(c.readinessWord() & Channel<Int>.receiveReady != 0, "a parked sender makes receive ready")
            #expect(c.tryReceive() == 9)
            try sender.join()
            #expect(c.readinessWord() & Channel<Int>.readinessBits == 0)
        }
    }

    @Test("under random operations by 4 green threads, a clear bit always means not ready", arguments: [0, 1, 3])
    func randomOperationsKeepTheInvariant(capacity: Int) throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let violations = Atomic<Int>(0), checks = Atomic<Int>(0)
        try rt.run {
            let c = Channel<Int>(capacity: capacity)
            let threads = (0..<4).map { t in
                go { () throws in
                    var rng = SystemRandomNumberGenerator()
                    for i in 0..<3_000 {
                        switch Int.random(in: 0..<6, using: &rng) {
                        case 0: _ = c.trySend(i)
                        case 1: _ = c.tryReceive()
                        case 2:
                            // A select that may park briefly, then give up.
                            _ = try select {
                                Case.send(c, i) { 0 }
                                Case.timeout(.microseconds(50)) { 1 }
                            }
                        case 3:
                            _ = try select {
                                Case.receive(c) { _ in 0 }
                                Case.timeout(.microseconds(50)) { 1 }
                            }
                        case 4:
                            _ = try select {
                                Case.receive(c) { _ in 0 }
                                Case.send(c, t) { 0 }
                                Case.default { 1 }
                            }
                        default:
                            let (word, bits) = expectedBits(c)
                            checks.add(1, ordering: .relaxed)
                            // Published bits must cover the state's (set
                            // whenever ready); they may only be extra.
                            if bits & ~(word & Channel<Int>.readinessBits) != 0 {
                                violations.add(1, ordering: .relaxed)
                            }
                        }
                    }
                }
            }
            for h in threads { try h.join() }
            while c.tryReceive() != nil {}
        }
        #expect(checks.load(ordering: .relaxed) > 0)
        #expect(violations.load(ordering: .relaxed) == 0)
    }
}
