import CLMDB

/// An error from liblmdb: its return code, its message (`mdb_strerror`) and the call that failed.
public struct LMDBError: Error, Sendable, CustomStringConvertible, Equatable {
    public let code: Int32
    public let operation: String
    public var message: String { String(cString: mdb_strerror(code)) }
    public var description: String { "\(operation): \(message) (\(code))" }

    public static let notFound = MDB_NOTFOUND
    public static let keyExists = MDB_KEYEXIST
    public static let mapFull = MDB_MAP_FULL
}

@inline(__always) @usableFromInline
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != 0 { throw LMDBError(code: rc, operation: operation()) }
}

/// Flags of a single `put`.
public struct PutFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// The key must sort after every existing key (cheap, page-filling appends); else `MDB_KEYEXIST`.
    public static let append = PutFlags(rawValue: UInt32(MDB_APPEND))
    /// Fail with `MDB_KEYEXIST` instead of replacing an existing key.
    public static let noOverwrite = PutFlags(rawValue: UInt32(MDB_NOOVERWRITE))
    /// For `duplicateSort` databases: fail if this exact key/value pair exists.
    public static let noDuplicateData = PutFlags(rawValue: UInt32(MDB_NODUPDATA))
    /// For `duplicateSort` databases: append the value after the existing ones.
    public static let appendDuplicate = PutFlags(rawValue: UInt32(MDB_APPENDDUP))
}

/// The read operations shared by read and write transactions. Buffers passed to closures
/// point into the map and are valid only during the closure.
public protocol TransactionReading: ~Copyable {
    var txn: OpaquePointer { get }
}

extension TransactionReading where Self: ~Copyable {
    /// The transaction's id (`mdb_txn_id`): a snapshot has the id of the last write committed
    /// before it began; a write has the id it commits as (the last committed one plus one).
    public var id: Int { Int(mdb_txn_id(txn)) }

    /// The value stored under `key`, copied out; nil when absent.
    public func get(_ db: Database, key: [UInt8]) throws -> [UInt8]? {
        try withValue(db, key: key) { Array($0) }
    }

    /// Calls `body` with the value under `key` without copying it; nil when absent.
    /// (Inlinable, so a lookup in a fold is specialised for its result type; the key is lent to
    /// LMDB, which only reads it — a mutable copy cost an allocation per lookup.)
    @inlinable
    public func withValue<T>(_ db: Database, key: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try key.withUnsafeBytes { kb in
            var mk = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            var mv = MDB_val()
            let rc = mdb_get(txn, db.dbi, &mk, &mv)
            if rc == MDB_NOTFOUND { return nil }
            try check(rc, "mdb_get(\(db.name))")
            return try body(UnsafeRawBufferPointer(start: mv.mv_data, count: mv.mv_size))
        }
    }

    /// Opens a cursor for the life of `body`.
    public func withCursor<T>(_ db: Database, _ body: (inout Cursor) throws -> T) throws -> T {
        var c: OpaquePointer?
        try check(mdb_cursor_open(txn, db.dbi, &c), "mdb_cursor_open(\(db.name))")
        defer { mdb_cursor_close(c) }
        var cursor = Cursor(cursor: c!, db: db)
        return try body(&cursor)
    }

    /// Visits entries in key order starting at the first key ≥ `from` (or the first key),
    /// or in reverse from the last key ≤ `from` (or the last key). `body` returns false to stop.
    public func scan(_ db: Database, from: [UInt8]? = nil, reverse: Bool = false,
                     _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try withCursor(db) { c in
            var entry: (UnsafeRawBufferPointer, UnsafeRawBufferPointer)?
            if let from {
                entry = reverse ? try c.seekAtOrBefore(from) : try c.seek(from)
            } else {
                entry = reverse ? try c.last() : try c.first()
            }
            while let (k, v) = entry {
                if try !body(k, v) { return }
                entry = reverse ? try c.previous() : try c.next()
            }
        }
    }

    public func stat(_ db: Database) throws(LMDBError) -> DatabaseStat {
        var s = MDB_stat()
        try check(mdb_stat(txn, db.dbi, &s), "mdb_stat(\(db.name))")
        return DatabaseStat(entries: s.ms_entries, depth: Int(s.ms_depth), branchPages: s.ms_branch_pages,
                            leafPages: s.ms_leaf_pages, overflowPages: s.ms_overflow_pages, pageSize: Int(s.ms_psize))
    }

    func openDatabase(_ name: String, flags: DatabaseFlags, create: Bool) throws(LMDBError) -> Database {
        var dbi: MDB_dbi = 0
        try check(mdb_dbi_open(txn, name, flags.rawValue | (create ? UInt32(MDB_CREATE) : 0), &dbi), "mdb_dbi_open(\(name))")
        return Database(name: name, dbi: dbi, flags: flags)
    }
}

/// A read-only snapshot; exists only inside `Environment.read`.
public struct ReadTransaction: ~Copyable, TransactionReading {
    public let txn: OpaquePointer
}

/// A write transaction; exists only inside `Environment.write`, which commits or aborts it.
public struct WriteTransaction: ~Copyable, TransactionReading {
    public let txn: OpaquePointer

