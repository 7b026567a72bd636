import EventLog
import Foundation
import JSONCore

/// A rule that does not parse: `path` names the bad node (`rule.all[2].within`).
public struct RuleError: Error, Equatable, CustomStringConvertible, Sendable {
    public let path: String
    public let message: String
    public init(_ path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
}

/// The segment rule language (schema: `Schemas/segment.schema.json`).
///
///     { "all": [ { "computed": "order_count", "gte": 2 },
///                { "event": "Order Completed", "at_least": 1, "within": "30d", "where": { "channel": "pos" } },
///                { "not": { "trait": "plan", "eq": "trial" } },
///                { "segment": "vip" } ] }
indirect enum Rule: Sendable {
    case all([Rule])
    case any([Rule])
    case not(Rule)
    case compare(Field, CompareOp, Operand)
    case event(EventCondition)
    case segment(String)
    /// A global built-in (VIP, RFM groups): recomputed on the daily tick, never per profile.
    case global(String)

    /// Segment keys this rule refers to.
    var references: [String] {
        switch self {
        case .all(let rs), .any(let rs): return rs.flatMap(\.references)
        case .not(let r): return r.references
        case .segment(let k): return [k]
        default: return []
        }
    }

    /// The event conditions, in the order their `index` numbers them.
    var eventConditions: [EventCondition] {
        switch self {
        case .all(let rs), .any(let rs): return rs.flatMap(\.eventConditions)
        case .not(let r): return r.eventConditions
        case .event(let c): return [c]
        default: return []
        }
    }

    var isGlobal: Bool { if case .global = self { return true }; return false }
}

enum Field: Sendable {
    case trait([String])
    case computed(Computed)
}

enum Computed: Sendable, Equatable {
    case firstSeen, lastSeen, eventCount, orderCount, totalRevenue, aov, firstOrderAt, lastOrderAt, lastCheckoutAt
    case refundCount, refundTotal, favoriteCategory, distinctProducts, openCheckout, loyaltyPoints, nps, csat, channels
    case consent(String)

    static let names: [String: Computed] = [
        "first_seen": .firstSeen, "last_seen": .lastSeen, "event_count": .eventCount, "order_count": .orderCount,
        "total_revenue": .totalRevenue, "aov": .aov, "first_order_at": .firstOrderAt, "last_order_at": .lastOrderAt,
        "last_checkout_at": .lastCheckoutAt, "refund_count": .refundCount, "refund_total": .refundTotal,
        "favorite_category": .favoriteCategory, "distinct_products": .distinctProducts, "open_checkout": .openCheckout,
        "loyalty_points": .loyaltyPoints, "nps": .nps, "csat": .csat, "channels": .channels,
    ]

    static func named(_ s: String) -> Computed? {
        if s.hasPrefix("consent."), s.count > 8 { return .consent(String(s.dropFirst(8))) }
        return names[s]
    }
}

enum CompareOp: String, Sendable, CaseIterable {
    case eq, neq, gt, gte, lt, lte, `in`, contains, starts_with, exists, before, after
}

/// A point in time: absolute, or relative to the logical clock (`-30d`).
enum TimeRef: Sendable, Equatable {
    case absolute(Micros)
    case relative(Int64)

    func resolve(_ now: Micros) -> Micros {
        switch self {
        case .absolute(let t): return t
        case .relative(let d): return now &+ d
        }
    }

    static let units: [Character: Int64] = ["s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000]

    /// `-30d`, `+12h`, `now`, or an ISO-8601 date-time / date.
    static func parse(_ s: String, allowRelative: Bool = true) -> TimeRef? {
        if allowRelative {
            if s == "now" { return .relative(0) }
            if let d = duration(s, signed: true) { return .relative(d) }
        }
        if let t = Timestamp.parse(s) { return .absolute(t) }
        if s.count == 10, let t = Timestamp.parse(s + "T00:00:00Z") { return .absolute(t) }
        return nil
    }

    /// `30d`, `24h`, `2w`, `90m`, `45s` (with `signed`, an optional leading `-`/`+`) in µs.
    static func duration(_ s: String, signed: Bool) -> Int64? {
        var text = Substring(s)
        var sign: Int64 = 1
        if signed, let f = text.first, f == "-" || f == "+" { sign = f == "-" ? -1 : 1; text = text.dropFirst() }
        guard let unit = text.last, let mult = units[unit], text.count >= 2 else { return nil }
        let digits = text.dropLast()
        guard digits.allSatisfy(\.isASCII), let n = Int64(digits), n >= 0, n <= 100_000 else { return nil }
        return sign * n * mult
    }
}

enum Operand: Sendable {
    case json(JSON)
    case time(TimeRef)
}

struct EventCondition: Sendable {
    enum Count: Sendable, Equatable { case atLeast(Int64), atMost(Int64), exactly(Int64) }
    enum Window: Sendable, Equatable { case all, within(Int64), between(Micros, Micros) }
    /// Its number among the rule's event conditions (depth-first): the key of its counters.
    var index: Int
    var name: String
    var count: Count
    var window: Window
    /// (path from the event body, conditions all of which must hold).
    var filters: [([String], [(CompareOp, JSON)])]

