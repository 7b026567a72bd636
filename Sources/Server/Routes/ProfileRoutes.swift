import EventLog
import Foundation
import Hummingbird
import JSONCore
import Projections

/// The profile API (scope `read`):
/// `GET /v1/profiles/{type}:{value}` — the unified profile;
/// `GET /v1/profiles/{type}:{value}/events?limit=&before=` — its timeline, newest first.
///
/// `{type}` is `user_id`, `anonymous_id`, `email`, `phone`, `device_id`, an external id type,
/// or `profile_id` (a merged-away id resolves to its survivor). Values are normalised as the
/// resolver normalises them (an email is matched case-insensitively). Every call accepts
/// `min_seq=N`: it waits (up to `query.maxWaitMillis`) until the views have applied seq N —
/// read-your-writes after a tracking call's `seq` — and answers 504 if they have not.
public struct ProfileRoutes: Sendable {
    public let log: EventLog
    public let views: LiveViews
    public let keys: KeyRing
    public let maxWait: Duration

    public init(log: EventLog, views: LiveViews, keys: KeyRing, maxWait: Duration) {
        self.log = log
        self.views = views
        self.keys = keys
        self.maxWait = maxWait
    }

    public func add(to router: some RouterMethods<TouchstoneRequestContext>) {
        let group = router.group("/v1/profiles").add(middleware: APIKeyMiddleware(keys: keys, scope: .read))
        group.get("{id}") { request, context in
            let id = try Self.identifier(context)
            try await waitForMinSeq(request)
            // Identity, profile and segments from one snapshot, written as text without a tree.
            guard let response = try views.profiles.document(id, { Response.json(text: $0) }) else { throw Self.notFound(id) }
            return response
        }
        group.get("{id}/events") { request, context in
            let id = try Self.identifier(context)
            try await waitForMinSeq(request)
            let q = request.uri.queryParameters
            let limit = q.get("limit", as: Int.self) ?? 50
            guard (1...1000).contains(limit) else {
                throw APIError(.badRequest, code: "invalid_parameter", message: "limit must be 1–1000 (got \(limit))")
            }
            var before: UInt64?
            if let b = q.get("before") {
                guard let v = UInt64(b) else { throw APIError(.badRequest, code: "invalid_parameter", message: "before must be a seq (a positive integer)") }
                before = v
            }
            let reader = views.profiles
            guard let pid = try reader.profileID(id), let seqs = try reader.timeline(id, before: before, limit: limit) else { throw Self.notFound(id) }
            var events: [JSON] = []
            try log.forEach(seqs: seqs) { events.append($0.exportJSON) }  // a block decompressed once for its events
            let next: JSON = seqs.count == limit ? .int(Int64(seqs.last!)) : .null
            return Response.json(["profile_id": .string(pid), "events": .array(events), "next_before": next])
        }
    }

    /// `{type}:{value}` from the path (shared with the privacy routes).
    static func identifier(_ context: TouchstoneRequestContext) throws -> Identifier {
        let raw = context.parameters.get("id") ?? ""
        let text = raw.removingPercentEncoding ?? raw
        guard let id = Identifier.parse(text) else {
            throw APIError(.badRequest, code: "invalid_identifier",
                           message: "expected {type}:{value}, e.g. email:jane@example.com, user_id:u1 or profile_id:p12 (a \(text.contains(":") ? "valid value" : "colon") is missing)")
        }
        return id
    }

    static func notFound(_ id: Identifier) -> APIError {
        APIError(.notFound, code: "profile_not_found", message: "no profile has the identifier \(id.type):… (the value is not echoed)")
    }

    func waitForMinSeq(_ request: Request) async throws {
        try await MinSeq.wait(request, views: views, maxWait: maxWait)
    }
}
