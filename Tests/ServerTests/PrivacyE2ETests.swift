import EventLog
import Foundation
import HTTPTypes
import JSONCore
import Testing

/// Data rights on the real binary: erasure over HTTP, suppression of new events, the subject
/// export, the audit log, and `touchstone compact` leaving no trace of the erased customer.
@Suite struct PrivacyE2ETests {
    @Test func eraseOverHTTPThenCompactLeavesNoTrace() async throws {
        let scratch = Scratch("privacy")
        defer { scratch.remove() }
        let write = try createKey(data: scratch.path, ["--source", "web", "--channel", "web"])
        let read = try createKey(data: scratch.path, ["--scope", "read", "--name", "dash"])
        let admin = try createKey(data: scratch.path, ["--scope", "admin", "--name", "dpo"])
        let server = try await ServerProcess(data: scratch.path)
        let port = server.port

        // Two customers; the first is erased. Enough events for a trained zstd dictionary.
        var batch: [JSON] = []
        for i in 0..<2500 {
            let who = i % 2 == 0 ? "gone" : "stays"
            batch.append(message("track", ["userId": .string("user-\(who)"), "anonymousId": .string("anon-\(who)-\(i % 7)"),
                                           "event": "Product Viewed",
                                           "context": ["traits": ["email": .string("\(who)@example.com"), "phone": .string(who == "gone" ? "+1 212 555 0199" : "+1 212 555 0100")]],
                                           "properties": ["product_id": .string("p\(i % 50)"), "category": "shoes"]]))
        }
        var lastSeq: Int64 = 0
        for chunk in stride(from: 0, to: batch.count, by: 500) {
            let r = try await HTTP.request(port: port, .post, "/v1/batch", headers: HTTP.basic(write),
                                           body: JSON.object([("batch", .array(Array(batch[chunk..<min(chunk + 500, batch.count)])))]).jsonBytes())
            #expect(r.status == 200)
            lastSeq = r.json["seq"]?.intValue ?? 0
        }
        // A malformed line mentioning the customer lands in the dead letters.
        let bad = try await HTTP.request(port: port, .post, "/v1/track", headers: HTTP.basic(write),
                                         body: Array(#"{"userId":"user-gone","event":"X","properties":{"note":"gone@example.com"}"#.utf8))
        #expect(bad.status == 400)
        let before = try await HTTP.request(port: port, .get, "/v1/profiles/email:gone@example.com?min_seq=\(lastSeq)", headers: HTTP.bearer(read))
        #expect(before.status == 200)

        // Erasure needs an admin key; then the profile is gone at once.
        #expect(try await HTTP.request(port: port, .delete, "/v1/profiles/email:gone@example.com", headers: HTTP.bearer(read)).status == 403)
        let export = try await HTTP.request(port: port, .get, "/v1/profiles/user_id:user-gone/export", headers: HTTP.bearer(admin))
        #expect(export.status == 200)
        #expect(export.json["events"]?.arrayValue?.count == 1250)
        let erased = try await HTTP.request(port: port, .delete, "/v1/profiles/email:gone@example.com", headers: HTTP.bearer(admin))
        #expect(erased.status == 200)
        // user, email, phone and 5 of the 7 anonymous ids (the limit per profile: the other two never joined it)
        #expect(erased.json["identifiers_suppressed"]?.intValue == 8)
        for ident in ["email:gone@example.com", "user_id:user-gone", "anonymous_id:anon-gone-3"] {
            #expect(try await HTTP.request(port: port, .get, "/v1/profiles/\(ident)", headers: HTTP.bearer(read)).status == 404)
        }
        #expect(try await HTTP.request(port: port, .get, "/v1/profiles/email:stays@example.com", headers: HTTP.bearer(read)).status == 200)
        // New events for the erased customer are refused and kept as dead letters.
        let again = try await HTTP.request(port: port, .post, "/v1/track", headers: HTTP.basic(write),
                                           body: message("track", ["userId": "user-gone", "event": "Back"]).jsonBytes())
        #expect(again.status == 403)
        #expect(again.errorCode == "suppressed")
        let audit = try await HTTP.request(port: port, .get, "/v1/admin/audit", headers: HTTP.bearer(admin))
        let actions = audit.json["audit"]?.arrayValue?.compactMap { $0["action"]?.stringValue } ?? []
        #expect(actions == ["key-create", "key-create", "key-create", "export-subject", "erase"])
        #expect(audit.json["audit"]?[4]?["actor"]?.stringValue == "key:dpo")

        // compact refuses to run beside the server; after it stops, it removes every trace.
        #expect(try touchstone(["compact", "--data", scratch.path]).status != 0)
        try await server.stop()
        let compact = try touchstone(["compact", "--data", scratch.path])
        #expect(compact.status == 0, "\(compact.output)")
        #expect(compact.output.contains("verify: ok"))

        let log = try EventLog(directory: scratch.path + "/log")
        var kept: [UInt64] = []
        let secrets = ["gone@example.com", "user-gone", "anon-gone", "2125550199", "212 555 0199"].map { Array($0.utf8) }
        try log.forEach { e in
            kept.append(e.seq)
            let bytes = e.payload + e.body.jsonBytes()
            for s in secrets { #expect(!contains(bytes, s), "seq \(e.seq) holds \(String(decoding: s, as: UTF8.self))") }
            return true
        }
        // Every other customer's event kept its seq; the erasure event stays (hashes only).
        #expect(kept.count == 1250 + 1)
        #expect(kept.dropLast().allSatisfy { $0 % 2 == 0 })
        for letter in try log.deadLetters(limit: 1000) {
            for s in secrets { #expect(!contains(letter.raw, s), "a dead letter holds the erased customer") }
        }
        #expect(try log.verify().ok)
        // The dictionaries and the log file's pages hold no trace either.
        let file = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/log/data.mdb"))
        for s in secrets.prefix(2) { #expect(file.range(of: Data(s)) == nil, "the log file holds \(String(decoding: s, as: UTF8.self)) in the clear") }
        let cli = try touchstone(["profile", "--data", scratch.path, "email:stays@example.com"])
        #expect(cli.status == 0)
        #expect(try touchstone(["profile", "--data", scratch.path, "email:gone@example.com"]).status == 1)
        // A backup made afterwards holds no trace either.
        #expect(try touchstone(["backup", "--data", scratch.path, scratch.path + "/backup"]).status == 0)
        try EventLog(directory: scratch.path + "/backup/log").forEach { e in
            for s in secrets { #expect(!contains(e.payload + e.body.jsonBytes(), s), "the backup's seq \(e.seq) holds the erased customer") }
            return true
        }
        // The CLI's subject export and erasure.
        let exportCLI = try touchstone(["export-subject", "--data", scratch.path, "email:stays@example.com"])
        #expect(exportCLI.status == 0)
        #expect(try JSON.parse(Array(exportCLI.output.utf8))["events"]?.arrayValue?.count == 1250)
        let erase = try touchstone(["erase", "--data", scratch.path, "user_id:user-stays"])
        #expect(erase.status == 0, "\(erase.output)")
        #expect(try touchstone(["profile", "--data", scratch.path, "email:stays@example.com"]).status == 1)
        #expect(try touchstone(["erase", "--data", scratch.path, "user_id:user-stays"]).status == 1, "nothing left to erase")
        let auditCLI = try touchstone(["audit", "--data", scratch.path])
        for action in ["\tcompact\t", "\texport-subject\t", "\terase\t"] { #expect(auditCLI.output.contains(action), "\(action)") }
        #expect(auditCLI.output.contains("cli:"))
    }

    @Test func compactDropsExpiredEventsAndTheViewsKeepTheirAggregates() throws {
        let scratch = Scratch("retention")
        defer { scratch.remove() }
        let now = Date()
        let recent = ISO8601DateFormatter().string(from: now.addingTimeInterval(-86_400))
        var lines: [String] = []
        for i in 0..<40 {
            lines.append(#"{"type":"page","userId":"u1","name":"Old \#(i)","timestamp":"2020-01-0\#(1 + i % 9)T10:00:00Z"}"#)
            lines.append(#"{"type":"track","userId":"u1","event":"Order Completed","properties":{"order_id":"o\#(i)","revenue":10},"timestamp":"\#(recent)"}"#)
        }
        let file = scratch.path + "/in.ndjson"
        try FileManager.default.createDirectory(atPath: scratch.path, withIntermediateDirectories: true)
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try touchstone(["import", "--data", scratch.path, file]).status == 0)
        let config = scratch.path + "/touchstone.json"
        try #"{"retention":{"page":"365d"}}"#.write(toFile: config, atomically: true, encoding: .utf8)
        let r = try touchstone(["compact", "--data", scratch.path, "--config", config])
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("40 expired"), "\(r.output)")
        let log = try EventLog(directory: scratch.path + "/log")
        var types: [EventType: Int] = [:]
        var seqs: [UInt64] = []
        try log.forEach { e in types[e.type, default: 0] += 1; seqs.append(e.seq); return true }
        #expect(types[.page] == nil && types[.track] == 40)
        #expect(seqs == stride(from: 2, through: 80, by: 2).map { UInt64($0) }, "the kept events keep their seqs")
        #expect(try log.verify().ok)
        // The views folded the expired pages before they went: the profile still counts them.
        let profile = try touchstone(["profile", "--data", scratch.path, "user_id:u1"])
        #expect(profile.status == 0)
        let computed = try JSON.parse(Array(profile.output.utf8))["computed"]
        #expect(computed?["event_count"]?.intValue == 80)
        #expect(computed?["order_count"]?.intValue == 40)
        #expect(try touchstone(["compact", "--data", scratch.path, "--retention", "page=soon"]).status != 0)
    }

    func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] && Array(haystack[i..<i + needle.count]) == needle {
            return true
        }
        return false
    }
}
