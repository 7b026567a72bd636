// JSONSchema owns the validation of messages against the JSON Schemas in Schemas/: a compiled
// interpreter of a documented subset of JSON Schema 2020-12 (Schemas/README.md). The schemas
// are the single source of truth — a tracking plan is a schema file, not code. It knows
// nothing of storage.

import Foundation
import JSONCore

/// One reason a value does not satisfy a schema.
public struct ValidationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where in the message, dotted: `properties.products[2].price`; "" for the root.
    public let path: String
    /// What is wrong, naming the field.
    public let message: String
    /// The `$id` (or file name) of the schema that failed.
    public let schema: String

    public var description: String { message }
}

/// A schema that cannot be used: an unsupported keyword, a bad `$ref`, a wrong type.
public struct SchemaError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

/// A compiled schema. Built once; `validate` allocates only when it reports a failure.
public final class Schema: @unchecked Sendable {
    public let name: String
    let root: Node
    let id: String?

    /// Compiles `json`. `resolver` finds other schemas by `$id` for cross-file `$ref`s.
    /// - Throws: `SchemaError` naming an unsupported keyword or a malformed value.
    public convenience init(_ json: JSON, name: String) throws {
        try self.init(json, name: name, registry: nil)
    }

    init(_ json: JSON, name: String, registry: RefTable?) throws {
        self.name = name
        id = json["$id"]?.stringValue
        let table = registry ?? RefTable()
        root = try Compiler(document: json, name: name, refs: table).compile(json, at: "#")
        if registry == nil { try table.resolveAll() }
    }

    /// The failures of `value` against this schema (empty when valid).
    public func validate(_ value: JSON) -> [ValidationFailure] {
        var out: [ValidationFailure] = []
        root.check(value, path: Path(), schema: id ?? name, into: &out)
        return out
    }
}

/// A lazily built dotted path (only rendered when a failure is reported).
struct Path {
    var parts: [PathPart] = []
    enum PathPart { case key(String), index(Int) }
    func appending(_ k: String) -> Path { var p = self; p.parts.append(.key(k)); return p }
    func appending(_ i: Int) -> Path { var p = self; p.parts.append(.index(i)); return p }
    var text: String {
        var s = ""
        for p in parts {
            switch p {
            case .key(let k): s += s.isEmpty ? k : "." + k
            case .index(let i): s += "[\(i)]"
            }
        }
        return s
    }
    /// The path for messages: the field name, or "the message" at the root.
    var field: String { parts.isEmpty ? "the message" : text }
}

/// Schemas by `$id` and `$defs` pointers, for `$ref` resolution after every file is compiled.
final class RefTable {
    var byID: [String: Node] = [:]
    var pending: [(Node, String, String)] = []  // (ref node, target, from schema)

    func resolveAll() throws {
        for (node, target, from) in pending {
            guard let resolved = byID[target] else {
                throw SchemaError(message: "\(from): $ref \"\(target)\" names no known schema")
            }
            node.ref = resolved
        }
        pending = []
    }
}

final class Node {
    var types: Set<String>?
    var enumValues: [JSON]?
    var const: JSON?
    var properties: [(String, Node)] = []
    var required: [String] = []
    var additionalProperties: Node?
    var forbidAdditional = false
    var patternProperties: [(NSRegularExpression, Node)] = []
    var items: Node?
    var minItems: Int?, maxItems: Int?
    var minLength: Int?, maxLength: Int?
    var minProperties: Int?, maxProperties: Int?
    var pattern: NSRegularExpression?, patternText: String?
    var dateTime = false
    var minimum: Double?, maximum: Double?, exclusiveMinimum: Double?, exclusiveMaximum: Double?
    var allOf: [Node] = [], anyOf: [Node] = [], oneOf: [Node] = []
    var not: Node?
    var ifNode: Node?, thenNode: Node?, elseNode: Node?
    var ref: Node?
    /// `false` schema: nothing is valid.
    var never = false
    /// A custom failure message (`x-message`), used instead of the generated one.
    var message: String?
    /// The schema's `description`, for composite failures.
    var summary: String?

    func isValid(_ v: JSON) -> Bool {
        var out: [ValidationFailure] = []
        check(v, path: Path(), schema: "", into: &out)
        return out.isEmpty
    }

