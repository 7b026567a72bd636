import Foundation
import JSONCore
@_exported import JSONSchema

/// Where the event schemas come from: the built-in set (Schemas/events, or `builtIn`) plus a
/// tracking plan the user keeps in `<data>/schemas`, compiled together (so a plan's schemas
/// may `$ref` the built-in ones).
public enum SchemaSet {
    public static func load(builtIn: String?, dataDirectory: String?) throws -> SchemaRegistry {
        guard let dir = builtIn ?? SchemaRegistry.locateDefault() else {
            throw SchemaError(message: "the event schemas were not found: pass --schemas DIR or set TOUCHSTONE_SCHEMAS (they ship in Schemas/events)")
        }
        var files = try SchemaRegistry.files(in: dir)
        if let data = dataDirectory, FileManager.default.fileExists(atPath: data + "/schemas") {
            files += try SchemaRegistry.files(in: data + "/schemas").map { ("plan/" + $0.name, $0.json) }
        }
        return try SchemaRegistry(schemas: files)
    }
}
