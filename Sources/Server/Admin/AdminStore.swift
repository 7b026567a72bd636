import EventLog
import Foundation
import JSONCore
import LMDB

/// Where events come from: a named integration (the web site, the POS, the email platform)
/// with its channel and an optional rate limit.
public struct Source: Sendable, Equatable {
    public var name: String
    /// The channel of its events that name none in `context.channel`.
    public var channel: String
    /// Events per second this source may send (bursts up to one second's worth); nil: no limit.
    public var eventsPerSecond: Double?
    public var created: Micros

    public init(name: String, channel: String, eventsPerSecond: Double? = nil, created: Micros) {
        self.name = name
        self.channel = channel
        self.eventsPerSecond = eventsPerSecond
        self.created = created
    }
}

/// A stored key: its name, what it opens and its digest — never the key itself.
public struct KeyRecord: Sendable, Equatable {
    public var name: String
    public var kind: KeyKind
    /// For a write key: the source it writes as.
    public var source: String?
    /// For an API key: what it may do.
    public var scope: Scope?
    /// SHA-256 of the key.
    public var digest: [UInt8]
    /// The key's last four characters, to tell keys apart in listings.
    public var hint: String
    public var created: Micros
    /// When it was revoked; nil while it is valid.
    public var revoked: Micros?
}

/// Why an admin operation was refused, in words a person can act on.
public struct AdminError: Error, Sendable, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Sources and keys in the LMDB environment `<data>/admin`: named databases `sources`
/// (name → source) and `keys` (name → key record). Both the CLI and a running server open it;
/// LMDB lets several processes share it, so a server sees keys created or revoked by
/// `touchstone keys` at its next lookup (`KeyRing` watches `version`).
///
///     let admin = try AdminStore(directory: "data/admin")
///     let (record, key) = try admin.createWriteKey(source: "web", channel: "web")
///     print(key)   // shown once; only its digest is stored
public final class AdminStore: Sendable {
    let environment: LMDB.Environment
    let sources: Database
    let keys: Database

    /// The channels the event spec names; a source's channel must be one of them.
    public static let channels = ["web", "mobile", "email", "pos", "support", "social", "ads", "server"]

    public init(directory: String, readOnly: Bool = false) throws {
        environment = try LMDB.Environment(path: directory, options: EnvironmentOptions(
            mapSize: 8 << 20, maxDatabases: 4, durability: .full, readOnly: readOnly))
        sources = try environment.openDatabase("sources")
        keys = try environment.openDatabase("keys")
    }

    /// Changes with every committed write, by this process or another: a cheap way to know
    /// that a cached copy is stale.
    public var version: Int { environment.info.lastTransactionID }

    // MARK: Writing

    /// Creates a write key for `source`, creating the source (with `channel` and
    /// `eventsPerSecond`) when it does not exist. The key is named `name`, else after the
    /// source (`web`, then `web-2`, … when the source already has keys).
    /// Returns the record and the key, which is not stored and cannot be shown again.
    /// - Throws: `AdminError` when the source exists with another channel, or the name is taken.
    public func createWriteKey(source: String, channel: String?, name: String? = nil,
                               eventsPerSecond: Double? = nil, now: Micros = nowMicros()) throws -> (KeyRecord, String) {
        try Self.checkName(source, what: "source name")
        if let name { try Self.checkName(name, what: "key name") }
        if let channel, !Self.channels.contains(channel) {
            throw AdminError("unknown channel \"\(channel)\"; use one of \(Self.channels.joined(separator: ", "))")
        }
        if let eventsPerSecond, !(eventsPerSecond > 0) { throw AdminError("the rate limit must be a positive number of events per second") }
        let secret = KeyMaterial.generate(.write)
        let record: KeyRecord = try environment.write { tx in
            if var s = try Self.decodeSource(tx.get(sources, key: Array(source.utf8))) {
                if let channel, channel != s.channel {
                    throw AdminError("source \"\(source)\" exists with channel \"\(s.channel)\"; omit --channel or pass \(s.channel)")
                }
                if let eventsPerSecond, eventsPerSecond != s.eventsPerSecond {
                    s.eventsPerSecond = eventsPerSecond
                    try tx.put(sources, key: Array(source.utf8), value: Self.encode(s))
                }
            } else {
                guard let channel else { throw AdminError("source \"\(source)\" is new: give its channel (--channel)") }
                let s = Source(name: source, channel: channel, eventsPerSecond: eventsPerSecond, created: now)
                try tx.put(sources, key: Array(source.utf8), value: Self.encode(s))
            }
            let keyName = try name ?? Self.freeName(tx, keys, base: source)
            if try tx.get(keys, key: Array(keyName.utf8)) != nil {
                throw AdminError("a key named \"\(keyName)\" exists; choose another --name")
            }
            let r = KeyRecord(name: keyName, kind: .write, source: source, scope: nil, digest: KeyMaterial.digest(secret),
                              hint: KeyMaterial.hint(secret), created: now, revoked: nil)
            try tx.put(keys, key: Array(keyName.utf8), value: Self.encode(r))
            return r
        }
        return (record, secret)
    }

