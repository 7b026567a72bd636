import Foundation

/// A mutex with a closure API.
final class NSLockShim: @unchecked Sendable {
    private let l = NSLock()
    @inline(__always) func withLock<T>(_ body: () throws -> T) rethrows -> T {
        l.lock()
        defer { l.unlock() }
        return try body()
    }
}

/// 64-bit FNV-1a: stable across runs and machines (unlike `Hasher`), for on-disk index keys.
public enum StableHash {
    public static func fnv1a(_ parts: String...) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for (n, p) in parts.enumerated() {
            if n > 0 { h = (h ^ 0) &* 0x100_0000_01b3 }
            for b in p.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        }
        // Final avalanche (from splitmix64) spreads FNV's weak low bits across the key.
        h ^= h >> 30; h &*= 0xbf58_476d_1ce4_e5b9
        h ^= h >> 27; h &*= 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        return h
    }
}

/// The wall clock in µs — only at ingest (receivedAt), never inside a fold.
public func nowMicros() -> Micros {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Micros(ts.tv_sec) * 1_000_000 + Micros(ts.tv_nsec / 1000)
}

/// The layout of the `message_ids` index, packed for size: the key is the top 16 bits of the
/// (source, messageId) hash; each value (a sorted fixed-size duplicate, no per-entry node
/// header) is the other 48 bits of the hash and the seq, 6 bytes each, big-endian. About 17
/// bytes an event instead of ~40 for a plain hash → seq table.
enum MessageIndex {
    static func key(_ hash: UInt64) -> [UInt8] { [UInt8(hash >> 56), UInt8(truncatingIfNeeded: hash >> 48)] }

    static func value(_ hash: UInt64, seq: UInt64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 12)
        for i in 0..<6 {
            out[i] = UInt8(truncatingIfNeeded: hash >> (8 * (5 - i)))
            out[6 + i] = UInt8(truncatingIfNeeded: seq >> (8 * (5 - i)))
        }
        return out
    }

    /// (hash, seq) of a stored entry.
    static func decode(key k: UnsafeRawBufferPointer, value v: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var hash = UInt64(k[0]) << 56 | UInt64(k[1]) << 48
        var seq: UInt64 = 0
        for i in 0..<6 {
            hash |= UInt64(v[i]) << (8 * (5 - i))
            seq = seq << 8 | UInt64(v[6 + i])
        }
        return (hash, seq)
    }
}

#if os(Linux)
/// glibc's `mallopt` (not in the Glibc module: it lives in `<malloc.h>`).
@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// Process-wide allocator settings for the long-running folds and imports.
public enum AllocatorTuning {
    /// Keeps glibc from handing each batch's multi-megabyte arrays to `mmap` and back to the
    /// kernel (every batch then page-faults and zeroes fresh pages: `clear_page_erms` in a
    /// profile); freed memory is reused instead. Call once at start-up.
    public static func reuseLargeBlocks() {
        #if os(Linux)
        let trimThreshold: Int32 = -1, mmapThreshold: Int32 = -3  // M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
        _ = glibcMallopt(mmapThreshold, 64 << 20)
        _ = glibcMallopt(trimThreshold, 256 << 20)
        #endif
    }
}
