import CContext
import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import GreenThreads

/// Sockets other than TCP (UDP, Unix-domain streams) and fds the caller
/// owns (`GreenThread.waitReadable`/`waitWritable` on a pipe, a bad fd, a
/// regular file, a socket the poller already watches).
extension NetSuites {
@Suite("NetSocketKinds")
struct NetSocketKindsTests {
    @Test func udpSendReceive() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let a = try UDPSocket(host: "127.0.0.1", port: 0)
            let b = try UDPSocket(host: "127.0.0.1", port: 0)
            let receiver = go { () throws -> ([UInt8], SocketAddress) in
                let (bytes, from) = try b.receive(timeout: .seconds(5))
                try b.send(bytes.reversed(), to: from)
                return (bytes, from)
            }
            try GreenThread.sleep(for: .milliseconds(10))  // let it park first
            try a.send([1, 2, 3], to: b.localAddress)
            let (got, from) = try receiver.join()
            #expect(got == [1, 2, 3])
            #expect(from == a.localAddress)
            let (back, sender) = try a.receive(timeout: .seconds(5))
            #expect(back == [3, 2, 1])
            #expect(sender.port == b.port)
            #expect(throws: NetError.self) { _ = try a.receive(timeout: .milliseconds(10)) }
            a.close(); b.close()
        }
    }

    @Test func unixStreamEcho() throws {
        let path = "/tmp/gt-net-test-\(getpid()).sock"
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try UnixListener(path: path)
            do {
                _ = try UnixListener(path: path)
                Issue.record("bound an existing path")
            } catch let e as NetError { #expect(e.kind == .addressInUse) }
            let server = go {
                let c = try listener.accept()
                let b = try c.readExactly(5)
                try c.write(b)
            }
            let s = try UnixStream.connect(path: path, timeout: .seconds(5))
            try s.write("hello")
            #expect(String(decoding: try s.readExactly(5), as: UTF8.self) == "hello")
            try server.join()
            listener.close()
            #expect(access(path, F_OK) != 0)  // removed on close
            #expect(throws: NetError.self) { _ = try UnixStream.connect(path: path) }
            #expect(throws: NetError.self) { _ = try UnixListener(path: String(repeating: "x", count: 200)) }
        }
    }

    @Test func waitReadableOnAPipe() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let (r, w) = (fds[0], fds[1])
        let order = try rt.run { () throws -> [String] in
            let log = TestLog<String>()
            let waiter = go {
                try GreenThread.waitReadable(r, timeout: .seconds(5))
                log.append("readable")
            }
            try GreenThread.sleep(for: .milliseconds(20))
            log.append("writing")
            var byte: UInt8 = 1
            _ = write(w, &byte, 1)
            try waiter.join()
            // Already readable: returns at once; writable end: at once.
            try GreenThread.waitReadable(r)
            try GreenThread.waitWritable(w)
            // Drain, then a deadline.
            _ = read(r, &byte, 1)
            #expect(throws: NetError.self) { try GreenThread.waitReadable(r, timeout: .milliseconds(10)) }
            return log.values
        }
        #expect(order == ["writing", "readable"])
        // From a plain thread too.
        var byte: UInt8 = 2
        _ = write(w, &byte, 1)
        try GreenThread.waitReadable(r, timeout: .seconds(1))
    }

    @Test func waitReadableOnABadFDIsAClearError() throws {
        let rt = Runtime(workers: 1)
        defer { rt.shutdown() }
        try rt.run {
            for bad in [Int32(-1), Int32(9999)] {
                do {
                    try GreenThread.waitReadable(bad, timeout: .seconds(1))
                    Issue.record("waited on fd \(bad)")
                } catch let e as NetError {
                    #expect(e.kind == .badDescriptor)
                }
            }
            // A regular file cannot be polled by epoll... but poll(2) says it
            // is always ready, so the call returns at once.
            let f = open("/proc/self/stat", O_RDONLY)
            defer { close(f) }
            try GreenThread.waitReadable(f, timeout: .seconds(1))
            // A socket the poller already watches is not the caller's to wait on.
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            #expect(throws: NetError.self) { _ = try listener.accept(timeout: .milliseconds(5)) }  // registers it
            do {
                try GreenThread.waitReadable(listener.fileDescriptor, timeout: .seconds(1))
                Issue.record("waited on a registered socket")
            } catch let e as NetError {
                #expect(e.kind == .busy)
            }
        }
    }
}
}
