import CContext
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// StreamRead.swift: a stream read that parks before its syscall when the
// last read left the socket empty.
//
// A server's loop is read, write the answer, read again. The second read
// almost always finds nothing (the peer has not even seen the answer yet):
// a syscall for EAGAIN on every request, and, when it does find data (the
// peer ran in between), the connection is served again at once, ahead of
// every connection that has been ready longer (a tail-latency cost with
// many connections). So when the previous read returned less than it
// asked for, the socket was empty at that moment, and any byte that came
// after raised an edge: the read parks first (waitReady), and the edge,
// already seen or still in epoll, wakes it through the ordinary batch.
//
// A short read proves the socket empty of *data* only, and only if
// nothing else stopped it:
// * The peer's FIN (or a reset) may already be queued behind the data it
//   read, announced by the same edge that woke the reader: the next read
//   would return 0 (or the error) at once, and no edge will come again.
// * Urgent (out-of-band) data stops a TCP or Unix stream read at its mark,
//   with bytes behind it and no edge to come.
//   Both are reported (EPOLLRDHUP, EPOLLHUP, EPOLLERR, EPOLLPRI) by the
//   event that announces them, which turns the shortcut off for good on
//   that socket (`alwaysReadFirst`, set in `deliver` before it wakes
//   anyone).
// * Two readers at once (outside SocketStream's one-reader contract): one's
//   short read says nothing about what the other left behind. A read that
//   finds another inside turns the shortcut off for good, too.
// Reading first is always correct.
//
// Ordering: `drained` is written by the reader before its `readers`
// decrement (release) and read after the next reader's increment
// (acquire), so a later reader alone sees the last reader's result. A
// reader that meets another sets `alwaysReadFirst` before its own
// decrement: any reader after both sees it, and one that overlaps either
// counts two readers itself. Such an event either is seen at the decision
// (acquire, pairing with `deliver`'s release) or comes after it and then
// wakes the parked reader or leaves `ready` for it.
extension PollDescriptor {
    /// A stream read of up to `capacity` bytes: `attempt` returns a count
    /// or a negative errno. Parks until readable first when the last read
    /// drained the socket; otherwise as `perform`.
    @inline(__always)
    func performStreamRead(
        capacity: Int, deadline: Int64?, operation: @autoclosure () -> String, _ attempt: () -> Int
    ) throws -> Int {
        try beginOperation(operation())
        defer { endOperation() }
        let alone = streamReaders.add(1, ordering: .acquiringAndReleasing).newValue == 1
        defer { streamReaders.subtract(1, ordering: .releasing) }
        if !alone { alwaysReadFirst.store(true, ordering: .relaxed) }
        var parkFirst = alone && streamDrained.load(ordering: .relaxed)
            && !alwaysReadFirst.load(ordering: .acquiring)
        do {
            while true {
                if !parkFirst {
                    let n = attempt()
                    if n >= 0 {
                        // Short: the receive queue was empty when the read
                        // returned. Full: more may wait (no edge will say so).
                        streamDrained.store(n > 0 && n < capacity, ordering: .relaxed)
                        return n
                    }
                    if n != -Int(EAGAIN) { throw NetError(errno: Int32(-n), operation: operation()) }
                }
                parkFirst = false
                try waitReady(.read, deadline: deadline, operation: operation())
                if isClosed { throw NetError(.closed, operation: operation()) }
            }
        } catch {
            // Reading first is always safe.
            streamDrained.store(false, ordering: .relaxed)
            throw error
        }
    }
}
