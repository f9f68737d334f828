import CEpoll
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What every load thread reads.
final class RunShared: Sendable {
    let config: LoadGenerator.Configuration
    let address: SocketAddress
    let startLine: Barrier
    /// Set by a thread whose connections could not be established, so the
    /// others skip the timed phase instead of measuring a partial load.
    let aborted = Atomic<Bool>(false)

    init(config: LoadGenerator.Configuration, address: SocketAddress, startLine: Barrier) {
        self.config = config
        self.address = address
        self.startLine = startLine
    }
}

/// One OS thread driving its share of the connections through one epoll
/// instance (level-triggered: a connection has at most one message in
/// flight, so there is never a backlog of readiness to drain).
final class LoadThread: @unchecked Sendable {
    // SAFETY: @unchecked Sendable: the mutable fields are touched only by the
    // thread running `main()`, and the coordinator reads the results only after
    // joining it (the join orders the two); `shared` is Sendable.

    // Written only by the thread itself; read by the coordinator after join.
    private(set) var histogram = LatencyHistogram()
    private(set) var failedConnections = 0
    private(set) var firstFailure: String?
    private(set) var setupError: LoadError?
    private(set) var elapsedNanos: UInt64 = 0

    private let shared: RunShared
    private let size: Int
    private var conns: [Conn]
    /// Connection i's outgoing message is at send + i * size, its echo at recv + i * size.
    private let send: UnsafeMutablePointer<UInt8>
    private let recv: UnsafeMutablePointer<UInt8>
    private var epfd: Int32 = -1
    private var live = 0
    /// Global index of local connection 0, and the step between ours
    /// (connection i of the run belongs to thread i % threads).
    private let first: Int
    private let stride: Int

    private struct Conn {
        var fd: Int32 = -1
        var sent = 0
        var received = 0
        var sequence: UInt64 = 0
        var startedAt: UInt64 = 0
        var wantsWrite = false
        /// Fixed rate: a message is out and its echo not all back.
        var inFlight = false
        /// Fixed rate: the period of this connection's next message.
        var nextPeriod: UInt64 = 0
    }

    init(shared: RunShared, connections: Int, first: Int, stride: Int) {
        self.first = first
        self.stride = stride
        self.shared = shared
        size = shared.config.messageSize
        conns = [Conn](repeating: Conn(), count: connections)
        send = .allocate(capacity: connections * size)
        recv = .allocate(capacity: connections * size)
    }

    deinit {
        send.deallocate()
        recv.deallocate()
    }

    func main() {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        defer {
            for c in conns where c.fd >= 0 { close(c.fd) }
            if epfd >= 0 { close(epfd) }
        }
        do {
            guard epfd >= 0 else { throw LoadError.connect("epoll_create1: \(errnoText(errno))") }
            try connectAll()
        } catch let e as LoadError {
            setupError = e
            shared.aborted.store(true, ordering: .relaxed)  // read after the barrier, which orders it
        } catch {
            setupError = .connect("\(error)")
            shared.aborted.store(true, ordering: .relaxed)
        }
        shared.startLine.arrive()
        guard !shared.aborted.load(ordering: .relaxed) else { return }
        if let rate = shared.config.rate { drive(rate: rate) } else { drive() }
    }

    // MARK: connecting