    func satisfied(_ n: Int64) -> Bool {
        switch count {
        case .atLeast(let k): return n >= k
        case .atMost(let k): return n <= k
        case .exactly(let k): return n == k
        }
    }

    /// Whether an event (already known to be named `name`) passes the `where` filters.
    func matches(_ view: JSONView) -> Bool {
        for (path, tests) in filters {
            var v: JSONView? = view
            for p in path { v = v?[p] }
            let value = v.map { Val($0.json) } ?? .missing
            var due = Micros.max
            for (op, operand) in tests where !RuleEvaluator.compare(value, op, .json(operand), now: 0, due: &due) { return false }
        }
        return true
    }

    /// Timestamps it must keep: those that can still count at a later clock.
    func keeps(_ t: Micros, now: Micros) -> Bool {
        switch window {
        case .all: return false
        case .within(let d): return t > now - d
        case .between(let a, let b): return t >= a && t <= b
        }
    }
}

// MARK: Parsing and validation

enum RuleParser {
    static let maxDepth = 24
    static let maxNodes = 500

    /// Parses and validates `json` (at `path`). `known` says whether a segment key exists.
    static func parse(_ json: JSON, path: String = "rule", known: (String) -> Bool = { _ in true }) throws(RuleError) -> Rule {
        var index = 0, nodes = 0
        return try node(json, path, depth: 0, &index, &nodes, known)
    }

