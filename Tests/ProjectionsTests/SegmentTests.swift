import EventLog
import Foundation
import JSONCore
import LMDB
@testable import Projections
import Testing
import TestSupport

/// Appends a `Segment Defined` system event.
@discardableResult
func define(_ s: Scratch, _ key: String, _ rule: String, name: String? = nil) throws -> UInt64 {
    let props: JSON = .object([("key", .string(key)), ("name", .string(name ?? key)), ("rule", try JSON.parse(Array(rule.utf8)))])
    return try s.log.append([PreparedEvent.system(name: "Segment Defined", properties: props, receivedAt: 1_750_000_000_000_000)])[0].seq
}

func day(_ d: Int, _ h: Int = 12) -> String {
    Timestamp.format(Timestamp.parse("2025-03-01T00:00:00Z")! + Int64(d) * 86_400_000_000 + Int64(h) * 3_600_000_000)
}

func order(_ user: String, _ d: Int, _ revenue: Double, id: String? = nil, channel: String = "web") -> String {
    #"{"type":"track","userId":"\#(user)","event":"Order Completed","properties":{"order_id":"\#(id ?? "\(user)-\(d)-\(revenue)")","revenue":\#(revenue)},"context":{"channel":"\#(channel)"},"timestamp":"\#(day(d))"}"#
}

extension LiveViews {
    func members(_ key: String) throws -> [String] {
        try segments.allMembers(key).map { "p\($0)" }
    }
    func memberUsers(_ key: String) throws -> [String] {
        let pids = Set(try members(key))
        var out: [String] = []
        try profiles.forEachProfile { p in
            if pids.contains(p["profile_id"]?.stringValue ?? ""), let u = p["identifiers"]?["user_id"]?[0]?.stringValue { out.append(u) }
            return true
        }
        return out.sorted()
    }
}

@Suite(.serialized) struct SegmentTests {
    // MARK: The rule language

    static func state(_ build: (inout ProfileState) -> Void) -> ProfileState {
        var s = ProfileState(id: 1)
        build(&s)
        return s
    }

    static func eval(_ rule: String, _ s: ProfileState, now: Micros = Timestamp.parse("2025-06-01T00:00:00Z")!,
                     counters: [Int: (Int64, [Micros])] = [:], member: Set<String> = []) throws -> (Bool, Micros) {
        let r = try RuleParser.parse(try JSON.parse(Array(rule.utf8)))
        var ctx = EvalContext(now: now, state: s, counter: { counters[$0] ?? (0, []) }, isMember: { member.contains($0) })
        let v = RuleEvaluator.evaluate(r, &ctx)
        return (v, ctx.due)
    }

