// EventLog owns the append-only event log: the envelope and its validation, the record codec
// (binary body + zstd with dictionaries trained from the log itself), dense sequence numbers,
// idempotency by messageId, dead letters, tailing and verification. It never knows that a
// projection exists, and nothing but this module writes the log.

import Foundation
import JSONCore
import LMDB

/// What happened to one submitted event.
public enum AppendOutcome: Sendable, Equatable {
    /// Newly written at this seq.
    case appended(UInt64)
    /// A retry: (source, messageId) was already in the log at this seq; nothing written.
    case duplicate(UInt64)

    public var seq: UInt64 {
        switch self {
        case .appended(let s), .duplicate(let s): return s
        }
    }
}

/// A rejected input, as kept in the dead letters: nothing a client sent is silently dropped.
public struct DeadLetter: Sendable, Equatable {
    public var id: UInt64
    public var time: Micros
    public var source: String
    public var code: String
    public var reason: String
    /// The bytes exactly as received (for a batch member: that member's JSON).
    public var raw: [UInt8]

    public init(id: UInt64 = 0, time: Micros, source: String, code: String, reason: String, raw: [UInt8]) {
        self.id = id
        self.time = time
        self.source = source
        self.code = code
        self.reason = reason
        self.raw = raw
    }

    public init(rejection: Rejection, raw: [UInt8], source: String, time: Micros) {
        self.init(time: time, source: source, code: rejection.code, reason: rejection.message, raw: raw)
    }
}

/// Settings of an `EventLog`.
public struct LogOptions: Sendable {
    public var durability: Durability = .full
    public var initialMapSize: Int = 256 << 20
    /// Train the first dictionary once this many events have been seen.
    public var trainAfter: Int = 4000
    /// Retrain when the recent compression ratio falls below this fraction of the ratio
    /// measured right after the last training.
    public var retrainBelow: Double = 0.8
    public var dictionaryCapacity: Int = 64 * 1024
    /// Train dictionaries on a thread of their own instead of in the writer (a quarter to half
    /// a second during which no commit would be acknowledged): what a server wants. Off, the
    /// writer trains in line, and the commit that triggers it uses the new dictionary.
    public var trainInBackground = false
    public var compressionLevel: Int32 = 3
    public var readOnly = false
    /// The least the recent messageId table holds before its entries move to the settled
    /// table (see `EventLog.sweepRecentIndex`). Small: a live server's commits of a thousand
    /// events or so dirty nearly every page of the recent table, so its size is what each
    /// commit writes and syncs (65,536 made a 1,300-event commit's sync take 11–13 ms, 8,192
    /// 5.6–5.7 ms).
    public var recentIndexFloor = 8_192

    public init(durability: Durability = .full, initialMapSize: Int = 256 << 20, readOnly: Bool = false,
                trainAfter: Int = 4000, retrainBelow: Double = 0.8) {
        self.durability = durability
        self.initialMapSize = initialMapSize
        self.readOnly = readOnly
        self.trainAfter = trainAfter
        self.retrainBelow = retrainBelow
    }
}

