// JSON text straight to the binary form, in one pass and without building a tree: the
// ingest path's parse. `JSON.transcode(bytes)` yields exactly `JSON.parse(bytes).binary`
// (the same accepted inputs, the same errors, the same bytes) at a fraction of the cost —
// no String, array or enum per value, no tree to free afterwards.

extension JSON {
    /// The binary form of the JSON text in `bytes`: the same bytes as `parse(bytes).binary`,
    /// the same errors as `parse`.
    public static func transcode(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> [UInt8] {
        var p = ByteParser(bytes, maxDepth: maxDepth)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 64)
        try p.transcodeDocument(into: &out)
        return out
    }

    /// `transcode`, noting as it goes each element of the arrays `depth` levels in (the
    /// whole text is level 1): where it starts in the binary form and how many bytes of the
    /// text it took. A batch's messages' sizes as sent, with no second pass over them.
    public static func transcode(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = defaultMaxDepth,
                                 elementsAt depth: Int) throws(JSONParseError) -> ([UInt8], TextSizes) {
        var p = ByteParser(bytes, maxDepth: maxDepth)
        p.sizesDepth = depth
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + 64)
        try p.transcodeDocument(into: &out)
        return (out, p.sizes)
    }

    public static func transcode<Bytes: Collection>(_ bytes: Bytes, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> [UInt8]
    where Bytes.Element == UInt8 {
        let r: Result<[UInt8], JSONParseError>? = bytes.withContiguousStorageIfAvailable { buf in
            Result { () throws(JSONParseError) in try transcode(buf, maxDepth: maxDepth) }
        }
        if let r { return try r.get() }
        let copy = Array(bytes)
        let result: Result<[UInt8], JSONParseError> = copy.withUnsafeBufferPointer { buf in
            Result { () throws(JSONParseError) in try transcode(buf, maxDepth: maxDepth) }
        }
        return try result.get()
    }
}

extension ByteParser {
    mutating func transcodeDocument(into out: inout [UInt8]) throws(JSONParseError) {
        if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { i = 3 }
        skipWS()
        guard i < b.count else { throw fail("empty input") }
        try transcodeValue(into: &out)
        skipWS()
        if i != b.count { throw fail("unexpected data after the JSON value") }
    }

    mutating func transcodeValue(into out: inout [UInt8]) throws(JSONParseError) {
        guard i < b.count else { throw fail("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"): try transcodeObject(into: &out)
        case UInt8(ascii: "["): try transcodeArray(into: &out)
        case UInt8(ascii: "\""): out.append(5); try transcodeString(into: &out)
        case UInt8(ascii: "t"): try literal("true"); out.append(2)
        case UInt8(ascii: "f"): try literal("false"); out.append(1)
        case UInt8(ascii: "n"): try literal("null"); out.append(0)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try parseNumber().encodeBinary(into: &out)
        default: throw fail("unexpected character '\(Character(Unicode.Scalar(b[i])))'")
        }
    }

