/// A channel that receives the current instant at every multiple of a
/// period, like Go's `time.Ticker`.
///
/// ```swift
/// let ticker = Ticker(every: .seconds(1))
/// defer { ticker.stop() }
/// for _ in ticker.channel { report() }
/// ```
///
/// Ticks stay on the grid `start + k·period` however late one is
/// delivered, and a reader slower than the period misses ticks rather than
/// falling behind: the channel holds at most one. Usable from green
/// threads and plain OS threads, on the same homes as `GreenTimer`. It
/// ticks until stopped, whether or not the `Ticker` is still referenced.
public final class Ticker: Sendable {
    /// Receives the instant of each tick; holds at most one; never closed.
    public let channel: Channel<ContinuousClock.Instant>
    let timer: ChannelTimer

    /// Starts a ticker whose first tick comes one `period` from now.
    ///
    /// - Precondition: `period` is positive (as Go's `NewTicker` panics on
    ///   a non-positive interval: a ticker that fires continuously is a
    ///   bug, never a setting).
    public init(every period: Duration) {
        timer = ChannelTimer(after: period, period: Ticker.checked(period, "Ticker(every:)"))
        channel = timer.channel
    }

    /// Stops the ticker. No tick is received after this returns (a tick
    /// buffered and unread is discarded).
    public func stop() {
        _ = timer.stop()
    }

    /// Stops the ticker and starts it again with a new period; the next
    /// tick comes one `period` from now. A tick buffered and unread is
    /// discarded.
    ///
    /// - Precondition: `period` is positive.
    public func reset(every period: Duration) {
        _ = timer.reset(after: period, period: Ticker.checked(period, "Ticker.reset(every:)"))
    }

    /// `period` in nanoseconds, stopping the program if it is not positive.
    private static func checked(_ period: Duration, _ call: StaticString) -> Int64 {
        let ns = TimerHome.nanoseconds(period)
        precondition(ns > 0, "GreenThreads: \(call) needs a positive period; got \(period)")
        return ns
    }
}
