import CZstd
import Foundation

/// Reads newline-delimited records from a file descriptor in large blocks, decompressing
/// zstd input on the fly. Memory stays flat whatever the input's size.
/// Not thread-safe: one thread reads at a time (it may be handed to another thread whole).
public final class LineReader: @unchecked Sendable {
    private let fd: Int32
    private let closeWhenDone: Bool
    private var zstd: OpaquePointer?
    private var raw = [UInt8](repeating: 0, count: 1 << 20)
    private var buffer: [UInt8] = []
    private var start = 0
    private var eof = false
    /// Lines longer than this are returned cut, flagged by `LineReader.Line.truncated`.
    public let maxLine: Int

    public struct Line {
        public var bytes: ArraySlice<UInt8>
        public var truncated: Bool
    }

    /// Opens `path` (`-` = standard input); a `.zst` name is decompressed.
    public init(path: String, maxLine: Int = 8 << 20) throws {
        self.maxLine = maxLine
        if path == "-" {
            fd = 0
            closeWhenDone = false
        } else {
            fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw CocoaError(.fileReadNoSuchFile, userInfo: [NSFilePathErrorKey: path]) }
            closeWhenDone = true
        }
        if path.hasSuffix(".zst") || path.hasSuffix(".zstd") { zstd = ZSTD_createDStream(); ZSTD_initDStream(zstd) }
    }

    deinit {
        if closeWhenDone { close(fd) }
        if let zstd { ZSTD_freeDStream(zstd) }
    }

    /// Reads the next block of input into `buffer`; false at end of input.
    private func fill() throws -> Bool {
        if eof { return false }
        // Drop consumed bytes; the lines handed out are slices of the old storage (copy-on-write).
        if start > 0 { buffer = Array(buffer[start...]); start = 0 }
        let n = raw.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        if n == 0 { eof = true; return false }
        if let zstd {
            var out = [UInt8](repeating: 0, count: 4 << 20)
            try raw.withUnsafeBytes { r in
                var input = ZSTD_inBuffer(src: r.baseAddress, size: n, pos: 0)
                while input.pos < input.size {
                    let produced: Int = try out.withUnsafeMutableBytes { o in
                        var output = ZSTD_outBuffer(dst: o.baseAddress, size: o.count, pos: 0)
                        let rc = ZSTD_decompressStream(zstd, &output, &input)
                        if ZSTD_isError(rc) != 0 { throw ZstdError(message: String(cString: ZSTD_getErrorName(rc))) }
                        return output.pos
                    }
                    buffer.append(contentsOf: out[..<produced])
                }
            }
        } else {
            buffer.append(contentsOf: raw[..<n])
        }
        return true
    }

    /// The next line without its newline (a trailing `\r` is dropped too); nil at the end.
    public func next() throws -> Line? {
        while true {
            let found: Int? = buffer.withUnsafeBufferPointer { b in
                guard start < b.count else { return nil }
                // memchr: the newline search is the hot loop of an import's reader.
                guard let p = memchr(b.baseAddress! + start, 0x0A, b.count - start) else { return nil }
                return b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
            }
            if let nl = found {
                var end = nl
                if end > start, buffer[end - 1] == 0x0D { end -= 1 }
                let line = buffer[start..<end]
                start = nl + 1
                if line.count > maxLine { return Line(bytes: line.prefix(maxLine), truncated: true) }
                return Line(bytes: line, truncated: false)
            }
            if try !fill() {
                guard start < buffer.count else { return nil }
                let line = buffer[start...]
                start = buffer.count
                return Line(bytes: line, truncated: line.count > maxLine)
            }
        }
    }
}
