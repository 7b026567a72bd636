import EventLog
import Foundation
import JSONCore
import LMDB

/// Read access to the KPI views of one generation (any thread).
public struct KPIReader: Sendable {
    public let generation: ViewGeneration
    let k: KPIProjection

    public init(_ generation: ViewGeneration) throws {
        guard let k = generation.projection(named: KPIProjection.projectionName) as? KPIProjection else {
            throw ViewsError("generation \(generation.name) has no kpis projection")
        }
        self.generation = generation
        self.k = k
    }

    /// The predicted-CLV lifespan cap, in months (when churn is 0).
    public static let maxLifespanMonths = 120.0

    /// Cells of `channel` ("" = all) at `gran`, in period order, through `to` (inclusive).
    private func cells(_ tx: borrowing ReadTransaction, channel: String, gran: Granularity, through to: Int) throws -> [(Int, KPICell)] {
        let prefix = Array(channel.utf8) + [0, gran.rawValue]
        var out: [(Int, KPICell)] = []
        try tx.scan(k.cellsDB, from: prefix) { key, v in
            guard key.count == prefix.count + 4, Array(key.prefix(prefix.count)) == prefix else { return false }
            let p = Int(KPIProjection.unperiod(key, at: prefix.count))
            if p > to { return false }
            out.append((p, try KPICell.decode(v)))
            return true
        }
        return out
    }

    /// Monthly churn rates (channel all): month → 1 − retained ÷ ordering customers of the month before.
    private func churn(_ tx: borrowing ReadTransaction, through month: Int) throws -> [Int: Double] {
        let months = try cells(tx, channel: "", gran: .month, through: month)
        var ordering: [Int: Int64] = [:]
        for (p, c) in months { ordering[p] = c[KPICell.ordering] }
        var out: [Int: Double] = [:]
        for (p, c) in months {
            guard let prev = ordering[p - 1], prev > 0 else { continue }
            out[p] = max(0, 1 - Double(c[KPICell.retained]) / Double(prev))
        }
        return out
    }

    /// The KPI series for days `from`…`to` (UTC day numbers, inclusive) at `granularity`, for
    /// `channel` (nil or "all": every channel). Periods without activity are listed with zeros.
    public func series(from: Int, to: Int, granularity: Granularity, channel: String?) throws -> [JSON] {
        let ch = (channel == nil || channel == "all") ? "" : channel!
        let first = granularity.period(ofDay: from), last = granularity.period(ofDay: to)
        return try generation.environment.read { tx in
            let all = try cells(tx, channel: ch, gran: granularity, through: last)
            let lastMonth = Granularity.month.period(ofDay: to)
            let churns = try churn(tx, through: lastMonth)
            let firstOrderMonth = try cells(tx, channel: "", gran: .month, through: lastMonth).first { $0.1[KPICell.orders] > 0 }?.0
            // Cumulative totals before the first period asked for.
            var cum = KPICell()
            var i = 0
            while i < all.count && all[i].0 < first { cum += all[i].1; i += 1 }
            var out: [JSON] = []
            var p = first
            while p <= last {
                var c = KPICell()
                if i < all.count && all[i].0 == p { c = all[i].1; i += 1 }
                cum += c
                let endDay = min(to, granularity.firstDay(granularity.next(p)) - 1)
                let month = Granularity.month.period(ofDay: endDay)
                out.append(render(granularity.label(p), c, cum: cum, churn: churns[month], recentChurn: recent(churns, month),
                                  monthsOfHistory: firstOrderMonth.map { Double(month - $0 + 1) }, granularity: granularity))
                p = granularity.next(p)
                if out.count > 20_000 { break }
            }
            return out
        }
    }

    /// The mean churn of the (up to) three months through `month`.
    private func recent(_ churns: [Int: Double], _ month: Int) -> Double? {
        let values = (month - 2...month).compactMap { churns[$0] }
        return values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }

    private func ratio(_ a: Int64, _ b: Int64, scale: Double = 1) -> JSON {
        b == 0 ? .null : .double((Double(a) / Double(b) * scale * 10_000).rounded() / 10_000)
    }

    private func money(_ m: Int64) -> JSON { .double(Double(m) / 10_000) }

