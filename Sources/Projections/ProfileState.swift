import EventLog
import Foundation
import JSONCore

/// Money is kept in units of 1/10,000 so sums are exact and independent of the order they
/// are added in (a float sum would differ between two interleavings of the same events).
typealias Money = Int64

extension Money {
    init(amount: Double) { self = amount.isFinite ? Int64((amount * 10_000).rounded()) : 0 }
    var amount: Double { Double(self) / 10_000 }
}

/// A value with the event time and seq that set it: the later (time, seq) wins.
struct Stamped<Value: Equatable>: Equatable {
    var value: Value
    var time: Micros
    var seq: UInt64
    var source: String

    func isNewer(than other: Stamped?) -> Bool {
        guard let other else { return true }
        return time != other.time ? time > other.time : seq > other.seq
    }
}

/// The fold state of one profile: identifiers, traits by event time, computed traits.
/// Every collection is kept sorted, so its encoding is a function of its content only.
/// A class: the fold hands one instance around a batch and mutates it in place (a struct
/// would be copied, field by field, at every hand-over).
final class ProfileState {
    var id: UInt64
    /// Profiles merged into this one (their ids still resolve here).
    var merged: [UInt64] = []
    var identifiers: [Identifier] = []
    var traits = SortedMap<Stamped<JSON>>()

    var firstSeen: Micros = .max
    var lastSeen: Micros = .min
    var eventCount: Int64 = 0
    var channels = SortedMap<Int64>()
    var orderIDs: [String] = []          // sorted; an order counts once
    var orderCount: Int64 = 0
    var revenue: Money = 0
    var firstOrderAt: Micros?
    var lastOrderAt: Micros?
    var refundCount: Int64 = 0
    var refundTotal: Money = 0
    var categories = SortedMap<Int64>()
    var products: [String] = []          // sorted distinct product ids purchased
    var lastCheckoutAt: Micros?
    var loyaltyPoints: Int64 = 0
    var nps: Stamped<Int64>?
    var csat: Stamped<Int64>?
    var consent = SortedMap<Stamped<Bool>>()
    /// Set when decoded for reading (`decode(_:forReading:)`): `orderIDs` and `products` were
    /// skipped, and this is how many product ids there were. Such a state is never written.
    private(set) var skippedProducts: Int?

    /// The size of the last encoding (or 256): the next one's buffer is reserved at that,
    /// where growing it from 256 reallocated and copied it three or four times.
    private var encodedSize = 256

    /// `distinct_products`, whether the product ids were decoded or skipped.
    var distinctProducts: Int { skippedProducts ?? products.count }

    init(id: UInt64) { self.id = id }

    /// An independent copy (every stored property: keep in step with the list above; a test
    /// checks a fully populated state's copy encodes the same).
    func copy() -> ProfileState {
        let c = ProfileState(id: id)
        c.merged = merged; c.identifiers = identifiers; c.traits = traits
        c.firstSeen = firstSeen; c.lastSeen = lastSeen; c.eventCount = eventCount; c.channels = channels
        c.orderIDs = orderIDs; c.orderCount = orderCount; c.revenue = revenue
        c.firstOrderAt = firstOrderAt; c.lastOrderAt = lastOrderAt
        c.refundCount = refundCount; c.refundTotal = refundTotal; c.categories = categories; c.products = products
        c.lastCheckoutAt = lastCheckoutAt; c.loyaltyPoints = loyaltyPoints; c.nps = nps; c.csat = csat; c.consent = consent
        return c
    }

    func count(of type: String) -> Int { identifiers.reduce(0) { $0 + ($1.type == type ? 1 : 0) } }

    func insertIdentifier(_ id: Identifier) -> Bool {
        let i = identifiers.partitioningIndex { !($0 < id) }
        if i < identifiers.count && identifiers[i] == id { return false }
        identifiers.insert(id, at: i)
        return true
    }

    // MARK: Folding one event

