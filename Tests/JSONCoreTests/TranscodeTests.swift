import Testing
import TestSupport
@testable import JSONCore

/// `JSON.transcode` must be `parse` then `binary`, byte for byte and error for error: the
/// ingest path stores what it yields.
@Suite struct Transcoding {
    func same(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let bytes = Array(text.utf8)
        let viaTree = Result { () throws(JSONParseError) in try JSON.parse(bytes).binary }
        let direct = Result { () throws(JSONParseError) in try JSON.transcode(bytes) }
        switch (viaTree, direct) {
        case let (.success(a), .success(b)): #expect(a == b, "bytes differ for \(text.prefix(200))", sourceLocation: sourceLocation)
        case let (.failure(a), .failure(b)): #expect(a == b, "errors differ for \(text.prefix(200))", sourceLocation: sourceLocation)
        default: Issue.record("one accepted and the other refused \(text.prefix(200)): \(viaTree) vs \(direct)", sourceLocation: sourceLocation)
        }
    }

    @Test func handWrittenValuesAndErrors() {
        for text in [
            #"{"b":1,"a":[true,false,null,-2.5,"x\n\u00e9\ud83d\ude00"],"c":{}}"#, "[]", "{}", " 1 ", "-0", "0.5e-3",
            "9223372036854775807", "-9223372036854775808", "123456789012345678901234", "1E400", "\u{FEFF}{}",
            #""caf\u00e9 ü \"q\" \\ \/ \b\f\r\t""#, #"{"k\"ey":"v","k\"ey":2}"#, "\"é😀\"",
            "", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "\"\u{01}\"", "nul", "[1] x", "\"\\q\"", "1.", "-", "\"\\ud800\"",
            "\"abc", "\"ab\\", "{\"a\" 1}", "[1 2]", "\"\\udc00\"", "\"\\ud800\\u0041\"", "tru", "[", "{\"a\":1", #"{"a":tru}"#,
        ] {
            same(text)
        }
        same("\"é\"")
        // Invalid UTF-8 inside a string: both refuse at the string's start.
        let bad: [UInt8] = [0x5B, 0x22, 0x61, 0xC3, 0x28, 0x22, 0x5D]
        let a = Result { () throws(JSONParseError) in try JSON.parse(bad).binary }
        let b = Result { () throws(JSONParseError) in try JSON.transcode(bad) }
        guard case .failure(let ea) = a, case .failure(let eb) = b else { Issue.record("accepted invalid UTF-8"); return }
        #expect(ea == eb)
    }