    func check(_ v: JSON, path: Path, schema: String, into out: inout [ValidationFailure]) {
        let before = out.count
        checkAll(v, path: path, schema: schema, into: &out)
        if let message, out.count > before {
            out.removeSubrange(before...)
            out.append(ValidationFailure(path: path.text, message: message, schema: schema))
        }
    }

    private func fail(_ path: Path, _ m: String, _ schema: String, _ out: inout [ValidationFailure]) {
        out.append(ValidationFailure(path: path.text, message: m, schema: schema))
    }

    private func checkAll(_ v: JSON, path: Path, schema: String, into out: inout [ValidationFailure]) {
        if never { fail(path, "\(path.field) is not allowed", schema, &out); return }
        if let ref { ref.check(v, path: path, schema: schema, into: &out) }
        if let types, !Node.matches(v, types) {
            fail(path, "\(path.field) must be \(types.sorted().joined(separator: " or ")), got \(v.typeName)", schema, &out)
            return
        }
        if let enumValues, !enumValues.contains(v) {
            let list = enumValues.map { $0.jsonString }.joined(separator: ", ")
            fail(path, "\(path.field) must be one of \(list), got \(v.jsonString.prefix(80))", schema, &out)
        }
        if let const, const != v { fail(path, "\(path.field) must be \(const.jsonString)", schema, &out) }
        switch v {
        case .object(let members):
            for name in required where JSON.lookup(members, name) == nil {
                let field = path.appending(name).text
                fail(path.appending(name), "\(field) is required", schema, &out)
            }
            if let minProperties, members.count < minProperties {
                fail(path, "\(path.field) must have at least \(minProperties) members", schema, &out)
            }
            if let maxProperties, members.count > maxProperties {
                fail(path, "\(path.field) must have at most \(maxProperties) members", schema, &out)
            }
            if !properties.isEmpty || additionalProperties != nil || forbidAdditional || !patternProperties.isEmpty {
                for (k, value) in members {
                    var known = false
                    for (name, node) in properties where name == k {
                        known = true
                        node.check(value, path: path.appending(k), schema: schema, into: &out)
                    }
                    for (re, node) in patternProperties
                    where re.firstMatch(in: k, range: NSRange(k.startIndex..., in: k)) != nil {
                        known = true
                        node.check(value, path: path.appending(k), schema: schema, into: &out)
                    }
                    if !known {
                        if forbidAdditional {
                            fail(path.appending(k), "\(path.appending(k).text) is not an allowed field", schema, &out)
                        } else if let additionalProperties {
                            additionalProperties.check(value, path: path.appending(k), schema: schema, into: &out)
                        }
                    }
                }
            }
        case .array(let items):
            if let minItems, items.count < minItems { fail(path, "\(path.field) must have at least \(minItems) items", schema, &out) }
            if let maxItems, items.count > maxItems { fail(path, "\(path.field) must have at most \(maxItems) items", schema, &out) }
            if let node = self.items {
                for (i, item) in items.enumerated() { node.check(item, path: path.appending(i), schema: schema, into: &out) }
            }
        case .string(let s):
            if minLength != nil || maxLength != nil {
                let n = s.count
                if let minLength, n < minLength {
                    fail(path, minLength == 1 ? "\(path.field) must not be empty" : "\(path.field) must be at least \(minLength) characters", schema, &out)
                }
                if let maxLength, n > maxLength { fail(path, "\(path.field) must be at most \(maxLength) characters, got \(n)", schema, &out) }
            }
            if let pattern, pattern.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) == nil {
                fail(path, "\(path.field) must match \(patternText ?? ""), got \"\(s.prefix(80))\"", schema, &out)
            }
            if dateTime, !DateTime.isValid(s) {
                fail(path, "\(path.field) must be an ISO-8601 date-time, got \"\(s.prefix(80))\"", schema, &out)
            }
        case .int, .double:
            let d = v.doubleValue!
            if let minimum, d < minimum { fail(path, "\(path.field) must be ≥ \(JSON.formatDouble(minimum)), got \(JSON.formatDouble(d))", schema, &out) }
            if let maximum, d > maximum { fail(path, "\(path.field) must be ≤ \(JSON.formatDouble(maximum)), got \(JSON.formatDouble(d))", schema, &out) }
            if let exclusiveMinimum, d <= exclusiveMinimum { fail(path, "\(path.field) must be > \(JSON.formatDouble(exclusiveMinimum))", schema, &out) }
            if let exclusiveMaximum, d >= exclusiveMaximum { fail(path, "\(path.field) must be < \(JSON.formatDouble(exclusiveMaximum))", schema, &out) }
        default: break
        }
        for node in allOf { node.check(v, path: path, schema: schema, into: &out) }
        if !anyOf.isEmpty, !anyOf.contains(where: { $0.isValid(v) }) {
            // One readable message: the first alternative's reasons.
            var first: [ValidationFailure] = []
            anyOf[0].check(v, path: path, schema: schema, into: &first)
            let reasons = first.map(\.message).joined(separator: "; ")
            fail(path, summary.map { "\(path.field): \($0)" } ?? "\(path.field) matches none of the allowed forms (\(reasons))", schema, &out)
        }
        if !oneOf.isEmpty {
            let n = oneOf.filter { $0.isValid(v) }.count
            if n != 1 {
                fail(path, n == 0 ? "\(path.field) matches none of the allowed forms" : "\(path.field) matches more than one allowed form", schema, &out)
            }
        }
        if let not, not.isValid(v) { fail(path, "\(path.field) is not allowed in this form", schema, &out) }
        if let ifNode {
            if ifNode.isValid(v) {
                thenNode?.check(v, path: path, schema: schema, into: &out)
            } else {
                elseNode?.check(v, path: path, schema: schema, into: &out)
            }
        }
    }

    static func matches(_ v: JSON, _ types: Set<String>) -> Bool {
        switch v {
        case .null: return types.contains("null")
        case .bool: return types.contains("boolean")
        case .int: return types.contains("integer") || types.contains("number")
        case .double(let d): return types.contains("number") || (types.contains("integer") && d.rounded() == d)
        case .string: return types.contains("string")
        case .array: return types.contains("array")
        case .object: return types.contains("object")
        }
    }
}

