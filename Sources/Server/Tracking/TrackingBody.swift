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
    /// The readable bytes, one JSON text, in binary form (`JSON.transcode`).
    /// With `elementsAt`, also the text sizes of the elements of the arrays that many levels in.
    func transcodeJSON(elementsAt depth: Int? = nil) -> Result<([UInt8], TextSizes), JSONParseError> {
        withUnsafeReadableBytes { raw in
            let bytes = UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count)
            do throws(JSONParseError) {
                if let depth { return .success(try JSON.transcode(bytes, elementsAt: depth)) }
                return .success((try JSON.transcode(bytes), TextSizes()))
            } catch { return .failure(error) }
        }
    }
}
