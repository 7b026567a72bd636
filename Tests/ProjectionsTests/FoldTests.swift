import EventLog
import Foundation
import JSONCore
import LMDB
@testable import Projections
import Testing
import TestSupport

@Suite(.serialized) struct FoldTests {
    /// Generates `customers` with touchstone-datagen and imports them into a fresh log.
    static func datagenLog(customers: Int, seed: Int) throws -> (Scratch, JSON) {
        let s = try Scratch()
        let file = s.dir + "/d.ndjson"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: root + "/.build/debug/touchstone-datagen")
        p.arguments = ["--customers", String(customers), "--seed", String(seed), "--out", file]
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let truth = try JSON.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: file + ".truth.json"))))
        _ = try Importer(log: s.log, builder: s.builder, source: SourceContext(name: "import", channel: "server")).run(try LineReader(path: file))
        return (s, truth)
    }

    @Test func theDatagenTruthMatchesExactly() throws {
        let (s, truth) = try Self.datagenLog(customers: 300, seed: 11)
        let v = try s.views()
        #expect(try v.generation.failures().isEmpty)
        var seen: Set<String> = []
        var orders = 0
        for c in truth["per_customer"]?.arrayValue ?? [] {
            let anon = try #require(c["anonymous_id"]?.stringValue)
            let p = try #require(try v.profile("anonymous_id:" + anon), "customer \(anon) has no profile")
            let pid = try #require(p["profile_id"]?.stringValue)
            #expect(seen.insert(pid).inserted, "two customers share profile \(pid)")
            if let u = c["user_id"]?.stringValue, let viaUser = try v.pid("user_id:" + u) {
                #expect(viaUser == pid, "user \(u) is in another profile than its anonymous id")
            }
            if let e = c["email"]?.stringValue, let viaEmail = try v.pid("email:" + e) { #expect(viaEmail == pid) }
            #expect(p["computed"]?["order_count"]?.intValue == c["orders"]?.intValue, "orders of \(anon)")
            #expect(abs((p["computed"]?["total_revenue"]?.doubleValue ?? -1) - (c["revenue"]?.doubleValue ?? 0)) < 0.005, "revenue of \(anon)")
            #expect(p["computed"]?["refund_count"]?.intValue == c["refunds"]?.intValue, "refunds of \(anon)")
            orders += Int(c["orders"]?.intValue ?? 0)
        }
        // Every customer is exactly one profile: no leftover fragments holding their events.
        #expect(try v.profiles.count() == seen.count)
        #expect(Int64(orders) == truth["orders"]?.intValue)
    }

    /// A pipelined catch-up folds the next batch on copies of the sealed batch's states: a
    /// copy must carry every field.
    @Test func aProfileStateCopyEncodesLikeTheOriginal() throws {
        let (s, _) = try Self.datagenLog(customers: 120, seed: 3)
        let g = try ViewStore(dataDirectory: s.dir).open("copy", set: ProjectionSet())
        try ProjectionRunner(log: s.log, generation: g).catchUp()
        let p = try #require(g.projection(named: ProfileProjection.projectionName) as? ProfileProjection)
        var checked = 0
        var traits = 0, orders = 0, consent = 0, products = 0
        try g.environment.read { tx in
            try tx.scan(p.profiles) { _, v in
                let state = try ProfileState.decode(v)
                #expect(state.copy().encode() == Array(v.bindMemory(to: UInt8.self)), "profile p\(state.id)")
                // Decoded for reading (order and product ids skipped), it renders the same.
                let read = try ProfileState.decode(v, forReading: true)
                #expect(ProfileReader.render(read, segments: []) == ProfileReader.render(state, segments: []), "profile p\(state.id)")
                // The API's text, written from the stored bytes, is the tree's text, with and
                // without segments and merged ids.
                for (segments, merged) in [([], nil), (["vip", "a \"quoted\"\nkey"], [7, UInt64.max] as [UInt64]?)] {
                    let copy = state.copy()
                    if let merged { copy.merged = merged }
                    let w = JSONText()
                    try copy.encode().withUnsafeBytes { try ProfileReader.write(stored: $0, segments: segments, to: w) }
                    #expect(String(decoding: w.bytes, as: UTF8.self) == ProfileReader.render(copy, segments: segments).jsonString, "profile p\(state.id)")
                }
                #expect(read.distinctProducts == state.products.count && read.orderIDs.isEmpty && read.products.isEmpty)
                products += state.products.isEmpty ? 0 : 1
                checked += 1
                traits += state.traits.isEmpty ? 0 : 1
                orders += state.orderCount > 0 ? 1 : 0
                consent += state.consent.isEmpty ? 0 : 1
                return true
            }
        }
        #expect(checked >= 100 && traits > 0 && orders > 0 && consent > 0 && products > 0)
    }

    /// The stored-bytes writer against the tree on the cases datagen may not produce: equal
    /// category counts (the least key wins, non-ASCII keys too), scores, consent, nested trait
    /// values, escapes, an empty profile, years outside 0–9999.
    @Test func theStoredProfileIsWrittenAsTheTreeWouldBe() throws {
        func check(_ p: ProfileState, _ segments: [String] = []) throws {
            let w = JSONText(capacity: 0)
            try p.encode().withUnsafeBytes { try ProfileReader.write(stored: $0, segments: segments, to: w) }
            #expect(String(decoding: w.bytes, as: UTF8.self) == ProfileReader.render(p, segments: segments).jsonString)
        }
        try check(ProfileState(id: 0))
        let p = ProfileState(id: 42)
        p.merged = [3, 9]
        p.identifiers = [Identifier(type: "email", value: "a@b.c"), Identifier(type: "user_id", value: "u\"1"), Identifier(type: "email", value: "d@e.f")]
        p.traits.appendInOrder("address", Stamped(value: .object([("city", .string("Zürich")), ("lines", .array([.string("a\nb"), .null, .double(1.5), .int(-3)]))]), time: -1, seq: 4, source: "pos"))
        p.traits.appendInOrder("name", Stamped(value: .string("Ann"), time: 253_402_300_800_000_000, seq: 5, source: "web\t"))
        p.firstSeen = 1_000; p.lastSeen = 2_000_123; p.eventCount = 3
        p.channels = ["pos": 1, "web": 2]
        p.orderIDs = ["o1", "o2"]; p.orderCount = 2; p.revenue = 199_900; p.firstOrderAt = 1_000; p.lastOrderAt = 2_000
        p.refundCount = 1; p.refundTotal = -5_000
        p.products = ["x", "y", "z"]
        p.lastCheckoutAt = 3_000; p.loyaltyPoints = -7
        p.nps = Stamped(value: 9, time: 5, seq: 6, source: "survey")
        p.consent.appendInOrder("email", Stamped(value: true, time: 7, seq: 8, source: "web"))
        p.consent.appendInOrder("sms", Stamped(value: false, time: 9, seq: 10, source: "pos"))
        for categories: SortedMap<Int64> in [["b": 2, "a": 2, "c": 1], ["é": 3, "e\u{301}x": 3, "z": 3], ["solo": 1], [:]] {
            p.categories = categories
            try check(p, ["vip"])
        }
        p.csat = Stamped(value: 4, time: 1, seq: 2, source: "desk")
        p.lastOrderAt = 4_000  // the checkout is no longer open
        try check(p)
    }

    @Test func replayingTheSameLogGivesByteIdenticalViewsWhateverTheBatchSize() throws {
        let (s, _) = try Self.datagenLog(customers: 150, seed: 5)
        let store = ViewStore(dataDirectory: s.dir)
        var digests: [String] = []
        for (name, batch) in [("a", 4096), ("b", 4096), ("c", 7)] {
            let g = try store.open(name, set: ProjectionSet())
            try ProjectionRunner(log: s.log, generation: g, batchSize: batch).catchUp()
            digests.append(try g.digest(ProfileProjection.projectionName))
        }
        #expect(digests[0] == digests[1])
        #expect(digests[0] == digests[2])
        #expect(try store.open("a", set: ProjectionSet()).differences(ProfileProjection.projectionName, from: store.open("c", set: ProjectionSet())).isEmpty)
        // A view that differs is told apart, with the first differing keys.
        try s.append([#"{"type":"identify","userId":"extra","traits":{"plan":"pro"}}"#])
        let a = try store.open("a", set: ProjectionSet())
        try ProjectionRunner(log: s.log, generation: a).catchUp()
        #expect(try a.digest(ProfileProjection.projectionName) != digests[0])
        let diff = try a.differences(ProfileProjection.projectionName, from: store.open("b", set: ProjectionSet()))
        #expect(diff.contains { $0.contains("user_id:extra") && $0.contains("only in a") })
    }

    /// Profile states, identifiers' profiles and KPI activity records kept between batches
    /// change speed, never views: folded with no caches, small ones (evicting all the time) and the
    /// defaults, in batches of 7 and 4,096, across merges and an erasure, every projection's
    /// views are the same bytes.
    @Test func theProfileStateAndActivityCachesNeverChangeTheViews() throws {
        let (s, _) = try Self.datagenLog(customers: 120, seed: 5)
        // Two profiles that a later event links (a merge), one erased, then more of both.
        try s.append([
            #"{"type":"identify","userId":"m1","traits":{"email":"m1@example.com","plan":"pro"}}"#,
            #"{"type":"page","anonymousId":"m2-anon","name":"Home"}"#,
            #"{"type":"track","anonymousId":"m2-anon","event":"Order Completed","properties":{"order_id":"m2o","revenue":12}}"#,
            #"{"type":"identify","userId":"gone","traits":{"email":"gone@example.com"}}"#,
        ])
        let live = try s.views()
        _ = try #require(try live.erase(id("user_id:gone"), actor: "test"))
        try s.append([
            #"{"type":"track","userId":"m1","anonymousId":"m2-anon","event":"Order Completed","properties":{"order_id":"m1o","revenue":30}}"#,
            #"{"type":"identify","userId":"m1","traits":{"plan":"team"}}"#,
            #"{"type":"track","anonymousId":"m2-anon","event":"Product Viewed"}"#,
        ])
        let store = ViewStore(dataDirectory: s.dir)
        // (Segment views are byte-identical for the same batching: compared batch size by batch size.)
        for batch in [7, 4096] {
            var digests: [[String]] = []
            for cached in [0, 3, ProfileProjection.defaultCachedStates] {
                let activities = cached == 0 ? 0 : cached == 3 ? 3 : KPIProjection.defaultCachedActivities
                let g = try store.open("cache-\(batch)-\(cached)", set: ProjectionSet(cachedProfileStates: cached, cachedKPIActivities: activities))
                try ProjectionRunner(log: s.log, generation: g, batchSize: batch).catchUp()
                #expect(try g.failures().isEmpty)
                digests.append(try ProjectionSet.names.map { try g.digest($0) })
            }
            #expect(digests[1] == digests[0], "batch \(batch): 3 cached states and activity records")
            #expect(digests[2] == digests[0], "batch \(batch): the default caches")
        }
        try live.catchUp()
        let merged = try #require(try live.profiles.profile(id("anonymous_id:m2-anon")))
        #expect(merged["computed"]?["order_count"]?.intValue == 2)
        #expect(try live.profile("user_id:gone") == nil)
    }

    /// The cache keeps at most its capacity; the states committed longest ago leave first, a
    /// state put back counts as new, and a taken one is gone until it is put back.
    @Test func theStateCacheIsBoundedAndEvictsTheOldestCommit() {
        let c = StateCache(capacity: 3)
        for pid: UInt64 in 1...3 { c.insert(pid, ProfileState(id: pid)) }
        c.insert(1, ProfileState(id: 1))   // 1 again: now the newest
        c.insert(4, ProfileState(id: 4))   // evicts 2, the oldest
        #expect(c.count == 3 && c.peek(2) == nil && c.peek(1) != nil && c.peek(3) != nil)
        #expect(c.take(3)?.id == 3 && c.take(3) == nil)
        for pid: UInt64 in 10..<20_000 {  // take and put back over and over: the order list stays bounded
            c.insert(pid % 5, ProfileState(id: pid % 5))
            _ = c.take(pid % 7)
        }
        #expect(c.count <= 3)
        #expect(StateCache(capacity: 0).peek(1) == nil)
        let none = StateCache(capacity: 0)
        none.insert(1, ProfileState(id: 1))
        #expect(none.count == 0)
    }

    /// The profile's ordered maps behave as the dictionaries they replace (canonically equal
    /// keys included) and iterate in `String` order, whatever order keys arrive in.
    @Test func aSortedMapActsLikeADictionaryInKeyOrder() {
        var rng = SplitMix(seed: 7)
        let pool = ["web", "app", "pos", "email", "é", "e\u{301}", "Zeta", "zeta", "a", "", "web2", "ünï", "😀"]
        var map = SortedMap<Int>(), reference: [String: Int] = [:]
        for step in 0..<5_000 {
            let k = pool[Int(rng.next() % UInt64(pool.count))]
            switch rng.next() % 4 {
            case 0: map[k] = nil; reference[k] = nil
            case 1: map[k, default: 0] += 1; reference[k, default: 0] += 1
            default: map[k] = step; reference[k] = step
            }
            #expect(map[k] == reference[k])
        }
        #expect(map.count == reference.count)
        #expect(map.map(\.key) == reference.keys.sorted())
        #expect(map.map(\.value) == reference.sorted { $0.key < $1.key }.map(\.value))
        var read = SortedMap<Int>()
        for (k, v) in [("b", 2), ("a", 1), ("c", 3), ("b", 4)] { read.appendInOrder(k, v) }  // out of order: still sorted
        #expect(read.map(\.key) == ["a", "b", "c"] && read["b"] == 4)
    }

    /// The tail asks for `CURRENT` between batches: it reads the file again only when a switch
    /// replaced it.
    @Test func thePointerWatchSeesEverySwitch() throws {
        let s = try Scratch()
        let store = ViewStore(dataDirectory: s.dir)
        let watch = ViewStore.Watch(store)
        #expect(watch.current() == nil)
        for name in ["g000001", "g000002", "g000001", "until-42"] {
            try store.setCurrent(name)
            #expect(watch.current() == name)
            #expect(watch.current() == name)
        }
    }

    /// Another process folding into the same generation between two of this one's batches: the
    /// states this one kept decoded are older than the views then, and it must fold on the views.
    @Test func cachedStatesAreDroppedWhenAnotherWriterFoldedMeanwhile() throws {
        let s = try Scratch()
        let store = ViewStore(dataDirectory: s.dir)
        try s.append([#"{"type":"identify","userId":"jane","traits":{"email":"jane@example.com"}}"#])
        let mine = try store.open("live", set: ProjectionSet())
        try ProjectionRunner(log: s.log, generation: mine).catchUp()  // jane's state cached here
        try s.append([#"{"type":"track","userId":"jane","event":"Order Completed","properties":{"order_id":"o1","revenue":10}}"#])
        let other = try store.open("live", set: ProjectionSet())  // the other process's projections
        try ProjectionRunner(log: s.log, generation: other).catchUp()
        try s.append([#"{"type":"track","userId":"jane","event":"Order Completed","properties":{"order_id":"o2","revenue":5}}"#])
        try ProjectionRunner(log: s.log, generation: mine).catchUp()
        let fresh = try store.open("fresh", set: ProjectionSet())
        try ProjectionRunner(log: s.log, generation: fresh).catchUp()
        #expect(try mine.digest(ProfileProjection.projectionName) == fresh.digest(ProfileProjection.projectionName))
        let reader = try ProfileReader(mine)
        #expect(try reader.profile(id("user_id:jane"))?["computed"]?["order_count"]?.intValue == 2)
    }

    /// The log stores events without container sizes; the readers take either form: events
    /// whose containers carry their size fold into the very same views.
    @Test func eventsWithOrWithoutContainerSizesFoldTheSame() throws {
        let (s, _) = try Self.datagenLog(customers: 120, seed: 9)
        let other = try Scratch()
        let events = try s.log.events(from: 1, limit: 1_000_000)
        var sized = 0
        let prepared = try events.map { e in
            let body = try JSON.decodeBinary(e.payload)
            #expect(e.payload == body.unsizedBinary, "seq \(e.seq) is not stored in the unsized form")
            let bytes = body.binary
            if bytes.contains(BinaryTag.sizedObject) && bytes.first == BinaryTag.sizedObject { sized += 1 }
            return PreparedEvent(type: e.type, timestamp: e.timestamp, receivedAt: e.receivedAt, source: e.source,
                                 messageId: e.messageId, payload: bytes, inputBytes: e.payload.count, channel: e.channel)
        }
        #expect(sized > events.count / 2)
        _ = try other.log.append(prepared)
        let a = try s.views(), b = try other.views()
        for p in [ProfileProjection.projectionName, SegmentProjection.projectionName, KPIProjection.projectionName] {
            #expect(try a.generation.digest(p) == b.generation.digest(p), "\(p) differs")
        }
        #expect(try a.generation.failures().isEmpty && b.generation.failures().isEmpty)
    }

    @Test func anyInterleavingOfIndependentCustomersGivesTheSameProfiles() throws {
        // Property: customers' histories (each in its own order) interleaved at random give the
        // same profiles up to profile ids. 8 random interleavings of 12 customers.
        var histories: [[String]] = []
        for c in 0..<12 {
            var h = [#"{"type":"page","anonymousId":"anon-\#(c)","name":"Home","timestamp":"2025-01-0\#(1 + c % 9)T10:00:00Z"}"#]
            h.append(#"{"type":"identify","anonymousId":"anon-\#(c)","userId":"user-\#(c)","traits":{"email":"c\#(c)@example.com","plan":"p\#(c % 3)"},"timestamp":"2025-01-0\#(1 + c % 9)T11:00:00Z"}"#)
            if c % 2 == 0 { h.append(#"{"type":"screen","userId":"user-\#(c)","name":"Home","context":{"device":{"id":"dev-\#(c)"}},"timestamp":"2025-02-01T00:00:00Z"}"#) }
            for o in 0..<(c % 4) {
                h.append(#"{"type":"track","anonymousId":"pos-\#(c)-\#(o)","event":"Order Completed","properties":{"order_id":"o-\#(c)-\#(o)","revenue":\#(10.1 * Double(o + 1)),"products":[{"product_id":"sku-\#(o)","category":"cat-\#(o % 2)"}]},"context":{"traits":{"email":"C\#(c)@example.com"}},"timestamp":"2025-03-0\#(1 + o)T00:00:00Z"}"#)
            }
            h.append(#"{"type":"track","userId":"user-\#(c)","event":"Consent Updated","properties":{"purposes":{"email_marketing":\#(c % 2 == 0)}},"timestamp":"2025-04-01T00:00:00Z"}"#)
            histories.append(h)
        }
        var generator = SplitMix(seed: 42)
        var reference: [String]?
        for _ in 0..<8 {
            var cursors = Array(repeating: 0, count: histories.count)
            var order: [String] = []
            while order.count < histories.reduce(0, { $0 + $1.count }) {
                let c = Int(generator.next() % UInt64(histories.count))
                if cursors[c] < histories[c].count { order.append(histories[c][cursors[c]]); cursors[c] += 1 }
            }
            let s = try Scratch()
            try s.append(order)
            let v = try s.views()
            var profiles: [String] = []
            try v.profiles.forEachProfile { p in
                // Compare without ids and seqs, which depend on the interleaving.
                var p = p
                p["profile_id"] = nil
                p["merged_ids"] = nil
                p["trait_sources"] = nil
                profiles.append(String(decoding: p.jsonBytes(), as: UTF8.self))
                return true
            }
            profiles.sort()
            #expect(profiles.count == 12)
            if let reference { #expect(profiles == reference) } else { reference = profiles }
        }
    }

    @Test func aStaleProjectionVersionIsRebuiltIntoANewGeneration() throws {
        let s = try Scratch()
        try s.append([#"{"type":"identify","userId":"u1","traits":{"plan":"pro"}}"#])
        let v1 = try s.views()
        let first = v1.generation.name
        #expect(try !v1.isStale())
        // Other identity rules: the views were built by another configuration.
        var rules = IdentityRules.default
        rules.blocked.append("u1")
        let v2 = try LiveViews(dataDirectory: s.dir, log: s.log, set: ProjectionSet(rules: rules))
        #expect(try v2.isStale())
        try v2.catchUp()
        #expect(v2.generation.name != first)
        #expect(ViewStore(dataDirectory: s.dir).current() == v2.generation.name)
        #expect(try v2.pid("user_id:u1") == nil)
        #expect(try v2.generation.failures().count == 1)
    }

    @Test func waitingForAnAppliedSeqWakesOnTheFoldOrTimesOut() async throws {
        let s = try Scratch()
        let v = try s.views()
        #expect(await v.waitForApplied(1, timeout: .milliseconds(50)) == false)
        let task = Task { try await v.run() }
        defer { task.cancel() }
        try s.append([#"{"type":"identify","userId":"u1","traits":{"plan":"pro"}}"#])
        #expect(await v.waitForApplied(1, timeout: .seconds(10)))
        #expect(try v.profile("user_id:u1") != nil)
    }
}