    @Test func everyOperatorOnTraitsAndComputedTraits() throws {
        let t0 = Timestamp.parse("2025-05-01T00:00:00Z")!
        let s = Self.state { s in
            s.traits["plan"] = Stamped(value: .string("pro"), time: 0, seq: 1, source: "")
            s.traits["age"] = Stamped(value: .int(41), time: 0, seq: 1, source: "")
            s.traits["tags"] = Stamped(value: .array([.string("a"), .string("b")]), time: 0, seq: 1, source: "")
            s.traits["address"] = Stamped(value: .object([("city", .string("Lyon"))]), time: 0, seq: 1, source: "")
            s.traits["signup"] = Stamped(value: .string("2025-01-15T00:00:00Z"), time: 0, seq: 1, source: "")
            s.orderCount = 3
            s.revenue = Money(amount: 150.5)
            s.lastOrderAt = t0
            s.eventCount = 5
            s.channels = ["web": 3, "pos": 2]
            s.consent["email_marketing"] = Stamped(value: true, time: 0, seq: 1, source: "")
        }
        let cases: [(String, Bool)] = [
            (#"{"trait":"plan","eq":"pro"}"#, true), (#"{"trait":"plan","eq":"free"}"#, false),
            (#"{"trait":"plan","neq":"free"}"#, true), (#"{"trait":"missing","neq":"free"}"#, true),
            (#"{"trait":"age","gt":40}"#, true), (#"{"trait":"age","gt":41}"#, false), (#"{"trait":"age","gte":41}"#, true),
            (#"{"trait":"age","lt":41}"#, false), (#"{"trait":"age","lte":41}"#, true),
            (#"{"trait":"plan","in":["pro","team"]}"#, true), (#"{"trait":"plan","in":["team"]}"#, false),
            (#"{"trait":"tags","contains":"b"}"#, true), (#"{"trait":"plan","contains":"r"}"#, true), (#"{"trait":"plan","contains":"x"}"#, false),
            (#"{"trait":"plan","starts_with":"pr"}"#, true), (#"{"trait":"plan","starts_with":"ro"}"#, false),
            (#"{"trait":"plan","exists":true}"#, true), (#"{"trait":"nope","exists":true}"#, false), (#"{"trait":"nope","exists":false}"#, true),
            (#"{"trait":"address.city","eq":"Lyon"}"#, true),
            (#"{"trait":"signup","before":"2025-02-01"}"#, true), (#"{"trait":"signup","after":"2025-02-01"}"#, false),
            (#"{"trait":"signup","before":"-30d"}"#, true), (#"{"trait":"signup","after":"-200d"}"#, true),
            (#"{"computed":"order_count","gte":3}"#, true), (#"{"computed":"total_revenue","gt":150}"#, true),
            (#"{"computed":"aov","gt":50.1}"#, true), (#"{"computed":"aov","gt":50.2}"#, false),
            (#"{"computed":"last_order_at","after":"-45d"}"#, true), (#"{"computed":"last_order_at","after":"-30d"}"#, false),
            (#"{"computed":"channels","contains":"pos"}"#, true), (#"{"computed":"channels","in":["email"]}"#, false),
            (#"{"computed":"consent.email_marketing","eq":true}"#, true), (#"{"computed":"consent.sms","eq":true}"#, false),
            (#"{"all":[{"trait":"plan","eq":"pro"},{"computed":"order_count","gt":1}]}"#, true),
            (#"{"all":[{"trait":"plan","eq":"pro"},{"computed":"order_count","gt":5}]}"#, false),
            (#"{"any":[{"trait":"plan","eq":"free"},{"computed":"order_count","gt":1}]}"#, true),
            (#"{"not":{"trait":"plan","eq":"trial"}}"#, true),
            (#"{"segment":"vip"}"#, true), (#"{"segment":"other"}"#, false),
        ]
        for (rule, expected) in cases {
            #expect(try Self.eval(rule, s, member: ["vip"]).0 == expected, "\(rule)")
        }
        // A relative time schedules the moment the answer flips: 45 days after the last order.
        let (_, due) = try Self.eval(#"{"computed":"last_order_at","after":"-45d"}"#, s)
        #expect(due == t0 + 45 * 86_400_000_000)
    }

    @Test func eventConditionsCountWithinWindowsAndRanges() throws {
        let now = Timestamp.parse("2025-06-01T00:00:00Z")!
        let dayUs: Int64 = 86_400_000_000
        let times = [now - 40 * dayUs, now - 10 * dayUs, now - 2 * dayUs]
        let s = ProfileState(id: 1)
        let c: [Int: (Int64, [Micros])] = [0: (3, times)]
        #expect(try Self.eval(#"{"event":"Order Completed","at_least":2,"within":"30d"}"#, s, now: now, counters: c).0)
        #expect(try !Self.eval(#"{"event":"Order Completed","at_least":3,"within":"30d"}"#, s, now: now, counters: c).0)
        #expect(try Self.eval(#"{"event":"Order Completed","exactly":3}"#, s, now: now, counters: c).0)
        #expect(try Self.eval(#"{"event":"Order Completed","at_most":1,"within":"7d"}"#, s, now: now, counters: c).0)
        #expect(try Self.eval(#"{"event":"Order Completed","at_least":0,"within":"1d"}"#, s, now: now, counters: c).0)
        #expect(try !Self.eval(#"{"event":"Order Completed"}"#, s, now: now).0)
        // The oldest counted event leaves the 30-day window 20 days from now.
        #expect(try Self.eval(#"{"event":"Order Completed","within":"30d"}"#, s, now: now, counters: c).1 == times[1] + 30 * dayUs)
        // where: a property filter
        let cond = try #require(try RuleParser.parse(try JSON.parse(Array(#"{"event":"Order Completed","where":{"channel":"pos","revenue":{"gte":100}}}"#.utf8))).eventConditions.first)
        let yes = JSON.object([("event", "Order Completed"), ("channel", "pos"), ("properties", .object([("revenue", .double(120))]))]).binary
        let no = JSON.object([("event", "Order Completed"), ("channel", "web"), ("properties", .object([("revenue", .double(120))]))]).binary
        #expect(cond.matches(JSONView(bytes: yes)))
        #expect(!cond.matches(JSONView(bytes: no)))
    }

    @Test func invalidRulesNameThePathOfTheBadNode() {
        let cases: [(String, String)] = [
            (#"{"all":[{"trait":"a","eq":1},{"computed":"order_count","gt":1},{"event":"X","within":"30 days"}]}"#, "rule.all[2].within"),
            (#"{"any":[]}"#, "rule.any"),
            (#"{"not":{"trait":"a","bogus":1}}"#, "rule.not.bogus"),
            (#"{"computed":"nope","eq":1}"#, "rule.computed"),
            (#"{"trait":"a"}"#, "rule"),
            (#"{"trait":"a","eq":1,"gt":2}"#, "rule.gt"),
            (#"{"event":"X","at_least":-1}"#, "rule.at_least"),
            (#"{"event":"X","between":["2025-02-01","2025-01-01"]}"#, "rule.between"),
            (#"{"all":[{"event":"X","where":{"channel":{"zz":1}}}]}"#, "rule.all[0].where.channel.zz"),
            (#"{"trait":"a","before":"yesterday"}"#, "rule.before"),
            (#"{"segment":"unknown"}"#, "rule.segment"),
            (#"[1]"#, "rule"),
        ]
        for (rule, path) in cases {
            do {
                _ = try SegmentValidation.validate(key: "k", body: .object([("rule", try! JSON.parse(Array(rule.utf8)))]), existing: [:])
                Issue.record("\(rule) was accepted")
            } catch {
                #expect(error.path == path, "\(rule): \(error)")
            }
        }
        // Cycles and built-in keys are refused.
        #expect(throws: RuleError.self) {
            try SegmentValidation.validate(key: "a", body: .object([("rule", .object([("segment", "b")]))]), existing: ["a": [], "b": ["a"]])
        }
        #expect(throws: RuleError.self) {
            try SegmentValidation.validate(key: "vip", body: .object([("rule", .object([("trait", "x"), ("exists", true)]))]), existing: [:])
        }
    }

    // MARK: Incremental membership

    @Test func membershipFollowsEventsAndTheLogicalClock() throws {
        let s = try Scratch()
        try define(s, "recent_buyers", #"{"event":"Order Completed","at_least":1,"within":"30d"}"#)
        try define(s, "lapsed", #"{"all":[{"computed":"order_count","gte":1},{"computed":"last_order_at","before":"-60d"}]}"#)
        try s.append([order("u1", 0, 20), order("u2", 10, 30)])
        var v = try s.views()
        #expect(try v.memberUsers("recent_buyers") == ["u1", "u2"])
        #expect(try v.memberUsers("lapsed") == [])
        // Another customer's event moves the clock to day 35: u1 leaves the window without an event of its own.
        try s.append([#"{"type":"page","userId":"u3","name":"Home","timestamp":"\#(day(35))"}"#])
        v = try s.views()
        #expect(try v.memberUsers("recent_buyers") == ["u2"])
        // Day 75: u1 lapses (no order in 60 days) — entering a segment on time alone.
        try s.append([#"{"type":"page","userId":"u3","name":"Home","timestamp":"\#(day(75))"}"#])
        v = try s.views()
        #expect(try v.memberUsers("recent_buyers") == [])
        #expect(try v.memberUsers("lapsed") == ["u1", "u2"])
        // The feed has the enters and exits, ids growing.
        let feed = try v.segments.changes("recent_buyers")
        #expect(feed.map(\.enter) == [true, true, false, false])
        #expect(feed.map(\.id) == feed.map(\.id).sorted())
        let seg = try #require(try v.segments.segment("recent_buyers"))
        #expect(seg["size"]?.intValue == 0)
        #expect(seg["version"]?.intValue == 1)
    }

    @Test func aDefinitionChangeReevaluatesEveryone() throws {
        let s = try Scratch()
        try s.append([order("u1", 0, 20), order("u1", 1, 20), order("u2", 2, 300),
                      #"{"type":"identify","userId":"u3","traits":{"plan":"pro"},"timestamp":"\#(day(3))"}"#])
        var v = try s.views()
        // Defined after the events: the backfill counts the history.
        try define(s, "big", #"{"event":"Order Completed","at_least":2}"#)
        v = try s.views()
        #expect(try v.memberUsers("big") == ["u1"])
        try define(s, "big", #"{"any":[{"computed":"total_revenue","gte":100},{"trait":"plan","eq":"pro"}]}"#)
        v = try s.views()
        #expect(try v.memberUsers("big") == ["u2", "u3"])
        #expect(try v.segments.segment("big")?["version"]?.intValue == 2)
        // Segment references, and the profile lists its segments.
        try define(s, "big_pro", #"{"all":[{"segment":"big"},{"trait":"plan","eq":"pro"}]}"#)
        v = try s.views()
        #expect(try v.memberUsers("big_pro") == ["u3"])
        let pid = try #require(try v.profiles.resolve(id("user_id:u3")))
        #expect(try v.segments.segments(ofProfile: pid).contains("big_pro"))
        // An invalid definition in the log is a recorded failure, not a stall.
        try define(s, "bad", #"{"segment":"nowhere"}"#)
        v = try s.views()
        #expect(try v.generation.failures().contains { $0.projection == "segments" && $0.error.contains("nowhere") })
        #expect(try v.segments.segment("bad") == nil)
    }

    @Test func mergesMoveCountersAndMemberships() throws {
        let s = try Scratch()
        try define(s, "two_orders", #"{"event":"Order Completed","at_least":2,"within":"30d"}"#)
        try s.append([#"{"type":"track","anonymousId":"a1","event":"Order Completed","properties":{"order_id":"x1","revenue":5},"timestamp":"\#(day(0))"}"#,
                      order("u9", 1, 7)])
        var v = try s.views()
        #expect(try v.members("two_orders").isEmpty)
        try s.append([#"{"type":"identify","anonymousId":"a1","userId":"u9","timestamp":"\#(day(2))"}"#])
        v = try s.views()
        #expect(try v.memberUsers("two_orders") == ["u9"])
        #expect(try v.members("two_orders").count == 1)
    }

    /// Random logs: whatever the batching, incremental membership equals a recomputation from
    /// scratch at the final clock.
    @Test func incrementalMembershipEqualsFullRecomputation() throws {
        var rng = SplitMix(seed: 42)
        for round in 0..<4 {
            let s = try Scratch()
            var lines: [String] = []
            let events = ["Order Completed", "Product Viewed", "Checkout Started"]
            for i in 0..<160 {
                let u = "u\(rng.next() % 25)"
                let d = Int(rng.next() % 120)
                let e = events[Int(rng.next() % 3)]
                let ch = ["web", "pos", "mobile"][Int(rng.next() % 3)]
                if rng.next() % 9 == 0 {
                    lines.append(#"{"type":"identify","userId":"\#(u)","traits":{"plan":"\#(["pro", "free"][Int(rng.next() % 2)])"},"timestamp":"\#(day(d))"}"#)
                } else if rng.next() % 13 == 0 {
                    // A merge: an anonymous history joins a user.
                    lines.append(#"{"type":"identify","anonymousId":"anon-\#(rng.next() % 10)","userId":"\#(u)","timestamp":"\#(day(d))"}"#)
                } else {
                    let who = rng.next() % 4 == 0 ? #""anonymousId":"anon-\#(rng.next() % 10)""# : #""userId":"\#(u)""#
                    lines.append(#"{"type":"track",\#(who),"event":"\#(e)","properties":{"order_id":"o\#(round)-\#(i)","revenue":\#(rng.next() % 200)},"context":{"channel":"\#(ch)"},"timestamp":"\#(day(d, Int(rng.next() % 24)))"}"#)
                }
            }
            try define(s, "active30", #"{"event":"Product Viewed","at_least":1,"within":"30d"}"#)
            try define(s, "pos_buyers", #"{"event":"Order Completed","at_least":2,"within":"45d","where":{"channel":"pos"}}"#)
            try define(s, "quiet", #"{"all":[{"computed":"event_count","gte":2},{"computed":"last_seen","before":"-20d"}]}"#)
            try define(s, "pro_not_quiet", #"{"all":[{"trait":"plan","eq":"pro"},{"not":{"segment":"quiet"}}]}"#)
            try define(s, "range", #"{"event":"Checkout Started","between":["2025-04-01","2025-05-15"],"at_most":1}"#)
            for chunk in stride(from: 0, to: lines.count, by: 40) {
                try s.append(Array(lines[chunk..<min(chunk + 40, lines.count)]))
                if chunk == 80 { try define(s, "active30", #"{"event":"Product Viewed","at_least":2,"within":"30d"}"#) }
            }
            let store = ViewStore(dataDirectory: s.dir)
            var digests: [String] = []
            for (name, batch) in [("a", 4096), ("b", 1 + Int(rng.next() % 9)), ("c", 4096)] {
                let g = try store.open(name, set: ProjectionSet())
                try ProjectionRunner(log: s.log, generation: g, batchSize: batch).catchUp()
                let reader = try SegmentReader(g)
                let full = try reader.fullRecompute(log: s.log)
                for key in ["active30", "pos_buyers", "quiet", "pro_not_quiet", "range", "churn_risk", "new_customers", "cart_abandoners"] {
                    #expect(Set(try reader.allMembers(key)) == (full[key] ?? []), "round \(round) batch \(batch) segment \(key)")
                }
                digests.append(try g.digest(SegmentProjection.projectionName))
            }
            // Replaying the same log with the same batching gives byte-identical segment views.
            #expect(digests[0] == digests[2])
        }
    }
}


