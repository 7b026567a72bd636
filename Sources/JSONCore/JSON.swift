// JSONCore owns Touchstone's in-memory JSON value: a small enum, a fast byte-level parser,
// a canonical serializer and a compact binary form. Every layer above (validation, the
// record codec, projections, the HTTP API) speaks this one type. It never touches storage.

/// A JSON value. Objects keep the members in the order they were written, so encoding the
/// same input twice yields the same bytes; `canonicalString` sorts keys where order must not
/// matter.
///
///     let v = try JSON.parse(#"{"type":"track","event":"Order Completed"}"#)
///     v["event"]?.stringValue   // "Order Completed"
public enum JSON: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (lhs: JSON, rhs: JSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.double(a), .double(b)): return a == b
        case let (.int(a), .double(b)), let (.double(b), .int(a)): return Double(a) == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            guard a.count == b.count else { return false }
            for (k, v) in a { guard let w = JSON.lookup(b, k), w == v else { return false } }
            return true
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let b): hasher.combine(b)
        case .int(let i): hasher.combine(Double(i))
        case .double(let d): hasher.combine(d)
        case .string(let s): hasher.combine(s)
        case .array(let a): hasher.combine(a)
        case .object(let o): hasher.combine(o.count)  // order-insensitive equality: hash only the size
        }
    }

    @inline(__always)
    public static func lookup(_ members: [(String, JSON)], _ key: String) -> JSON? {
        var i = members.count - 1
        while i >= 0 { if members[i].0 == key { return members[i].1 }; i -= 1 }
        return nil
    }

    /// The member named `key` of an object (the last one, if repeated); nil otherwise.
    public subscript(key: String) -> JSON? {
        get {
            if case .object(let m) = self { return JSON.lookup(m, key) }
            return nil
        }
        set {
            guard case .object(var m) = self else { return }
            if let i = m.lastIndex(where: { $0.0 == key }) {
                if let newValue { m[i].1 = newValue } else { m.remove(at: i) }
            } else if let newValue {
                m.append((key, newValue))
            }
            self = .object(m)
        }
    }

    /// The element at `index` of an array; nil otherwise or when out of range.
    public subscript(index: Int) -> JSON? {
        if case .array(let a) = self, index >= 0, index < a.count { return a[index] }
        return nil
    }

    public var isNull: Bool { if case .null = self { return true }; return false }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: [(String, JSON)]? { if case .object(let o) = self { return o }; return nil }
    public var isObject: Bool { if case .object = self { return true }; return false }

    /// A number as Double (ints widen); numeric strings such as `"19.99"` are accepted too,
    /// because real clients send prices both ways.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .string(let s): return Double(s.trimmingWhitespace())
        default: return nil
        }
    }

    public var intValue: Int64? {
        switch self {
        case .int(let i): return i
        case .double(let d): return d.rounded() == d && abs(d) < 9.2e18 ? Int64(d) : nil
        case .string(let s): return Int64(s.trimmingWhitespace())
        default: return nil
        }
    }

    /// A scalar rendered as text, as identifiers are compared: strings as they are, numbers
    /// in their shortest form; nil for null, objects and arrays.
    public var scalarText: String? {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return JSON.formatDouble(d)
        case .bool(let b): return b ? "true" : "false"
        default: return nil
        }
    }

    /// A short name of the value's JSON type, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }

    /// Nesting depth: a scalar is 0, `[]` and `{}` are 1.
    public var depth: Int {
        switch self {
        case .array(let a): return 1 + (a.map(\.depth).max() ?? 0)
        case .object(let o): return 1 + (o.map { $0.1.depth }.max() ?? 0)
        default: return 0
        }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(elements) }
    public init(nilLiteral: ()) { self = .null }
}

extension String {
    /// The string without leading and trailing spaces, tabs and newlines.
    public func trimmingWhitespace() -> String {
        let u = self.utf8
        var start = u.startIndex, end = u.endIndex
        func ws(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }
        while start < end, ws(u[start]) { start = u.index(after: start) }
        while end > start, ws(u[u.index(before: end)]) { end = u.index(before: end) }
        if start == u.startIndex && end == u.endIndex { return self }
        return String(Substring(self[start..<end]))
    }
}
