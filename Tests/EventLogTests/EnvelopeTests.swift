import EventLog
import Foundation
import JSONCore
import Testing

@Suite struct Timestamps {
    @Test(arguments: [
        ("2025-03-01T12:00:00Z", 1_740_830_400_000_000),
        ("2025-03-01T12:00:00.123Z", 1_740_830_400_123_000),
        ("2025-03-01T12:00:00.123456Z", 1_740_830_400_123_456),
        ("2025-03-01T12:00:00.561+00:00", 1_740_830_400_561_000),
        ("2025-03-01T14:00:00+02:00", 1_740_830_400_000_000),
        ("2025-03-01T07:00:00.000-0500", 1_740_830_400_000_000),
    ] as [(String, Int64)])
    func parsesTheFormsClientsSend(_ text: String, _ micros: Int64) {
        #expect(Timestamp.parse(text) == micros)
    }

    @Test(arguments: ["2025-03-01", "2025-02-30T00:00:00Z", "2025-03-01T12:00:00", "yesterday", "2025-03-01T25:00:00Z"])
    func rejectsWhatIsNotADateTime(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    @Test func formatsMillisecondsOrMicroseconds() {
        #expect(Timestamp.format(1_740_830_400_123_000) == "2025-03-01T12:00:00.123Z")
        #expect(Timestamp.format(1_740_830_400_123_456) == "2025-03-01T12:00:00.123456Z")
        #expect(Timestamp.parse(Timestamp.format(-1)) == -1)
        // As bytes, the same text, the slow years (outside 0–9999) included.
        #expect(Timestamp.format(253_402_300_800_000_000) == "10000-01-01T00:00:00.000Z")
        #expect(Timestamp.format(-62_167_219_200_000_001) == "-0001-12-31T23:59:59.999999Z")
        for t: Micros in [0, -1, 1_740_830_400_123_000, 253_402_300_799_999_999, 253_402_300_800_000_000, -62_167_219_200_000_000, -62_167_219_200_000_001] {
            var bytes: [UInt8] = []
            Timestamp.withText(t) { bytes = Array($0) }
            #expect(bytes == Array(Timestamp.format(t).utf8), "\(t)")
            // Written into a buffer: the same bytes for years 0–9999; nothing outside them.
            var out = [UInt8](repeating: 0, count: Timestamp.maxTextCount)
            let n = out.withUnsafeMutableBufferPointer { Timestamp.write(t, to: $0.baseAddress!) }
            #expect(Array(out[..<n]) == ((-62_167_219_200_000_000..<253_402_300_800_000_000).contains(t) ? bytes : []), "\(t)")
            if (-62_167_219_200_000_000..<253_402_300_800_000_000).contains(t) { #expect(Timestamp.parse(Timestamp.format(t)) == t, "\(t)") }  // years 0–9999
        }
    }

    @Test func formatsAnyTimeLikeFoundationAndParsesBack() {
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        iso.timeZone = TimeZone(identifier: "UTC")
        var rng = SystemRandomNumberGenerator()
        for i in 0..<20_000 {
            // From 1900 to 2200, half whole milliseconds, half with microseconds.
            var t = Micros.random(in: -2_208_988_800_000_000...7_258_118_400_000_000, using: &rng)
            if i % 2 == 0 { t -= t % 1000 }
            let text = Timestamp.format(t)
            #expect(Timestamp.parse(text) == t, "\(t) → \(text)")
            let millis = t - ((t % 1000) + 1000) % 1000
            let reference = iso.string(from: Date(timeIntervalSince1970: Double(millis / 1000) / 1000))
            #expect(text.prefix(23) == reference.prefix(23), "\(t): \(text) vs Foundation \(reference)")
        }
    }

    @Test func formatsDaysLikeTheDatePartOfATimestamp() {
        #expect(Timestamp.formatDay(20_148) == "2025-03-01")
        for day in stride(from: -800_000, through: 2_900_000, by: 997) {
            #expect(Timestamp.formatDay(day) == String(Timestamp.format(Micros(day) * 86_400_000_000).prefix(10)), "day \(day)")
        }
    }
}

@Suite struct Envelope {
    @Test func correctsClientClockSkewWithSentAt() throws {
        // The client's clock is 1 hour fast: sent at 13:00 by its clock, received at 12:00.
        var m = track("m1", at: "2025-03-01T12:59:00.000Z")
        m["sentAt"] = "2025-03-01T13:00:00.000Z"
        let received = Timestamp.parse("2025-03-01T12:00:00Z")!
        let p = try prepared(m, receivedAt: received)
        #expect(p.timestamp == Timestamp.parse("2025-03-01T11:59:00Z"))
        let body = try JSON.decodeBinary(p.payload)
        #expect(body["originalTimestamp"]?.stringValue == "2025-03-01T12:59:00.000Z")
    }

    @Test func usesBatchSentAtWhenTheMessageHasNone() throws {
        let received = Timestamp.parse("2025-03-01T12:00:00Z")!
        let p = try builder.prepare(message: track("m1", at: "2025-03-01T12:00:10Z"), encodedSize: nil, source: web,
                                    receivedAt: received, batchSentAt: Timestamp.parse("2025-03-01T12:00:20Z")).get()
        #expect(p.timestamp == received - 10_000_000)
    }

    @Test func withoutATimestampTheEventHappenedWhenReceived() throws {
        var m = track("m1")
        m["timestamp"] = nil
        #expect(try prepared(m, receivedAt: 42).timestamp == 42)
    }

    @Test func generatesAMessageIdWhenAbsentAndNeverStoresTheWriteKey() throws {
        var m = track("x")
        m["messageId"] = nil
        m["writeKey"] = "secret-key"
        let body = try JSON.decodeBinary(try prepared(m).payload)
        #expect((body["messageId"]?.stringValue?.count ?? 0) >= 32)
        #expect(body["writeKey"] == nil)
        #expect(!body.jsonString.contains("secret-key"))
    }

    @Test func channelComesFromContextElseTheSource() throws {
        var m = track("m1")
        #expect(try JSON.decodeBinary(try prepared(m).payload)["channel"] == "web")
        m["context"] = ["ip": "1.2.3.4"]
        let p = try builder.prepare(message: m, encodedSize: nil, source: SourceContext(name: "till", channel: "pos"), receivedAt: 1).get()
        #expect(try JSON.decodeBinary(p.payload)["channel"] == "pos")
        #expect(try JSON.decodeBinary(p.payload)["source"] == "till")
    }

    @Test func nullAnonymousIdIsAbsentAsAnalyticsPythonSendsIt() throws {
        var m = track("m1")
        m["anonymousId"] = .null
        let p = try prepared(m)
        let e = Event(seq: 1, type: p.type, timestamp: p.timestamp, receivedAt: p.receivedAt, body: try JSON.decodeBinary(p.payload))
        #expect(e.anonymousId == nil)
        #expect(e.userId == "u1")
    }

    @Test func rejectsMalformedJSONNamingTheOffset() {
        let bytes = Array(#"{"type":"track","event":}"#.utf8)
        let r = bytes.withUnsafeBufferPointer { builder.prepare(bytes: $0, source: web, receivedAt: 1) }
        guard case .failure(let rejection) = r else { Issue.record("accepted"); return }
        #expect(rejection.code == "malformed_json")
        #expect(rejection.message.contains("byte"))
    }

    @Test func rejectsOversizedMessages() {
        let m = track("m1", properties: ["blob": .string(String(repeating: "x", count: 33 * 1024))])
        guard case .failure(let r) = builder.prepare(message: m, encodedSize: nil, source: web, receivedAt: 1) else {
            Issue.record("accepted"); return
        }
        #expect(r.code == "too_large")
    }

    @Test func trackWithoutEventIsRejectedNamingTheField() {
        var m = track("m1")
        m["event"] = nil
        guard case .failure(let r) = builder.prepare(message: m, encodedSize: nil, source: web, receivedAt: 1) else {
            Issue.record("accepted"); return
        }
        #expect(r.code == "invalid")
        #expect(r.message.contains("event"))
    }

    @Test func aMessageNeedsAUserOrAnonymousId() {
        var m = track("m1")
        m["userId"] = .null
        guard case .failure(let r) = builder.prepare(message: m, encodedSize: nil, source: web, receivedAt: 1) else {
            Issue.record("accepted"); return
        }
        #expect(r.message.contains("userId") || r.message.contains("anonymousId"))
    }
}

/// A line prepared from its text (`prepare(bytes:)`: transcoded, as imports and the API do)
/// and the same message prepared from a parsed tree (`prepare(message:)`, for tools and
/// tests) must store the same, rejections included.
@Suite struct BinaryEnvelope {
    static let messages: [String] = [
        #"{"type":"track","messageId":"m1","userId":"u1","event":"Product Viewed","timestamp":"2025-03-01T12:00:00.000Z","properties":{"product_id":"p1","price":19.99},"context":{"channel":"web","ip":"10.0.0.1"}}"#,
        #"{"type":"identify","messageId":"m2","anonymousId":"a1","traits":{"email":"x@y.z","name":"Zoë"},"originalTimestamp":"2025-03-01T12:00:00Z","sentAt":"2025-03-01T12:00:05Z"}"#,
        #"{"type":"page","messageId":"m3","userId":"u1","name":"Home","timestamp":"2025-03-01T12:00:00Z","sentAt":"2025-03-01T12:00:05Z"}"#,
        #"{"type":"track","messageId":123,"userId":"u1","event":"Order Completed","properties":{"order_id":"o1","total":10,"products":[{"product_id":"p","price":"5.00"}]},"timestamp":"2025-03-01T12:00:00+02:00"}"#,
        #"{"type":"track","messageId":"m5","userId":"u1","event":"E","writeKey":"secret","seq":9,"receivedAt":"x","source":"evil","channel":"evil","type":"track"}"#,
        #"{"type":"alias","messageId":"m6","userId":"u2","previousId":"u1","context":{"channel":"app"},"context":{"channel":"pos"}}"#,
        #"{"type":"screen","messageId":"m7","anonymousId":"a","name":"S","timestamp":"2025-03-01T12:00:00Z","timestamp":"2025-03-02T12:00:00Z","sentAt":"2025-03-02T12:00:01Z"}"#,
        #"{"type":"group","messageId":"m8","userId":"u","groupId":"g","traits":{"employees":12},"originalTimestamp":5,"timestamp":"2025-03-01T12:00:00Z"}"#,
        #"{"type":"track","messageId":"","userId":"u1","event":"Empty id"}"#,
        // Integers whose binary form takes all ten varint bytes, before other members.
        #"{"type":"track","messageId":"m9","properties":{"big":9223372036854775807,"neg":-9223372036854775808,"after":"x"},"userId":"u9","event":"Big"}"#,
        // Containers of 128 bytes and more, which carry their size in memory (not in the log).
        #"{"type":"track","messageId":"m10","userId":"u10","event":"Order Completed","properties":{"order_id":"o10","total":120.5,"products":[{"product_id":"p1","sku":"SKU-0001","name":"A rather long product name","category":"Kitchen","price":40.25,"quantity":2},{"product_id":"p2","sku":"SKU-0002","name":"Another long product name","category":"Garden","price":20,"quantity":2}]},"context":{"channel":"web","ip":"10.0.0.1","library":{"name":"analytics.js","version":"4.1.0"},"page":{"path":"/checkout","url":"https://shop.example.com/checkout","title":"Checkout"},"userAgent":"Mozilla/5.0 (X11; Linux x86_64)"},"timestamp":"2025-03-01T12:00:00Z"}"#,
        // Rejections: the same code and reason either way.
        #"{"type":"track","messageId":"r1","userId":"u1"}"#,
        #"{"type":"track","messageId":"r2","event":"No ids"}"#,
        #"{"type":"fly","messageId":"r3","userId":"u1"}"#,
        #"{"messageId":"r4","userId":"u1"}"#,
        #"{"type":"system","messageId":"r5","userId":"u1"}"#,
        #"{"type":"track","messageId":"r6","userId":"u1","event":"E","timestamp":"yesterday"}"#,
        #"{"type":"track","messageId":"r7","userId":"u1","event":"E","sentAt":"soon"}"#,
        #"{"type":"track","messageId":"r8","userId":"u1","event":"Order Completed","properties":{"total":"lots"}}"#,
        #"[1,2]"#, #""text""#,
    ]

    @Test(arguments: [true, false])
    func theBinaryPathStoresWhatTheTreePathStores(_ correctSkew: Bool) throws {
        var b = builder
        b.correctClockSkew = correctSkew
        let received: Micros = 1_740_830_500_000_000
        for text in Self.messages {
            let bytes = Array(text.utf8)
            let direct = bytes.withUnsafeBufferPointer { b.prepare(bytes: $0, source: web, receivedAt: received) }
            let viaTree = b.prepare(message: try JSON.parse(bytes), encodedSize: bytes.count, source: web, receivedAt: received)
            switch (direct, viaTree) {
            case let (.success(x), .success(y)):
                #expect(x.type == y.type && x.timestamp == y.timestamp && x.receivedAt == y.receivedAt && x.inputBytes == y.inputBytes, "\(text)")
                if JSON.lenient(text)["messageId"]?.scalarText?.isEmpty == false {
                    #expect(x.messageId == y.messageId && x.dedupeHash == y.dedupeHash, "\(text)")
                    #expect(x.payload == y.payload, "payloads differ for \(text)")
                    // The log's form: no container carries its size.
                    #expect(x.payload == (try JSON.decodeBinary(x.payload)).unsizedBinary, "\(text)")
                } else {
                    // A generated id: everything else is the same.
                    var px = try JSON.decodeBinary(x.payload), py = try JSON.decodeBinary(y.payload)
                    #expect(px["messageId"]?.stringValue == x.messageId && UUID(uuidString: x.messageId) != nil)
                    px["messageId"] = nil; py["messageId"] = nil
                    #expect(px.jsonBytes() == py.jsonBytes(), "\(text)")
                }
            case let (.failure(x), .failure(y)):
                #expect(x == y, "\(text)")
            default:
                Issue.record("one path accepted and the other refused \(text): \(direct) vs \(viaTree)")
            }
        }
    }
}

extension JSON {
    fileprivate static func lenient(_ text: String) -> JSON { (try? JSON.parse(Array(text.utf8))) ?? .null }
}
