import JSONCore
import JSONSchema
import Testing

@Suite struct Selection {
    static let registry: SchemaRegistry = try! SchemaRegistry(schemas: [
        ("library.json", try! JSON.parse(#"{"$defs": {"id": {"type": "string"}}, "required": ["never"]}"#)),
        ("message.json", try! JSON.parse(#"{"x-touchstone": {"applies": "all"}, "required": ["type"]}"#)),
        ("track.json", try! JSON.parse(#"{"x-touchstone": {"type": "track"}, "required": ["event"]}"#)),
        ("page.json", try! JSON.parse(#"{"x-touchstone": {"type": "page"}, "required": ["name"]}"#)),
        ("order.json", try! JSON.parse(#"{"x-touchstone": {"type": "track", "event": "Order Completed"}, "required": ["properties"]}"#)),
        ("plan/order.json", try! JSON.parse(#"{"x-touchstone": {"type": "track", "event": "Order Completed"}, "required": ["context"]}"#)),
    ])

    func applied(_ text: String) throws -> [String] {
        Selection.registry.applicableSchemas(for: try JSON.parse(text)).map(\.name)
    }

    @Test func aTrackedEventRunsTheCommonTheTypeAndTheEventSchemas() throws {
        #expect(try applied(#"{"type": "track", "event": "Order Completed"}"#) == ["message.json", "track.json", "order.json", "plan/order.json"])
    }

    @Test func aPageRunsTheCommonAndThePageSchemasOnly() throws {
        #expect(try applied(#"{"type": "page", "event": "Order Completed"}"#) == ["message.json", "page.json"])
    }

    @Test func eventNamesMatchExactly() throws {
        #expect(try applied(#"{"type": "track", "event": "order completed"}"#) == ["message.json", "track.json"])
        #expect(try applied(#"{"type": "track", "event": "Order Completed "}"#) == ["message.json", "track.json"])
    }

    @Test func aLibraryWithoutXTouchstoneNeverApplies() throws {
        #expect(try applied("{}") == ["message.json"])
        #expect(Selection.registry.names.first == "library.json")
    }

    @Test func failuresComeInSelectionOrder() throws {
        let f = Selection.registry.validate(try JSON.parse(#"{"type": "track", "event": "Order Completed"}"#))
        #expect(f.map(\.schema) == ["order.json", "plan/order.json"])
        #expect(f.map(\.message) == ["properties is required", "context is required"])
        let g = Selection.registry.validate(try JSON.parse(#"{"type": "track"}"#))
        #expect(g.map(\.message) == ["event is required"])
    }

    @Test func aValidMessageHasNoFailures() throws {
        let m = try JSON.parse(#"{"type": "track", "event": "Order Completed", "properties": {}, "context": {}}"#)
        #expect(Selection.registry.validate(m).isEmpty)
        #expect(Selection.registry.isValid(m))
    }
}
