import Foundation
import LMDB
import Testing

final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "touchstone-lmdb-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

@Suite struct Transactions {
    @Test func writesCommitWhenTheClosureReturnsAndAbortWhenItThrows() throws {
        let dir = TempDir()
        let env = try Environment(path: dir.path)
        let db = try env.openDatabase("kv")
        try env.write { tx in try tx.put(db, key: bytes("a"), value: bytes("1")) }
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try env.write { tx in
                try tx.put(db, key: bytes("b"), value: bytes("2"))
                throw Boom()
            }
        }
        let (a, b) = try env.read { tx in (try tx.get(db, key: bytes("a")), try tx.get(db, key: bytes("b"))) }
        #expect(a == bytes("1"))
        #expect(b == nil)
    }

    @Test func errorsCarryLMDBsCodeAndMessage() throws {
        let dir = TempDir()
        let env = try Environment(path: dir.path)
        let db = try env.openDatabase("seq", flags: .integerKey)
        try env.write { tx in try tx.put(db, key: UInt64(5).nativeKey, value: [1], flags: .append) }
        do {
            try env.write { tx in try tx.put(db, key: UInt64(3).nativeKey, value: [1], flags: .append) }
            Issue.record("out-of-order append accepted")
        } catch let e as LMDBError {
            #expect(e.code == LMDBError.keyExists)
            #expect(e.description.contains("MDB_KEYEXIST"))
            #expect(e.description.contains("mdb_put(seq)"))
        }
    }

    @Test func readsSeeASnapshotWhileAWriterCommits() throws {
        let dir = TempDir()
        let env = try Environment(path: dir.path)
        let db = try env.openDatabase("kv")
        try env.write { tx in try tx.put(db, key: bytes("k"), value: bytes("old")) }
        let seen = try env.read { tx in
            try env.write { w in try w.put(db, key: bytes("k"), value: bytes("new")) }
            return try tx.get(db, key: bytes("k"))
        }
        #expect(seen == bytes("old"))
        #expect(try env.read { tx in try tx.get(db, key: bytes("k")) } == bytes("new"))
    }

    @Test func theMapGrowsAndTheWriteIsRetried() throws {
        let dir = TempDir()
        let env = try Environment(path: dir.path, options: EnvironmentOptions(mapSize: 1 << 20))
        let db = try env.openDatabase("blobs", flags: .integerKey)
        let blob = [UInt8](repeating: 7, count: 64 * 1024)
        for i in 0..<64 as Range<UInt64> {
            try env.write { tx in try tx.put(db, key: i.nativeKey, value: blob, flags: .append) }
        }
        #expect(env.info.mapSize >= 4 << 20)
        #expect(try env.stat(db).entries == 64)
        #expect(try env.read { tx in try tx.get(db, key: UInt64(63).nativeKey) } == blob)
    }
}

@Suite struct Cursors {
    func filled() throws -> (TempDir, Environment, Database) {
        let dir = TempDir()
        let env = try Environment(path: dir.path)
        let db = try env.openDatabase("n", flags: .integerKey)
        try env.write { tx in
            for i in stride(from: 10 as UInt64, through: 100, by: 10) { try tx.put(db, key: i.nativeKey, value: i.nativeKey, flags: .append) }
        }
        return (dir, env, db)
    }

    #if os(Linux)
    /// Resident bytes of this process's mappings of `file` (/proc/self/smaps).
    static func residentBytes(of file: String) throws -> Int {
        let smaps = try #require(readWholeFile("/proc/self/smaps"))
        var inFile = false, total = 0
        for line in smaps.split(separator: "\n") {
            if let first = line.first, first.isHexDigit, line.contains("-") && line.split(separator: " ").count >= 5 {
                inFile = line.hasSuffix(file)
            } else if inFile, line.hasPrefix("Rss:") {
                total += (Int(line.split(separator: " ")[1]) ?? 0) * 1024
            }
        }
        return total
    }