    @Test func nestingLimitIsTheParsers() {
        same(String(repeating: "[", count: 64) + String(repeating: "]", count: 64))
        same(String(repeating: "[", count: 65) + String(repeating: "]", count: 65))
        same(String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65))
    }

    @Test func countsOfAHundredAndTwentyEightAndMoreTakeLongerVarints() {
        for n in [127, 128, 129, 300, 16_383, 16_384, 20_000] {
            same("[" + (0..<n).map { String($0) }.joined(separator: ",") + "]")
            same("{" + (0..<n).map { "\"k\($0)\":[\($0),{}]" }.joined(separator: ",") + "}")
        }
        same("{\"a\":[" + (0..<200).map { "{\"x\":\($0)}" }.joined(separator: ",") + "],\"b\":" + "\"" + String(repeating: "z", count: 20_000) + "\"}")
    }

    @Test func randomTreesWrittenWithRandomSpacingAndEscapes() {
        var rng = SplitMix(seed: 0x5EED)
        for _ in 0..<2_000 {
            let v = randomValue(&rng, depth: 0)
            same(write(v, &rng))
        }
    }

    /// Noting the elements' text sizes changes nothing of the binary form; it notes exactly
    /// the elements of the arrays at the asked level, each from its first byte to its last.
    @Test func elementsAtALevelHaveTheirTextSizesNoted() throws {
        let elements = [#"{"a":1}"#, #"{ "b" : [1, 2] }"#, #""x""#, "-2.50", "[ ]"]
        let text = #"{"batch": [ "# + elements.joined(separator: " ,\n ") + #" ], "other": [true], "n": {"arr": [1, 22]}}"#
        let bytes = Array(text.utf8)
        let (binary, sizes) = try bytes.withUnsafeBufferPointer { try JSON.transcode($0, elementsAt: 2) }
        #expect(binary == (try JSON.transcode(bytes)))
        let view = JSONView(bytes: binary)
        let batch = try #require(view["batch"])
        #expect(batch.elementSpans.map { sizes.size(at: $0.lowerBound) } == elements.map { $0.utf8.count })
        let other = try #require(view["other"])
        #expect(other.elementSpans.map { sizes.size(at: $0.lowerBound) } == [4])
        #expect(sizes.count == elements.count + 1, "not the elements three levels in")
        #expect(sizes.size(at: 0) == nil)
        // Large ones: the array's count and size, and each element's size, are written once
        // it ends, and push up what follows them; the noted starts move with it.
        let many = (0..<300).map { #"{"messageId": "m\#($0)", "properties": {"name": "\#(String(repeating: "n", count: $0 % 200))", "price": 1.50}}"# }
        let large = Array(#"{"sentAt": "2025-01-01T00:00:00Z", "batch": ["#.utf8) + Array(many.joined(separator: ",").utf8) + Array("]}".utf8)
        let (largeBinary, largeSizes) = try large.withUnsafeBufferPointer { try JSON.transcode($0, elementsAt: 2) }
        let largeBatch = try #require(JSONView(bytes: largeBinary)["batch"])
        #expect(largeBatch.elementSpans.map { largeSizes.size(at: $0.lowerBound) } == many.map { $0.utf8.count })
        // The top-level array is level 1.
        let (_, top) = try Array("[1, {}, \"abc\"]".utf8).withUnsafeBufferPointer { try JSON.transcode($0, elementsAt: 1) }
        #expect(top.count == 3)
    }

    @Test func viewsMeasureTheCompactTextAndCopyTheirOwnBytes() {
        var rng = SplitMix(seed: 0xC0FFEE)
        for _ in 0..<2_000 {
            let v = randomValue(&rng, depth: 0)
            let view = JSONView(bytes: v.binary)
            #expect(view.compactByteCount == v.jsonBytes().count, "\(v.jsonString)")
            #expect(view.encodedBytes == v.binary)
            if case .object(let m) = v {
                #expect(view.members.count == m.count)
                for ((_, member), (_, value)) in zip(view.members, m) { #expect(member.encodedBytes == value.binary) }
                // One pass over every member: the keys asked for matched by index, each span
                // exactly its key's bytes and value's bytes.
                let asked = Array(Set(m.map(\.0)).sorted().prefix(2)) + ["absent"]
                var seen: [(Int?, String, [UInt8])] = []
                view.forEachMember(JSONView.KeyList(asked)) { k, start, key, end in
                    var i = start
                    let len = view.bytes.withUnsafeBufferPointer { JSONView.varint($0, &i) }
                    #expect(i == key.lowerBound && len == key.count)
                    seen.append((k, String(decoding: view.bytes[key], as: UTF8.self), Array(view.bytes[key.upperBound..<end])))
                }
                #expect(seen.count == m.count)
                for ((k, name, value), (expectedName, expected)) in zip(seen, m) {
                    #expect(name == expectedName && value == expected.binary)
                    #expect(k == asked.firstIndex(of: name))
                }
            }
            if case .array(let a) = v {
                #expect(view.elements.count == a.count)
                for (element, value) in zip(view.elements, a) { #expect(element.encodedBytes == value.binary) }
                #expect(view.elementSpans.count == a.count)
                for (span, value) in zip(view.elementSpans, a) { #expect(Array(view.bytes[span]) == value.binary) }
            } else {
                #expect(view.elementSpans.isEmpty)
            }
        }
        // Each character that needs escaping at every position of plain runs (the count goes
        // eight bytes at a time until one appears).
        for special in ["\"", "\\", "\n", "\u{01}", "\u{1F}"] {
            for length in 0..<24 {
                for at in 0...length {
                    let plain = String(repeating: "aé ~", count: 6).prefix(length)
                    let v = JSON.string(String(plain.prefix(at)) + special + String(plain.dropFirst(at)))
                    #expect(JSONView(bytes: v.binary).compactByteCount == v.jsonBytes().count, "\(v.jsonString)")
                }
            }
        }
        for d in [0.0, -0.0, 1.0, -7.0, 19.99, 1e14, 999_999_999_999_999.0, 1e15, -1e15, 1.5e300, 5e-324] {
            #expect(JSONView(bytes: JSON.double(d).binary).compactByteCount == JSON.formatDouble(d).count, "\(d)")
        }
        #expect(JSONView(bytes: JSON.int(Int64.min).binary).compactByteCount == String(Int64.min).count)
        #expect(JSONView(bytes: JSON.double(1e300).binary).compactByteCount == JSON.formatDouble(1e300).count)
    }

    // MARK: Generation

    func randomString(_ rng: inout SplitMix) -> String {
        let alphabet: [String] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{01}", "é", "😀", "中", "\r\n", "x"]
        let n = Int.random(in: 0...(Bool.random(using: &rng) ? 6 : 40), using: &rng)
        return (0..<n).map { _ in alphabet.randomElement(using: &rng)! }.joined()
    }

    func randomValue(_ rng: inout SplitMix, depth: Int) -> JSON {
        switch Int.random(in: 0..<(depth > 4 ? 6 : 8), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .int(Int64.random(in: Int64.min...Int64.max, using: &rng) >> Int64.random(in: 0...63, using: &rng))
        case 3: return .double(Double(Int.random(in: -1_000_000...1_000_000, using: &rng)) / 1_000)
        case 4, 5: return .string(randomString(&rng))
        case 6: return .array((0..<Int.random(in: 0...6, using: &rng)).map { _ in randomValue(&rng, depth: depth + 1) })
        default:
            return .object((0..<Int.random(in: 0...6, using: &rng)).map { _ in (randomString(&rng), randomValue(&rng, depth: depth + 1)) })
        }
    }

    /// JSON text of `v`, with random whitespace and some characters escaped as `\u`.
    func write(_ v: JSON, _ rng: inout SplitMix) -> String {
        func ws() -> String { ["", "", " ", "\n", "\t ", "\r\n"].randomElement(using: &rng)! }
        func str(_ s: String) -> String {
            var out = "\""
            for u in s.unicodeScalars {
                switch u {
                case "\"": out += "\\\""
                case "\\": out += Bool.random(using: &rng) ? "\\\\" : "\\u005c"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                case "\r": out += "\\r"
                case "/": out += Bool.random(using: &rng) ? "/" : "\\/"
                case _ where u.value < 0x20: out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16)
                case _ where u.value > 0xFFFF && Bool.random(using: &rng):
                    let x = u.value - 0x10000
                    out += "\\u" + String(0xD800 + (x >> 10), radix: 16) + "\\u" + String(0xDC00 + (x & 0x3FF), radix: 16)
                default: out.unicodeScalars.append(u)
                }
            }
            return out + "\""
        }
        switch v {
        case .object(let m):
            return "{" + ws() + m.map { ws() + str($0.0) + ws() + ":" + ws() + write($0.1, &rng) + ws() }.joined(separator: ",") + "}"
        case .array(let a):
            return "[" + ws() + a.map { ws() + write($0, &rng) + ws() }.joined(separator: ",") + "]"
        case .string(let s): return str(s)
        default: return String(decoding: v.jsonBytes(), as: UTF8.self)
        }
    }
}
