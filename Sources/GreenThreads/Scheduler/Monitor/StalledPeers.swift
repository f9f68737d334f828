import CContext

/// Work stranded behind a peer the kernel descheduled.
///
/// On cores shared with other processes (a server beside its clients, or
/// anything else), the kernel takes a busy worker off its CPU for a time
/// slice, and at 250 Hz a slice ends only at a tick: 4 ms. The green threads
/// queued on that worker wait out the slice, although another worker is
/// running. That one steals only once its own deque runs dry, and a server's
/// worker seldom does: whenever it empties its deque it polls and finds new
/// connections ready, so the stranded ones wait behind work that arrived
/// after them. (Sysmon's rescue wakes *idle* workers only, and sleeps up to
/// 10 ms between rounds.)
///
/// So before a worker takes new readiness from the poller it looks at its
/// peers: one whose switch count has not moved for `stallNanos`, with green
/// threads queued, is not running them, and it steals half. A worker that
/// merely runs one long green thread looks the same and is rescued the same
/// way, which is right for its queue as well.
struct PeerWatch {
    /// Per worker index: the switch count last seen, and when it was first
    /// seen (grown on first sight: spares join later).
    private var seen: [(count: Int, since: Int64)] = []

    /// Records that worker `index` shows `count` at `now`; returns how long
    /// it has shown it.
    mutating func stalledFor(_ index: Int, count: Int, now: Int64) -> Int64 {
        if index >= seen.count { seen += repeatElement((count: -1, since: Int64(0)), count: index + 1 - seen.count) }
        if seen[index].count != count {
            seen[index] = (count, now)
            return 0
        }
        return now - seen[index].since
    }
}

extension Worker {
    /// Far longer than a green thread's turn in a server (microseconds) or
    /// a wake-up preemption (tens of µs), well short of a 4 ms tick. On the
    /// echo benchmark 250 µs cut p99 as much but moved more threads.
    static let stallNanos: Int64 = 1_000_000

    /// Steals from a peer that has been stalled with green threads queued.
    /// Called by a worker out of local work that is about to poll.
    func rescueFromStalledPeer(now: Int64) -> Unmanaged<Fiber>? {
        for group in victims {
            for v in group {
                let found = v._withUnsafeGuaranteedRef { peer -> Unmanaged<Fiber>? in
                    if peer === self { return nil }
                    let count = peer.switchCount.load(ordering: .relaxed)
                    let stalled = local.pointee.peers.stalledFor(peer.index, count: count, now: now)
                    guard stalled >= Self.stallNanos, !peer.deque.isEmpty else { return nil }
                    return steal(from: peer, takeRunNext: true)
                }
                if let found { return found }
            }
        }
        return nil
    }
}
