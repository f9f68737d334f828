import CContext
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

/// Counts this process's open fds.
func openFDCount() -> Int {
    var n = 0
    for fd in 0..<Int32(65536) where fcntl(fd, F_GETFD) != -1 { n += 1 }
    return n
}

/// Counts this process's open sockets whose local or peer port is `port`.
/// A leak check that the other suites, running concurrently in this
/// process (the example servers' tests among them), cannot disturb: they
/// use ports of their own.
func openSockets(onPort port: Int) -> Int {
    func portOf(_ fd: Int32, peer: Bool) -> Int? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                peer ? getpeername(fd, $0, &len) : getsockname(fd, $0, &len)
            }
        }
        guard rc == 0 else { return nil }
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafeBytes(of: &storage) { Int(UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self))) }
        case AF_INET6:
            return withUnsafeBytes(of: &storage) { Int(UInt16(bigEndian: $0.load(fromByteOffset: 2, as: UInt16.self))) }
        default:
            return nil
        }
    }
    var n = 0
    for fd in 0..<Int32(65536) where fcntl(fd, F_GETFD) != -1 {
        if portOf(fd, peer: false) == port || portOf(fd, peer: true) == port { n += 1 }
    }
    return n
}

/// Sets the soft RLIMIT_NOFILE; returns the previous one.
@discardableResult
func setFDLimit(_ soft: UInt) -> rlimit {
    var old = rlimit()
    getrlimit(Int32(RLIMIT_NOFILE.rawValue), &old)
    var new = old
    new.rlim_cur = rlim_t(min(soft, UInt(old.rlim_max)))
    setrlimit(Int32(RLIMIT_NOFILE.rawValue), &new)
    return old
}

/// A peak-tracking counter.
final class Counter: @unchecked Sendable {
    private let lock = SpinLock()
    private var value = 0
    private var high = 0
    func increment() { lock.withLock { value += 1; high = max(high, value) } }
    var peak: Int { lock.withLock { high } }
}

enum Environment {
    static func value(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}

/// Runs this test binary again, selecting one test by name, with extra
/// environment variables; its output goes to /dev/null. Returns its exit
/// status (0: the test passed).
func runChildTest(_ name: String, environment extra: [String]) throws -> Int32 {
    try ChildProcess(test: name, environment: extra, captureStderr: false).wait()
}

/// The runtime's use of fds: every socket closed returns its fd, accept
/// survives running out of them (EMFILE), and 10,000 connections stay open
/// at once.
extension NetSuites {
@Suite("NetFDLimits")
struct NetFDLimitsTests {
    @Test func fdsReturnToBaselineAfterClose() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        let ports = try rt.run { () throws -> [Int] in
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go {
                var handles: [JoinHandle<Void>] = []
                for _ in 0..<50 {
                    let c = try listener.accept()
                    handles.append(go {
                        let b = try c.read(upTo: 10)
                        try c.write(b)
                        c.close()
                    })
                }
                try joinAll(handles)
            }
            let clients = (0..<50).map { i in go { () throws -> UInt8 in
                let s = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
                try s.write([UInt8(i)])
                let b = try s.readExactly(1)
                s.close()
                return b[0]
            } }
            #expect(try joinAll(clients) == (0..<50).map { UInt8($0) })
            try server.join()
            listener.close()
            let u = try UDPSocket(host: "127.0.0.1", port: 0)
            #expect(openSockets(onPort: u.port) == 1)
            u.close()
            return [listener.port, u.port]
        }
        for port in ports { #expect(openSockets(onPort: port) == 0, "sockets left on port \(port)") }
    }

