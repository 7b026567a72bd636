import EventLog
import Foundation
import JSONCore
import LMDB

/// Identity resolution and unified profiles.
///
/// Databases:
/// - `identity`: `type NUL value` → live profile id (8 bytes, native)
/// - `profiles`: profile id (integer key) → `ProfileState` (binary)
/// - `merged`: merged-away profile id → its survivor
/// - `timeline`: profile id BE ‖ seq BE → empty; a profile's timeline is its own entries and
///   those of the profiles merged into it
/// - `links`: profile id BE ‖ seq BE → what that event did to the profile's identity
///   (identifiers attached, profiles merged, identifiers dropped and why), for `identity explain`
///
/// Profile ids are the seq of the event that created the profile: deterministic. When an
/// event links profiles, the oldest (lowest id) survives and absorbs the others.
public final class ProfileProjection: Projection, @unchecked Sendable {
    public static let projectionName = "profiles"
    public var name: String { Self.projectionName }
    public let version = 1
    public var configurationDigest: String { rules.rules.digest }
    public let databaseNames = ["identity", "profiles", "merged", "timeline", "links"]

    let rules: CompiledRules
    var identity: Database!
    var profiles: Database!
    var merged: Database!
    var timeline: Database!
    var links: Database!

    // Pending changes of the batch being folded (an overlay over the committed views).
    private var indexOverlay: [Identifier: UInt64] = [:]
    private var stateOverlay: [UInt64: ProfileState] = [:]
    private var deleted: Set<UInt64> = []
    private var mergedOverlay: [UInt64: UInt64] = [:]
    private var timelineAdds: [(UInt64, UInt64)] = []
    private var linkAdds: [(UInt64, UInt64, [UInt8])] = []
    /// Profiles (and the profiles merged into them) whose timeline and links an erasure removes.
    private var purged: Set<UInt64> = []

    // What the batch being folded did, for projections that fold after this one (segments,
    // KPIs) in the same batch: which profile each event went to, which profiles merged.
    /// (seq, profile id) of every event folded into a profile, in order.
    private(set) var assignments: [(seq: UInt64, profile: UInt64)] = []
    /// (absorbed, survivor) of every merge, in order.
    private(set) var merges: [(absorbed: UInt64, survivor: UInt64)] = []
    /// Profiles erased in this batch (a `Profile Erased` system event), in order.
    private(set) var erasures: [UInt64] = []

    public init(rules: IdentityRules = .default) {
        self.rules = CompiledRules(rules)
    }

    public func open(_ environment: Environment) throws {
        identity = try environment.openDatabase("identity")
        profiles = try environment.openDatabase("profiles", flags: .integerKey)
        merged = try environment.openDatabase("merged", flags: .integerKey)
        timeline = try environment.openDatabase("timeline")
        links = try environment.openDatabase("links")
    }

    public func reset() {
        indexOverlay.removeAll(keepingCapacity: true)
        stateOverlay.removeAll(keepingCapacity: true)
        deleted.removeAll(keepingCapacity: true)
        mergedOverlay.removeAll(keepingCapacity: true)
        timelineAdds.removeAll(keepingCapacity: true)
        linkAdds.removeAll(keepingCapacity: true)
        assignments.removeAll(keepingCapacity: true)
        merges.removeAll(keepingCapacity: true)
        erasures.removeAll(keepingCapacity: true)
        purged.removeAll(keepingCapacity: true)
    }

