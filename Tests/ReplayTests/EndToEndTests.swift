import EventLog
import Foundation
import JSONCore
import LMDB
@testable import Projections
import Testing

/// The binaries: touchstone-replay against a data directory, beside `touchstone serve`.
@Suite(.serialized) struct EndToEndTests {
    @Test func theToolRebuildsVerifiesTimeTravelsAndDryRuns() throws {
        let s = try Scratch()
        try s.append(messages(800))
        let live = try s.liveViews().generation.name
        let liveDigest = try s.digest(live)

        let verify = try run("touchstone-replay", ["--data", s.dir, "--verify"])
        #expect(verify.status == 0, "\(verify.out)\(verify.err)")
        #expect(verify.out.contains("\(profiles): equal at seq 800"))

        let until = try run("touchstone-replay", ["--data", s.dir, "--until-seq", "400", "--progress", "lines", "--batch-size", "50"])
        #expect(until.status == 0, "\(until.err)")
        #expect(until.err.contains("replay: until-400 folding"), "plain progress lines when not on a terminal: \(until.err)")
        #expect(until.err.contains("ev/s") && until.err.contains("ETA") && until.err.contains("\(profiles) "))
        #expect(s.store.current() == live)
        // Queryable by the CLI: the profile as of seq 400 has fewer orders than now.
        let then = try run("touchstone", ["profile", "--data", s.dir, "--generation", "until-400", "user_id:c-user-3"])
        let now = try run("touchstone", ["profile", "--data", s.dir, "user_id:c-user-3"])
        #expect(then.status == 0 && now.status == 0, "\(then.err) \(now.err)")
        let ordersThen = try JSON.parse(then.out)["computed"]?["order_count"]?.intValue ?? -1
        let ordersNow = try JSON.parse(now.out)["computed"]?["order_count"]?.intValue ?? -1
        #expect(ordersThen > 0 && ordersThen < ordersNow, "\(ordersThen) vs \(ordersNow)")

        let dry = try run("touchstone-replay", ["--data", s.dir, "--dry-run"])
        #expect(dry.status == 0 && dry.out.contains("not switched"), "\(dry.out)\(dry.err)")
        #expect(s.store.current() == live)

        let switched = try run("touchstone-replay", ["--data", s.dir, "--keep", "1"])
        #expect(switched.status == 0 && switched.out.contains("live: switched to"), "\(switched.out)\(switched.err)")
        let now2 = try #require(s.store.current())
        let now2Digest = try s.digest(now2)
        #expect(now2 != live && now2Digest == liveDigest)

        // A difference is reported, with the first differing key, and exit status 1.
        let g = try s.generation(now2)
        let db = try g.environment.openDatabase(g.projection(named: profiles)!.databaseNames.sorted()[0])
        try g.environment.write { tx in try tx.put(db, key: Array("zz-tampered".utf8), value: [1]) }
        let bad = try run("touchstone-replay", ["--data", s.dir, "--verify"])
        #expect(bad.status == 1 && bad.out.contains("DIFFERENT") && bad.out.contains("zz-tampered"), "\(bad.out)")
        // Every rebuild that built something is in the audit log.
        let audit = try run("touchstone", ["audit", "--data", s.dir])
        #expect(audit.out.components(separatedBy: "\treplay\t").count - 1 >= 3, "\(audit.out)")
    }

    @Test func killNineMidRebuildThenRerunGivesTheSameResult() throws {
        let s = try Scratch()
        try s.append(messages(30_000))
        let live = try s.liveViews().generation.name
        let expected = try s.digest(live)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary("touchstone-replay"))
        p.arguments = ["--data", s.dir, "--batch-size", "10", "--progress", "none"]
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        // Wait for committed progress into the target, then kill -9.
        var target = ""
        let started = try eventually(.seconds(60)) {
            guard let state = Rebuilder(dataDirectory: s.dir, log: s.log).interrupted() else { return false }
            target = state.generation
            guard FileManager.default.fileExists(atPath: s.store.path(target) + "/data.mdb") else { return false }
            return try s.generation(target).checkpoint(profiles) >= 2_000
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(started && p.terminationReason == .uncaughtSignal, "the rebuild finished before it could be killed")
        let partial = try s.generation(target).checkpoint(profiles)
        #expect(partial < s.log.lastSeq && s.store.current() == live)

        let rerun = try run("touchstone-replay", ["--data", s.dir, "--progress", "lines"])
        #expect(rerun.status == 0, "\(rerun.err)")
        #expect(rerun.out.contains("rebuilt \(target) (resumed)"), "\(rerun.out)")
        #expect(rerun.out.contains("\(s.log.lastSeq - partial) events"), "only the rest was read: \(rerun.out)")
        #expect(s.store.current() == target)
        #expect(try s.digest(target) == expected)
    }

