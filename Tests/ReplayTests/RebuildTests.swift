import EventLog
import Foundation
import JSONCore
import LMDB
@testable import Projections
import Testing

/// The rebuild engine in-process: equality, time travel, resume, repair, the subset path.
@Suite(.serialized) struct RebuildTests {
    @Test func aRebuildEqualsTheLiveViewsByteForByteAndSwitches() throws {
        let s = try Scratch()
        try s.append(messages(900))
        let live = try s.liveViews().generation.name
        let before = try s.digest(live)
        let r = try s.rebuilder().run(RebuildPlan(batchSize: 64))
        #expect(r.switched && r.generation != live && r.appliedSeq == s.log.lastSeq)
        #expect(s.store.current() == r.generation)
        #expect(try s.digest(r.generation) == before)
        #expect(try s.generation(r.generation).differences(profiles, from: s.generation(live)).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: s.store.directory + "/REBUILDING"))
        // And --verify agrees: zero differences.
        let v = try s.rebuilder().verify()
        #expect(v.equal && v.live == r.generation && v.entries.map(\.projection) == ProjectionSet.names)
        #expect(v.entries[0].checkpoint == s.log.lastSeq)
    }

    @Test func untilSeqGivesTheViewsOfTheLogTruncatedThere() throws {
        let all = messages(600)
        let full = try Scratch(), truncated = try Scratch()
        try full.append(all)
        try truncated.append(Array(all.prefix(237)))
        let live = try full.liveViews().generation.name
        let liveDigest = try full.digest(live)
        let r = try full.rebuilder().run(RebuildPlan(untilSeq: 237, batchSize: 50))
        #expect(r.generation == "until-237" && !r.switched && r.appliedSeq == 237)
        #expect(full.store.current() == live, "time travel never touches the live views")
        #expect(try full.digest(live) == liveDigest)
        let expected = try truncated.liveViews().generation
        #expect(try full.digest("until-237") == expected.digest(profiles))
        #expect(try full.generation("until-237").metaValue("replay/until-seq") == "237")
        // Running it again finds it built; past the log's end is refused.
        #expect(try full.rebuilder().run(RebuildPlan(untilSeq: 237)).alreadyBuilt)
        #expect(throws: ViewsError.self) { try full.rebuilder().run(RebuildPlan(untilSeq: 10_000)) }
    }

    @Test func untilTimeFoldsTheEventsDatedUpToThen() throws {
        // Events arrive out of order: time travel by event time includes late arrivals dated before.
        let s = try Scratch(), expected = try Scratch()
        var texts: [String] = []
        var dated: [String] = []
        for (i, m) in messages(300).enumerated() {
            let day = (i * 7) % 20 + 1
            var j = try JSON.parse(m)
            j["timestamp"] = .string(String(format: "2025-03-%02dT12:00:00Z", day))
            j["messageId"] = .string("orig-\(i)")
            let t = String(decoding: j.jsonBytes(), as: UTF8.self)
            texts.append(t)
            if day <= 10 { dated.append(t) }
        }
        try s.append(texts)
        try expected.append(dated)
        let cut = Timestamp.parse("2025-03-10T23:59:59Z")!
        let r = try s.rebuilder().run(RebuildPlan(untilTime: cut, target: "march10", batchSize: 32))
        #expect(r.generation == "march10" && !r.switched)
        // Seqs differ between the two logs (so do timeline keys): compare what the profiles say.
        let got = try ProfileReader(s.generation("march10")), want = try expected.liveViews().profiles
        #expect(try got.count() == want.count() && want.count() > 0)
        for c in 0..<37 {
            for id in ["user_id:c-user-\(c)", "anonymous_id:c-anon-\(c)"] {
                let a = try got.profile(Identifier.parse(id)!), b = try want.profile(Identifier.parse(id)!)
                #expect(a?["computed"] == b?["computed"] && a?["traits"] == b?["traits"], "\(id)")
            }
        }
        #expect(try s.generation("march10").metaValue("replay/until-time") == Timestamp.format(cut))
        #expect(s.store.current() == nil, "no live views were created")
    }