    @Test func releasingMappedPagesShrinksTheResidentSetAndKeepsTheData() throws {
        let dir = TempDir()
        let env = try Environment(path: dir.path)
        let db = try env.openDatabase("kv")
        let value = [UInt8](repeating: 7, count: 2000)
        try env.write { tx in for i in 0..<4000 { try tx.put(db, key: bytes(String(format: "k%05d", i)), value: value) } }
        let file = URL(fileURLWithPath: dir.path).appendingPathComponent("data.mdb").resolvingSymlinksInPath().path
        var sum = 0
        try env.read { tx in try tx.scan(db) { _, v in sum += Int(v[0]); return true } }
        #expect(sum == 4000 * 7)
        let before = try Self.residentBytes(of: file)
        #expect(before > 4 << 20, "reading 8 MB of values maps them in (\(before) bytes resident)")
        env.releaseMappedPages()
        let after = try Self.residentBytes(of: file)
        #expect(after < before / 4, "resident \(before) → \(after) bytes")
        // The data reads back (faulted in again from the page cache), in an open transaction too.
        sum = 0
        try env.read { tx in
            env.releaseMappedPages()
            try tx.scan(db) { _, v in sum += Int(v.reduce(0) { $0 + Int($1) }) / 2000; return true }
        }
        #expect(sum == 4000 * 7)
    }
    #endif

    @Test func scansForwardFromASeekKey() throws {
        let (_, env, db) = try filled()
        var keys: [UInt64] = []
        try env.read { tx in
            try tx.scan(db, from: UInt64(35).nativeKey) { k, _ in keys.append(UInt64(nativeKey: k)); return keys.count < 3 }
        }
        #expect(keys == [40, 50, 60])
    }

    @Test func scansBackwardFromTheLastKeyAtOrBefore() throws {
        let (_, env, db) = try filled()
        var keys: [UInt64] = []
        try env.read { tx in
            try tx.scan(db, from: UInt64(35).nativeKey, reverse: true) { k, _ in keys.append(UInt64(nativeKey: k)); return true }
        }
        #expect(keys == [30, 20, 10])
        var all: [UInt64] = []
        try env.read { tx in try tx.scan(db, reverse: true) { k, _ in all.append(UInt64(nativeKey: k)); return true } }
        #expect(all == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10])
    }

    @Test func duplicateSortedValuesComeInOrder() throws {
        let dir = TempDir()
        let env = try Environment(path: dir.path)
        let db = try env.openDatabase("dups", flags: [.duplicateSort])
        try env.write { tx in
            for v in ["c", "a", "b"] { try tx.put(db, key: bytes("k"), value: bytes(v)) }
            try tx.put(db, key: bytes("l"), value: bytes("z"))
        }
        var values: [String] = []
        try env.read { tx in
            try tx.withCursor(db) { c in
                var e = try c.seekExact(bytes("k"))
                while let (_, v) = e { values.append(String(decoding: v, as: UTF8.self)); e = try c.nextDuplicate() }
            }
        }
        #expect(values == ["a", "b", "c"])
        #expect(try env.write { tx in try tx.delete(db, key: bytes("k"), value: bytes("b")) })
        #expect(try env.stat(db).entries == 3)
    }
}

@Suite struct Maintenance {
    @Test func backupWithCompactionIsAReadableCopy() throws {
        let dir = TempDir()
        let env = try Environment(path: dir.path + "/a")
        let db = try env.openDatabase("kv")
        try env.write { tx in for i in 0..<1000 { try tx.put(db, key: bytes("k\(i)"), value: bytes(String(repeating: "v", count: 100))) } }
        try env.write { tx in for i in 0..<900 { try tx.delete(db, key: bytes("k\(i)")) } }
        try env.backup(to: dir.path + "/b", compact: true)
        let copy = try Environment(path: dir.path + "/b")
        let cdb = try copy.openDatabase("kv")
        #expect(try copy.stat(cdb).entries == 100)
        #expect(copy.info.usedBytes <= env.info.usedBytes)
    }

    @Test func readOnlyOpenCannotCreateDatabases() throws {
        let dir = TempDir()
        _ = try Environment(path: dir.path).openDatabase("exists")
        let ro = try Environment(path: dir.path, options: EnvironmentOptions(readOnly: true))
        #expect(throws: LMDBError.self) { try ro.openDatabase("missing") }
        _ = try ro.openDatabase("exists")
    }
}
