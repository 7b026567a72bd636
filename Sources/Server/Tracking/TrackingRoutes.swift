import EventLog
import Foundation
import Hummingbird
import JSONCore
import Logging
import NIOCore

/// The Segment-compatible tracking API: `POST /v1/{identify,track,page,screen,group,alias}`
/// and `POST /v1/batch`. Any Segment or RudderStack client pointed at this host works
/// unchanged.
///
/// - Auth: the write key as the HTTP Basic username (empty password), or `writeKey` in the body.
/// - Bodies: JSON, optionally `Content-Encoding: gzip` (inflated size capped).
/// - Answers: `200 {"success":true,"seq":N}` only once the events are durable; `seq` is the
///   highest seq the request wrote (for a retry: where the original is). A batch with invalid
///   messages still answers 200 — its valid messages are durable — with `"success":false`
///   and each rejected message by index and reason, so clients that retry anything but 200
///   do not resend a batch that can never fully succeed. 400 malformed or invalid, 401 key,
///   413 too large, 415 encoding, 429 rate limit (with `Retry-After`).
/// - Nothing is dropped silently: every rejected message, and every rejected body of an
///   authenticated request (the first `deadLetterBodyBytes` of an oversized one), is kept
///   in the dead letters, durably, before the answer.
///
/// Parsing, validation and compression run on the request's own task (all cores); only the
/// commit goes through the single-writer `Ingestor`.
public struct TrackingRoutes: Sendable {
    public let builder: EnvelopeBuilder
    public let ingestor: Ingestor
    public let keys: KeyRing
    public let metrics: ServerMetrics
    public let limits: TrackingLimits
    /// The rate limit of sources that set none; nil: unlimited.
    public let defaultEventsPerSecond: Double?
    let limiter = RateLimiter()

    public init(builder: EnvelopeBuilder, ingestor: Ingestor, keys: KeyRing, metrics: ServerMetrics,
                limits: TrackingLimits, defaultEventsPerSecond: Double?) {
        self.builder = builder
        self.ingestor = ingestor
        self.keys = keys
        self.metrics = metrics
        self.limits = limits
        self.defaultEventsPerSecond = defaultEventsPerSecond
    }

    public static let singleCalls: [EventType] = [.identify, .track, .page, .screen, .group, .alias]

    public func add(to router: some RouterMethods<TouchstoneRequestContext>) {
        for type in Self.singleCalls {
            router.post("/v1/\(type.name)") { request, context in
                try await handle(request, context, call: .single(type))
            }
        }
        router.post("/v1/batch") { request, context in
            try await handle(request, context, call: .batch)
        }
    }

    enum Call: Equatable {
        case single(EventType)
        case batch

        var label: String {
            switch self {
            case .single(let t): return t.name
            case .batch: return "batch"
            }
        }
    }

    // MARK: Handling

    func handle(_ request: Request, _ context: TouchstoneRequestContext, call: Call) async throws -> Response {
        let receivedAt = nowMicros()
        var logger = context.logger
        // 1. The key in the header, when there is one (checked before reading the body).
        var principal: Source?
        if let credentials = Credentials(request) {
            let key: String
            switch credentials {
            case .basic(let username, _): key = username
            case .bearer(let k): key = k
            case .malformed: throw refuse("malformed", "the Authorization header is not HTTP Basic with the write key as username", &logger)
            }
            let source = try authenticate(key, &logger)
            try checkRate(source)
            principal = source
        }

        // 2. The body, within the limits.
        let buffer: ByteBuffer
        switch try await TrackingBody.read(request, limits: limits) {
        case .complete(let b):
            buffer = b
        case .unsupportedEncoding(let e):
            throw APIError(.unsupportedMediaType, code: "unsupported_encoding",
                           message: "Content-Encoding \(e) is not supported; send gzip or no encoding")
        case .tooLarge(let prefix, let reason):
            throw try await rejectBody(.contentTooLarge, "too_large", reason, prefix, principal, call, receivedAt, logger)
        case .corrupt(let prefix, let reason):
            throw try await rejectBody(.badRequest, "malformed_body", reason, prefix, principal, call, receivedAt, logger)
        }

        // 3. Parse, straight to the binary form the messages are stored in (no tree). Without
        //    a header key, the key is in the body.
        let body: JSONView
        let sizes: TextSizes
        // A batch's messages (in `{"batch": [...]}`, two levels in): their sizes as sent.
        switch buffer.transcodeJSON(elementsAt: call == .batch ? 2 : nil) {
        case .success(let (bytes, noted)):
            body = JSONView(bytes: bytes)
            sizes = noted
        case .failure(let e):
            throw try await rejectBody(.badRequest, "malformed_json", e.description, prefix(buffer), principal, call, receivedAt, logger)
        }
        let source: Source
        if let principal {
            source = principal
        } else {
            guard let key = body["writeKey"]?.stringValue, !key.isEmpty else {
                throw refuse("missing", "missing write key: send it as the HTTP Basic username or as writeKey in the body", &logger)
            }
            source = try authenticate(key, &logger)
            try checkRate(source)
        }
        guard body.isObject else {
            throw try await rejectBody(.badRequest, "invalid", "the body must be a JSON object, got \(body.json.typeName)", prefix(buffer),
                                       source, call, receivedAt, logger)
        }

        switch call {
        case .single(let type):
            return try await single(type, body, size: buffer.readableBytes, source: source, receivedAt: receivedAt, logger)
        case .batch:
            return try await batch(body, sizes: sizes, buffer: buffer, source: source, receivedAt: receivedAt, logger)
        }
    }