    private static func node(_ json: JSON, _ path: String, depth: Int, _ index: inout Int, _ nodes: inout Int,
                             _ known: (String) -> Bool) throws(RuleError) -> Rule {
        nodes += 1
        guard nodes <= maxNodes else { throw RuleError(path, "the rule has more than \(maxNodes) nodes") }
        guard depth <= maxDepth else { throw RuleError(path, "the rule nests deeper than \(maxDepth) levels") }
        guard case .object(let members) = json else {
            throw RuleError(path, "a condition must be an object, got \(json.typeName)")
        }
        let kinds = ["all", "any", "not", "trait", "computed", "event", "segment"]
        let present = members.map(\.0).filter { kinds.contains($0) }
        guard present.count == 1 else {
            throw RuleError(path, present.isEmpty ? "a condition needs one of \(kinds.joined(separator: ", "))"
                                                  : "a condition has exactly one of \(present.joined(separator: ", "))")
        }
        let kind = present[0]
        switch kind {
        case "all", "any":
            try only(members, [kind], path)
            guard case .array(let items)? = json[kind], !items.isEmpty else {
                throw RuleError(path + "." + kind, "must be a non-empty array of conditions")
            }
            var out: [Rule] = []
            for (i, item) in items.enumerated() {
                out.append(try node(item, "\(path).\(kind)[\(i)]", depth: depth + 1, &index, &nodes, known))
            }
            return kind == "all" ? .all(out) : .any(out)
        case "not":
            try only(members, ["not"], path)
            return .not(try node(json["not"]!, path + ".not", depth: depth + 1, &index, &nodes, known))
        case "segment":
            try only(members, ["segment"], path)
            guard let key = json["segment"]?.stringValue, SegmentKey.isValid(key) else {
                throw RuleError(path + ".segment", "must be a segment key ([a-z0-9_-], 1–64 characters)")
            }
            guard known(key) else { throw RuleError(path + ".segment", "no segment \(key) is defined") }
            return .segment(key)
        case "trait", "computed":
            let field: Field
            if kind == "trait" {
                guard let name = json["trait"]?.stringValue, !name.isEmpty, name.count <= 200 else {
                    throw RuleError(path + ".trait", "must be a trait name (a.b for a nested one)")
                }
                field = .trait(name.split(separator: ".", omittingEmptySubsequences: false).map(String.init))
            } else {
                guard let name = json["computed"]?.stringValue, let c = Computed.named(name) else {
                    throw RuleError(path + ".computed", "must be one of \(Computed.names.keys.sorted().joined(separator: ", ")), consent.<purpose>")
                }
                field = .computed(c)
            }
            let (op, operand) = try comparison(members, except: kind, path)
            return .compare(field, op, operand)
        default:  // event
            guard let name = json["event"]?.stringValue, !name.isEmpty else {
                throw RuleError(path + ".event", "must be an event name")
            }
            try only(members, ["event", "at_least", "at_most", "exactly", "within", "between", "where"], path)
            var count = EventCondition.Count.atLeast(1)
            let counts = members.filter { ["at_least", "at_most", "exactly"].contains($0.0) }
            if counts.count > 1 { throw RuleError(path + "." + counts[1].0, "use one of at_least, at_most, exactly") }
            if let (k, v) = counts.first {
                guard let n = v.intValue, n >= 0, v.doubleValue == Double(n) else {
                    throw RuleError(path + "." + k, "must be a non-negative integer")
                }
                count = k == "at_least" ? .atLeast(n) : k == "at_most" ? .atMost(n) : .exactly(n)
            }
            var window = EventCondition.Window.all
            if json["within"] != nil && json["between"] != nil { throw RuleError(path + ".between", "use within or between, not both") }
            if let w = json["within"] {
                guard let s = w.stringValue, let d = TimeRef.duration(s, signed: false), d > 0 else {
                    throw RuleError(path + ".within", "must be a duration such as 30d, 24h, 2w")
                }
                window = .within(d)
            }
            if let b = json["between"] {
                guard case .array(let ends) = b, ends.count == 2,
                      case .absolute(let from)? = ends[0].stringValue.flatMap({ TimeRef.parse($0, allowRelative: false) }),
                      case .absolute(let to)? = ends[1].stringValue.flatMap({ TimeRef.parse($0, allowRelative: false) }) else {
                    throw RuleError(path + ".between", "must be [from, to]: two ISO-8601 dates or date-times")
                }
                guard from <= to else { throw RuleError(path + ".between", "from is after to") }
                window = .between(from, to)
            }
            var filters: [([String], [(CompareOp, JSON)])] = []
            if let w = json["where"] {
                guard case .object(let fields) = w else { throw RuleError(path + ".where", "must be an object of property conditions") }
                for (k, v) in fields {
                    let p = path + ".where." + k
                    guard !k.isEmpty else { throw RuleError(p, "empty property name") }
                    let route: [String]
                    if k.contains(".") { route = k.split(separator: ".", omittingEmptySubsequences: false).map(String.init) } else if ["channel", "source", "event", "type", "userId", "anonymousId"].contains(k) { route = [k] } else { route = ["properties", k] }
                    if case .object(let ops) = v {
                        guard !ops.isEmpty else { throw RuleError(p, "needs at least one operator") }
                        var tests: [(CompareOp, JSON)] = []
                        for (o, operand) in ops {
                            guard let op = CompareOp(rawValue: o), op != .before, op != .after else {
                                throw RuleError(p + "." + o, "unknown operator (eq, neq, gt, gte, lt, lte, in, contains, starts_with, exists)")
                            }
                            try checkOperand(op, operand, p + "." + o, allowRelative: false)
                            tests.append((op, operand))
                        }
                        filters.append((route, tests))
                    } else if case .array = v {
                        throw RuleError(p, "use {\"in\": [...]} to match one of several values")
                    } else {
                        filters.append((route, [(.eq, v)]))
                    }
                }
            }
            let c = EventCondition(index: index, name: name, count: count, window: window, filters: filters)
            index += 1
            return .event(c)
        }
    }

    private static func only(_ members: [(String, JSON)], _ allowed: [String], _ path: String) throws(RuleError) {
        for (k, _) in members where !allowed.contains(k) {
            throw RuleError(path + "." + k, "unexpected key (allowed here: \(allowed.joined(separator: ", ")))")
        }
    }

