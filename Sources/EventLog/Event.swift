import JSONCore

/// The Segment Spec call that produced an event, plus Touchstone's own system events
/// (segment definitions, erasures), which live in the same log so replay reproduces them.
public enum EventType: UInt8, Sendable, CaseIterable, Codable {
    case identify = 1, track, page, screen, group, alias, system

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
    public var body: JSON

    public init(seq: UInt64, type: EventType, timestamp: Micros, receivedAt: Micros, body: JSON) {
        self.seq = seq
        self.type = type
        self.timestamp = timestamp
        self.receivedAt = receivedAt
        self.body = body
    }

    public var messageId: String { body["messageId"]?.scalarText ?? "" }
    /// `userId`, absent when missing, JSON null or empty.
    public var userId: String? { Event.identifier(body["userId"]) }
    public var anonymousId: String? { Event.identifier(body["anonymousId"]) }
    public var event: String? { body["event"]?.stringValue }
    public var name: String? { body["name"]?.stringValue }
    public var groupId: String? { Event.identifier(body["groupId"]) }
    public var previousId: String? { Event.identifier(body["previousId"]) }
    public var source: String { body["source"]?.stringValue ?? "" }
    public var channel: String { body["channel"]?.stringValue ?? "" }
    public var context: JSON? { body["context"] }
    public var properties: JSON? { body["properties"] }
    public var traits: JSON? { body["traits"] }

    static func identifier(_ v: JSON?) -> String? {
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