/// The append-only event log in `<data>/log`: named databases `events` (seq → record,
/// written with `MDB_APPEND`), `message_ids` and `message_ids_recent` (hash of source +
/// messageId → seq, see `sweepRecentIndex`), `rejected` (dead letters) and `meta` (format
/// version, dictionaries, counters).
///
///     let log = try EventLog(directory: "data/log")
///     let outcomes = try log.append([prepared])      // durable when it returns
///     try log.forEach(from: 1) { event in print(event.seq, event.type) }
///
/// Thread-safe: appends are serialised internally (use `Ingestor` to share commits among
/// concurrent callers); reads run concurrently with them.
public final class EventLog: @unchecked Sendable {
    public let directory: String
    public let environment: Environment
    public let options: LogOptions
    public let dictionaries = DictionarySet()
    let events: Database
    let messageIDs: Database
    /// The newest messageId entries, moved into `messageIDs` a key range at a time; nil only
    /// when a log from before it is opened read-only.
    let recentMessageIDs: Database?
    let rejected: Database
    let meta: Database
    /// Seqs removed by compaction (erasure, retention): verify accepts these gaps.
    let erased: Database
    /// Salted hashes of erased customers' identifiers: their new events are refused.
    let suppressed: Database
    /// Admin actions: who, what, when.
    let audit: Database
    let suppressionCache = SuppressionCache()
    let notifier = CommitNotifier()
    private let writer: LogWriter
    private let writerLock = NSLock()
    /// Which (source, messageId) hashes are certainly not in the index; under `writerLock`.
    let dedupeFilter = DedupeFilter()
    /// The newest appended events, kept for `followingEvents` once `keepRecentEvents` is called.
    private var recent: RecentEvents?
    private let recentLock = NSLock()
    private var recentEvents: RecentEvents? { recentLock.withLock { recent } }
    private let compressors: CompressorPool

    public init(directory: String, options: LogOptions = .init()) throws {
        self.directory = directory
        self.options = options
        environment = try Environment(path: directory, options: EnvironmentOptions(
            mapSize: options.initialMapSize, maxDatabases: 16, durability: options.durability, readOnly: options.readOnly))
        events = try environment.openDatabase("events", flags: .integerKey)
        messageIDs = try environment.openDatabase("message_ids", flags: [.duplicateSort, .duplicateFixed])
        recentMessageIDs = options.readOnly
            ? try? environment.openDatabase("message_ids_recent", flags: [.duplicateSort, .duplicateFixed])
            : try environment.openDatabase("message_ids_recent", flags: [.duplicateSort, .duplicateFixed])
        rejected = try environment.openDatabase("rejected", flags: .integerKey)
        meta = try environment.openDatabase("meta")
        erased = try environment.openDatabase("erased", flags: .integerKey)
        suppressed = try environment.openDatabase("suppressed")
        audit = try environment.openDatabase("audit", flags: .integerKey)
        writer = LogWriter(options: options)
        compressors = CompressorPool(level: options.compressionLevel)
        if !options.readOnly {
            try environment.write { tx in
                // A log of version-1 records takes blocks from now on and reads both.
                if try tx.get(meta, key: Array("format".utf8)) != [RecordCodec.formatVersion] {
                    try tx.put(meta, key: Array("format".utf8), value: [RecordCodec.formatVersion])
                }
                // Logs from before blocks held one event a record: their count is the entries'.
                if try tx.get(meta, key: Self.eventCountKey) == nil {
                    let n = Int64(try tx.stat(events).entries)
                    try tx.put(meta, key: Self.eventCountKey, value: withUnsafeBytes(of: n) { Array($0) })
                }
            }
        }
        try loadDictionaries()
        writer.current = dictionaries.latest
        notifier.publish(lastSeq)
    }

    private func loadDictionaries() throws {
        let found: [(UInt32, [UInt8])] = try environment.read { tx in
            var out: [(UInt32, [UInt8])] = []
            try tx.scan(meta, from: Array("dict/".utf8)) { k, v in
                guard let key = String(bytes: k, encoding: .utf8), key.hasPrefix("dict/"),
                      let id = UInt32(key.dropFirst(5)) else { return false }
                out.append((id, Array(v)))
                return true
            }
            return out
        }
        for (id, bytes) in found where dictionaries[id] == nil {
            dictionaries.insert(try ZstdDictionary(id: id, bytes: bytes, level: options.compressionLevel))
        }
    }

    // MARK: Appending

    static let eventCountKey = Array("stat/events".utf8)

    /// Compresses `items` into blocks on the calling thread, with the newest dictionary, so
    /// the single writer only writes. Optional: `append` compresses what is not sealed.
    public func seal(_ items: inout [PreparedEvent]) throws {
        let dict = dictionaries.latest
        try compressors.with { c in try Self.sealRuns(&items, dictionary: dict, compressor: c) }
    }

