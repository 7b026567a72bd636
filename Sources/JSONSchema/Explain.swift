import Foundation
import JSONCore

/// Turns a failed validation into messages that name the field and say what it must be.
/// Runs only for values that failed the fast check, so it may build strings freely.
struct Explainer {
    /// Answers which parts of the value are valid.
    let program: Program
    /// What `ValidationFailure.schema` says: the applied schema's `$id` or file name.
    let schema: String
    /// How the root value is called in messages: "the message".
    let root: String
    var failures: [ValidationFailure] = []

    func field(_ path: String) -> String { path.isEmpty ? root : path }

    mutating func add(_ path: String, _ message: String) {
        failures.append(ValidationFailure(path: path, message: message, schema: schema))
    }

    static func member(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }
    static func item(_ path: String, _ index: Int) -> String { path + "[\(index)]" }

    /// A value as quoted in a message: strings quoted (and cut), numbers as written.
    static func summary(_ v: JSON) -> String {
        switch v {
        case .string(let s): return "\"" + (s.count > 60 ? String(s.prefix(60)) + "…" : s) + "\""
        case .array(let a): return "an array of \(a.count) item\(a.count == 1 ? "" : "s")"
        case .object: return "an object"
        default: return v.jsonString
        }
    }

    /// What a value is, for a type failure: `string`, `object`, or the number/literal itself.
    static func got(_ v: JSON) -> String {
        switch v {
        case .int, .double, .bool, .null: return v.jsonString
        default: return v.typeName
        }
    }

    /// `{field}` and `{value}` in an `x-message` become the path and the value.
    static func fill(_ template: String, field: String, value: JSON) -> String {
        guard template.contains("{") else { return template }
        return template.replacingOccurrences(of: "{field}", with: field)
            .replacingOccurrences(of: "{value}", with: summary(value))
    }
}

extension TypeSet {
    /// "a string or a number or null".
    var phrase: String {
        var parts: [String] = []
        if contains(.object) { parts.append("an object") }
        if contains(.array) { parts.append("an array") }
        if contains(.string) { parts.append("a string") }
        if contains(.number) { parts.append("a number") } else if contains(.integer) { parts.append("an integer") }
        if contains(.boolean) { parts.append("a boolean") }
        if contains(.null) { parts.append("null") }
        return parts.joined(separator: " or ")
    }
}

extension Node {
    /// Appends why `v` fails this schema (nothing when it does not).
    func explain(_ v: JSON, at path: String, _ ex: inout Explainer) {
        if let message {
            if !ex.program.isValid(id, v) { ex.add(path, Explainer.fill(message, field: ex.field(path), value: v)) }
            return
        }
        let f = ex.field(path)
        if never {
            ex.add(path, "\(f) is not allowed")
            return
        }
        if !types.admits(v) {
            ex.add(path, "\(f) must be \(types.phrase), got \(Explainer.got(v))")
            return
        }
        switch v {
        case .string(let s): explainString(s, path, &ex)
        case .int(let i): explainNumber(Double(i), v, path, &ex)
        case .double(let d): explainNumber(d, v, path, &ex)
        case .object(let members): if let object { explainObject(members, object, path, &ex) }
        case .array(let items): if let array { explainArray(items, array, path, &ex) }
        default: break
        }
        for (i, check) in checks.enumerated() where !ex.program.checkIsValid(id, i, v) { explain(check, v, path, &ex) }
    }

    private func explainString(_ s: String, _ path: String, _ ex: inout Explainer) {
        let f = ex.field(path)
        for check in strings {
            switch check {
            case .minLength(let n) where !Length.atLeast(s, n):
                ex.add(path, n == 1 ? "\(f) must not be empty" : "\(f) must be at least \(n) characters, got \(s.count)")
            case .maxLength(let n) where !Length.atMost(s, n):
                ex.add(path, "\(f) must be at most \(n) characters, got \(s.count)")
            case .pattern(let p) where !p.matches(s):
                ex.add(path, "\(f) must match \(p.source), got \(Explainer.summary(.string(s)))")
            case .format(let format) where !format.matches(s):
                ex.add(path, "\(f) must be \(format.example), got \(Explainer.summary(.string(s)))")
            default: break
            }
        }
    }

