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
    /// written from the stored record without decoding it, and everything read from one
    /// snapshot. Nil when no profile has `id`.
    public func document(_ id: Identifier) throws -> [UInt8]? {
        try document(id) { Array($0) }
    }

    /// `document(id)`'s text, handed to `body` without a copy (valid inside it only).
    public func document<R>(_ id: Identifier, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) throws -> R? {
        let segments = generation.projection(named: SegmentProjection.projectionName) as? SegmentProjection
        return try generation.environment.read { tx in
            guard let pid = try resolve(id, tx) else { return nil }
            let w = JSONText(capacity: 2048)
            // The segments' record as stored: its keys are written from their bytes.
            let written = try tx.withValue(p.profiles, key: pid.nativeKey) { stored in
                try Self.write(stored: stored, to: w) {
                    guard let segments else { return }
                    try tx.withValue(segments.profilesDB, key: pid.be) { try SegmentProjection.writeSegments(record: $0, to: w) }
                }
            }
            return try written.map { try w.withBytes(body) }
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

    /// `render(ProfileState.decode(stored), segments:)` as JSON text, written straight from
    /// the stored bytes (`ProfileState.encode`'s layout): no state, no strings, no tree. The
    /// layout lists the fields nearly in the answer's order; the merged ids (first stored, last
    /// answered) and the traits (answered twice: values, then sources) are read again from
    /// where they start. A test holds the text equal to the tree's for every datagen profile.
    /// Keep it in step with `encode` and `render`.
    static func write(stored raw: UnsafeRawBufferPointer, segments: [String], to w: JSONText) throws {
        try write(stored: raw, to: w) { for k in segments { w.string(k) } }
    }

    /// `write(stored:segments:to:)` with the segments' keys written by `segments` (the
    /// elements only: the array is opened and closed around it).
    static func write(stored raw: UnsafeRawBufferPointer, to w: JSONText, segments: () throws -> Void) throws {
        try raw.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            guard try r.byte() == ProfileState.formatVersion else { throw ViewsError("unknown profile format") }
            // Where the last time's text is: an identify sets several traits at one time, and
            // a consent event several purposes, so a profile repeats its times.
            var last: (time: Micros, at: Int, count: Int) = (.min, 0, 0)
            func time(_ t: Micros?) {
                guard let t else { return w.null() }
                if t == last.time { return w.plainString(copyOf: last.at, count: last.count) }
                var n = 0
                if let at = w.plainString(maxCount: Timestamp.maxTextCount, { n = Timestamp.write(t, to: $0); return n }) {
                    last = (t, at, n)
                } else {
                    Timestamp.withText(t) { w.plainString($0) }  // a year outside 0–9999
                }
            }
            func text() throws -> UnsafeBufferPointer<UInt8> { try r.bytes(try r.count()) }
            func counts() throws {
                w.beginObject()
                for _ in 0..<(try r.count()) { w.key(utf8: try text()); w.int(try r.signedVarint()) }
                w.endObject()
            }
            w.beginObject()
            w.key("profile_id"); w.plainString("p", try r.varint())
            let merged = try r.count(), mergedAt = r.offset
            for _ in 0..<merged { _ = try r.varint() }

            // Identifiers, grouped by type in the order the types first appear.
            let ids = try r.count()
            var list: [(type: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>)] = []
            list.reserveCapacity(ids)
            for _ in 0..<ids { list.append((try text(), try text())) }
            w.key("identifiers"); w.beginObject()
            for (i, id) in list.enumerated() where !list[..<i].contains(where: { $0.type.sameBytes(as: id.type) }) {
                w.key(utf8: id.type); w.beginArray()
                for other in list[i...] where other.type.sameBytes(as: id.type) { w.string(utf8: other.value) }
                w.endArray()
            }
            w.endObject()

            // Traits: key, value, time, seq, source each; the values first, then the sources.
            let traits = try r.count(), traitsAt = r.offset
            w.key("traits"); w.beginObject()
            for _ in 0..<traits {
                w.key(utf8: try text())
                try w.binary(&r)
                _ = try r.signedVarint(); _ = try r.varint(); try r.skipString()
            }
            w.endObject()
            r.offset = traitsAt
            w.key("trait_sources"); w.beginObject()
            for _ in 0..<traits {
                w.key(utf8: try text())
                guard let end = JSONView.skip(b, r.offset) else { throw ViewsError("corrupt trait value") }
                r.offset = end
                let t = try r.signedVarint(), seq = try r.varint()
                w.beginObject()
                w.key("time"); time(t)
                w.key("source"); w.string(utf8: try text())
                w.key("seq"); w.int(seq)
                w.endObject()
            }
            w.endObject()

            w.key("computed"); w.beginObject()
            let firstSeen = try r.signedVarint(), lastSeen = try r.signedVarint(), events = try r.signedVarint()
            w.key("first_seen"); time(events > 0 ? firstSeen : nil)
            w.key("last_seen"); time(events > 0 ? lastSeen : nil)
            w.key("event_count"); w.int(events)
            w.key("channels"); try counts()
            for _ in 0..<(try r.count()) { try r.skipString() }  // order ids
            let orders = try r.signedVarint(), revenue = try r.signedVarint()
            w.key("order_count"); w.int(orders)
            w.key("total_revenue"); w.tenThousandths(revenue)
            w.key("aov")
            if orders > 0 {
                let aov = (Double(revenue) / Double(orders)).rounded()  // as `render`: a whole number of units
                if abs(aov) < 1e15 { w.tenThousandths(Int64(aov)) } else { w.double(aov / 10_000) }
            } else {
                w.null()
            }
            let lastOrderAt: Micros?
            w.key("first_order_at"); time(try r.optInt())
            lastOrderAt = try r.optInt()
            w.key("last_order_at"); time(lastOrderAt)
            w.key("refund_count"); w.int(try r.signedVarint())
            w.key("refund_total"); w.tenThousandths(try r.signedVarint())
            // `ProfileState.favoriteCategory`: the highest count; of equal counts the least
            // key (as `String` orders them, compared only on a tie).
            var favorite: (key: UnsafeBufferPointer<UInt8>, count: Int64)?
            for _ in 0..<(try r.count()) {
                let k = try text(), n = try r.signedVarint()
                if let f = favorite, n < f.count || (n == f.count && !Self.precedes(k, f.key)) { continue }
                favorite = (k, n)
            }
            w.key("favorite_category")
            if let f = favorite { w.string(utf8: f.key) } else { w.null() }
            let products = try r.count()
            for _ in 0..<products { try r.skipString() }
            w.key("distinct_products"); w.int(Int64(products))
            let lastCheckoutAt = try r.optInt()
            w.key("open_checkout"); w.bool(lastCheckoutAt.map { $0 > (lastOrderAt ?? .min) } ?? false)
            w.key("loyalty_points"); w.int(try r.signedVarint())
            for name: StaticString in ["nps", "csat"] {
                w.key(name)
                if try r.byte() == 1 {
                    w.int(try r.signedVarint())
                    _ = try r.signedVarint(); _ = try r.varint(); try r.skipString()
                } else {
                    w.null()
                }
            }
            w.key("consent"); w.beginObject()
            for _ in 0..<(try r.count()) {
                w.key(utf8: try text())
                let granted = try r.byte() == 1, t = try r.signedVarint()
                _ = try r.varint()
                w.beginObject()
                w.key("granted"); w.bool(granted)
                w.key("time"); time(t)
                w.key("source"); w.string(utf8: try text())
                w.endObject()
            }
            w.endObject()
            w.endObject()

            w.key("segments"); w.beginArray()
            try segments()
            w.endArray()
            r.offset = mergedAt
            w.key("merged_ids"); w.beginArray()
            for _ in 0..<merged { w.plainString("p", try r.varint()) }
            w.endArray()
            w.endObject()
        }
    }

    /// Whether `a` orders before `b` as `String`s do: by their bytes when both are ASCII
    /// (the same order, without making strings), else by `String`'s comparison.
    static func precedes(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        if a.allSatisfy({ $0 < 0x80 }) && b.allSatisfy({ $0 < 0x80 }) { return a.lexicographicallyPrecedes(b) }
        return String(decoding: a, as: UTF8.self) < String(decoding: b, as: UTF8.self)
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
