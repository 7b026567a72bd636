import Foundation
import EventLog
import Hummingbird
import JSONCore
import NIOCore
import Projections

/// The replay job (scope `admin`), the API face of `touchstone-replay`:
/// `POST /v1/admin/replay` starts a rebuild of the views in this process — all projections or
/// the named ones, optionally up to a seq or an event time into a named generation — and,
/// unless time travelling or `dry_run`, makes it live once it has caught up (the server keeps
/// answering from the old generation until then); `GET /v1/admin/replay` reports its progress.
/// One job at a time: 409 while one runs (in this process or a `touchstone-replay`).
public struct ReplayRoutes: Sendable {
    public let views: LiveViews
    public let keys: KeyRing

    public init(views: LiveViews, keys: KeyRing) {
        self.views = views
        self.keys = keys
    }

    public func add(to router: some RouterMethods<TouchstoneRequestContext>) {
        let admin = router.group("/v1/admin/replay").add(middleware: APIKeyMiddleware(keys: keys, scope: .admin))
        admin.get { _, _ in
            Response.json(views.replay.status.json)
        }
        admin.post { request, context in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let plan = try Self.plan(Array(body.readableBytesView))
            do {
                let status = try views.replay.start(plan, views: views)
                try? views.log.recordAudit(actor: "key:" + (context.principal?.keyName ?? "?"), action: "replay",
                                           detail: "started \(plan.projections?.joined(separator: ",") ?? "all projections")" + (plan.untilSeq.map { " until seq \($0)" } ?? ""),
                                           time: nowMicros())
                return Response.json(status.json, status: .accepted)
            } catch is RebuildBusy {
                throw APIError(.conflict, code: "replay_running", message: "a replay is already running; GET /v1/admin/replay reports it")
            }
        }
    }

    /// The plan in a request body: `{"projections":[…],"until_seq":N,"until":TIME,"name":…,"dry_run":bool,"keep":N}`, all optional.
    static func plan(_ bytes: [UInt8]) throws -> RebuildPlan {
        var plan = RebuildPlan()
        guard bytes.contains(where: { !$0.isWhitespace }) else { return plan }
        let json: JSON
        do { json = try JSON.parse(bytes) } catch { throw bad("the body is not JSON: \(error)") }
        guard json.objectValue != nil else { throw bad("the body must be a JSON object") }
        if let p = json["projections"], p != .null {
            guard let names = p.arrayValue?.compactMap(\.stringValue), names.count == p.arrayValue?.count, !names.isEmpty else {
                throw bad("projections must be a non-empty array of names")
            }
            if let unknown = names.first(where: { !ProjectionSet.names.contains($0) }) {
                throw bad("no projection \(unknown) (have: \(ProjectionSet.names.joined(separator: ", ")))")
            }
            plan.projections = names
        }
        if let s = json["until_seq"], s != .null {
            guard let n = s.intValue, n >= 0 else { throw bad("until_seq must be a seq (an integer ≥ 0)") }
            plan.untilSeq = UInt64(n)
        }
        if let t = json["until"], t != .null {
            guard let text = t.stringValue, let micros = Timestamp.parse(text) else { throw bad("until must be an RFC 3339 date-time") }
            plan.untilTime = micros
        }
        if let n = json["name"], n != .null {
            guard let name = n.stringValue else { throw bad("name must be a string") }
            plan.target = name
        }
        if let d = json["dry_run"], d != .null {
            guard let b = d.boolValue else { throw bad("dry_run must be true or false") }
            plan.switchLive = !b
        }
        if let k = json["keep"], k != .null {
            guard let n = k.intValue, n >= 0 else { throw bad("keep must be an integer ≥ 0") }
            plan.keep = Int(n)
        }
        if plan.isTimeTravel { plan.switchLive = false }
        return plan
    }

    static func bad(_ message: String) -> APIError { APIError(.badRequest, code: "invalid_replay", message: message) }
}

extension UInt8 {
    fileprivate var isWhitespace: Bool { self == 0x20 || self == 0x0A || self == 0x0D || self == 0x09 }
}