    private func single(_ type: EventType, _ body: JSONView, size: Int, source: Source, receivedAt: Micros, _ logger: Logger) async throws -> Response {
        metrics.batch(route: type.name, messages: 1)
        charge(source, events: 1)
        let message = Self.settingType(body, type)  // the path names the call, as in Segment's API
        let context = SourceContext(name: source.name, channel: source.channel)
        switch suppress(builder.prepare(binary: message, encodedSize: size, source: context, receivedAt: receivedAt), try suppression()) {
        case .success(let event):
            let outcome = try await commit([event], deadLetters: [], logger).first!
            record([outcome], channels: [event.channel], types: [type.name], source: source)
            return Response.json(["success": true, "seq": .int(Int64(outcome.seq))])
        case .failure(let rejection):
            let channel = Self.channel(of: JSONView(bytes: message), source: source)
            let letter = DeadLetter(rejection: rejection, raw: body.json.jsonBytes(), source: source.name, time: receivedAt)
            _ = try await commit([], deadLetters: [letter], logger)
            metrics.rejected(source: source.name, channel: channel, type: type.name, reason: rejection.code)
            logger.info("message rejected", metadata: ["source": .string(source.name), "code": .string(rejection.code)])
            throw APIError(rejection.code == "too_large" ? .contentTooLarge : rejection.code == "suppressed" ? .forbidden : .badRequest,
                           code: rejection.code, message: rejection.message)
        }
    }

    /// The members of a batch body `batch` reads, found in one pass (each lookup by key
    /// scanned the whole body, skipping over every message in it, again).
    private static let batchKeys = JSONView.KeyList(["batch", "sentAt", "context", "integrations"])

