import NetExamples

/// A `ByteSource` that hands out fixed bytes in chunks of the given sizes
/// (cycling), then reports the end of the stream: a request split across
/// packets the way TCP may split it.
final class ScriptedSource: ByteSource {
    private let bytes: [UInt8]
    private let chunks: [Int]
    private var offset = 0
    private var turn = 0

    init(_ text: String, chunks: [Int] = [Int.max]) {
        bytes = Array(text.utf8)
        self.chunks = chunks
    }

    func readSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = Swift.min(buffer.count, bytes.count - offset, chunks[turn % chunks.count])
        turn += 1
        for i in 0..<n { buffer[i] = bytes[offset + i] }
        offset += n
        return n
    }
}

/// A small deterministic generator (SplitMix64) so randomized tests repeat.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
