import EventLog
import Foundation
import JSONCore
import LMDB

/// Read access to the profiles view of one generation (any thread, any number at once).
public struct ProfileReader: Sendable {
    public let generation: ViewGeneration
    let p: ProfileProjection

    public init(_ generation: ViewGeneration) throws {
        guard let p = generation.projection(named: ProfileProjection.projectionName) as? ProfileProjection else {
            throw ViewsError("generation \(generation.name) has no profiles projection")
        }
        self.generation = generation
        self.p = p
    }

    /// The live profile id an identifier (or `profile_id:p…`) resolves to.
    public func resolve(_ id: Identifier) throws -> UInt64? {
        try generation.environment.read { tx in try resolve(id, tx) }
    }

    func resolve(_ id: Identifier, _ tx: borrowing ReadTransaction) throws -> UInt64? {
        if id.type == "profile_id" {
            guard id.value.hasPrefix("p"), let n = UInt64(id.value.dropFirst()) else { return nil }
            if try tx.withValue(p.profiles, key: n.nativeKey, { _ in true }) == true { return n }
            return try tx.withValue(p.merged, key: n.nativeKey) { UInt64(nativeKey: $0) }
        }
        return try tx.withValue(p.identity, key: id.key) { UInt64(nativeKey: $0) }
    }

    func state(_ id: Identifier) throws -> ProfileState? {
        try generation.environment.read { tx in
            guard let pid = try resolve(id, tx) else { return nil }
            return try tx.withValue(p.profiles, key: pid.nativeKey) { try ProfileState.decode($0, forReading: true) }
        }
    }

    /// The unified profile as the API answers it, or nil when no profile has `id`.
    public func profile(_ id: Identifier, segments: [String] = []) throws -> JSON? {
        guard let s = try state(id) else { return nil }
        return Self.render(s, segments: segments)
    }

    /// The unified profile as the API answers it, as compact JSON text, with the segments it is
    /// in (when the generation has the segment projection): `profile(_:segments:)`'s bytes,
    /// written without building the tree, and everything read from one snapshot. Nil when no
    /// profile has `id`.
    public func document(_ id: Identifier) throws -> [UInt8]? {
        let segments = generation.projection(named: SegmentProjection.projectionName) as? SegmentProjection
        return try generation.environment.read { tx in
            guard let pid = try resolve(id, tx),
                  let s = try tx.withValue(p.profiles, key: pid.nativeKey, { try ProfileState.decode($0, forReading: true) }) else { return nil }
            let memberOf = try segments.map { try SegmentReader.segments(of: $0, profile: pid, tx) } ?? []
            let w = JSONText(capacity: 2048)
            Self.write(s, segments: memberOf, to: w)
            return w.bytes
        }
    }

    /// The profile id (`p…`) of `id`, if any.
    public func profileID(_ id: Identifier) throws -> String? { try resolve(id).map { "p\($0)" } }

    /// The number of live profiles.
    public func count() throws -> Int { try generation.environment.stat(p.profiles).entries }

    /// Every live profile, in id order, until `body` returns false.
    public func forEachProfile(_ body: (JSON) throws -> Bool) throws {
        try generation.environment.read { tx in
            try tx.scan(p.profiles) { _, v in try body(Self.render(try ProfileState.decode(v, forReading: true), segments: [])) }
        }
    }

