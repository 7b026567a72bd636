import EventLog
import Foundation
import Hummingbird
import JSONCore
import Testing

/// The tracking API end to end: the real binary on a free port, its log read back afterwards.
@Suite(.serialized)
struct TrackingAPITests {
    /// A server with one write key for source "web" (channel web).
    struct Running {
        let scratch: Scratch
        let server: ServerProcess
        let key: String
        var port: Int { server.port }
        var data: String { scratch.path }

        static func start(_ label: String, serveArguments: [String] = [], keyArguments: [String] = []) async throws -> Running {
            let scratch = Scratch(label)
            let key = try createKey(data: scratch.path, ["--source", "web", "--channel", "web"] + keyArguments)
            let server = try await ServerProcess(data: scratch.path, arguments: serveArguments)
            return Running(scratch: scratch, server: server, key: key)
        }

        func post(_ path: String, _ body: JSON, key: String? = nil) async throws -> Reply {
            try await HTTP.request(port: port, .post, path, headers: HTTP.basic(key ?? self.key), body: body.jsonBytes())
        }

        /// Stops the server and returns the stored events.
        func finish() async throws -> [Event] {
            try await server.stop()
            defer { scratch.remove() }
            return try storedEvents(data: data)
        }
    }

    @Test func eachCallTypeIsAppendedAndAcknowledgedWithItsSeq() async throws {
        let s = try await Running.start("calls")
        let calls: [(String, JSON)] = [
            ("identify", ["userId": "u1", "traits": ["email": "jane@example.com", "plan": "pro"]]),
            ("track", ["userId": "u1", "event": "Product Viewed", "properties": ["product_id": "p1"]]),
            ("page", ["anonymousId": "a1", "name": "Home", "properties": ["path": "/"]]),
            ("screen", ["userId": "u1", "name": "Cart"]),
            ("group", ["userId": "u1", "groupId": "g1", "traits": ["name": "Acme"]]),
            ("alias", ["userId": "u1", "previousId": "a1"]),
        ]
        var seqs: [Int64] = []
        for (type, fields) in calls {
            var body = fields
            body["messageId"] = .string("m-\(type)")
            let r = try await s.post("/v1/\(type)", body)
            #expect(r.status == 200, "\(type): \(r.text)")
            #expect(r.json["success"] == true)
            seqs.append(r.json["seq"]?.intValue ?? 0)
        }
        #expect(seqs == [1, 2, 3, 4, 5, 6])
        let events = try await s.finish()
        #expect(events.map(\.type.name) == calls.map(\.0))
        #expect(events.map(\.messageId) == calls.map { "m-\($0.0)" })
        #expect(events.allSatisfy { $0.source == "web" && $0.channel == "web" })
        #expect(events[0].traits?["email"] == "jane@example.com")
    }

    @Test func pathNamesTheCallAndWriteKeyInBodyAuthenticates() async throws {
        let s = try await Running.start("bodykey")
        let body: JSON = ["writeKey": .string(s.key), "userId": "u9", "event": "Signed Up", "type": "identify"]
        let r = try await HTTP.request(port: s.port, .post, "/v1/track", headers: [.contentType: "application/json"], body: body.jsonBytes())
        #expect(r.status == 200, "\(r.text)")
        let events = try await s.finish()
        #expect(events.count == 1)
        #expect(events.first?.type == .track)
        #expect(events.first?.body["writeKey"] == nil, "the write key is never stored")
    }

    @Test func batchAppendsValidMessagesAndListsRejectedOnesByIndex() async throws {
        let s = try await Running.start("batch")
        let batch: JSON = [
            "batch": [
                message("track", ["event": "Product Added"]),
                message("track", [:]),  // no event
                "not an object",
                message("identify", ["traits": ["plan": "pro"], "context": ["channel": "pos"]]),
                message("launch", ["event": "X"]),  // unknown type
            ],
            "context": ["library": ["name": "test"], "channel": "mobile"],
            "sentAt": "2026-03-01T12:00:00.000Z",
        ]
        let r = try await s.post("/v1/batch", batch)
        #expect(r.status == 200, "a batch with invalid messages still answers 200: \(r.text)")
        #expect(r.json["success"] == false)
        #expect(r.json["accepted"] == 2)
        #expect(r.json["seq"] == 2)
        let rejected = r.json["rejected"]?.arrayValue ?? []
        #expect(rejected.map { $0["index"]?.intValue ?? -1 } == [1, 2, 4])
        #expect(rejected.allSatisfy { $0["code"] == "invalid" })
        #expect(rejected.first?["message"]?.stringValue?.contains("event") == true, "the reason names the field")

        let log = try EventLog(directory: s.data + "/log", options: LogOptions())
        let letters = try log.deadLetters()
        #expect(letters.count == 3)
        #expect(letters.allSatisfy { $0.source == "web" && $0.code == "invalid" })
        let events = try await s.finish()
        #expect(events.count == 2)
        #expect(events[0].channel == "mobile", "the batch's context applies to each message")
        #expect(events[1].channel == "pos", "the message's own context wins")
        #expect(events[0].context?["library"]?["name"] == "test")
    }

