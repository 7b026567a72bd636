import CJemalloc
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
    /// Calls `body` with the key and value bytes of (hash, seq), built on the stack (the
    /// writer puts one entry and looks up two per event); the one place the layout is written.
    @inline(__always)
    static func withEntry<T>(_ hash: UInt64, seq: UInt64,
                             _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        try withUnsafeTemporaryAllocation(byteCount: 14, alignment: 1) { raw in
            raw[0] = UInt8(hash >> 56)
            raw[1] = UInt8(truncatingIfNeeded: hash >> 48)
            for i in 0..<6 {
                raw[2 + i] = UInt8(truncatingIfNeeded: hash >> (8 * (5 - i)))
                raw[8 + i] = UInt8(truncatingIfNeeded: seq >> (8 * (5 - i)))
            }
            let all = UnsafeRawBufferPointer(raw)
            return try body(UnsafeRawBufferPointer(rebasing: all[0..<2]), UnsafeRawBufferPointer(rebasing: all[2..<14]))
        }
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

/// The process's allocator: jemalloc, linked into every executable through this module, so
/// it serves the Swift runtime's and every library's `malloc` and `free` too. The folds and the
/// import allocate and free millions of small objects on one thread and release them on
/// another; glibc's malloc spent ≈ 17 % of a rebuild's CPU on that (arena locks, chunk
/// coalescing, page faults of a heap top it kept trimming), jemalloc's per-thread caches a
/// fraction of it (rebuild of 10M events: 176–191k → 239k events/s, 13 → 5 s of system time).
public enum Allocator {
    /// What allocates, e.g. `jemalloc 5.3.0-0-g54eaed1d…`; `libc` when jemalloc is not in use.
    public static var name: String {
        var version: UnsafePointer<CChar>?
        var size = MemoryLayout<UnsafePointer<CChar>?>.size
        guard mallctl("version", &version, &size, nil, 0) == 0, let version else { return "libc" }
        return "jemalloc " + String(cString: version)
    }

    /// Bytes the process has allocated and not freed, and bytes of memory the allocator holds
    /// resident for them (jemalloc's `stats.allocated`, `stats.resident`); nil without jemalloc.
    public static func stats() -> (allocated: Int, resident: Int)? {
        var epoch: UInt64 = 1
        guard mallctl("epoch", nil, nil, &epoch, MemoryLayout<UInt64>.size) == 0 else { return nil }  // refresh the statistics
        func read(_ name: String) -> Int? {
            var value = 0
            var size = MemoryLayout<Int>.size
            return mallctl(name, &value, &size, nil, 0) == 0 ? value : nil
        }
        guard let allocated = read("stats.allocated"), let resident = read("stats.resident") else { return nil }
        return (allocated, resident)
    }
}
