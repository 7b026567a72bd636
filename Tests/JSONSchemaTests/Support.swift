import Foundation
import JSONCore
import JSONSchema
import Testing

/// A schema compiled from JSON text.
func schema(_ text: String, name: String = "test.json") throws -> Schema {
    try Schema(JSON.parse(text), name: name)
}

/// The failure messages of `value` (JSON text) against `s`.
func messages(_ s: Schema, _ value: String) throws -> [String] {
    s.validate(try JSON.parse(value)).map(\.message)
}

/// Whether `value` (JSON text) satisfies `s`, checked both ways (fast check and explanation).
func accepts(_ s: Schema, _ value: String) throws -> Bool {
    let v = try JSON.parse(value)
    let valid = s.isValid(v)
    #expect(valid == s.validate(v).isEmpty, "isValid and validate disagree on \(value)")
    #expect(valid == s.isValid(binary: v.binary), "the binary evaluation disagrees with the tree's on \(value)")
    #expect(valid == s.isValid(binary: v.unsizedBinary), "the binary evaluation of containers without their size disagrees on \(value)")
    return valid
}

/// The error text a schema fails to compile with ("" when it compiles).
func loadError(_ text: String) -> String {
    do {
        _ = try schema(text)
        return ""
    } catch {
        return "\(error)"
    }
}

/// The repository root, found from this file.
let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
        url.deleteLastPathComponent()
    }
    return url.path
}()

/// The registry of the real event schemas in Schemas/events.
let eventSchemas: SchemaRegistry = try! SchemaRegistry(directory: repoRoot + "/Schemas/events")
