import JSONCore
import Testing

@Suite struct FieldsTests {
    @Test func fieldsFindsSeveralMembersInOnePassLikeTheSubscript() throws {
        let j = try JSON.parse(Array(#"{"a":1,"bb":{"x":[1,2]},"c":"s","a":2,"":null,"long-key-here":true}"#.utf8))
        let view = JSONView(bytes: j.binary)
        let keys = JSONView.KeyList(["a", "bb", "missing", "", "long-key-here", "c"])
        let got = view.fields(keys)
        #expect(got.count == 6)
        #expect(got[0]?.intValue == 2, "the last of a repeated key wins, as with the subscript")
        #expect(got[1]?["x"]?[1]?.intValue == 2)
        #expect(got[2] == nil)
        #expect(got[3]?.isNull == true)
        #expect(got[4]?.boolValue == true)
        #expect(got[5]?.stringValue == "s")
        for (i, k) in ["a", "bb", "missing", "", "long-key-here", "c"].enumerated() {
            #expect(got[i]?.offset == view[k]?.offset)
        }
        // Not an object: nothing.
        #expect(JSONView(bytes: JSON.array([1]).binary).fields(keys).allSatisfy { $0 == nil })
    }
}