    func apply(_ e: Event, _ f: EventFields) {
        eventCount += 1
        firstSeen = min(firstSeen, e.timestamp)
        lastSeen = max(lastSeen, e.timestamp)
        let channel = f.channel?.stringValue ?? ""
        channels[channel.isEmpty ? "unknown" : channel, default: 0] += 1
        // The source is only stamped on what an event sets (most set nothing).
        var source: String { f.source?.stringValue ?? "" }

        // Traits: identify's traits, and context.traits of any call (RudderStack sends them there).
        if e.type == .identify, let t = f.traits, t.isObject { setTraits(t, e, source) }
        if let t = f.contextTraits, t.isObject { setTraits(t, e, source) }
        if let c = f.consent { setConsent(c, e, source) }

        guard e.type == .track, let name = f.event else { return }
        let props = f.properties
        if name.isString("Order Completed") {
            let orderID = props?["order_id"]?.scalarText
            if let orderID {
                let i = orderIDs.partitioningIndex { $0 >= orderID }
                if i < orderIDs.count && orderIDs[i] == orderID { return }  // the same order again
                orderIDs.insert(orderID, at: i)
            }
            orderCount += 1
            revenue += Money(amount: Self.orderValue(props))
            firstOrderAt = min(firstOrderAt ?? .max, e.timestamp)
            lastOrderAt = max(lastOrderAt ?? .min, e.timestamp)
            for p in props?["products"]?.elements ?? [] {
                if let c = p["category"]?.stringValue, !c.isEmpty { categories[c, default: 0] += 1 }
                if let id = p["product_id"]?.scalarText ?? p["sku"]?.scalarText {
                    let i = products.partitioningIndex { $0 >= id }
                    if i == products.count || products[i] != id { products.insert(id, at: i) }
                }
            }
        } else if name.isString("Order Refunded") {
            refundCount += 1
            refundTotal += Money(amount: props?["total"]?.doubleValue ?? props?["revenue"]?.doubleValue ?? props?["amount"]?.doubleValue ?? 0)
        } else if name.isString("Checkout Started") {
            lastCheckoutAt = max(lastCheckoutAt ?? .min, e.timestamp)
        } else if name.isString("Product Viewed") || name.isString("Product Added") {
            if let c = props?["category"]?.stringValue, !c.isEmpty { categories[c, default: 0] += 1 }
        } else if name.isString("Loyalty Points Earned") {
            loyaltyPoints += props?["points"]?.intValue ?? 0
        } else if name.isString("Loyalty Points Redeemed") {
            loyaltyPoints -= props?["points"]?.intValue ?? 0
        } else if name.isString("Survey Responded") {
            guard let score = props?["score"]?.intValue else { return }
            let s = Stamped(value: score, time: e.timestamp, seq: e.seq, source: source)
            if props?["survey"]?.isString("nps") == true {
                if s.isNewer(than: nps) { nps = s }
            } else if props?["survey"]?.isString("csat") == true {
                if s.isNewer(than: csat) { csat = s }
            }
        } else if name.isString("Consent Updated") {
            if let p = props?["purposes"] { setConsent(p, e, source) }
        }
    }

    /// An order's value: `revenue`, else `total`, else the sum of its products.
    static func orderValue(_ props: JSONView?) -> Double {
        if let r = props?["revenue"]?.doubleValue { return r }
        if let t = props?["total"]?.doubleValue { return t }
        var sum = 0.0
        for p in props?["products"]?.elements ?? [] {
            sum += (p["price"]?.doubleValue ?? 0) * (p["quantity"]?.doubleValue ?? 1)
        }
        return sum
    }

    private func setTraits(_ t: JSONView, _ e: Event, _ source: String) {
        for (key, value) in t.members {
            let s = Stamped(value: value.json, time: e.timestamp, seq: e.seq, source: source)
            if s.isNewer(than: traits[key]) { traits[key] = s }
        }
    }

    /// `{purpose: bool}`, or Segment's `{categoryPreferences: {purpose: bool}}`.
    private func setConsent(_ c: JSONView, _ e: Event, _ source: String) {
        let prefs = c["categoryPreferences"] ?? c
        for (purpose, value) in prefs.members {
            guard let granted = value.boolValue else { continue }
            let s = Stamped(value: granted, time: e.timestamp, seq: e.seq, source: source)
            if s.isNewer(than: consent[purpose]) { consent[purpose] = s }
        }
    }

    // MARK: Merging