    /// Seals the runs of unsealed items, `RecordCodec.blockEvents` at a time.
    private static func sealRuns(_ items: inout [PreparedEvent], dictionary: ZstdDictionary?, compressor: Compressor) throws {
        var i = 0
        while i < items.count {
            if items[i].sealedCount > 0 { i += items[i].sealedCount; continue }
            var end = i
            while end < items.count, end - i < RecordCodec.blockEvents, items[end].sealedCount <= 0 { end += 1 }
            try sealBlock(&items, i..<end, dictionary: dictionary, compressor: compressor)
            i = end
        }
    }

    /// Marks unsealed the events of blocks that `items` holds only part of (a caller sliced
    /// an array through a block), so they are sealed again whole.
    static func unsealBrokenBlocks(_ items: inout [PreparedEvent]) {
        var i = 0
        while i < items.count {
            let count = items[i].sealedCount
            if count > 0, i + count <= items.count, items[i + 1 ..< i + count].allSatisfy({ $0.sealedCount == -1 }) {
                i += count
                continue
            }
            if count != 0 { items[i].record = nil; items[i].sealedCount = 0 }
            i += 1
        }
    }

    private static func sealBlock(_ items: inout [PreparedEvent], _ range: Range<Int>, dictionary: ZstdDictionary?,
                                  compressor: Compressor) throws {
        items[range.lowerBound].record = try RecordCodec.encode(items[range], dictionary: dictionary, compressor: compressor)
        items[range.lowerBound].sealedCount = range.count
        for j in range.dropFirst() { items[j].record = nil; items[j].sealedCount = -1 }
    }

