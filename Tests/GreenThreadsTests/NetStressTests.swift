import CContext
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

extension NetSuites {
/// Randomized schedules over the netpoller: deadlines that fire or not,
/// cancels and closes racing parked reads and writes, on several workers.
@Suite("NetStress")
struct NetStressTests {
    @Test(arguments: [1, 2, 3])
    func timeoutsCancelsAndClosesRaceReadiness(seed: UInt64) throws {
        let rt = Runtime(configuration: .init(workers: 2, seed: seed))
        defer { rt.shutdown() }
        let (echoed, outcomes, port) = try rt.run { () throws -> (Int, [String: Int], Int) in
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let pairs = 64
            let server = go { () throws -> [JoinHandle<Int>] in
                try (0..<pairs).map { _ in
                    let c = try listener.accept(timeout: .seconds(20))
                    return go { () -> Int in
                        // Echo until the peer goes (EOF, reset, close).
                        var n = 0
                        var buf = [UInt8](repeating: 0, count: 256)
                        while let got = try? c.read(into: &buf, timeout: .seconds(20)), got > 0 {
                            guard (try? buf.withUnsafeBytes({ try c.write(UnsafeRawBufferPointer(rebasing: $0[..<got])) })) != nil else { break }
                            n += got
                        }
                        c.close()
                        return n
                    }
                }
            }
            let log = TestLog<String>()
            let clients = (0..<pairs).map { i in go { () throws -> Int in
                var mix = UInt64(i) &* 0x9E37_79B9_7F4A_7C15 &+ seed
                func next(_ n: UInt64) -> UInt64 { mix = mix &* 6364136223846793005 &+ 1442695040888963407; return (mix >> 33) % n }
                let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(20))
                var echoed = 0
                for round in 0..<20 {
                    switch next(6) {
                    case 0:
                        // A read that must time out (nothing sent).
                        do { _ = try s.read(upTo: 16, timeout: .microseconds(Int64(next(2000)))); log.append("unexpected data") }
                        catch let e as NetError where e.kind == .timedOut { log.append("timedOut") }
                    case 1:
                        // A reader cancelled while parked (or before).
                        let r = go { () -> String in
                            do { _ = try s.read(upTo: 16); return "read" } catch is CancellationError { return "cancelled" } catch { return "\(error)" }
                        }
                        if next(2) == 0 { GreenThread.yield() } else { try GreenThread.sleep(for: .microseconds(Int64(next(500)))) }
                        r.cancel()
                        log.append(try r.join())
                    default:
                        let msg = (0..<(1 + Int(next(200)))).map { UInt8(truncatingIfNeeded: $0 &+ round &+ i) }
                        try s.write(msg)
                        let back = try s.readExactly(msg.count, timeout: .seconds(20))
                        if back != msg { log.append("corrupt") }
                        echoed += msg.count
                    }
                }
                // End: a close racing a parked reader on the same stream.
                let r = go { () -> String in
                    do { let b = try s.read(upTo: 16); return b.isEmpty ? "eof" : "data" } catch let e as NetError { return e.kind == .closed ? "closed" : "\(e)" } catch { return "\(error)" }
                }
                if next(2) == 0 { GreenThread.yield() }
                s.close()
                log.append(try r.join())
                return echoed
            } }
            let echoed = try joinAll(clients).reduce(0, +)
            let served = try joinAll(try server.join()).reduce(0, +)
            listener.close()
            #expect(served == echoed)
            var counts: [String: Int] = [:]
            for o in log.values { counts[o, default: 0] += 1 }
            return (echoed, counts, listener.port)
        }
        #expect(echoed > 0)
        // Only expected outcomes: a cancelled read never returns data (the
        // peer sent none), a racing close surfaces as .closed.
        let allowed: Set<String> = ["timedOut", "cancelled", "closed"]
        #expect(Set(outcomes.keys).isSubset(of: allowed), "outcomes: \(outcomes)")
        for kind in allowed { #expect(outcomes[kind, default: 0] > 0, "no \(kind) in \(outcomes)") }
        #expect(openSockets(onPort: port) == 0)
    }
}
}