    /// A profile's state as of the batch folded so far (pending changes included); nil when
    /// there is no such live profile. For projections folding after this one.
    func state(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> ProfileState? {
        if deleted.contains(pid) { return nil }
        if let s = stateOverlay[pid] { return s }
        return try tx.withValue(profiles, key: pid.nativeKey) { try ProfileState.decode($0) }
    }

    /// The live profile an identifier belongs to, pending changes included.
    func profileID(of id: Identifier, _ tx: borrowing ReadTransaction) throws -> UInt64? { try lookup(id, tx) }

    public func write(_ tx: borrowing WriteTransaction) throws {
        for (id, pid) in indexOverlay {
            if pid == 0 { _ = try tx.delete(identity, key: id.key) } else { try tx.put(identity, key: id.key, value: pid.nativeKey) }
        }
        for pid in deleted.sorted() {
            _ = try tx.delete(profiles, key: pid.nativeKey)
        }
        for (pid, state) in stateOverlay.sorted(by: { $0.key < $1.key }) {
            try tx.put(profiles, key: pid.nativeKey, value: state.encode())
        }
        for (old, survivor) in mergedOverlay {
            if survivor == 0 { _ = try tx.delete(merged, key: old.nativeKey) } else { try tx.put(merged, key: old.nativeKey, value: survivor.nativeKey) }
        }
        for (pid, seq) in timelineAdds {
            try tx.put(timeline, key: pid.be + seq.be, value: [])
        }
        for (pid, seq, record) in linkAdds {
            try tx.put(links, key: pid.be + seq.be, value: record)
        }
        // Erased profiles leave no timeline and no identity history behind.
        for pid in purged.sorted() {
            for db in [timeline!, links!] {
                var keys: [[UInt8]] = []
                try tx.scan(db, from: pid.be) { k, _ in
                    guard k.count == 16, Array(k[0..<8]) == pid.be else { return false }
                    keys.append(Array(k))
                    return true
                }
                for k in keys { _ = try tx.delete(db, key: k) }
            }
        }
    }

    // MARK: Folding

    public func fold(_ events: ArraySlice<Event>, _ tx: borrowing ReadTransaction) throws -> [ProjectionFailure] {
        var failures: [ProjectionFailure] = []
        var found: [FoundIdentifier] = []
        var dropped: [(String, String, String)] = []
        // The stateless part, when a reader thread computed it ahead for exactly these events.
        let pre = events.first.flatMap { ahead.take(firstSeq: $0.seq) }.flatMap { $0.items.count == events.count ? $0 : nil }
        for (i, e) in events.enumerated() {
            let item: Precomputed.Item
            if let pre { item = pre.items[i] } else { item = Self.precompute(e) }
            found = item.found
            dropped = item.dropped
            if let error = try fold(e, item.fields, tx, &found, &dropped) {
                failures.append(ProjectionFailure(projection: name, seq: e.seq, error: error))
            }
        }
        return failures
    }

    // MARK: Work ahead

    /// The stateless part of folding a batch: each event's fields and the identifiers on it,
    /// normalised. Computed by the runner's reader thread while the previous batch folds.
    struct Precomputed: @unchecked Sendable {
        struct Item {
            var fields: EventFields
            var found: [FoundIdentifier]
            var dropped: [(String, String, String)]
        }
        var items: [Item]
    }

    static func precompute(_ e: Event) -> Precomputed.Item {
        let fields = EventFields(e.view)
        var found: [FoundIdentifier] = [], dropped: [(String, String, String)] = []
        if e.type != .system { IdentifierExtractor.extract(fields, into: &found, dropped: &dropped) }
        return Precomputed.Item(fields: fields, found: found, dropped: dropped)
    }

    /// Batches computed ahead, by the seq of their first event.
    final class Ahead: @unchecked Sendable {
        private let lock = NSLock()
        private var batches: [UInt64: Precomputed] = [:]
        func put(_ firstSeq: UInt64, _ p: Precomputed) { lock.withLock { batches[firstSeq] = p } }
        func take(firstSeq: UInt64) -> Precomputed? {
            lock.withLock {
                let p = batches.removeValue(forKey: firstSeq)
                if batches.count > 8 { batches.removeAll() }  // stale ones (a batch refolded after a conflict)
                return p
            }
        }
    }
    private let ahead = Ahead()

    /// Called by a reader thread with the next batch: computes its stateless part now, so the
    /// fold of the batch only resolves and applies. Thread-safe; pure.
    public func computeAhead(_ events: [Event]) {
        guard let first = events.first else { return }
        ahead.put(first.seq, Precomputed(items: events.map(Self.precompute)))
    }

    /// Folds one event; returns why it could not be applied, or nil.
    private func fold(_ e: Event, _ fields: EventFields, _ tx: borrowing ReadTransaction, _ found: inout [FoundIdentifier],
                      _ dropped: inout [(String, String, String)]) throws -> String? {
        let view = e.view
        guard e.type != .system else {
            if fields.event?.isString("Profile Erased") == true { try erase(view, tx) }
            return nil
        }
        if e.type == .track, !rules.ignored.isEmpty, let name = fields.event?.stringValue, rules.ignored.contains(name) { return nil }
        // alias: previousId is a user id or an anonymous id — whichever the index knows.
        if e.type == .alias, let prev = fields.previousId?.scalarText?.trimmingWhitespace(), !prev.isEmpty {
            let asUser = Identifier(type: "user_id", value: prev)
            let id = try lookup(asUser, tx) != nil ? asUser : Identifier(type: "anonymous_id", value: prev)
            if !found.contains(where: { $0.id == id }) { found.append(FoundIdentifier(id: id, origin: "previousId")) }
        }
        // Blocked values never identify anyone.
        found.removeAll { f in
            if let reason = rules.blockReason(f.id) {
                dropped.append((f.id.description, f.origin, reason))
                return true
            }
            return false
        }
        guard !found.isEmpty else {
            return dropped.isEmpty ? "no identifier (userId, anonymousId, email, phone, device or external id)"
                : "no usable identifier: " + dropped.map { "\($0.0) (\($0.2))" }.joined(separator: ", ")
        }
        // Highest priority first; the drop order is the reverse.
        found.sort { a, b in
            let ra = rules.rank(a.id.type), rb = rules.rank(b.id.type)
            return ra != rb ? ra < rb : a.id < b.id
        }

        // Resolve, dropping the lowest-priority identifier involved while a limit would break.
        var owners: [UInt64?] = try found.map { try lookup($0.id, tx) }
        var states: [UInt64: ProfileState] = [:]
        for case let pid? in owners where states[pid] == nil { states[pid] = try load(pid, tx) }
        while let (type, limit) = violation(found, owners, states) {
            guard let victim = involved(type, found, owners, states) else { break }
            let f = found[victim]
            let others = Set(owners.compactMap { $0 })
            dropped.append((f.id.description, f.origin,
                            others.count > 1 || owners[victim] != nil
                                ? "linking it would give one profile \(limit + 1)+ \(type) identifiers (limit \(limit))"
                                : "the profile already has \(limit) \(type) identifiers (limit \(limit))"))
            found.remove(at: victim)
            owners.remove(at: victim)
        }

        // The profile: existing ones merge into the oldest; none: a new one named by this seq.
        let pids = Set(owners.compactMap { $0 }).sorted()
        var notes: [String] = []
        var state: ProfileState
        if let survivor = pids.first {
            state = states[survivor]!
            for other in pids.dropFirst() {
                let absorbed = states[other]!
                state.absorb(absorbed)
                for id in absorbed.identifiers { indexOverlay[id] = survivor }
                for old in absorbed.merged + [other] { mergedOverlay[old] = survivor }
                stateOverlay[other] = nil
                deleted.insert(other)
                notes.append("merged p\(other) into p\(survivor)")
                merges.append((other, survivor))
                linkAdds.append((other, e.seq, Self.linkRecord(["merged into p\(survivor)"], [])))
            }
        } else {
            state = ProfileState(id: e.seq)
        }
        for f in found where state.insertIdentifier(f.id) {
            indexOverlay[f.id] = state.id
            notes.append("attached \(f.id) from \(f.origin)")
        }
        state.apply(e, fields)
        deleted.remove(state.id)
        stateOverlay[state.id] = state
        timelineAdds.append((state.id, e.seq))
        assignments.append((e.seq, state.id))
        if !notes.isEmpty || !dropped.isEmpty {
            linkAdds.append((state.id, e.seq, Self.linkRecord(notes, dropped)))
        }
        return nil
    }

    /// The first type whose limit the union of `owners`' profiles and the new identifiers breaks.
    /// Profiles never share an identifier, so the union's count of a type is the sum over the
    /// profiles plus the event's identifiers none of them holds.
    private func violation(_ found: [FoundIdentifier], _ owners: [UInt64?], _ states: [UInt64: ProfileState]) -> (String, Int)? {
        var pids: [UInt64] = []
        for case let pid? in owners where !pids.contains(pid) { pids.append(pid) }
        // The common case: every identifier already belongs to the one profile.
        if pids.count == 1 && !owners.contains(where: { $0 == nil }) { return nil }
        var counts: [(String, Int)] = []
        func add(_ type: String) {
            if let i = counts.firstIndex(where: { $0.0 == type }) { counts[i].1 += 1 } else { counts.append((type, 1)) }
        }
        for pid in pids { for id in states[pid]!.identifiers { add(id.type) } }
        for (i, f) in found.enumerated() where owners[i] == nil { add(f.id.type) }
        var worst: (String, Int)?
        for (type, n) in counts where n > rules.limit(type) {
            if let w = worst, rules.rank(w.0) < rules.rank(type) || (rules.rank(w.0) == rules.rank(type) && w.0 < type) { continue }
            worst = (type, rules.limit(type))
        }
        return worst
    }

    /// The lowest-priority identifier whose removal lowers the count of `type` in the union:
    /// a new identifier of that type, or the only link to a profile holding that type.
    private func involved(_ type: String, _ found: [FoundIdentifier], _ owners: [UInt64?], _ states: [UInt64: ProfileState]) -> Int? {
        for i in found.indices.reversed() {
            if let pid = owners[i] {
                let sole = owners.enumerated().allSatisfy { $0.offset == i || $0.element != pid }
                if sole && states[pid]!.count(of: type) > 0 { return i }
            } else if found[i].id.type == type {
                return i
            }
        }
        return nil
    }

    /// Folds an erasure: the profile (found by its id, or the id it was merged into) leaves
    /// the views with its identifiers, timeline, identity history and merged ids.
    private func erase(_ view: JSONView, _ tx: borrowing ReadTransaction) throws {
        guard let text = view["properties"]?["profile_id"]?.stringValue, text.hasPrefix("p"), let named = UInt64(text.dropFirst()) else { return }
        var pid = named
        if let s = mergedOverlay[named], s != 0 { pid = s } else if let s = try tx.withValue(merged, key: named.nativeKey, { UInt64(nativeKey: $0) }) { pid = s }
        guard let state = try state(pid, tx) else { return }  // erased before, or never existed (compacted away)
        for id in state.identifiers { indexOverlay[id] = 0 }
        stateOverlay[pid] = nil
        deleted.insert(pid)
        for m in [pid] + state.merged {
            purged.insert(m)
            if m != pid { mergedOverlay[m] = 0 }
        }
        timelineAdds.removeAll { purged.contains($0.0) }
        linkAdds.removeAll { purged.contains($0.0) }
        erasures.append(pid)
    }

    private func lookup(_ id: Identifier, _ tx: borrowing ReadTransaction) throws -> UInt64? {
        if let pid = indexOverlay[id] { return pid == 0 ? nil : pid }
        return try tx.withValue(identity, key: id.key) { UInt64(nativeKey: $0) }
    }

    private func load(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> ProfileState {
        if let s = stateOverlay[pid] { return s }
        guard let s = try tx.withValue(profiles, key: pid.nativeKey, { try ProfileState.decode($0) }) else {
            throw ViewsError("the identity index names profile p\(pid), which is missing: the views are damaged; rebuild them")
        }
        return s
    }

    static func linkRecord(_ notes: [String], _ dropped: [(String, String, String)]) -> [UInt8] {
        var w = ByteWriter()
        w.uint(UInt64(notes.count)); for n in notes { w.string(n) }
        w.uint(UInt64(dropped.count)); for d in dropped { w.string(d.0); w.string(d.1); w.string(d.2) }
        return w.bytes
    }
}

public struct ViewsError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}
