import JSONCore
import JSONSchema
import Testing

@Suite struct Types {
    @Test func numberAcceptsIntegersAndDoublesButNotNumericStrings() throws {
        let s = try schema(#"{"type": "number"}"#)
        #expect(try accepts(s, "3"))
        #expect(try accepts(s, "3.5"))
        #expect(try messages(s, #""3""#) == ["the value must be a number, got string"])
    }

    @Test func integerAcceptsIntegralDoubles() throws {
        let s = try schema(#"{"type": "integer"}"#)
        #expect(try accepts(s, "3"))
        #expect(try accepts(s, "3.0"))
        #expect(try messages(s, "3.5") == ["the value must be an integer, got 3.5"])
    }

    @Test func anArrayOfTypesAcceptsAnyOfThem() throws {
        let s = try schema(#"{"type": ["string", "null"]}"#)
        #expect(try accepts(s, "null"))
        #expect(try accepts(s, #""x""#))
        #expect(try messages(s, "{}") == ["the value must be a string or null, got object"])
    }

    @Test(arguments: [
        ("null", "null"), ("boolean", "true"), ("string", #""s""#), ("array", "[]"), ("object", "{}"),
    ])
    func eachTypeNameAcceptsItsValues(_ type: String, _ value: String) throws {
        let s = try schema(#"{"type": "\#(type)"}"#)
        #expect(try accepts(s, value))
        #expect(try !accepts(s, "1"))
    }

    @Test func booleanSchemas() throws {
        #expect(try accepts(schema("true"), "[1]"))
        #expect(try messages(schema("false"), "1") == ["the value is not allowed"])
    }
}

@Suite struct Values {
    @Test func enumListsTheAllowedValues() throws {
        let s = try schema(#"{"enum": ["web", "pos", 3]}"#)
        #expect(try accepts(s, #""pos""#))
        #expect(try accepts(s, "3.0"))
        #expect(try messages(s, #""tv""#) == [#"the value must be one of "web", "pos", 3, got "tv""#])
    }

    @Test func enumOfStringsComparesExactly() throws {
        let s = try schema(#"{"enum": ["nps", "csat"]}"#)
        #expect(try accepts(s, #""csat""#))
        #expect(try !accepts(s, #""CSAT""#))
        #expect(try !accepts(s, "1"))
    }

    @Test func constNamesTheValue() throws {
        let s = try schema(#"{"const": {"a": [1, "x"]}}"#)
        #expect(try accepts(s, #"{"a": [1.0, "x"]}"#))
        #expect(try messages(s, #"{"a": []}"#) == [#"the value must be {"a":[1,"x"]}, got an object"#])
    }
}

@Suite struct Objects {
    @Test func requiredNamesTheMissingFieldAndTheSchema() throws {
        let s = try schema(#"{"title": "track", "required": ["event", "type"]}"#)
        let f = s.validate(try JSON.parse(#"{"type": "track"}"#))
        #expect(f == [ValidationFailure(path: "event", message: #"event is required (track requires "event")"#, schema: "test.json")])
    }

    @Test func requiredWithoutATitleSaysOnlyWhatIsMissing() throws {
        #expect(try messages(schema(#"{"required": ["a"]}"#), "{}") == ["a is required"])
    }

    @Test func requiredChecksEveryNameHoweverMany() throws {
        for n in [1, 63, 64, 65, 70] {
            let names = (0..<n).map { "\"k\($0)\"" }
            let s = try schema(#"{"required": ["# + names.joined(separator: ",") + ", \"k0\"]}")
            let all = "{" + names.map { $0 + ": 1" }.joined(separator: ",") + "}"
            #expect(try accepts(s, all), "\(n) names")
            #expect(try !accepts(s, "{" + names.dropLast().map { $0 + ": 1" }.joined(separator: ",") + "}"), "\(n) names, one missing")
            #expect(try !accepts(s, "{" + names.dropFirst().map { $0 + ": 1" }.joined(separator: ",") + "}"), "\(n) names, the repeated one missing")
        }
    }

    @Test func requiredIgnoresNonObjects() throws {
        #expect(try accepts(schema(#"{"required": ["a"]}"#), "[]"))
    }

    @Test func propertiesCheckOnlyTheMembersPresent() throws {
        let s = try schema(#"{"properties": {"revenue": {"type": "number"}}}"#)
        #expect(try accepts(s, "{}"))
        #expect(try accepts(s, #"{"revenue": 1, "other": "x"}"#))
        let f = s.validate(try JSON.parse(#"{"revenue": "12"}"#))
        #expect(f.map(\.path) == ["revenue"])
        #expect(f.map(\.message) == ["revenue must be a number, got string"])
    }

    @Test func nestedPathsAreDottedWithIndexes() throws {
        let s = try schema(#"""
            {"properties": {"properties": {"properties": {"products": {"items": {"properties": {"price": {"type": "number"}}}}}}}}
            """#)
        let f = s.validate(try JSON.parse(#"{"properties": {"products": [{"price": 1}, {"price": 2}, {"price": "abc"}]}}"#))
        #expect(f.map(\.path) == ["properties.products[2].price"])
        #expect(f.map(\.message) == ["properties.products[2].price must be a number, got string"])
    }

    @Test func manyPropertiesAreFoundByName() throws {
        let props = (0..<30).map { #""p\#($0)": {"type": "integer"}"# }.joined(separator: ", ")
        let s = try schema(#"{"properties": {\#(props)}}"#)
        #expect(try accepts(s, #"{"p0": 1, "p29": 2, "q": "x"}"#))
        #expect(try messages(s, #"{"p17": "x"}"#) == ["p17 must be an integer, got string"])
    }

    @Test func additionalPropertiesFalseNamesTheUnknownField() throws {
        let s = try schema(#"{"title": "consent", "properties": {"a": {}}, "additionalProperties": false}"#)
        #expect(try accepts(s, #"{"a": 1}"#))
        let f = s.validate(try JSON.parse(#"{"a": 1, "b": 2}"#))
        #expect(f.map(\.path) == ["b"])
        #expect(f.map(\.message) == ["b is not allowed (consent allows no other fields)"])
    }

    @Test func additionalPropertiesSchemaChecksTheOtherMembers() throws {
        let s = try schema(#"{"properties": {"n": {"type": "string"}}, "additionalProperties": {"type": "boolean"}}"#)
        #expect(try accepts(s, #"{"n": "x", "email": true, "sms": false}"#))
        #expect(try messages(s, #"{"email": "yes"}"#) == ["email must be a boolean, got string"])
    }

    @Test func patternPropertiesCheckMatchingNamesAndCountAsDeclared() throws {
        let s = try schema(#"{"patternProperties": {"^utm_": {"type": "string"}}, "additionalProperties": false}"#)
        #expect(try accepts(s, #"{"utm_source": "ads"}"#))
        #expect(try messages(s, #"{"utm_source": 1}"#) == ["utm_source must be a string, got 1"])
        #expect(try messages(s, #"{"source": "ads"}"#) == ["source is not allowed"])
    }

    @Test func propertyCounts() throws {
        let s = try schema(#"{"minProperties": 1, "maxProperties": 2}"#)
        #expect(try accepts(s, #"{"a": 1}"#))
        #expect(try messages(s, "{}") == ["the value must have at least 1 field, got 0"])
        #expect(try messages(s, #"{"a": 1, "b": 2, "c": 3}"#) == ["the value must have at most 2 fields, got 3"])
    }
}

@Suite struct Arrays {
    @Test func itemsChecksEveryItem() throws {
        let s = try schema(#"{"items": {"type": "string"}}"#)
        #expect(try accepts(s, #"["a", "b"]"#))
        #expect(try accepts(s, "[]"))
        let f = s.validate(try JSON.parse(#"["a", 2, "c", null]"#))
        #expect(f.map(\.path) == ["[1]", "[3]"])
    }

    @Test func itemCounts() throws {
        let s = try schema(#"{"minItems": 1, "maxItems": 2}"#)
        #expect(try accepts(s, "[1, 2]"))
        #expect(try messages(s, "[]") == ["the value must have at least 1 item, got 0"])
        #expect(try messages(s, "[1, 2, 3]") == ["the value must have at most 2 items, got 3"])
        #expect(try accepts(s, #""not an array""#))
    }
}

@Suite struct Strings {
    @Test func lengthsCountCharactersNotBytes() throws {
        let s = try schema(#"{"minLength": 2, "maxLength": 3}"#)
        #expect(try accepts(s, #""ab""#))
        #expect(try accepts(s, #""é🇫🇷x""#))  // 3 characters, 11 bytes
        #expect(try messages(s, #""a""#) == ["the value must be at least 2 characters, got 1"])
        #expect(try messages(s, #""abcd""#) == ["the value must be at most 3 characters, got 4"])
        #expect(try accepts(s, "12345"))
    }

    @Test func minLengthOneSaysNotEmpty() throws {
        #expect(try messages(schema(#"{"minLength": 1}"#), #""""#) == ["the value must not be empty"])
    }

    @Test func patternSearchesUnlessAnchored() throws {
        let s = try schema(#"{"pattern": "[0-9]+"}"#)
        #expect(try accepts(s, #""order-42""#))
        let anchored = try schema(#"{"pattern": "^[A-Za-z]{3}$"}"#)
        #expect(try accepts(anchored, #""USD""#))
        #expect(try messages(anchored, #""US Dollar""#) == [#"the value must match ^[A-Za-z]{3}$, got "US Dollar""#])
    }

    @Test func dateTimeFormat() throws {
        let s = try schema(#"{"format": "date-time"}"#)
        #expect(try accepts(s, #""2025-03-01T12:00:00Z""#))
        #expect(try messages(s, #""yesterday""#) == [#"the value must be an ISO-8601 date-time such as 2025-03-01T12:00:00.000Z, got "yesterday""#])
        #expect(try accepts(s, "1"))
    }

    @Test func dateFormat() throws {
        let s = try schema(#"{"format": "date"}"#)
        #expect(try accepts(s, #""2024-02-29""#))
        #expect(try !accepts(s, #""2023-02-29""#))
        #expect(try !accepts(s, #""2024-02-29T00:00:00Z""#))
    }
}

@Suite struct Numbers {
    @Test func inclusiveBounds() throws {
        let s = try schema(#"{"minimum": 1, "maximum": 5}"#)
        #expect(try accepts(s, "1"))
        #expect(try accepts(s, "5.0"))
        #expect(try messages(s, "0.5") == ["the value must be at least 1, got 0.5"])
        #expect(try messages(s, "6") == ["the value must be at most 5, got 6"])
        #expect(try accepts(s, #""100""#))
    }

    @Test func exclusiveBounds() throws {
        let s = try schema(#"{"exclusiveMinimum": 0, "exclusiveMaximum": 10}"#)
        #expect(try accepts(s, "0.001"))
        #expect(try messages(s, "0") == ["the value must be greater than 0, got 0"])
        #expect(try messages(s, "10") == ["the value must be less than 10, got 10"])
    }
}

@Suite struct Annotations {
    @Test func annotationsAndXKeywordsDoNotConstrain() throws {
        let s = try schema(#"""
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://x/a.json", "title": "t",
             "description": "d", "$comment": "c", "examples": [1], "default": 0, "deprecated": false,
             "x-owner": "growth team", "x-touchstone": {"applies": "all"}}
            """#)
        #expect(try accepts(s, "[1]"))
        #expect(s.id == "https://x/a.json")
    }

    @Test func xMessageReplacesTheGeneratedText() throws {
        let s = try schema(#"{"properties": {"sku": {"type": "string", "pattern": "^SKU-", "x-message": "{field} must be a SKU like SKU-123, got {value}"}}}"#)
        let f = s.validate(try JSON.parse(#"{"sku": "123"}"#))
        #expect(f == [ValidationFailure(path: "sku", message: #"sku must be a SKU like SKU-123, got "123""#, schema: "test.json")])
    }

    @Test func failuresNameTheSchemaByIdElseByFileName() throws {
        let withId = try schema(#"{"$id": "https://x/order.json", "type": "object"}"#, name: "order.json")
        #expect(withId.validate(1).map(\.schema) == ["https://x/order.json"])
        let withoutId = try schema(#"{"type": "object"}"#, name: "plan/order.json")
        #expect(withoutId.validate(1).map(\.schema) == ["plan/order.json"])
    }
}