    private func explainNumber(_ d: Double, _ v: JSON, _ path: String, _ ex: inout Explainer) {
        let f = ex.field(path)
        for check in numbers {
            switch check {
            case .minimum(let m) where !(d >= m): ex.add(path, "\(f) must be at least \(JSON.formatDouble(m)), got \(v.jsonString)")
            case .maximum(let m) where !(d <= m): ex.add(path, "\(f) must be at most \(JSON.formatDouble(m)), got \(v.jsonString)")
            case .exclusiveMinimum(let m) where !(d > m): ex.add(path, "\(f) must be greater than \(JSON.formatDouble(m)), got \(v.jsonString)")
            case .exclusiveMaximum(let m) where !(d < m): ex.add(path, "\(f) must be less than \(JSON.formatDouble(m)), got \(v.jsonString)")
            default: break
            }
        }
    }

    private func explainObject(_ members: [(String, JSON)], _ rules: ObjectRules, _ path: String, _ ex: inout Explainer) {
        let f = ex.field(path)
        let title = document.title
        for name in rules.required where JSON.lookup(members, name) == nil {
            let p = Explainer.member(path, name)
            ex.add(p, "\(p) is required" + (title.map { " (\($0) requires \"\(name)\")" } ?? ""))
        }
        if let n = rules.minProperties, members.count < n { ex.add(path, "\(f) must have at least \(n) field\(n == 1 ? "" : "s"), got \(members.count)") }
        if let n = rules.maxProperties, members.count > n { ex.add(path, "\(f) must have at most \(n) field\(n == 1 ? "" : "s"), got \(members.count)") }
        for (key, value) in members {
            var declared = false
            if let node = rules.properties.first(where: { $0.0 == key })?.1 {
                declared = true
                if !ex.program.isValid(node.id, value) { node.explain(value, at: Explainer.member(path, key), &ex) }
            }
            for (pattern, node) in rules.patternProperties where pattern.matches(key) {
                declared = true
                if !ex.program.isValid(node.id, value) { node.explain(value, at: Explainer.member(path, key), &ex) }
            }
            if !declared, let other = rules.additionalProperties, !ex.program.isValid(other.id, value) {
                let p = Explainer.member(path, key)
                if other.never && other.message == nil {
                    ex.add(p, "\(p) is not allowed" + (title.map { " (\($0) allows no other fields)" } ?? ""))
                } else {
                    other.explain(value, at: p, &ex)
                }
            }
        }
    }

    private func explainArray(_ items: [JSON], _ rules: ArrayRules, _ path: String, _ ex: inout Explainer) {
        let f = ex.field(path)
        if let n = rules.minItems, items.count < n { ex.add(path, "\(f) must have at least \(n) item\(n == 1 ? "" : "s"), got \(items.count)") }
        if let n = rules.maxItems, items.count > n { ex.add(path, "\(f) must have at most \(n) item\(n == 1 ? "" : "s"), got \(items.count)") }
        if let node = rules.items {
            for (i, item) in items.enumerated() where !ex.program.isValid(node.id, item) {
                node.explain(item, at: Explainer.item(path, i), &ex)
            }
        }
    }