    @Test func acceptUnderEMFILEReportsTheErrorAndRecovers() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let client1 = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            // The connection is queued (connect returned). Lower the limit to
            // the lowest free fd number, so the next fd cannot be had, and
            // restore it at once: other suites run concurrently and must not
            // see it (the accept attempt is one non-blocking syscall).
            var lowestFree: Int32 = 0
            while fcntl(lowestFree, F_GETFD) != -1 { lowestFree += 1 }
            let old = setFDLimit(UInt(lowestFree))
            var failure: NetError?
            do {
                _ = try listener.accept(timeout: .seconds(1))
            } catch let e as NetError {
                failure = e
            }
            var o = old
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &o)
            #expect(failure?.kind == .tooManyOpenFiles)
            #expect(failure?.errno == EMFILE)
            // fds free up: the queued connection is accepted after all.
            let conn = try listener.accept(timeout: .seconds(5))
            try client1.write([7])
            #expect(try conn.read(upTo: 1, timeout: .seconds(5)) == [7])
            // And it keeps serving new ones.
            let client2 = try TCPStream.connect(host: "127.0.0.1", port: listener.port)
            let conn2 = try listener.accept(timeout: .seconds(5))
            try conn2.write([8])
            #expect(try client2.read(upTo: 1, timeout: .seconds(5)) == [8])
        }
    }

    /// 10,000 connections open at once, each echoing. Both ends in one
    /// process would need 20,000+ fds, more than the usual hard limit
    /// (20,000), so each end runs in its own child process (this test
    /// binary, re-run with a filter): the server in one, which starts the
    /// clients in another. That also keeps this process's memory and the
    /// other suites' measurements out of it.
    @Test func tenThousandConcurrentConnectionsEcho() throws {
        let status = try runChildTest("serverForTheTenThousandTest", environment: ["GT_NET_CHILD_SERVER=10000"])
        #expect(status == 0, "the server or client process failed (wait status \(status))")
    }

    /// The server half of `tenThousandConcurrentConnectionsEcho`; runs only
    /// in the child process that test starts.
    @Test(.enabled(if: Environment.value("GT_NET_CHILD_SERVER") != nil))
    func serverForTheTenThousandTest() throws {
        let count = Int(Environment.value("GT_NET_CHILD_SERVER")!)!
        let old = setFDLimit(UInt.max)
        defer { var o = old; setrlimit(Int32(RLIMIT_NOFILE.rawValue), &o) }
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        try #require(Int(limit.rlim_cur) >= count + openFDCount() + 64,
                     "RLIMIT_NOFILE hard limit \(limit.rlim_max) too low for \(count) connections")
        // Alone in this process: every fd counts, the runtime's own
        // epoll fd and eventfd included.
        let baseline = openFDCount()
        let rt = Runtime(configuration: .init(workers: 1, stackSize: 64 * 1024))
        defer { rt.shutdown() }
        let (echoed, peak, childStatus) = try rt.run { () throws -> (Int, Int, Int32) in
            let listener = try TCPListener(host: "127.0.0.1", port: 0, backlog: 4096)
            let open = Counter()
            let server = go { () throws -> Int in
                var handlers: [JoinHandle<Bool>] = []
                for _ in 0..<count {
                    let c = try listener.accept(timeout: .seconds(60))
                    open.increment()
                    handlers.append(go { () throws -> Bool in
                        // The client writes only once all of them are
                        // connected: every handler parks here meanwhile.
                        let b = try c.readExactly(8, timeout: .seconds(60))
                        try c.write(b)
                        c.close()  // server closes first: TIME_WAIT stays here
                        return true
                    })
                }
                return try joinAll(handlers).filter { $0 }.count
            }
            let status = try GreenThread.blocking { () throws -> Int32 in
                try runChildTest("clientsForTheTenThousandTest", environment: [
                    "GT_NET_CHILD_PORT=\(listener.port)", "GT_NET_CHILD_COUNT=\(count)",
                ])
            }
            let echoed = try server.join()
            listener.close()
            return (echoed, open.peak, status)
        }
        #expect(childStatus == 0, "the client process failed (wait status \(childStatus))")
        #expect(echoed == count)
        #expect(peak == count)
        rt.shutdown()
        #expect(openFDCount() == baseline)
    }

    /// The client half of `tenThousandConcurrentConnectionsEcho`; runs only
    /// in the child process that test starts.
    @Test(.enabled(if: Environment.value("GT_NET_CHILD_PORT") != nil))
    func clientsForTheTenThousandTest() throws {
        let port = Int(Environment.value("GT_NET_CHILD_PORT")!)!
        let count = Int(Environment.value("GT_NET_CHILD_COUNT") ?? "10000")!
        let old = setFDLimit(UInt.max)
        defer { var o = old; setrlimit(Int32(RLIMIT_NOFILE.rawValue), &o) }
        let rt = Runtime(configuration: .init(workers: 1, stackSize: 64 * 1024))
        defer { rt.shutdown() }
        let ok = try rt.run { () throws -> Int in
            let opened = WaitGroup()
            opened.add(count)
            let start = Channel<Int>(capacity: 0)
            let clients = (0..<count).map { i in go { () throws -> Bool in
                let s = try TCPStream.connect(host: "127.0.0.1", port: port, timeout: .seconds(60))
                opened.done()
                _ = try start.receive()  // all connected first
                let msg = withUnsafeBytes(of: UInt64(i).littleEndian) { Array($0) }
                try s.write(msg)
                let back = try s.readExactly(8, timeout: .seconds(60))
                let eof = try s.read(upTo: 1, timeout: .seconds(60)).isEmpty
                s.close()
                return back == msg && eof
            } }
            try opened.wait()
            start.close()
            return try joinAll(clients).filter { $0 }.count
        }
        #expect(ok == count)
    }
}
}
