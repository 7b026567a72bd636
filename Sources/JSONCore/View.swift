/// A read-only view of one value inside binary JSON bytes: looks members up and reads
/// scalars without decoding the rest, so hot loops (folds, replays) pay only for the fields
/// they touch. `json` materialises the value when the whole tree is needed.
///
///     let view = JSONView(bytes: body.binary)
///     view["context"]?["traits"]?["email"]?.stringValue
public struct JSONView: Sendable {
    public let bytes: [UInt8]
    /// Offset of this value's tag byte.
    public let offset: Int

    /// A view of the whole value in `bytes` (which must be valid binary JSON).
    public init(bytes: [UInt8]) {
        self.bytes = bytes
        offset = 0
    }

    /// A view of the value whose tag byte is at `offset` in `bytes` (an offset `forEachField`
    /// reported, or this view's own).
    public init(bytes: [UInt8], offset: Int) {
        self.bytes = bytes
        self.offset = offset
    }

    @inlinable var tag: UInt8 { offset < bytes.count ? bytes[offset] : 0xFF }

    public var isNull: Bool { tag == 0 }
    public var isObject: Bool { BinaryTag.isObject(tag) }
    public var isArray: Bool { BinaryTag.isArray(tag) }
    public var isString: Bool { tag == 5 }

    /// The member `key` of an object (the last one, if repeated); nil otherwise.
    public subscript(key: String) -> JSONView? {
        guard isObject else { return nil }
        var key = key
        return key.withUTF8 { k in
            bytes.withUnsafeBufferPointer { b -> JSONView? in
                guard let (n, first) = JSONView.header(b, offset, object: true) else { return nil }
                var i = first
                var found: Int?
                for _ in 0..<n {
                    guard let len = JSONView.varint(b, &i), i + len <= b.count else { return nil }
                    let matches = len == k.count && (len == 0 || memcmp(b.baseAddress! + i, k.baseAddress!, len) == 0)
                    i += len
                    if matches { found = i }
                    guard let next = JSONView.skip(b, i) else { return nil }
                    i = next
                }
                return found.map { JSONView(bytes: bytes, offset: $0) }
            }
        }
    }

    /// Several members of an object in one pass (the last one of a repeated key wins): the
    /// values in the order of `keys`, nil where absent. For hot loops that read a handful of
    /// fields of every event, where one `subscript` per field would rescan the object each time.
    public func fields(_ keys: KeyList) -> [JSONView?] {
        var out = [JSONView?](repeating: nil, count: keys.keys.count)
        forEachField(keys) { k, at in out[k] = JSONView(bytes: bytes, offset: at) }
        return out
    }

    /// The same pass without building views: `body(k, offset)` for each member named by
    /// `keys[k]`, with the offset of its value in `bytes` (a repeated key is reported again;
    /// keep the last). For callers that keep offsets and one reference to `bytes` instead of a
    /// view (one more reference count) per field.
    public func forEachField(_ keys: KeyList, _ body: (Int, Int) -> Void) {
        forEachMember(keys) { k, _, key, _ in
            if let k { body(k, key.upperBound) }
        }
    }

    /// Every member of an object in one pass: `body(k, start, key, end)` with `k` the index in
    /// `keys` of the member's key (nil for any other key), the offset where the member starts
    /// (its key's length), the range of its key's bytes (its value starts at the range's end)
    /// and the offset just past its value. For callers that read a few members and then copy
    /// the others, without walking the object twice.
    public func forEachMember(_ keys: KeyList, _ body: (Int?, Int, Range<Int>, Int) -> Void) {
        bytes.withUnsafeBufferPointer { b in
            guard let (n, first) = JSONView.header(b, offset, object: true) else { return }
            var i = first
            for _ in 0..<n {
                let start = i
                guard let len = JSONView.varint(b, &i), i + len <= b.count, let end = JSONView.skip(b, i + len) else { return }
                var match: Int?
                if len <= keys.longest {
                    for (k, key) in keys.keys.enumerated() where key.count == len && (len == 0 || (b[i] == key[0] && memcmp(b.baseAddress! + i, key, len) == 0)) {
                        match = k
                        break
                    }
                }
                body(match, start, i..<i + len, end)
                i = end
            }
        }
    }