    @Test func duplicateMessageIdIsAcknowledgedWithoutASecondAppend() async throws {
        let s = try await Running.start("dup")
        let m = message("track", ["event": "Checkout Started"], messageId: "retry-1")
        let first = try await s.post("/v1/track", m)
        let again = try await s.post("/v1/track", m)
        let inBatch = try await s.post("/v1/batch", ["batch": [m, m]])
        #expect(first.status == 200 && again.status == 200 && inBatch.status == 200)
        #expect(first.json["seq"] == 1)
        #expect(again.json["seq"] == 1, "a retry answers with the original seq")
        #expect(inBatch.json["seq"] == 1)
        #expect(try await s.finish().count == 1)
    }

    @Test func gzipBodiesAreInflated() async throws {
        let s = try await Running.start("gzip")
        let body: JSON = ["batch": [message("track", ["event": "Email Opened"]), message("page", ["name": "Home"])]]
        var headers = HTTP.basic(s.key)
        headers[.contentEncoding] = "gzip"
        let r = try await HTTP.request(port: s.port, .post, "/v1/batch", headers: headers, body: try HTTP.gzip(body.jsonBytes()))
        #expect(r.status == 200, "\(r.text)")
        #expect(try await s.finish().count == 2)
    }

    @Test func rudderStackStyleRequestIsAccepted() async throws {
        // As RudderStack's SDK sends: gzip, Basic auth without writeKey in the body, `channel`
        // at the top level, integrations {"All": true}, microsecond timestamps, identify traits
        // under context.traits.
        let s = try await Running.start("rudder")
        let body: JSON = [
            "batch": [
                ["type": "identify", "userId": "u77", "messageId": "rs-1", "channel": "server",
                 "context": ["traits": ["email": "Ann@Example.com", "firstName": "Ann"], "library": ["name": "analytics-python"]],
                 "integrations": ["All": true], "timestamp": "2026-03-01T12:00:00.123456+00:00",
                 "originalTimestamp": "2026-03-01T12:00:00.123456+00:00", "sentAt": "2026-03-01T12:00:01.654321+00:00"],
                ["type": "track", "userId": "u77", "event": "Order Completed", "messageId": "rs-2", "channel": "server",
                 "properties": ["order_id": "o1", "total": 42.5, "currency": "USD"], "integrations": ["All": true],
                 "timestamp": "2026-03-01T12:00:02.000001+00:00", "sentAt": "2026-03-01T12:00:02.500000+00:00"],
            ],
            "sentAt": "2026-03-01T12:00:03.000000+00:00",
        ]
        var headers = HTTP.basic(s.key)
        headers[.contentEncoding] = "gzip"
        let r = try await HTTP.request(port: s.port, .post, "/v1/batch", headers: headers, body: try HTTP.gzip(body.jsonBytes()))
        #expect(r.status == 200, "RudderStack treats anything but 200 as failure: \(r.text)")
        #expect(r.json["success"] == true)
        let events = try await s.finish()
        #expect(events.map(\.messageId) == ["rs-1", "rs-2"])
        #expect(events[0].context?["traits"]?["email"] == "Ann@Example.com")
        #expect(events[1].properties?["total"] == 42.5)
    }

