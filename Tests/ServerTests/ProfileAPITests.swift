import EventLog
import Foundation
import HTTPTypes
import JSONCore
import Testing

/// The profile API on the real binary: read-your-writes with min_seq, scoped keys, 404s,
/// the timeline's pages, and the CLI over the same data.
@Suite struct ProfileAPITests {
    @Test func profilesAreServedWithReadYourWritesAndPagedTimelines() async throws {
        let scratch = Scratch("profiles")
        let write = try createKey(data: scratch.path, ["--source", "web", "--channel", "web"])
        let read = try createKey(data: scratch.path, ["--scope", "read", "--name", "dash"])
        let server = try await ServerProcess(data: scratch.path)
        defer { scratch.remove() }
        let port = server.port

        var batch: [JSON] = [
            message("page", ["anonymousId": "a-77", "name": "Home"]),
            message("identify", ["anonymousId": "a-77", "userId": "u77", "traits": ["email": "Lee@Example.com", "plan": "pro"]]),
        ]
        for i in 0..<5 {
            batch.append(message("track", ["userId": "u77", "event": "Order Completed",
                                           "properties": ["order_id": .string("o\(i)"), "revenue": .double(10.25)]]))
        }
        let r = try await HTTP.request(port: port, .post, "/v1/batch", headers: HTTP.basic(write), body: JSON.object([("batch", .array(batch))]).jsonBytes())
        #expect(r.status == 200)
        let seq = try #require(r.json["seq"]?.intValue)

        // min_seq: answered once the views hold the write.
        let p = try await HTTP.request(port: port, .get, "/v1/profiles/email:lee@example.com?min_seq=\(seq)", headers: HTTP.bearer(read))
        #expect(p.status == 200)
        #expect(p.json["computed"]?["order_count"]?.intValue == 5)
        #expect(p.json["computed"]?["total_revenue"]?.doubleValue == 51.25)
        #expect(p.json["traits"]?["plan"]?.stringValue == "pro")
        // Built-in segments: a first order within 30 days makes a new customer.
        #expect(p.json["segments"]?.arrayValue?.contains("new_customers") == true)
        let pid = try #require(p.json["profile_id"]?.stringValue)
        let byUser = try await HTTP.request(port: port, .get, "/v1/profiles/user_id:u77", headers: HTTP.bearer(read))
        #expect(byUser.json["profile_id"]?.stringValue == pid)
        let byID = try await HTTP.request(port: port, .get, "/v1/profiles/profile_id:\(pid)", headers: HTTP.bearer(read))
        #expect(byID.json["profile_id"]?.stringValue == pid)

        // The timeline, newest first, in pages.
        let page1 = try await HTTP.request(port: port, .get, "/v1/profiles/user_id:u77/events?limit=4", headers: HTTP.bearer(read))
        #expect(page1.status == 200)
        let seqs1 = page1.json["events"]?.arrayValue?.compactMap { $0["seq"]?.intValue } ?? []
        #expect(seqs1 == [seq, seq - 1, seq - 2, seq - 3])
        let before = try #require(page1.json["next_before"]?.intValue)
        let page2 = try await HTTP.request(port: port, .get, "/v1/profiles/user_id:u77/events?limit=4&before=\(before)", headers: HTTP.bearer(read))
        let seqs2 = page2.json["events"]?.arrayValue?.compactMap { $0["seq"]?.intValue } ?? []
        #expect(seqs2 == [seq - 4, seq - 5, seq - 6])
        #expect(page2.json["next_before"] == .null)

        // Errors: unknown id 404, bad id 400, no key 401, a write key is not a read key, a seq
        // the log will not reach in time 504.
        let missing = try await HTTP.request(port: port, .get, "/v1/profiles/email:nobody@example.com", headers: HTTP.bearer(read))
        #expect(missing.status == 404)
        #expect(missing.errorCode == "profile_not_found")
        #expect(!missing.text.contains("nobody"), "the identifier is not echoed")
        #expect(try await HTTP.request(port: port, .get, "/v1/profiles/nocolon", headers: HTTP.bearer(read)).status == 400)
        #expect(try await HTTP.request(port: port, .get, "/v1/profiles/user_id:u77").status == 401)
        #expect(try await HTTP.request(port: port, .get, "/v1/profiles/user_id:u77", headers: HTTP.bearer(write)).status == 401)
        let late = try await HTTP.request(port: port, .get, "/v1/profiles/user_id:u77?min_seq=\(seq + 1000)", headers: HTTP.bearer(read))
        #expect(late.status == 504)
        #expect(late.errorCode == "views_behind")

        // /metrics shows the fold.
        let metrics = try await HTTP.request(port: port, .get, "/metrics").text
        #expect(metrics.contains("touchstone_projection_lag_seconds"))
        #expect(metrics.contains(#"touchstone_projection_events_total{projection="profiles"} 7"#))
        // The tail is caught up: real time (the default), or raised where that is not permitted.
        let level = metrics.split(separator: "\n").first { $0.hasPrefix("touchstone_views_tail_scheduling{") && ($0.hasSuffix(" 1.0") || $0.hasSuffix(" 1")) }
        #expect(level?.contains(#"level="realtime""#) == true || level?.contains(#"level="raised""#) == true, "\(String(describing: level))")

        try await server.stop()
        // The CLI reads the same views.
        let cli = try touchstone(["profile", "--data", scratch.path, "email:LEE@example.com"])
        #expect(cli.status == 0)
        #expect(try JSON.parse(Array(cli.output.utf8))["profile_id"]?.stringValue == pid)
        let explain = try touchstone(["identity", "explain", "--data", scratch.path, "user_id:u77"])
        #expect(explain.status == 0)
        #expect(explain.output.contains("attached email:lee@example.com from traits.email"))
        #expect(try touchstone(["profile", "--data", scratch.path, "user_id:nobody"]).status == 1)
    }
}