    private func render(_ label: String, _ c: KPICell, cum: KPICell, churn: Double?, recentChurn: Double?, monthsOfHistory: Double?,
                        granularity: Granularity) -> JSON {
        // Predicted CLV = AOV × purchase frequency (orders per customer per month) × expected
        // lifespan (months, 1 ÷ monthly churn), all as of the period's end.
        var predicted: JSON = .null
        if cum[KPICell.orders] > 0, cum[KPICell.newCustomers] > 0, let months = monthsOfHistory, months > 0 {
            let aov = Double(cum[KPICell.revenue]) / 10_000 / Double(cum[KPICell.orders])
            let frequency = Double(cum[KPICell.orders]) / Double(cum[KPICell.newCustomers]) / months
            let lifespan = recentChurn.map { $0 > 0 ? min(1 / $0, Self.maxLifespanMonths) : Self.maxLifespanMonths } ?? Self.maxLifespanMonths
            predicted = .double((aov * frequency * lifespan * 100).rounded() / 100)
        }
        let nps: JSON = c[KPICell.npsN] == 0 ? .null
            : .double((Double(c[KPICell.npsPromoters] - c[KPICell.npsDetractors]) / Double(c[KPICell.npsN]) * 1000).rounded() / 10)
        let orders = c[KPICell.orders], revenue = c[KPICell.revenue], newCustomers = c[KPICell.newCustomers], spend = c[KPICell.spend]
        let aov: JSON = orders == 0 ? .null : .double((Double(revenue) / Double(orders)).rounded() / 10_000)
        let cac: JSON = newCustomers == 0 || spend == 0 ? .null : .double((Double(spend) / 10_000 / Double(newCustomers) * 100).rounded() / 100)
        var churnRate: JSON = .null
        if granularity == .month, let churn { churnRate = .double((churn * 10_000).rounded() / 10_000) }
        let cumCustomers = cum[KPICell.newCustomers]
        let historic: JSON = cumCustomers == 0 ? .null : .double((Double(cum[KPICell.revenue]) / Double(cumCustomers)).rounded() / 10_000)
        var o: [(String, JSON)] = []
        o.reserveCapacity(24)
        o.append(("period", .string(label)))
        o.append(("active_customers", .int(c[KPICell.active])))
        o.append(("new_customers", .int(newCustomers)))
        o.append(("ordering_customers", .int(c[KPICell.ordering])))
        o.append(("orders", .int(orders)))
        o.append(("revenue", money(revenue)))
        o.append(("aov", aov))
        o.append(("conversion_rate", ratio(c[KPICell.ordering], c[KPICell.active])))
        o.append(("repeat_purchase_rate", ratio(c[KPICell.returning], c[KPICell.ordering])))
        o.append(("refunds", .int(c[KPICell.refunds])))
        o.append(("refund_amount", money(c[KPICell.refundAmount])))
        o.append(("refund_rate", ratio(c[KPICell.refunds], orders)))
        o.append(("marketing_spend", money(spend)))
        o.append(("cac", cac))
        o.append(("churn_rate", churnRate))
        o.append(("nps", nps))
        o.append(("nps_responses", .int(c[KPICell.npsN])))
        o.append(("csat", ratio(c[KPICell.csatSatisfied], c[KPICell.csatN], scale: 100)))
        o.append(("csat_average", ratio(c[KPICell.csatSum], c[KPICell.csatN])))
        o.append(("csat_responses", .int(c[KPICell.csatN])))
        o.append(("clv_historic", historic))
        o.append(("clv_predicted", predicted))
        o.append(("events", .int(c[KPICell.events])))
        return .object(o)
    }

    /// Retention by monthly cohort (month of first order): per cohort its size and, for each
    /// month since, the share of the cohort that ordered; plus monthly churn.
    public func cohorts() throws -> JSON {
        try generation.environment.read { tx in
            var rows: [Int: [Int: Int64]] = [:]
            try tx.scan(k.cohortsDB) { key, v in
                guard key.count == 8 else { return true }
                let cohort = Int(KPIProjection.unperiod(key, at: 0)), month = Int(KPIProjection.unperiod(key, at: 4))
                rows[cohort, default: [:]][month] = v.loadUnaligned(as: Int64.self)
                return true
            }
            let last = rows.values.flatMap(\.keys).max() ?? 0
            let churns = try churn(tx, through: last)
            var out: [JSON] = []
            for cohort in rows.keys.sorted() {
                let r = rows[cohort]!
                let size = r[cohort] ?? 0
                var retention: [JSON] = []
                if size > 0, last >= cohort {
                    for m in cohort...last { retention.append(.double((Double(r[m] ?? 0) / Double(size) * 10_000).rounded() / 10_000)) }
                }
                out.append(.object([("cohort", .string(Granularity.month.label(cohort))), ("size", .int(size)),
                                    ("retention", .array(retention))]))
            }
            let churn: [JSON] = churns.keys.sorted().map { m in
                .object([("month", .string(Granularity.month.label(m))), ("churn_rate", .double((churns[m]! * 10_000).rounded() / 10_000))])
            }
            return .object([("cohorts", .array(out)), ("churn", .array(churn))])
        }
    }

    /// The channels with KPI cells ("all" first).
    public func channels() throws -> [String] {
        try generation.environment.read { tx in
            var out: Set<String> = []
            try tx.scan(k.cellsDB) { key, _ in
                let b = Array(key)
                if let nul = b.firstIndex(of: 0) { out.insert(nul == 0 ? "all" : String(decoding: b[..<nul], as: UTF8.self)) }
                return true
            }
            return ["all"] + out.subtracting(["all"]).sorted()
        }
    }

    /// The first and last day with KPI data, if any.
    public func range() throws -> (Int, Int)? {
        try generation.environment.read { tx in
            let prefix: [UInt8] = [0, Granularity.day.rawValue]
            var first: Int?, last: Int?
            try tx.scan(k.cellsDB, from: prefix) { key, _ in
                guard key.count == 6, Array(key.prefix(2)) == prefix else { return false }
                let p = Int(KPIProjection.unperiod(key, at: 2))
                if first == nil { first = p }
                last = p
                return true
            }
            guard let first, let last else { return nil }
            return (first, last)
        }
    }
}

extension LiveViews {
    /// The KPI views of the live generation.
    public var kpis: KPIReader { get throws { try KPIReader(generation) } }
}