    /// Keys for `fields(_:)`, as UTF-8 once.
    public struct KeyList: Sendable {
        let keys: [[UInt8]]
        let longest: Int
        public init(_ keys: [String]) {
            self.keys = keys.map { Array($0.utf8) }
            longest = self.keys.map(\.count).max() ?? 0
        }
    }

    /// The element at `index` of an array; nil otherwise or when out of range.
    public subscript(index: Int) -> JSONView? {
        guard index >= 0 else { return nil }
        return bytes.withUnsafeBufferPointer { b -> JSONView? in
            guard let (n, first) = JSONView.header(b, offset, object: false), index < n else { return nil }
            var i = first
            for _ in 0..<index {
                guard let next = JSONView.skip(b, i) else { return nil }
                i = next
            }
            return JSONView(bytes: bytes, offset: i)
        }
    }

    /// The elements of an array (empty for anything else).
    public var elements: [JSONView] {
        bytes.withUnsafeBufferPointer { b in
            guard let (n, first) = JSONView.header(b, offset, object: false) else { return [] }
            var i = first
            var out: [JSONView] = []
            out.reserveCapacity(n)
            for _ in 0..<n {
                out.append(JSONView(bytes: bytes, offset: i))
                guard let next = JSONView.skip(b, i) else { return out }
                i = next
            }
            return out
        }
    }

    /// Where each element of an array lies in `bytes` (empty for anything else): for callers
    /// that need both a view of each element and its bytes, without skipping it twice.
    public var elementSpans: [Range<Int>] {
        bytes.withUnsafeBufferPointer { b in
            guard let (n, first) = JSONView.header(b, offset, object: false) else { return [] }
            var i = first
            var out: [Range<Int>] = []
            out.reserveCapacity(n)
            for _ in 0..<n {
                guard let next = JSONView.skip(b, i) else { return out }
                out.append(i..<next)
                i = next
            }
            return out
        }
    }

    /// The members of an object in stored order (empty for anything else).
    public var members: [(String, JSONView)] {
        bytes.withUnsafeBufferPointer { b in
            guard let (n, first) = JSONView.header(b, offset, object: true) else { return [] }
            var i = first
            var out: [(String, JSONView)] = []
            out.reserveCapacity(n)
            for _ in 0..<n {
                guard let len = JSONView.varint(b, &i), i + len <= b.count else { return out }
                let key = String(decoding: UnsafeBufferPointer(rebasing: b[i..<i + len]), as: UTF8.self)
                i += len
                out.append((key, JSONView(bytes: bytes, offset: i)))
                guard let next = JSONView.skip(b, i) else { return out }
                i = next
            }
            return out
        }
    }

