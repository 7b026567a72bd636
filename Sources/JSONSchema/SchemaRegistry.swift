import Foundation
import JSONCore

/// The event schemas, and which of them apply to a message. A file says where it applies
/// with its `x-touchstone` annotation:
///
///     "x-touchstone": {"applies": "all"}                            every message
///     "x-touchstone": {"type": "track"}                             every message of that type
///     "x-touchstone": {"type": "track", "event": "Order Completed"} one tracked event (a tracking-plan entry)
///
/// A file without `x-touchstone` is a library other files `$ref` by `$id`; it applies to
/// nothing by itself.
///
///     let registry = try SchemaRegistry(directory: SchemaRegistry.locateDefault()!)
///     let failures = registry.validate(message)   // [] when valid
public final class SchemaRegistry: Sendable {
    /// Every schema loaded, applied or not, in load order.
    public let schemas: [Schema]
    // The hot path deals in plain integers (schema indices, node ids), not objects, so that
    // threads sharing the registry do not contend on the schemas' reference counts.
    private let program: Program
    private let roots: [Int]  // each schema's root node in `program`
    private let all: [Int]
    /// At most six call types: scanned, cheaper than hashing the type name.
    private let byType: [(type: String, schemas: [Int])]
    private let byEvent: [String: [Int]]

    /// The names of the schemas loaded, in load order.
    public var names: [String] { schemas.map(\.name) }

    /// Compiles `schemas` together, so each may `$ref` the others by `$id`.
    /// - Throws: `SchemaError` for an unsupported keyword, a dangling `$ref`, a duplicate
    ///   `$id` or a malformed `x-touchstone`.
    public init(schemas documents: [(name: String, json: JSON)]) throws {
        let compilation = Compilation()
        var compiled: [(JSON, String, Node)] = []
        for (name, json) in documents {
            let (root, _) = try compilation.add(json, name: name)
            compiled.append((json, name, root))
        }
        let program = try compilation.finish()
        var all: [Int] = [], byType: [String: [Int]] = [:], byEvent: [String: [Int]] = [:]
        var schemas: [Schema] = []
        for (index, (json, name, root)) in compiled.enumerated() {
            schemas.append(Schema(json: json, name: name, root: root, program: program))
            switch try Applicability(json["x-touchstone"], name: name) {
            case .library: break
            case .all: all.append(index)
            case .type(let t): byType[t, default: []].append(index)
            case .event(let e): byEvent[e, default: []].append(index)
            }
        }
        self.program = program
        roots = compiled.map(\.2.id)
        self.all = all
        self.byType = byType.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.byEvent = byEvent
        self.schemas = schemas
    }

    /// Loads every `*.json` below `directory` (recursively, in path order).
    public convenience init(directory: String) throws {
        try self.init(schemas: SchemaRegistry.files(in: directory))
    }

    /// The `*.json` files below `directory`, named by their path relative to it, sorted.
    /// - Throws: `SchemaError` when the directory is missing or a file is not JSON.
    public static func files(in directory: String) throws -> [(name: String, json: JSON)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue,
              let walker = FileManager.default.enumerator(atPath: directory)
        else { throw SchemaError(message: "no schema directory at \(directory)") }
        var paths: [String] = []
        while let p = walker.nextObject() as? String {
            if p.hasSuffix(".json") { paths.append(p) }
        }
        return try paths.sorted().map { p in
            let full = directory + "/" + p
            guard let data = FileManager.default.contents(atPath: full) else {
                throw SchemaError(message: "\(full): cannot be read")
            }
            do {
                return (p, try JSON.parse([UInt8](data)))
            } catch {
                throw SchemaError(message: "\(full): \(error)")
            }
        }
    }

