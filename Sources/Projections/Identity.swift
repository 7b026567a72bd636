import EventLog
import Foundation
import JSONCore

/// Merge protection, per identifier type: how many of a type one profile may hold, which
/// types win when a merge would break that, and values that are never identifiers.
///
/// The rules are part of what a profiles view is built from: `digest` is stored with the
/// view, and a change of rules rebuilds it (as a version bump does).
public struct IdentityRules: Sendable, Equatable {
    public struct TypeRule: Sendable, Equatable {
        public var limit: Int?
        public var blocked: [String]
        public var blockedPatterns: [String]
        public init(limit: Int? = nil, blocked: [String] = [], blockedPatterns: [String] = []) {
            self.limit = limit
            self.blocked = blocked
            self.blockedPatterns = blockedPatterns
        }
    }

    /// Per-type rules; a type not named uses `defaultLimit` and the global block lists.
    public var types: [String: TypeRule]
    public var defaultLimit: Int
    /// Blocked values for every type (compared case-insensitively after normalisation).
    public var blocked: [String]
    /// Blocked patterns for every type (ECMA-262, unanchored unless anchored).
    public var blockedPatterns: [String]
    /// Highest priority first. `*` stands for every type not listed (in name order).
    public var priority: [String]
    /// Track events that are not a customer's (e.g. marketing spend): no profile folds them.
    public var ignoredEvents: [String]

    public static let `default` = IdentityRules(
        types: ["user_id": TypeRule(limit: 1)],
        defaultLimit: 5,
        blocked: ["-1", "null", "undefined", "anonymous", "guest", "nan", "none", "[object object]", "test@test.com",
                  "unknown", "n/a", "nil", "0"],
        blockedPatterns: ["^[0-]*$"],
        priority: ["user_id", "email", "phone", "*", "anonymous_id", "device_id"],
        ignoredEvents: ["Marketing Spend"])

    public init(types: [String: TypeRule], defaultLimit: Int, blocked: [String], blockedPatterns: [String],
                priority: [String], ignoredEvents: [String]) {
        self.types = types
        self.defaultLimit = defaultLimit
        self.blocked = blocked
        self.blockedPatterns = blockedPatterns
        self.priority = priority
        self.ignoredEvents = ignoredEvents
    }

    /// Rules from the `identity` object of the configuration file, on top of the defaults:
    ///
    ///     { "defaultLimit": 5, "blocked": ["guest"], "blockedPatterns": ["^[0-]*$"],
    ///       "priority": ["user_id", "email", "phone", "*", "anonymous_id", "device_id"],
    ///       "types": { "user_id": { "limit": 1, "blocked": ["admin"] } },
    ///       "ignoredEvents": ["Marketing Spend"] }
    public init(json: JSON) throws {
        var r = IdentityRules.default
        guard json.isObject else { throw RulesError("identity must be an object") }
        for (key, value) in json.objectValue ?? [] {
            switch key {
            case "defaultLimit":
                guard let n = value.intValue, n >= 1 else { throw RulesError("identity.defaultLimit must be an integer ≥ 1") }
                r.defaultLimit = Int(n)
            case "blocked": r.blocked = try Self.strings(value, "identity.blocked")
            case "blockedPatterns": r.blockedPatterns = try Self.strings(value, "identity.blockedPatterns")
            case "priority": r.priority = try Self.strings(value, "identity.priority")
            case "ignoredEvents": r.ignoredEvents = try Self.strings(value, "identity.ignoredEvents")
            case "types":
                guard let members = value.objectValue else { throw RulesError("identity.types must be an object") }
                for (type, rule) in members {
                    var t = TypeRule()
                    for (k, v) in rule.objectValue ?? [] {
                        switch k {
                        case "limit":
                            guard let n = v.intValue, n >= 1 else { throw RulesError("identity.types.\(type).limit must be an integer ≥ 1") }
                            t.limit = Int(n)
                        case "blocked": t.blocked = try Self.strings(v, "identity.types.\(type).blocked")
                        case "blockedPatterns": t.blockedPatterns = try Self.strings(v, "identity.types.\(type).blockedPatterns")
                        default: throw RulesError("identity.types.\(type): unknown key \(k)")
                        }
                    }
                    if type == "user_id" && t.limit == nil { t.limit = 1 }
                    r.types[type] = t
                }
            default: throw RulesError("identity: unknown key \(key)")
            }
        }
        for p in r.blockedPatterns + r.types.values.flatMap(\.blockedPatterns) {
            do { _ = try Pattern(p) } catch { throw RulesError("identity: blocked pattern \(p) is not a valid regular expression") }
        }
        self = r
    }