    /// Folds `other` (merged away) into this profile: the result does not depend on which
    /// of the two histories came first.
    func absorb(_ o: ProfileState) {
        merged = Array(Set(merged + o.merged + [o.id])).sorted()
        for id in o.identifiers { _ = insertIdentifier(id) }
        for (k, v) in o.traits where v.isNewer(than: traits[k]) { traits[k] = v }
        firstSeen = min(firstSeen, o.firstSeen)
        lastSeen = max(lastSeen, o.lastSeen)
        eventCount += o.eventCount
        for (k, v) in o.channels { channels[k, default: 0] += v }
        // Orders both profiles saw count once.
        var shared = 0
        for id in o.orderIDs {
            let i = orderIDs.partitioningIndex { $0 >= id }
            if i < orderIDs.count && orderIDs[i] == id { shared += 1 } else { orderIDs.insert(id, at: i) }
        }
        _ = shared  // the same order in two profiles cannot happen: an order event folds into one profile
        orderCount += o.orderCount
        revenue += o.revenue
        firstOrderAt = Self.minOpt(firstOrderAt, o.firstOrderAt)
        lastOrderAt = Self.maxOpt(lastOrderAt, o.lastOrderAt)
        refundCount += o.refundCount
        refundTotal += o.refundTotal
        for (k, v) in o.categories { categories[k, default: 0] += v }
        products = Array(Set(products + o.products)).sorted()
        lastCheckoutAt = Self.maxOpt(lastCheckoutAt, o.lastCheckoutAt)
        loyaltyPoints += o.loyaltyPoints
        if let n = o.nps, n.isNewer(than: nps) { nps = n }
        if let c = o.csat, c.isNewer(than: csat) { csat = c }
        for (k, v) in o.consent where v.isNewer(than: consent[k]) { consent[k] = v }
    }

    static func minOpt(_ a: Micros?, _ b: Micros?) -> Micros? { a.map { x in b.map { min(x, $0) } ?? x } ?? b }
    static func maxOpt(_ a: Micros?, _ b: Micros?) -> Micros? { a.map { x in b.map { max(x, $0) } ?? x } ?? b }

    // MARK: Derived

    var favoriteCategory: String? {
        categories.max { a, b in a.value != b.value ? a.value < b.value : a.key > b.key }?.key
    }

    var openCheckout: Bool {
        guard let c = lastCheckoutAt else { return false }
        return c > (lastOrderAt ?? .min)
    }

    // MARK: Encoding (canonical: sorted keys, fixed field order)

    static let formatVersion: UInt8 = 1

    func encode() -> [UInt8] {
        precondition(skippedProducts == nil, "a profile state decoded for reading is never written")
        // Local copies of the collections (one retain each), read by index, so elements are
        // not copied out one by one. (Most of the encoding's time is still the first touch
        // of each string: a state is folded on one core and encoded on another.)
        let merged = merged, identifiers = identifiers, traits = traits, orderIDs = orderIDs
        let products = products, consent = consent
        var w = ByteWriter(capacity: encodedSize)
        w.byte(Self.formatVersion)
        w.uint(id)
        w.uint(UInt64(merged.count)); for i in merged.indices { w.uint(merged[i]) }
        w.uint(UInt64(identifiers.count))
        for i in identifiers.indices { w.string(identifiers[i].type); w.string(identifiers[i].value) }
        w.uint(UInt64(traits.count))
        for i in 0..<traits.count {
            w.string(traits.keys[i])
            w.json(traits.values[i].value); w.int(traits.values[i].time); w.uint(traits.values[i].seq)
            w.string(traits.values[i].source)
        }
        w.int(firstSeen); w.int(lastSeen); w.int(eventCount)
        w.counts(channels)
        w.uint(UInt64(orderIDs.count)); for i in orderIDs.indices { w.string(orderIDs[i]) }
        w.int(orderCount); w.int(revenue); w.optInt(firstOrderAt); w.optInt(lastOrderAt)
        w.int(refundCount); w.int(refundTotal)
        w.counts(categories)
        w.uint(UInt64(products.count)); for i in products.indices { w.string(products[i]) }
        w.optInt(lastCheckoutAt); w.int(loyaltyPoints)
        for s in [nps, csat] {
            if let s { w.byte(1); w.int(s.value); w.int(s.time); w.uint(s.seq); w.string(s.source) } else { w.byte(0) }
        }
        w.uint(UInt64(consent.count))
        for i in 0..<consent.count {
            w.string(consent.keys[i])
            w.byte(consent.values[i].value ? 1 : 0); w.int(consent.values[i].time); w.uint(consent.values[i].seq)
            w.string(consent.values[i].source)
        }
        encodedSize = w.bytes.count
        return w.bytes
    }

