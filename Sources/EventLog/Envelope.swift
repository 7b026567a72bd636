import Foundation
import JSONCore
import JSONSchema

/// Where a message came from: the source whose write key sent it and that source's channel.
public struct SourceContext: Sendable, Hashable {
    public var name: String
    public var channel: String
    public init(name: String, channel: String) {
        self.name = name
        self.channel = channel
    }
}

/// Why a message was not appended. Every rejection is kept in the dead letters with this.
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable machine code: `malformed_json`, `too_large`, `invalid`, `suppressed`.
    public let code: String
    /// What is wrong, naming the field.
    public let message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// A validated message in its stored form, ready for the writer: everything CPU-heavy but
/// compression (parsing, validation, envelope, binary encoding) is done by the caller's thread.
public struct PreparedEvent: Sendable {
    public let type: EventType
    public let timestamp: Micros
    public let receivedAt: Micros
    public let source: String
    public let messageId: String
    /// The body in binary JSON form (see `JSON.encodeBinary`).
    public let payload: [UInt8]
    /// The message's size as the client sent it, for the compression figures.
    public let inputBytes: Int
    /// The channel the event is stored with (`context.channel`, else the source's).
    public let channel: String
    /// The key of (source, messageId) in the idempotency index.
    public let dedupeHash: UInt64
    /// The encoded block starting at this event, when `EventLog.seal` already compressed it
    /// off the writer thread; it holds this event and the `sealedCount − 1` after it.
    public var record: [UInt8]?
    /// Events in the sealed block starting here; 0 for one not sealed, −1 for one inside a
    /// block that starts earlier.
    public var sealedCount = 0

    public init(type: EventType, timestamp: Micros, receivedAt: Micros, source: String, messageId: String,
                payload: [UInt8], inputBytes: Int, channel: String = "") {
        self.inputBytes = inputBytes
        self.channel = channel
        self.dedupeHash = StableHash.fnv1a(source, messageId)
        self.type = type
        self.timestamp = timestamp
        self.receivedAt = receivedAt
        self.source = source
        self.messageId = messageId
        self.payload = payload
    }
}

/// Turns messages as clients send them into `PreparedEvent`s: size limit, JSON parsing,
/// validation against the schemas, Segment's clock-skew correction, a generated `messageId`
/// when absent, and the stored envelope (`source`, `channel`). Stateless and thread-safe.
public struct EnvelopeBuilder: Sendable {
    public let schemas: SchemaRegistry
    /// Largest accepted message in bytes (Segment's limit: 32 KB).
    public var maxMessageBytes: Int
    /// Apply Segment's clock-skew correction when a message has `sentAt`. Right for live
    /// traffic; wrong for a bulk import of history, where `receivedAt` is today and would
    /// move every event with a `sentAt` to the day of the import.
    public var correctClockSkew = true

    public init(schemas: SchemaRegistry, maxMessageBytes: Int = 32 * 1024) {
        self.schemas = schemas
        self.maxMessageBytes = maxMessageBytes
    }

    /// Parses and prepares one NDJSON line or request body holding one message.
    public func prepare(bytes: UnsafeBufferPointer<UInt8>, source: SourceContext, receivedAt: Micros) -> Result<PreparedEvent, Rejection> {
        if bytes.count > maxMessageBytes {
            return .failure(Rejection(code: "too_large", message: "message is \(bytes.count) bytes, over the \(maxMessageBytes)-byte limit"))
        }
        let message: [UInt8]
        do {
            message = try JSON.transcode(bytes)
        } catch {
            return .failure(Rejection(code: "malformed_json", message: error.description))
        }
        return prepare(binary: message, encodedSize: bytes.count, source: source, receivedAt: receivedAt)
    }

    private static let envelopeKeys = JSONView.KeyList(["type", "originalTimestamp", "timestamp", "sentAt", "messageId", "context"])