    /// Appends `items` (skipping retries of a (source, messageId) already in the log) and
    /// `deadLetters` in one transaction, durable when this returns under `.full` durability.
    /// Seqs are dense, increasing, in `items` order. Outcomes are in `items` order.
    /// - Throws: `LMDBError` or `ZstdError`; then nothing of this call was written.
    @discardableResult
    public func append(_ items: [PreparedEvent], deadLetters: [DeadLetter] = []) throws -> [AppendOutcome] {
        writerLock.lock()
        defer { writerLock.unlock() }
        try writer.maybeTrain(items, log: self)
        let dict = writer.current
        // Seal what is not sealed yet, outside the transaction (and any retry after map growth);
        // blocks sealed before the first dictionary existed (an import's preparers run a commit
        // or two ahead of the writer, which trains it) are compressed again with it, once.
        var items = items
        Self.unsealBrokenBlocks(&items)
        var payloadBytes = 0
        for n in items.indices {
            payloadBytes += items[n].payload.count
            if items[n].sealedCount > 0, let r = items[n].record, dict != nil, RecordCodec.dictionaryID(of: r) == 0 {
                try Self.sealBlock(&items, n..<n + items[n].sealedCount, dictionary: dict, compressor: writer.compressor)
            }
        }
        try Self.sealRuns(&items, dictionary: dict, compressor: writer.compressor)
        var recordBytes = 0
        for n in items.indices where items[n].sealedCount > 0 { recordBytes += items[n].record!.count }
        let deadRecords = deadLetters.map(DeadLetterCodec.encode)
        var committedCount: Int64 = 0
        let outcomes: [AppendOutcome] = try environment.write { tx in
            let counted = try tx.withValue(meta, key: Self.eventCountKey) { $0.loadUnaligned(as: Int64.self) } ?? 0
            if !dedupeFilter.covers(count: counted) {
                try dedupeFilter.rebuild(tx, tables: [messageIDs] + (recentMessageIDs.map { [$0] } ?? []), count: counted)
            }
            // After compaction dropped the newest records, seqs still never repeat.
            let floor = try tx.withValue(meta, key: Array("high_seq".utf8)) { $0.loadUnaligned(as: UInt64.self) } ?? 0
            var next = max(try lastStoredSeq(tx), floor) + 1
            var outcomes: [AppendOutcome] = []
            outcomes.reserveCapacity(items.count)
            // Dedupe hash → the first item appended in this batch with it; a second, different
            // message with the same hash (a 64-bit collision) goes to `collided`.
            var inBatch: [UInt64: Int] = [:]
            inBatch.reserveCapacity(items.count)
            var collided: [UInt64: [Int]] = [:]
            var appendedInput = 0, appendedRecord = 0, appendedCount = 0
            var start = 0
            while start < items.count {
                let count = items[start].sealedCount
                // Which of the block's events are new: a retry keeps its original seq.
                var kept: [Int] = []
                kept.reserveCapacity(count)
                for n in start..<start + count {
                    let hash = items[n].dedupeHash
                    if let first = inBatch[hash] {
                        let same = { (m: Int) in items[m].messageId == items[n].messageId && items[m].source == items[n].source }
                        if let earlier = same(first) ? first : collided[hash]?.first(where: same) {
                            outcomes.append(.duplicate(outcomes[earlier].seq))
                            continue
                        }
                    }
                    if dedupeFilter.mayContain(hash),
                       let seq = try findMessage(tx, hash: hash, source: items[n].source, messageId: items[n].messageId) {
                        outcomes.append(.duplicate(seq))
                        continue
                    }
                    if inBatch[hash] == nil { inBatch[hash] = n } else { collided[hash, default: []].append(n) }
                    outcomes.append(.appended(next + UInt64(kept.count)))
                    kept.append(n)
                }
                if !kept.isEmpty {
                    // The block as sealed, or — when it held retries — one of the new events alone.
                    let record = kept.count == count ? items[start].record!
                        : try RecordCodec.encode(kept.map { items[$0] }, dictionary: dict, compressor: writer.compressor)
                    try tx.put(events, key: next.nativeKey, value: record, flags: .append)
                    for n in kept {
                        let hash = items[n].dedupeHash
                        try MessageIndex.withEntry(hash, seq: next) { k, v in try tx.put(recentMessageIDs ?? messageIDs, key: k, value: v) }
                        dedupeFilter.insert(hash)
                        next += 1
                        appendedInput += items[n].inputBytes
                    }
                    appendedRecord += record.count
                    appendedCount += kept.count
                }
                start += count
            }
            if !deadRecords.isEmpty {
                var id = try Self.lastKey(tx, rejected) + 1
                for d in deadRecords {
                    try tx.put(rejected, key: id.nativeKey, value: d, flags: .append)
                    id += 1
                }
            }
            try sweepRecentIndex(tx, inserted: appendedCount)
            if appendedInput > 0 {
                try addCounter(tx, "stat/input_bytes", appendedInput)
                try addCounter(tx, "stat/record_bytes", appendedRecord)
            }
            committedCount = counted + Int64(appendedCount)
            if appendedCount > 0 {  // (read once, above, for the filter)
                try tx.put(meta, key: Self.eventCountKey, value: withUnsafeBytes(of: committedCount) { Array($0) })
            }
            return outcomes
        }
        dedupeFilter.didCommit(count: committedCount)
        if let recent = recentEvents {
            recent.append(outcomes.indices.lazy.compactMap { n -> Event? in
                guard case .appended(let seq) = outcomes[n] else { return nil }
                return Event(seq: seq, type: items[n].type, timestamp: items[n].timestamp, receivedAt: items[n].receivedAt,
                             payload: items[n].payload)
            })
        }
        writer.observe(events: items.count, payloadBytes: payloadBytes, recordBytes: recordBytes)
        if let last = outcomes.last(where: { if case .appended = $0 { return true }; return false }) {
            notifier.publish(last.seq)
        }
        return outcomes
    }

    /// Keeps rejected inputs in the dead letters (durably).
    public func reject(_ deadLetters: [DeadLetter]) throws {
        guard !deadLetters.isEmpty else { return }
        try append([], deadLetters: deadLetters)
    }

