import JSONCore

/// The Segment Spec call that produced an event, plus Touchstone's own system events
/// (segment definitions, erasures), which live in the same log so replay reproduces them.
public enum EventType: UInt8, Sendable, CaseIterable, Codable {
    case identify = 1, track, page, screen, group, alias, system

    /// The type named by these UTF-8 bytes (a string value read in place).
    public init?(utf8: UnsafeBufferPointer<UInt8>) {
        guard utf8.count <= 8 else { return nil }
        self.init(name: String(decoding: utf8, as: UTF8.self))
    }

    public init?(name: String) {
        switch name {
        case "identify": self = .identify
        case "track": self = .track
        case "page": self = .page
        case "screen": self = .screen
        case "group": self = .group
        case "alias": self = .alias
        case "system": self = .system
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .identify: "identify"
        case .track: "track"
        case .page: "page"
        case .screen: "screen"
        case .group: "group"
        case .alias: "alias"
        case .system: "system"
        }
    }
}

/// One stored event: what the client sent, plus where it sits in the log and when it arrived.
///
/// `body` holds every field the client sent except `type` (in `type`) and `timestamp` (in
/// `timestamp`, after clock-skew correction; the client's own value stays in the body as
/// `originalTimestamp` when it was corrected), plus `source` and `channel`.
public struct Event: Sendable, Equatable {
    public var seq: UInt64
    public var type: EventType
    /// Event time, µs since the epoch, clock-skew corrected.
    public var timestamp: Micros
    /// When Touchstone received it, µs since the epoch.
    public var receivedAt: Micros
    /// The body in binary JSON form, as stored. Read fields through `view` (lazy, cheap) or
    /// the accessors below; `body` decodes the whole tree.
    public var payload: [UInt8]

    public init(seq: UInt64, type: EventType, timestamp: Micros, receivedAt: Micros, payload: [UInt8]) {
        self.seq = seq
        self.type = type
        self.timestamp = timestamp
        self.receivedAt = receivedAt
        self.payload = payload
    }

    public init(seq: UInt64, type: EventType, timestamp: Micros, receivedAt: Micros, body: JSON) {
        self.init(seq: seq, type: type, timestamp: timestamp, receivedAt: receivedAt, payload: body.unsizedBinary)
    }

    /// A lazy view of the body: looks fields up without decoding the rest.
    public var view: JSONView { JSONView(bytes: payload) }

    /// The whole body as a JSON tree (decoded on each access; prefer `view` in hot loops).
    public var body: JSON {
        get { (try? JSON.decodeBinary(payload)) ?? .null }
        set { payload = newValue.binary }
    }

    public var messageId: String { view["messageId"]?.scalarText ?? "" }
    /// `userId`, absent when missing, JSON null or empty.
    public var userId: String? { Event.identifier(view["userId"]) }
    public var anonymousId: String? { Event.identifier(view["anonymousId"]) }
    public var event: String? { view["event"]?.stringValue }
    public var name: String? { view["name"]?.stringValue }
    public var groupId: String? { Event.identifier(view["groupId"]) }
    public var previousId: String? { Event.identifier(view["previousId"]) }
    public var source: String { view["source"]?.stringValue ?? "" }
    public var channel: String { view["channel"]?.stringValue ?? "" }
    public var context: JSON? { view["context"]?.json }
    public var properties: JSON? { view["properties"]?.json }
    public var traits: JSON? { view["traits"]?.json }

    static func identifier(_ v: JSONView?) -> String? {
        guard let t = v?.scalarText, !t.isEmpty else { return nil }
        return t
    }

    /// The event as exported: the stored body with `seq`, `type`, `timestamp` and
    /// `receivedAt` added, keys in a fixed order.
    public var exportJSON: JSON {
        var members: [(String, JSON)] = [("seq", .int(Int64(seq))), ("type", .string(type.name)),
                                         ("timestamp", .string(Timestamp.format(timestamp))),
                                         ("receivedAt", .string(Timestamp.format(receivedAt)))]
        if case .object(let rest) = body {
            for (k, v) in rest where k != "seq" && k != "type" && k != "timestamp" && k != "receivedAt" {
                members.append((k, v))
            }
        }
        return .object(members)
    }
}
