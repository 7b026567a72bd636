import Crypto
import EventLog
import Foundation
import JSONCore
import LMDB

/// One generation of views: an LMDB environment in `<data>/views/<name>` holding every
/// projection's databases, their checkpoints, versions and failures.
public final class ViewGeneration: @unchecked Sendable {
    public let name: String
    public let path: String
    public let environment: Environment
    public let projections: [any Projection]
    let meta: Database
    let failures: Database
    /// The last seq of every committed batch. Projections that evaluate at batch ends
    /// (segments) give the same bytes when replayed with the same boundaries: `--verify`
    /// replays a live generation's boundaries.
    let batches: Database

    /// Opens (creating) the generation at `path` with `projections`.
    public init(name: String, path: String, projections: [any Projection], readOnly: Bool = false) throws {
        self.name = name
        self.path = path
        if !readOnly { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        environment = try EnvironmentCache.shared.open(path: path, readOnly: readOnly)
        self.projections = projections
        meta = try environment.openDatabase("meta")
        failures = try environment.openDatabase("failures")
        batches = try environment.openDatabase("batches")
        for p in projections { try p.open(environment) }
    }

    public func projection(named name: String) -> (any Projection)? { projections.first { $0.name == name } }

    // MARK: Checkpoints and state

    /// The last seq `projection` has applied (0: none).
    public func checkpoint(_ projection: String) throws -> UInt64 {
        try environment.read { tx in try checkpoint(projection, tx) }
    }

    func checkpoint(_ projection: String, _ tx: borrowing some TransactionReading & ~Copyable) throws -> UInt64 {
        try tx.withValue(meta, key: Array("checkpoint/\(projection)".utf8)) { UInt64(nativeKey: $0) } ?? 0
    }

    /// The seq every projection of this generation has applied.
    public func appliedSeq() throws -> UInt64 {
        try environment.read { tx in try projections.map { try checkpoint($0.name, tx) }.min() ?? 0 }
    }

    /// Whether the stored views of `p` were built by this version and configuration
    /// (true for a projection that has not started yet).
    public func isCurrent(_ p: any Projection) throws -> Bool {
        try environment.read { tx in
            guard let stored = try tx.get(meta, key: Array("build/\(p.name)".utf8)) else { return true }
            return String(decoding: stored, as: UTF8.self) == Self.buildTag(p)
        }
    }

    static func buildTag(_ p: any Projection) -> String { "v\(p.version)\n\(p.configurationDigest)" }

    func writeProgress(_ tx: borrowing WriteTransaction, _ p: any Projection, seq: UInt64, failures new: [ProjectionFailure]) throws {
        try tx.put(meta, key: Array("checkpoint/\(p.name)".utf8), value: seq.nativeKey)
        try tx.put(meta, key: Array("build/\(p.name)".utf8), value: Array(Self.buildTag(p).utf8))
        for f in new {
            try tx.put(failures, key: Array(f.projection.utf8) + [0] + f.seq.be, value: Array(f.error.utf8))
        }
    }

    func recordBatchEnd(_ tx: borrowing WriteTransaction, _ seq: UInt64) throws {
        try tx.put(batches, key: seq.be, value: [])
    }

    /// The seqs at which committed batches ended, up to `through`, in order.
    public func batchEnds(through: UInt64 = .max) throws -> [UInt64] {
        try environment.read { tx in
            var out: [UInt64] = []
            try tx.scan(batches) { k, _ in
                let seq = UInt64(bigEndianBytes: k, at: 0)
                guard seq <= through else { return false }
                out.append(seq)
                return true
            }
            return out
        }
    }

    /// A text value in `meta` (e.g. the seq or time a time-travel generation stops at).
    public func metaValue(_ key: String) throws -> String? {
        try environment.read { tx in try tx.get(meta, key: Array(key.utf8)).map { String(decoding: $0, as: UTF8.self) } }
    }

    public func setMetaValue(_ key: String, _ value: String) throws {
        try environment.write { tx in try tx.put(meta, key: Array(key.utf8), value: Array(value.utf8)) }
    }

    /// Events the projections could not apply, oldest first.
    public func failures(limit: Int = 100) throws -> [ProjectionFailure] {
        try environment.read { tx in
            var out: [ProjectionFailure] = []
            try tx.scan(failures) { k, v in
                let bytes = Array(UnsafeRawBufferPointer(k))
                guard let nul = bytes.firstIndex(of: 0), bytes.count == nul + 9 else { return true }
                let seq = bytes[(nul + 1)...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                out.append(ProjectionFailure(projection: String(decoding: bytes[..<nul], as: UTF8.self), seq: seq,
                                             error: String(decoding: UnsafeRawBufferPointer(v), as: UTF8.self)))
                return out.count < limit
            }
            return out
        }
    }

    public func failureCount() throws -> Int { try environment.stat(failures).entries }

    /// SHA-256 over every key and value of `projection`'s databases, in key order: equal
    /// digests mean byte-identical views.
    public func digest(_ projection: String) throws -> String {
        guard let p = self.projection(named: projection) else { throw ViewsError("no projection \(projection) in generation \(name)") }
        var h = SHA256()
        try environment.read { tx in
            for db in p.databaseNames.sorted() {
                let d = try environment.openDatabase(db)
                h.update(data: Array(db.utf8) + [0])
                try tx.scan(d) { k, v in
                    var len = UInt32(k.count).bigEndian
                    withUnsafeBytes(of: &len) { h.update(bufferPointer: $0) }
                    h.update(bufferPointer: k)
                    len = UInt32(v.count).bigEndian
                    withUnsafeBytes(of: &len) { h.update(bufferPointer: $0) }
                    h.update(bufferPointer: v)
                    return true
                }
            }
        }
        return Hex.encode(h.finalize())
    }

    /// The first keys where `projection`'s databases differ between this generation and `other`.
    public func differences(_ projection: String, from other: ViewGeneration, limit: Int = 5) throws -> [String] {
        guard let p = self.projection(named: projection) else { throw ViewsError("no projection \(projection) in generation \(name)") }
        var out: [String] = []
        for db in p.databaseNames.sorted() where out.count < limit {
            let a = try dump(db), b = try other.dump(db)
            var i = 0, j = 0
            while (i < a.count || j < b.count) && out.count < limit {
                if i < a.count && j < b.count && a[i].0 == b[j].0 {
                    if a[i].1 != b[j].1 { out.append("\(db) \(Self.printable(a[i].0)): values differ") }
                    i += 1; j += 1
                } else if j >= b.count || (i < a.count && a[i].0.lexicographicallyPrecedes(b[j].0)) {
                    out.append("\(db) \(Self.printable(a[i].0)): only in \(name)"); i += 1
                } else {
                    out.append("\(db) \(Self.printable(b[j].0)): only in \(other.name)"); j += 1
                }
            }
        }
        return out
    }

    private func dump(_ db: String) throws -> [([UInt8], [UInt8])] {
        let d = try environment.openDatabase(db)
        return try environment.read { tx in
            var out: [([UInt8], [UInt8])] = []
            try tx.scan(d) { k, v in out.append((Array(k), Array(v))); return true }
            // Integer keys are native-endian: order them numerically as bytes would not.
            if d.flags.contains(.integerKey) { out.sort { UInt64(nativeKey: UnsafeRawBufferPointer(start: $0.0, count: 8)) < UInt64(nativeKey: UnsafeRawBufferPointer(start: $1.0, count: 8)) } }
            return out
        }
    }

    static func printable(_ key: [UInt8]) -> String {
        if key.allSatisfy({ $0 == 0 || (0x20..<0x7F).contains($0) }) { return String(decoding: key.map { $0 == 0 ? 0x3A : $0 }, as: UTF8.self) }
        return Hex.encode(key)
    }

    public func sync() throws { try environment.sync() }
}

/// One `Environment` per views directory per process: LMDB must not open the same
/// environment twice in one process (closing the second would drop the first's locks).
final class EnvironmentCache: @unchecked Sendable {
    static let shared = EnvironmentCache()
    private final class Weak { weak var env: Environment?; init(_ e: Environment) { env = e } }
    private let lock = NSLock()
    private var open: [String: Weak] = [:]
    private var writeMap = false

    /// Environments opened from now on write through a writable map (`MDB_WRITEMAP`). The live
    /// views' small, frequent tail commits then change their pages in place instead of writing
    /// each one with `pwrite` at commit (a third of the commit thread's time under full ingest
    /// load). Rebuilds, whose big batches page through the whole views, keep the default: with
    /// the map written, a 10M-event rebuild doubled its system time and passed 1 GiB resident.
    /// (Views are written with relaxed durability, so LMDB's caution about mixing processes with
    /// and without it — `mdb_env_sync` — does not apply.)
    func useWriteMap() { lock.withLock { writeMap = true } }

    func open(path: String, readOnly: Bool) throws -> Environment {
        let key = URL(fileURLWithPath: path).standardizedFileURL.path
        return try lock.withLock {
            if let e = open[key]?.env { return e }
            let e = try Environment(path: key, options: EnvironmentOptions(
                mapSize: 256 << 20, maxDatabases: 32, maxReaders: 512, durability: .relaxed, readOnly: readOnly,
                writeMap: writeMap))
            open[key] = Weak(e)
            return e
        }
    }
}

extension UnsafeRawBufferPointer {
    init(start bytes: [UInt8], count: Int) {
        self = bytes.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[0..<Swift.min(count, $0.count)]) }
    }
}

