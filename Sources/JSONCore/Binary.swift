// The binary form of a JSON value: a tag byte, then a payload. Lengths and integers are
// LEB128 varints (integers zigzag-encoded). It carries exactly what JSON carries, decodes
// several times faster than text (no number or escape parsing), and is the form records are
// compressed in.
//
//   0 null · 1 false · 2 true · 3 int(zigzag varint) · 4 double(8 bytes LE)
//   5 string(len, utf8) · 6 array(count, items) · 7 object(count, (len, key utf8, value)*)
//   8 sized array(size, count, items) · 9 sized object(size, count, (len, key utf8, value)*)
//
// A sized container's size is the number of its bytes after the size itself (its count and
// items), so a reader that does not want a member or an element jumps over it instead of
// walking it. In memory — a request body being split, validated and enveloped — containers
// of 128 bytes or more carry their size (see `BinaryContainer.sizedFrom`). The log stores the
// unsized form (`unsizedBinary`, `JSONView.appendUnsized`): a size is a number compression
// can do little with, and 4 more bytes an event moved the log's blocks of 16 past a third
// of an LMDB page. Readers take either form.

/// The binary form's container tags.
public enum BinaryTag {
    public static let array: UInt8 = 6
    public static let object: UInt8 = 7
    public static let sizedArray: UInt8 = 8
    public static let sizedObject: UInt8 = 9

    @inlinable @inline(__always) public static func isArray(_ t: UInt8) -> Bool { t == array || t == sizedArray }
    @inlinable @inline(__always) public static func isObject(_ t: UInt8) -> Bool { t == object || t == sizedObject }
}

/// Why a byte sequence is not a valid binary JSON value.
public struct BinaryJSONError: Error, Sendable, CustomStringConvertible {
    public let message: String
    @usableFromInline init(message: String) { self.message = message }
    public var description: String { "corrupt binary JSON: \(message)" }
}

extension JSON {
    /// Appends the binary form; `sized: false` writes no container's size (tags 6 and 7 only:
    /// what the log stores).
    public func encodeBinary(into out: inout [UInt8], sized: Bool = true) {
        switch self {
        case .null: out.append(0)
        case .bool(let v): out.append(v ? 2 : 1)
        case .int(let v):
            out.append(3)
            Varint.write(UInt64(bitPattern: (v << 1) ^ (v >> 63)), to: &out)
        case .double(let d):
            out.append(4)
            var bits = d.bitPattern.littleEndian
            withUnsafeBytes(of: &bits) { out.append(contentsOf: $0) }
        case .string(let s):
            out.append(5)
            Varint.write(UInt64(s.utf8.count), to: &out)
            out.append(contentsOf: s.utf8)
        case .array(let a):
            let at = BinaryContainer.begin(BinaryTag.array, in: &out)
            for v in a { v.encodeBinary(into: &out, sized: sized) }
            BinaryContainer.end(count: a.count, at: at, in: &out, sized: sized)
        case .object(let o):
            let at = BinaryContainer.begin(BinaryTag.object, in: &out)
            for (k, v) in o {
                Varint.write(UInt64(k.utf8.count), to: &out)
                out.append(contentsOf: k.utf8)
                v.encodeBinary(into: &out, sized: sized)
            }
            BinaryContainer.end(count: o.count, at: at, in: &out, sized: sized)
        }
    }

    /// The binary form without any container's size (tags 6 and 7 only): what the log stores.
    public var unsizedBinary: [UInt8] {
        var out: [UInt8] = []
        encodeBinary(into: &out, sized: false)
        return out
    }

    public var binary: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        encodeBinary(into: &out)
        return out
    }

    /// Decodes one value from the front of `reader`, advancing it.
    public static func decodeBinary(_ reader: inout BinaryReader) throws(BinaryJSONError) -> JSON {
        let tag = try reader.byte()
        switch tag {
        case 0: return .null
        case 1: return .bool(false)
        case 2: return .bool(true)
        case 3:
            let z = try reader.varint()
            return .int(Int64(bitPattern: (z >> 1) ^ (0 &- (z & 1))))
        case 4: return .double(Double(bitPattern: try reader.uint64LE()))
        case 5: return .string(try reader.string())
        case 6, 7, 8, 9:
            let (n, end) = try reader.containerHeader(tag)
            let value: JSON
            if BinaryTag.isArray(tag) {
                var items: [JSON] = []
                items.reserveCapacity(n)
                for _ in 0..<n { items.append(try decodeBinary(&reader)) }
                value = .array(items)
            } else {
                var members: [(String, JSON)] = []
                members.reserveCapacity(n)
                for _ in 0..<n {
                    let k = try reader.string()
                    members.append((k, try decodeBinary(&reader)))
                }
                value = .object(members)
            }
            try reader.containerEnded(end)
            return value
        default: throw BinaryJSONError(message: "unknown tag \(tag)")
        }
    }

    public static func decodeBinary(_ bytes: [UInt8]) throws(BinaryJSONError) -> JSON {
        let result: Result<JSON, BinaryJSONError> = bytes.withUnsafeBufferPointer { buf in
            var r = BinaryReader(buf)
            do throws(BinaryJSONError) {
                let v = try decodeBinary(&r)
                guard r.isAtEnd else { throw BinaryJSONError(message: "trailing bytes") }
                return .success(v)
            } catch { return .failure(error) }
        }
        return try result.get()
    }
}

/// Writing a container whose size and count are known only once its items are written.
enum BinaryContainer {
    /// Appends `tag` (an unsized one) and a byte for the count; returns where the count is.
    @inline(__always)
    static func begin(_ tag: UInt8, in out: inout [UInt8]) -> Int {
        out.append(tag)
        out.append(0)
        return out.count - 1
    }

