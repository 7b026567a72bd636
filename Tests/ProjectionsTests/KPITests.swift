import EventLog
import Foundation
import JSONCore
import LMDB
@testable import Projections
import Testing

@Suite(.serialized) struct KPITests {
    static func dayNumber(_ s: String) -> Int { Timestamp.day(Timestamp.parse(s + "T00:00:00Z")!) }

    @Test func handComputedKPIsPerDayChannelWeekAndMonth() throws {
        let s = try Scratch()
        // 2025-03-01 (day 0, a Saturday) … day(d) is noon on 2025-03-01 + d days.
        try s.append([
            #"{"type":"page","userId":"a","name":"Home","context":{"channel":"web"},"timestamp":"\#(day(0))"}"#,
            order("a", 0, 100, id: "o1", channel: "web"),
            order("a", 0, 50, id: "o2", channel: "web"),
            order("a", 0, 50, id: "o2", channel: "web"),  // the same order again: counted once
            #"{"type":"page","userId":"b","name":"Home","context":{"channel":"web"},"timestamp":"\#(day(0))"}"#,
            order("c", 0, 30, id: "o3", channel: "pos"),
            order("a", 2, 20, id: "o4", channel: "web"),   // a returns on day 2
            #"{"type":"track","userId":"a","event":"Order Refunded","properties":{"order_id":"o1","total":100},"context":{"channel":"web"},"timestamp":"\#(day(3))"}"#,
            #"{"type":"track","userId":"b","event":"Survey Responded","properties":{"survey":"nps","score":10},"context":{"channel":"web"},"timestamp":"\#(day(0))"}"#,
            #"{"type":"track","userId":"c","event":"Survey Responded","properties":{"survey":"nps","score":3},"context":{"channel":"web"},"timestamp":"\#(day(0))"}"#,
            #"{"type":"track","userId":"a","event":"Survey Responded","properties":{"survey":"nps","score":8},"context":{"channel":"web"},"timestamp":"\#(day(0))"}"#,
            #"{"type":"track","userId":"a","event":"Survey Responded","properties":{"survey":"csat","score":5},"context":{"channel":"web"},"timestamp":"\#(day(0))"}"#,
            #"{"type":"track","userId":"b","event":"Survey Responded","properties":{"survey":"csat","score":2},"context":{"channel":"web"},"timestamp":"\#(day(0))"}"#,
            #"{"type":"track","anonymousId":"system:marketing","event":"Marketing Spend","properties":{"channel":"web","amount":90},"context":{"channel":"server"},"timestamp":"\#(day(0))"}"#,
            order("d", 31, 40, id: "o5", channel: "web"),  // April
            order("a", 32, 10, id: "o6", channel: "web"),  // a orders in April too: retained
        ])
        let v = try s.views()
        let k = try v.kpis
        let d0 = Self.dayNumber("2025-03-01")
        let all = try k.series(from: d0, to: d0, granularity: .day, channel: nil)[0]
        #expect(all["period"]?.stringValue == "2025-03-01")
        #expect(all["active_customers"]?.intValue == 3)  // a, b, c
        #expect(all["orders"]?.intValue == 3)            // o1, o2, o3
        #expect(all["revenue"]?.doubleValue == 180)
        #expect(all["aov"]?.doubleValue == 60)
        #expect(all["new_customers"]?.intValue == 2)     // a, c
        #expect(all["conversion_rate"]?.doubleValue == 0.6667)
        #expect(all["nps"]?.doubleValue == 0)            // (1 promoter − 1 detractor) / 3
        #expect(all["csat"]?.doubleValue == 50)
        #expect(all["marketing_spend"]?.doubleValue == 90)
        #expect(all["cac"]?.doubleValue == 45)
        let web = try k.series(from: d0, to: d0, granularity: .day, channel: "web")[0]
        #expect(web["active_customers"]?.intValue == 3)  // a, b and c (c answered a survey on the web)
        #expect(web["orders"]?.intValue == 2)
        #expect(web["new_customers"]?.intValue == 1)
        #expect(web["cac"]?.doubleValue == 90)
        let pos = try k.series(from: d0, to: d0, granularity: .day, channel: "pos")[0]
        #expect(pos["orders"]?.intValue == 1)
        #expect(pos["revenue"]?.doubleValue == 30)
        // Day 2: a returns (repeat purchase); day 3: a refund.
        let days = try k.series(from: d0, to: d0 + 3, granularity: .day, channel: nil)
        #expect(days.count == 4)
        #expect(days[1]["orders"]?.intValue == 0)
        #expect(days[2]["repeat_purchase_rate"]?.doubleValue == 1)
        #expect(days[3]["refunds"]?.intValue == 1)
        #expect(days[3]["refund_amount"]?.doubleValue == 100)
        // Weeks: 2025-03-01 is a Saturday, in the week of Monday 2025-02-24; distinct actives are not summed days.
        let weeks = try k.series(from: d0, to: d0 + 3, granularity: .week, channel: nil)
        #expect(weeks.map { $0["period"]?.stringValue } == ["2025-02-24", "2025-03-03"])
        #expect(weeks[0]["active_customers"]?.intValue == 3)
        #expect(weeks[1]["active_customers"]?.intValue == 1)
        #expect(weeks[1]["refund_rate"]?.doubleValue == 1)
        // Months: March and April; April retains a (ordered in March) of March's 2 ordering customers.
        let months = try k.series(from: d0, to: d0 + 40, granularity: .month, channel: nil)
        #expect(months.map { $0["period"]?.stringValue } == ["2025-03", "2025-04"])
        #expect(months[0]["orders"]?.intValue == 4)
        #expect(months[0]["revenue"]?.doubleValue == 200)
        #expect(months[0]["active_customers"]?.intValue == 3)
        #expect(months[0]["repeat_purchase_rate"]?.doubleValue == 0.5)  // a returned within March; c did not
        #expect(months[1]["churn_rate"]?.doubleValue == 0.5)             // c churned, a stayed
        #expect(months[1]["new_customers"]?.intValue == 1)
        #expect(months[1]["clv_historic"]?.doubleValue == 83.3333)  // 250 revenue over 3 customers
        #expect(months[1]["clv_predicted"]?.doubleValue != nil)
        // Cohorts: March {a, c}: a ordered again in April → 50 %; April {d}.
        let cohorts = try k.cohorts()
        let c = cohorts["cohorts"]?.arrayValue ?? []
        #expect(c.count == 2)
        #expect(c.first?["cohort"]?.stringValue == "2025-03")
        #expect(c.first?["size"]?.intValue == 2)
        #expect(c.first?["retention"] == .array([.double(1), .double(0.5)]))
    }

