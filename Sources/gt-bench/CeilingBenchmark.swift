// The `ceiling` benchmark: what the machine itself gives N threads, with no
// scheduler in the way. N plain OS threads each run 1/N of a fixed xorshift
// loop (the skew task body) and are joined; nothing is shared, nothing
// waits. Its speedup is the most any runtime can reach at N workers on this
// machine at this moment: below N when the vCPUs are SMT siblings on the
// host, when other tenants take CPU time, or when the clock drops as more
// cores turn busy. gt-bench scale runs it beside the workloads so a curve
// can be read against the machine's (fib at 1.8 with a ceiling of 1.85 is a
// machine limit, with a ceiling of 2.0 it is the scheduler's).
#if canImport(Glibc)
import Glibc
#endif

enum CeilingWorkload {
    static let name = "ceiling"
    static let totalIterations = 100_000_000

    /// Milliseconds for `threads` OS threads to share the loop.
    static func benchmark(workers threads: Int) throws -> Double {
        let share = totalIterations / threads
        let sums = SumSlots(count: threads)
        var ids: [pthread_t] = []
        let ns = try elapsedNanos {
            for i in 0..<threads {
                let job = Unmanaged.passRetained(Job { sums.store(i, busyWork(UInt64(i), iterations: share)) })
                var id = pthread_t()
                let rc = pthread_create(&id, nil, { raw in
                    Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().body()
                    return nil
                }, job.toOpaque())
                guard rc == 0 else {
                    job.release()
                    for id in ids { pthread_join(id, nil) }
                    throw BenchmarkFailure(description: "ceiling: pthread_create failed (\(rc))")
                }
                ids.append(id)
            }
            for id in ids { pthread_join(id, nil) }
        }
        guard sums.total != 0 else { throw BenchmarkFailure(description: "ceiling: checksum is zero") }
        return ns / 1e6
    }

    private final class Job {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    /// One result slot per thread, each written by its own thread and read
    /// after pthread_join (which orders the write before the read).
    private final class SumSlots: @unchecked Sendable {
        // SAFETY: @unchecked Sendable: slot i is written only by thread i,
        // and read only after every thread is joined; the buffer never moves.
        private let slots: UnsafeMutableBufferPointer<UInt64>
        init(count: Int) {
            slots = .allocate(capacity: count)
            slots.initialize(repeating: 0)
        }
        deinit { slots.deallocate() }
        func store(_ i: Int, _ v: UInt64) { slots[i] = v }
        var total: UInt64 { slots.reduce(0, &+) }
    }
}