    /// Containers whose count and items take fewer bytes than this are written without their
    /// size (tags 6 and 7): walking one costs about what a jump saves.
    static let sizedFrom = 128

    /// Writes the count where `begin` reserved a byte for it; then, when `sized`, for a
    /// container of `sizedFrom` bytes or more, its size before the count and the sized tag.
    /// What follows a count of 128 or more, or a size, moves up.
    @inline(__always)
    static func end(count: Int, at: Int, in out: inout [UInt8], sized: Bool = true) {
        patch(count, at: at, in: &out)
        let size = out.count - at
        guard sized, size >= sizedFrom else { return }
        out[at - 1] += 2  // the sized tag
        insertVarint(UInt64(size), at: at, in: &out)
    }

    /// Writes `value` at `at`, where one byte was reserved for it.
    @inline(__always)
    static func patch(_ value: Int, at: Int, in out: inout [UInt8]) {
        if value < 0x80 {
            out[at] = UInt8(value)
            return
        }
        out[at] = UInt8(truncatingIfNeeded: value) | 0x80
        insertVarint(UInt64(value) >> 7, at: at + 1, in: &out)
    }

    /// Inserts `value` as a varint at `at` (without a temporary array below 2⁵⁶).
    @inline(__always)
    static func insertVarint(_ value: UInt64, at: Int, in out: inout [UInt8]) {
        guard value < 1 << 56 else {
            var bytes: [UInt8] = []
            Varint.write(value, to: &bytes)
            out.insert(contentsOf: bytes, at: at)
            return
        }
        var packed: UInt64 = 0, n = 0, v = value
        repeat {
            var byte = v & 0x7F
            v >>= 7
            if v != 0 { byte |= 0x80 }
            packed |= byte << UInt64(8 * n)
            n += 1
        } while v != 0
        withUnsafeBytes(of: packed.littleEndian) { out.insert(contentsOf: $0.prefix(n), at: at) }
    }
}

public enum Varint {
    @inline(__always)
    public static func write(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    @inline(__always)
    public static func writeSigned(_ value: Int64, to out: inout [UInt8]) {
        write(UInt64(bitPattern: (value << 1) ^ (value >> 63)), to: &out)
    }
}

/// A cursor over bytes for the binary forms; every read is bounds-checked. The small reads are
/// `@inlinable`: a renderer in another module reads a few hundred of them per document.
public struct BinaryReader {
    public let buffer: UnsafeBufferPointer<UInt8>
    public var offset = 0

    public init(_ buffer: UnsafeBufferPointer<UInt8>) { self.buffer = buffer }

    public var isAtEnd: Bool { offset == buffer.count }
    @inlinable public var remaining: Int { buffer.count - offset }

    @inlinable @inline(__always)
    public mutating func byte() throws(BinaryJSONError) -> UInt8 {
        guard offset < buffer.count else { throw BinaryJSONError(message: "unexpected end") }
        defer { offset += 1 }
        return buffer[offset]
    }

    @inlinable @inline(__always)
    public mutating func varint() throws(BinaryJSONError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw BinaryJSONError(message: "varint too long") }
        }
    }

    @inlinable @inline(__always) public mutating func signedVarint() throws(BinaryJSONError) -> Int64 {
        let z = try varint()
        return Int64(bitPattern: (z >> 1) ^ (0 &- (z & 1)))
    }

    /// A length or element count: a varint no larger than the bytes left (every element takes
    /// at least one), so it is safe to reserve capacity for.
    @inlinable @inline(__always) public mutating func count() throws(BinaryJSONError) -> Int {
        let n = try varint()
        guard n <= UInt64(remaining) else { throw BinaryJSONError(message: "count \(n) exceeds the data") }
        return Int(n)
    }

    public mutating func uint64LE() throws(BinaryJSONError) -> UInt64 {
        guard remaining >= 8 else { throw BinaryJSONError(message: "unexpected end") }
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(buffer[offset + k]) << (8 * UInt64(k)) }
        offset += 8
        return v
    }

    @inlinable @inline(__always) public mutating func bytes(_ n: Int) throws(BinaryJSONError) -> UnsafeBufferPointer<UInt8> {
        guard n >= 0, n <= remaining else { throw BinaryJSONError(message: "length \(n) exceeds the data") }
        defer { offset += n }
        return UnsafeBufferPointer(rebasing: buffer[offset..<offset + n])
    }

    public mutating func string() throws(BinaryJSONError) -> String {
        let n = try count()
        let raw = try bytes(n)
        guard let s = makeString(raw) else { throw BinaryJSONError(message: "invalid UTF-8") }
        return s
    }

    /// After a container's tag (6–9): its element count, and where a sized container's
    /// contents must end (nil for the unsized form).
    public mutating func containerHeader(_ tag: UInt8) throws(BinaryJSONError) -> (count: Int, end: Int?) {
        var end: Int?
        if tag == BinaryTag.sizedArray || tag == BinaryTag.sizedObject {
            let size = try count()
            end = offset + size
        }
        return (try count(), end)
    }

    /// After a container's elements: throws when a sized container's size did not match them.
    public func containerEnded(_ end: Int?) throws(BinaryJSONError) {
        if let end, offset != end {
            throw BinaryJSONError(message: "a container's size does not match its contents (ends at \(offset), not \(end))")
        }
    }

    /// Moves past a string without making it.
    @inlinable @inline(__always) public mutating func skipString() throws(BinaryJSONError) {
        _ = try bytes(try count())
    }
}
