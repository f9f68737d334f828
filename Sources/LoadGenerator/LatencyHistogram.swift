/// A log-linear histogram of non-negative integers (nanoseconds here), the
/// HdrHistogram layout: values below 128 get one bucket each, and every
/// power-of-two range above is split into 64 equal buckets, so any recorded
/// value is known to within 1/64 (1.6 %) at a fixed 2,300 counters, whatever
/// the range. Recording is an index computation and an increment, cheap
/// enough for every request of a load generator.
public struct LatencyHistogram: Sendable {
    /// Values below this get exact buckets.
    private static let exactLimit: UInt64 = 128
    /// Buckets per power of two above `exactLimit`.
    private static let perOctave = 64
    /// Covers values up to 2^63, more than any latency.
    private static let bucketCount = Int(exactLimit) + 57 * perOctave

    private var counts: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var min: UInt64 = .max
    public private(set) var max: UInt64 = 0
    private var sum: Double = 0

    public init() {
        counts = [UInt64](repeating: 0, count: Self.bucketCount)
    }

    public mutating func record(_ value: UInt64) {
        counts[Self.index(of: value)] &+= 1
        count &+= 1
        sum += Double(value)
        if value < min { min = value }
        if value > max { max = value }
    }

    public mutating func merge(_ other: LatencyHistogram) {
        for i in 0..<counts.count { counts[i] &+= other.counts[i] }
        count &+= other.count
        sum += other.sum
        if other.min < min { min = other.min }
        if other.max > max { max = other.max }
    }

    public var mean: Double { count == 0 ? 0 : sum / Double(count) }

    /// The value below which `percentile` percent of the recorded values
    /// lie, as the midpoint of its bucket (clamped to the recorded range);
    /// 0 when nothing was recorded.
    public func value(atPercentile percentile: Double) -> UInt64 {
        precondition((0...100).contains(percentile), "percentile \(percentile) is outside 0...100")
        guard count > 0 else { return 0 }
        // The rank of the wanted value, 1-based: p99 of 1,000 values is the 990th.
        let rank = Swift.max(1, UInt64((percentile / 100 * Double(count)).rounded(.up)))
        var seen: UInt64 = 0
        for (i, c) in counts.enumerated() where c > 0 {
            seen += c
            if seen >= rank {
                let (low, width) = Self.bucket(i)
                return Swift.min(Swift.max(low + width / 2, min), max)
            }
        }
        return max
    }

    static func index(of value: UInt64) -> Int {
        if value < exactLimit { return Int(value) }
        let msb = 63 - value.leadingZeroBitCount          // >= 7
        let shift = msb - 6                                // value >> shift is in 64..<128
        return Int(exactLimit) + (shift - 1) * perOctave + Int(value >> UInt64(shift)) - perOctave
    }

    /// The lowest value of bucket `i` and how many values it holds.
    static func bucket(_ i: Int) -> (low: UInt64, width: UInt64) {
        if i < Int(exactLimit) { return (UInt64(i), 1) }
        let shift = (i - Int(exactLimit)) / perOctave + 1
        let mantissa = UInt64((i - Int(exactLimit)) % perOctave + perOctave)
        return (mantissa << UInt64(shift), 1 << UInt64(shift))
    }
}
