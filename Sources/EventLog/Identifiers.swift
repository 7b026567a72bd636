import Foundation
import JSONCore

/// One identifier of a customer: a type (`user_id`, `anonymous_id`, `email`, `phone`,
/// `device_id`, or a `context.externalIds[].type` such as `loyalty_id`) and a normalised value.
public struct Identifier: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var type: String
    public var value: String

    public init(type: String, value: String) {
        self.type = type
        self.value = value
    }

    /// `type:value`, as in API paths.
    public var description: String { type + ":" + value }

    /// The identity index key: type, NUL, value.
    public var key: [UInt8] {
        var k = Array(type.utf8)
        k.append(0)
        k.append(contentsOf: value.utf8)
        return k
    }

    public static func < (a: Identifier, b: Identifier) -> Bool {
        a.type != b.type ? a.type < b.type : a.value < b.value
    }

    /// Parses `type:value` (the value may itself contain colons). The value is normalised as
    /// the resolver normalises it, so `email: Jane@Example.com ` finds `email:jane@example.com`.
    public static func parse(_ text: String) -> Identifier? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let type = String(text[..<colon]), raw = String(text[text.index(after: colon)...])
        guard !type.isEmpty, !raw.isEmpty else { return nil }
        if type == "profile_id" { return Identifier(type: type, value: raw) }
        guard let value = normalise(type: type, raw) else { return nil }
        return Identifier(type: type, value: value)
    }

    /// Normalises a raw identifier value: trims; emails lower-cased (and must have an `@`);
    /// phones reduced to digits with a leading `+` kept (at least 7 digits). Nil: unusable.
    public static func normalise(type: String, _ raw: String) -> String? {
        let trimmed = raw.trimmingWhitespace()
        guard !trimmed.isEmpty, trimmed.utf8.count <= 256 else { return nil }
        switch type {
        case "email":
            let e = trimmed.lowercased()
            guard let at = e.firstIndex(of: "@"), at != e.startIndex, e.index(after: at) != e.endIndex else { return nil }
            return e
        case "phone":
            var out = ""
            var digits = 0
            for (i, c) in trimmed.unicodeScalars.enumerated() {
                if c == "+" && i == 0 { out.append("+") } else if c.properties.numericType == .decimal, c.isASCII {
                    out.unicodeScalars.append(c)
                    digits += 1
                }
            }
            return digits >= 7 ? out : nil
        default:
            return trimmed
        }
    }
}

/// An identifier as found on an event, with where it came from (for `identity explain`).
public struct FoundIdentifier: Sendable {
    public var id: Identifier
    public var origin: String
    public init(id: Identifier, origin: String) { self.id = id; self.origin = origin }
}

public enum IdentifierExtractor {
    /// Every identifier on `event`, normalised, without duplicates, in a fixed order.
    /// `previousId` (alias) is returned separately: its type depends on the index.
    public static func extract(_ view: JSONView, into out: inout [FoundIdentifier], dropped: inout [(String, String, String)]) {
        extract(EventFields(view), into: &out, dropped: &dropped)
    }

    /// The same, from fields already looked up.
    public static func extract(_ f: EventFields, into out: inout [FoundIdentifier], dropped: inout [(String, String, String)]) {
        func add(_ type: String, _ raw: JSONView?, _ origin: String) {
            guard let raw, let text = raw.scalarText else { return }
            guard let v = Identifier.normalise(type: type, text) else {
                if !text.trimmingWhitespace().isEmpty { dropped.append((type + ":" + text, origin, "not a valid \(type)")) }
                return
            }
            let id = Identifier(type: type, value: v)
            if !out.contains(where: { $0.id == id }) { out.append(FoundIdentifier(id: id, origin: origin)) }
        }
        add("user_id", f.userId, "userId")
        add("anonymous_id", f.anonymousId, "anonymousId")
        // email and phone of traits and context.traits, by offset (no array of views per event)
        var at = (traitsEmail: -1, traitsPhone: -1, contextEmail: -1, contextPhone: -1)
        f.traits?.forEachField(EventFields.traitKeys) { k, o in if k == 0 { at.traitsEmail = o } else { at.traitsPhone = o } }
        f.contextTraits?.forEachField(EventFields.traitKeys) { k, o in if k == 0 { at.contextEmail = o } else { at.contextPhone = o } }
        let body = f.bodyBytes
        func view(_ o: Int) -> JSONView? { o < 0 ? nil : JSONView(bytes: body, offset: o) }
        add("email", view(at.traitsEmail), "traits.email")
        add("email", view(at.contextEmail), "context.traits.email")
        add("phone", view(at.traitsPhone), "traits.phone")
        add("phone", view(at.contextPhone), "context.traits.phone")
        add("device_id", f.device?["id"], "context.device.id")
        if let ext = f.externalIds, ext.isArray {
            for e in ext.elements {
                guard let type = e["type"]?.stringValue?.trimmingWhitespace(), !type.isEmpty, type.utf8.count <= 64,
                      type != "profile_id" else { continue }
                add(type, e["id"], "context.externalIds")
            }
        }
    }
}

/// The fields of a stored event that identity and profiles read, found in one pass over the
/// body and one over its context. Holds one reference to the body and the fields' offsets
/// (not a view per field: copying thirteen views is thirteen reference counts, and the
/// folds that share an event on different cores would contend on them).
public struct EventFields {
    private let bytes: [UInt8]
    /// The event's body (binary JSON) the fields point into.
    public var bodyBytes: [UInt8] { bytes }
    /// Offsets of the fields' values in `bytes` in the order of `topKeys` then `contextKeys`;
    /// `absent` where absent. (32 bits hold any offset: LMDB stores no value of 4 GiB.)
    private var at: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32)
        = (.max, .max, .max, .max, .max, .max, .max, .max, .max, .max, .max, .max, .max)
    private static let absent = UInt32.max

    @inline(__always) private func field(_ k: Int) -> JSONView? {
        let o = withUnsafeBytes(of: at) { $0.load(fromByteOffset: k * 4, as: UInt32.self) }
        return o == Self.absent ? nil : JSONView(bytes: bytes, offset: Int(o))
    }

    public var userId: JSONView? { field(0) }
    public var anonymousId: JSONView? { field(1) }
    public var previousId: JSONView? { field(2) }
    public var event: JSONView? { field(3) }
    public var properties: JSONView? { field(4) }
    public var traits: JSONView? { field(5) }
    public var context: JSONView? { field(6) }
    public var channel: JSONView? { field(7) }
    public var source: JSONView? { field(8) }
    public var contextTraits: JSONView? { field(9) }
    public var device: JSONView? { field(10) }
    public var externalIds: JSONView? { field(11) }
    public var consent: JSONView? { field(12) }

    static let topKeys = JSONView.KeyList(["userId", "anonymousId", "previousId", "event", "properties", "traits", "context", "channel", "source"])
    static let contextKeys = JSONView.KeyList(["traits", "device", "externalIds", "consent"])
    static let traitKeys = JSONView.KeyList(["email", "phone"])

    public init(_ view: JSONView) {
        bytes = view.bytes
        let bytes = self.bytes
        withUnsafeMutableBytes(of: &at) { raw in
            let o = raw.bindMemory(to: UInt32.self)
            view.forEachField(Self.topKeys) { k, at in o[k] = UInt32(at) }
            if o[6] != Self.absent {
                JSONView(bytes: bytes, offset: Int(o[6])).forEachField(Self.contextKeys) { k, at in o[9 + k] = UInt32(at) }
            }
        }
    }
}