    /// The messageId index is two tables. New entries go to `message_ids_recent`, kept small;
    /// each commit then moves its oldest key range into `message_ids`, sweeping the key space
    /// round and round. A commit's random inserts so touch the pages of the small table only,
    /// and the large one is written a contiguous range of keys at a time — where inserting
    /// straight into it touched a random page of it per event: with 32,768 events a commit,
    /// nearly every page, every commit (most of an import's bytes written, and more the
    /// longer the log). The recent table is let grow to √(entries × commit size) — the
    /// balance of the two tables' pages written — and at least `recentIndexFloor` entries.
    private func sweepRecentIndex(_ tx: borrowing WriteTransaction, inserted: Int) throws {
        guard let recent = recentMessageIDs else { return }
        let held = try tx.stat(recent).entries
        let settled = try tx.stat(messageIDs).entries
        let target = max(options.recentIndexFloor, Int(Double(settled).squareRoot() * Double(max(inserted, 1_024)).squareRoot()))
        guard held > target else { return }
        let quota = min(held - target, 2 * inserted + 1_024)  // gradual, whatever the target does
        let sweepKey = Array("index_sweep".utf8)
        let stored: [UInt8]?? = try tx.withValue(meta, key: sweepKey) { $0.count == 2 ? [$0[0], $0[1]] : nil }
        let start: [UInt8] = (stored ?? nil) ?? [0, 0]
        // Whole keys (all their entries) from `start` on, wrapping round, until the quota is
        // met: copied out flat (2-byte key, 12-byte value), then put and deleted.
        var moving: [UInt8] = []
        moving.reserveCapacity((quota + 64) * 14)
        var count = 0
        var lastKey: (UInt8, UInt8)?
        func collect(from: [UInt8]?, below limit: Int) throws -> Bool {
            var done = false
            try tx.scan(recent, from: from) { k, v in
                guard k.count == 2, v.count == 12 else { return true }
                let key = (k[0], k[1])
                if Int(key.0) << 8 | Int(key.1) >= limit { return false }
                if count >= quota, let last = lastKey, last != key { done = true; return false }
                moving.append(contentsOf: k)
                moving.append(contentsOf: v)
                count += 1
                lastKey = key
                return true
            }
            return done
        }
        let startKey = Int(start[0]) << 8 | Int(start[1])
        if try !collect(from: start, below: 0x10000), startKey > 0 { _ = try collect(from: nil, below: startKey) }
        guard let last = lastKey else { return }
        try moving.withUnsafeBytes { all in
            var previous: (UInt8, UInt8)?
            for i in 0..<count {
                let entry = UnsafeRawBufferPointer(rebasing: all[(i * 14)..<(i * 14 + 14)])
                let key = UnsafeRawBufferPointer(rebasing: entry[0..<2])
                try tx.put(messageIDs, key: key, value: UnsafeRawBufferPointer(rebasing: entry[2..<14]))
                if let p = previous, p == (entry[0], entry[1]) { continue }
                previous = (entry[0], entry[1])
                try tx.delete(recent, key: Array(key))
            }
        }
        let next = (Int(last.0) << 8 | Int(last.1)) + 1
        try tx.put(meta, key: sweepKey, value: next > 0xFFFF ? [0, 0] : [UInt8(next >> 8), UInt8(next & 0xFF)])
    }

    private func findMessage(_ tx: borrowing WriteTransaction, hash: UInt64, source: String, messageId: String) throws -> UInt64? {
        // Nearly always no candidate: found without allocating.
        let candidates = try messageCandidates(tx, hash: hash)
        guard !candidates.isEmpty else { return nil }
        // A hash hit: confirm on the record itself (hash collisions are possible, if rare).
        let decompressor = Decompressor()
        for seq in candidates {
            let event = try event(tx, seq: seq, decompressor: decompressor)
            if let event, event.messageId == messageId, event.source == source { return seq }
        }
        return nil
    }