    @Test func missingWrongAndRevokedKeysAreRefusedWith401() async throws {
        let s = try await Running.start("keys")
        let body = message("track", ["event": "X"]).jsonBytes()
        let missing = try await HTTP.request(port: s.port, .post, "/v1/track", body: body)
        let wrong = try await HTTP.request(port: s.port, .post, "/v1/track", headers: HTTP.basic("tsw_not-a-key"), body: body)
        let malformed = try await HTTP.request(port: s.port, .post, "/v1/track", headers: [.authorization: "Basic %%%"], body: body)
        let apiKey = try createKey(data: s.data, ["--scope", "read", "--name", "reader"])
        let wrongKind = try await HTTP.request(port: s.port, .post, "/v1/track", headers: HTTP.basic(apiKey), body: body)
        for r in [missing, wrong, malformed, wrongKind] {
            #expect(r.status == 401, "\(r.text)")
            #expect(r.errorCode == "unauthorized")
            #expect(r.json["success"] == false)
        }
        #expect(wrong.json["error"]?["message"] == "unknown write key")

        // A key created while the server runs works at once; revoked, it is refused at once.
        let second = try createKey(data: s.data, ["--source", "pos-store", "--channel", "pos"])
        #expect(try await s.post("/v1/track", message("track", ["event": "Y"]), key: second).status == 200)
        #expect(try touchstone(["keys", "revoke", "--data", s.data, "pos-store"]).status == 0)
        let revoked = try await s.post("/v1/track", message("track", ["event": "Z"]), key: second)
        #expect(revoked.status == 401)
        #expect(revoked.json["error"]?["message"] == "the write key was revoked")
        #expect(!s.server.log.contains(second) && !s.server.log.contains(s.key), "keys never reach the log")
        let events = try await s.finish()
        #expect(events.map(\.source) == ["pos-store"])
    }

    @Test func oversizedMessageAndBodyAnswer413AndAreKeptAsDeadLetters() async throws {
        let s = try await Running.start("large", serveArguments: [], keyArguments: [])
        let big = String(repeating: "x", count: 40 * 1024)
        let single = try await s.post("/v1/track", message("track", ["event": "Big", "properties": ["blob": .string(big)]]))
        #expect(single.status == 413)
        #expect(single.errorCode == "too_large")
        // In a batch, the oversized message is rejected by index; the rest are appended.
        let batch = try await s.post("/v1/batch", ["batch": [message("track", ["event": "Small"]),
                                                             message("track", ["event": "Big", "properties": ["blob": .string(big)]])]])
        #expect(batch.status == 200)
        #expect(batch.json["rejected"]?[0]?["index"] == 1)
        #expect(batch.json["rejected"]?[0]?["code"] == "too_large")
        // A message's size is its size as sent, whitespace included (as a single call's is its
        // body's): padded past the limit, it is refused with that size; the next one is taken.
        let padded = #"{"type":"track","userId":"u-pad","event":"Padded""# + String(repeating: " ", count: 33 * 1024) + "}"
        let fine = #"{"type":"track","userId":"u-pad","event":"Fine"}"#
        let raw = try await HTTP.request(port: s.port, .post, "/v1/batch", headers: HTTP.basic(s.key),
                                         body: Array("{\"batch\": [ \(padded) ,\n \(fine) ]}".utf8))
        #expect(raw.status == 200)
        #expect(raw.json["rejected"]?[0]?["index"] == 0)
        #expect(raw.json["rejected"]?[0]?["message"] == .string("message is \(padded.utf8.count) bytes, over the 32768-byte limit"))
        #expect(raw.json["rejected"]?[1] == nil)
        // A body over 4 MiB: 413, and its first 64 KiB kept.
        let huge = Array(repeating: UInt8(ascii: "a"), count: 5 << 20)
        let body = try await HTTP.request(port: s.port, .post, "/v1/batch", headers: HTTP.basic(s.key), body: huge)
        #expect(body.status == 413)
        let log = try EventLog(directory: s.data + "/log", options: LogOptions())
        let letters = try log.deadLetters()
        #expect(letters.map(\.code) == ["too_large", "too_large", "too_large", "too_large"])
        #expect(letters.last?.raw.count == 64 * 1024)
        #expect(try await s.finish().map { $0.view["event"]?.stringValue } == ["Small", "Fine"])
    }