    /// `sizes`: the text size of each message, as sent (the transcoder noted them).
    private func batch(_ body: JSONView, sizes: TextSizes, buffer: ByteBuffer, source: Source, receivedAt: Micros,
                       _ logger: Logger) async throws -> Response {
        let members = body.fields(Self.batchKeys)
        guard let list = members[0], list.isArray else {
            throw try await rejectBody(.badRequest, "invalid", "batch must be an array of messages", prefix(buffer),
                                       source, .batch, receivedAt, logger)
        }
        let spans = list.elementSpans
        var batchSentAt: Micros?
        if let s = members[1]?.stringValue {
            guard let t = Timestamp.parse(s) else {
                throw try await rejectBody(.badRequest, "invalid", "sentAt is not an ISO-8601 date-time", prefix(buffer),
                                           source, .batch, receivedAt, logger)
            }
            batchSentAt = t
        }
        // The batch's own context and integrations apply to every message (the message wins).
        var shared: [(String, JSON)] = []
        for (k, field) in [(2, "context"), (3, "integrations")] {
            if let v = members[k], v.isObject { shared.append((field, v.json)) }
        }
        let defaults: JSON? = shared.isEmpty ? nil : .object(shared)
        metrics.batch(route: "batch", messages: spans.count)
        charge(source, events: spans.count)

        let context = SourceContext(name: source.name, channel: source.channel)
        var prepared: [PreparedEvent] = []
        var channels: [String] = [], types: [String] = []
        var letters: [DeadLetter] = []
        var rejected: [JSON] = []
        prepared.reserveCapacity(spans.count)
        let suppression = try suppression()
        for (index, span) in spans.enumerated() {
            let item = JSONView(bytes: list.bytes, offset: span.lowerBound)
            // The message's own bytes, unless the batch's defaults must be merged into it.
            let message = defaults.map { item.json.merged(withDefaults: $0).binary } ?? Array(list.bytes[span])
            // Its size as sent, as for a single call (the body's size): whitespace counts.
            let size = sizes.size(at: span.lowerBound) ?? item.compactByteCount
            switch suppress(builder.prepare(binary: message, encodedSize: size, source: context,
                                            receivedAt: receivedAt, batchSentAt: batchSentAt), suppression) {
            case .success(let event):
                channels.append(event.channel)
                types.append(event.type.name)
                prepared.append(event)
            case .failure(let rejection):
                // Labels for the metrics, read from the message only for a rejected one.
                let channel = Self.channel(of: JSONView(bytes: message), source: source)
                let type = Self.typeLabel(item)
                letters.append(DeadLetter(rejection: rejection, raw: item.json.jsonBytes(), source: source.name, time: receivedAt))
                rejected.append(["index": .int(Int64(index)), "code": .string(rejection.code), "message": .string(rejection.message)])
                metrics.rejected(source: source.name, channel: channel, type: type, reason: rejection.code)
            }
        }
        let outcomes = try await commit(consume prepared, deadLetters: letters, logger)
        record(outcomes, channels: channels, types: types, source: source)
        let seq = outcomes.map(\.seq).max() ?? 0
        if rejected.isEmpty {
            return Response.json(["success": true, "seq": .int(Int64(seq))])
        }
        logger.info("batch messages rejected", metadata: ["source": .string(source.name), "rejected": "\(rejected.count)",
                                                          "accepted": "\(outcomes.count)"])
        return Response.json(["success": false, "seq": .int(Int64(seq)), "accepted": .int(Int64(outcomes.count)),
                              "rejected": .array(rejected)])
    }

    // MARK: Steps

    /// The suppression list of erased customers, as of this request.
    private func suppression() throws -> SuppressionSnapshot {
        do { return try ingestor.log.suppressionSnapshot() } catch {
            throw APIError(.serviceUnavailable, code: "commit_failed", message: "the suppression list could not be read; nothing was kept, retry")
        }
    }

    /// Refuses a prepared message that names an erased customer (rejection `suppressed`).
    private func suppress(_ r: Result<PreparedEvent, Rejection>, _ list: SuppressionSnapshot) -> Result<PreparedEvent, Rejection> {
        guard case .success(let e) = r, !list.isEmpty, let id = list.suppressed(JSONView(bytes: e.payload)) else { return r }
        return .failure(Rejection(code: "suppressed", message: "\(id.type) belongs to an erased customer: events for it are refused until the suppression is lifted"))
    }

    private func authenticate(_ key: String, _ logger: inout Logger) throws -> Source {
        switch keys.authenticateWriteKey(key) {
        case .success(.source(let source, let keyName)):
            logger[metadataKey: "source"] = .string(source.name)
            logger[metadataKey: "key"] = .string(keyName)
            return source
        case .success:
            throw refuse("wrong_kind", KeyRefusal.wrongKind(.api).message(expecting: .write), &logger)
        case .failure(let refusal):
            let reason: String
            switch refusal {
            case .unknown: reason = "unknown"
            case .revoked: reason = "revoked"
            case .wrongKind: reason = "wrong_kind"
            }
            throw refuse(reason, refusal.message(expecting: .write), &logger)
        }
    }

    private func refuse(_ reason: String, _ message: String, _ logger: inout Logger) -> APIError {
        metrics.authFailure(reason: reason)
        logger.info("write key refused", metadata: ["reason": .string(reason)])
        return .unauthorized(message)
    }

    private func checkRate(_ source: Source) throws {
        guard let rate = source.eventsPerSecond ?? defaultEventsPerSecond else { return }
        if let wait = limiter.check(source: source.name, eventsPerSecond: rate) {
            metrics.rateLimited(source: source.name)
            let seconds = max(1, Int((Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18).rounded(.up)))
            throw APIError(.tooManyRequests, code: "rate_limited",
                           message: "source \(source.name) is over its limit of \(JSON.formatDouble(rate)) events/s; retry after \(seconds) s",
                           headers: [.retryAfter: String(seconds)])
        }
    }