/// The views directory: generations side by side and `CURRENT`, the name of the live one,
/// replaced atomically (write a temporary file, rename it over).
public struct ViewStore: Sendable {
    public let directory: String

    public init(dataDirectory: String) {
        directory = dataDirectory + "/views"
    }

    var pointer: String { directory + "/CURRENT" }

    /// The live generation's name, if there is one.
    public func current() -> String? {
        guard let s = try? String(contentsOfFile: pointer, encoding: .utf8) else { return nil }
        let name = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return name.isEmpty ? nil : name
    }

    /// `current()` for a loop that asks between every batch: `CURRENT` is read again only when
    /// the file changed (a switch renames a new file over it), otherwise one `stat`.
    final class Watch {
        private let store: ViewStore
        private var seen: (Int, Int, Int, Int, Int, Int)?
        private var name: String?

        init(_ store: ViewStore) { self.store = store }

        func current() -> String? {
            var st = stat()
            guard stat(store.pointer, &st) == 0 else {
                seen = nil
                return nil
            }
            let stamp = (Int(st.st_ino), Int(st.st_size), st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec)
            if seen.map({ $0 != stamp }) ?? true {
                seen = stamp
                name = store.current()
            }
            return name
        }
    }

    /// Makes `name` the live generation (atomic rename).
    public func setCurrent(_ name: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tmp = pointer + ".tmp"
        try Data((name + "\n").utf8).write(to: URL(fileURLWithPath: tmp))
        let fd = Glibc.open(tmp, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(tmp, pointer) == 0 else { throw ViewsError("cannot switch views to \(name): \(String(cString: strerror(errno)))") }
        let dfd = Glibc.open(directory, O_RDONLY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// Every generation directory, oldest first (numbered ones by number, then named ones).
    public func generations() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { n in
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory + "/" + n, isDirectory: &isDir) && isDir.boolValue
        }.sorted { a, b in
            switch (Self.number(a), Self.number(b)) {
            case let (x?, y?): return x < y
            case (_?, nil): return true
            case (nil, _?): return false
            default: return a < b
            }
        }
    }

    static func number(_ name: String) -> Int? {
        guard name.hasPrefix("g"), let n = Int(name.dropFirst()) else { return nil }
        return n
    }

    /// A fresh numbered generation name (`g000001`, …).
    public func nextName() -> String {
        let n = (generations().compactMap(Self.number).max() ?? 0) + 1
        return "g" + String(repeating: "0", count: max(0, 6 - String(n).count)) + String(n)
    }

    public func path(_ name: String) -> String { directory + "/" + name }

    public func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: path(name) + "/data.mdb") }

    /// Opens generation `name` with fresh projections from `set`.
    public func open(_ name: String, set: ProjectionSet, readOnly: Bool = false) throws -> ViewGeneration {
        try ViewGeneration(name: name, path: path(name), projections: set.make(), readOnly: readOnly)
    }

    /// Removes numbered generations other than the live one and the newest `keep`.
    @discardableResult
    public func prune(keep: Int, except: Set<String> = []) throws -> [String] {
        let live = current()
        let numbered = generations().filter { Self.number($0) != nil && $0 != live && !except.contains($0) }
        let doomed = numbered.dropLast(max(0, keep))
        for name in doomed { try FileManager.default.removeItem(atPath: path(name)) }
        return Array(doomed)
    }

    public func remove(_ name: String) throws {
        guard name != current() else { throw ViewsError("generation \(name) is live; switch away first") }
        try FileManager.default.removeItem(atPath: path(name))
    }
}
