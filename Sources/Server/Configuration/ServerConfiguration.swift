import Configuration
import EventLog
import Foundation
import JSONCore
import Projections

/// Everything `touchstone serve` can be told. Read, in this order of precedence, from
/// command-line flags, environment variables (`TOUCHSTONE_` + the key in upper snake case:
/// `TOUCHSTONE_HTTP_PORT`, `TOUCHSTONE_LIMITS_MAX_BODY_BYTES`), a JSON file (`--config`,
/// schema `Schemas/config.schema.json`, example `Deploy/touchstone.example.json`), and the
/// defaults below — through apple's swift-configuration.
///
///     let config = try ServerConfiguration.load(file: "touchstone.json", flags: ["http.port": .int(9000)])
public struct ServerConfiguration: Sendable, Equatable {
    /// `data`: the data directory (holds log/ and admin/).
    public var dataDirectory = "./data"
    /// `schemas`: a directory of event JSON Schemas (default: the installed Schemas/events).
    public var schemasDirectory: String?
    /// `http.host`, `http.port` (0 picks a free port; the chosen one is logged and printed).
    public var host = "127.0.0.1"
    public var port = 8080
    /// `http.idleTimeoutSeconds`: a keep-alive connection idle this long is closed.
    public var idleTimeoutSeconds = 75
    /// `limits.*`.
    public var limits = TrackingLimits()
    /// `limits.eventsPerSecond`: the rate limit of sources that set none (default: none).
    public var defaultEventsPerSecond: Double?
    /// `ingest.maxCommitEvents`: most events one group commit takes (one request's messages
    /// are never split). The views fold a commit's events in order, so its size bounds how
    /// long its last event waits to be visible. Measured under `touchstone-bench http`
    /// batches (2 cores, 32 connections, interleaved): 1,024 kept 98.4–100 % of events
    /// visible within 20 ms where 8,192 kept 84.5–98.7 %, at throughput equal within the
    /// host's noise; 512 cost about a tenth of the throughput, 2,048 kept 89–96 %. Once the
    /// tail folded a backlog in batches of 512 and kept its caches, 2,048 ran 5–19 % more
    /// events/s than 1,024 in five interleaved pairs, keeping 99.5–99.8 % within 20 ms
    /// (p99 ≤ 15 ms, against ≤ 10 ms): the default since.
    public var maxCommitEvents = 2048
    /// `log.level` (trace … critical) and `log.format` (`text` or `json`).
    public var logLevel = "info"
    public var logFormat = "text"
    /// `query.maxWaitMillis`: how long a query with `min_seq` waits for the views.
    public var queryMaxWaitMillis = 2000
    /// `views.tailScheduling`: how the views' tail threads are scheduled (`TailScheduling`).
    public var tailScheduling = TailScheduling.realtime
    /// `views.tailLingerMillis`: while commits are small and come in quick succession (single
    /// calls), how long the views' tail lets a batch wait for the next commits, so it folds and
    /// commits them together; 0 never waits. Measured under `touchstone-bench http` single
    /// `track` calls (2 cores, 32 connections, interleaved): 5 ms took the views' CPU an event
    /// from 44–53 µs to 25–41 µs and kept every event visible within 10 ms; it does not touch
    /// large commits (batches), whose tail batches are full.
    public var tailLingerMillis = 5
    /// `identity`: merge protection rules (an object; see `IdentityRules`).
    public var identity = IdentityRules.default

    public init() {}

    /// Every key, as the JSON file, flags and `Schemas/config.schema.json` spell it.
    public static let keys = [
        "data", "schemas", "http.host", "http.port", "http.idleTimeoutSeconds",
        "limits.maxMessageBytes", "limits.maxBodyBytes", "limits.maxInflatedBytes", "limits.deadLetterBodyBytes",
        "limits.eventsPerSecond", "ingest.maxCommitEvents", "log.level", "log.format", "query.maxWaitMillis",
        "views.tailScheduling", "views.tailLingerMillis", "identity.defaultLimit", "identity.blocked", "identity.blockedPatterns", "identity.priority", "identity.ignoredEvents", "identity.types", "retention",
    ]