    /// The timeline's seqs, newest first: seqs below `before` (nil: from the newest), at most `limit`,
    /// over the profile and every profile merged into it.
    public func timeline(_ id: Identifier, before: UInt64? = nil, limit: Int = 50) throws -> [UInt64]? {
        try generation.environment.read { tx in
            guard let pid = try resolve(id, tx),
                  let s = try tx.withValue(p.profiles, key: pid.nativeKey, { try ProfileState.decode($0, forReading: true) }) else { return nil }
            var seqs: [UInt64] = []
            for member in [pid] + s.merged {
                var n = 0
                try tx.withCursor(p.timeline) { c in
                    let upper = member.be + (before ?? .max).be
                    var entry = try c.seekAtOrBefore(upper)
                    while let e = entry, n < limit {
                        let k = Array(e.key)
                        guard k.count == 16, Array(k[0..<8]) == member.be else { break }
                        let seq = k[8...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                        if let before, seq >= before { entry = try c.previous(); continue }
                        seqs.append(seq)
                        n += 1
                        entry = try c.previous()
                    }
                }
            }
            return Array(seqs.sorted(by: >).prefix(limit))
        }
    }

    /// How the profile's identity was built: per event, the identifiers attached, the
    /// profiles merged and the identifiers dropped with the reason. Oldest first.
    public func explain(_ id: Identifier) throws -> JSON? {
        try generation.environment.read { tx in
            guard let pid = try resolve(id, tx),
                  let s = try tx.withValue(p.profiles, key: pid.nativeKey, { try ProfileState.decode($0, forReading: true) }) else { return nil }
            var entries: [(UInt64, UInt64, JSON)] = []
            for member in [pid] + s.merged {
                try tx.scan(p.links, from: member.be) { k, v in
                    let key = Array(k)
                    guard key.count == 16, Array(key[0..<8]) == member.be else { return false }
                    let seq = key[8...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    entries.append((seq, member, try Self.decodeLink(v)))
                    return true
                }
            }
            entries.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            let steps: [JSON] = entries.map { seq, member, detail in
                var o: [(String, JSON)] = [("seq", .int(Int64(seq))), ("profile_id", .string("p\(member)"))]
                o.append(contentsOf: detail.objectValue ?? [])
                return .object(o)
            }
            return .object([("profile_id", .string("p\(pid)")), ("identifiers", Self.identifiers(s.identifiers)),
                            ("merged_ids", .array(s.merged.map { .string("p\($0)") })), ("steps", .array(steps))])
        }
    }

    static func decodeLink(_ v: UnsafeRawBufferPointer) throws -> JSON {
        try v.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            var notes: [JSON] = [], dropped: [JSON] = []
            for _ in 0..<(try r.varint()) { notes.append(.string(try r.string())) }
            for _ in 0..<(try r.varint()) {
                dropped.append(.object([("identifier", .string(try r.string())), ("from", .string(try r.string())),
                                        ("reason", .string(try r.string()))]))
            }
            return .object([("linked", .array(notes)), ("dropped", .array(dropped))])
        }
    }

    // MARK: Rendering

    static func identifiers(_ ids: [Identifier]) -> JSON {
        var byType: [(String, [JSON])] = []
        for id in ids {
            if let i = byType.firstIndex(where: { $0.0 == id.type }) { byType[i].1.append(.string(id.value)) } else { byType.append((id.type, [.string(id.value)])) }
        }
        return .object(byType.map { ($0.0, .array($0.1)) })
    }

    static func time(_ t: Micros?) -> JSON { t.map { .string(Timestamp.format($0)) } ?? .null }

    /// `render(s, segments:)` written as JSON text as it goes: the same bytes as the tree's
    /// `jsonBytes()` (a test holds them equal for every datagen profile), a fraction of the
    /// allocations. Keep the two in step.
    static func write(_ s: ProfileState, segments: [String], to w: JSONText) {
        func time(_ t: Micros?) {
            if let t { Timestamp.withText(t) { w.plainString($0) } } else { w.null() }
        }
        w.beginObject()
        w.key("profile_id"); w.plainString("p", s.id)
        w.key("identifiers"); w.beginObject()
        var types: [String] = []
        for id in s.identifiers where !types.contains(id.type) { types.append(id.type) }
        for t in types {
            w.key(string: t); w.beginArray()
            for id in s.identifiers where id.type == t { w.string(id.value) }
            w.endArray()
        }
        w.endObject()
        w.key("traits"); w.beginObject()
        for (k, v) in s.traits { w.key(string: k); w.value(v.value) }
        w.endObject()
        w.key("trait_sources"); w.beginObject()
        for (k, v) in s.traits {
            w.key(string: k); w.beginObject()
            w.key("time"); time(v.time)
            w.key("source"); w.string(v.source)
            w.key("seq"); w.int(v.seq)
            w.endObject()
        }
        w.endObject()
        w.key("computed"); w.beginObject()
        w.key("first_seen"); time(s.eventCount > 0 ? s.firstSeen : nil)
        w.key("last_seen"); time(s.eventCount > 0 ? s.lastSeen : nil)
        w.key("event_count"); w.int(s.eventCount)
        w.key("channels"); w.beginObject()
        for (k, v) in s.channels { w.key(string: k); w.int(v) }
        w.endObject()
        w.key("order_count"); w.int(s.orderCount)
        w.key("total_revenue"); w.double(s.revenue.amount)
        w.key("aov")
        if s.orderCount > 0 { w.double((Double(s.revenue) / Double(s.orderCount)).rounded() / 10_000) } else { w.null() }
        w.key("first_order_at"); time(s.firstOrderAt)
        w.key("last_order_at"); time(s.lastOrderAt)
        w.key("refund_count"); w.int(s.refundCount)
        w.key("refund_total"); w.double(s.refundTotal.amount)
        w.key("favorite_category")
        if let c = s.favoriteCategory { w.string(c) } else { w.null() }
        w.key("distinct_products"); w.int(Int64(s.distinctProducts))
        w.key("open_checkout"); w.bool(s.openCheckout)
        w.key("loyalty_points"); w.int(s.loyaltyPoints)
        w.key("nps")
        if let v = s.nps { w.int(v.value) } else { w.null() }
        w.key("csat")
        if let v = s.csat { w.int(v.value) } else { w.null() }
        w.key("consent"); w.beginObject()
        for (k, v) in s.consent {
            w.key(string: k); w.beginObject()
            w.key("granted"); w.bool(v.value)
            w.key("time"); time(v.time)
            w.key("source"); w.string(v.source)
            w.endObject()
        }
        w.endObject()
        w.endObject()
        w.key("segments"); w.beginArray()
        for k in segments { w.string(k) }
        w.endArray()
        w.key("merged_ids"); w.beginArray()
        for m in s.merged { w.plainString("p", m) }
        w.endArray()
        w.endObject()
    }

    static func render(_ s: ProfileState, segments: [String]) -> JSON {
        let traits = s.traits
        let computed: [(String, JSON)] = [
            ("first_seen", time(s.eventCount > 0 ? s.firstSeen : nil)),
            ("last_seen", time(s.eventCount > 0 ? s.lastSeen : nil)),
            ("event_count", .int(s.eventCount)),
            ("channels", .object(s.channels.map { ($0.key, .int($0.value)) })),
            ("order_count", .int(s.orderCount)),
            ("total_revenue", .double(s.revenue.amount)),
            ("aov", s.orderCount > 0 ? .double((Double(s.revenue) / Double(s.orderCount)).rounded() / 10_000) : .null),
            ("first_order_at", time(s.firstOrderAt)),
            ("last_order_at", time(s.lastOrderAt)),
            ("refund_count", .int(s.refundCount)),
            ("refund_total", .double(s.refundTotal.amount)),
            ("favorite_category", s.favoriteCategory.map(JSON.string) ?? .null),
            ("distinct_products", .int(Int64(s.distinctProducts))),
            ("open_checkout", .bool(s.openCheckout)),
            ("loyalty_points", .int(s.loyaltyPoints)),
            ("nps", s.nps.map { .int($0.value) } ?? .null),
            ("csat", s.csat.map { .int($0.value) } ?? .null),
            ("consent", .object(s.consent.map { k, v in
                (k, .object([("granted", .bool(v.value)), ("time", time(v.time)), ("source", .string(v.source))]))
            })),
        ]
        return .object([
            ("profile_id", .string("p\(s.id)")),
            ("identifiers", identifiers(s.identifiers)),
            ("traits", .object(traits.map { ($0.key, $0.value.value) })),
            ("trait_sources", .object(traits.map { k, v in
                (k, .object([("time", time(v.time)), ("source", .string(v.source)), ("seq", .int(Int64(v.seq)))]))
            })),
            ("computed", .object(computed)),
            ("segments", .array(segments.map(JSON.string))),
            ("merged_ids", .array(s.merged.map { .string("p\($0)") })),
        ])
    }
}
