import CZstd

/// A zstd failure, with zstd's own error name.
public struct ZstdError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { "zstd: \(message)" }
}

@inline(__always)
func zstdCheck(_ rc: Int, _ what: String) throws(ZstdError) -> Int {
    if ZSTD_isError(rc) != 0 { throw ZstdError(message: "\(what): \(String(cString: ZSTD_getErrorName(rc)))") }
    return rc
}

/// A trained dictionary with its prepared compression and decompression forms. Built once,
/// shared read-only across threads (zstd allows concurrent use of a CDict/DDict).
public final class ZstdDictionary: @unchecked Sendable {
    /// Touchstone's id for this dictionary (1, 2, …), stored in each record's header.
    public let id: UInt32
    public let bytes: [UInt8]
    let cdict: OpaquePointer
    let ddict: OpaquePointer

    public init(id: UInt32, bytes: [UInt8], level: Int32 = 3) throws(ZstdError) {
        self.id = id
        self.bytes = bytes
        guard let c = bytes.withUnsafeBytes({ ZSTD_createCDict($0.baseAddress, $0.count, level) }),
              let d = bytes.withUnsafeBytes({ ZSTD_createDDict($0.baseAddress, $0.count) }) else {
            throw ZstdError(message: "dictionary \(id) could not be loaded")
        }
        cdict = c
        ddict = d
    }

    deinit {
        ZSTD_freeCDict(cdict)
        ZSTD_freeDDict(ddict)
    }

    /// Trains a dictionary of at most `capacity` bytes from sample payloads (`ZDICT_trainFromBuffer`).
    /// - Throws: when the samples are too few or too uniform to train on.
    public static func train(samples: [[UInt8]], capacity: Int = 64 * 1024) throws(ZstdError) -> [UInt8] {
        var flat: [UInt8] = []
        flat.reserveCapacity(samples.reduce(0) { $0 + $1.count })
        var sizes: [Int] = []
        sizes.reserveCapacity(samples.count)
        for s in samples { flat.append(contentsOf: s); sizes.append(s.count) }
        var dict = [UInt8](repeating: 0, count: capacity)
        let n = dict.withUnsafeMutableBytes { d in
            flat.withUnsafeBytes { f in
                ZDICT_trainFromBuffer(d.baseAddress, capacity, f.baseAddress, sizes, UInt32(sizes.count))
            }
        }
        if ZDICT_isError(n) != 0 { throw ZstdError(message: "dictionary training: \(String(cString: ZDICT_getErrorName(n)))") }
        return Array(dict[..<n])
    }
}

/// Compression contexts shared by worker threads: take one, use it, give it back.
final class CompressorPool: @unchecked Sendable {
    private let lock = NSLockShim()
    private var free: [Compressor] = []
    let level: Int32

    init(level: Int32) { self.level = level }

    func with<T>(_ body: (Compressor) throws -> T) rethrows -> T {
        let c = lock.withLock { free.popLast() } ?? Compressor(level: level)
        defer { lock.withLock { free.append(c) } }
        return try body(c)
    }
}

/// A reusable compression context (one per thread). Frames carry a content checksum and no
/// dictionary id (the record header names the dictionary).
public final class Compressor {
    let cctx: OpaquePointer
    let level: Int32

    public init(level: Int32 = 3) {
        cctx = ZSTD_createCCtx()
        self.level = level
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_dictIDFlag, 0)
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
    }

    deinit { ZSTD_freeCCtx(cctx) }

    /// Appends one zstd frame of `input` to `out`.
    public func compress(_ input: [UInt8], dictionary: ZstdDictionary?, into out: inout [UInt8]) throws(ZstdError) {
        let bound = ZSTD_compressBound(input.count)
        let start = out.count
        out.reserveCapacity(start + bound)
        _ = try zstdCheck(ZSTD_CCtx_refCDict(cctx, dictionary?.cdict), "refCDict")
        var written = 0
        var failure: ZstdError?
        out.append(contentsOf: repeatElement(0, count: bound))
        out.withUnsafeMutableBytes { o in
            input.withUnsafeBytes { i in
                let rc = ZSTD_compress2(cctx, o.baseAddress! + start, bound, i.baseAddress, i.count)
                if ZSTD_isError(rc) != 0 { failure = ZstdError(message: String(cString: ZSTD_getErrorName(rc))) } else { written = rc }
            }
        }
        if let failure { out.removeLast(bound); throw failure }
        out.removeLast(bound - written)
    }
}

/// A reusable decompression context (one per thread).
public final class Decompressor {
    let dctx: OpaquePointer
    /// Largest decompressed size accepted, a guard against corrupt size fields.
    public var maxSize = 16 << 20

    public init() { dctx = ZSTD_createDCtx() }
    deinit { ZSTD_freeDCtx(dctx) }

    private var scratch: [UInt8] = []

    /// Decompresses a frame stored without its 4-byte magic number.
    public func decompress(magicless frame: UnsafeRawBufferPointer, dictionary: ZstdDictionary?) throws(ZstdError) -> [UInt8] {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: [0x28, 0xB5, 0x2F, 0xFD])  // ZSTD_MAGICNUMBER, little-endian
        scratch.append(contentsOf: frame)
        let result: Result<[UInt8], ZstdError> = scratch.withUnsafeBytes { b in
            do throws(ZstdError) { return .success(try decompress(b, dictionary: dictionary)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Decompresses one frame, verifying its checksum.
    public func decompress(_ frame: UnsafeRawBufferPointer, dictionary: ZstdDictionary?) throws(ZstdError) -> [UInt8] {
        let size = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        if size == ZSTD_CONTENTSIZE_ERROR { throw ZstdError(message: "not a zstd frame") }
        if size == ZSTD_CONTENTSIZE_UNKNOWN || size > UInt64(maxSize) {
            throw ZstdError(message: "frame content size \(size) unknown or too large")
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        let rc = out.withUnsafeMutableBytes { o in
            if let dictionary {
                return ZSTD_decompress_usingDDict(dctx, o.baseAddress, o.count, frame.baseAddress, frame.count, dictionary.ddict)
            }
            return ZSTD_decompressDCtx(dctx, o.baseAddress, o.count, frame.baseAddress, frame.count)
        }
        let n = try zstdCheck(rc, "decompress")
        guard n == out.count else { throw ZstdError(message: "frame decompressed to \(n) bytes, header said \(out.count)") }
        return out
    }
}

/// Plain zstd of a whole buffer (no dictionary), for files and dead letters.
public enum Zstd {
    public static func compress(_ input: [UInt8], level: Int32 = 3) throws(ZstdError) -> [UInt8] {
        var out: [UInt8] = []
        try Compressor(level: level).compress(input, dictionary: nil, into: &out)
        return out
    }

    public static func decompress(_ input: [UInt8]) throws -> [UInt8] {
        try input.withUnsafeBytes { b in try Decompressor().decompress(b, dictionary: nil) }
    }
}