    mutating func transcodeObject(into out: inout [UInt8]) throws(JSONParseError) {
        try enter()
        i += 1
        let at = BinaryContainer.begin(BinaryTag.object, in: &out)
        let noted = sizes.count
        var count = 0
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "}") {
            i += 1
            depth -= 1
            BinaryContainer.end(count: 0, at: at, in: &out)
            return
        }
        while true {
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            try transcodeString(into: &out)
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':' after key") }
            i += 1
            skipWS()
            try transcodeValue(into: &out)
            count += 1
            skipWS()
            guard i < b.count else { throw fail("unterminated object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; break }
            throw fail("expected ',' or '}' in object")
        }
        depth -= 1
        end(count: count, at: at, in: &out, noted: noted)
    }

    mutating func transcodeArray(into out: inout [UInt8]) throws(JSONParseError) {
        try enter()
        i += 1
        let at = BinaryContainer.begin(BinaryTag.array, in: &out)
        let noted = sizes.count
        var count = 0
        skipWS()
        if i < b.count, b[i] == UInt8(ascii: "]") {
            i += 1
            depth -= 1
            BinaryContainer.end(count: 0, at: at, in: &out)
            return
        }
        while true {
            skipWS()
            let textStart = i, binaryStart = out.count
            try transcodeValue(into: &out)
            if depth == sizesDepth { sizes.append(binaryStart, i - textStart) }
            count += 1
            skipWS()
            guard i < b.count else { throw fail("unterminated array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; break }
            throw fail("expected ',' or ']' in array")
        }
        depth -= 1
        end(count: count, at: at, in: &out, noted: noted)
    }

    /// Ends a container; the noted starts inside it (from index `noted` on) move up with the
    /// bytes its count or size pushed up.
    @inline(__always)
    private mutating func end(count: Int, at: Int, in out: inout [UInt8], noted: Int) {
        let before = out.count
        BinaryContainer.end(count: count, at: at, in: &out)
        if out.count > before, sizes.count > noted { sizes.shift(from: noted, by: out.count - before) }
    }

    /// A string (the cursor on its opening quote) as its length and UTF-8 bytes — a string
    /// value's payload and an object key's form alike.
    mutating func transcodeString(into out: inout [UInt8]) throws(JSONParseError) {
        i += 1
        let start = i
        var high: UInt8 = 0
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                let s = UnsafeBufferPointer(rebasing: b[start..<i])
                i += 1
                if high >= 0x80, !isValidUTF8(s) {
                    throw JSONParseError(message: "invalid UTF-8 in string", offset: start)
                }
                Varint.write(UInt64(s.count), to: &out)
                out.append(contentsOf: s)
                return
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            high |= c
            i += 1
        }
        // Escapes: the general parser's path, then its bytes.
        i = start - 1
        let s = try parseString()
        Varint.write(UInt64(s.utf8.count), to: &out)
        out.append(contentsOf: s.utf8)
    }
}

/// Whether `s` is well-formed UTF-8 (what `String(validating:)` accepts).
@inline(__always)
func isValidUTF8(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
    String(validating: s, as: UTF8.self) != nil
}

/// Builds a binary JSON object member by member, its count (and size) written when done: for
/// rewriting an object held in binary form (copying most members' bytes as they are)
/// without decoding it.
public struct BinaryObjectBuilder {
    private var out: [UInt8]
    private var count = 0
    private let sized: Bool

    /// `sized: false` builds the log's form: the object without its size (tag 7), and
    /// members appended with `appendUnsized` lose theirs.
    public init(capacity: Int, sized: Bool = true) {
        out = []
        out.reserveCapacity(capacity + 16)
        self.sized = sized
        _ = BinaryContainer.begin(BinaryTag.object, in: &out)
    }

    /// One member already in binary form: its key's length and bytes, then its value.
    public mutating func appendMember(_ member: UnsafeBufferPointer<UInt8>) {
        out.append(contentsOf: member)
        count += 1
    }

    /// One member of the binary object in `b` (its key's length at `start`, its value at
    /// `value`, its end at `end`), its value in the unsized form: copied as it is unless it
    /// is a sized container. False when the bytes are cut short.
    public mutating func appendUnsized(_ b: UnsafeBufferPointer<UInt8>, member start: Int, value: Int, end: Int) -> Bool {
        let tag = b[value]
        guard tag == BinaryTag.sizedArray || tag == BinaryTag.sizedObject else {
            appendMember(UnsafeBufferPointer(rebasing: b[start..<end]))
            return true
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: b[start..<value]))
        guard JSONView.appendUnsized(b, value, to: &out) != nil else { return false }
        count += 1
        return true
    }

    /// A member from a key and the value at `value` in `b`, in the unsized form.
    public mutating func appendUnsized(key: String, _ b: UnsafeBufferPointer<UInt8>, value: Int) -> Bool {
        appendKey(key)
        guard JSONView.appendUnsized(b, value, to: &out) != nil else { return false }
        count += 1
        return true
    }

    /// A member from a key and a value already in binary form.
    public mutating func append(key: String, value: UnsafeBufferPointer<UInt8>) {
        appendKey(key)
        out.append(contentsOf: value)
        count += 1
    }

    /// A member whose value is the string `value`.
    public mutating func append(key: String, string value: String) {
        appendKey(key)
        out.append(5)
        var v = value
        v.withUTF8 { u in
            Varint.write(UInt64(u.count), to: &out)
            out.append(contentsOf: u)
        }
        count += 1
    }

    private mutating func appendKey(_ key: String) {
        var k = key
        k.withUTF8 { u in
            Varint.write(UInt64(u.count), to: &out)
            out.append(contentsOf: u)
        }
    }

    /// The object's bytes.
    public mutating func finish() -> [UInt8] {
        BinaryContainer.end(count: count, at: 1, in: &out, sized: sized)
        return out
    }
}

/// Text sizes of values in a transcoded document, by where each starts in the binary form
/// (see `JSON.transcode(_:maxDepth:elementsAt:)`), in document order.
public struct TextSizes: Sendable {
    private var starts: [Int] = []
    private var sizes: [Int] = []

    public init() {}

    mutating func append(_ binaryStart: Int, _ size: Int) {
        starts.append(binaryStart)
        sizes.append(size)
    }

    public var count: Int { starts.count }

    mutating func shift(from first: Int, by delta: Int) {
        for j in first..<starts.count { starts[j] += delta }
    }

    /// The text size of the value starting at `binaryStart`, if noted.
    public func size(at binaryStart: Int) -> Int? {
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] < binaryStart { lo = mid + 1 } else { hi = mid }
        }
        return lo < starts.count && starts[lo] == binaryStart ? sizes[lo] : nil
    }
}
