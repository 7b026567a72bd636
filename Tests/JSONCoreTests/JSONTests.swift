import Testing
import TestSupport
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

    @Test func everyCharacterRoundTripsThroughItsEscape() throws {
        let s = String(decoding: (0..<128).map { UInt8($0) }, as: UTF8.self) + "é😀\\\"x"
        let v = JSON.string(s)
        #expect(try JSON.parse(v.jsonString) == v)
        #expect(v.jsonString.hasPrefix(#""\u0000\u0001"#) && v.jsonString.hasSuffix(#"é😀\\\"x""#))
        #expect(JSON.string("plain").jsonString == #""plain""#)
    }

    @Test func numbersAreWrittenAsTheirStringsSpellThem() {
        for v: Int64 in [0, 7, 9, 10, -1, -10, 1_000_000, .max, .min, .max - 1, .min + 1] {
            #expect(JSON.int(v).jsonString == String(v))
        }
        for v: UInt64 in [0, 9, 10, .max] {
            let w = JSONText()
            w.int(v)
            #expect(String(decoding: w.bytes, as: UTF8.self) == String(v))
        }
        for d: Double in [0, -0.0, 1, -1, 0.1, -2.5, 19.99, 1e15 - 1, 1e15, -1e15 + 1, 1e20, 123456.789, .nan, -.infinity, .leastNonzeroMagnitude] {
            #expect(JSON.double(d).jsonString == JSON.formatDouble(d), "\(d)")
        }
    }

    /// `JSONText`, call by call, writes what a plain byte-at-a-time writer (the one this
    /// codebase had before) writes for the same tree: escapes, numbers, nesting, commas.
    @Test func textWrittenAsItGoesIsWhatAPlainWriterWrites() {
        let hex = Array("0123456789abcdef".utf8)
        func reference(_ v: JSON, _ out: inout [UInt8]) {
            func str(_ s: String) {
                out.append(0x22)
                for c in s.utf8 {
                    switch c {
                    case 0x22, 0x5C: out += [0x5C, c]
                    case 0x0A: out += Array(#"\n"#.utf8)
                    case 0x0D: out += Array(#"\r"#.utf8)
                    case 0x09: out += Array(#"\t"#.utf8)
                    case 0..<0x20: out += Array(#"\u00"#.utf8) + [hex[Int(c >> 4)], hex[Int(c & 15)]]
                    default: out.append(c)
                    }
                }
                out.append(0x22)
            }
            switch v {
            case .null: out += Array("null".utf8)
            case .bool(let b): out += Array((b ? "true" : "false").utf8)
            case .int(let i): out += Array(String(i).utf8)
            case .double(let d): out += Array(JSON.formatDouble(d).utf8)
            case .string(let s): str(s)
            case .array(let a):
                out.append(UInt8(ascii: "["))
                for (n, e) in a.enumerated() { if n > 0 { out.append(UInt8(ascii: ",")) }; reference(e, &out) }
                out.append(UInt8(ascii: "]"))
            case .object(let o):
                out.append(UInt8(ascii: "{"))
                for (n, (k, e)) in o.enumerated() { if n > 0 { out.append(UInt8(ascii: ",")) }; str(k); out.append(UInt8(ascii: ":")); reference(e, &out) }
                out.append(UInt8(ascii: "}"))
            }
        }
        func emit(_ v: JSON, _ w: JSONText) {
            switch v {
            case .null: w.null()
            case .bool(let b): w.bool(b)
            case .int(let i): w.int(i)
            case .double(let d): w.double(d)
            case .string(let s): w.string(s)
            case .array(let a):
                w.beginArray()
                for e in a { emit(e, w) }
                w.endArray()
            case .object(let o):
                w.beginObject()
                for (k, e) in o { w.key(string: k); emit(e, w) }
                w.endObject()
            }
        }
        var rng = SplitMix(seed: 0x7E47)
        let edge: [JSON] = [.object([]), .array([]), .array([.object([]), .array([]), .null]), .string("q\"\\\u{01}\u{1F}\n\r\té"),
                            .object([("a", .object([("b", .array([.int(.min), .double(0.5)]))])), ("c\"", .bool(false))])]
        for v in edge + (0..<500).map({ _ in BinaryForm().randomJSON(&rng, depth: 0) }) {
            var expected: [UInt8] = []
            reference(v, &expected)
            let w = JSONText(capacity: 0)  // grows from its smallest buffer
            emit(v, w)
            #expect(String(decoding: w.bytes, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
            #expect(v.jsonBytes() == expected)
            var appended: [UInt8] = [7]
            v.write(to: &appended)
            #expect(appended == [7] + expected)
        }
        let w = JSONText()
        w.beginObject(); w.key("literal"); w.beginArray()
        "2025-03-01".utf8.withContiguousStorageIfAvailable { w.plainString($0) }
        w.plainString("p", 12); w.raw(Array("{\"x\":1}".utf8)); w.value(.array([.int(1)]))
        w.endArray(); w.endObject()
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"{"literal":["2025-03-01","p12",{"x":1},[1]]}"#)
    }

    /// Amounts in ten-thousandths are written from the integer as the double would be.
    @Test func tenThousandthsAreWrittenAsTheirDoubles() {
        var rng = SplitMix(seed: 0x10_000)
        var units: [Int64] = [0, 1, -1, 5, 10, 100, 1000, 9999, 10_000, -10_000, 10_001, 12_340, 39_534_800, 2_823_914, -5000,
                              999_999_999_999_999, -999_999_999_999_999, 1_000_000_000_000_000, -1_000_000_000_000_000, .max, .min]
        for scale in [100, 10_000, 1_000_000, 1_000_000_000_000, 1_000_000_000_000_000] {
            units += (0..<400).map { _ in Int64(bitPattern: rng.next() % UInt64(2 * scale)) - Int64(scale) }
        }
        for u in units {
            let w = JSONText(capacity: 0)
            w.beginArray(); w.null(); w.tenThousandths(u); w.endArray()
            #expect(String(decoding: w.bytes, as: UTF8.self) == "[null,\(JSON.formatDouble(Double(u) / 10_000))]", "\(u)")
        }
    }

    /// A string written straight into the buffer: quoted, after a comma where one is due,
    /// and nothing at all when the writer declines.
    @Test func plainStringsWrittenInPlace() {
        let w = JSONText(capacity: 0)
        w.beginArray()
        var starts: [Int?] = []
        for text in ["a", "", "bc", "2025-03-01T12:00:00.123456Z"] {
            starts.append(w.plainString(maxCount: 27) { to in
                for (i, b) in text.utf8.enumerated() { to[i] = b }
                return text.utf8.count
            })
        }
        #expect(starts == [2, nil, 6, 11])
        w.int(Int64(1))
        w.plainString(copyOf: 11, count: 27)  // the timestamp again, after the buffer grew
        w.plainString(copyOf: 2, count: 1)
        w.endArray()
        #expect(String(decoding: w.bytes, as: UTF8.self) == #"["a","bc","2025-03-01T12:00:00.123456Z",1,"2025-03-01T12:00:00.123456Z","a"]"#)
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
        #expect(throws: BinaryJSONError.self) { try JSON.decodeBinary([9, 0xFF, 0xFF, 0xFF, 0x0F, 0]) }
    }

    /// Where the value at `at` ends, found by walking every item (never trusting a size),
    /// each container's stored size checked against it on the way: containers of 128 bytes
    /// and more carry theirs, smaller ones do not.
    func walkedEnd(_ b: [UInt8], _ at: Int) -> Int {
        var i = at + 1
        func varint() -> Int {
            var v = 0, shift = 0
            while b[i] >= 0x80 { v |= Int(b[i] & 0x7F) << shift; shift += 7; i += 1 }
            v |= Int(b[i]) << shift
            i += 1
            return v
        }
        switch b[at] {
        case 0, 1, 2: return i
        case 3: _ = varint(); return i
        case 4: return i + 8
        case 5: let n = varint(); return i + n
        case 6, 7, 8, 9:
            let size = b[at] >= 8 ? varint() : nil
            let start = i
            let n = varint()
            for _ in 0..<n {
                if b[at] == 7 || b[at] == 9 { let k = varint(); i += k }
                i = walkedEnd(b, i)
            }
            if let size {
                #expect(i - start == size, "a container's size is not its length")
                #expect(size >= 128, "a container under 128 bytes carries its size")
            } else {
                #expect(i - start < 128, "a container of \(i - start) bytes does not carry its size")
            }
            return i
        default:
            Issue.record("tag \(b[at]) written")
            return b.count
        }
    }

    @Test func containersOf128BytesAndMoreCarryTheirSize() throws {
        var rng = SplitMix(seed: 0x51ED)
        var values: [JSON] = (0..<1_000).map { _ in randomJSON(&rng, depth: 0) }
        // Sizes and counts of 128 and more take longer varints (what follows moves up).
        values.append(.array((0..<20_000).map { .int(Int64($0)) }))
        values.append(.object((0..<300).map { ("k\($0)", .array([.int(Int64($0)), .object([])])) }))
        values.append(["a": .array((0..<200).map { ["x": .int(Int64($0))] }), "b": .string(String(repeating: "z", count: 20_000))])
        for v in values {
            let bytes = v.binary
            #expect(walkedEnd(bytes, 0) == bytes.count)
            #expect((try? JSON.decodeBinary(bytes)) == v)
            // The transcoder (text straight to binary) writes the sizes too.
            let direct = try JSON.transcode(Array(v.jsonString.utf8))
            #expect(walkedEnd(direct, 0) == direct.count)
        }
    }

    @Test func aSkipJumpsOverAContainerWithoutWalkingIt() throws {
        let long = JSON.string(String(repeating: "y", count: 130))
        let v: JSON = ["a": ["b": [1, 2, 3, long], "s": "x"], "c": 7]
        var bytes = v.binary
        // Garble the inner array's items: a walk would stop there, a jump does not see them.
        let inner = try #require(JSONView(bytes: bytes)["a"]?["b"])
        #expect(bytes[inner.offset] == BinaryTag.sizedArray)
        let items = inner.offset + 4  // tag, size (two bytes), count
        for k in items..<items + 6 { bytes[k] = 0xFF }
        #expect(JSONView(bytes: bytes)["c"]?.intValue == 7)
        #expect(JSONView(bytes: bytes)["a"]?["s"]?.stringValue == "x")
        #expect(throws: BinaryJSONError.self) { try JSON.decodeBinary(bytes) }
    }

    @Test func aSizeThatDisagreesWithTheContentsIsCorrupt() throws {
        let v: JSON = ["k": [1, 2, .string(String(repeating: "y", count: 130))], "z": true]
        let good = v.binary
        let inner = try #require(JSONView(bytes: good)["k"])
        for delta in [-1, 1] {
            var bad = good
            #expect(good[inner.offset] == BinaryTag.sizedArray)
            bad[inner.offset + 1] = UInt8(Int(bad[inner.offset + 1]) + delta)  // the size's low byte
            #expect(throws: BinaryJSONError.self) { try JSON.decodeBinary(bad) }
        }
    }

    /// The log's form (no container carries its size) reads as the sized one does.
    @Test func theUnsizedFormReadsLikeTheSized() throws {
        var rng = SplitMix(seed: 0x01D)
        for _ in 0..<1_000 {
            let v = randomJSON(&rng, depth: 0)
            let legacy = v.unsizedBinary
            #expect(try JSON.decodeBinary(legacy) == v)
            let old = JSONView(bytes: legacy), new = JSONView(bytes: v.binary)
            #expect(old.compactByteCount == new.compactByteCount)
            #expect(old.encodedBytes == legacy)
            #expect(new.unsizedBytes == legacy && old.unsizedBytes == legacy)
            #expect(old.isObject == new.isObject && old.isArray == new.isArray)
            #expect(old.members.map(\.0) == new.members.map(\.0))
            for ((_, a), (_, b)) in zip(old.members, new.members) { #expect(a.json == b.json) }
            #expect(old.elements.map(\.json) == new.elements.map(\.json))
            #expect(old.elementSpans.map { Array(legacy[$0]) } == old.elements.map(\.json).map(\.unsizedBinary))
            if case .object(let m) = v, let (key, value) = m.last { #expect(old[key]?.json == value) }
            if case .array(let a) = v, !a.isEmpty { #expect(old[a.count - 1]?.json == a.last) }
        }
    }

    func randomJSON(_ rng: inout SplitMix, depth: Int) -> JSON {
        switch Int.random(in: 0..<(depth > 4 ? 6 : 8), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .int(Int64.random(in: -1_000_000...1_000_000, using: &rng))
        case 3: return .double(Double(Int.random(in: -1_000_000...1_000_000, using: &rng)) / 1_000)
        case 4, 5: return .string(String(repeating: "é", count: Int.random(in: 0...(Bool.random(using: &rng) ? 4 : 90), using: &rng)))
        case 6: return .array((0..<Int.random(in: 0...(Bool.random(using: &rng) ? 4 : 140), using: &rng)).map { _ in randomJSON(&rng, depth: depth + 2) })
        default:
            // Distinct keys: `==` on objects looks members up by key.
            let keys = (0..<10).shuffled(using: &rng).prefix(Int.random(in: 0...6, using: &rng))
            return .object(keys.map { ("k\($0)", randomJSON(&rng, depth: depth + 1)) })
        }
    }
}
