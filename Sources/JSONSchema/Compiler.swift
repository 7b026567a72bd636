import Foundation
import JSONCore

/// Compiles schema documents into `Node` trees. Documents compiled together may `$ref` each
/// other by `$id` (or by file name); `finish()` binds every `$ref` once, so validation never
/// looks one up.
final class Compilation {
    /// Every node compiled, kept alive here because `$ref`s do not own their targets.
    private(set) var arena: [Node] = []
    /// Nodes by `<document $id or name>#<JSON pointer>` (the root: `<id>#`).
    private var byURI: [String: Node] = [:]
    private var refs: [(ref: Ref, base: String, raw: String, place: String)] = []
    /// The file each `$id` and file name belongs to, to report clashes.
    private var documentNames: [String: String] = [:]

    /// Annotations with no effect on validation (besides `x-*`).
    static let annotations: Set<String> = ["$schema", "title", "description", "$comment", "examples", "default",
                                           "deprecated", "readOnly", "writeOnly"]

    /// Compiles one document; its `$ref`s are bound by `finish()`.
    func add(_ json: JSON, name: String) throws -> (root: Node, document: Document) {
        let id = json["$id"]?.stringValue
        let document = Document(name: name, id: id, title: json["title"]?.stringValue)
        var keys = [name]
        if let id, id != name { keys.insert(id, at: 0) }
        for key in keys {
            if let other = documentNames[key] {
                throw SchemaError(message: "\(name): \"\(key)\" already names the schema in \(other); each $id must be unique")
            }
            documentNames[key] = name
        }
        let root = try compile(json, pointer: "", in: document)
        return (root, document)
    }

    /// Binds every `$ref`, refuses reference loops that consume no input (`$ref` to itself,
    /// which would never terminate) and flattens every node into the program validation runs.
    func finish() throws -> Program {
        for (ref, base, raw, place) in refs {
            let resolved = Compilation.resolve(raw, against: base)
            guard let target = byURI[resolved] ?? byURI[raw] ?? byURI[raw + "#"] else {
                throw SchemaError(message: "\(place): $ref \"\(raw)\" names no schema (looked for \(resolved)); "
                    + "refer to \"#/$defs/name\" in the same file or to another schema by its $id")
            }
            ref.target = target
        }
        refs = []
        var state: [ObjectIdentifier: Bool] = [:]  // false: on the stack, true: done
        for node in arena { try checkLoops(node, &state) }
        return Program(arena)
    }

    private func checkLoops(_ node: Node, _ state: inout [ObjectIdentifier: Bool]) throws {
        let key = ObjectIdentifier(node)
        if state[key] == true { return }
        if state[key] == false {
            throw SchemaError(message: "\(node.document.name): #\(node.pointer) refers to itself through $ref without "
                + "descending into a property or item, so it could never be checked")
        }
        state[key] = false
        for next in node.sameValueChildren { try checkLoops(next, &state) }
        state[key] = true
    }

    /// `#/$defs/x` against the document; a relative file reference against the document's
    /// `$id` (or name) like a URL; an absolute one as it is.
    static func resolve(_ raw: String, against base: String) -> String {
        let hash = raw.firstIndex(of: "#")
        let resource = String(raw[..<(hash ?? raw.endIndex)])
        var fragment = hash.map { String(raw[raw.index(after: $0)...]) } ?? ""
        fragment = fragment.removingPercentEncoding ?? fragment
        if fragment == "/" { fragment = "" }
        let target: String
        if resource.isEmpty {
            target = base
        } else if resource.contains("://") || resource.hasPrefix("urn:") || resource.hasPrefix("/") {
            target = resource
        } else {
            var dir = base.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            dir.removeLast()
            for part in resource.split(separator: "/", omittingEmptySubsequences: false) {
                switch part {
                case ".": continue
                case "..": if dir.count > 1 || (dir.count == 1 && !dir[0].isEmpty) { dir.removeLast() }
                default: dir.append(String(part))
                }
            }
            target = dir.joined(separator: "/")
        }
        return target + "#" + fragment
    }

    private func register(_ node: Node, _ document: Document) {
        arena.append(node)
        for base in Set([document.id, document.name].compactMap { $0 }) {
            byURI[base + "#" + node.pointer] = node
        }
    }

    private func fail(_ document: Document, _ pointer: String, _ text: String) -> SchemaError {
        SchemaError(message: "\(document.name): \(text) at #\(pointer)")
    }

    /// JSON pointer escaping of one key.
    private static func escape(_ key: String) -> String {
        key.replacingOccurrences(of: "~", with: "~0").replacingOccurrences(of: "/", with: "~1")
    }

