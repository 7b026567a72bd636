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

    init(header: String) {
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { self = .malformed; return }
        let value = parts[1].trimmingCharacters(in: .whitespaces)
        switch parts[0].lowercased() {
        case "basic":
            guard let decoded = Base64.decode(value), let text = String(validating: decoded, as: UTF8.self) else {
                self = .malformed
                return
            }
            if let colon = text.firstIndex(of: ":") {
                self = .basic(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
            } else {
                self = .basic(username: text, password: "")
            }
        case "bearer":
            self = value.isEmpty ? .malformed : .bearer(value)
        default:
            self = .malformed
        }
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
        return text.withUTF8 { s -> [UInt8]? in
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
}
