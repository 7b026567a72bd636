import CompressNIO
import Hummingbird
import JSONCore
import NIOCore

/// The size limits of the tracking API (all configurable; see `ServerConfiguration.Limits`).
public struct TrackingLimits: Sendable, Equatable {
    /// Largest message (Segment's limit: 32 KB).
    public var maxMessageBytes = 32 * 1024
    /// Largest request body as sent (compressed or not).
    public var maxBodyBytes = 4 << 20
    /// Largest body once a `Content-Encoding: gzip` body is inflated: a gzip bomb stops here.
    public var maxInflatedBytes = 4 << 20
    /// How much of a rejected oversized body is kept in the dead letters.
    public var deadLetterBodyBytes = 64 * 1024

    public init() {}
}

/// A tracking request's body, read against the limits.
enum TrackingBody {
    /// The body, inflated when it was gzip-encoded.
    case complete(ByteBuffer)
    /// Over a limit: the first bytes as received, and why.
    case tooLarge(prefix: [UInt8], reason: String)
    /// A gzip body that does not inflate.
    case corrupt(prefix: [UInt8], reason: String)
    /// A `Content-Encoding` other than gzip or identity.
    case unsupportedEncoding(String)

    static func read(_ request: Request, limits: TrackingLimits) async throws -> TrackingBody {
        let encoding = request.headers[.contentEncoding]?.trimmingCharacters(in: .whitespaces).lowercased() ?? "identity"
        let gzip: Bool
        switch encoding {
        case "gzip", "x-gzip": gzip = true
        case "identity", "": gzip = false
        default: return .unsupportedEncoding(encoding)
        }
        var buffer = ByteBuffer()
        for try await chunk in request.body {
            if buffer.readableBytes + chunk.readableBytes > limits.maxBodyBytes {
                var prefix = Array(buffer.readableBytesView.prefix(limits.deadLetterBodyBytes))
                if prefix.count < limits.deadLetterBodyBytes {
                    prefix += chunk.readableBytesView.prefix(limits.deadLetterBodyBytes - prefix.count)
                }
                return .tooLarge(prefix: prefix, reason: "the request body is over the \(limits.maxBodyBytes)-byte limit")
            }
            var chunk = chunk
            buffer.writeBuffer(&chunk)
        }
        guard gzip else { return .complete(buffer) }
        let prefix = { Array(buffer.readableBytesView.prefix(limits.deadLetterBodyBytes)) }
        var compressed = buffer
        do {
            let inflated = try compressed.decompress(with: .gzip(), maxSize: limits.maxInflatedBytes + 1)
            if inflated.readableBytes > limits.maxInflatedBytes {
                return .tooLarge(prefix: prefix(), reason: "the gzip body inflates past the \(limits.maxInflatedBytes)-byte limit")
            }
            return .complete(inflated)
        } catch let e as CompressNIOError where e == .bufferOverflow {
            return .tooLarge(prefix: prefix(), reason: "the gzip body inflates past the \(limits.maxInflatedBytes)-byte limit")
        } catch {
            return .corrupt(prefix: prefix(), reason: "the body is not valid gzip (\(error))")
        }
    }
}

extension ByteBuffer {
    /// Parses the readable bytes as one JSON text.
    func parseJSON() -> Result<JSON, JSONParseError> {
        withUnsafeReadableBytes { raw in
            let bytes = UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count)
            do throws(JSONParseError) { return .success(try JSON.parse(bytes)) } catch { return .failure(error) }
        }
    }
}

extension JSON {
    /// The length of `jsonBytes()` without writing them: a batch member's size as the limit
    /// counts it (whitespace the client sent does not count against it).
    var compactByteCount: Int {
        switch self {
        case .null: return 4
        case .bool(let b): return b ? 4 : 5
        case .int(let i): return String(i).utf8.count
        case .double(let d): return JSON.formatDouble(d).utf8.count
        case .string(let s): return JSON.quotedLength(s)
        case .array(let a): return 2 + max(0, a.count - 1) + a.reduce(0) { $0 + $1.compactByteCount }
        case .object(let o): return 2 + max(0, o.count - 1) + o.reduce(0) { $0 + JSON.quotedLength($1.0) + 1 + $1.1.compactByteCount }
        }
    }

    private static func quotedLength(_ s: String) -> Int {
        @inline(__always) func extra(_ c: UInt8) -> Int {
            switch c {
            case 0x22, 0x5C, 0x0A, 0x0D, 0x09: return 1
            case 0..<0x20: return 5
            default: return 0
            }
        }
        if let n = s.utf8.withContiguousStorageIfAvailable({ buf -> Int in
            var n = buf.count + 2
            for c in buf where c < 0x20 || c == 0x22 || c == 0x5C { n += extra(c) }
            return n
        }) {
            return n
        }
        return s.utf8.reduce(2) { $0 + 1 + extra($1) }
    }
}
