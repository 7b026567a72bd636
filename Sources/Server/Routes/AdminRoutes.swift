import EventLog
import Hummingbird
import JSONCore

/// Read and admin calls over the log and the admin store, behind API keys:
/// `GET /v1/stats` (scope `read`): the log's size and efficiency;
/// `GET /v1/admin/sources` (scope `admin`): sources and their keys (names, never keys);
/// `GET /v1/admin/dead-letters?after=&limit=` (scope `admin`): rejected inputs with reasons.
public struct AdminRoutes: Sendable {
    public let log: EventLog
    public let keys: KeyRing

    public init(log: EventLog, keys: KeyRing) {
        self.log = log
        self.keys = keys
    }

    public func add(to router: some RouterMethods<TouchstoneRequestContext>) {
        router.group("/v1/stats")
            .add(middleware: APIKeyMiddleware(keys: keys, scope: .read))
            .get { _, _ in
                let s = try log.stats()
                return Response.json([
                    "events": .int(Int64(s.events)), "lastSeq": .int(Int64(s.last_seq)), "deadLetters": .int(Int64(s.rejected)),
                    "bytesOnDisk": .int(Int64(s.bytes_on_disk)), "bytesPerEvent": .double(s.bytes_per_event),
                    "compressionRatio": .double(s.compression_ratio), "mapUsed": .double(s.map_used),
                ])
            }
        let admin = router.group("/v1/admin").add(middleware: APIKeyMiddleware(keys: keys, scope: .admin))
        admin.get("sources") { _, _ in
            let records = try keys.store.listKeys()
            let sources: [JSON] = try keys.store.listSources().map { s in
                var o: [(String, JSON)] = [("name", .string(s.name)), ("channel", .string(s.channel)),
                                           ("created", .string(Timestamp.format(s.created)))]
                o.append(("eventsPerSecond", s.eventsPerSecond.map(JSON.double) ?? .null))
                o.append(("keys", .array(records.filter { $0.source == s.name }.map(Self.describe))))
                return .object(o)
            }
            let apiKeys = records.filter { $0.kind == .api }.map(Self.describe)
            return Response.json(["sources": .array(sources), "apiKeys": .array(apiKeys)])
        }
        admin.get("dead-letters") { request, _ in
            let after = request.uri.queryParameters.get("after", as: UInt64.self) ?? 0
            let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 100, 1), 1000)
            let letters: [JSON] = try log.deadLetters(after: after, limit: limit).map { d in
                ["id": .int(Int64(d.id)), "time": .string(Timestamp.format(d.time)), "source": .string(d.source),
                 "code": .string(d.code), "reason": .string(d.reason), "bytes": .int(Int64(d.raw.count)),
                 "raw": .string(String(decoding: d.raw, as: UTF8.self))]
            }
            return Response.json(["deadLetters": .array(letters)])
        }
    }

    static func describe(_ r: KeyRecord) -> JSON {
        var o: [(String, JSON)] = [("name", .string(r.name)), ("kind", .string(r.kind.rawValue)), ("hint", .string("…" + r.hint)),
                                   ("created", .string(Timestamp.format(r.created)))]
        if let s = r.scope { o.append(("scope", .string(s.rawValue))) }
        o.append(("revoked", r.revoked.map { .string(Timestamp.format($0)) } ?? .null))
        return .object(o)
    }
}
