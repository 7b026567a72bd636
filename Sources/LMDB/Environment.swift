// LMDB owns every call into liblmdb: environments, transactions, named databases and cursors.
// Raw pointers and MDB_val never leave this module; callers see closures, [UInt8] and typed
// errors. It knows nothing of events or projections.

import CLMDB
import Foundation

/// How an environment syncs commits to disk.
public enum Durability: Sendable {
    /// fsync on every commit: an acknowledged commit survives a crash or power loss (default).
    case full
    /// No fsync of the data pages (`MDB_NOSYNC`): a crash may lose the last commits but
    /// never corrupts the file. For bulk import; call `Environment.sync()` at the end.
    case relaxed
}

/// Settings for `Environment.init`.
public struct EnvironmentOptions: Sendable {
    /// Initial map size in bytes; the map doubles (up to `maxMapSize`) when a write needs more.
    public var mapSize: Int = 64 << 20
    public var maxMapSize: Int = 1 << 40
    public var maxDatabases: UInt32 = 16
    public var maxReaders: UInt32 = 256
    public var durability: Durability = .full
    public var readOnly = false
    /// Write transactions change pages in place through a writable map (`MDB_WRITEMAP`)
    /// instead of copying each dirty page into the file with `pwrite`/`writev` at commit. The
    /// file becomes as large as the map (sparse). LMDB warns against mixing processes with and
    /// without it on one environment for the sake of `mdb_env_sync` durability; use it where
    /// that does not matter (relaxed durability).
    public var writeMap = false

    public init(mapSize: Int = 64 << 20, maxDatabases: UInt32 = 16, maxReaders: UInt32 = 256,
                durability: Durability = .full, readOnly: Bool = false, writeMap: Bool = false) {
        self.writeMap = writeMap
        self.mapSize = mapSize
        self.maxDatabases = maxDatabases
        self.maxReaders = maxReaders
        self.durability = durability
        self.readOnly = readOnly
    }
}

/// A handle on a named database inside an environment. Valid for the environment's life.
public struct Database: Sendable, Hashable {
    public let name: String
    @usableFromInline let dbi: MDB_dbi
    public let flags: DatabaseFlags
}

/// Options of a named database, fixed when it is created.
public struct DatabaseFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// Keys are native-endian unsigned integers (`UInt64` here), compared numerically.
    public static let integerKey = DatabaseFlags(rawValue: UInt32(MDB_INTEGERKEY))
    /// A key may hold several sorted values.
    public static let duplicateSort = DatabaseFlags(rawValue: UInt32(MDB_DUPSORT))
    /// With `duplicateSort`: all values of a key have the same size.
    public static let duplicateFixed = DatabaseFlags(rawValue: UInt32(MDB_DUPFIXED))
    /// With `duplicateSort`: values are native-endian integers.
    public static let integerDuplicates = DatabaseFlags(rawValue: UInt32(MDB_INTEGERDUP))
}

/// Size and use figures of an environment.
public struct EnvironmentInfo: Sendable {
    public let mapSize: Int
    public let pageSize: Int
    /// Bytes up to the last used page: what the data file needs.
    public let usedBytes: Int
    public let lastTransactionID: Int
    public let maxReaders: Int
    public let readers: Int
}

/// An LMDB environment: one memory-mapped file holding named databases.
///
/// Reads run concurrently on any thread; writes are serialised by LMDB's writer lock and, in
/// this process, by a gate that also lets the map grow safely. Transactions exist only inside
/// the closures of `read` and `write`, so none can leak or outlive the environment.
///
///     let env = try Environment(path: dir, options: .init())
///     let db = try env.openDatabase("events", flags: .integerKey)
///     try env.write { tx in try tx.put(db, key: UInt64(1).keyBytes, value: [1, 2, 3]) }
///
/// Invariants that make this `@unchecked Sendable`: the `MDB_env` pointer is set once and
/// freed only in `deinit`; LMDB permits concurrent read transactions with `MDB_NOTLS`; write
/// transactions and map resizing hold `gate` exclusively.
public final class Environment: @unchecked Sendable {
    let env: OpaquePointer
    public let path: String
    public let options: EnvironmentOptions
    /// Readers hold it shared, writers and resizing hold it exclusively.
    let gate = ReadWriteGate()
    private let dbLock = NSLock()
    private var databases: [String: Database] = [:]
    private var currentMapSize: Int