    @Test func aLiveSwitchUnderConcurrentIngestionLosesNothing() async throws {
        let s = try Scratch()
        try s.append(messages(20_000))
        let server = try Server(data: s.dir)
        defer { server.stop() }
        let key = try createKey(data: s.dir, ["--source", "web", "--channel", "web"])
        let before = try #require(s.store.current())

        let acked = Locked2<[UInt64]>([])
        let stop = Locked2<Bool>(false)
        let poster = Task {
            var i = 0
            while !stop.get() || i < 50 {
                let body = #"{"type":"identify","userId":"live-\#(i)","traits":{"email":"live\#(i)@example.com"},"messageId":"live-\#(i)"}"#
                let r = try await server.request("POST", "/v1/identify", auth: basic(key), body: body)
                if r.status == 200, let seq = r.json["seq"]?.intValue { acked.set(acked.get() + [UInt64(seq)]) }
                i += 1
            }
            return i
        }
        try await Task.sleep(for: .milliseconds(200))
        let dir = s.dir
        let replay = try await Task.detached { @Sendable in try run("touchstone-replay", ["--data", dir, "--batch-size", "256", "--progress", "lines"]) }.value
        stop.set(true)
        let posted = try await poster.value
        #expect(replay.status == 0, "\(replay.err)")
        let generation = try #require(replay.out.split(separator: "\n").first { $0.hasPrefix("live: switched to ") }
            .map { String($0.dropFirst("live: switched to ".count)).split(separator: ";")[0] }.map(String.init))
        #expect(generation != before)
        let acks = acked.get()
        #expect(acks.count == posted, "every post was acknowledged")
        let maxAck = try #require(acks.max())
        // The server adopts the new generation and folds everything acknowledged.
        var health = JSON.null
        let adopted = try await eventuallyAsync {
            health = try await server.request("GET", "/healthz").json
            return health["views"]?.stringValue == generation && (health["appliedSeq"]?.intValue ?? 0) >= Int64(maxAck)
        }
        #expect(adopted, "\(health)")
        for i in [0, posted / 2, posted - 1] {
            let r = try run("touchstone", ["profile", "--data", s.dir, "user_id:live-\(i)"])
            #expect(r.status == 0, "live-\(i) is missing: \(r.err)")
        }
        server.stop()
        // Every acknowledged event is in the new generation: its views equal a rebuild of the whole log.
        let g = try s.generation(generation)
        #expect(try g.appliedSeq() == s.log.lastSeq)
        let check = try s.rebuilder().run(RebuildPlan(untilSeq: s.log.lastSeq, target: "check"))
        #expect(try s.digest("check") == g.digest(profiles), "after \(check.appliedSeq) events")
        let reader = try ProfileReader(g)
        for i in 0..<posted { #expect(try reader.profileID(Identifier.parse("user_id:live-\(i)")!) != nil, "live-\(i)") }
    }

    @Test func theAdminAPIStartsAndReportsAReplay() async throws {
        let s = try Scratch()
        try s.append(messages(3_000))
        let server = try Server(data: s.dir)
        defer { server.stop() }
        let admin = "Bearer " + (try createKey(data: s.dir, ["--scope", "admin", "--name", "ops"]))
        let reader = "Bearer " + (try createKey(data: s.dir, ["--scope", "read", "--name", "dash"]))
        let before = try #require(s.store.current())

        #expect(try await server.request("GET", "/v1/admin/replay", auth: admin).json["state"]?.stringValue == "idle")
        #expect(try await server.request("POST", "/v1/admin/replay", auth: reader).status == 403)
        #expect(try await server.request("POST", "/v1/admin/replay").status == 401)
        #expect(try await server.request("POST", "/v1/admin/replay", auth: admin, body: #"{"projections":["nope"]}"#).status == 400)
        // Another rebuild (touchstone-replay) holds the data directory: 409.
        let held = try s.rebuilder().lock()
        let busy = try await server.request("POST", "/v1/admin/replay", auth: admin, body: "{}")
        #expect(busy.status == 409 && busy.json["error"]?["code"]?.stringValue == "replay_running")
        held.release()

        let started = try await server.request("POST", "/v1/admin/replay", auth: admin, body: #"{"keep":5}"#)
        #expect(started.status == 202 && started.json["state"]?.stringValue == "running", "\(started.json)")
        var job = JSON.null
        #expect(try await eventuallyAsync {
            job = try await server.request("GET", "/v1/admin/replay", auth: admin).json
            return job["state"]?.stringValue != "running"
        })
        #expect(job["state"]?.stringValue == "succeeded" && job["switched"]?.boolValue == true, "\(job)")
        let generation = try #require(job["generation"]?.stringValue)
        #expect(generation != before)
        #expect(job["events_done"]?.intValue == 3_000 && job["events_total"]?.intValue == 3_000, "\(job)")
        #expect(job["per_projection"]?[profiles]?.intValue == 3_000 && job["finished"]?.stringValue != nil)
        #expect(try await server.request("GET", "/healthz").json["views"]?.stringValue == generation, "switched in-process at once")
        #expect(s.store.current() == generation)
        let audit = try await server.request("GET", "/v1/admin/audit", auth: admin).json["audit"]?.arrayValue ?? []
        #expect(audit.contains { $0["action"]?.stringValue == "replay" && $0["actor"]?.stringValue == "key:ops" }, "\(audit)")

        let travel = try await server.request("POST", "/v1/admin/replay", auth: admin, body: #"{"until_seq":1000}"#)
        #expect(travel.status == 202)
        #expect(try await eventuallyAsync {
            job = try await server.request("GET", "/v1/admin/replay", auth: admin).json
            return job["state"]?.stringValue != "running"
        })
        #expect(job["state"]?.stringValue == "succeeded" && job["generation"]?.stringValue == "until-1000" && job["switched"]?.boolValue == false, "\(job)")
        #expect(try await server.request("GET", "/healthz").json["views"]?.stringValue == generation)
        #expect(try s.generation("until-1000").appliedSeq() == 1000)
    }
}

func eventuallyAsync(_ timeout: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
}
