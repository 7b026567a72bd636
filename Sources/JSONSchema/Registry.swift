import Foundation
import JSONCore

/// The event schemas, and which apply to a message. Each file says where it applies with an
/// annotation:
///
///     "x-touchstone": {"applies": "all"}                            every message
///     "x-touchstone": {"type": "track"}                             every track
///     "x-touchstone": {"type": "track", "event": "Order Completed"} one tracked event (a tracking plan entry)
///
/// A schema without `x-touchstone` is a library others `$ref` by `$id`; it applies to nothing.
///
///     let registry = try SchemaRegistry(directory: "Schemas/events")
///     let failures = registry.validate(message)   // [] when valid
public final class SchemaRegistry: @unchecked Sendable {
    private var all: [Schema] = []
    private var byType: [String: [Schema]] = [:]
    private var byEvent: [String: [Schema]] = [:]
    public private(set) var names: [String] = []

    /// Compiles `schemas` (resolving `$ref`s across them).
    /// - Throws: `SchemaError` for an unsupported keyword, a dangling `$ref`, a bad annotation.
    public init(schemas: [(name: String, json: JSON)]) throws {
        let refs = RefTable()
        for (name, json) in schemas {
            let schema = try Schema(json, name: name, registry: refs)
            names.append(name)
            guard let where_ = json["x-touchstone"] else { continue }
            if where_["applies"]?.stringValue == "all" {
                all.append(schema)
            } else if let type = where_["type"]?.stringValue {
                if let event = where_["event"]?.stringValue {
                    byEvent[event, default: []].append(schema)
                } else {
                    byType[type, default: []].append(schema)
                }
            } else {
                throw SchemaError(message: "\(name): x-touchstone must name \"applies\": \"all\" or a \"type\"")
            }
        }
        try refs.resolveAll()
    }

    /// Loads every `*.json` below `directory`, in path order.
    public convenience init(directory: String) throws {
        try self.init(schemas: try SchemaRegistry.files(in: directory))
    }

    /// The `*.json` files below `directory` as (relative name, parsed JSON), sorted by path.
    public static func files(in directory: String) throws -> [(name: String, json: JSON)] {
        let fm = FileManager.default
        guard let walker = fm.enumerator(atPath: directory) else {
            throw SchemaError(message: "no schema directory at \(directory)")
        }
        var paths: [String] = []
        while let p = walker.nextObject() as? String {
            if p.hasSuffix(".json") { paths.append(p) }
        }
        return try paths.sorted().map { p in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + p))
            do {
                return (p, try JSON.parse([UInt8](bytes)))
            } catch {
                throw SchemaError(message: "\(directory)/\(p): \(error)")
            }
        }
    }

    /// Where the built-in event schemas are: `$TOUCHSTONE_SCHEMAS`, `./Schemas/events`, next
    /// to the executable in a build tree, or the installed copy.
    public static func locateDefault() -> String? {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["TOUCHSTONE_SCHEMAS"] { candidates.append(env) }
        candidates.append(FileManager.default.currentDirectoryPath + "/Schemas/events")
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent().path
        candidates += [exe + "/../../../Schemas/events", exe + "/../../Schemas/events", exe + "/../share/touchstone/schemas/events",
                       "/usr/share/touchstone/schemas/events"]
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/message.schema.json") }
            .map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    /// Every failure of `message` against the schemas that apply to it, in a fixed order:
    /// the common ones, the call type's, then the tracked event's.
    public func validate(_ message: JSON) -> [ValidationFailure] {
        var out: [ValidationFailure] = []
        for s in all { out += s.validate(message) }
        if let type = message["type"]?.stringValue {
            for s in byType[type] ?? [] { out += s.validate(message) }
            if type == "track", let event = message["event"]?.stringValue {
                for s in byEvent[event] ?? [] { out += s.validate(message) }
            }
        }
        return out
    }
}
