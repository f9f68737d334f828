#if canImport(Glibc)
import Glibc
#endif

/// A closed-loop TCP echo load generator built on nothing but POSIX sockets
/// and epoll on a few plain OS threads, so it measures every echo server (ours,
/// Go's, SwiftNIO's) the same way. Each connection sends one message, waits
/// for all of it to come back, checks it, records the round trip and sends
/// the next: the request rate is what the server sustains at that many
/// connections in flight. With `Configuration.rate` it sends on a fixed
/// schedule instead (wrk2's open loop; see there).
///
/// It is deliberately not built on GreenThreads: a generator that shared
/// the runtime under test could not load Go's or SwiftNIO's servers the
/// same way, and its own scheduling would be part of what it measures.
///
/// A run: each thread (LoadThread.swift) owns its share of the connections
/// and one epoll instance; all threads meet at a barrier once every
/// connection is up, so connection setup is not timed; waits take
/// nanosecond timeouts (`epoll_pwait2`, through CEpoll's one shim, which
/// also makes `<sys/epoll.h>` importable); every round trip goes into the
/// thread's log-linear histogram (LatencyHistogram.swift), and the
/// coordinator merges the histograms after joining the threads. How many
/// threads, and why beside how many server workers, is
/// `threads(besideServerWorkers:)`.
public enum LoadGenerator {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var connections: Int
        /// Bytes per message.
        public var messageSize: Int
        /// How long the timed phase lasts, after every connection is up.
        public var duration: Duration
        /// OS threads; connection i belongs to thread i % threads.
        public var threads: Int
        /// How long all connections together may take to establish.
        public var connectTimeout: Duration
        /// Requests per second over all connections, or nil for a closed
        /// loop (each connection sends its next message as soon as the echo
        /// is back). At a fixed rate each connection sends on a schedule
        /// (the connections spread evenly over one period), and a round trip
        /// counts from when its message was *due*: a server that falls
        /// behind is charged for the wait of every message queued behind
        /// the late one (wrk2's correction for coordinated omission).
        public var rate: Double?