    /// Seqs whose (source, messageId) hash is `hash`: usually none or one.
    func messageCandidates(_ tx: borrowing some TransactionReading & ~Copyable, hash: UInt64) throws -> [UInt64] {
        var out: [UInt64] = []
        try forEachMessageCandidate(tx, hash: hash, in: messageIDs) { out.append($0) }
        if let recent = recentMessageIDs { try forEachMessageCandidate(tx, hash: hash, in: recent) { out.append($0) } }
        return out
    }

    private func forEachMessageCandidate(_ tx: borrowing some TransactionReading & ~Copyable, hash: UInt64, in db: Database,
                                         _ body: (UInt64) -> Void) throws {
        try MessageIndex.withEntry(hash, seq: 0) { key, least in
            try tx.withCursor(db) { c in
                var e = try c.seek(key: key, duplicateAtLeast: least)
                while let (k, v) = e {
                    let (h, seq) = MessageIndex.decode(key: k, value: v)
                    guard h == hash else { break }
                    body(seq)
                    e = try c.nextDuplicate()
                }
            }
        }
    }

    func addCounter(_ tx: borrowing WriteTransaction, _ name: String, _ delta: Int) throws {
        let key = Array(name.utf8)
        let old = try tx.withValue(meta, key: key) { $0.loadUnaligned(as: Int64.self) } ?? 0
        try tx.put(meta, key: key, value: withUnsafeBytes(of: old + Int64(delta)) { Array($0) })
    }

    /// Waits for a dictionary being trained in the background (`trainInBackground`) and puts
    /// it in use; returns at once when none is.
    public func finishTraining() throws {
        writerLock.lock()
        defer { writerLock.unlock() }
        try writer.finishTraining(log: self)
    }

    func storeDictionary(_ d: ZstdDictionary) throws {
        try environment.write { tx in
            try tx.put(meta, key: Array("dict/\(d.id)".utf8), value: d.bytes)
        }
        dictionaries.insert(d)
    }

    static func lastKey(_ tx: borrowing some TransactionReading & ~Copyable, _ db: Database) throws -> UInt64 {
        try tx.withCursor(db) { c in try c.last().map { UInt64(nativeKey: $0.key) } ?? 0 }
    }

    /// The highest seq stored (0 when none): the last block's last.
    func lastStoredSeq(_ tx: borrowing some TransactionReading & ~Copyable) throws -> UInt64 {
        try tx.withCursor(events) { c in
            guard let (k, v) = try c.last() else { return 0 }
            return try RecordCodec.lastSeq(key: UInt64(nativeKey: k), v)
        }
    }

    /// Calls `body` with the record holding `seq` (its key and bytes), or returns nil when the
    /// log holds no such seq.
    func withRecord<T>(_ tx: borrowing some TransactionReading & ~Copyable, holding seq: UInt64,
                       _ body: (UInt64, UnsafeRawBufferPointer) throws -> T) throws -> T? {
        try tx.withCursor(events) { c in
            guard let (k, v) = try c.seekAtOrBefore(seq.nativeKey) else { return nil }
            let key = UInt64(nativeKey: k)
            guard try RecordCodec.holds(seq, key: key, v) else { return nil }
            return try body(key, v)
        }
    }

    /// The event at `seq`, read in `tx`.
    func event(_ tx: borrowing some TransactionReading & ~Copyable, seq: UInt64, decompressor: Decompressor) throws -> Event? {
        try withRecord(tx, holding: seq) { key, record in
            try RecordCodec.decode(seq: seq, key: key, record: record, dictionaries: dictionaries, decompressor: decompressor)
        } ?? nil
    }

    // MARK: Reading

    /// The highest seq in the log (0 when empty).
    public var lastSeq: UInt64 {
        (try? environment.read { tx in try lastStoredSeq(tx) }) ?? 0
    }

    /// The event at `seq`, or nil when there is none.
    public func event(seq: UInt64) throws -> Event? {
        let d = Decompressor()
        return try environment.read { tx in try event(tx, seq: seq, decompressor: d) }
    }

