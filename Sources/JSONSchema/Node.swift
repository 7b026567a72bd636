import JSONCore

/// The JSON types a schema admits, as a bit set (`type`).
struct TypeSet: OptionSet, Sendable {
    let rawValue: UInt8
    static let null = TypeSet(rawValue: 1)
    static let boolean = TypeSet(rawValue: 2)
    static let integer = TypeSet(rawValue: 4)
    static let number = TypeSet(rawValue: 8)
    static let string = TypeSet(rawValue: 16)
    static let array = TypeSet(rawValue: 32)
    static let object = TypeSet(rawValue: 64)
    static let all = TypeSet(rawValue: 127)

    static let names: [(String, TypeSet)] = [
        ("null", .null), ("boolean", .boolean), ("integer", .integer), ("number", .number),
        ("string", .string), ("array", .array), ("object", .object),
    ]

    /// "integer" admits JSON integers and integral doubles; "number" admits both.
    @inline(__always)
    func admits(_ v: JSON) -> Bool {
        switch v {
        case .null: return contains(.null)
        case .bool: return contains(.boolean)
        case .int: return rawValue & (TypeSet.integer.rawValue | TypeSet.number.rawValue) != 0
        case .double(let d): return admits(double: d)
        case .string: return contains(.string)
        case .array: return contains(.array)
        case .object: return contains(.object)
        }
    }
}

extension TypeSet {
    @inline(__always)
    func admits(double d: Double) -> Bool {
        contains(.number) || (contains(.integer) && d.isFinite && d.rounded(.towardZero) == d)
    }
}

/// Keywords that apply to a value of any type.
enum Check {
    case enumStrings([String])  // every allowed value is a string: compared as strings
    case enumValues([JSON])
    case const(JSON)
    case allOf([Node])
    case anyOf([Node])
    case oneOf([Node])
    case not(Node)
    case condition(if: Node, then: Node?, else: Node?)
    case ref(Ref)
}

enum StringCheck {
    case minLength(Int)
    case maxLength(Int)
    case pattern(Pattern)
    case format(Format)
}

enum NumberCheck {
    case minimum(Double)
    case maximum(Double)
    case exclusiveMinimum(Double)
    case exclusiveMaximum(Double)
}

/// `properties`, `required`, `patternProperties`, `additionalProperties`, `min/maxProperties`.
struct ObjectRules {
    var required: [String] = []
    var properties: [(String, Node)] = []
    var patternProperties: [(Pattern, Node)] = []
    /// nil: other members are allowed and unchecked.
    var additionalProperties: Node?
    var minProperties: Int?
    var maxProperties: Int?
}

/// `items`, `minItems`, `maxItems`.
struct ArrayRules {
    var items: Node?
    var minItems: Int?
    var maxItems: Int?
}

/// A `$ref`, bound to its target once every document is compiled.
final class Ref {
    let uri: String
    /// Refs may form cycles, so they do not own their target: the compilation does.
    unowned(unsafe) var target: Node?
    init(uri: String) { self.uri = uri }
}

/// What the failure messages of a node quote: its document's name, `$id` and title.
final class Document {
    let name: String
    let id: String?
    let title: String?
    init(name: String, id: String?, title: String?) {
        self.name = name
        self.id = id
        self.title = title
    }
}

/// One compiled (sub)schema, as written: what explanations read. Validation runs on the
/// flattened `Program` built from these (`id` is the node's index there).
final class Node: @unchecked Sendable {
    struct Parts {
        var types = TypeSet.all
        /// The `false` schema: nothing is valid.
        var never = false
        var checks: [Check] = []
        var strings: [StringCheck] = []
        var numbers: [NumberCheck] = []
        var object: ObjectRules?
        var array: ArrayRules?
        var title: String?
        /// `x-message`: reported instead of this node's own failures.
        var message: String?
    }

    let id: Int
    let document: Document
    let pointer: String
    let types: TypeSet
    let never: Bool
    let checks: [Check]
    let strings: [StringCheck]
    let numbers: [NumberCheck]
    let object: ObjectRules?
    let array: ArrayRules?
    let title: String?
    let message: String?

    init(id: Int, document: Document, pointer: String, _ parts: Parts) {
        self.id = id
        self.document = document
        self.pointer = pointer
        types = parts.types
        never = parts.never
        checks = parts.checks
        strings = parts.strings
        numbers = parts.numbers
        object = parts.object
        array = parts.array
        title = parts.title
        message = parts.message
    }
}

/// `minLength`/`maxLength` count Characters (grapheme clusters), as users count. A Character
/// is at least one UTF-8 byte and a byte is at most one Character, so the O(1) byte count
/// settles most cases; only the undecided ones walk the string.
enum Length {
    @inline(__always)
    static func atLeast(_ s: String, _ n: Int) -> Bool {
        if n <= 0 { return true }
        let bytes = s.utf8.count
        if bytes < n { return false }
        if n == 1 { return bytes > 0 }
        return s.count >= n
    }

    @inline(__always)
    static func atMost(_ s: String, _ n: Int) -> Bool {
        s.utf8.count <= n || s.count <= n
    }
}
