import Crypto
import Foundation
import JSONCore

/// What a key opens: a source's write key for the tracking API, or an API key with a scope
/// for the query and admin API.
public enum KeyKind: String, Sendable, Codable {
    case write
    case api
}

/// The scope of an API key. `admin` includes everything `read` may do.
public enum Scope: String, Sendable, CaseIterable, Codable {
    case read
    case admin

    /// Whether a key with this scope may call a route that requires `required`.
    public func allows(_ required: Scope) -> Bool { self == .admin || self == required }
}

/// Secrets and their digests. A key is shown once, when created; only its SHA-256 digest is
/// stored, and a presented key is compared digest to digest in constant time.
public enum KeyMaterial {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A new random key: `tsw_` (write) or `tsk_` (API) and 32 base-62 characters (≈190 bits),
    /// from the system's cryptographic generator.
    public static func generate(_ kind: KeyKind) -> String {
        var rng = SystemRandomNumberGenerator()
        var out = Array((kind == .write ? "tsw_" : "tsk_").utf8)
        for _ in 0..<32 { out.append(alphabet[Int(rng.next(upperBound: UInt8(alphabet.count)))]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// SHA-256 of the key's UTF-8 bytes.
    public static func digest(_ key: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(key.utf8)))
    }

    /// The index under which a digest is looked up: its first 8 bytes. The full digest is then
    /// compared in constant time, so lookup timing says nothing about the rest of the key.
    static func prefix(_ digest: [UInt8]) -> UInt64 {
        digest.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Compares two byte strings in time that depends only on their lengths.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    /// The last four characters: enough for a person to tell keys apart in `keys list`.
    static func hint(_ key: String) -> String { String(key.suffix(4)) }

    static func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }

    static func bytes(hex: String) -> [UInt8]? {
        let u = Array(hex.utf8)
        guard u.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let h = nibble(u[i]), let l = nibble(u[i + 1]) else { return nil }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }
}