    @Test func aMergedCustomerIsOneNewCustomer() throws {
        let s = try Scratch()
        try s.append([
            #"{"type":"track","anonymousId":"x","event":"Order Completed","properties":{"order_id":"m1","revenue":5},"timestamp":"\#(day(0))"}"#,
            order("u", 1, 7, id: "m2"),
            #"{"type":"identify","anonymousId":"x","userId":"u","timestamp":"\#(day(2))"}"#,
        ])
        let k = try s.views().kpis
        let d0 = Self.dayNumber("2025-03-01")
        let days = try k.series(from: d0, to: d0 + 2, granularity: .day, channel: nil)
        #expect(days.map { $0["new_customers"]?.intValue } == [1, 0, 0])
        #expect(try k.series(from: d0, to: d0, granularity: .month, channel: nil)[0]["new_customers"]?.intValue == 1)
    }

    @Test func theDatagenTruthRevenuePerDayAndOrdersPerChannel() throws {
        let (s, truth) = try FoldTests.datagenLog(customers: 300, seed: 17)
        let v = try s.views()
        let k = try v.kpis
        let (first, last) = try #require(try k.range())
        let series = try k.series(from: first, to: last, granularity: .day, channel: nil)
        var byDay: [String: Double] = [:]
        for d in series { byDay[d["period"]!.stringValue!] = d["revenue"]?.doubleValue ?? 0 }
        var total = 0.0
        for (d, r) in truth["revenue_by_day"]?.objectValue ?? [] {
            #expect(abs((byDay[d] ?? 0) - (r.doubleValue ?? 0)) < 0.005, "revenue on \(d)")
            total += r.doubleValue ?? 0
        }
        #expect(abs(series.reduce(0) { $0 + ($1["revenue"]?.doubleValue ?? 0) } - (truth["revenue"]?.doubleValue ?? 0)) < 0.01)
        #expect(abs(total - (truth["revenue"]?.doubleValue ?? 0)) < 0.01)
        for (ch, n) in truth["orders_by_channel"]?.objectValue ?? [] {
            let days = try k.series(from: first, to: last, granularity: .month, channel: ch)
            #expect(days.reduce(0) { $0 + ($1["orders"]?.intValue ?? 0) } == n.intValue, "orders on \(ch)")
        }
        let months = try k.series(from: first, to: last, granularity: .month, channel: nil)
        #expect(months.reduce(0) { $0 + ($1["orders"]?.intValue ?? 0) } == truth["orders"]?.intValue)
        var spend = 0.0
        for (ch, amount) in truth["marketing_spend_by_channel"]?.objectValue ?? [] {
            let m = try k.series(from: first, to: last, granularity: .month, channel: ch)
            let got = m.reduce(0) { $0 + ($1["marketing_spend"]?.doubleValue ?? 0) }
            #expect(abs(got - (amount.doubleValue ?? 0)) < 0.01, "spend on \(ch)")
            spend += got
        }
        #expect(spend > 0)
        // Every customer with an order is one new customer.
        let customers = (truth["per_customer"]?.arrayValue ?? []).filter { ($0["orders"]?.intValue ?? 0) > 0 }.count
        #expect(months.reduce(0) { $0 + ($1["new_customers"]?.intValue ?? 0) } == Int64(customers))
        // A year of daily KPIs answers fast in-process.
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<20 { _ = try k.series(from: last - 364, to: last, granularity: .day, channel: nil) }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 20 / 1e6
        print("a year of daily KPIs: \(ms) ms (debug build)")
    }

    @Test func replayGivesIdenticalSegmentsAndKPIs() throws {
        let (s, _) = try FoldTests.datagenLog(customers: 120, seed: 23)
        try define(s, "loyal_web", #"{"all":[{"computed":"order_count","gte":2},{"event":"Order Completed","within":"60d","where":{"channel":"web"}}]}"#)
        let store = ViewStore(dataDirectory: s.dir)
        var seg: [String] = [], kpi: [String] = [], members: [[UInt64]] = []
        for (name, batch) in [("a", 4096), ("b", 4096), ("c", 257)] {
            let g = try store.open(name, set: ProjectionSet())
            try ProjectionRunner(log: s.log, generation: g, batchSize: batch).catchUp()
            seg.append(try g.digest(SegmentProjection.projectionName))
            kpi.append(try g.digest(KPIProjection.projectionName))
            members.append(try SegmentReader(g).allMembers("loyal_web"))
        }
        #expect(seg[0] == seg[1])
        #expect(kpi[0] == kpi[1])
        // The KPI views do not depend on the batching; nor does the membership of per-profile segments.
        #expect(kpi[0] == kpi[2])
        #expect(members[0] == members[2])
        #expect(!members[0].isEmpty)
    }
}