        public init(host: String = "127.0.0.1", port: Int, connections: Int = 100, messageSize: Int = 64,
                    duration: Duration = .seconds(5), threads: Int = LoadGenerator.defaultThreads,
                    connectTimeout: Duration = .seconds(10), rate: Double? = nil) {
            self.host = host
            self.port = port
            self.connections = connections
            self.messageSize = messageSize
            self.duration = duration
            self.threads = threads
            self.connectTimeout = connectTimeout
            self.rate = rate
        }
    }

    /// "A few": one per core, at most 4. The server under test needs cores too.
    public static var defaultThreads: Int { threads(besideServerWorkers: nil) }

    /// Threads to drive a server of `serverWorkers` worker threads on this
    /// machine: the cores the server leaves free, at most 4; all of them (as
    /// `defaultThreads`) when the server takes every core or its size is
    /// unknown (`nil`).
    ///
    /// A closed-loop client and a server that take turns on one core measure
    /// the kernel's time slice, not the server: on two cores, one server
    /// worker beside two generator threads put every server's p99 at the
    /// generator's wait for a CPU (`perf sched`: up to 8 ms at 250 Hz), about
    /// 4 ms for ours, Go's and SwiftNIO's alike; beside one, at 1-3 ms.
    public static func threads(besideServerWorkers serverWorkers: Int?) -> Int {
        threads(cores: onlineCores, besideServerWorkers: serverWorkers)
    }

    /// `threads(besideServerWorkers:)` for a machine of `cores` cores (`nil`
    /// workers: the server's size is unknown, so one thread per core).
    public static func threads(cores: Int, besideServerWorkers serverWorkers: Int?) -> Int {
        let cores = Swift.max(1, cores)
        let free = serverWorkers.map { cores - Swift.max(0, $0) } ?? 0
        return Swift.min(4, free >= 1 ? free : cores)
    }

    private static var onlineCores: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// Runs the load and returns what it measured. Throws `LoadError` for
    /// bad configuration, an unresolvable host, or connections that cannot be
    /// established; connections the server breaks during the timed phase
    /// are counted in `LoadResult.failedConnections`.
    public static func run(_ config: Configuration) throws -> LoadResult {
        try validate(config)
        raiseFileLimit()
        let address = try SocketAddress.resolve(host: config.host, port: config.port)
        let threads = Swift.min(config.threads, config.connections)
        let startLine = Barrier(parties: threads + 1)
        let shared = RunShared(config: config, address: address, startLine: startLine)
        var runners: [LoadThread] = []
        for t in 0..<threads {
            let mine = (config.connections - t + threads - 1) / threads  // i = t, t + threads, ...
            runners.append(LoadThread(shared: shared, connections: mine, first: t, stride: threads))
        }
        var handles: [OSThread] = []
        do {
            for r in runners { handles.append(try OSThread.start { r.main() }) }
        } catch {
            // The threads already started wait at the barrier for the ones
            // that never will: stop waiting for those, and skip the timed phase.
            shared.aborted.store(true, ordering: .relaxed)
            startLine.withdraw(threads - handles.count)
            startLine.arrive()
            for h in handles { h.join() }
            throw error
        }
        // Every thread has connected (or failed) once it reaches the barrier.
        startLine.arrive()
        for h in handles { h.join() }

        if let failure = runners.lazy.compactMap(\.setupError).first {
            throw failure
        }
        var histogram = LatencyHistogram()
        var failed = 0
        var firstFailure: String?
        var elapsed: UInt64 = 0
        for r in runners {
            histogram.merge(r.histogram)
            failed += r.failedConnections
            if firstFailure == nil { firstFailure = r.firstFailure }
            elapsed = Swift.max(elapsed, r.elapsedNanos)
        }
        return LoadResult(configuration: config, threads: threads, requests: histogram.count,
                          elapsedNanos: elapsed, latency: histogram,
                          failedConnections: failed, firstFailure: firstFailure)
    }

    static func validate(_ c: Configuration) throws {
        guard (1...65535).contains(c.port) else { throw LoadError.badConfiguration("port \(c.port) is not in 1...65535") }
        guard c.connections > 0 else { throw LoadError.badConfiguration("--connections must be at least 1") }
        guard c.messageSize > 0, c.messageSize <= 1 << 20 else {
            throw LoadError.badConfiguration("--size must be in 1...1048576 bytes")
        }
        guard c.duration > .zero else { throw LoadError.badConfiguration("--duration must be positive") }
        guard c.threads > 0 else { throw LoadError.badConfiguration("--threads must be at least 1") }
        if let rate = c.rate {
            guard rate.isFinite, rate >= 1, rate <= 1e8 else {
                throw LoadError.badConfiguration("--rate must be in 1...100000000 requests/s")
            }
        }
    }

    /// Raises this process's descriptor limit to its hard limit: 1,000
    /// connections (2,000 descriptors when the server runs in-process) do not
    /// fit the usual soft limit of 1,024. Returns the limit now in force.
    @discardableResult
    public static func raiseFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return Int(clamping: limit.rlim_cur)
    }
}

/// What one run measured.
public struct LoadResult: Sendable {
    public let configuration: LoadGenerator.Configuration
    public let threads: Int
    /// Round trips completed inside the timed phase.
    public let requests: UInt64
    public let elapsedNanos: UInt64
    /// Round-trip times in nanoseconds.
    public let latency: LatencyHistogram
    /// Connections the server closed or reset during the timed phase, or
    /// that echoed bytes other than those sent.
    public let failedConnections: Int
    public let firstFailure: String?

    public var requestsPerSecond: Double {
        elapsedNanos == 0 ? 0 : Double(requests) * 1e9 / Double(elapsedNanos)
    }

    /// Latency at `percentile`, in microseconds.
    public func micros(_ percentile: Double) -> Double {
        Double(latency.value(atPercentile: percentile)) / 1000
    }
}

public enum LoadError: Error, CustomStringConvertible {
    case badConfiguration(String)
    case resolve(host: String, message: String)
    case connect(String)
    /// The system refused a thread or a descriptor the generator needed.
    case system(String)

    public var description: String {
        switch self {
        case .badConfiguration(let m): return m
        case .resolve(let host, let m): return "cannot resolve '\(host)': \(m)"
        case .connect(let m), .system(let m): return m
        }
    }
}

func errnoText(_ code: Int32) -> String {
    String(cString: strerror(code)) + " (errno \(code))"
}

/// Monotonic nanoseconds.
@inline(__always)
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