    private func connectAll() throws {
        let address = shared.address
        for i in conns.indices {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw LoadError.connect("socket: \(errnoText(errno))") }
            conns[i].fd = fd
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let rc = address.withSockaddr { connect(fd, $0, $1) }
            if rc != 0 && errno != EINPROGRESS {
                throw LoadError.connect("connect to \(shared.config.host):\(shared.config.port): \(errnoText(errno))")
            }
            try control(EPOLL_CTL_ADD, i, events: EPOLLOUT.rawValue)
        }
        var pending = conns.count
        let deadline = monotonicNanos() + nanos(shared.config.connectTimeout)
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while pending > 0 {
            let now = monotonicNanos()
            guard now < deadline else {
                throw LoadError.connect("\(pending) of \(conns.count) connections to \(shared.config.host):\(shared.config.port) not established within \(shared.config.connectTimeout)")
            }
            let n = epoll_wait(epfd, &events, Int32(events.count), Int32((deadline - now) / 1_000_000 + 1))
            if n < 0 {
                if errno == EINTR { continue }
                throw LoadError.connect("epoll_wait: \(errnoText(errno))")
            }
            for e in events.prefix(Int(n)) {
                let i = Int(e.data.u64)
                var err: Int32 = 0
                var len = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(conns[i].fd, SOL_SOCKET, SO_ERROR, &err, &len)
                if err != 0 {
                    throw LoadError.connect("connect to \(shared.config.host):\(shared.config.port): \(errnoText(err))")
                }
                try control(EPOLL_CTL_MOD, i, events: EPOLLIN.rawValue)
                pending -= 1
            }
        }
        live = conns.count
    }

    private func control(_ op: Int32, _ i: Int, events: UInt32) throws {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = UInt64(i)
        guard epoll_ctl(epfd, op, conns[i].fd, &ev) == 0 else {
            throw LoadError.connect("epoll_ctl: \(errnoText(errno))")
        }
    }

    // MARK: the timed phase

    private func drive() {
        let start = monotonicNanos()
        let deadline = start + nanos(shared.config.duration)
        for i in conns.indices { startRequest(i, now: start) }
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        var now = start
        while live > 0 && now < deadline {
            guard serveEvents(&events, waiting: deadline - now, deadline: deadline) else { break }
            now = monotonicNanos()
        }
        elapsedNanos = Swift.min(now, deadline) - start
    }

    /// Waits up to `wait` ns for readiness and serves what arrived. Returns
    /// false if epoll itself failed: then the whole thread is lost, not one
    /// connection, and every connection has failed.
    private func serveEvents(_ events: inout [epoll_event], waiting wait: UInt64, deadline: UInt64) -> Bool {
        let n = lg_epoll_wait_ns(epfd, &events, Int32(events.count), Int64(wait))
        if n < 0 && n != -EINTR {
            let message = "epoll_wait: \(errnoText(-n))"
            for i in conns.indices where conns[i].fd >= 0 { fail(i, message) }
            return false
        }
        for e in events.prefix(Int(Swift.max(n, 0))) {
            let i = Int(e.data.u64)
            guard conns[i].fd >= 0 else { continue }
            if e.events & EPOLLOUT.rawValue != 0 && conns[i].wantsWrite { flush(i) }
            if e.events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 {
                receive(i, deadline: deadline)
            }
        }
        return true
    }

    /// The fixed-rate timed phase. Connection g of the run (of C) sends
    /// message k at start + (g / C + k) * period, period = C / rate: the run's
    /// messages fall due evenly, 1 / rate apart. Ours fall due in the order
    /// (k, i), which `due` walks. A message due while its connection still
    /// waits for the last echo goes out when that echo is back (`echoed`),
    /// timed from when it was due.
    private func drive(rate: Double) {
        let start = monotonicNanos()
        let deadline = start + nanos(shared.config.duration)
        let total = Double(shared.config.connections)
        let period = total / rate * 1e9
        let plan = Schedule(start: start, period: period,
                            offsets: conns.indices.map { UInt64(Double(first + $0 * stride) / total * period) })
        schedule = plan
        var due = (k: UInt64(0), i: 0)
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        var now = start
        while live > 0 && now < deadline {
            while case let t = plan.time(due.k, due.i), t <= now {
                let i = due.i
                if conns[i].fd >= 0, !conns[i].inFlight, conns[i].nextPeriod <= due.k {
                    sendDue(i, period: due.k, at: t)
                }
                due = due.i + 1 == conns.count ? (due.k + 1, 0) : (due.k, due.i + 1)
            }
            let wait = Swift.min(plan.time(due.k, due.i), deadline) - now
            guard serveEvents(&events, waiting: wait, deadline: deadline) else { break }
            now = monotonicNanos()
        }
        elapsedNanos = Swift.min(now, deadline) - start
    }

    private struct Schedule {
        let start: UInt64
        let period: Double
        let offsets: [UInt64]
        func time(_ k: UInt64, _ i: Int) -> UInt64 { start + offsets[i] + UInt64(Double(k) * period) }
    }

    private var schedule: Schedule?

    private func sendDue(_ i: Int, period k: UInt64, at t: UInt64) {
        conns[i].nextPeriod = k + 1
        conns[i].inFlight = true
        startRequest(i, now: t)
    }

    /// Connection i's echo is back at `now`: its next message goes at once
    /// if already due (late), else when the schedule reaches it.
    private func echoed(_ i: Int, at now: UInt64) {
        guard let schedule else { return startRequest(i, now: now) }
        conns[i].inFlight = false
        let k = conns[i].nextPeriod
        let t = schedule.time(k, i)
        if t <= now { sendDue(i, period: k, at: t) }
    }

    private func startRequest(_ i: Int, now: UInt64) {
        conns[i].sequence &+= 1
        let base = send + i * size
        let seed = UInt64(i) &* 0x9E37_79B9 &+ conns[i].sequence
        for b in 0..<size { base[b] = UInt8(truncatingIfNeeded: seed &+ UInt64(b)) }
        conns[i].sent = 0
        conns[i].received = 0
        conns[i].startedAt = now
        flush(i)
    }

    /// Sends what is left of connection i's message; waits for EPOLLOUT if
    /// the socket buffer is full (never, for small messages, in practice).
    private func flush(_ i: Int) {
        while conns[i].sent < size {
            let n = Glibc.send(conns[i].fd, send + i * size + conns[i].sent, size - conns[i].sent, Int32(MSG_NOSIGNAL))
            if n > 0 {
                conns[i].sent += n
                continue
            }
            let e = errno
            if n < 0 && e == EINTR { continue }
            if n < 0 && (e == EAGAIN || e == EWOULDBLOCK) {
                if !conns[i].wantsWrite {
                    conns[i].wantsWrite = true
                    setInterest(i, EPOLLIN.rawValue | EPOLLOUT.rawValue)
                }
                return
            }
            fail(i, "send: \(errnoText(e))")
            return
        }
        if conns[i].wantsWrite {
            conns[i].wantsWrite = false
            setInterest(i, EPOLLIN.rawValue)
        }
    }

    private func receive(_ i: Int, deadline: UInt64) {
        let want = size - conns[i].received
        let n = read(conns[i].fd, recv + i * size + conns[i].received, want)
        if n == 0 {
            fail(i, "the server closed a connection")
            return
        }
        if n < 0 {
            let e = errno
            if e != EAGAIN && e != EWOULDBLOCK && e != EINTR { fail(i, "read: \(errnoText(e))") }
            return
        }
        conns[i].received += n
        guard conns[i].received == size else { return }
        guard conns[i].sent == size else {
            fail(i, "the server sent bytes that were never sent to it")
            return
        }
        let now = monotonicNanos()
        if memcmp(send + i * size, recv + i * size, size) != 0 {
            fail(i, "the echo differs from the message sent")
            return
        }
        if now <= deadline {
            histogram.record(now - conns[i].startedAt)
            echoed(i, at: now)
        }
    }

    private func setInterest(_ i: Int, _ events: UInt32) {
        do { try control(EPOLL_CTL_MOD, i, events: events) } catch { fail(i, "\(error)") }
    }

    private func fail(_ i: Int, _ message: String) {
        if firstFailure == nil { firstFailure = message }
        failedConnections += 1
        if conns[i].fd >= 0 {
            close(conns[i].fd)
            conns[i].fd = -1
            live -= 1
        }
    }
}

func nanos(_ d: Duration) -> UInt64 {
    let (s, atto) = d.components
    return UInt64(Swift.max(s, 0)) &* 1_000_000_000 &+ UInt64(Swift.max(atto, 0) / 1_000_000_000)
}