    /// The state `encode` wrote. `forReading`: for a query or a rule that only reads it — the
    /// order ids (kept to count an order once) and the product ids (only counted when read)
    /// are skipped, a third of the strings of a customer with a purchase history.
    static func decode(_ raw: UnsafeRawBufferPointer, forReading: Bool = false) throws -> ProfileState {
        try raw.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            guard try r.byte() == formatVersion else { throw ViewsError("unknown profile format") }
            let p = ProfileState(id: try r.varint())
            let merged = try r.count()
            p.merged.reserveCapacity(merged)
            for _ in 0..<merged { p.merged.append(try r.varint()) }
            let ids = try r.count()
            p.identifiers.reserveCapacity(ids)
            for _ in 0..<ids { p.identifiers.append(Identifier(type: try r.string(), value: try r.string())) }
            let traits = try r.count()
            p.traits.reserveCapacity(traits)
            for _ in 0..<traits {
                let k = try r.string()
                p.traits.appendInOrder(k, Stamped(value: try JSON.decodeBinary(&r), time: try r.signedVarint(), seq: try r.varint(), source: try r.string()))
            }
            p.firstSeen = try r.signedVarint(); p.lastSeen = try r.signedVarint(); p.eventCount = try r.signedVarint()
            p.channels = try r.counts()
            let orders = try r.count()
            if forReading {
                for _ in 0..<orders { try r.skipString() }
            } else {
                p.orderIDs.reserveCapacity(orders)
                for _ in 0..<orders { p.orderIDs.append(try r.string()) }
            }
            p.orderCount = try r.signedVarint(); p.revenue = try r.signedVarint()
            p.firstOrderAt = try r.optInt(); p.lastOrderAt = try r.optInt()
            p.refundCount = try r.signedVarint(); p.refundTotal = try r.signedVarint()
            p.categories = try r.counts()
            let products = try r.count()
            if forReading {
                for _ in 0..<products { try r.skipString() }
                p.skippedProducts = products
            } else {
                p.products.reserveCapacity(products)
                for _ in 0..<products { p.products.append(try r.string()) }
            }
            p.lastCheckoutAt = try r.optInt(); p.loyaltyPoints = try r.signedVarint()
            var scored: [Stamped<Int64>?] = []
            for _ in 0..<2 {
                if try r.byte() == 1 {
                    scored.append(Stamped(value: try r.signedVarint(), time: try r.signedVarint(), seq: try r.varint(), source: try r.string()))
                } else { scored.append(nil) }
            }
            p.nps = scored[0]; p.csat = scored[1]
            for _ in 0..<(try r.varint()) {
                let k = try r.string()
                p.consent.appendInOrder(k, Stamped(value: try r.byte() == 1, time: try r.signedVarint(), seq: try r.varint(), source: try r.string()))
            }
            return p
        }
    }
}

/// Appends the binary forms the views use.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func byte(_ b: UInt8) { bytes.append(b) }
    mutating func uint(_ v: UInt64) { Varint.write(v, to: &bytes) }
    mutating func int(_ v: Int64) { Varint.writeSigned(v, to: &bytes) }
    mutating func optInt(_ v: Int64?) {
        if let v { byte(1); int(v) } else { byte(0) }
    }
    mutating func string(_ s: String) {
        // Borrowed, not copied into a `var` for `withUTF8` (a retain of the string).
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { u in
            Varint.write(UInt64(u.count), to: &bytes)
            bytes.append(contentsOf: u)
        }
        if done == nil {
            Varint.write(UInt64(s.utf8.count), to: &bytes)
            bytes.append(contentsOf: s.utf8)
        }
    }
    mutating func json(_ j: JSON) { j.encodeBinary(into: &bytes) }
    mutating func counts(_ d: SortedMap<Int64>) {
        uint(UInt64(d.count))
        for i in 0..<d.count { string(d.keys[i]); int(d.values[i]) }
    }
}

extension BinaryReader {
    mutating func optInt() throws -> Int64? { try byte() == 1 ? try signedVarint() : nil }
    mutating func counts() throws -> SortedMap<Int64> {
        let n = try count()
        var d = SortedMap<Int64>()
        d.reserveCapacity(n)
        for _ in 0..<n {
            let k = try string()
            d.appendInOrder(k, try signedVarint())
        }
        return d
    }
}

extension RandomAccessCollection where Index == Int {
    /// The first index whose element satisfies `belongs` (which must be false then true along the collection).
    func partitioningIndex(where belongs: (Element) -> Bool) -> Int {
        var lo = startIndex, hi = endIndex
        while lo < hi {
            let mid = (lo + hi) / 2
            if belongs(self[mid]) { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// Whether `other` holds the same bytes: the first byte, then `memcmp` (not the generic
    /// element-by-element walk of `elementsEqual`).
    func sameBytes(as other: UnsafeBufferPointer<UInt8>) -> Bool {
        count == other.count && (isEmpty || (self[0] == other[0] && memcmp(baseAddress!, other.baseAddress!, count) == 0))
    }
}

extension UInt64 {
    /// Big-endian bytes: keys that sort numerically as bytes.
    var be: [UInt8] { withUnsafeBytes(of: bigEndian) { Array($0) } }
}