    @Test func malformedAndDeeplyNestedBodiesAnswer400() async throws {
        let s = try await Running.start("malformed")
        let truncated = try await HTTP.request(port: s.port, .post, "/v1/track", headers: HTTP.basic(s.key),
                                               body: Array(#"{"userId":"u1","event":"X""#.utf8))
        #expect(truncated.status == 400)
        #expect(truncated.errorCode == "malformed_json")
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        let nested = try await HTTP.request(port: s.port, .post, "/v1/batch", headers: HTTP.basic(s.key),
                                            body: Array(#"{"batch":[{"type":"track","event":"X","userId":"u","properties":{"a":\#(deep)}}]}"#.utf8))
        #expect(nested.status == 400)
        #expect(nested.errorCode == "malformed_json")
        let notObject = try await HTTP.request(port: s.port, .post, "/v1/batch", headers: HTTP.basic(s.key), body: Array("[1,2]".utf8))
        #expect(notObject.status == 400)
        #expect(notObject.errorCode == "invalid")
        let noBatch = try await s.post("/v1/batch", ["messages": []])
        #expect(noBatch.status == 400)
        let log = try EventLog(directory: s.data + "/log", options: LogOptions())
        #expect(try log.deadLetters().map(\.code) == ["malformed_json", "malformed_json", "invalid", "invalid"])
        #expect(try await s.finish().isEmpty)
    }

    @Test func gzipBombIsStoppedAtTheInflatedLimit() async throws {
        let s = try await Running.start("bomb")
        // 64 MiB of zeros compress to about 64 KiB: well under the body limit, far over the inflated one.
        let bomb = try HTTP.gzip(Array(repeating: 0x20, count: 64 << 20))
        #expect(bomb.count < 200 * 1024)
        var headers = HTTP.basic(s.key)
        headers[.contentEncoding] = "gzip"
        let r = try await HTTP.request(port: s.port, .post, "/v1/batch", headers: headers, body: bomb)
        #expect(r.status == 413)
        #expect(r.json["error"]?["message"]?.stringValue?.contains("inflates") == true)
        let corrupt = try await HTTP.request(port: s.port, .post, "/v1/batch", headers: headers, body: Array("not gzip".utf8))
        #expect(corrupt.status == 400)
        let log = try EventLog(directory: s.data + "/log", options: LogOptions())
        #expect(try log.deadLetters().map(\.code) == ["too_large", "malformed_body"])
        _ = try await s.finish()
    }

    @Test func sourceOverItsRateLimitGets429WithRetryAfter() async throws {
        let s = try await Running.start("rate", keyArguments: ["--rate-limit", "5"])
        let batch: JSON = ["batch": .array((0..<8).map { _ in message("track", ["event": "X"]) })]
        let first = try await s.post("/v1/batch", batch)
        #expect(first.status == 200)
        let second = try await s.post("/v1/batch", batch)
        #expect(second.status == 429)
        #expect(second.errorCode == "rate_limited")
        #expect(second.headers[.retryAfter] == "1")
        #expect(try await s.finish().count == 8, "a refused request appends nothing")
    }

    @Test func metricsExportEveryFamilyWithHelp() async throws {
        let s = try await Running.start("metrics")
        _ = try await s.post("/v1/batch", ["batch": [message("track", ["event": "X"]), message("track", [:])]])
        let r = try await HTTP.request(port: s.port, .get, "/metrics")
        #expect(r.status == 200)
        let text = r.text
        for family in ["touchstone_events_appended_total", "touchstone_events_rejected_total", "touchstone_batch_messages",
                       "touchstone_commit_duration_seconds", "touchstone_log_bytes", "touchstone_log_map_used_ratio",
                       "touchstone_http_requests_total", "touchstone_heap_allocated_bytes", "touchstone_heap_resident_bytes"] {
            #expect(text.contains("# HELP \(family) "), "\(family) has no HELP line")
        }
        // jemalloc is the process's allocator (its statistics exist, and count this heap).
        let allocated = text.split(separator: "\n").first { $0.hasPrefix("touchstone_heap_allocated_bytes ") }
        #expect((allocated?.split(separator: " ").last.flatMap { Double($0) } ?? 0) > 1_000_000)
        #expect(text.contains(#"touchstone_events_appended_total{source="web",channel="web",type="track"} 1"#))
        #expect(text.contains(#"touchstone_events_rejected_total{source="web",channel="web",type="track",reason="invalid"} 1"#))
        let types = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.count
        let helps = text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.count
        #expect(types == helps, "every metric has a HELP line")
        _ = try await s.finish()
    }

    @Test func everyAnswerCarriesARequestId() async throws {
        let s = try await Running.start("reqid")
        let ok = try await HTTP.request(port: s.port, .get, "/healthz")
        let missing = try await HTTP.request(port: s.port, .get, "/no/such/route")
        #expect(ok.headers[.init("X-Request-Id")!]?.isEmpty == false)
        #expect(missing.status == 404)
        #expect(missing.errorCode == "not_found")
        let id = missing.headers[.init("X-Request-Id")!] ?? "?"
        try await s.server.stop()
        #expect(s.server.log.contains(id), "the request id is in the server's log lines")
        s.scratch.remove()
    }
}