    static func strings(_ v: JSON, _ path: String) throws -> [String] {
        guard let a = v.arrayValue else { throw RulesError("\(path) must be an array of strings") }
        return try a.map { guard let s = $0.stringValue else { throw RulesError("\(path) must be an array of strings") }; return s }
    }

    /// The rules as the configuration file spells them (`init(json:)` reads this back).
    public var json: JSON {
        func strings(_ a: [String]) -> JSON { .array(a.map(JSON.string)) }
        let types: [(String, JSON)] = self.types.sorted { $0.key < $1.key }.map { t, r in
            var o: [(String, JSON)] = []
            if let l = r.limit { o.append(("limit", .int(Int64(l)))) }
            o.append(("blocked", strings(r.blocked)))
            o.append(("blockedPatterns", strings(r.blockedPatterns)))
            return (t, .object(o))
        }
        return .object([("defaultLimit", .int(Int64(defaultLimit))), ("blocked", strings(blocked)),
                        ("blockedPatterns", strings(blockedPatterns)), ("priority", strings(priority)),
                        ("ignoredEvents", strings(ignoredEvents)), ("types", .object(types))])
    }

    /// A stable text of the rules; a view records it and is rebuilt when it changes.
    public var digest: String {
        var parts = ["limit=\(defaultLimit)", "blocked=\(blocked.joined(separator: "\u{1}"))",
                     "patterns=\(blockedPatterns.joined(separator: "\u{1}"))", "priority=\(priority.joined(separator: ","))",
                     "ignored=\(ignoredEvents.joined(separator: "\u{1}"))"]
        for (t, r) in types.sorted(by: { $0.key < $1.key }) {
            parts.append("type=\(t):\(r.limit.map(String.init) ?? "-"):\(r.blocked.joined(separator: "\u{1}")):\(r.blockedPatterns.joined(separator: "\u{1}"))")
        }
        return parts.joined(separator: "\n")
    }

    /// Normalises a raw identifier value (see `Identifier.normalise`).
    public static func normalise(type: String, _ raw: String) -> String? { Identifier.normalise(type: type, raw) }
}

public struct RulesError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}

/// The rules compiled for the fold: lookups without allocation where possible.
final class CompiledRules: @unchecked Sendable {
    let rules: IdentityRules
    /// `rules.digest`, computed once: the runner stamps it on every batch it commits.
    let digest: String
    private let blocked: Set<String>
    private let patterns: [Pattern]
    private let typeBlocked: [String: Set<String>]
    private let typePatterns: [String: [Pattern]]
    private let ranks: [String: Int]
    private let wildcardRank: Int
    let ignored: Set<String>
    private let longestBlocked: Int

    init(_ rules: IdentityRules) {
        self.rules = rules
        digest = rules.digest
        blocked = Set(rules.blocked.map { $0.lowercased() })
        patterns = rules.blockedPatterns.compactMap { try? Pattern($0) }
        typeBlocked = rules.types.mapValues { Set($0.blocked.map { $0.lowercased() }) }
        typePatterns = rules.types.mapValues { $0.blockedPatterns.compactMap { try? Pattern($0) } }
        var ranks: [String: Int] = [:]
        for (i, t) in rules.priority.enumerated() where ranks[t] == nil { ranks[t] = i }
        self.ranks = ranks
        wildcardRank = ranks["*"] ?? rules.priority.count
        ignored = Set(rules.ignoredEvents)
        longestBlocked = (rules.blocked + rules.types.values.flatMap(\.blocked)).map(\.utf8.count).max() ?? 0
    }

    func limit(_ type: String) -> Int { rules.types[type]?.limit ?? rules.defaultLimit }

    /// Lower is more important.
    func rank(_ type: String) -> Int { ranks[type] ?? wildcardRank }

    /// Priority order: rank, then identifier (a total order: the drop order is its reverse).
    func precedes(_ a: Identifier, _ b: Identifier) -> Bool {
        let ra = rank(a.type), rb = rank(b.type)
        return ra != rb ? ra < rb : a < b
    }

    /// The reason a value is blocked, or nil.
    func blockReason(_ id: Identifier) -> String? {
        // Most identifiers are longer than every blocked value: no lower-casing, no lookup.
        if id.value.utf8.count <= longestBlocked {
            let lower = id.value.lowercased()
            if blocked.contains(lower) || typeBlocked[id.type]?.contains(lower) == true { return "blocked value" }
        }
        for p in patterns where p.matches(id.value) { return "blocked pattern \(p.source)" }
        for p in typePatterns[id.type] ?? [] where p.matches(id.value) { return "blocked pattern \(p.source)" }
        return nil
    }
}