    /// Values given on the command line; nil leaves the key to the environment, file and defaults.
    public struct Flags: Sendable {
        public var data: String?
        public var schemas: String?
        public var host: String?
        public var port: Int?
        public var logLevel: String?
        public var logFormat: String?
        public init(data: String? = nil, schemas: String? = nil, host: String? = nil, port: Int? = nil,
                    logLevel: String? = nil, logFormat: String? = nil) {
            self.data = data
            self.schemas = schemas
            self.host = host
            self.port = port
            self.logLevel = logLevel
            self.logFormat = logFormat
        }

        var values: [String: ConfigContent] {
            var v: [String: ConfigContent] = [:]
            if let data { v["data"] = .string(data) }
            if let schemas { v["schemas"] = .string(schemas) }
            if let host { v["http.host"] = .string(host) }
            if let port { v["http.port"] = .int(port) }
            if let logLevel { v["log.level"] = .string(logLevel) }
            if let logFormat { v["log.format"] = .string(logFormat) }
            return v
        }
    }

    /// Reads the configuration. `flags` are values given on the command line (they win);
    /// `environment` is the process environment unless a test passes its own.
    /// - Throws: `ConfigurationError` for an unreadable or invalid file or an out-of-range value.
    public static func load(file: String? = nil, flags: Flags = Flags(),
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ServerConfiguration {
        var providers: [any ConfigProvider] = []
        providers.append(InMemoryProvider(name: "flags", values: Dictionary(uniqueKeysWithValues: flags.values.map {
            (AbsoluteConfigKey(ConfigKey($0.key)), ConfigValue($0.value, isSecret: false))
        })))
        providers.append(EnvironmentVariablesProvider(environmentVariables: environment).prefixKeys(with: ["touchstone"]))
        if let file { providers.append(InMemoryProvider(name: file, values: try fileValues(file))) }
        let reader = ConfigReader(providers: providers)

        var c = ServerConfiguration()
        c.dataDirectory = reader.string(forKey: "data", default: c.dataDirectory)
        c.schemasDirectory = reader.string(forKey: "schemas")
        c.host = reader.string(forKey: "http.host", default: c.host)
        c.port = reader.int(forKey: "http.port", default: c.port)
        c.idleTimeoutSeconds = reader.int(forKey: "http.idleTimeoutSeconds", default: c.idleTimeoutSeconds)
        c.limits.maxMessageBytes = reader.int(forKey: "limits.maxMessageBytes", default: c.limits.maxMessageBytes)
        c.limits.maxBodyBytes = reader.int(forKey: "limits.maxBodyBytes", default: c.limits.maxBodyBytes)
        c.limits.maxInflatedBytes = reader.int(forKey: "limits.maxInflatedBytes", default: c.limits.maxInflatedBytes)
        c.limits.deadLetterBodyBytes = reader.int(forKey: "limits.deadLetterBodyBytes", default: c.limits.deadLetterBodyBytes)
        c.defaultEventsPerSecond = reader.double(forKey: "limits.eventsPerSecond")
        c.maxCommitEvents = reader.int(forKey: "ingest.maxCommitEvents", default: c.maxCommitEvents)
        c.logLevel = reader.string(forKey: "log.level", default: c.logLevel)
        c.logFormat = reader.string(forKey: "log.format", default: c.logFormat)
        c.queryMaxWaitMillis = reader.int(forKey: "query.maxWaitMillis", default: c.queryMaxWaitMillis)
        let scheduling = reader.string(forKey: "views.tailScheduling", default: c.tailScheduling.rawValue)
        guard let tail = TailScheduling(rawValue: scheduling) else {
            throw ConfigurationError(message: "views.tailScheduling must be one of \(TailScheduling.allCases.map(\.rawValue).joined(separator: ", ")) (got \(scheduling))")
        }
        c.tailScheduling = tail
        c.tailLingerMillis = reader.int(forKey: "views.tailLingerMillis", default: c.tailLingerMillis)
        if let file { c.identity = try identityRules(file) }
        try c.check()
        return c
    }

    /// Refuses values the server cannot run with, naming the key.
    public func check() throws {
        func need(_ ok: Bool, _ key: String, _ what: String) throws {
            if !ok { throw ConfigurationError(message: "\(key) \(what)") }
        }
        try need((0...65535).contains(port), "http.port", "must be 0–65535 (got \(port))")
        try need(idleTimeoutSeconds > 0, "http.idleTimeoutSeconds", "must be positive")
        try need(limits.maxMessageBytes >= 1024, "limits.maxMessageBytes", "must be at least 1024")
        try need(limits.maxBodyBytes >= limits.maxMessageBytes, "limits.maxBodyBytes", "must be at least limits.maxMessageBytes")
        try need(limits.maxInflatedBytes >= limits.maxMessageBytes, "limits.maxInflatedBytes", "must be at least limits.maxMessageBytes")
        try need(limits.deadLetterBodyBytes >= 0, "limits.deadLetterBodyBytes", "must not be negative")
        try need(defaultEventsPerSecond.map { $0 > 0 } ?? true, "limits.eventsPerSecond", "must be positive")
        try need((0...60_000).contains(queryMaxWaitMillis), "query.maxWaitMillis", "must be 0–60000")
        try need(maxCommitEvents >= 1, "ingest.maxCommitEvents", "must be at least 1")
        try need((0...1000).contains(tailLingerMillis), "views.tailLingerMillis", "must be 0–1000 (got \(tailLingerMillis))")
        try need(["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(logLevel), "log.level",
                 "must be one of trace, debug, info, notice, warning, error, critical")
        try need(["text", "json"].contains(logFormat), "log.format", "must be text or json")
    }

    /// The file's values as flat dotted keys, after checking the file against the config schema
    /// (when it can be found), so a misspelt key is an error rather than silently ignored.
    static func fileValues(_ path: String) throws -> [AbsoluteConfigKey: ConfigValue] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(message: "cannot read the configuration file \(path)")
        }
        let json: JSON
        do { json = try JSON.parse([UInt8](data)) } catch {
            throw ConfigurationError(message: "\(path): \(error)")
        }
        if let schema = try configSchema() {
            let failures = schema.validate(json)
            if !failures.isEmpty {
                throw ConfigurationError(message: "\(path) does not match Schemas/config.schema.json: "
                    + failures.map { $0.path.isEmpty ? $0.message : "\($0.path): \($0.message)" }.joined(separator: "; "))
            }
        }
        var out: [AbsoluteConfigKey: ConfigValue] = [:]
        func walk(_ v: JSON, _ path: [String]) {
            switch v {
            case .object(let members): for (k, m) in members { walk(m, path + [k]) }
            case .string(let s): out[AbsoluteConfigKey(path)] = ConfigValue(.string(s), isSecret: false)
            case .int(let i): out[AbsoluteConfigKey(path)] = ConfigValue(.int(Int(i)), isSecret: false)
            case .double(let d): out[AbsoluteConfigKey(path)] = ConfigValue(.double(d), isSecret: false)
            case .bool(let b): out[AbsoluteConfigKey(path)] = ConfigValue(.bool(b), isSecret: false)
            case .null, .array: break
            }
        }
        walk(json, [])
        // An integer where a double is read (limits.eventsPerSecond: 500) must read as a double.
        for key in ["limits.eventsPerSecond"] {
            let k = AbsoluteConfigKey(ConfigKey(key))
            if case .int(let i)? = out[k]?.content { out[k] = ConfigValue(.double(Double(i)), isSecret: false) }
        }
        return out
    }

    /// The `identity` object of the file (arrays and all), on top of the default rules.
    static func identityRules(_ path: String) throws -> IdentityRules {
        guard let data = FileManager.default.contents(atPath: path), let json = try? JSON.parse([UInt8](data)),
              let identity = json["identity"] else { return .default }
        do { return try IdentityRules(json: identity) } catch {
            throw ConfigurationError(message: "\(path): \(error)")
        }
    }

    /// `Schemas/config.schema.json`, next to the event schemas; nil when not installed.
    public static func configSchema() throws -> Schema? {
        guard let events = SchemaRegistry.locateDefault() else { return nil }
        let path = URL(fileURLWithPath: events).deletingLastPathComponent().appendingPathComponent("config.schema.json").path
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try Schema(JSON.parse([UInt8](data)), name: "config.schema.json")
    }
}

/// A configuration the server cannot start with, and why.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
