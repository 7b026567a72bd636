import Foundation
import Hummingbird

/// The credentials a request carries in its `Authorization` header.
enum Credentials: Equatable {
    /// `Basic base64(username:password)`: Segment's clients send the write key as the
    /// username with an empty password.
    case basic(username: String, password: String)
    /// `Bearer <key>`: API keys.
    case bearer(String)
    /// A header Touchstone cannot read.
    case malformed

    /// The credentials in `request`, nil when it has no `Authorization` header.
    init?(_ request: Request) {
        guard let header = request.headers[.authorization] else { return nil }
        self = Credentials(header: header)
    }

    /// The scheme is the first word, compared without case; the value is the rest, without
    /// the spaces and tabs around it (HTTP's optional whitespace). Read as bytes: this runs on
    /// every tracking request, and Foundation's `trimmingCharacters` took most of its time.
    init(header: String) {
        var header = header
        self = header.withUTF8 { Self.parse($0) }
    }

    private static func parse(_ h: UnsafeBufferPointer<UInt8>) -> Credentials {
        func isSpace(_ c: UInt8) -> Bool { c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") }
        var start = 0
        while start < h.count, isSpace(h[start]) { start += 1 }
        var end = start
        while end < h.count, !isSpace(h[end]) { end += 1 }
        let scheme = UnsafeBufferPointer(rebasing: h[start..<end])
        var valueStart = end, valueEnd = h.count
        while valueStart < valueEnd, isSpace(h[valueStart]) { valueStart += 1 }
        while valueEnd > valueStart, isSpace(h[valueEnd - 1]) { valueEnd -= 1 }
        let value = UnsafeBufferPointer(rebasing: h[valueStart..<valueEnd])
        guard !value.isEmpty else { return .malformed }
        if schemeIs(scheme, "basic") {
            guard let decoded = Base64.decode(value), let text = String(validating: decoded, as: UTF8.self) else { return .malformed }
            if let colon = text.firstIndex(of: ":") {
                return .basic(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
            }
            return .basic(username: text, password: "")
        }
        if schemeIs(scheme, "bearer") { return .bearer(String(decoding: value, as: UTF8.self)) }
        return .malformed
    }

    /// Whether `scheme` is `name` (lower-case ASCII) in any case.
    private static func schemeIs(_ scheme: UnsafeBufferPointer<UInt8>, _ name: StaticString) -> Bool {
        guard scheme.count == name.utf8CodeUnitCount else { return false }
        for i in 0..<scheme.count where scheme[i] | 0x20 != name.utf8Start[i] { return false }
        return true
    }
}

extension KeyRefusal {
    /// Why a key was refused, without repeating the key.
    func message(expecting kind: KeyKind) -> String {
        switch self {
        case .unknown:
            return kind == .write ? "unknown write key" : "unknown API key"
        case .revoked:
            return kind == .write ? "the write key was revoked" : "the API key was revoked"
        case .wrongKind(let got):
            return got == .api
                ? "an API key cannot send events; use a source's write key (HTTP Basic username)"
                : "a write key cannot call this API; use an API key (Authorization: Bearer)"
        }
    }
}

/// Standard base64 (RFC 4648 §4, padded, as `Data(base64Encoded:)` accepts it) decoded
/// without Foundation: every write request carries its key this way, and `Data` plus
/// `String(data:encoding:)` cost more than the rest of reading the header.
enum Base64 {
    private static let values: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// The bytes `text` encodes; nil unless its length is a multiple of four, every character
    /// is of the alphabet, and `=` pads only the end (at most two).
    static func decode(_ text: String) -> [UInt8]? {
        var text = text
        return text.withUTF8 { decode($0) }
    }

    /// The bytes the base64 text `s` encodes (`decode(_: String)`'s rules).
    static func decode(_ s: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard s.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(s.count / 4 * 3)
        var i = 0
        while i < s.count {
            let last = i + 4 == s.count
            let pad = last ? (s[i + 3] == UInt8(ascii: "=") ? (s[i + 2] == UInt8(ascii: "=") ? 2 : 1) : 0) : 0
            var n: UInt32 = 0
            for j in 0..<4 {
                let v: UInt8 = j >= 4 - pad ? 0 : values[Int(s[i + j])]
                if v == 0xFF { return nil }
                n = n << 6 | UInt32(v)
            }
            out.append(UInt8(n >> 16))
            if pad < 2 { out.append(UInt8(n >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(n & 0xFF)) }
            i += 4
        }
        return out
    }
}
