import LMDB

/// An in-memory negative filter over the `message_ids` tables: when it says a (source,
/// messageId) hash was never stored, the writer skips the two index seeks it would make to
/// learn that — nearly every event, since retries are rare. A "maybe" is checked in the
/// index as before, so a false positive costs what every event used to, and the answers do
/// not change.
///
/// A scalable split-block Bloom filter: 256-bit blocks of eight 32-bit words, one bit set in
/// each word (Putze et al.; the layout Parquet and Impala use), so a lookup reads one cache
/// line of each segment. Built at the first append from both index tables, sized for twice
/// what they hold; when a segment has taken its share (8 bits an entry, about 2 % false
/// positives), a new one twice its size takes the inserts — so it grows without scanning the
/// index again. No segment is added past one of `maxSegmentBits` bits; that last one then takes
/// every insert, its rate of false positives rising slowly, and the answers stay exact.
///
/// Only appends through this `EventLog` keep it current. It remembers the `stat/events`
/// counter its last commit left, and is built again when a transaction finds another value:
/// another process (or another `EventLog` on the directory) appended meanwhile.
final class DedupeFilter {
    static let buildBitsPerEntry = 16
    static let fullBitsPerEntry = 8
    /// The smallest segment: 1 MiB by default, a million entries at 8 bits.
    let minSegmentBits: Int
    /// The largest segment: 512 MiB by default.
    let maxSegmentBits: Int

    init(minSegmentBits: Int = 1 << 23, maxSegmentBits: Int = 1 << 32) {
        precondition(minSegmentBits >= 256 && minSegmentBits.nonzeroBitCount == 1 && maxSegmentBits.nonzeroBitCount == 1)
        self.minSegmentBits = minSegmentBits
        self.maxSegmentBits = max(minSegmentBits, maxSegmentBits)
    }

    private struct Segment {
        var words: [UInt32]
        let blockMask: UInt64
        let capacity: Int
        var count = 0

        init(bits: Int) {
            words = [UInt32](repeating: 0, count: bits / 32)
            blockMask = UInt64(bits / 256 - 1)
            capacity = bits / DedupeFilter.fullBitsPerEntry
        }
    }

    private var segments: [Segment] = []
    /// The `stat/events` counter when the filter was last known to cover the whole index.
    private(set) var coveredCount: Int64 = -1
    private(set) var entries = 0

    /// A finaliser (MurmurHash3's fmix64): the stored hash is FNV-1a, whose low bits mix poorly.
    @inline(__always) private static func mix(_ h: UInt64) -> UInt64 {
        var x = h
        x ^= x >> 33
        x &*= 0xff51_afd7_ed55_8ccd
        x ^= x >> 33
        x &*= 0xc4ce_b9fe_1a85_ec53
        x ^= x >> 33
        return x
    }

    /// The first word of `hash`'s block in a segment of `blockMask + 1` blocks, and the
    /// key its eight bits come from.
    @inline(__always) private static func locate(_ hash: UInt64, blockMask: UInt64) -> (Int, UInt32) {
        let m = mix(hash)
        return (Int(truncatingIfNeeded: (m >> 32) & blockMask) &* 8, UInt32(truncatingIfNeeded: m))
    }

    /// The eight bits `key` sets in its block, one in each 32-bit word.
    @inline(__always) private static func mask(_ key: UInt32) -> SIMD8<UInt32> {
        let salts = SIMD8<UInt32>(0x47b6_137b, 0x4497_4d91, 0x8824_ad5b, 0xa2b7_289d, 0x7054_95c7, 0x2df1_424b, 0x9efc_4947, 0x5c6b_fb31)
        return SIMD8(repeating: 1) &<< ((SIMD8(repeating: key) &* salts) &>> 27)
    }

    /// False when `hash` was certainly never inserted.
    func mayContain(_ hash: UInt64) -> Bool {
        if segments.isEmpty { return true }
        for s in segments.indices {
            let (block, key) = Self.locate(hash, blockMask: segments[s].blockMask)
            let m = Self.mask(key)
            let words = segments[s].words.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: block * 4, as: SIMD8<UInt32>.self) }
            if words & m == m { return true }
        }
        return false
    }

    func insert(_ hash: UInt64) {
        if let last = segments.last, last.count < last.capacity || last.words.count * 32 >= maxSegmentBits {
            // Room in the newest segment, or the largest there is: it takes the insert.
        } else {
            let bits = segments.last.map { $0.words.count * 32 * 2 } ?? minSegmentBits
            segments.append(Segment(bits: min(maxSegmentBits, bits)))
        }
        let n = segments.count - 1
        let (block, key) = Self.locate(hash, blockMask: segments[n].blockMask)
        segments[n].words.withUnsafeMutableBytes { w in
            let words = w.loadUnaligned(fromByteOffset: block * 4, as: SIMD8<UInt32>.self)
            w.storeBytes(of: words | Self.mask(key), toByteOffset: block * 4, as: SIMD8<UInt32>.self)
        }
        segments[n].count += 1
        entries += 1
    }

    /// Whether the filter covers an index whose `stat/events` counter reads `count`.
    func covers(count: Int64) -> Bool { !segments.isEmpty && coveredCount == count }

    /// After a commit through this filter's log: the index it covers now has `count` events.
    func didCommit(count: Int64) { coveredCount = count }

    /// Forgets everything and inserts every hash of `tables`, as `tx` sees them.
    func rebuild(_ tx: borrowing some TransactionReading & ~Copyable, tables: [Database], count: Int64) throws {
        var held = 0
        for t in tables { held += try tx.stat(t).entries }
        var bits = minSegmentBits
        while bits < maxSegmentBits, bits < held * Self.buildBitsPerEntry { bits <<= 1 }
        segments = [Segment(bits: bits)]
        entries = 0
        for t in tables {
            try tx.scan(t) { k, v in
                guard k.count == 2, v.count == 12 else { return true }
                insert(MessageIndex.decode(key: k, value: v).0)
                return true
            }
        }
        coveredCount = count
    }

    var segmentCount: Int { segments.count }
    var bytes: Int { segments.reduce(0) { $0 + $1.words.count * 4 } }
}
