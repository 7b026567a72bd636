import Foundation
import JSONCore
import JSONSchema
import Testing

@Suite struct Loading {
    @Test func anUnknownKeywordFailsTheLoadNamingItAndWhere() {
        let error = loadError(#"{"properties": {"tags": {"type": "array", "uniqueItems": true}}}"#)
        #expect(error.contains(#"unsupported keyword "uniqueItems""#))
        #expect(error.contains("test.json"))
        #expect(error.contains("#/properties/tags"))
    }

    @Test func aMisspelledKeywordFailsTheLoad() {
        #expect(loadError(#"{"requried": ["event"]}"#).contains(#""requried""#))
    }

    @Test func draft7DefinitionsPointsToDefs() {
        #expect(loadError(#"{"definitions": {}}"#).contains("$defs"))
    }

    @Test func anUncheckedFormatFailsTheLoad() {
        #expect(loadError(#"{"format": "email"}"#).contains(#"format "email" is not checked"#))
    }

    @Test(arguments: [
        #"{"type": "text"}"#, #"{"minLength": -1}"#, #"{"minimum": "1"}"#, #"{"required": "a"}"#, #"{"pattern": "("}"#,
        #"{"anyOf": []}"#, #"{"items": [{}]}"#, #"{"then": {}}"#, #"{"properties": {"a": 1}}"#, #"{"properties": {"a": {"$id": "x"}}}"#,
    ])
    func malformedKeywordValuesFailTheLoad(_ text: String) {
        #expect(!loadError(text).isEmpty)
    }

    @Test func duplicateIdsFailTheLoad() {
        let a = try! JSON.parse(#"{"$id": "https://x/a.json"}"#)
        #expect(throws: SchemaError.self) { try SchemaRegistry(schemas: [("a.json", a), ("b.json", a)]) }
    }

    @Test(arguments: [
        #"{"applies": "some"}"#, #"{"type": "purchase"}"#, #"{"type": "page", "event": "Home"}"#, #"{"type": "track", "evnt": "X"}"#, #""all""#,
    ])
    func aMalformedApplicabilityFailsTheLoad(_ annotation: String) {
        let json = try! JSON.parse(#"{"x-touchstone": \#(annotation)}"#)
        #expect(throws: SchemaError.self) { try SchemaRegistry(schemas: [("a.json", json)]) }
    }

    @Test func aDirectoryIsLoadedRecursivelyInPathOrder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("schemas-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/plan/b", withIntermediateDirectories: true)
        try #"{"x-touchstone": {"applies": "all"}, "required": ["type"]}"#.write(toFile: dir + "/z.json", atomically: true, encoding: .utf8)
        try #"{"x-touchstone": {"type": "track", "event": "A"}, "required": ["properties"]}"#.write(toFile: dir + "/plan/b/a.json", atomically: true, encoding: .utf8)
        try #"{"$defs": {}}"#.write(toFile: dir + "/plan/a.json", atomically: true, encoding: .utf8)
        try "not json".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        let registry = try SchemaRegistry(directory: dir)
        #expect(registry.names == ["plan/a.json", "plan/b/a.json", "z.json"])
        #expect(registry.validate(try JSON.parse(#"{"type": "track", "event": "A"}"#)).map(\.message) == ["properties is required"])
    }

    @Test func aFileThatIsNotJSONFailsTheLoadNamingIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("schemas-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "{".write(toFile: dir + "/broken.json", atomically: true, encoding: .utf8)
        #expect { try SchemaRegistry(directory: dir) } throws: { "\($0)".contains("broken.json") }
        #expect(throws: SchemaError.self) { try SchemaRegistry(directory: dir + "/missing") }
    }

    @Test func theDefaultLocationIsFoundFromTheBuildDirectory() throws {
        let found = try #require(SchemaRegistry.locateDefault())
        #expect(FileManager.default.fileExists(atPath: found + "/message.schema.json"))
    }
}