/// ISO-8601 date-time as clients send it (RFC 3339 with optional fraction, `Z` or offset).
enum DateTime {
    static let regex = try! NSRegularExpression(
        pattern: #"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)([.,]\d+)?([Zz]|[+-]([01]\d|2[0-3]):?[0-5]\d)$"#)
    static func isValid(_ s: String) -> Bool {
        regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }
}

struct Compiler {
    let document: JSON
    let name: String
    let refs: RefTable

    static let annotations: Set<String> = ["$schema", "$id", "$comment", "title", "description", "examples", "default",
                                           "deprecated", "readOnly", "writeOnly", "$defs", "definitions"]

    func compile(_ json: JSON, at pointer: String) throws -> Node {
        let node = Node()
        if pointer == "#", let id = json["$id"]?.stringValue { refs.byID[id] = node }
        refs.byID[(document["$id"]?.stringValue ?? name) + pointer] = node
        switch json {
        case .bool(let b):
            node.never = !b
            return node
        case .object(let members):
            for (k, v) in members {
                try apply(k, v, to: node, at: pointer)
            }
            // $defs are compiled so that `#/$defs/x` refs resolve.
            for defsKey in ["$defs", "definitions"] {
                if case .object(let defs)? = json[defsKey] {
                    for (k, v) in defs { _ = try compile(v, at: "\(pointer)/\(defsKey)/\(k)") }
                }
            }
            return node
        default:
            throw SchemaError(message: "\(name): a schema at \(pointer) must be an object or a boolean")
        }
    }

    func number(_ v: JSON, _ k: String, _ at: String) throws -> Double {
        guard let d = v.doubleValue, !(v.stringValue != nil) else { throw SchemaError(message: "\(name): \(k) at \(at) must be a number") }
        return d
    }

    func count(_ v: JSON, _ k: String, _ at: String) throws -> Int {
        guard case .int(let i) = v, i >= 0 else { throw SchemaError(message: "\(name): \(k) at \(at) must be a non-negative integer") }
        return Int(i)
    }

    func regex(_ v: JSON, _ at: String) throws -> NSRegularExpression {
        guard let p = v.stringValue, let re = try? NSRegularExpression(pattern: p) else {
            throw SchemaError(message: "\(name): pattern at \(at) is not a valid regular expression")
        }
        return re
    }