    @Test func aStoppedRebuildResumesFromItsCheckpointsToTheSameResult() throws {
        let s = try Scratch()
        try s.append(messages(1500))
        let live = try s.liveViews().generation.name
        let expected = try s.digest(live)
        var batches = 0
        #expect(throws: RebuildStopped.self) {
            try s.rebuilder().run(RebuildPlan(batchSize: 100), shouldStop: { batches += 1; return batches > 4 })
        }
        let interrupted = try #require(s.rebuilder().interrupted()).generation
        let partial = try s.generation(interrupted).appliedSeq()
        #expect(partial == 400, "four batches were committed")
        #expect(s.store.current() == live)
        var firstSeq: UInt64?
        let r = try s.rebuilder().run(RebuildPlan(batchSize: 100), progress: { p in
            if p.phase == .folding && firstSeq == nil { firstSeq = p.startSeq }
        })
        #expect(r.resumed && r.generation == interrupted)
        #expect(firstSeq == partial, "the rerun starts at the checkpoint, not at 1")
        #expect(r.events == s.log.lastSeq - partial)
        #expect(try s.digest(r.generation) == expected)
        #expect(s.rebuilder().interrupted() == nil)
    }

    @Test func aProjectionBugFixedByAVersionBumpIsRepairedByReplay() throws {
        let s = try Scratch()
        try s.append(messages(700))
        let views = try s.liveViews()
        let live = views.generation
        let good = try live.digest(profiles)
        // The live views as an older, buggy version left them: a wrong record and another build tag.
        let p = try #require(live.projection(named: profiles))
        let db = try live.environment.openDatabase(p.databaseNames.sorted()[0])
        try live.environment.write { tx in try tx.put(db, key: Array("zz-bogus".utf8), value: Array("wrong".utf8)) }
        try live.setMetaValue("build/\(profiles)", "v0\nbuggy")
        #expect(try live.digest(profiles) != good)
        let before = try s.rebuilder().verify()
        #expect(!before.equal && before.entries[0].liveIsStale)
        #expect(before.entries[0].differences.contains { $0.contains("zz-bogus") && $0.contains("only in") })
        let r = try s.rebuilder().run(RebuildPlan())
        #expect(r.switched && s.store.current() == r.generation)
        #expect(try s.digest(r.generation) == good)
        #expect(try s.rebuilder().verify().equal)
        // A fresh reader of the data sees current, repaired views.
        let reopened = try LiveViews(dataDirectory: s.dir, log: s.log)
        #expect(try !reopened.isStale() && reopened.generation.name == r.generation)
    }

    @Test func theSubsetPathCopiesTheLiveViewsAndRebuildsOnlyTheNamed() throws {
        let s = try Scratch()
        try s.append(messages(500))
        let live = try s.liveViews().generation
        let good = try live.digest(profiles)
        try live.setMetaValue("config/marker", "kept")
        let rb = s.rebuilder()
        rb.copyLiveAlways = true
        try s.append(messages(120, prefix: "late"))
        let r = try rb.run(RebuildPlan(projections: [profiles], batchSize: 40))
        let g = try s.generation(r.generation)
        #expect(try g.metaValue("replay/copied-from") == live.name)
        #expect(try g.metaValue("config/marker") == "kept", "the live generation's other meta is copied")
        #expect(r.appliedSeq == s.log.lastSeq)
        // Equal to a rebuild of everything from nothing.
        let fresh = try s.rebuilder().run(RebuildPlan(target: "fresh", switchLive: false))
        #expect(try s.digest(fresh.generation) == g.digest(profiles))
        #expect(try g.digest(profiles) != good)
        #expect(throws: ViewsError.self) { try s.rebuilder().run(RebuildPlan(projections: ["nope"])) }
    }

    @Test func pruningKeepsTheNewestGenerationsAndOneRebuildRunsAtATime() throws {
        let s = try Scratch()
        try s.append(messages(50))
        try s.liveViews()
        for _ in 0..<4 { try s.rebuilder().run(RebuildPlan(keep: 2)) }
        let gens = s.store.generations()
        #expect(gens == ["g000003", "g000004", "g000005"], "\(gens)")
        #expect(s.store.current() == "g000005")
        let held = try s.rebuilder().lock()
        #expect(throws: RebuildBusy.self) { try s.rebuilder().run(RebuildPlan()) }
        held.release()
        #expect(try s.rebuilder().run(RebuildPlan(switchLive: false)).generation == "g000006")
        #expect(s.store.current() == "g000005")
    }
}
