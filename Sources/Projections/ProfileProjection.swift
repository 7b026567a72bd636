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
    public var configurationDigest: String { rules.digest }
    public let databaseNames = ["identity", "profiles", "merged", "timeline", "links"]

    let rules: CompiledRules
    var identity: Database!
    var profiles: Database!
    var merged: Database!
    var timeline: Database!
    var links: Database!

    /// The pending changes of one batch: an overlay over the committed views.
    final class Layer: @unchecked Sendable {
        var indexOverlay: [Identifier: UInt64] = [:]
        var stateOverlay: [UInt64: ProfileState] = [:]
        var deleted: Set<UInt64> = []
        var mergedOverlay: [UInt64: UInt64] = [:]
        var timelineAdds: [(UInt64, UInt64)] = []
        var linkAdds: [(UInt64, UInt64, [UInt8])] = []
        /// Profiles (and the profiles merged into them) whose timeline and links an erasure removes.
        var purged: Set<UInt64> = []
        // What the batch did, for projections that fold after this one (segments, KPIs):
        /// (seq, profile id) of every event folded into a profile, in order.
        var assignments: [(seq: UInt64, profile: UInt64)] = []
        /// (absorbed, survivor) of every merge, in order.
        var merges: [(absorbed: UInt64, survivor: UInt64)] = []
        /// Profiles erased in this batch (a `Profile Erased` system event), in order.
        var erasures: [UInt64] = []
        /// The fields of the batch's events (read once), from the seq of its first event.
        var batch: (firstSeq: UInt64, pre: Precomputed)?
        /// `stateOverlay` encoded, in profile order, once sealed (`prepareWrite`).
        var encoded: [(UInt64, [UInt8])]?
    }

    /// The batch being folded.
    private var current = Layer()
    /// A batch folded and sealed, not yet committed: the projections folding after this one
    /// read it, `write` writes it, and (in a pipelined catch-up) the next batch folds on top of
    /// it while it commits. Never mutated once sealed.
    private var sealedLayer: Layer? {
        get { sealLock.withLock { _sealed } }
        set { sealLock.withLock { _sealed = newValue } }
    }
    private var _sealed: Layer?
    private let sealLock = NSLock()
    /// The sealed layer the current fold reads through (captured when the fold starts; the
    /// runner drops the sealed layer, in `didCommit`, only between folds).
    private var below: Layer?

    private var indexOverlay: [Identifier: UInt64] { get { current.indexOverlay } _modify { yield &current.indexOverlay } }
    private var stateOverlay: [UInt64: ProfileState] { get { current.stateOverlay } _modify { yield &current.stateOverlay } }
    private var deleted: Set<UInt64> { get { current.deleted } _modify { yield &current.deleted } }
    private var mergedOverlay: [UInt64: UInt64] { get { current.mergedOverlay } _modify { yield &current.mergedOverlay } }
    private var timelineAdds: [(UInt64, UInt64)] { get { current.timelineAdds } _modify { yield &current.timelineAdds } }
    private var linkAdds: [(UInt64, UInt64, [UInt8])] { get { current.linkAdds } _modify { yield &current.linkAdds } }
    private var purged: Set<UInt64> { get { current.purged } _modify { yield &current.purged } }

    /// The layer projections folding after this one read: the sealed batch (the current one
    /// when nothing is sealed).
    private var visible: Layer { sealedLayer ?? current }
    /// (seq, profile id) of every event of the sealed batch folded into a profile, in order.
    var assignments: [(seq: UInt64, profile: UInt64)] { visible.assignments }
    /// (absorbed, survivor) of every merge of the sealed batch, in order.
    var merges: [(absorbed: UInt64, survivor: UInt64)] { visible.merges }
    /// Profiles erased in the sealed batch, in order.
    var erasures: [UInt64] { visible.erasures }

    /// The fields of `events` as this projection read them, when it folded exactly these events.
    func fields(of events: ArraySlice<Event>) -> Precomputed? {
        guard let b = visible.batch, let first = events.first, b.firstSeq == first.seq, b.pre.items.count == events.count else { return nil }
        return b.pre
    }

    /// Profile states as last committed, kept decoded for the next batches (`StateCache`).
    private let cache: StateCache
    /// Whose snapshots `cache` and `identities` match: a fold reading another's empties them.
    private let own = OwnCommits()
    /// How many committed states `cache` keeps by default: the live tail's recently active
    /// customers (a few KiB each).
    public static let defaultCachedStates = 32_768
    /// Identifiers → profile as committed, for the fold's lookups (a B-tree search of the
    /// identity index each, a quarter of the live tail's profile fold, measured): filled on
    /// reads, kept current by `didCommit` from each batch's changes, emptied with `cache`.
    /// Started afresh when full (at four identifiers a cached state; none without states).
    private var identities: [Identifier: UInt64] = [:]
    private let cachedIdentities: Int

    public init(rules: IdentityRules = .default, cachedStates: Int = ProfileProjection.defaultCachedStates) {
        self.rules = CompiledRules(rules)
        cache = StateCache(capacity: cachedStates)
        cachedIdentities = 4 * max(0, cachedStates)
    }

    public func open(_ environment: Environment) throws {
        identity = try environment.openDatabase("identity")
        profiles = try environment.openDatabase("profiles", flags: .integerKey)
        merged = try environment.openDatabase("merged", flags: .integerKey)
        timeline = try environment.openDatabase("timeline")
        links = try environment.openDatabase("links")
    }

    public func reset() {
        current = Layer()
        sealedLayer = nil
        below = nil
        // A reset follows a failed or conflicting commit: the views may hold what another
        // process wrote, so nothing cached is known to match them.
        cache.removeAll()
        identities.removeAll()
        own.forget()
    }

    public func seal() {
        sealedLayer = current
        current = Layer()
        below = nil
    }

    public func didCommit() {
        // The committed states go to the cache: nothing reads the sealed layer any more, and
        // the next batch touching one of them takes it from there.
        if let layer = sealedLayer, cache.capacity > 0 {
            for pid in layer.deleted { cache.remove(pid) }
            for (pid, state) in layer.stateOverlay { cache.insert(pid, state) }
        }
        if let layer = sealedLayer, cachedIdentities > 0 {
            if identities.count + layer.indexOverlay.count > cachedIdentities { identities.removeAll(keepingCapacity: true) }
            for (id, pid) in layer.indexOverlay { identities[id] = pid == 0 ? nil : pid }
        }
        own.didCommit()
        sealedLayer = nil
    }

    /// Encodes the sealed batch's profile states for `write` (the live tail does it beside
    /// the segment and KPI folds, on whichever of their threads finishes first). A sealed
    /// layer is never mutated (the next batch folds on copies), so this may run beside it.
    public func prepareWrite() {
        guard let layer = sealedLayer, layer.encoded == nil else { return }
        layer.encoded = layer.stateOverlay.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value.encode()) }
    }

    /// A profile's state as of the sealed batch (pending changes included); nil when there is
    /// no such live profile. For projections folding after this one; read-only.
    func state(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> ProfileState? {
        let layer = visible
        if layer.deleted.contains(pid) { return nil }
        if let s = layer.stateOverlay[pid] { return s }
        return try tx.withValue(profiles, key: pid.nativeKey) { try ProfileState.decode($0, forReading: true) }
    }

    /// A profile's state as the batch being folded sees it (its own changes, then the sealed
    /// batch's, then the views); read-only.
    private func foldState(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> ProfileState? {
        for layer in [current, below] {
            guard let layer else { continue }
            if layer.deleted.contains(pid) { return nil }
            if let s = layer.stateOverlay[pid] { return s }
        }
        if let s = cache.peek(pid) { return s }
        return try tx.withValue(profiles, key: pid.nativeKey) { try ProfileState.decode($0) }
    }

    public func write(_ tx: borrowing WriteTransaction) throws {
        own.wrote(tx.id)
        let layer = visible
        let indexOverlay = layer.indexOverlay, deleted = layer.deleted, stateOverlay = layer.stateOverlay
        let mergedOverlay = layer.mergedOverlay, timelineAdds = layer.timelineAdds, linkAdds = layer.linkAdds, purged = layer.purged
        for (id, pid) in indexOverlay {
            if pid == 0 { _ = try tx.delete(identity, key: id.key) } else { try tx.put(identity, key: id.key, value: pid.nativeKey) }
        }
        for pid in deleted.sorted() {
            _ = try tx.delete(profiles, key: pid.nativeKey)
        }
        if let encoded = layer.encoded {
            for (pid, bytes) in encoded { try tx.put(profiles, key: pid.nativeKey, value: bytes) }
        } else {
            for (pid, state) in stateOverlay.sorted(by: { $0.key < $1.key }) {
                try tx.put(profiles, key: pid.nativeKey, value: state.encode())
            }
        }
        for (old, survivor) in mergedOverlay {
            if survivor == 0 { _ = try tx.delete(merged, key: old.nativeKey) } else { try tx.put(merged, key: old.nativeKey, value: survivor.nativeKey) }
        }
        // One put an event: the 16-byte key built on the stack (`pid.be + seq.be` made three arrays).
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        for (pid, seq) in timelineAdds {
            try withUnsafeBytes(of: (pid.bigEndian, seq.bigEndian)) { try tx.put(timeline, key: $0, value: empty) }
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
            ?? Precomputed(items: events.map(precompute))
        if let first = events.first { current.batch = (first.seq, pre) }
        below = sealedLayer
        if !own.isOwn(snapshot: tx.id) {
            cache.removeAll()
            identities.removeAll()
        }
        // By index, passing elements in place: binding each event and item to a local copied
        // them (a reference count on the body and on every array of the item).
        let base = events.startIndex
        for i in events.indices {
            if pre.items[i - base].ignored { continue }
            found = pre.items[i - base].found
            dropped = pre.items[i - base].dropped
            if let error = try fold(events[i], pre.items[i - base].fields, tx, &found, &dropped) {
                failures.append(ProjectionFailure(projection: name, seq: events[i].seq, error: error))
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
            /// A track event the identity rules ignore (e.g. marketing spend).
            var ignored: Bool
        }
        var items: [Item]
    }

    /// Fields, identifiers without the blocked ones, highest priority first: all that does
    /// not depend on the views.
    func precompute(_ e: Event) -> Precomputed.Item {
        let fields = EventFields(e.view)
        var found: [FoundIdentifier] = [], dropped: [(String, String, String)] = []
        guard e.type != .system else { return Precomputed.Item(fields: fields, found: [], dropped: [], ignored: false) }
        if e.type == .track, !rules.ignored.isEmpty, let name = fields.event?.stringValue, rules.ignored.contains(name) {
            return Precomputed.Item(fields: fields, found: [], dropped: [], ignored: true)
        }
        IdentifierExtractor.extract(fields, into: &found, dropped: &dropped)
        // Blocked values never identify anyone.
        found.removeAll { f in
            if let reason = rules.blockReason(f.id) {
                dropped.append((f.id.description, f.origin, reason))
                return true
            }
            return false
        }
        found.sort { rules.precedes($0.id, $1.id) }
        return Precomputed.Item(fields: fields, found: found, dropped: dropped, ignored: false)
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
        ahead.put(first.seq, Precomputed(items: events.map(precompute)))
    }

    /// Folds one event; returns why it could not be applied, or nil.
    private func fold(_ e: Event, _ fields: EventFields, _ tx: borrowing ReadTransaction, _ found: inout [FoundIdentifier],
                      _ dropped: inout [(String, String, String)]) throws -> String? {
        let view = e.view
        guard e.type != .system else {
            if fields.event?.isString("Profile Erased") == true { try erase(view, tx) }
            return nil
        }
        // alias: previousId is a user id or an anonymous id — whichever the index knows.
        // (The other identifiers come unblocked and sorted, highest priority first, from `precompute`.)
        if e.type == .alias, let prev = fields.previousId?.scalarText?.trimmingWhitespace(), !prev.isEmpty {
            let asUser = Identifier(type: "user_id", value: prev)
            let id = try lookup(asUser, tx) != nil ? asUser : Identifier(type: "anonymous_id", value: prev)
            if !found.contains(where: { $0.id == id }) && !dropped.contains(where: { $0.0 == id.description }) {
                if let reason = rules.blockReason(id) {
                    dropped.append((id.description, "previousId", reason))
                } else {
                    found.insert(FoundIdentifier(id: id, origin: "previousId"), at: found.firstIndex { rules.precedes(id, $0.id) } ?? found.endIndex)
                }
            }
        }
        guard !found.isEmpty else {
            return dropped.isEmpty ? "no identifier (userId, anonymousId, email, phone, device or external id)"
                : "no usable identifier: " + dropped.map { "\($0.0) (\($0.2))" }.joined(separator: ", ")
        }

        // Resolve, dropping the lowest-priority identifier involved while a limit would break.
        var owners: [UInt64?] = try found.map { try lookup($0.id, tx) }
        var states = States()
        for case let pid? in owners where states[pid] == nil { states.add(pid, try load(pid, tx)) }
        while let (type, limit) = violation(found, owners, states) {
            guard let victim = involved(type, found, owners, states) else { break }
            let f = found[victim]
            dropped.append((f.id.description, f.origin,
                            Self.distinctOwners(owners) > 1 || owners[victim] != nil
                                ? "linking it would give one profile \(limit + 1)+ \(type) identifiers (limit \(limit))"
                                : "the profile already has \(limit) \(type) identifiers (limit \(limit))"))
            found.remove(at: victim)
            owners.remove(at: victim)
        }

        // The profile: existing ones merge into the oldest; none: a new one named by this seq.
        // The profiles involved, ascending (a few at most: a sorted array, not a set).
        var pids: [UInt64] = []
        for case let pid? in owners where !pids.contains(pid) { pids.append(pid) }
        pids.sort()
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
                current.merges.append((other, survivor))
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
        current.assignments.append((e.seq, state.id))
        if !notes.isEmpty || !dropped.isEmpty {
            linkAdds.append((state.id, e.seq, Self.linkRecord(notes, dropped)))
        }
        return nil
    }

    private static func distinctOwners(_ owners: [UInt64?]) -> Int {
        var n = 0
        for (i, o) in owners.enumerated() where o != nil && !owners[..<i].contains(o) { n += 1 }
        return n
    }

    /// The states of the few profiles one event involves (usually one): a small array searched
    /// linearly, not a dictionary allocated and hashed per event.
    struct States {
        private var pids: [UInt64] = [], states: [ProfileState] = []
        var count: Int { pids.count }
        subscript(pid: UInt64) -> ProfileState? {
            guard let i = pids.firstIndex(of: pid) else { return nil }
            return states[i]
        }
        mutating func add(_ pid: UInt64, _ state: ProfileState) { pids.append(pid); states.append(state) }
    }

    /// The first type whose limit the union of `owners`' profiles and the new identifiers breaks.
    /// Profiles never share an identifier, so the union's count of a type is the sum over the
    /// profiles plus the event's identifiers none of them holds.
    private func violation(_ found: [FoundIdentifier], _ owners: [UInt64?], _ states: States) -> (String, Int)? {
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
    private func involved(_ type: String, _ found: [FoundIdentifier], _ owners: [UInt64?], _ states: States) -> Int? {
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
        if let s = mergedOverlay[named] ?? below?.mergedOverlay[named] {
            if s != 0 { pid = s }
        } else if let s = try tx.withValue(merged, key: named.nativeKey, { UInt64(nativeKey: $0) }) { pid = s }
        guard let state = try foldState(pid, tx) else { return }  // erased before, or never existed (compacted away)
        for id in state.identifiers { indexOverlay[id] = 0 }
        stateOverlay[pid] = nil
        deleted.insert(pid)
        for m in [pid] + state.merged {
            purged.insert(m)
            if m != pid { mergedOverlay[m] = 0 }
        }
        timelineAdds.removeAll { purged.contains($0.0) }
        linkAdds.removeAll { purged.contains($0.0) }
        current.erasures.append(pid)
    }

    /// The profile `id` names as the batch being folded sees it. (On the folding thread only:
    /// it fills `identities`.)
    private func lookup(_ id: Identifier, _ tx: borrowing ReadTransaction) throws -> UInt64? {
        // (Each lookup hashes the identifier: skipped for an empty overlay.)
        if !current.indexOverlay.isEmpty, let pid = current.indexOverlay[id] { return pid == 0 ? nil : pid }
        if let below, !below.indexOverlay.isEmpty, let pid = below.indexOverlay[id] { return pid == 0 ? nil : pid }
        if let pid = identities[id] { return pid }
        // Not changed by the batch in flight (it would be in its overlay): as committed, and
        // as it will stay until a batch changes it, which `didCommit` then notes here.
        let pid = try tx.withValue(identity, key: id.key) { UInt64(nativeKey: $0) }
        if let pid, cachedIdentities > 0 {
            if identities.count >= cachedIdentities { identities.removeAll(keepingCapacity: true) }
            identities[id] = pid
        }
        return pid
    }

    private func load(_ pid: UInt64, _ tx: borrowing ReadTransaction) throws -> ProfileState {
        if let s = stateOverlay[pid] { return s }
        // The sealed batch's states are read-only (it may be committing): fold a copy.
        if let s = below?.stateOverlay[pid] { return s.copy() }
        // Not in the sealed batch: the cached state is the committed one, and it is ours now.
        if let s = cache.take(pid) { return s }
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
