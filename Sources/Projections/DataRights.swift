import EventLog
import Foundation
import JSONCore

/// What an erasure did.
public struct ErasureResult: Sendable {
    public var profileID: String
    public var identifiers: Int
    /// The seq of the `Profile Erased` event.
    public var seq: UInt64
}

extension ProfileReader {
    /// The live profile's identifiers (merged profiles' included), for an erasure.
    func identifiers(of id: Identifier) throws -> (UInt64, [Identifier])? {
        guard let s = try state(id) else { return nil }
        return (s.id, s.identifiers)
    }
}

extension LiveViews {
    /// Erases the customer `id` belongs to (GDPR Art. 17, CCPA): every identifier of the
    /// profile goes on the suppression list and a `Profile Erased` event (hashes only) is
    /// appended; the views drop the profile when they fold it (`waitForApplied(result.seq)`).
    /// Nil when no profile has `id`.
    public func erase(_ id: Identifier, actor: String) throws -> ErasureResult? {
        guard let (pid, ids) = try profiles.identifiers(of: id) else { return nil }
        let seq = try log.erase(profileID: "p\(pid)", identifiers: ids, actor: actor, receivedAt: nowMicros())
        return ErasureResult(profileID: "p\(pid)", identifiers: ids.count, seq: seq)
    }

    /// The subject access export: the profile, its consent history, and every event of the
    /// customer (merged identities included), oldest first, as one JSON document. Audited.
    /// Nil when no profile has `id`.
    public func subjectExport(_ id: Identifier, actor: String, segments: [String] = []) throws -> JSON? {
        let reader = profiles
        guard let profile = try reader.profile(id, segments: segments),
              let seqs = try reader.timeline(id, limit: Int.max) else { return nil }
        var events: [JSON] = []
        var consent: [JSON] = []
        // Oldest first; seqs removed by retention are skipped.
        try log.forEach(seqs: seqs.reversed()) { e in
            let seq = e.seq
            events.append(e.exportJSON)
            let v = e.view
            var purposes: JSONView?
            if v["event"]?.isString("Consent Updated") == true { purposes = v["properties"]?["purposes"] }
            if let c = v["context"]?["consent"] { purposes = c["categoryPreferences"] ?? c }
            if let purposes, purposes.isObject {
                consent.append(.object([("seq", .int(Int64(seq))), ("time", .string(Timestamp.format(e.timestamp))),
                                        ("source", .string(e.source)), ("purposes", purposes.json)]))
            }
        }
        let pid = profile["profile_id"]?.stringValue ?? "?"
        try log.recordAudit(actor: actor, action: "export-subject", detail: "profile \(pid), \(events.count) events", time: nowMicros())
        return .object([
            ("exported_at", .string(Timestamp.format(nowMicros()))),
            ("profile", profile),
            ("consent_history", .array(consent)),
            ("event_count", .int(Int64(events.count))),
            ("events", .array(events)),
        ])
    }

}
