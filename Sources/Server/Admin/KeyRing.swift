import Foundation

/// Who a request authenticated as.
public enum Principal: Sendable, Equatable {
    /// A source's write key: tracking calls write as this source.
    case source(Source, keyName: String)
    /// An API key with its scope.
    case apiKey(name: String, scope: Scope)

    /// A name safe to log: the key's name, never the key.
    public var keyName: String {
        switch self {
        case .source(_, let k): return k
        case .apiKey(let n, _): return n
        }
    }
}

/// Why a presented key was refused.
public enum KeyRefusal: Error, Sendable, Equatable {
    case unknown
    case revoked
    /// A valid key of the other kind (an API key on the tracking API, or a write key on the query API).
    case wrongKind(KeyKind)
}

/// The server's in-memory copy of the admin store's keys, reloaded whenever the store's
/// version changes — so a key created or revoked by `touchstone keys` in another process is
/// honoured at the next request. Lookups hash the presented key (SHA-256), find candidates
/// by the digest's first 8 bytes and compare whole digests in constant time.
public final class KeyRing: @unchecked Sendable {
    public let store: AdminStore
    private let lock = NSLock()
    // Guarded by `lock`.
    private var version = -1
    private var byPrefix: [UInt64: [KeyRecord]] = [:]
    private var sources: [String: Source] = [:]

    public init(store: AdminStore) throws {
        self.store = store
        try reloadIfStale()
    }

    /// Re-reads the store when another write happened since the last read.
    public func reloadIfStale() throws {
        let current = store.version
        if lock.withLock({ version == current }) { return }
        let snap = try store.snapshot()
        var index: [UInt64: [KeyRecord]] = [:]
        for r in snap.keys { index[KeyMaterial.prefix(r.digest), default: []].append(r) }
        let byName = Dictionary(snap.sources.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        lock.withLock {
            version = snap.version
            byPrefix = index
            sources = byName
        }
    }

    /// The key record `key` belongs to, revoked or not; nil when none does.
    func lookup(_ key: String) -> KeyRecord? {
        try? reloadIfStale()  // on a storage error, go on with the last good copy
        let digest = KeyMaterial.digest(key)
        let candidates = lock.withLock { byPrefix[KeyMaterial.prefix(digest)] ?? [] }
        var found: KeyRecord?
        for r in candidates where KeyMaterial.constantTimeEquals(r.digest, digest) { found = r }
        return found
    }

    /// The source a write key writes as.
    public func authenticateWriteKey(_ key: String) -> Result<Principal, KeyRefusal> {
        guard let r = lookup(key) else { return .failure(.unknown) }
        if r.revoked != nil { return .failure(.revoked) }
        guard r.kind == .write, let name = r.source, let source = lock.withLock({ sources[name] }) else {
            return .failure(.wrongKind(r.kind))
        }
        return .success(.source(source, keyName: r.name))
    }

    /// The API key `key` is, with its scope.
    public func authenticateAPIKey(_ key: String) -> Result<Principal, KeyRefusal> {
        guard let r = lookup(key) else { return .failure(.unknown) }
        if r.revoked != nil { return .failure(.revoked) }
        guard r.kind == .api, let scope = r.scope else { return .failure(.wrongKind(r.kind)) }
        return .success(.apiKey(name: r.name, scope: scope))
    }
}