    private func explain(_ check: Check, _ v: JSON, _ path: String, _ ex: inout Explainer) {
        let f = ex.field(path)
        switch check {
        case .enumStrings(let allowed):
            ex.add(path, "\(f) must be \(Node.oneOf(allowed.map { JSON.string($0).jsonString })), got \(Explainer.summary(v))")
        case .enumValues(let allowed):
            ex.add(path, "\(f) must be \(Node.oneOf(allowed.map(\.jsonString))), got \(Explainer.summary(v))")
        case .const(let c):
            ex.add(path, "\(f) must be \(c.jsonString), got \(Explainer.summary(v))")
        case .allOf(let nodes):
            for n in nodes where !ex.program.isValid(n.id, v) { n.explain(v, at: path, &ex) }
        case .anyOf(let nodes):
            explainNoAlternative(nodes, v, path, &ex)
        case .oneOf(let nodes):
            let matching = nodes.filter { ex.program.isValid($0.id, v) }
            if matching.isEmpty {
                explainNoAlternative(nodes, v, path, &ex)
            } else {
                let forms = matching.map { $0.describe() ?? "#\($0.pointer)" }
                ex.add(path, "\(f) must match exactly one allowed form but matches \(matching.count): \(forms.joined(separator: ", "))")
            }
        case .not(let node):
            ex.add(path, "\(f) must not be \(node.describe() ?? "of the form #\(node.pointer)"), got \(Explainer.summary(v))")
        case .condition(let cond, let then, let otherwise):
            let branch = ex.program.isValid(cond.id, v) ? then : otherwise
            branch?.explain(v, at: path, &ex)
        case .ref(let ref):
            ref.target!.explain(v, at: path, &ex)
        }
    }

    /// One readable message for `anyOf`/`oneOf` when no alternative accepts `v`: "must be
    /// A or B" when the alternatives can be named (by `title`, else by type); else the
    /// reasons of the only alternative of the value's type; else the first alternative's.
    private func explainNoAlternative(_ nodes: [Node], _ v: JSON, _ path: String, _ ex: inout Explainer) {
        let f = ex.field(path)
        let titles = nodes.compactMap(\.effectiveTitle)
        if titles.count == nodes.count {
            ex.add(path, "\(f) must be \(titles.joined(separator: " or ")), got \(Explainer.summary(v))")
            return
        }
        let candidates = nodes.filter { $0.effectiveTypes.admits(v) }
        if candidates.count == 1 {
            candidates[0].explain(v, at: path, &ex)
            return
        }
        let names = nodes.compactMap { $0.describe() }
        if names.count == nodes.count, Set(names).count == names.count {
            ex.add(path, "\(f) must be \(names.joined(separator: " or ")), got \(Explainer.summary(v))")
            return
        }
        var first = Explainer(program: ex.program, schema: ex.schema, root: ex.root)
        (candidates.first ?? nodes[0]).explain(v, at: path, &first)
        let reason = first.failures.first?.message ?? "it does not match"
        ex.add(path, "\(f) matches none of the \(nodes.count) allowed forms (the first: \(reason))")
    }

    private static func oneOf(_ literals: [String]) -> String {
        if literals.count == 1 { return literals[0] }
        let shown = literals.prefix(12).joined(separator: ", ")
        return "one of " + shown + (literals.count > 12 ? ", …" : "")
    }

    /// The title of this node, or of the schema it only refers to.
    var effectiveTitle: String? {
        if let title { return title }
        if types == .all, strings.isEmpty, numbers.isEmpty, object == nil, array == nil, checks.count == 1,
           case .ref(let r) = checks[0] {
            return r.target?.effectiveTitle
        }
        return nil
    }

    /// The types this node can accept, narrowed by what it refers to or requires in `allOf`.
    var effectiveTypes: TypeSet {
        var t = never ? TypeSet() : types
        for check in checks {
            switch check {
            case .ref(let r): if let target = r.target { t.formIntersection(target.effectiveTypes) }
            case .allOf(let nodes): for n in nodes { t.formIntersection(n.effectiveTypes) }
            default: break
            }
        }
        return t
    }

    /// A short noun phrase for what this node accepts ("a number at least 0", "a string
    /// matching ^[A-Z]{3}$"), or nil when it cannot be said briefly.
    func describe() -> String? {
        if let t = effectiveTitle { return t }
        for check in checks {
            switch check {
            case .enumStrings(let a): return Node.oneOf(a.map { JSON.string($0).jsonString })
            case .enumValues(let a): return Node.oneOf(a.map(\.jsonString))
            case .const(let c): return c.jsonString
            default: continue
            }
        }
        let t = effectiveTypes
        guard t != .all else { return nil }
        var phrase = t.phrase
        if t == .string {
            for check in strings {
                switch check {
                case .minLength(1): phrase = "a non-empty string"
                case .pattern(let p): phrase += " matching \(p.source)"
                case .format(let format): phrase = format.example
                default: continue
                }
            }
        }
        if t.isSubset(of: [.number, .integer]) {
            for check in numbers {
                switch check {
                case .minimum(let m): phrase += " of at least \(JSON.formatDouble(m))"
                case .maximum(let m): phrase += " of at most \(JSON.formatDouble(m))"
                case .exclusiveMinimum(let m): phrase += " greater than \(JSON.formatDouble(m))"
                case .exclusiveMaximum(let m): phrase += " less than \(JSON.formatDouble(m))"
                }
            }
        }
        return phrase
    }
}
