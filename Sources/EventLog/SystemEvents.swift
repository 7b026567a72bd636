import Foundation
import JSONCore

/// Touchstone's own events (segment definitions, …): appended to the log like any other, so
/// a replay reproduces them, with type `system` and source `touchstone`.
extension PreparedEvent {
    /// The source name system events are stored under.
    public static let systemSource = "touchstone"

    /// A system event named `name` (e.g. "Segment Defined") with `properties`, at event time
    /// `timestamp` (defaults to `receivedAt`). The body is `{"event", "properties",
    /// "messageId", "source", "channel"}`.
    public static func system(name: String, properties: JSON, receivedAt: Micros, timestamp: Micros? = nil,
                              messageId: String = UUID().uuidString.lowercased()) -> PreparedEvent {
        let body = JSON.object([("event", .string(name)), ("properties", properties), ("messageId", .string(messageId)),
                                ("source", .string(systemSource)), ("channel", .string("system"))])
        let payload = body.unsizedBinary  // the log's form
        return PreparedEvent(type: .system, timestamp: timestamp ?? receivedAt, receivedAt: receivedAt, source: systemSource,
                             messageId: messageId, payload: payload, inputBytes: payload.count)
    }
}
