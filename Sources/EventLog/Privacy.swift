import Crypto
import Foundation
import JSONCore
import LMDB

// Data rights in the log: the suppression list (salted hashes of erased customers'
// identifiers, whose new events are refused), the erasure event (hashes only), and the audit
// log of admin actions. Both lists live in the log's environment, so a backup or a compaction
// carries them, and a replay of the log meets the same erasures.

/// An admin action as the audit log keeps it.
public struct AuditEntry: Sendable, Equatable {
    public var id: UInt64
    public var time: Micros
    /// Who: an API key's name (`key:ops`), or `cli:<user>` for the command line.
    public var actor: String
    /// What: `erase`, `export-subject`, `key-create`, `key-revoke`, `replay`, `segment-define`, `suppression-lift`, `compact`.
    public var action: String
    /// On what, without personal data (profile ids, key names, counts).
    public var detail: String

    public var json: JSON {
        ["id": .int(Int64(id)), "time": .string(Timestamp.format(time)), "actor": .string(actor), "action": .string(action),
         "detail": .string(detail)]
    }
}

/// A suppressed identifier: its hash, when, and by which erasure.
public struct SuppressionEntry: Sendable, Equatable {
    public var hash: String
    public var time: Micros
    public var profileID: String
}

/// The suppression set in memory, reloaded when the `suppressed` database changes size.
final class SuppressionCache: @unchecked Sendable {
    let lock = NSLock()
    var entries = -1
    var hashes: Set<[UInt8]> = []
    var salt: [UInt8] = []
}

/// What the caller of `EventLog.suppressionSnapshot()` checks events against.
public struct SuppressionSnapshot: Sendable {
    let hashes: Set<[UInt8]>
    let salt: [UInt8]

    public var isEmpty: Bool { hashes.isEmpty }

    /// The first identifier of `message` (a Segment message) that is suppressed, or nil.
    public func suppressed(_ view: JSONView) -> Identifier? {
        guard !hashes.isEmpty else { return nil }
        var found: [FoundIdentifier] = []
        var dropped: [(String, String, String)] = []
        IdentifierExtractor.extract(view, into: &found, dropped: &dropped)
        if let prev = view["previousId"]?.scalarText {
            for type in ["user_id", "anonymous_id"] {
                if let v = Identifier.normalise(type: type, prev) { found.append(FoundIdentifier(id: Identifier(type: type, value: v), origin: "previousId")) }
            }
        }
        return found.first { hashes.contains(EventLog.hash($0.id, salt: salt)) }?.id
    }

    /// The suppressed identifiers of `view` as stored and as normalised (to scrub them from
    /// dictionaries and dead letters), with their types; empty when none is suppressed.
    public func suppressedValues(_ view: JSONView) -> [(type: String, text: String)] {
        guard !hashes.isEmpty else { return [] }
        var found: [FoundIdentifier] = []
        var dropped: [(String, String, String)] = []
        IdentifierExtractor.extract(view, into: &found, dropped: &dropped)
        var out: [(String, String)] = []
        for f in found where hashes.contains(EventLog.hash(f.id, salt: salt)) {
            out.append((f.id.type, f.id.value))
            if let raw = Self.raw(view, f.origin), raw != f.id.value { out.append((f.id.type, raw)) }
        }
        return out
    }

    /// The raw text at an extractor origin (`traits.email`, `context.device.id`, …).
    static func raw(_ view: JSONView, _ origin: String) -> String? {
        if origin == "context.externalIds" { return nil }
        var v: JSONView? = view
        for part in origin.split(separator: ".") { v = v?[String(part)] }
        return v?.scalarText
    }

    /// Whether `id` is suppressed.
    public func contains(_ id: Identifier) -> Bool { !hashes.isEmpty && hashes.contains(EventLog.hash(id, salt: salt)) }

    /// Whether some token of `raw` (any bytes: a malformed dead letter too) is a suppressed
    /// identifier of any type: the words between quotes, spaces and JSON punctuation.
    public func mentionsSuppressed(_ raw: [UInt8], types: [String]) -> Bool {
        guard !hashes.isEmpty else { return false }
        let separators: Set<UInt8> = Set(" \t\r\n\"',:{}[]".utf8)
        var tokens: Set<String> = []
        var current: [UInt8] = []
        for b in raw + [32] {
            if separators.contains(b) {
                if !current.isEmpty { tokens.insert(String(decoding: current, as: UTF8.self)) }
                current.removeAll(keepingCapacity: true)
            } else { current.append(b) }
        }
        for t in tokens {
            for type in types {
                if let v = Identifier.normalise(type: type, t), hashes.contains(EventLog.hash(Identifier(type: type, value: v), salt: salt)) {
                    return true
                }
            }
        }
        return false
    }
}

