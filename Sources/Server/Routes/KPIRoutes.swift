import EventLog
import Foundation
import Hummingbird
import JSONCore
import Projections

/// The KPI API (scope `read`):
/// `GET /v1/kpis?from=YYYY-MM-DD&to=YYYY-MM-DD&granularity=day|week|month&channel=` — the series
/// (default: the last 30 days with data, by day, every channel);
/// `GET /v1/kpis/cohorts` — retention by monthly cohort and monthly churn. Both accept `min_seq`.
public struct KPIRoutes: Sendable {
    public let views: LiveViews
    public let keys: KeyRing
    public let maxWait: Duration

    public init(views: LiveViews, keys: KeyRing, maxWait: Duration) {
        self.views = views
        self.keys = keys
        self.maxWait = maxWait
    }

    public func add(to router: some RouterMethods<TouchstoneRequestContext>) {
        let group = router.group("/v1/kpis").add(middleware: APIKeyMiddleware(keys: keys, scope: .read))
        group.get { request, _ in
            try await MinSeq.wait(request, views: views, maxWait: maxWait)
            let q = request.uri.queryParameters
            let reader = try views.kpis
            let gran: Granularity
            if let g = q.get("granularity") {
                guard let v = Granularity(name: g) else {
                    throw APIError(.badRequest, code: "invalid_parameter", message: "granularity must be day, week or month")
                }
                gran = v
            } else { gran = .day }
            func day(_ name: String) throws -> Int? {
                guard let s = q.get(name) else { return nil }
                guard let t = Timestamp.parse(s.count == 10 ? s + "T00:00:00Z" : s) else {
                    throw APIError(.badRequest, code: "invalid_parameter", message: "\(name) must be a date (YYYY-MM-DD)")
                }
                return Timestamp.day(t)
            }
            let range = try reader.range()
            let to = try day("to") ?? range?.1 ?? Timestamp.day(nowMicros())
            let from = try day("from") ?? (to - 29)
            guard from <= to else { throw APIError(.badRequest, code: "invalid_parameter", message: "from is after to") }
            guard to - from <= 3660 else { throw APIError(.badRequest, code: "invalid_parameter", message: "at most 10 years at once") }
            let channel = q.get("channel")
            let series = try reader.series(from: from, to: to, granularity: gran, channel: channel)
            return Response.json(["granularity": .string(gran.name), "channel": .string(channel ?? "all"),
                                  "from": .string(Timestamp.formatDay(from)), "to": .string(Timestamp.formatDay(to)),
                                  "series": .array(series)])
        }
        group.get("cohorts") { request, _ in
            try await MinSeq.wait(request, views: views, maxWait: maxWait)
            return Response.json(try views.kpis.cohorts())
        }
    }
}