    func list(_ v: JSON, _ k: String, _ at: String) throws -> [Node] {
        guard case .array(let a) = v, !a.isEmpty else { throw SchemaError(message: "\(name): \(k) at \(at) must be a non-empty array") }
        return try a.enumerated().map { try compile($1, at: "\(at)/\(k)/\($0)") }
    }

    func apply(_ k: String, _ v: JSON, to node: Node, at: String) throws {
        switch k {
        case "type":
            let names: [String]
            if let s = v.stringValue { names = [s] } else { names = (v.arrayValue ?? []).compactMap(\.stringValue) }
            let known: Set<String> = ["null", "boolean", "integer", "number", "string", "array", "object"]
            guard !names.isEmpty, names.allSatisfy(known.contains) else { throw SchemaError(message: "\(name): unknown type at \(at)") }
            node.types = Set(names)
        case "enum":
            guard case .array(let a) = v else { throw SchemaError(message: "\(name): enum at \(at) must be an array") }
            node.enumValues = a
        case "const": node.const = v
        case "properties":
            guard case .object(let props) = v else { throw SchemaError(message: "\(name): properties at \(at) must be an object") }
            node.properties = try props.map { ($0.0, try compile($0.1, at: "\(at)/properties/\($0.0)")) }
        case "required":
            guard case .array(let a) = v else { throw SchemaError(message: "\(name): required at \(at) must be an array") }
            node.required = a.compactMap(\.stringValue)
        case "additionalProperties":
            if case .bool(false) = v { node.forbidAdditional = true } else { node.additionalProperties = try compile(v, at: "\(at)/additionalProperties") }
        case "patternProperties":
            guard case .object(let props) = v else { throw SchemaError(message: "\(name): patternProperties at \(at) must be an object") }
            node.patternProperties = try props.map { (try regex(.string($0.0), at), try compile($0.1, at: "\(at)/patternProperties")) }
        case "items": node.items = try compile(v, at: "\(at)/items")
        case "minItems": node.minItems = try count(v, k, at)
        case "maxItems": node.maxItems = try count(v, k, at)
        case "minLength": node.minLength = try count(v, k, at)
        case "maxLength": node.maxLength = try count(v, k, at)
        case "minProperties": node.minProperties = try count(v, k, at)
        case "maxProperties": node.maxProperties = try count(v, k, at)
        case "pattern":
            node.pattern = try regex(v, at)
            node.patternText = v.stringValue
        case "format":
            // Only date-time is asserted; other formats are annotations (as 2020-12 allows).
            if v.stringValue == "date-time" { node.dateTime = true }
        case "minimum": node.minimum = try number(v, k, at)
        case "maximum": node.maximum = try number(v, k, at)
        case "exclusiveMinimum": node.exclusiveMinimum = try number(v, k, at)
        case "exclusiveMaximum": node.exclusiveMaximum = try number(v, k, at)
        case "allOf": node.allOf = try list(v, k, at)
        case "anyOf": node.anyOf = try list(v, k, at)
        case "oneOf": node.oneOf = try list(v, k, at)
        case "not": node.not = try compile(v, at: "\(at)/not")
        case "if": node.ifNode = try compile(v, at: "\(at)/if")
        case "then": node.thenNode = try compile(v, at: "\(at)/then")
        case "else": node.elseNode = try compile(v, at: "\(at)/else")
        case "$ref":
            guard let target = v.stringValue else { throw SchemaError(message: "\(name): $ref at \(at) must be a string") }
            // `#/...` is within this document; anything else is another schema's `$id`
            // (optionally with a `#/...` pointer).
            let base = document["$id"]?.stringValue ?? name
            let full = target.hasPrefix("#") ? base + target : (target.contains("#") ? target : target + "#")
            let holder = Node()
            node.allOf.append(holder)
            refs.pending.append((holder, full, name))
        case "x-message": node.message = v.stringValue
        case "description":
            node.summary = v.stringValue
        default:
            if Compiler.annotations.contains(k) || k.hasPrefix("x-") { return }
            throw SchemaError(message: "\(name): unsupported keyword \"\(k)\" at \(at) (see Schemas/README.md for the supported subset)")
        }
    }
}
