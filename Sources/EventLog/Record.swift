import Foundation
import JSONCore

/// What a record stores of one event: `PreparedEvent` on the way in, `Event` on the way out.
public protocol RecordContent {
    var type: EventType { get }
    var timestamp: Micros { get }
    var receivedAt: Micros { get }
    /// The body in binary JSON form.
    var payload: [UInt8] { get }
}

extension PreparedEvent: RecordContent {}
extension Event: RecordContent {}

/// The stored form of events: a record holds a block of up to `blockEvents` events with
/// consecutive seqs, stored under the first one's seq, compressed together in one zstd frame —
/// the events of one block share their field names, ids and values, which one frame a record
/// paid for again every time. A block stands alone (its own frame), so compaction can rewrite
/// the blocks that hold one customer's events without them and copy every other block byte for
/// byte; the rewritten block keeps its events' seqs (flag bit 0 then lists them).
///
///     byte 0   format version (2)
///     byte 1   flags: bit 0 — the seqs have gaps, each entry names its own
///     varint   dictionary id (0 = none)
///     varint   n, the number of events (1…)
///     n ×      byte    event type (EventType raw value)
///              zigzag  receivedAt, µs since the epoch (after the first: − the previous one's)
///              zigzag  timestamp, µs since the epoch (after the first: − the previous one's)
///              varint  body length in bytes
///              varint  (flag bit 0, after the first) seq − the previous seq − 1
///     …        one zstd frame (with content checksum) of the n bodies in binary JSON form, one
///              after another, without the frame's 4-byte magic number (implied; restored to decode)
///
/// Version 1 records — one event each, under its own seq — are still read:
///
///     byte 0 version (1), byte 1 flags (0), byte 2 event type, varint dictionary id,
///     zigzag receivedAt, zigzag timestamp − receivedAt, the zstd frame of the body (magicless)
public enum RecordCodec {
    public static let formatVersion: UInt8 = 2
    /// Events a block holds at most. On the datagen set a block of 16 stores an event in 83 bytes
    /// where a record of its own took 125; 32 would save 2–3 bytes more (measured on the
    /// set's JSON) at twice the work to read one event alone.
    public static let blockEvents = 16

    /// One event's place in a block, read without decompressing it.
    public struct Entry: Sendable, Equatable {
        public var seq: UInt64
        public var type: EventType
        public var timestamp: Micros
        public var receivedAt: Micros
        /// Body length; -1 in a version-1 record (the whole frame).
        public var length: Int
    }

    /// A record's header: its entries and where the zstd frame starts.
    public struct Header: Sendable, Equatable {
        public var version: UInt8
        public var dictionaryID: UInt32
        public var entries: [Entry]
        public var frameOffset: Int
        public var lastSeq: UInt64 { entries.last!.seq }
    }

    /// The id of the dictionary `record` was compressed with (0: none), from its header.
    static func dictionaryID(of record: [UInt8]) -> UInt32 {
        record.withUnsafeBufferPointer { b in
            guard b.count > 2 else { return 0 }
            var i = b[0] == 1 ? 3 : 2
            return JSONView.varint(b, &i).map { UInt32(truncatingIfNeeded: $0) } ?? 0
        }
    }

    /// One block of `items` with dense seqs, or with the given `seqs` (ascending, one an item).
    public static func encode<C: Collection>(_ items: C, seqs: [UInt64]? = nil, dictionary: ZstdDictionary?,
                                             compressor: Compressor) throws -> [UInt8] where C.Element: RecordContent {
        precondition(!items.isEmpty && items.count <= Int(UInt16.max))
        let gaps = seqs.map { s in zip(s, s.dropFirst()).contains { $1 != $0 + 1 } } ?? false
        var out: [UInt8] = []
        var size = 0
        for e in items { size += e.payload.count }
        out.reserveCapacity(size / 3 + 16 * items.count + 32)
        out.append(formatVersion)
        out.append(gaps ? 1 : 0)
        Varint.write(UInt64(dictionary?.id ?? 0), to: &out)
        Varint.write(UInt64(items.count), to: &out)
        var body: [UInt8] = []
        body.reserveCapacity(size)
        var previous: (received: Micros, time: Micros)?
        for (i, e) in items.enumerated() {
            out.append(e.type.rawValue)
            Varint.writeSigned(e.receivedAt &- (previous?.received ?? 0), to: &out)
            Varint.writeSigned(e.timestamp &- (previous?.time ?? 0), to: &out)
            Varint.write(UInt64(e.payload.count), to: &out)
            if gaps, let seqs, i > 0 { Varint.write(seqs[i] - seqs[i - 1] - 1, to: &out) }
            previous = (e.receivedAt, e.timestamp)
            body.append(contentsOf: e.payload)
        }
        let frameStart = out.count
        try compressor.compress(body, dictionary: dictionary, into: &out)
        out.removeSubrange(frameStart..<frameStart + 4)  // the magic number, the same in every frame
        return out
    }

