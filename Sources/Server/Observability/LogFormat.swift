import EventLog
import Foundation
import JSONCore
import Logging

/// One log line per record on standard error, as JSON (`{"time":…,"level":…,"message":…,
/// "label":…, metadata…}`, for log shippers) or as text (`time level label: message
/// key=value…`). Metadata includes `hb.request.id` on every line a request logs.
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable { case text, json }

    public let label: String
    public let format: Format
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    public init(label: String, format: Format, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    /// Installs this handler for every logger of the process.
    public static func bootstrap(format: Format, level: Logger.Level) {
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, level: level) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let m = event.metadata { all.merge(m) { _, new in new } }
        let time = Timestamp.format(nowMicros())
        var line: [UInt8]
        switch format {
        case .json:
            var o: [(String, JSON)] = [("time", .string(time)), ("level", .string(event.level.rawValue)),
                                       ("label", .string(label)), ("message", .string(event.message.description))]
            for (k, v) in all.sorted(by: { $0.key < $1.key }) { o.append((k, Self.json(v))) }
            line = JSON.object(o).jsonBytes()
        case .text:
            var s = "\(time) \(event.level.rawValue) \(label): \(event.message)"
            for (k, v) in all.sorted(by: { $0.key < $1.key }) { s += " \(k)=\(v)" }
            line = Array(s.utf8)
        }
        line.append(0x0A)
        line.withUnsafeBytes { _ = Foundation.write(2, $0.baseAddress, $0.count) }
    }

    static func json(_ v: Logger.Metadata.Value) -> JSON {
        switch v {
        case .string(let s): return .string(s)
        case .stringConvertible(let c): return .string(c.description)
        case .array(let a): return .array(a.map(json))
        case .dictionary(let d): return .object(d.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) })
        }
    }
}