    /// Visits the events at `seqs` in the order given, skipping seqs the log no longer holds
    /// (compacted away). Seqs of one block next to each other (ascending or descending)
    /// decompress it once. Reads in chunks of `chunk`, each in one short read transaction.
    public func forEach(seqs: some Collection<UInt64>, chunk: Int = 4096, _ body: (Event) throws -> Void) throws {
        let d = Decompressor()
        var i = seqs.startIndex
        while i < seqs.endIndex {
            let end = seqs.index(i, offsetBy: chunk, limitedBy: seqs.endIndex) ?? seqs.endIndex
            var found: [Event] = []
            try environment.read { tx in
                // Seqs in one block (ascending ones often are) decompress it once.
                var block: (first: UInt64, events: [Event])?
                for seq in seqs[i..<end] {
                    if let b = block, b.first <= seq, let last = b.events.last, seq <= last.seq {
                        if let e = b.events.first(where: { $0.seq == seq }) { found.append(e) }
                        continue
                    }
                    block = nil
                    try withRecord(tx, holding: seq) { key, record in
                        var all: [Event] = []
                        try RecordCodec.decode(key: key, record: record, dictionaries: dictionaries, decompressor: d) { all.append($0); return true }
                        block = (key, all)
                    }
                    if let e = block?.events.first(where: { $0.seq == seq }) { found.append(e) }
                }
            }
            for e in found { try body(e) }
            i = end
        }
    }

    /// Keeps the newest `capacity` events this process appends for `followingEvents`: for a
    /// reader that follows the log closely (the live views' tail).
    public func keepRecentEvents(capacity: Int) {
        recentLock.withLock { recent = RecentEvents(capacity: capacity) }
    }

    /// `events(from:limit:)`, taken from the events this process appended last when `from` is
    /// among them (see `keepRecentEvents`): the same events, without reading, decompressing
    /// and decoding their records. Stops where another process's appends begin.
    public func followingEvents(from: UInt64, limit: Int, decompressor: Decompressor? = nil) throws -> [Event] {
        if let recent = recentEvents {
            let kept = recent.take(from: from, limit: limit)
            if !kept.isEmpty { return kept }
        }
        return try events(from: from, limit: limit, decompressor: decompressor)
    }

    /// Up to `limit` events with seq ≥ `from`, in order. A caller that reads again and again
    /// (the views' tail) passes its own `decompressor`: a zstd context is not free to make.
    public func events(from: UInt64, limit: Int, decompressor: Decompressor? = nil) throws -> [Event] {
        var out: [Event] = []
        try forEach(from: from, chunk: limit, decompressor: decompressor) { e in
            out.append(e)
            return out.count < limit
        }
        return out
    }

    /// Visits events with `from` ≤ seq ≤ `through` in order until `body` returns false.
    /// Reads in chunks of `chunk` records, each in its own short read transaction, so a long
    /// scan never pins old pages while writers go on.
    public func forEach(from: UInt64 = 1, through: UInt64 = .max, chunk: Int = 4096, decompressor: Decompressor? = nil,
                        _ body: (Event) throws -> Bool) throws {
        let d = decompressor ?? Decompressor()
        try forEachRecord(from: from, through: through, chunk: chunk) { key, record in
            try RecordCodec.decode(key: key, record: record, wanted: max(from, 1)...through, dictionaries: dictionaries,
                                   decompressor: d, body)
        }
    }