    /// Reads the header of the record stored under `key`.
    public static func header(key: UInt64, _ record: UnsafeRawBufferPointer) throws -> Header {
        try record.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            let version = try r.byte()
            switch version {
            case 1:
                _ = try r.byte()
                let type = try eventType(try r.byte())
                let dict = try dictionaryID(try r.varint())
                let received = try r.signedVarint()
                let delta = try r.signedVarint()
                return Header(version: 1, dictionaryID: dict,
                              entries: [Entry(seq: key, type: type, timestamp: received &+ delta, receivedAt: received, length: -1)],
                              frameOffset: r.offset)
            case 2:
                let flags = try r.byte()
                let dict = try dictionaryID(try r.varint())
                let n = try r.varint()
                guard n >= 1, n <= UInt64(UInt16.max) else { throw CorruptRecord(reason: "block of \(n) events") }
                var entries: [Entry] = []
                entries.reserveCapacity(Int(n))
                var received: Micros = 0, time: Micros = 0, seq = key
                for i in 0..<Int(n) {
                    let type = try eventType(try r.byte())
                    received &+= try r.signedVarint()
                    time &+= try r.signedVarint()
                    let length = try r.varint()
                    guard length <= UInt64(Int32.max) else { throw CorruptRecord(reason: "body length \(length)") }
                    if i > 0 { seq += 1 + (flags & 1 != 0 ? try r.varint() : 0) }
                    entries.append(Entry(seq: seq, type: type, timestamp: time, receivedAt: received, length: Int(length)))
                }
                return Header(version: 2, dictionaryID: dict, entries: entries, frameOffset: r.offset)
            default:
                throw CorruptRecord(reason: "unknown format version \(version)")
            }
        }
    }

    /// The highest seq in the record stored under `key`, from its header.
    public static func lastSeq(key: UInt64, _ record: UnsafeRawBufferPointer) throws -> UInt64 {
        guard record.count > 1, record[0] == 2, record[1] & 1 == 0 else { return try header(key: key, record).lastSeq }
        // Dense: the key and the count tell it.
        return try record.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            _ = try r.byte(); _ = try r.byte(); _ = try r.varint()
            let n = try r.varint()
            guard n >= 1 else { throw CorruptRecord(reason: "empty block") }
            return key + n - 1
        }
    }

    /// Whether the record stored under `key` holds `seq`, from its header.
    public static func holds(_ seq: UInt64, key: UInt64, _ record: UnsafeRawBufferPointer) throws -> Bool {
        guard seq >= key, try lastSeq(key: key, record) >= seq else { return false }
        if record[0] == 2, record[1] & 1 != 0 { return try header(key: key, record).entries.contains { $0.seq == seq } }
        return true
    }

    /// Decodes the events of a record with `wanted` seqs, in seq order, after verifying the
    /// frame's checksum; `body` returns false to stop. Returns false when `body` did.
    @discardableResult
    public static func decode(key: UInt64, record: UnsafeRawBufferPointer, wanted: ClosedRange<UInt64> = 0...UInt64.max,
                              dictionaries: DictionarySet, decompressor: Decompressor,
                              _ body: (Event) throws -> Bool) throws -> Bool {
        let h = try header(key: key, record)
        guard h.entries.contains(where: { wanted.contains($0.seq) }) else { return true }
        let dict: ZstdDictionary?
        if h.dictionaryID == 0 {
            dict = nil
        } else {
            guard let d = dictionaries[h.dictionaryID] else { throw CorruptRecord(reason: "record \(key) names unknown dictionary \(h.dictionaryID)") }
            dict = d
        }
        let bodies = try decompressor.decompress(magicless: UnsafeRawBufferPointer(rebasing: record[h.frameOffset...]), dictionary: dict)
        if h.version == 1 {
            let e = h.entries[0]
            return try body(Event(seq: e.seq, type: e.type, timestamp: e.timestamp, receivedAt: e.receivedAt, payload: bodies))
        }
        guard h.entries.reduce(0, { $0 + $1.length }) == bodies.count else {
            throw CorruptRecord(reason: "record \(key): bodies of \(bodies.count) bytes, entries name another size")
        }
        var offset = 0
        for e in h.entries {
            defer { offset += e.length }
            guard wanted.contains(e.seq) else { continue }
            let payload = Array(bodies[offset..<offset + e.length])
            if try !body(Event(seq: e.seq, type: e.type, timestamp: e.timestamp, receivedAt: e.receivedAt, payload: payload)) { return false }
        }
        return true
    }

    /// The event at `seq` in the record stored under `key`, if it holds it.
    public static func decode(seq: UInt64, key: UInt64, record: UnsafeRawBufferPointer, dictionaries: DictionarySet,
                              decompressor: Decompressor) throws -> Event? {
        var found: Event?
        try decode(key: key, record: record, wanted: seq...seq, dictionaries: dictionaries, decompressor: decompressor) { e in
            found = e
            return false
        }
        return found
    }

    private static func eventType(_ raw: UInt8) throws -> EventType {
        guard let type = EventType(rawValue: raw) else { throw CorruptRecord(reason: "unknown event type \(raw)") }
        return type
    }

    private static func dictionaryID(_ raw: UInt64) throws -> UInt32 {
        guard raw <= UInt64(UInt32.max) else { throw CorruptRecord(reason: "dictionary id out of range") }
        return UInt32(raw)
    }
}

/// A record that cannot be decoded.
public struct CorruptRecord: Error, Sendable, CustomStringConvertible {
    public let reason: String
    public var description: String { "corrupt record: \(reason)" }
}

/// The log's dictionaries by id; grows as new ones are trained, never forgets one (old
/// records keep naming theirs). Thread-safe.
public final class DictionarySet: @unchecked Sendable {
    private let lock = NSLockShim()
    private var byID: [UInt32: ZstdDictionary] = [:]

    public init() {}

    public subscript(id: UInt32) -> ZstdDictionary? {
        lock.withLock { byID[id] }
    }

    public func insert(_ d: ZstdDictionary) { lock.withLock { byID[d.id] = d } }
    public var latest: ZstdDictionary? { lock.withLock { byID.values.max { $0.id < $1.id } } }
    public var count: Int { lock.withLock { byID.count } }
}