    /// Where the built-in event schemas are: the first existing of `$TOUCHSTONE_SCHEMAS`,
    /// `./Schemas/events`, the source tree above a build directory
    /// (`<executable dir>/../../../Schemas/events`, `<dir>/../../Schemas/events`), an
    /// install prefix (`<dir>/../share/touchstone/schemas/events`) and
    /// `/usr/share/touchstone/schemas/events`.
    public static func locateDefault() -> String? {
        let fm = FileManager.default
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["TOUCHSTONE_SCHEMAS"], !env.isEmpty { candidates.append(env) }
        candidates.append(fm.currentDirectoryPath + "/Schemas/events")
        if let exe = Bundle.main.executablePath ?? CommandLine.arguments.first {
            let dir = URL(fileURLWithPath: exe).resolvingSymlinksInPath().deletingLastPathComponent().path
            candidates += [dir + "/../../../Schemas/events", dir + "/../../Schemas/events", dir + "/../share/touchstone/schemas/events"]
        }
        candidates.append("/usr/share/touchstone/schemas/events")
        for c in candidates {
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: c, isDirectory: &isDirectory), isDirectory.boolValue {
                return URL(fileURLWithPath: c).standardizedFileURL.path
            }
        }
        return nil
    }

    /// The schemas that apply to `message`, in the order `validate` runs them: those for all
    /// messages, those for its `type`, then those for its track `event` (exact name).
    public func applicableSchemas(for message: JSON) -> [Schema] {
        var out: [Schema] = []
        forEachApplicable(message) { out.append(schemas[$0]) }
        return out
    }

    /// Every failure of `message` against the schemas that apply to it, in that order;
    /// empty when it is valid (and then nothing was allocated).
    public func validate(_ message: JSON) -> [ValidationFailure] {
        var out: [ValidationFailure] = []
        forEachApplicable(message) { i in
            if !program.isValid(roots[i], message) { out += schemas[i].validate(message, root: "the message") }
        }
        return out
    }

    /// Whether `message` satisfies every schema that applies to it.
    public func isValid(_ message: JSON) -> Bool {
        var ok = true
        forEachApplicable(message) { i in if ok && !program.isValid(roots[i], message) { ok = false } }
        return ok
    }

    /// `isValid` for a message in binary JSON form (`JSON.encodeBinary`), evaluated on the
    /// bytes: the ingest path's check, with no tree built. Answers as `isValid(tree)` does.
    public func isValid(binary message: [UInt8]) -> Bool {
        message.withUnsafeBufferPointer { b in
            guard !b.isEmpty else { return false }
            var ok = true
            for s in all where ok { ok = program.isValid(roots[s], binary: b, at: 0) }
            guard ok, BinaryTag.isObject(b[0]) else { return ok }
            // The call type and track event, as the tree lookup finds them (the last one wins).
            var type: UnsafeBufferPointer<UInt8>?, event: UnsafeBufferPointer<UInt8>?
            guard let (n, first) = JSONView.header(b, 0, object: true) else { return false }
            var i = first
            for _ in 0..<n {
                guard let len = JSONView.varint(b, &i), i + len <= b.count else { return false }
                let key = UnsafeBufferPointer(rebasing: b[i..<i + len])
                let value = i + len
                guard let next = JSONView.skip(b, value) else { return false }
                if len == 4 || len == 5 {
                    var text: UnsafeBufferPointer<UInt8>?
                    if b[value] == 5 {
                        var j = value + 1
                        if let l = JSONView.varint(b, &j), j + l <= b.count { text = UnsafeBufferPointer(rebasing: b[j..<j + l]) }
                    }
                    if SchemaRegistry.equals(key, "type") { type = text } else if SchemaRegistry.equals(key, "event") { event = text }
                }
                i = next
            }
            guard let type else { return true }
            for entry in byType where SchemaRegistry.equals(type, entry.type) {
                for s in entry.schemas where ok { ok = program.isValid(roots[s], binary: b, at: 0) }
            }
            if ok, SchemaRegistry.equals(type, "track"), let event,
               let schemas = byEvent[String(decoding: event, as: UTF8.self)] {
                for s in schemas where ok { ok = program.isValid(roots[s], binary: b, at: 0) }
            }
            return ok
        }
    }

    @inline(__always)
    private static func equals(_ bytes: UnsafeBufferPointer<UInt8>, _ s: String) -> Bool {
        var s = s
        return s.withUTF8 { u in u.count == bytes.count && (u.isEmpty || memcmp(u.baseAddress!, bytes.baseAddress!, u.count) == 0) }
    }

    @inline(__always)
    private func forEachApplicable(_ message: JSON, _ body: (Int) -> Void) {
        for s in all { body(s) }
        guard case .object(let members) = message, case .string(let type)? = JSON.lookup(members, "type") else { return }
        for entry in byType where entry.type == type {
            for s in entry.schemas { body(s) }
        }
        if type == "track", case .string(let event)? = JSON.lookup(members, "event"), let schemas = byEvent[event] {
            for s in schemas { body(s) }
        }
    }
}

/// Where a schema applies, from its `x-touchstone` annotation.
enum Applicability: Equatable {
    case library, all, type(String), event(String)

    static let types: Set<String> = ["identify", "track", "page", "screen", "group", "alias"]

    init(_ annotation: JSON?, name: String) throws {
        guard let annotation else { self = .library; return }
        func fail(_ why: String) -> SchemaError {
            SchemaError(message: "\(name): x-touchstone \(why); write {\"applies\": \"all\"}, {\"type\": \"track\"} "
                + "or {\"type\": \"track\", \"event\": \"Order Completed\"}")
        }
        guard case .object(let members) = annotation else { throw fail("must be an object") }
        for (key, _) in members where !["applies", "type", "event"].contains(key) && !key.hasPrefix("x-") {
            throw fail("has an unknown key \"\(key)\"")
        }
        if let applies = annotation["applies"] {
            guard applies.stringValue == "all", annotation["type"] == nil, annotation["event"] == nil else {
                throw fail("\"applies\" must be \"all\" and stand alone")
            }
            self = .all
            return
        }
        guard let type = annotation["type"]?.stringValue, Applicability.types.contains(type) else {
            throw fail("needs \"type\": one of identify, track, page, screen, group, alias")
        }
        guard let e = annotation["event"] else { self = .type(type); return }
        guard type == "track", let event = e.stringValue, !event.isEmpty else {
            throw fail("\"event\" must be a non-empty event name of a track")
        }
        self = .event(event)
    }
}