    /// Visits the raw records (blocks) holding seqs `from`…`through` in order — the first may
    /// start before `from`, the last end after `through` — as (key, bytes valid only during
    /// the call). Reads about `chunk` events at a time, each chunk in one short read
    /// transaction, so a long scan never pins old pages while writers go on.
    public func forEachRecord(from: UInt64 = 1, through: UInt64 = .max, chunk: Int = 4096,
                              _ body: (UInt64, UnsafeRawBufferPointer) throws -> Bool) throws {
        var next = max(from, 1)
        var done = false
        while !done && next <= through {
            var seen = 0
            try environment.read { tx in
                try tx.withCursor(events) { c in
                    // The block holding `next` starts at or before it.
                    var entry = try c.seekAtOrBefore(next.nativeKey)
                    if let (k, v) = entry, try RecordCodec.lastSeq(key: UInt64(nativeKey: k), v) < next { entry = try c.next() }
                    if entry == nil { entry = try c.seek(next.nativeKey) }
                    while let (k, v) = entry {
                        let key = UInt64(nativeKey: k)
                        if key > through { done = true; return }
                        let last = try RecordCodec.lastSeq(key: key, v)
                        if try !body(key, v) { done = true; return }
                        next = last + 1
                        seen += Int(last - key + 1)
                        if seen >= chunk { return }
                        entry = try c.next()
                    }
                }
            }
            if seen == 0 { break }
        }
    }

    /// The seq of (source, messageId), if it is in the log.
    public func seq(source: String, messageId: String) throws -> UInt64? {
        let hash = StableHash.fnv1a(source, messageId)
        let d = Decompressor()
        return try environment.read { tx in
            for seq in try messageCandidates(tx, hash: hash) {
                let ev = try event(tx, seq: seq, decompressor: d)
                if let ev, ev.messageId == messageId, ev.source == source { return seq }
            }
            return nil
        }
    }

    /// Dead letters with id > `after`, oldest first.
    public func deadLetters(after: UInt64 = 0, limit: Int = 100) throws -> [DeadLetter] {
        try environment.read { tx in
            var out: [DeadLetter] = []
            try tx.scan(rejected, from: (after + 1).nativeKey) { k, v in
                var d = try DeadLetterCodec.decode(v)
                d.id = UInt64(nativeKey: k)
                out.append(d)
                return out.count < limit
            }
            return out
        }
    }

    // MARK: Tailing

    /// When each of `seqs` (ascending) was durably committed by this process (µs since the
    /// epoch); nil where unknown: committed by another process, or before the last few
    /// thousand commits. For the views' commit-to-visible lag.
    public func commitMicros(_ seqs: [UInt64]) -> [Micros?] { notifier.commitMicros(seqs) }

    /// Waits until the log holds `seq` or `timeout` passes; returns whether it does. Wakes on
    /// commits of this process at once, and polls for commits made by other processes.
    public func waitForSeq(_ seq: UInt64, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if lastSeq >= seq { return true }
            let now = ContinuousClock.now
            if now >= deadline { return false }
            let slice = min(deadline - now, .milliseconds(500))
            await notifier.wait(for: seq, timeout: slice)
        }
    }

    /// Blocks the calling thread until `seq` is committed or `timeout` passes (see `waitForSeq`
    /// for tasks); returns whether it is committed.
    public func waitForSeq(_ seq: UInt64, blockingFor timeout: Duration) -> Bool {
        lastSeq >= seq || notifier.waitBlocking(for: seq, timeout: timeout)
    }

    /// Every event from `seq` on, forever: batches of stored events, waking on each commit.
    public func tail(from seq: UInt64, batchSize: Int = 1024) -> AsyncThrowingStream<[Event], Error> {
        AsyncThrowingStream { continuation in
            let task = Task {
                var next = max(seq, 1)
                do {
                    while !Task.isCancelled {
                        let batch = try self.events(from: next, limit: batchSize)
                        if let last = batch.last {
                            next = last.seq + 1
                            continuation.yield(batch)
                        } else {
                            _ = await self.waitForSeq(next, timeout: .seconds(3600))
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    // MARK: Maintenance

    /// Writes a compacted, consistent copy of the log into `destination` (hot: appends go on).
    public func backup(to destination: String) throws {
        try environment.backup(to: destination, compact: true)
    }

    /// Drops this process's mapping of the log's pages (see `Environment.releaseMappedPages`).
    public func releaseMappedPages() { environment.releaseMappedPages() }

    /// Flushes relaxed-durability commits to disk.
    public func sync() throws { try environment.sync() }
}