    public var stringValue: String? {
        guard tag == 5 else { return nil }
        return bytes.withUnsafeBufferPointer { b in
            var i = offset + 1
            guard let len = JSONView.varint(b, &i), i + len <= b.count else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: b[i..<i + len]), as: UTF8.self)
        }
    }

    /// `body` over a string's UTF-8 bytes in place; nil when this is not a string.
    @inlinable  // specialised where it is called: a generic call across modules instantiated type metadata at run time (≈ 3 % of a rebuild, in KPIs' channel lookup)
    public func withUTF8<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R? {
        guard tag == 5 else { return nil }
        return try bytes.withUnsafeBufferPointer { b in
            var i = offset + 1
            guard let len = JSONView.varint(b, &i), i + len <= b.count else { return nil }
            return try body(UnsafeBufferPointer(rebasing: b[i..<i + len]))
        }
    }

    /// True when this is the string `s` (compared without allocating).
    public func isString(_ s: String) -> Bool {
        guard tag == 5 else { return false }
        var s = s
        return s.withUTF8 { k in
            bytes.withUnsafeBufferPointer { b in
                var i = offset + 1
                guard let len = JSONView.varint(b, &i), len == k.count, i + len <= b.count else { return false }
                return len == 0 || memcmp(b.baseAddress! + i, k.baseAddress!, len) == 0
            }
        }
    }

    public var boolValue: Bool? {
        switch tag {
        case 1: return false
        case 2: return true
        default: return nil
        }
    }

    /// Scalars as `JSON.doubleValue` reads them (numeric strings included).
    public var doubleValue: Double? {
        switch tag {
        case 3, 4: return json.doubleValue
        case 5: return stringValue.flatMap { Double($0.trimmingWhitespace()) }
        default: return nil
        }
    }

    public var intValue: Int64? {
        switch tag {
        case 3, 4, 5: return json.intValue
        default: return nil
        }
    }

    public var scalarText: String? {
        switch tag {
        case 1, 2, 3, 4: return json.scalarText
        case 5: return stringValue
        default: return nil
        }
    }

    /// This value's own bytes in binary form (a standalone binary JSON value).
    public var encodedBytes: [UInt8] {
        bytes.withUnsafeBufferPointer { b in
            guard let end = JSONView.skip(b, offset) else { return [0] }
            return Array(b[offset..<end])
        }
    }

    /// The length of this value's compact JSON text (`json.jsonBytes().count`) without
    /// decoding or writing it: a message's size as the limits count it.
    public var compactByteCount: Int {
        bytes.withUnsafeBufferPointer { b in
            var i = offset
            return JSONView.compactLength(b, &i) ?? 0
        }
    }

    private static func compactLength(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) -> Int? {
        guard i < b.count else { return nil }
        let tag = b[i]
        if BinaryTag.isArray(tag) || BinaryTag.isObject(tag) {
            guard let (n, first) = header(b, i, object: BinaryTag.isObject(tag)) else { return nil }
            i = first
            var total = 2 + max(0, n - 1)
            for _ in 0..<n {
                if BinaryTag.isObject(tag) {
                    guard let len = varint(b, &i), i + len <= b.count else { return nil }
                    total += quotedLength(UnsafeBufferPointer(rebasing: b[i..<i + len])) + 1
                    i += len
                }
                guard let l = compactLength(b, &i) else { return nil }
                total += l
            }
            return total
        }
        i += 1
        switch tag {
        case 0, 2: return 4
        case 1: return 5
        case 3:
            var r = BinaryReader(b)
            r.offset = i
            guard let v = try? r.signedVarint() else { return nil }
            i = r.offset
            return decimalLength(v)
        case 4:
            var r = BinaryReader(b)
            r.offset = i
            guard let bits = try? r.uint64LE() else { return nil }
            i = r.offset
            let d = Double(bitPattern: bits)
            // As `JSON.formatDouble` writes it: a whole number below 1e15 as an integer (counted
            // without making the string), anything else in Swift's shortest form.
            if d.isFinite, d == d.rounded(), abs(d) < 1e15 { return decimalLength(Int64(d)) }
            return JSON.formatDouble(d).utf8.count
        case 5:
            guard let len = varint(b, &i), i + len <= b.count else { return nil }
            defer { i += len }
            return quotedLength(UnsafeBufferPointer(rebasing: b[i..<i + len]))
        default: return nil
        }
    }

    /// The length of `v` in decimal, its sign included.
    @inline(__always)
    static func decimalLength(_ v: Int64) -> Int {
        var n = v < 0 ? 2 : 1
        var m = v.magnitude
        while m >= 10 { m /= 10; n += 1 }
        return n
    }

    /// The length of `JSON.writeString` of these UTF-8 bytes. Eight bytes at a time while
    /// none needs escaping (almost always: only control characters, `"` and `\` do).
    @inline(__always)
    static func quotedLength(_ s: UnsafeBufferPointer<UInt8>) -> Int {
        var n = s.count + 2
        var i = 0
        if let base = s.baseAddress {
            let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
            while i + 8 <= s.count {
                let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                // A byte below 0x20, or equal to 0x22 or 0x5C, sets its high bit in one of these.
                let below = (w &- ones &* 0x20) & ~w
                let quote = w ^ (ones &* 0x22), slash = w ^ (ones &* 0x5C)
                let special = below | ((quote &- ones) & ~quote) | ((slash &- ones) & ~slash)
                if special & highs != 0 { break }
                i += 8
            }
        }
        for c in UnsafeBufferPointer(rebasing: s[i...]) where c < 0x20 || c == 0x22 || c == 0x5C {
            switch c {
            case 0x22, 0x5C, 0x0A, 0x0D, 0x09: n += 1
            default: n += 5
            }
        }
        return n
    }

    /// The value decoded into a `JSON` tree.
    public var json: JSON {
        bytes.withUnsafeBufferPointer { b in
            var r = BinaryReader(b)
            r.offset = offset
            return (try? JSON.decodeBinary(&r)) ?? .null
        }
    }

    /// The LEB128 varint at `i` (advancing it) as a length or count: nil when cut short,
    /// longer than ten bytes, or past `Int.max`.
    @inlinable @inline(__always)
    public static func varint(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) -> Int? {
        var result: UInt64 = 0, shift: UInt64 = 0
        while i < b.count {
            let byte = b[i]
            i += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result <= UInt64(Int.max) ? Int(result) : nil }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }

    /// Offset just past the varint at `i` (an integer value may take all ten bytes).
    @inlinable @inline(__always) @usableFromInline
    static func skipVarint(_ b: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int? {
        var i = start
        while i < b.count, i - start < 10 {
            if b[i] < 0x80 { return i + 1 }
            i += 1
        }
        return nil
    }

    /// Appends the value at `at` in the unsized form (every container tag 6 or 7, as the log
    /// stores it) and returns the offset past it; nil when cut short. An unsized container is
    /// copied as it is: it holds no sized one (a sized container is at least 128 bytes, and so
    /// is anything around it).
    public static func appendUnsized(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, to out: inout [UInt8]) -> Int? {
        guard at < b.count else { return nil }
        let t = b[at]
        guard t == BinaryTag.sizedArray || t == BinaryTag.sizedObject else {
            guard let end = skip(b, at) else { return nil }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: b[at..<end]))
            return end
        }
        guard let (n, first) = header(b, at, object: t == BinaryTag.sizedObject) else { return nil }
        out.append(t - 2)
        Varint.write(UInt64(n), to: &out)
        var i = first
        for _ in 0..<n {
            if t == BinaryTag.sizedObject {
                let keyAt = i
                guard let len = varint(b, &i), len <= b.count - i else { return nil }
                i += len
                out.append(contentsOf: UnsafeBufferPointer(rebasing: b[keyAt..<i]))
            }
            guard let next = appendUnsized(b, i, to: &out) else { return nil }
            i = next
        }
        return i
    }

    /// This value's bytes in the unsized form (see `appendUnsized`).
    public var unsizedBytes: [UInt8] {
        bytes.withUnsafeBufferPointer { b in
            var out: [UInt8] = []
            return JSONView.appendUnsized(b, offset, to: &out) != nil ? out : [0]
        }
    }

    /// The container at `at` when it is an object (`object`) or else an array: its count and
    /// where its first member or element starts. Nil for any other value, or when cut short.
    @inlinable @inline(__always)
    public static func header(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, object: Bool) -> (count: Int, first: Int)? {
        guard at < b.count else { return nil }
        let t = b[at]
        var i = at + 1
        if t == (object ? BinaryTag.sizedObject : BinaryTag.sizedArray) {
            guard let size = varint(b, &i), size <= b.count - i else { return nil }
        } else if t != (object ? BinaryTag.object : BinaryTag.array) {
            return nil
        }
        guard let n = varint(b, &i) else { return nil }
        return (n, i)
    }

    /// Offset just past the value starting at `i`, or nil if the bytes are cut short: a jump
    /// over a string or a container, a walk only over a container written without its size.
    @inlinable
    public static func skip(_ b: UnsafeBufferPointer<UInt8>, _ start: Int) -> Int? {
        guard start < b.count else { return nil }
        var i = start + 1
        switch b[start] {
        case 0, 1, 2: return i
        case 3: return skipVarint(b, i)
        case 4: return i + 8 <= b.count ? i + 8 : nil
        case 5, 8, 9:  // a string's length, a container's size
            guard let len = varint(b, &i), len <= b.count - i else { return nil }
            return i + len
        case 6:
            guard let n = varint(b, &i) else { return nil }
            for _ in 0..<n {
                guard let next = skip(b, i) else { return nil }
                i = next
            }
            return i
        case 7:
            guard let n = varint(b, &i) else { return nil }
            for _ in 0..<n {
                guard let len = varint(b, &i), i + len <= b.count, let next = skip(b, i + len) else { return nil }
                i = next
            }
            return i
        default: return nil
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