    private func charge(_ source: Source, events: Int) {
        guard let rate = source.eventsPerSecond ?? defaultEventsPerSecond else { return }
        limiter.charge(source: source.name, eventsPerSecond: rate, events: events)
    }

    /// Keeps a rejected whole body in the dead letters — only for an authenticated request,
    /// so an anonymous caller cannot fill the disk — and returns the error to answer with.
    private func rejectBody(_ status: HTTPResponse.Status, _ code: String, _ reason: String, _ bytes: [UInt8],
                            _ source: Source?, _ call: Call, _ receivedAt: Micros, _ logger: Logger) async throws -> APIError {
        if let source {
            let letter = DeadLetter(rejection: Rejection(code: code, message: reason), raw: bytes, source: source.name, time: receivedAt)
            _ = try await commit([], deadLetters: [letter], logger)
            metrics.rejected(source: source.name, channel: source.channel, type: call.label, reason: code)
            logger.info("request body rejected", metadata: ["code": .string(code)])
        }
        return APIError(status, code: code, message: reason)
    }

    /// The first bytes of a body, as much as a dead letter keeps.
    private func prefix(_ buffer: ByteBuffer) -> [UInt8] {
        Array(buffer.readableBytesView.prefix(limits.deadLetterBodyBytes))
    }

    /// (`events` handed on, not copied: see `Ingestor.submit`.)
    private func commit(_ events: consuming [PreparedEvent], deadLetters: [DeadLetter], _ logger: Logger) async throws -> [AppendOutcome] {
        do {
            return try await ingestor.submit(consume events, deadLetters: deadLetters)
        } catch {
            logger.error("commit failed", metadata: ["error": "\(error)"])
            throw APIError(.serviceUnavailable, code: "commit_failed", message: "the event log could not commit; nothing of this request was kept, retry")
        }
    }

    private func record(_ outcomes: [AppendOutcome], channels: [String], types: [String], source: Source) {
        var appended: [String: (String, String, Int)] = [:]
        var duplicates: [String: Int] = [:]
        for (i, o) in outcomes.enumerated() {
            switch o {
            case .appended:
                let k = channels[i] + "\u{1}" + types[i]
                appended[k, default: (channels[i], types[i], 0)].2 += 1
            case .duplicate:
                duplicates[types[i], default: 0] += 1
            }
        }
        for (_, (channel, type, n)) in appended { metrics.appended(source: source.name, channel: channel, type: type, count: n) }
        for (type, n) in duplicates { metrics.duplicates(source: source.name, type: type, count: n) }
    }

    /// The channel an event is stored with (as `EnvelopeBuilder` decides it), for metrics.
    static func channel(of message: JSONView, source: Source) -> String {
        message["context"]?["channel"]?.stringValue ?? source.channel
    }

    /// A message's type as a metrics label: one of the six calls, else `unknown`.
    static func typeLabel(_ message: JSONView) -> String {
        guard let t = message["type"]?.stringValue, let type = EventType(name: t), type != .system else { return "unknown" }
        return type.name
    }

    /// The object `message` with `type` set to `type` — the last `type` member replaced in
    /// place, else one appended — as `JSON`'s subscript setter would, on the binary form.
    static func settingType(_ message: JSONView, _ type: EventType) -> [UInt8] {
        message.bytes.withUnsafeBufferPointer { b in
            var builder = BinaryObjectBuilder(capacity: b.count + 16)
            guard let (n, first) = JSONView.header(b, message.offset, object: true) else { return message.encodedBytes }
            var i = first
            var members: [(start: Int, keyEnd: Int, end: Int, isType: Bool)] = []
            members.reserveCapacity(n)
            for _ in 0..<n {
                let start = i
                guard let len = JSONView.varint(b, &i), i + len <= b.count, let end = JSONView.skip(b, i + len) else {
                    return message.encodedBytes
                }
                let isType = len == 4 && b[i] == 0x74 && b[i + 1] == 0x79 && b[i + 2] == 0x70 && b[i + 3] == 0x65
                members.append((start, i + len, end, isType))
                i = end
            }
            let last = members.lastIndex { $0.isType }
            for (m, member) in members.enumerated() {
                if m == last {
                    builder.append(key: "type", string: type.name)
                } else {
                    builder.appendMember(UnsafeBufferPointer(rebasing: b[member.start..<member.end]))
                }
            }
            if last == nil { builder.append(key: "type", string: type.name) }
            return builder.finish()
        }
    }
}
