import Foundation
import JSONCore
import JSONSchema
import Testing

func schema(_ text: String) throws -> Schema { try Schema(try JSON.parse(text), name: "test") }
func failures(_ s: Schema, _ value: String) throws -> [ValidationFailure] { s.validate(try JSON.parse(value)) }

@Suite struct Keywords {
    @Test func typeAcceptsIntegersAsNumbersAndIntegralDoublesAsIntegers() throws {
        let n = try schema(#"{"type":"number"}"#), i = try schema(#"{"type":"integer"}"#)
        #expect(try failures(n, "3").isEmpty)
        #expect(try failures(i, "3.0").isEmpty)
        #expect(try failures(i, "3.5").first?.message == "the message must be integer, got number")
        #expect(try failures(n, #""3""#).count == 1)
    }

    @Test func requiredAndNestedPathsNameTheField() throws {
        let s = try schema(#"{"type":"object","required":["event"],"properties":{"properties":{"type":"object","properties":{"products":{"type":"array","items":{"type":"object","properties":{"price":{"type":"number"}}}}}}}}"#)
        let f = try failures(s, #"{"properties":{"products":[{"price":1},{"price":"abc"}]}}"#)
        #expect(f.map(\.path) == ["event", "properties.products[1].price"])
        #expect(f[0].message == "event is required")
        #expect(f[1].message.contains("properties.products[1].price must be number"))
    }

    @Test func enumConstAndStrings() throws {
        let s = try schema(#"{"properties":{"c":{"enum":["web","pos"]},"k":{"const":1},"s":{"type":"string","minLength":2,"maxLength":3,"pattern":"^[a-z]+$"}}}"#)
        #expect(try failures(s, #"{"c":"web","k":1,"s":"ab"}"#).isEmpty)
        #expect(try failures(s, #"{"c":"tv"}"#).first?.message.contains("one of") == true)
        #expect(try failures(s, #"{"k":2}"#).count == 1)
        #expect(try failures(s, #"{"s":"a"}"#).count == 1)
        #expect(try failures(s, #"{"s":"abcd"}"#).count == 1)
        #expect(try failures(s, #"{"s":"AB"}"#).first?.message.contains("must match") == true)
    }

    @Test func numericBounds() throws {
        let s = try schema(#"{"minimum":1,"maximum":5,"exclusiveMaximum":5}"#)
        #expect(try failures(s, "1").isEmpty)
        #expect(try failures(s, "0").count == 1)
        #expect(try failures(s, "5").count == 1)
    }

    @Test func arraysAndObjectsSizes() throws {
        let s = try schema(#"{"properties":{"a":{"minItems":1,"maxItems":2},"o":{"minProperties":1,"maxProperties":1,"additionalProperties":{"type":"boolean"}}}}"#)
        #expect(try failures(s, #"{"a":[1],"o":{"x":true}}"#).isEmpty)
        #expect(try failures(s, #"{"a":[],"o":{}}"#).count == 2)
        #expect(try failures(s, #"{"a":[1,2,3],"o":{"x":1}}"#).count == 2)
    }

    @Test func additionalPropertiesFalseNamesTheUnknownField() throws {
        let s = try schema(#"{"properties":{"a":{}},"additionalProperties":false}"#)
        #expect(try failures(s, #"{"a":1,"b":2}"#).first?.message == "b is not an allowed field")
    }

    @Test func combinatorsAndConditionals() throws {
        let s = try schema(#"{"if":{"properties":{"t":{"const":"alias"}}},"then":{"required":["p"]},"else":{"anyOf":[{"required":["u"]},{"required":["a"]}],"x-message":"u or a is required"}}"#)
        #expect(try failures(s, #"{"t":"alias","p":1}"#).isEmpty)
        #expect(try failures(s, #"{"t":"alias"}"#).first?.message == "p is required")
        #expect(try failures(s, #"{"t":"track","a":1}"#).isEmpty)
        #expect(try failures(s, #"{"t":"track"}"#).map(\.message) == ["u or a is required"])
        let one = try schema(#"{"oneOf":[{"type":"string"},{"maxLength":3}]}"#)
        #expect(try failures(one, #""abcdef""#).isEmpty)
        #expect(try failures(one, #""ab""#).first?.message.contains("more than one") == true)
        #expect(try failures(try schema(#"{"not":{"type":"null"}}"#), "null").count == 1)
    }

    @Test func dateTimeFormat() throws {
        let s = try schema(#"{"format":"date-time"}"#)
        for ok in ["2025-03-01T12:00:00Z", "2025-03-01T12:00:00.561+00:00", "2025-03-01T12:00:00.123456Z"] {
            #expect(try failures(s, "\"\(ok)\"").isEmpty, "\(ok)")
        }
        for bad in ["2025-03-01", "yesterday", "2025-13-01T00:00:00Z", "2025-03-01T12:00:00"] {
            #expect(try failures(s, "\"\(bad)\"").count == 1, "\(bad)")
        }
    }

    @Test func unknownKeywordsAreRejectedButAnnotationsAllowed() throws {
        #expect(throws: SchemaError.self) { try schema(#"{"typ":"string"}"#) }
        do { _ = try schema(#"{"typ":"string"}"#) } catch { #expect("\(error)".contains("typ")) }
        _ = try schema(#"{"x-owner":"growth team","title":"t","description":"d","$comment":"c"}"#)
    }

    @Test func refsResolveWithinAndAcrossFiles() throws {
        let lib = try JSON.parse(##"{"$id":"https://x/lib.json","$defs":{"money":{"type":"number"}},"type":"object","properties":{"p":{"$ref":"#/$defs/money"}}}"##)
        let user = try JSON.parse(#"{"$id":"https://x/user.json","x-touchstone":{"applies":"all"},"properties":{"item":{"$ref":"https://x/lib.json"}}}"#)
        let r = try SchemaRegistry(schemas: [("lib.json", lib), ("user.json", user)])
        #expect(r.validate(try JSON.parse(#"{"item":{"p":2}}"#)).isEmpty)
        #expect(r.validate(try JSON.parse(#"{"item":{"p":"2"}}"#)).first?.path == "item.p")
        #expect(throws: SchemaError.self) {
            try SchemaRegistry(schemas: [("u.json", try JSON.parse(#"{"$ref":"https://x/missing.json"}"#))])
        }
    }
}

@Suite struct EventSchemas {
    static let registry: SchemaRegistry = {
        var url = URL(fileURLWithPath: #filePath)
        while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { url.deleteLastPathComponent() }
        return try! SchemaRegistry(directory: url.path + "/Schemas/events")
    }()

    func check(_ text: String) throws -> [String] { EventSchemas.registry.validate(try JSON.parse(text)).map(\.message) }

    @Test func acceptsWhatAnalyticsPythonSends() throws {
        #expect(try check(#"{"type":"track","event":"Signed Up","userId":"u1","anonymousId":null,"messageId":"0b3c","timestamp":"2025-03-01T23:49:38.561+00:00","context":{"library":{"name":"analytics-python","version":"2.3.3"}},"properties":{},"integrations":{}}"#) == [])
    }

    @Test func acceptsWhatRudderStackSends() throws {
        #expect(try check(#"{"type":"identify","userId":"u1","channel":"server","timestamp":"2025-03-01T23:49:38.561123Z","context":{"traits":{"email":"a@b.c"},"library":{"name":"rudder-sdk-python"}},"integrations":{"All":true}}"#) == [])
    }

    @Test func rejectsTrackWithoutEvent() throws {
        let m = try check(#"{"type":"track","userId":"u1"}"#)
        #expect(m.count == 1 && m[0].contains("event") && m[0].contains("track requires"))
    }

    @Test func rejectsAMessageWithoutIds() throws {
        #expect(try check(#"{"type":"page","userId":null,"anonymousId":""}"#) == ["userId or anonymousId is required (a non-empty string or number)"])
    }

    @Test func aliasNeedsPreviousId() throws {
        #expect(try check(#"{"type":"alias","userId":"u1"}"#).contains { $0.contains("previousId") })
    }

    @Test func rejectsALongMessageId() throws {
        let id = String(repeating: "x", count: 101)
        #expect(try check(#"{"type":"page","userId":"u","messageId":"\#(id)"}"#).first?.contains("messageId") == true)
    }

    @Test func ordersValidateTheirProductsWithPaths() throws {
        let f = EventSchemas.registry.validate(try JSON.parse(#"{"type":"track","event":"Order Completed","userId":"u","properties":{"order_id":"o1","total":"19.99","products":[{"price":1,"quantity":1},{"price":"abc"}]}}"#))
        #expect(f.map(\.path) == ["properties.products[1].price"])
    }

    @Test func theTrackingPlanAppliesOnlyToItsEvent() throws {
        #expect(try check(#"{"type":"track","event":"Order Completed","userId":"u","properties":{}}"#) == ["properties.order_id is required"])
        #expect(try check(#"{"type":"page","userId":"u","properties":{}}"#) == [])
    }
}