    /// Opens (creating when absent) the environment in directory `path`.
    /// Clears stale reader slots left by crashed processes.
    /// - Throws: `LMDBError` (e.g. `EACCES`, or `MDB_VERSION_MISMATCH`).
    public init(path: String, options: EnvironmentOptions = .init()) throws(LMDBError) {
        self.path = path
        self.options = options
        if !options.readOnly {
            try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        var e: OpaquePointer?
        try check(mdb_env_create(&e), "mdb_env_create")
        env = e!
        do {
            try check(mdb_env_set_maxdbs(env, options.maxDatabases), "mdb_env_set_maxdbs")
            try check(mdb_env_set_maxreaders(env, options.maxReaders), "mdb_env_set_maxreaders")
            try check(mdb_env_set_mapsize(env, options.mapSize), "mdb_env_set_mapsize")
            var flags = UInt32(MDB_NOTLS)
            if options.durability == .relaxed { flags |= UInt32(MDB_NOSYNC) }
            if options.readOnly { flags |= UInt32(MDB_RDONLY) }
            if options.writeMap && !options.readOnly { flags |= UInt32(MDB_WRITEMAP) }
            try check(mdb_env_open(env, path, flags, 0o644), "mdb_env_open(\(path))")
        } catch {
            mdb_env_close(env)
            throw error
        }
        var dead: Int32 = 0
        mdb_reader_check(env, &dead)
        var info = MDB_envinfo()
        mdb_env_info(env, &info)
        currentMapSize = info.me_mapsize
    }

    deinit { mdb_env_close(env) }

    /// Opens a named database, creating it (with `flags`) unless the environment is read-only.
    /// - Throws: `LMDBError.notFound` when read-only and absent; `MDB_DBS_FULL` past `maxDatabases`.
    public func openDatabase(_ name: String, flags: DatabaseFlags = []) throws -> Database {
        dbLock.lock()
        defer { dbLock.unlock() }
        if let db = databases[name] { return db }
        let db: Database
        if options.readOnly {
            db = try read { tx in try tx.openDatabase(name, flags: flags, create: false) }
        } else {
            db = try write { tx in try tx.openDatabase(name, flags: flags, create: true) }
        }
        databases[name] = db
        return db
    }

    /// Runs `body` in a read-only transaction that sees one consistent snapshot.
    /// Bytes handed out inside are valid only within `body`.
    public func read<T>(_ body: (borrowing ReadTransaction) throws -> T) throws -> T {
        gate.lockShared()
        defer { gate.unlockShared() }
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn), "mdb_txn_begin(read)")
        let tx = ReadTransaction(txn: txn!)
        defer { mdb_txn_abort(txn) }
        return try body(tx)
    }

    /// Runs `body` in a write transaction and commits when it returns; aborts when it throws.
    ///
    /// When the map is full the transaction is aborted, the map doubled and `body` run again
    /// from the start, so `body` must be repeatable (it should only write what it computes).
    /// With `Durability.full` the data is on disk when this returns.
    public func write<T>(_ body: (borrowing WriteTransaction) throws -> T) throws -> T {
        while true {
            do {
                return try writeOnce(body)
            } catch let error as LMDBError where error.code == MDB_MAP_FULL {
                try grow()
            }
        }
    }

    private func writeOnce<T>(_ body: (borrowing WriteTransaction) throws -> T) throws -> T {
        // Shared: readers and the (LMDB-serialised) writer run together; only growth excludes.
        gate.lockShared()
        defer { gate.unlockShared() }
        var txn: OpaquePointer?
        try check(mdb_txn_begin(env, nil, 0, &txn), "mdb_txn_begin(write)")
        let tx = WriteTransaction(txn: txn!)
        let result: T
        do {
            result = try body(tx)
        } catch {
            mdb_txn_abort(txn)
            throw error
        }
        try check(mdb_txn_commit(txn), "mdb_txn_commit")
        return result
    }

    /// Doubles the map. Holding the gate exclusively guarantees no transaction of this
    /// process is active, which `mdb_env_set_mapsize` requires.
    private func grow() throws(LMDBError) {
        gate.lockExclusive()
        defer { gate.unlockExclusive() }
        let next = min(currentMapSize * 2, options.maxMapSize)
        guard next > currentMapSize else {
            throw LMDBError(code: MDB_MAP_FULL, operation: "grow map beyond maxMapSize \(options.maxMapSize)")
        }
        try check(mdb_env_set_mapsize(env, next), "mdb_env_set_mapsize(\(next))")
        currentMapSize = next
    }

    /// Drops this process's mapping of the environment's pages. They are file-backed pages of
    /// a shared map: the page cache keeps them (a page written through a writable map stays
    /// dirty there, to be written back as usual) and the next access faults them back in, but
    /// the process's resident set no longer grows with the file while a long scan (a rebuild
    /// reading the whole log) walks it. Safe while transactions are open.
    public func releaseMappedPages() {
        #if os(Linux)
        // LMDB does not tell where it mapped the file (`me_mapaddr` is only set for a fixed
        // map): find the mapping of data.mdb in /proc/self/maps.
        let file = URL(fileURLWithPath: path).appendingPathComponent("data.mdb").resolvingSymlinksInPath().path
        // Under the gate: the map cannot move (grow) between reading where it is and advising.
        gate.lockShared()
        defer { gate.unlockShared() }
        guard let maps = readWholeFile("/proc/self/maps") else { return }
        for line in maps.split(separator: "\n") where line.hasSuffix(file) {
            let range = line.prefix { $0 != " " }.split(separator: "-")
            guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16), end > start,
                  let address = UnsafeMutableRawPointer(bitPattern: start) else { continue }
            _ = madvise(address, Int(end - start), MADV_DONTNEED)
        }
        #endif
    }

    /// Flushes data pages to disk (needed after writes under `.relaxed` durability).
    public func sync() throws(LMDBError) {
        try check(mdb_env_sync(env, 1), "mdb_env_sync")
    }

    public var info: EnvironmentInfo {
        var i = MDB_envinfo()
        mdb_env_info(env, &i)
        var s = MDB_stat()
        mdb_env_stat(env, &s)
        let page = Int(s.ms_psize)
        return EnvironmentInfo(mapSize: i.me_mapsize, pageSize: page, usedBytes: (i.me_last_pgno + 1) * page,
                               lastTransactionID: i.me_last_txnid, maxReaders: Int(i.me_maxreaders),
                               readers: Int(i.me_numreaders))
    }

    /// Clears reader slots of dead processes; returns how many were cleared.
    @discardableResult
    public func clearStaleReaders() -> Int {
        var dead: Int32 = 0
        mdb_reader_check(env, &dead)
        return Int(dead)
    }

    /// Writes a consistent copy of the environment into the empty directory `destination`
    /// while readers and writers go on (`mdb_env_copy2`). With `compact`, free pages are
    /// omitted and the copy is renumbered — usually much smaller.
    public func backup(to destination: String, compact: Bool = true) throws(LMDBError) {
        try? FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
        try check(mdb_env_copy2(env, destination, compact ? UInt32(MDB_CP_COMPACT) : 0), "mdb_env_copy2(\(destination))")
    }

    /// Entry counts and page use of a database.
    public func stat(_ db: Database) throws -> DatabaseStat {
        try read { tx in try tx.stat(db) }
    }
}

/// Entry count and page use of one database (`mdb_stat`).
public struct DatabaseStat: Sendable {
    public let entries: Int
    public let depth: Int
    public let branchPages: Int
    public let leafPages: Int
    public let overflowPages: Int
    public let pageSize: Int
    public var bytes: Int { (branchPages + leafPages + overflowPages) * pageSize }
}

/// A lock that many readers share and one writer holds alone (pthread rwlock).
final class ReadWriteGate: @unchecked Sendable {
    private var lock = pthread_rwlock_t()
    init() { pthread_rwlock_init(&lock, nil) }
    deinit { pthread_rwlock_destroy(&lock) }
    func lockShared() { pthread_rwlock_rdlock(&lock) }
    func unlockShared() { pthread_rwlock_unlock(&lock) }
    func lockExclusive() { pthread_rwlock_wrlock(&lock) }
    func unlockExclusive() { pthread_rwlock_unlock(&lock) }
}

/// The whole content of a file read to its end (/proc files report size 0, and a single read
/// returns only part of them); nil when it cannot be opened.
public func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        out.append(contentsOf: buffer[0..<n])
    }
    return String(decoding: out, as: UTF8.self)
}