    /// Stores `value` under `key`. With `.append` the key must sort last; with `.noOverwrite`
    /// an existing key fails. - Throws: `LMDBError` (`MDB_KEYEXIST`, `MDB_MAP_FULL`, …).
    public func put(_ db: Database, key: [UInt8], value: [UInt8], flags: PutFlags = []) throws {
        try key.withUnsafeBytes { kb in
            try value.withUnsafeBytes { vb in
                try put(db, key: kb, value: vb, flags: flags)
            }
        }
    }

    public func put(_ db: Database, key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer, flags: PutFlags = []) throws {
        var mk = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var mv = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        try check(mdb_put(txn, db.dbi, &mk, &mv, flags.rawValue), "mdb_put(\(db.name))")
    }

    /// Deletes `key` (all its values), or only the pair (`key`, `value`) in a `duplicateSort`
    /// database. Returns false when there was nothing to delete.
    @discardableResult
    public func delete(_ db: Database, key: [UInt8], value: [UInt8]? = nil) throws -> Bool {
        try key.withUnsafeBytes { kb in
            var mk = MDB_val(mv_size: kb.count, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
            let rc: Int32
            if let v = value {
                rc = v.withUnsafeBytes { vb in
                    var mv = MDB_val(mv_size: vb.count, mv_data: UnsafeMutableRawPointer(mutating: vb.baseAddress))
                    return mdb_del(txn, db.dbi, &mk, &mv)
                }
            } else {
                rc = mdb_del(txn, db.dbi, &mk, nil)
            }
            if rc == MDB_NOTFOUND { return false }
            try check(rc, "mdb_del(\(db.name))")
            return true
        }
    }

    /// Removes every entry of `db` (the database itself stays).
    public func clear(_ db: Database) throws {
        try check(mdb_drop(txn, db.dbi, 0), "mdb_drop(\(db.name))")
    }
}

/// A position in a database. Lives only inside `withCursor`.
public struct Cursor: ~Copyable {
    let cursor: OpaquePointer
    public let db: Database

    public typealias Entry = (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)

    private func op(_ o: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil) throws -> Entry? {
        var mk = MDB_val(mv_size: key?.count ?? 0, mv_data: key.map { UnsafeMutableRawPointer(mutating: $0.baseAddress) } ?? nil)
        var mv = MDB_val()
        let rc = mdb_cursor_get(cursor, &mk, &mv, o)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_cursor_get(\(db.name))")
        return (UnsafeRawBufferPointer(start: mk.mv_data, count: mk.mv_size),
                UnsafeRawBufferPointer(start: mv.mv_data, count: mv.mv_size))
    }

    public func first() throws -> Entry? { try op(MDB_FIRST) }
    public func last() throws -> Entry? { try op(MDB_LAST) }
    public func next() throws -> Entry? { try op(MDB_NEXT) }
    public func previous() throws -> Entry? { try op(MDB_PREV) }
    public func current() throws -> Entry? { try op(MDB_GET_CURRENT) }
    /// Next value of the current key (duplicateSort); nil after its last.
    public func nextDuplicate() throws -> Entry? { try op(MDB_NEXT_DUP) }

    /// The first entry whose key is ≥ `key`.
    public func seek(_ key: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { kb in try op(MDB_SET_RANGE, key: kb) }
    }

    /// The entry with exactly `key`.
    public func seekExact(_ key: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { kb in try op(MDB_SET_KEY, key: kb) }
    }

    /// In a `duplicateSort` database: the first value ≥ `value` under exactly `key`.
    public func seek(key: [UInt8], duplicateAtLeast value: [UInt8]) throws -> Entry? {
        try key.withUnsafeBytes { kb in
            try value.withUnsafeBytes { vb in try seek(key: kb, duplicateAtLeast: vb) }
        }
    }

    /// In a `duplicateSort` database: the first value ≥ `value` under exactly `key`.
    public func seek(key: UnsafeRawBufferPointer, duplicateAtLeast value: UnsafeRawBufferPointer) throws -> Entry? {
        var mk = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var mv = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        let rc = mdb_cursor_get(cursor, &mk, &mv, MDB_GET_BOTH_RANGE)
        if rc == MDB_NOTFOUND { return nil }
        try check(rc, "mdb_cursor_get(\(db.name))")
        return (UnsafeRawBufferPointer(start: mk.mv_data, count: mk.mv_size),
                UnsafeRawBufferPointer(start: mv.mv_data, count: mv.mv_size))
    }

    /// The last entry whose key is ≤ `key`.
    public func seekAtOrBefore(_ key: [UInt8]) throws -> Entry? {
        guard let e = try seek(key) else { return try last() }
        if e.key.elementsEqual(key) { return e }
        return try previous()
    }
}

extension UInt64 {
    /// Native-endian bytes, the key form of `DatabaseFlags.integerKey` databases.
    public var nativeKey: [UInt8] { withUnsafeBytes(of: self) { Array($0) } }
    /// Big-endian bytes: sort bytewise in numeric order, for composite keys.
    public var bigEndianBytes: [UInt8] { withUnsafeBytes(of: self.bigEndian) { Array($0) } }

    /// Reads a native-endian key (8 bytes).
    public init(nativeKey b: UnsafeRawBufferPointer) { self = b.loadUnaligned(as: UInt64.self) }
    /// Reads 8 big-endian bytes at `offset`.
    public init(bigEndianBytes b: UnsafeRawBufferPointer, at offset: Int = 0) {
        self = UInt64(bigEndian: b.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
