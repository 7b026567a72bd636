import EventLog
import Foundation
import JSONCore

/// A segment's definition as stored in `seg_defs`: the JSON of its `Segment Defined` event
/// plus where it came from.
struct SegmentDefinition {
    var key: String
    var name: String
    var ruleJSON: JSON
    var rule: Rule
    var builtin: Bool
    /// The seq of the system event that defined it (0: built in).
    var seq: UInt64
    /// Its event time (0: built in).
    var definedAt: Micros
    /// How many times it was (re)defined.
    var version: Int64

    var json: JSON {
        .object([("key", .string(key)), ("name", .string(name)), ("rule", ruleJSON), ("builtin", .bool(builtin)),
                 ("seq", .int(Int64(seq))), ("defined_at", builtin ? .null : .string(Timestamp.format(definedAt))),
                 ("version", .int(version))])
    }

    func encode() -> [UInt8] { json.binary }

    static func decode(_ raw: UnsafeRawBufferPointer) throws -> SegmentDefinition {
        let j = try JSON.decodeBinary(Array(raw))
        guard let key = j["key"]?.stringValue, let rule = j["rule"] else { throw ViewsError("damaged segment definition") }
        let builtin = j["builtin"]?.boolValue ?? false
        let parsed: Rule
        if builtin, let g = rule["global"]?.stringValue { parsed = .global(g) } else { parsed = try RuleParser.parse(rule) }
        return SegmentDefinition(key: key, name: j["name"]?.stringValue ?? key, ruleJSON: rule, rule: parsed, builtin: builtin,
                                 seq: UInt64(j["seq"]?.intValue ?? 0),
                                 definedAt: j["defined_at"]?.stringValue.flatMap(Timestamp.parse) ?? 0,
                                 version: j["version"]?.intValue ?? 1)
    }
}

/// The built-in segments. Per-profile ones are plain rules; VIP and the RFM groups are global
/// (they rank customers against each other) and are recomputed on the daily logical tick.
enum BuiltinSegments {
    static let rfmGroups: [(key: String, name: String)] = [
        ("rfm_champions", "RFM: Champions"), ("rfm_loyal", "RFM: Loyal"), ("rfm_potential_loyalists", "RFM: Potential Loyalists"),
        ("rfm_new", "RFM: New"), ("rfm_at_risk", "RFM: At Risk"), ("rfm_cant_lose", "RFM: Can't Lose"),
        ("rfm_hibernating", "RFM: Hibernating"), ("rfm_lost", "RFM: Lost"),
    ]

    static var all: [SegmentDefinition] {
        var out: [SegmentDefinition] = []
        func add(_ key: String, _ name: String, _ rule: String) {
            let j = try! JSON.parse(Array(rule.utf8))
            out.append(SegmentDefinition(key: key, name: name, ruleJSON: j, rule: try! RuleParser.parse(j), builtin: true,
                                         seq: 0, definedAt: 0, version: 1))
        }
        func global(_ key: String, _ name: String) {
            out.append(SegmentDefinition(key: key, name: name, ruleJSON: .object([("global", .string(key))]), rule: .global(key),
                                         builtin: true, seq: 0, definedAt: 0, version: 1))
        }
        add("churn_risk", "Churn risk (2+ orders, none in 90 days)",
            #"{"all":[{"computed":"order_count","gte":2},{"computed":"last_order_at","before":"-90d"}]}"#)
        add("cart_abandoners", "Cart abandoners (checkout started 1–7 days ago, no order since)",
            #"{"all":[{"computed":"open_checkout","eq":true},{"computed":"last_checkout_at","before":"-1d"},{"computed":"last_checkout_at","after":"-7d"}]}"#)
        add("new_customers", "New customers (first order within 30 days)",
            #"{"computed":"first_order_at","after":"-30d"}"#)
        add("email_consent", "Email-marketing consent given",
            #"{"computed":"consent.email_marketing","eq":true}"#)
        global("vip", "VIP (top 10 % by CLV)")
        for g in rfmGroups { global(g.key, g.name) }
        return out
    }

    static let keys: Set<String> = Set(all.map(\.key))

    /// The RFM group of scores r and f/m (1–5): first match of a fixed grid.
    static func rfmGroup(r: Int, f: Int, m: Int) -> String {
        let fm = (f + m + 1) / 2
        if r >= 4 && fm >= 4 { return "rfm_champions" }
        if r == 1 && fm >= 4 { return "rfm_cant_lose" }
        if r <= 2 && fm >= 3 { return "rfm_at_risk" }
        if r >= 3 && fm >= 3 { return "rfm_loyal" }
        if r >= 4 && fm == 1 { return "rfm_new" }
        if r >= 3 { return "rfm_potential_loyalists" }
        if r == 2 { return "rfm_hibernating" }
        return "rfm_lost"
    }
}

/// Validating a `PUT /v1/segments/{key}` body against the definitions in force.
public enum SegmentValidation {
    /// Parses `{name, rule}` for `key`; throws a `RuleError` naming the bad node. `existing`
    /// gives the rule references of each defined segment (for unknown keys and cycles).
    public static func validate(key: String, body: JSON, existing: [String: [String]]) throws(RuleError) -> JSON {
        guard SegmentKey.isValid(key) else { throw RuleError("key", "a segment key is [a-z0-9_-], 1–64 characters") }
        guard !BuiltinSegments.keys.contains(key) else { throw RuleError("key", "\(key) is a built-in segment and cannot be redefined") }
        guard case .object(let members) = body else { throw RuleError("$", "the body must be an object {name, rule}") }
        for (k, _) in members where k != "name" && k != "rule" && k != "description" {
            throw RuleError(k, "unexpected key (allowed: name, rule, description)")
        }
        let name = body["name"]?.stringValue ?? key
        if let n = body["name"], n.stringValue == nil || name.isEmpty || name.count > 200 {
            throw RuleError("name", "must be a non-empty string of at most 200 characters")
        }
        guard let ruleJSON = body["rule"] else { throw RuleError("rule", "is required") }
        let rule = try RuleParser.parse(ruleJSON, known: { $0 != key && (existing[$0] != nil || BuiltinSegments.keys.contains($0)) })
        if let cycle = cycle(from: key, refs: rule.references, existing: existing) {
            throw RuleError("rule", "segment references form a cycle: \(cycle.joined(separator: " → "))")
        }
        var out: [(String, JSON)] = [("key", .string(key)), ("name", .string(name)), ("rule", ruleJSON)]
        if let d = body["description"]?.stringValue { out.append(("description", .string(d))) }
        return .object(out)
    }

    /// A path key → … → key when `key` (referring to `refs`) would be in a cycle.
    static func cycle(from key: String, refs: [String], existing: [String: [String]]) -> [String]? {
        var stack: [(String, [String])] = refs.sorted().map { ($0, [key, $0]) }
        var seen: Set<String> = []
        while let (k, path) = stack.popLast() {
            if k == key { return path }
            guard seen.insert(k).inserted else { continue }
            for r in (existing[k] ?? []).sorted() { stack.append((r, path + [r])) }
        }
        return nil
    }
}
