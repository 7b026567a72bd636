import JSONCore
import JSONSchema
import Testing

@Suite struct Composition {
    @Test func allOfReportsEveryFailingPart() throws {
        let s = try schema(#"{"allOf": [{"type": "string"}, {"minLength": 3}, {"pattern": "^a"}]}"#)
        #expect(try accepts(s, #""abc""#))
        #expect(try messages(s, #""b""#) == ["the value must be at least 3 characters, got 1", #"the value must match ^a, got "b""#])
    }

    @Test func anyOfOfTitledFormsGivesOneMessageNamingThem() throws {
        let s = try schema(#"""
            {"properties": {"price": {"anyOf": [
                {"title": "a number", "type": "number"},
                {"title": "a numeric string such as \"19.99\"", "type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"}]}}}
            """#)
        #expect(try accepts(s, #"{"price": 19.99}"#))
        #expect(try accepts(s, #"{"price": "19.99"}"#))
        #expect(try messages(s, #"{"price": "abc"}"#) == [#"price must be a number or a numeric string such as "19.99", got "abc""#])
    }

    @Test func anyOfWithOneFormOfTheValuesTypeExplainsThatForm() throws {
        let s = try schema(#"{"anyOf": [{"type": "string", "minLength": 1}, {"type": "number"}]}"#)
        #expect(try messages(s, #""""#) == ["the value must not be empty"])
    }

    @Test func anyOfOfUntitledFormsDescribesThemByType() throws {
        let s = try schema(#"{"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "integer", "minimum": 1}]}"#)
        #expect(try messages(s, "true") == ["the value must be a string matching ^[a-z]+$ or an integer of at least 1, got true"])
    }

    @Test func anyOfThatCannotBeNamedQuotesTheFirstReason() throws {
        let s = try schema(#"{"anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}]}"#)
        #expect(try accepts(s, #"{"anonymousId": "a"}"#))
        #expect(try messages(s, "{}") == ["the value matches none of the 2 allowed forms (the first: userId is required)"])
    }

    @Test func oneOfRejectsNoneAndMoreThanOne() throws {
        let s = try schema(#"{"oneOf": [{"title": "a short string", "type": "string", "maxLength": 3}, {"title": "a word", "pattern": "^[a-z]+$"}]}"#)
        #expect(try accepts(s, #""ABC""#))
        #expect(try accepts(s, #""abcdef""#))
        #expect(try messages(s, #""abc""#) == ["the value must match exactly one allowed form but matches 2: a short string, a word"])
        #expect(try messages(s, #""ABCDEF""#) == [#"the value must be a short string or a word, got "ABCDEF""#])
    }

    @Test func notRejectsWhatItDescribes() throws {
        let s = try schema(#"{"not": {"type": "null"}}"#)
        #expect(try accepts(s, "0"))
        #expect(try messages(s, "null") == ["the value must not be null, got null"])
    }

    @Test func ifThenElseAppliesTheBranchTheConditionPicks() throws {
        let s = try schema(#"""
            {"if": {"required": ["type"], "properties": {"type": {"const": "alias"}}},
             "then": {"required": ["previousId"]},
             "else": {"x-message": "userId or anonymousId is required", "anyOf": [{"required": ["userId"]}, {"required": ["anonymousId"]}]}}
            """#)
        #expect(try accepts(s, #"{"type": "alias", "previousId": "p"}"#))
        #expect(try messages(s, #"{"type": "alias"}"#) == ["previousId is required"])
        #expect(try accepts(s, #"{"type": "track", "anonymousId": "a"}"#))
        #expect(try messages(s, #"{"type": "track"}"#) == ["userId or anonymousId is required"])
    }

    @Test func ifWithoutElseAcceptsWhatFailsTheCondition() throws {
        let s = try schema(#"{"if": {"type": "string"}, "then": {"minLength": 2}}"#)
        #expect(try accepts(s, "1"))
        #expect(try !accepts(s, #""a""#))
    }
}

@Suite struct References {
    @Test func refToDefsInTheSameFile() throws {
        let s = try schema(##"{"$defs": {"money": {"type": "number", "minimum": 0}}, "properties": {"total": {"$ref": "#/$defs/money"}}}"##)
        #expect(try accepts(s, #"{"total": 5}"#))
        #expect(try messages(s, #"{"total": -1}"#) == ["total must be at least 0, got -1"])
    }

    @Test func refWithSiblingKeywordsAppliesBoth() throws {
        let s = try schema(##"{"$defs": {"p": {"type": "object"}}, "$ref": "#/$defs/p", "required": ["id"]}"##)
        #expect(try messages(s, "{}") == ["id is required"])
        #expect(try messages(s, "1") == ["the value must be an object, got 1"])
    }

    @Test func recursiveRefsFollowTheValue() throws {
        let s = try schema(##"{"type": "object", "properties": {"name": {"type": "string"}, "children": {"items": {"$ref": "#"}}}}"##)
        #expect(try accepts(s, #"{"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}"#))
        let f = s.validate(try JSON.parse(#"{"children": [{"children": [{"name": 1}]}]}"#))
        #expect(f.map(\.path) == ["children[0].children[0].name"])
    }

    @Test func refToAnotherSchemaByIdAndPointer() throws {
        let library = try JSON.parse(#"""
            {"$id": "https://x/ecommerce/product.json", "type": "object", "properties": {"price": {"$ref": "#/$defs/money"}},
             "$defs": {"money": {"type": "number"}}}
            """#)
        let order = try JSON.parse(#"""
            {"$id": "https://x/ecommerce/order.json", "x-touchstone": {"applies": "all"},
             "properties": {"products": {"items": {"$ref": "https://x/ecommerce/product.json"}},
                            "total": {"$ref": "product.json#/$defs/money"},
                            "tax": {"$ref": "../ecommerce/product.json#/$defs/money"}}}
            """#)
        // Order first: a reference may point forward.
        let registry = try SchemaRegistry(schemas: [("order.json", order), ("product.json", library)])
        #expect(registry.validate(try JSON.parse(#"{"products": [{"price": 1}], "total": 2, "tax": 0}"#)).isEmpty)
        let f = registry.validate(try JSON.parse(#"{"products": [{"price": "1"}], "total": "2", "tax": "0"}"#))
        #expect(f.map(\.path) == ["products[0].price", "total", "tax"])
        #expect(f.allSatisfy { $0.schema == "https://x/ecommerce/order.json" })
    }

    @Test func refByFileNameWhenTheTargetHasNoId() throws {
        let registry = try SchemaRegistry(schemas: [
            ("plan/defs.json", try JSON.parse(#"{"$defs": {"sku": {"type": "string", "pattern": "^SKU-"}}}"#)),
            ("plan/item.json", try JSON.parse(#"{"x-touchstone": {"applies": "all"}, "properties": {"sku": {"$ref": "defs.json#/$defs/sku"}}}"#)),
        ])
        #expect(registry.validate(try JSON.parse(#"{"sku": "SKU-1"}"#)).isEmpty)
        #expect(registry.validate(try JSON.parse(#"{"sku": "1"}"#)).map(\.schema) == ["plan/item.json"])
    }

    @Test func aDanglingRefFailsTheLoad() {
        #expect(loadError(##"{"$ref": "#/$defs/nothing"}"##).contains(##"$ref "#/$defs/nothing" names no schema"##))
        #expect(throws: SchemaError.self) {
            try SchemaRegistry(schemas: [("u.json", try JSON.parse(#"{"$ref": "https://x/missing.json"}"#))])
        }
    }

    @Test func aRefLoopThatConsumesNothingFailsTheLoad() {
        #expect(loadError(##"{"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"allOf": [{"$ref": "#/$defs/a"}]}}}"##).contains("refers to itself"))
    }
}