    private func compile(_ json: JSON, pointer: String, in doc: Document) throws -> Node {
        func finish(_ parts: Node.Parts) -> Node {
            let node = Node(id: arena.count, document: doc, pointer: pointer, parts)
            register(node, doc)
            return node
        }
        var node = Node.Parts()
        let members: [(String, JSON)]
        switch json {
        case .bool(let b):
            node.never = !b
            return finish(node)
        case .object(let m): members = m
        default:
            throw fail(doc, pointer, "a schema must be an object or a boolean, got \(json.typeName)")
        }
        var k: [String: JSON] = [:]
        for (key, value) in members {
            guard k.updateValue(value, forKey: key) == nil else { throw fail(doc, pointer, "keyword \"\(key)\" appears twice") }
        }
        for key in k.keys.sorted() where !Compilation.keywords.contains(key) && !Compilation.annotations.contains(key) && !key.hasPrefix("x-") {
            let hint = key == "definitions" ? " (use \"$defs\")" : ""
            throw fail(doc, pointer, "unsupported keyword \"\(key)\"\(hint): Touchstone implements a subset of JSON Schema 2020-12 "
                + "(Schemas/README.md) and would silently ignore it; name an annotation \"x-…\"")
        }
        func sub(_ key: String, _ value: JSON) throws -> Node { try compile(value, pointer: pointer + "/" + key, in: doc) }
        func string(_ key: String) throws -> String? {
            guard let v = k[key] else { return nil }
            guard let s = v.stringValue else { throw fail(doc, pointer, "\(key) must be a string") }
            return s
        }
        func count(_ key: String) throws -> Int? {
            guard let v = k[key] else { return nil }
            switch v {
            case .int(let i) where i >= 0: return Int(i)
            case .double(let d) where d >= 0 && d.rounded() == d && d < 1e15: return Int(d)
            default: throw fail(doc, pointer, "\(key) must be a non-negative integer")
            }
        }
        func number(_ key: String) throws -> Double? {
            guard let v = k[key] else { return nil }
            switch v {
            case .int(let i): return Double(i)
            case .double(let d): return d
            default: throw fail(doc, pointer, "\(key) must be a number")
            }
        }
        func list(_ key: String) throws -> [Node]? {
            guard let v = k[key] else { return nil }
            guard case .array(let a) = v, !a.isEmpty else { throw fail(doc, pointer, "\(key) must be a non-empty array of schemas") }
            return try a.enumerated().map { try sub("\(key)/\($0)", $1) }
        }
        func pattern(_ source: String, _ key: String) throws -> Pattern {
            do { return try Pattern(source) } catch {
                throw fail(doc, pointer, "\(key) \"\(source)\" is not a valid regular expression")
            }
        }

        if k["$id"] != nil && !pointer.isEmpty {
            throw fail(doc, pointer, "$id is only supported at the top of a file (one schema per file)")
        }
        _ = try string("$id")
        _ = try string("$schema")
        node.title = try string("title")
        _ = try string("description")
        node.message = try string("x-message")

        if let v = k["type"] {
            var names: [String] = []
            if let s = v.stringValue { names = [s] } else if case .array(let a) = v { names = a.compactMap(\.stringValue) }
            guard !names.isEmpty, names.count == (v.arrayValue?.count ?? 1) else { throw fail(doc, pointer, "type must be a type name or an array of them") }
            var set = TypeSet()
            for n in names {
                guard let t = TypeSet.names.first(where: { $0.0 == n })?.1 else {
                    throw fail(doc, pointer, "unknown type \"\(n)\" (one of null, boolean, integer, number, string, array, object)")
                }
                set.insert(t)
            }
            node.types = set
        }
        if let v = k["enum"] {
            guard case .array(let a) = v, !a.isEmpty else { throw fail(doc, pointer, "enum must be a non-empty array") }
            let strings = a.compactMap(\.stringValue)
            node.checks.append(strings.count == a.count ? .enumStrings(strings) : .enumValues(a))
        }
        if let v = k["const"] { node.checks.append(.const(v)) }

        // Objects.
        let objectKeys = ["properties", "required", "patternProperties", "additionalProperties", "minProperties", "maxProperties"]
        if objectKeys.contains(where: { k[$0] != nil }) {
            var required: [String] = []
            if let v = k["required"] {
                guard case .array(let a) = v, a.allSatisfy({ $0.stringValue != nil }) else {
                    throw fail(doc, pointer, "required must be an array of property names")
                }
                required = a.compactMap(\.stringValue)
            }
            var properties: [(String, Node)] = []
            if let v = k["properties"] {
                guard case .object(let props) = v else { throw fail(doc, pointer, "properties must be an object") }
                properties = try props.map { ($0.0, try sub("properties/" + Compilation.escape($0.0), $0.1)) }
            }
            var patternProperties: [(Pattern, Node)] = []
            if let v = k["patternProperties"] {
                guard case .object(let props) = v else { throw fail(doc, pointer, "patternProperties must be an object") }
                patternProperties = try props.map {
                    (try pattern($0.0, "patternProperties"), try sub("patternProperties/" + Compilation.escape($0.0), $0.1))
                }
            }
            var additional: Node?
            if let v = k["additionalProperties"] {
                if case .bool(true) = v {} else { additional = try sub("additionalProperties", v) }
            }
            node.object = ObjectRules(required: required, properties: properties, patternProperties: patternProperties,
                                      additionalProperties: additional,
                                      minProperties: try count("minProperties"), maxProperties: try count("maxProperties"))
        }
        // Arrays.
        if k["items"] != nil || k["minItems"] != nil || k["maxItems"] != nil {
            var items: Node?
            if let v = k["items"] {
                if case .array = v {
                    throw fail(doc, pointer, "items must be one schema (tuple forms and prefixItems are not supported)")
                }
                items = try sub("items", v)
            }
            node.array = ArrayRules(items: items, minItems: try count("minItems"), maxItems: try count("maxItems"))
        }
        // Strings.
        if let n = try count("minLength") { node.strings.append(.minLength(n)) }
        if let n = try count("maxLength") { node.strings.append(.maxLength(n)) }
        if let p = try string("pattern") { node.strings.append(.pattern(try pattern(p, "pattern"))) }
        if let f = try string("format") {
            guard let format = Format(rawValue: f) else {
                throw fail(doc, pointer, "format \"\(f)\" is not checked by Touchstone (supported: "
                    + Format.allCases.map(\.rawValue).joined(separator: ", ") + "); use a pattern instead")
            }
            node.strings.append(.format(format))
        }
        // Numbers.
        if let m = try number("minimum") { node.numbers.append(.minimum(m)) }
        if let m = try number("maximum") { node.numbers.append(.maximum(m)) }
        if let m = try number("exclusiveMinimum") { node.numbers.append(.exclusiveMinimum(m)) }
        if let m = try number("exclusiveMaximum") { node.numbers.append(.exclusiveMaximum(m)) }
        // Composition.
        if let raw = try string("$ref") {
            let ref = Ref(uri: raw)
            refs.append((ref, doc.id ?? doc.name, raw, "\(doc.name) at #\(pointer)"))
            node.checks.append(.ref(ref))
        }
        if let nodes = try list("allOf") { node.checks.append(.allOf(nodes)) }
        if let nodes = try list("anyOf") { node.checks.append(.anyOf(nodes)) }
        if let nodes = try list("oneOf") { node.checks.append(.oneOf(nodes)) }
        if let v = k["not"] { node.checks.append(.not(try sub("not", v))) }
        if let v = k["if"] {
            let cond = try sub("if", v)
            let then = try k["then"].map { try sub("then", $0) }
            let otherwise = try k["else"].map { try sub("else", $0) }
            node.checks.append(.condition(if: cond, then: then, else: otherwise))
        } else if k["then"] != nil || k["else"] != nil {
            throw fail(doc, pointer, "then/else without if")
        }
        if let v = k["$defs"] {
            guard case .object(let defs) = v else { throw fail(doc, pointer, "$defs must be an object of schemas") }
            for (name, schema) in defs { _ = try sub("$defs/" + Compilation.escape(name), schema) }
        }
        return finish(node)
    }

    static let keywords: Set<String> = [
        "$id", "$ref", "$defs", "type", "enum", "const", "properties", "required", "additionalProperties",
        "patternProperties", "minProperties", "maxProperties", "items", "minItems", "maxItems", "minLength",
        "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    ]
}

extension Node {
    /// The subschemas applied to this same value (not to a member or an item).
    var sameValueChildren: [Node] {
        var out: [Node] = []
        for check in checks {
            switch check {
            case .allOf(let n), .anyOf(let n), .oneOf(let n): out += n
            case .not(let n): out.append(n)
            case .condition(let c, let t, let e): out.append(c); if let t { out.append(t) }; if let e { out.append(e) }
            case .ref(let r): if let t = r.target { out.append(t) }
            case .enumStrings, .enumValues, .const: break
            }
        }
        return out
    }
}