extension EventLog {
    /// The salted hash the suppression list and erasure events hold for an identifier.
    static func hash(_ id: Identifier, salt: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: salt)
        h.update(data: Array(id.type.utf8) + [0] + Array(id.value.utf8))
        return Array(h.finalize())
    }

    /// This installation's salt (created at the first erasure; random, kept in `meta`).
    func salt(_ tx: borrowing some TransactionReading & ~Copyable) throws -> [UInt8]? {
        try tx.get(meta, key: Array("privacy/salt".utf8))
    }

    /// The suppression list as of now (cheap when nothing changed since the last call).
    public func suppressionSnapshot() throws -> SuppressionSnapshot {
        let c = suppressionCache
        let count = try environment.stat(suppressed).entries
        return try c.lock.withLock {
            if count != c.entries {
                try environment.read { tx in
                    var set: Set<[UInt8]> = []
                    try tx.scan(suppressed) { k, _ in set.insert(Array(k)); return true }
                    c.hashes = set
                    c.salt = try salt(tx) ?? []
                }
                c.entries = count
            }
            return SuppressionSnapshot(hashes: c.hashes, salt: c.salt)
        }
    }

    /// Erases a customer: puts the salted hashes of `identifiers` on the suppression list (so
    /// their new events are refused from now on), then appends a `Profile Erased` system event
    /// naming `profileID` and holding only those hashes, which every projection folds (the
    /// profile leaves every view) and every replay meets again. Returns the event's seq.
    public func erase(profileID: String, identifiers: [Identifier], actor: String, receivedAt: Micros) throws -> UInt64 {
        let key: [UInt8] = try environment.write { tx in
            if let s = try self.salt(tx) { return s }
            var s = [UInt8](repeating: 0, count: 32)
            var rng = SystemRandomNumberGenerator()
            for i in s.indices { s[i] = UInt8.random(in: 0 ... 255, using: &rng) }
            try tx.put(meta, key: Array("privacy/salt".utf8), value: s)
            return s
        }
        let hashes = identifiers.map { Self.hash($0, salt: key) }
        var value: [UInt8] = []
        Varint.writeSigned(receivedAt, to: &value)
        value.append(contentsOf: profileID.utf8)
        try environment.write { tx in
            for h in hashes { try tx.put(suppressed, key: h, value: value) }
        }
        let body: JSON = .object([
            ("messageId", .string("erasure-\(profileID)-\(receivedAt)")), ("type", "system"), ("event", "Profile Erased"),
            ("source", "admin"), ("channel", "system"),
            ("properties", .object([("profile_id", .string(profileID)),
                                    ("identifiers", .array(hashes.map { .string(Hex.encode($0)) })),
                                    ("requested_by", .string(actor))])),
        ])
        let event = PreparedEvent(type: .system, timestamp: receivedAt, receivedAt: receivedAt, source: "admin",
                                  messageId: "erasure-\(profileID)-\(receivedAt)", payload: body.unsizedBinary, inputBytes: 0)
        let outcome = try append([event])
        try recordAudit(actor: actor, action: "erase", detail: "profile \(profileID), \(identifiers.count) identifiers suppressed, seq \(outcome[0].seq)", time: receivedAt)
        return outcome[0].seq
    }

    /// Every suppressed hash, oldest erasure first.
    public func suppressionList() throws -> [SuppressionEntry] {
        try environment.read { tx in
            var out: [SuppressionEntry] = []
            try tx.scan(suppressed) { k, v in
                try v.withMemoryRebound(to: UInt8.self) { b in
                    var r = BinaryReader(b)
                    let t = try r.signedVarint()
                    let rest = try r.bytes(r.remaining)
                    out.append(SuppressionEntry(hash: Hex.encode(Array(k)), time: t, profileID: String(decoding: rest, as: UTF8.self)))
                }
                return true
            }
            return out.sorted { $0.time != $1.time ? $0.time < $1.time : $0.hash < $1.hash }
        }
    }

    /// Lifts the suppression of one identifier (the customer came back and agreed). Returns
    /// whether it was suppressed.
    @discardableResult
    public func liftSuppression(_ id: Identifier, actor: String, time: Micros) throws -> Bool {
        let lifted: Bool = try environment.write { tx in
            guard let key = try self.salt(tx) else { return false }
            return try tx.delete(suppressed, key: Self.hash(id, salt: key))
        }
        if lifted { try recordAudit(actor: actor, action: "suppression-lift", detail: "one \(id.type) identifier", time: time) }
        return lifted
    }

    // MARK: Audit

    /// Records an admin action (durably).
    public func recordAudit(actor: String, action: String, detail: String, time: Micros) throws {
        var w: [UInt8] = []
        Varint.writeSigned(time, to: &w)
        for s in [actor, action, detail] {
            Varint.write(UInt64(s.utf8.count), to: &w)
            w.append(contentsOf: s.utf8)
        }
        try environment.write { tx in
            let id = try Self.lastKey(tx, audit) + 1
            try tx.put(audit, key: id.nativeKey, value: w, flags: .append)
        }
    }

    /// Audit entries with id > `after`, oldest first.
    public func auditEntries(after: UInt64 = 0, limit: Int = 1000) throws -> [AuditEntry] {
        try environment.read { tx in
            var out: [AuditEntry] = []
            try tx.scan(audit, from: (after + 1).nativeKey) { k, v in
                try v.withMemoryRebound(to: UInt8.self) { b in
                    var r = BinaryReader(b)
                    out.append(AuditEntry(id: UInt64(nativeKey: k), time: try r.signedVarint(), actor: try r.string(),
                                          action: try r.string(), detail: try r.string()))
                }
                return out.count < limit
            }
            return out
        }
    }
}
