import EventLog
import Foundation
import HTTPTypes
import JSONCore
import Testing

/// The `touchstone` binary for these tests: `$TOUCHSTONE_BIN_DIR/touchstone`, else the repository's `.build/debug`.
private let segmentBinary: String = {
    if let dir = ProcessInfo.processInfo.environment["TOUCHSTONE_BIN_DIR"] { return dir + "/touchstone" }
    return touchstoneBinary
}()

private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: segmentBinary)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// `touchstone serve` on a free port (the binary above); stopped with SIGTERM.
private final class SegmentServer: @unchecked Sendable {
    let process = Process()
    let outPath: String
    var port = 0

    init(data: String) async throws {
        outPath = data + "/serve-seg.out"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: segmentBinary)
        process.arguments = ["serve", "--data", data, "--port", "0"]
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = out.split(separator: "\n").first(where: { $0.contains("listening on http://") }),
               let p = line.split(separator: ":").last.flatMap({ Int($0) }) {
                port = p
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        if port == 0 { throw ServerFailure(message: "touchstone serve did not start") }
    }

    func stop() async throws {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
}

@Suite struct SegmentAPITests {
    @Test func segmentsAndKPIsOverHTTPAndTheCLI() async throws {
        let scratch = Scratch("segments")
        defer { scratch.remove() }
        func key(_ args: [String]) throws -> String {
            let r = try run(["keys", "create", "--data", scratch.path] + args)
            #expect(r.status == 0, "\(r.output)")
            return r.output.split(separator: "\n").last.map(String.init) ?? ""
        }
        let write = try key(["--source", "web", "--channel", "web"])
        let read = try key(["--scope", "read", "--name", "dash"])
        let admin = try key(["--scope", "admin", "--name", "ops"])
        let server = try await SegmentServer(data: scratch.path)
        let port = server.port

        // Orders: u1 twice on pos, u2 once on web.
        var batch: [JSON] = []
        for (u, ch, i) in [("u1", "pos", 0), ("u1", "pos", 1), ("u2", "web", 2)] {
            var m = message("track", ["userId": .string(u), "event": "Order Completed",
                                      "properties": ["order_id": .string("o\(i)"), "revenue": .double(60)],
                                      "context": ["channel": .string(ch)]])
            m["timestamp"] = .string("2026-03-0\(i + 1)T12:00:00.000Z")
            batch.append(m)
        }
        let r = try await HTTP.request(port: port, .post, "/v1/batch", headers: HTTP.basic(write), body: JSON.object([("batch", .array(batch))]).jsonBytes())
        #expect(r.status == 200)

        // An invalid rule: 400 with the path of the bad node; nothing appended.
        var adminJSON = HTTP.bearer(admin)
        adminJSON[.contentType] = "application/json"
        let bad = try await HTTP.request(port: port, .put, "/v1/segments/repeat_pos", headers: adminJSON,
                                         body: Array(#"{"name":"x","rule":{"all":[{"computed":"order_count","gte":2},{"event":"Order Completed","within":"soon"}]}}"#.utf8))
        #expect(bad.status == 400)
        #expect(bad.errorCode == "invalid_rule")
        #expect(bad.json["error"]?["path"]?.stringValue == "rule.all[1].within")
        // A read key cannot define.
        #expect([401, 403].contains(try await HTTP.request(port: port, .put, "/v1/segments/repeat_pos", headers: HTTP.bearer(read), body: Array("{}".utf8)).status))

        let put = try await HTTP.request(port: port, .put, "/v1/segments/repeat_pos", headers: adminJSON,
                                         body: Array(#"{"name":"Repeat POS buyers","rule":{"all":[{"computed":"order_count","gte":2},{"event":"Order Completed","at_least":1,"within":"30d","where":{"channel":"pos"}}]}}"#.utf8))
        #expect(put.status == 202)
        let seq = try #require(put.json["seq"]?.intValue)

        let seg = try await HTTP.request(port: port, .get, "/v1/segments/repeat_pos?min_seq=\(seq)", headers: HTTP.bearer(read))
        #expect(seg.status == 200)
        #expect(seg.json["size"]?.intValue == 1)
        #expect(seg.json["name"]?.stringValue == "Repeat POS buyers")
        let members = try await HTTP.request(port: port, .get, "/v1/segments/repeat_pos/members", headers: HTTP.bearer(read))
        let pids = members.json["members"]?.arrayValue?.compactMap { $0["profile_id"]?.stringValue } ?? []
        #expect(pids.count == 1)
        let profile = try await HTTP.request(port: port, .get, "/v1/profiles/user_id:u1", headers: HTTP.bearer(read))
        #expect(profile.json["profile_id"]?.stringValue == pids.first)
        #expect(profile.json["segments"]?.arrayValue?.contains("repeat_pos") == true)
        let changes = try await HTTP.request(port: port, .get, "/v1/segments/repeat_pos/changes?after=0", headers: HTTP.bearer(read))
        #expect(changes.json["changes"]?.arrayValue?.first?["change"]?.stringValue == "enter")
        let list = try await HTTP.request(port: port, .get, "/v1/segments", headers: HTTP.bearer(read))
        let keys = list.json["segments"]?.arrayValue?.compactMap { $0["key"]?.stringValue } ?? []
        #expect(keys.contains("repeat_pos") && keys.contains("vip") && keys.contains("rfm_champions") && keys.contains("churn_risk"))
        #expect(try await HTTP.request(port: port, .get, "/v1/segments/nope", headers: HTTP.bearer(read)).status == 404)
        #expect(try await HTTP.request(port: port, .put, "/v1/segments/vip", headers: adminJSON,
                                       body: Array(#"{"rule":{"trait":"a","exists":true}}"#.utf8)).status == 400)
        // The definition is in the audit log, with who made it.
        let audit = try await HTTP.request(port: port, .get, "/v1/admin/audit", headers: HTTP.bearer(admin)).json["audit"]?.arrayValue ?? []
        #expect(audit.contains { $0["action"]?.stringValue == "segment-define" && $0["actor"]?.stringValue == "key:ops"
                                 && ($0["detail"]?.stringValue ?? "").contains("repeat_pos") }, "\(audit)")

        // KPIs.
        let kpis = try await HTTP.request(port: port, .get, "/v1/kpis?from=2026-03-01&to=2026-03-03&granularity=day", headers: HTTP.bearer(read))
        #expect(kpis.status == 200)
        let series = kpis.json["series"]?.arrayValue ?? []
        #expect(series.count == 3)
        #expect(series.map { $0["orders"]?.intValue ?? -1 } == [1, 1, 1])
        #expect(series.first?["revenue"]?.doubleValue == 60)
        let pos = try await HTTP.request(port: port, .get, "/v1/kpis?from=2026-03-01&to=2026-03-31&granularity=month&channel=pos", headers: HTTP.bearer(read))
        #expect(pos.json["series"]?[0]?["orders"]?.intValue == 2)
        #expect(try await HTTP.request(port: port, .get, "/v1/kpis?granularity=year", headers: HTTP.bearer(read)).status == 400)
        let cohorts = try await HTTP.request(port: port, .get, "/v1/kpis/cohorts", headers: HTTP.bearer(read))
        #expect(cohorts.json["cohorts"]?[0]?["size"]?.intValue == 2)

        try await server.stop()
        // The CLI over the same views.
        let cli = try run(["segments", "list", "--data", scratch.path])
        #expect(cli.status == 0)
        #expect(cli.output.contains("repeat_pos"))
        let m = try run(["segments", "members", "--data", scratch.path, "repeat_pos"])
        #expect(m.output.contains(pids.first ?? "?"))
        let table = try run(["kpis", "--data", scratch.path, "--granularity", "month"])
        #expect(table.status == 0)
        #expect(table.output.contains("2026-03"))
        #expect(table.output.contains("revenue"))
    }
}
