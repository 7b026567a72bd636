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
            guard let data = Data(base64Encoded: value), let text = String(data: data, encoding: .utf8) else {
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