    private static func comparison(_ members: [(String, JSON)], except kind: String, _ path: String) throws(RuleError) -> (CompareOp, Operand) {
        var found: (CompareOp, Operand)?
        for (k, v) in members where k != kind {
            guard let op = CompareOp(rawValue: k) else {
                throw RuleError(path + "." + k, "unknown operator (\(CompareOp.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if found != nil { throw RuleError(path + "." + k, "a comparison has exactly one operator") }
            found = (op, try checkOperand(op, v, path + "." + k, allowRelative: true))
        }
        guard let found else { throw RuleError(path, "a comparison needs an operator (eq, gt, in, exists, before, …)") }
        return found
    }

    @discardableResult
    static func checkOperand(_ op: CompareOp, _ v: JSON, _ path: String, allowRelative: Bool) throws(RuleError) -> Operand {
        switch op {
        case .exists:
            guard v.boolValue != nil else { throw RuleError(path, "must be true or false") }
        case .in:
            guard case .array(let a) = v, !a.isEmpty else { throw RuleError(path, "must be a non-empty array") }
        case .starts_with:
            guard v.stringValue != nil else { throw RuleError(path, "must be a string") }
        case .contains, .eq, .neq:
            if case .object = v { throw RuleError(path, "must be a string, number, boolean or null") }
            if case .array = v { throw RuleError(path, "must be a string, number, boolean or null (use in)") }
        case .gt, .gte, .lt, .lte:
            if v.doubleValue != nil { break }
            guard let s = v.stringValue, !s.isEmpty else { throw RuleError(path, "must be a number, a string or a date-time") }
            if allowRelative, let t = TimeRef.parse(s), case .relative = t { return .time(t) }
        case .before, .after:
            guard let s = v.stringValue, let t = TimeRef.parse(s, allowRelative: allowRelative) else {
                throw RuleError(path, "must be an ISO-8601 date-time or a relative time such as -30d")
            }
            return .time(t)
        }
        return .json(v)
    }
}

/// Segment keys: `[a-z0-9_-]{1,64}`.
public enum SegmentKey {
    public static func isValid(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 || $0 == 45 }
    }
}

// MARK: Values and evaluation

/// A value a condition compares: from a trait (JSON) or a computed trait.
enum Val: Equatable {
    case missing
    case null
    case num(Double)
    case str(String)
    case bool(Bool)
    case time(Micros)
    case list([Val])

    init(_ j: JSON) {
        switch j {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .num(Double(i))
        case .double(let d): self = .num(d)
        case .string(let s): self = .str(s)
        case .array(let a): self = .list(a.map(Val.init))
        case .object: self = .list([])  // present; comparisons other than exists fail
        }
    }

    var asTime: Micros? {
        switch self {
        case .time(let t): return t
        case .str(let s): if case .absolute(let t)? = TimeRef.parse(s, allowRelative: false) { return t }; return nil
        case .num(let d): return d.isFinite ? Micros(d * 1_000_000) : nil  // epoch seconds
        default: return nil
        }
    }
}

/// What an evaluation needs besides the profile: the logical clock, the counters of the
/// rule's event conditions and other segments' memberships. It collects the earliest later
/// time at which the answer could change without a new event (`due`).
struct EvalContext {
    var now: Micros
    var state: ProfileState
    /// Events counted for condition `index` of the segment being evaluated: (all-time count, kept timestamps).
    var counter: (Int) -> (Int64, [Micros])
    var isMember: (String) -> Bool
    var due: Micros = .max

    mutating func schedule(_ t: Micros) { if t > now && t < due { due = t } }
}

enum RuleEvaluator {
    static func evaluate(_ rule: Rule, _ ctx: inout EvalContext) -> Bool {
        switch rule {
        case .all(let rs):
            // Evaluate every child (not short-circuit) so every pending time change is scheduled.
            var ok = true
            for r in rs where !evaluate(r, &ctx) { ok = false }
            return ok
        case .any(let rs):
            var ok = false
            for r in rs where evaluate(r, &ctx) { ok = true }
            return ok
        case .not(let r): return !evaluate(r, &ctx)
        case .segment(let k): return ctx.isMember(k)
        case .global(let k): return ctx.isMember(k)
        case .compare(let field, let op, let operand):
            let v = value(field, ctx.state)
            var due = ctx.due
            let r = compare(v, op, operand, now: ctx.now, due: &due)
            ctx.schedule(due)
            return r
        case .event(let c):
            let (total, times) = ctx.counter(c.index)
            switch c.window {
            case .all: return c.satisfied(total)
            case .between(let a, let b): return c.satisfied(Int64(times.reduce(0) { $0 + ($1 >= a && $1 <= b ? 1 : 0) }))
            case .within(let d):
                var n: Int64 = 0
                for t in times where t > ctx.now - d {
                    n += 1
                    ctx.schedule(t + d)  // it leaves the window then
                }
                return c.satisfied(n)
            }
        }
    }