    /// Creates an API key named `name` with `scope`. Returns the record and the key (shown once).
    /// - Throws: `AdminError` when the name is taken.
    public func createAPIKey(name: String, scope: Scope, now: Micros = nowMicros()) throws -> (KeyRecord, String) {
        try Self.checkName(name, what: "key name")
        let secret = KeyMaterial.generate(.api)
        let record: KeyRecord = try environment.write { tx in
            if try tx.get(keys, key: Array(name.utf8)) != nil {
                throw AdminError("a key named \"\(name)\" exists; choose another name")
            }
            let r = KeyRecord(name: name, kind: .api, source: nil, scope: scope, digest: KeyMaterial.digest(secret),
                              hint: KeyMaterial.hint(secret), created: now, revoked: nil)
            try tx.put(keys, key: Array(name.utf8), value: Self.encode(r))
            return r
        }
        return (record, secret)
    }

    /// Revokes the key named `name`: from the next request on, it is refused.
    /// - Throws: `AdminError` when there is no such key or it is already revoked.
    @discardableResult
    public func revoke(name: String, now: Micros = nowMicros()) throws -> KeyRecord {
        try environment.write { tx in
            guard var r = try Self.decodeKey(tx.get(keys, key: Array(name.utf8))) else {
                throw AdminError("no key named \"\(name)\" (see `touchstone keys list`)")
            }
            if r.revoked != nil { throw AdminError("key \"\(name)\" is already revoked") }
            r.revoked = now
            try tx.put(keys, key: Array(name.utf8), value: Self.encode(r))
            return r
        }
    }

    // MARK: Reading

    /// Every key record, by name.
    public func listKeys() throws -> [KeyRecord] {
        try environment.read { tx in
            var out: [KeyRecord] = []
            try tx.scan(keys) { _, v in
                if let r = try Self.decodeKey(Array(v)) { out.append(r) }
                return true
            }
            return out
        }
    }

    /// Every source, by name.
    public func listSources() throws -> [Source] {
        try environment.read { tx in
            var out: [Source] = []
            try tx.scan(sources) { _, v in
                if let s = try Self.decodeSource(Array(v)) { out.append(s) }
                return true
            }
            return out
        }
    }

    /// Keys and sources read in one snapshot, with the version they are current for.
    func snapshot() throws -> (version: Int, keys: [KeyRecord], sources: [Source]) {
        try environment.read { tx in
            var ks: [KeyRecord] = [], ss: [Source] = []
            try tx.scan(keys) { _, v in
                if let r = try Self.decodeKey(Array(v)) { ks.append(r) }
                return true
            }
            try tx.scan(sources) { _, v in
                if let s = try Self.decodeSource(Array(v)) { ss.append(s) }
                return true
            }
            return (version, ks, ss)
        }
    }

    // MARK: Encoding

    static func checkName(_ name: String, what: String) throws {
        let ok = !name.isEmpty && name.utf8.count <= 64 && name.utf8.allSatisfy {
            ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E
        }
        if !ok { throw AdminError("\(what) \"\(name)\" must be 1–64 letters, digits, '-', '_' or '.'") }
    }

    private static func freeName(_ tx: borrowing WriteTransaction, _ db: Database, base: String) throws -> String {
        if try tx.get(db, key: Array(base.utf8)) == nil { return base }
        var n = 2
        while try tx.get(db, key: Array("\(base)-\(n)".utf8)) != nil { n += 1 }
        return "\(base)-\(n)"
    }

    static func encode(_ s: Source) -> [UInt8] {
        var o: [(String, JSON)] = [("name", .string(s.name)), ("channel", .string(s.channel)), ("created", .int(s.created))]
        if let r = s.eventsPerSecond { o.append(("eventsPerSecond", .double(r))) }
        return JSON.object(o).jsonBytes()
    }

    static func encode(_ r: KeyRecord) -> [UInt8] {
        var o: [(String, JSON)] = [("name", .string(r.name)), ("kind", .string(r.kind.rawValue)),
                                   ("digest", .string(KeyMaterial.hex(r.digest))), ("hint", .string(r.hint)),
                                   ("created", .int(r.created))]
        if let s = r.source { o.append(("source", .string(s))) }
        if let s = r.scope { o.append(("scope", .string(s.rawValue))) }
        if let t = r.revoked { o.append(("revoked", .int(t))) }
        return JSON.object(o).jsonBytes()
    }

    static func decodeSource(_ bytes: [UInt8]?) throws -> Source? {
        guard let bytes else { return nil }
        let j = try JSON.parse(bytes)
        guard let name = j["name"]?.stringValue, let channel = j["channel"]?.stringValue else {
            throw AdminError("corrupt source record")
        }
        return Source(name: name, channel: channel, eventsPerSecond: j["eventsPerSecond"]?.doubleValue,
                      created: j["created"]?.intValue ?? 0)
    }

    static func decodeKey(_ bytes: [UInt8]?) throws -> KeyRecord? {
        guard let bytes else { return nil }
        let j = try JSON.parse(bytes)
        guard let name = j["name"]?.stringValue, let kind = j["kind"]?.stringValue.flatMap(KeyKind.init(rawValue:)),
              let digest = j["digest"]?.stringValue.flatMap(KeyMaterial.bytes(hex:)), digest.count == 32 else {
            throw AdminError("corrupt key record")
        }
        return KeyRecord(name: name, kind: kind, source: j["source"]?.stringValue,
                         scope: j["scope"]?.stringValue.flatMap(Scope.init(rawValue:)), digest: digest,
                         hint: j["hint"]?.stringValue ?? "", created: j["created"]?.intValue ?? 0,
                         revoked: j["revoked"]?.intValue)
    }
}
