import EventLog
import Foundation
import Hummingbird
import JSONCore
import Projections

/// Data rights (scope `admin`):
/// `DELETE /v1/profiles/{type}:{value}` — erasure: the customer's identifiers are suppressed
/// (new events for them are refused into the dead letters with reason `suppressed`), a
/// `Profile Erased` event holding only salted hashes is appended, and the answer comes once
/// the views have dropped the profile: from then on every profile call answers 404.
/// `GET /v1/profiles/{type}:{value}/export` — the subject access export.
/// `GET /v1/admin/audit?after=&limit=` — the audit log of admin actions.
public struct PrivacyRoutes: Sendable {
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
        let admin = router.group("/v1/profiles").add(middleware: APIKeyMiddleware(keys: keys, scope: .admin))
        admin.delete("{id}") { _, context in
            let id = try ProfileRoutes.identifier(context)
            let actor = "key:" + (context.principal?.keyName ?? "?")
            guard let result = try views.erase(id, actor: actor) else { throw ProfileRoutes.notFound(id) }
            // "At once": answer when the views no longer hold the profile.
            let visible = await views.waitForApplied(result.seq, timeout: max(maxWait, .seconds(10)))
            context.logger.notice("profile erased", metadata: ["profile": .string(result.profileID), "seq": "\(result.seq)"])
            return Response.json(["erased": true, "profile_id": .string(result.profileID), "seq": .int(Int64(result.seq)),
                                  "identifiers_suppressed": .int(Int64(result.identifiers)), "applied": .bool(visible)])
        }
        admin.get("{id}/export") { _, context in
            let id = try ProfileRoutes.identifier(context)
            let actor = "key:" + (context.principal?.keyName ?? "?")
            guard let doc = try views.subjectExport(id, actor: actor) else { throw ProfileRoutes.notFound(id) }
            return Response.json(doc, headers: [.contentDisposition: "attachment; filename=\"subject-export.json\""])
        }
        router.group("/v1/admin/audit").add(middleware: APIKeyMiddleware(keys: keys, scope: .admin)).get { request, _ in
            let after = request.uri.queryParameters.get("after", as: UInt64.self) ?? 0
            let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 100, 1), 1000)
            return Response.json(["audit": .array(try log.auditEntries(after: after, limit: limit).map(\.json))])
        }
    }
}
