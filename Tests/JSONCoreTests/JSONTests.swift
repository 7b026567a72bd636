import Testing
@testable import JSONCore

@Suite struct JSONParsing {
    @Test func parsesNestedValuesKeepingMemberOrder() throws {
        let v = try JSON.parse(#"{"b":1,"a":[true,false,null,-2.5,"x\n\u00e9\ud83d\ude00"],"c":{}}"#)
        #expect(v.objectValue?.map(\.0) == ["b", "a", "c"])
        #expect(v["a"]?[3] == .double(-2.5))
        #expect(v["a"]?[4]?.stringValue == "x\né😀")
        #expect(v["b"] == .int(1))
    }

    @Test(arguments: [
        "", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "\"\u{01}\"", "nul", "[1] x", "\"\\q\"", "1.", "-", "\"\\ud800\"",
    ])
    func rejectsMalformedText(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSON.parse(text) }
    }

    @Test func rejectsNestingBeyondTheLimit() throws {
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(try JSON.parse(ok).depth == 64)
    }

    @Test func errorNamesTheOffset() {
        do { _ = try JSON.parse(#"{"a": tru}"#); Issue.record("parsed") } catch {
            #expect(error.offset == 6)
            #expect(error.description.contains("byte 6"))
        }
    }

    @Test func largeIntegersBecomeDoublesAndSmallOnesStayExact() throws {
        #expect(try JSON.parse("9007199254740993") == .int(9_007_199_254_740_993))
        #expect(try JSON.parse("-9223372036854775808") == .int(Int64.min))
        #expect(try JSON.parse("123456789012345678901234") == .double(1.2345678901234568e23))
        #expect(try JSON.parse("1e3") == .double(1000))
    }
}

@Suite struct JSONWriting {
    @Test func roundTripsThroughText() throws {
        let text = #"{"z":[1,2.5,"q\"\\\t"],"a":{"k":null,"t":true}}"#
        let v = try JSON.parse(text)
        #expect(v.jsonString == text)
        #expect(try JSON.parse(v.jsonString) == v)
    }

    @Test func canonicalFormSortsKeysAtEveryLevel() throws {
        let a = try JSON.parse(#"{"b":{"y":1,"x":2},"a":0}"#)
        let b = try JSON.parse(#"{"a":0,"b":{"x":2,"y":1}}"#)
        #expect(a.canonicalString == #"{"a":0,"b":{"x":2,"y":1}}"#)
        #expect(a.canonicalString == b.canonicalString)
        #expect(a == b)
    }

    @Test func doublesUseTheShortestExactForm() {
        #expect(JSON.double(19.99).jsonString == "19.99")
        #expect(JSON.double(20).jsonString == "20")
        #expect(JSON.double(.infinity).jsonString == "null")
    }
}

@Suite struct BinaryForm {
    @Test func roundTripsEveryKindOfValue() throws {
        let v: JSON = ["s": "héllo", "i": -42, "big": .int(Int64.max), "d": 3.25, "n": nil, "t": true, "f": false,
                       "a": [1, [2, ["k": "v"]]], "o": [:]]
        let bytes = v.binary
        let back = try JSON.decodeBinary(bytes)
        #expect(back == v)
        #expect(back.jsonString == v.jsonString)
    }

    @Test func rejectsTruncatedAndCorruptInput() {
        let value: JSON = ["key": "value", "n": 300]
        let bytes = value.binary
        for cut in 0..<bytes.count {
            #expect(throws: BinaryJSONError.self) { try JSON.decodeBinary(Array(bytes[..<cut])) }
        }
        #expect(throws: BinaryJSONError.self) { try JSON.decodeBinary([9]) }
        #expect(throws: BinaryJSONError.self) { try JSON.decodeBinary([6, 0xFF, 0xFF, 0xFF, 0x0F]) }
    }
}