    static func value(_ field: Field, _ s: ProfileState) -> Val {
        switch field {
        case .trait(let path):
            guard var j = s.traits[path[0]]?.value else { return .missing }
            for p in path.dropFirst() {
                guard let next = j[p] else { return .missing }
                j = next
            }
            return Val(j)
        case .computed(let c):
            let seen = s.eventCount > 0
            switch c {
            case .firstSeen: return seen ? .time(s.firstSeen) : .missing
            case .lastSeen: return seen ? .time(s.lastSeen) : .missing
            case .eventCount: return .num(Double(s.eventCount))
            case .orderCount: return .num(Double(s.orderCount))
            case .totalRevenue: return .num(s.revenue.amount)
            case .aov: return s.orderCount > 0 ? .num((Double(s.revenue) / Double(s.orderCount)).rounded() / 10_000) : .missing
            case .firstOrderAt: return s.firstOrderAt.map(Val.time) ?? .missing
            case .lastOrderAt: return s.lastOrderAt.map(Val.time) ?? .missing
            case .lastCheckoutAt: return s.lastCheckoutAt.map(Val.time) ?? .missing
            case .refundCount: return .num(Double(s.refundCount))
            case .refundTotal: return .num(s.refundTotal.amount)
            case .favoriteCategory: return s.favoriteCategory.map(Val.str) ?? .missing
            case .distinctProducts: return .num(Double(s.distinctProducts))
            case .openCheckout: return .bool(s.openCheckout)
            case .loyaltyPoints: return .num(Double(s.loyaltyPoints))
            case .nps: return s.nps.map { .num(Double($0.value)) } ?? .missing
            case .csat: return s.csat.map { .num(Double($0.value)) } ?? .missing
            case .channels: return .list(s.channels.keys.map(Val.str))
            case .consent(let purpose): return s.consent[purpose].map { .bool($0.value) } ?? .missing
            }
        }
    }

    /// Compares; for a relative time, lowers `due` to the time the answer flips.
    static func compare(_ v: Val, _ op: CompareOp, _ operand: Operand, now: Micros, due: inout Micros) -> Bool {
        if op == .exists {
            let present: Bool
            switch v { case .missing, .null: present = false; default: present = true }
            if case .json(let j) = operand { return present == (j.boolValue ?? true) }
            return present
        }
        if case .time(let ref) = operand {
            guard let t = v.asTime else { return false }
            let threshold = ref.resolve(now)
            if case .relative(let off) = ref {
                // t > now + off flips at now = t - off; t < now + off becomes true at now = t - off + 1.
                let flip = t &- off
                for candidate in [flip, flip &+ 1] where candidate > now && candidate < due { due = candidate }
            }
            switch op {
            case .before, .lt: return t < threshold
            case .after, .gt: return t > threshold
            case .lte: return t <= threshold
            case .gte: return t >= threshold
            default: return false
            }
        }
        guard case .json(let j) = operand else { return false }
        switch op {
        case .eq: return equal(v, j)
        case .neq: return !equal(v, j)
        case .in:
            guard case .array(let options) = j else { return false }
            if case .list(let items) = v { return items.contains { i in options.contains { equal(i, $0) } } }
            return options.contains { equal(v, $0) }
        case .contains:
            switch v {
            case .str(let s): return j.stringValue.map { s.contains($0) } ?? false
            case .list(let items): return items.contains { equal($0, j) }
            default: return false
            }
        case .starts_with:
            if case .str(let s) = v, let p = j.stringValue { return s.hasPrefix(p) }
            return false
        case .gt, .gte, .lt, .lte:
            guard let c = order(v, j) else { return false }
            switch op {
            case .gt: return c > 0
            case .gte: return c >= 0
            case .lt: return c < 0
            default: return c <= 0
            }
        case .before, .after:
            guard let t = v.asTime, let s = j.stringValue, case .absolute(let x)? = TimeRef.parse(s, allowRelative: false) else { return false }
            return op == .before ? t < x : t > x
        case .exists: return false
        }
    }

    static func equal(_ v: Val, _ j: JSON) -> Bool {
        switch (v, j) {
        case (.null, .null): return true
        case (.num(let a), _): return j.doubleValue.map { $0 == a } ?? false
        case (.str(let a), .string(let b)): return a == b
        case (.bool(let a), .bool(let b)): return a == b
        case (.time(let a), .string(let s)): if case .absolute(let b)? = TimeRef.parse(s, allowRelative: false) { return a == b }; return false
        default: return false
        }
    }

    /// -1, 0, 1; nil when the two cannot be ordered.
    static func order(_ v: Val, _ j: JSON) -> Int? {
        switch v {
        case .num(let a):
            guard let b = j.doubleValue else { return nil }
            return a < b ? -1 : a > b ? 1 : 0
        case .str(let a):
            guard let b = j.stringValue else { return nil }
            return a < b ? -1 : a > b ? 1 : 0
        case .time(let a):
            guard let s = j.stringValue, case .absolute(let b)? = TimeRef.parse(s, allowRelative: false) else { return nil }
            return a < b ? -1 : a > b ? 1 : 0
        default: return nil
        }
    }
}
