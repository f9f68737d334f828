import GreenThreads
import Testing
@testable import NetExamples

extension NetExampleSuites {
/// The echo-server example's serving code over loopback.
@Suite("EchoServer")
struct EchoServerTests {
    @Test func manyClientsEchoAndTheServerStopsCleanly() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go { try EchoServer.serve(listener) }
            // 100 clients at once, sizes from one byte to past a socket buffer.
            let clients = (0..<100).map { i in
                go { () throws -> Bool in
                    let size = i % 20 == 0 ? 300_000 : 1 + i * 37 % 2000
                    let message = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
                    let conn = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(10))
                    defer { conn.close() }
                    // Write and read at once: a large message does not fit the
                    // socket buffers, so writing it all first could deadlock.
                    let writer = go { try conn.write(message) }
                    let echo = try conn.readExactly(size, timeout: .seconds(20))
                    try writer.join()
                    try conn.shutdown(.write)
                    // The server closes its side after our end of stream.
                    let rest = try conn.read(upTo: 16, timeout: .seconds(10))
                    return echo == message && rest.isEmpty
                }
            }
            #expect(try joinAll(clients).allSatisfy { $0 })
            // All clients are gone: closing the listener ends serve().
            listener.close()
            try server.join()
        }
    }

    @Test func serveReturnsOnlyAfterOpenConnectionsEnd() throws {
        let rt = Runtime(workers: 2)
        defer { rt.shutdown() }
        try rt.run {
            let listener = try TCPListener(host: "127.0.0.1", port: 0)
            let server = go { try EchoServer.serve(listener) }
            let conn = try TCPStream.connect(host: "127.0.0.1", port: listener.port, timeout: .seconds(5))
            try conn.write([1, 2, 3])
            #expect(try conn.readExactly(3, timeout: .seconds(5)) == [1, 2, 3])
            listener.close()
            GreenThread.sleep(for: .milliseconds(50))
            #expect(!server.isFinished)  // still serving the open connection
            try conn.write([4])
            #expect(try conn.readExactly(1, timeout: .seconds(5)) == [4])
            conn.close()
            try server.join()
        }
    }
}
}
