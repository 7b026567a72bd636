// JSONSchema owns the validation of messages against the JSON Schemas in Schemas/events: a
// compiled interpreter of a documented subset of JSON Schema 2020-12 (Schemas/README.md).
// The schemas are the single source of truth — a tracking plan is a schema file, not code.
// It compiles each schema once into a tree of checks; validating a valid message builds no
// strings and allocates nothing. It knows nothing of storage or of HTTP.

import JSONCore

/// One reason a value does not satisfy a schema.
///
///     ValidationFailure(path: "properties.products[1].price",
///                       message: "properties.products[1].price must be a number ≥ 0 or a numeric string such as \"19.99\", got \"abc\"",
///                       schema: "https://touchstone.dev/schemas/events/ecommerce/order_completed.schema.json")
public struct ValidationFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where in the message, dotted: `properties.products[2].price`; "" for the root.
    public let path: String
    /// What is wrong, naming the field, e.g. `event is required (track requires "event")`.
    public let message: String
    /// The `$id` (else the file name) of the applied schema that failed.
    public let schema: String

    public init(path: String, message: String, schema: String) {
        self.path = path
        self.message = message
        self.schema = schema
    }

    public var description: String { message }
}

/// A schema that cannot be used: an unsupported keyword, a malformed value, a `$ref` to
/// nothing, a file that is not JSON. The message names the file, the place and the fix.
public struct SchemaError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
