import Foundation
import JSONCore

/// The stored form of one event. Each record stands alone (its own zstd frame), so
/// compaction can drop one customer's records and copy every other one byte for byte under
/// its original `seq`.
///
///     byte 0   format version (1)
///     byte 1   flags (reserved, 0)
///     byte 2   event type (EventType raw value)
///     varint   dictionary id (0 = none)
///     zigzag   receivedAt, µs since the epoch
///     zigzag   timestamp − receivedAt, µs
///     …        one zstd frame (with content checksum) of the body in binary JSON form,
///              without the frame's 4-byte magic number (implied; restored to decode)
public enum RecordCodec {
    public static let formatVersion: UInt8 = 1

    public struct Header: Sendable, Equatable {
        public var type: EventType
        public var dictionaryID: UInt32
        public var timestamp: Micros
        public var receivedAt: Micros
    }

    /// The id of the dictionary `record` was compressed with (0: none), from its header.
    static func dictionaryID(of record: [UInt8]) -> UInt32 {
        record.withUnsafeBufferPointer { b in
            var i = 3
            return JSONView.varint(b, &i).map { UInt32(truncatingIfNeeded: $0) } ?? 0
        }
    }

    public static func encode(_ event: PreparedEvent, dictionary: ZstdDictionary?, compressor: Compressor) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(event.payload.count / 2 + 32)
        out.append(formatVersion)
        out.append(0)
        out.append(event.type.rawValue)
        Varint.write(UInt64(dictionary?.id ?? 0), to: &out)
        Varint.writeSigned(event.receivedAt, to: &out)
        Varint.writeSigned(event.timestamp &- event.receivedAt, to: &out)
        let frameStart = out.count
        try compressor.compress(event.payload, dictionary: dictionary, into: &out)
        out.removeSubrange(frameStart..<frameStart + 4)  // the magic number, the same in every frame
        return out
    }

    /// Reads the header; `frameOffset` is where the zstd frame starts.
    public static func header(_ record: UnsafeRawBufferPointer) throws -> (Header, frameOffset: Int) {
        try record.withMemoryRebound(to: UInt8.self) { b in
            var r = BinaryReader(b)
            let version = try r.byte()
            guard version == formatVersion else { throw CorruptRecord(reason: "unknown format version \(version)") }
            _ = try r.byte()
            let rawType = try r.byte()
            guard let type = EventType(rawValue: rawType) else { throw CorruptRecord(reason: "unknown event type \(rawType)") }
            let dict = try r.varint()
            guard dict <= UInt64(UInt32.max) else { throw CorruptRecord(reason: "dictionary id out of range") }
            let received = try r.signedVarint()
            let delta = try r.signedVarint()
            return (Header(type: type, dictionaryID: UInt32(dict), timestamp: received &+ delta, receivedAt: received), r.offset)
        }
    }

    /// Decodes a whole record: header, checksum-verified decompression, binary body.
    public static func decode(seq: UInt64, record: UnsafeRawBufferPointer, dictionaries: DictionarySet,
                              decompressor: Decompressor) throws -> Event {
        let (h, offset) = try header(record)
        let dict: ZstdDictionary?
        if h.dictionaryID == 0 {
            dict = nil
        } else {
            guard let d = dictionaries[h.dictionaryID] else { throw CorruptRecord(reason: "record \(seq) names unknown dictionary \(h.dictionaryID)") }
            dict = d
        }
        let payload = try decompressor.decompress(magicless: UnsafeRawBufferPointer(rebasing: record[offset...]), dictionary: dict)
        return Event(seq: seq, type: h.type, timestamp: h.timestamp, receivedAt: h.receivedAt, payload: payload)
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
