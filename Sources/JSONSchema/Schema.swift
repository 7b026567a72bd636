import JSONCore

/// One compiled schema document.
///
///     let schema = try Schema(JSON.parse(#"{"type": "object", "required": ["event"]}"#), name: "track.json")
///     schema.validate(["type": "track"])   // [event is required]
///
/// Compiling refuses what this validator would not enforce (an unknown keyword, an unchecked
/// `format`), so a schema never looks stricter than it is. `validate` is safe to call from
/// any thread.
public final class Schema: Sendable {
    /// The file name (or the name given).
    public let name: String
    /// `$id`, when the document has one.
    public let id: String?
    /// The document's `x-touchstone` annotation (where it applies), if any.
    public let annotation: JSON?
    let root: Node
    /// What validation runs; shared by the schemas compiled together.
    let program: Program

    /// Compiles a standalone document; its `$ref`s may only point into itself.
    /// - Throws: `SchemaError` naming the unsupported keyword, malformed value or dangling
    ///   `$ref`, with the file name and a JSON pointer.
    public init(_ json: JSON, name: String) throws {
        let compilation = Compilation()
        let (root, _) = try compilation.add(json, name: name)
        program = try compilation.finish()
        self.name = name
        id = json["$id"]?.stringValue
        annotation = json["x-touchstone"]
        self.root = root
    }

    init(json: JSON, name: String, root: Node, program: Program) {
        self.name = name
        id = json["$id"]?.stringValue
        annotation = json["x-touchstone"]
        self.root = root
        self.program = program
    }

    /// What failures name as the schema: the `$id`, else the file name.
    public var identifier: String { id ?? name }

    /// Whether `value` satisfies the schema. Allocates nothing.
    @inline(__always)
    public func isValid(_ value: JSON) -> Bool { program.isValid(root.id, value) }

    /// Whether a value in binary JSON form (`JSON.encodeBinary`) satisfies the schema,
    /// evaluated on the bytes. The same answer as `isValid` on its tree.
    public func isValid(binary value: [UInt8]) -> Bool {
        value.withUnsafeBufferPointer { program.isValid(root.id, binary: $0, at: 0) }
    }

    /// Every reason `value` does not satisfy the schema; empty when it does.
    public func validate(_ value: JSON) -> [ValidationFailure] {
        validate(value, root: "the value")
    }

    func validate(_ value: JSON, root name: String) -> [ValidationFailure] {
        if isValid(value) { return [] }
        var ex = Explainer(program: program, schema: identifier, root: name)
        root.explain(value, at: "", &ex)
        if ex.failures.isEmpty {  // a safety net: the fast check and the explanation disagree
            ex.add("", "\(name) does not match \(identifier)")
        }
        return ex.failures
    }
}
