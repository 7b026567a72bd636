import EventLog
import Foundation
import Hummingbird
import JSONCore
import Projections

/// The segment API:
/// `PUT /v1/segments/{key}` (scope `admin`) — validates `{name, rule}` (400 `invalid_rule` with
/// the JSON path of the bad node) and appends a `Segment Defined` system event; answers with its
/// `seq` (query with `min_seq` to read the evaluated segment);
/// `GET /v1/segments`, `GET /v1/segments/{key}` (definition, size, updated),
/// `GET /v1/segments/{key}/members?after=&limit=`, `GET /v1/segments/{key}/changes?after=&limit=`
/// (scope `read`). Every read accepts `min_seq`.
public struct SegmentRoutes: Sendable {
    public let views: LiveViews
    public let ingestor: Ingestor
    public let keys: KeyRing
    public let maxWait: Duration

    public init(views: LiveViews, ingestor: Ingestor, keys: KeyRing, maxWait: Duration) {
        self.views = views
        self.ingestor = ingestor
        self.keys = keys
        self.maxWait = maxWait
    }

    public func add(to router: some RouterMethods<TouchstoneRequestContext>) {
        let admin = router.group("/v1/segments").add(middleware: APIKeyMiddleware(keys: keys, scope: .admin))
        admin.put("{key}") { request, context in
            let key = context.parameters.get("key") ?? ""
            let raw = try await request.body.collect(upTo: 256 * 1024)
            guard let body = try? JSON.parse(Array(raw.readableBytesView)) else {
                throw APIError(.badRequest, code: "malformed_json", message: "the body is not valid JSON")
            }
            let valid: JSON
            let existing = try views.segments.references()
            do {
                valid = try SegmentValidation.validate(key: key, body: body, existing: existing)
            } catch let error as RuleError {
                return Response.json(["success": false, "error": ["code": "invalid_rule", "message": .string(error.description),
                                                                  "path": .string(error.path)]], status: .badRequest)
            }
            let now = nowMicros()
            let event = PreparedEvent.system(name: "Segment Defined", properties: valid, receivedAt: now)
            let outcome = try await ingestor.submit([event])
            let seq = outcome.first?.seq ?? 0
            try? views.log.recordAudit(actor: "key:" + (context.principal?.keyName ?? "?"), action: "segment-define",
                                       detail: "segment \(key), seq \(seq)", time: now)
            return Response.json(["success": true, "key": .string(key), "seq": .int(Int64(seq))], status: .accepted)
        }
        let read = router.group("/v1/segments").add(middleware: APIKeyMiddleware(keys: keys, scope: .read))
        read.get { request, _ in
            try await waitForMinSeq(request)
            return Response.json(["segments": .array(try views.segments.list())])
        }
        read.get("{key}") { request, context in
            try await waitForMinSeq(request)
            let key = context.parameters.get("key") ?? ""
            guard let s = try views.segments.segment(key) else { throw notFound(key) }
            return Response.json(s)
        }
        read.get("{key}/members") { request, context in
            try await waitForMinSeq(request)
            let key = context.parameters.get("key") ?? ""
            let reader = try views.segments
            guard try reader.segment(key) != nil else { throw notFound(key) }
            let q = request.uri.queryParameters
            let limit = q.get("limit", as: Int.self) ?? 100
            guard (1...10_000).contains(limit) else { throw APIError(.badRequest, code: "invalid_parameter", message: "limit must be 1–10000") }
            var after: UInt64?
            if let a = q.get("after") {
                guard let v = UInt64(a.hasPrefix("p") ? String(a.dropFirst()) : a) else {
                    throw APIError(.badRequest, code: "invalid_parameter", message: "after must be a profile id (p123)")
                }
                after = v
            }
            let page = try reader.members(key, after: after, limit: limit)
            let items: [JSON] = page.map { ["profile_id": .string("p\($0.profile)"), "entered_at": .string(Timestamp.format($0.entered))] }
            let next: JSON = page.count == limit ? .string("p\(page.last!.profile)") : .null
            return Response.json(["key": .string(key), "members": .array(items), "next_after": next])
        }
        read.get("{key}/changes") { request, context in
            try await waitForMinSeq(request)
            let key = context.parameters.get("key") ?? ""
            let reader = try views.segments
            guard try reader.segment(key) != nil else { throw notFound(key) }
            let q = request.uri.queryParameters
            let limit = q.get("limit", as: Int.self) ?? 100
            guard (1...10_000).contains(limit) else { throw APIError(.badRequest, code: "invalid_parameter", message: "limit must be 1–10000") }
            var after: UInt64 = 0
            if let a = q.get("after") {
                guard let v = UInt64(a) else { throw APIError(.badRequest, code: "invalid_parameter", message: "after must be a change id") }
                after = v
            }
            let page = try reader.changes(key, after: after, limit: limit)
            let items: [JSON] = page.map {
                ["id": .int(Int64($0.id)), "profile_id": .string("p\($0.profile)"), "change": .string($0.enter ? "enter" : "exit"),
                 "time": .string(Timestamp.format($0.time))]
            }
            let next: JSON = page.last.map { .int(Int64($0.id)) } ?? .int(Int64(after))
            return Response.json(["key": .string(key), "changes": .array(items), "next_after": next])
        }
    }

    func notFound(_ key: String) -> APIError {
        APIError(.notFound, code: "segment_not_found", message: "no segment \(key)")
    }

    func waitForMinSeq(_ request: Request) async throws {
        try await MinSeq.wait(request, views: views, maxWait: maxWait)
    }
}