    /// Prepares a message in binary JSON form (`JSON.transcode` of what the client sent, whose
    /// size was `encodedSize`), working on the bytes: validation, the envelope and the stored
    /// body without building a tree.
    public func prepare(binary message: [UInt8], encodedSize size: Int, source: SourceContext, receivedAt: Micros,
                        batchSentAt: Micros? = nil) -> Result<PreparedEvent, Rejection> {
        if size > maxMessageBytes {
            return .failure(Rejection(code: "too_large", message: "message is \(size) bytes, over the \(maxMessageBytes)-byte limit"))
        }
        let view = JSONView(bytes: message)
        guard view.isObject else {
            return .failure(Rejection(code: "invalid", message: "a message must be a JSON object, got \(view.json.typeName)"))
        }
        if !schemas.isValid(binary: message) {
            // The explanation comes from the tree (rare: only for a rejected message).
            let failures = schemas.validate(view.json)
            return .failure(Rejection(code: "invalid", message: failures.isEmpty ? "the message does not satisfy its schemas"
                                      : failures.map { $0.description }.joined(separator: "; ")))
        }
        var at = [Int](repeating: -1, count: 6)
        // One pass: the envelope's members, and where every member lies for the rebuild below.
        var members: [(start: Int, key: Range<Int>, end: Int)] = []
        members.reserveCapacity(16)
        view.forEachMember(Self.envelopeKeys) { k, start, key, end in
            if let k { at[k] = key.upperBound }
            members.append((start, key, end))
        }
        func field(_ k: Int) -> JSONView? { at[k] < 0 ? nil : JSONView(bytes: message, offset: at[k]) }
        guard let type = field(0)?.withUTF8({ EventType(utf8: $0) }) ?? nil, type != .system else {
            return .failure(Rejection(code: "invalid", message: "type must be one of identify, track, page, screen, group, alias"))
        }
        func time(_ v: JSONView) -> Micros? { v.withUTF8 { Timestamp.parse(bytes: $0) } ?? nil }
        // Segment: timestamp = receivedAt − (sentAt − originalTimestamp).
        let original: Micros?
        let originalField: String?
        if let v = field(1), v.isString {
            original = time(v); originalField = "originalTimestamp"
        } else if let v = field(2), v.isString {
            original = time(v); originalField = "timestamp"
        } else {
            original = nil; originalField = nil
        }
        if let originalField, original == nil {
            return .failure(Rejection(code: "invalid", message: "\(originalField) is not an ISO-8601 date-time"))
        }
        var sentAt = batchSentAt
        if let v = field(3), v.isString {
            guard let t = time(v) else {
                return .failure(Rejection(code: "invalid", message: "sentAt is not an ISO-8601 date-time"))
            }
            sentAt = t
        }
        let eventTime: Micros
        if let original, let sentAt, correctClockSkew {
            eventTime = receivedAt - (sentAt - original)
        } else {
            eventTime = original ?? receivedAt
        }
        let messageId = field(4)?.scalarText.flatMap { $0.isEmpty ? nil : $0 } ?? UUID().uuidString.lowercased()
        let channel = field(5)?["channel"]?.stringValue ?? source.channel

        // The stored body: the log's form, without container sizes (see `BinaryTag`).
        var body = BinaryObjectBuilder(capacity: message.count + 96, sized: false)
        var sawMessageId = false
        let whole: Bool = message.withUnsafeBufferPointer { b in
            for (start, keyRange, end) in members {
                let key = UnsafeBufferPointer(rebasing: b[keyRange])
                switch EnvelopeBuilder.ownedKey(key) {
                case .owned: continue  // envelope-owned; never store a key
                case .timestamp:
                    // Kept only when corrected, as the client's original time.
                    if eventTime != original, originalField == "timestamp",
                       !body.appendUnsized(key: "originalTimestamp", b, value: keyRange.upperBound) { return false }
                case .messageId: sawMessageId = true; body.append(key: "messageId", string: messageId)
                case .other: if !body.appendUnsized(b, member: start, value: keyRange.upperBound, end: end) { return false }
                }
            }
            return true
        }
        guard whole else { return .failure(Rejection(code: "invalid", message: "the message's binary form is cut short")) }
        if !sawMessageId { body.append(key: "messageId", string: messageId) }
        body.append(key: "source", string: source.name)
        body.append(key: "channel", string: channel)
        return .success(PreparedEvent(type: type, timestamp: eventTime, receivedAt: receivedAt, source: source.name,
                                      messageId: messageId, payload: body.finish(), inputBytes: size, channel: channel))
    }

    private enum KeyRole { case owned, timestamp, messageId, other }

    @inline(__always)
    private static func ownedKey(_ k: UnsafeBufferPointer<UInt8>) -> KeyRole {
        func eq(_ s: StaticString) -> Bool {
            s.utf8CodeUnitCount == k.count && memcmp(s.utf8Start, k.baseAddress!, k.count) == 0
        }
        switch k.count {
        case 3: return eq("seq") ? .owned : .other
        case 4: return eq("type") ? .owned : .other
        case 6: return eq("source") ? .owned : .other
        case 7: return eq("channel") ? .owned : .other
        case 8: return eq("writeKey") ? .owned : .other
        case 9: return eq("timestamp") ? .timestamp : eq("messageId") ? .messageId : .other
        case 10: return eq("receivedAt") ? .owned : .other
        default: return .other
        }
    }

    /// Prepares a message held as a tree (tests, tools): its binary form through
    /// `prepare(binary:)`, the one implementation. `encodedSize` is its size as sent, when
    /// known (else measured). `batchSentAt` is the enclosing batch's `sentAt`, used when the
    /// message has none.
    public func prepare(message: JSON, encodedSize: Int?, source: SourceContext, receivedAt: Micros,
                        batchSentAt: Micros? = nil) -> Result<PreparedEvent, Rejection> {
        prepare(binary: message.binary, encodedSize: encodedSize ?? message.jsonBytes().count, source: source,
                receivedAt: receivedAt, batchSentAt: batchSentAt)
    }
}

extension JSON {
    /// A deep merge where `self` wins: object members of `defaults` missing from `self` are
    /// added, nested objects merged. Used for a batch's top-level `context`/`integrations`.
    public func merged(withDefaults defaults: JSON) -> JSON {
        guard case .object(var mine) = self, case .object(let theirs) = defaults else { return self }
        for (k, v) in theirs {
            if let i = mine.lastIndex(where: { $0.0 == k }) {
                mine[i].1 = mine[i].1.merged(withDefaults: v)
            } else {
                mine.append((k, v))
            }
        }
        return .object(mine)
    }
}
