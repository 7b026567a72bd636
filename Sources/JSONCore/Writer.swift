extension JSON {
    /// Compact JSON text, object members in stored order.
    public var jsonString: String { String(decoding: jsonBytes(), as: UTF8.self) }

    /// Compact JSON text with object keys sorted by their UTF-8 bytes: equal values give
    /// equal text whatever order their members arrived in.
    public var canonicalString: String { String(decoding: jsonBytes(sortedKeys: true), as: UTF8.self) }

    public func jsonBytes(sortedKeys: Bool = false) -> [UInt8] {
        let w = JSONText()
        w.value(self, sortedKeys: sortedKeys)
        return w.bytes
    }

    /// Appends the compact text to `out`.
    public func write(to out: inout [UInt8], sortedKeys: Bool = false) {
        let w = JSONText()
        w.value(self, sortedKeys: sortedKeys)
        w.withBytes { out.append(contentsOf: $0) }
    }

    /// Shortest text that reads back as the same Double; non-finite values become `null`
    /// (JSON has no spelling for them).
    public static func formatDouble(_ d: Double) -> String {
        guard d.isFinite else { return "null" }
        if d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return d.description
    }
}

/// Compact JSON text written as it is produced, into a buffer of its own: what every JSON
/// value of this codebase is written with, and what a renderer uses to write a document
/// without building a `JSON` tree first (the same bytes as the tree of the same calls would
/// give). Containers nest by `begin…`/`end…`; inside an object every value follows a `key`.
///
///     let w = JSONText()
///     w.beginObject(); w.key("n"); w.int(1); w.key(string: name); w.null(); w.endObject()
///
/// A class over a raw buffer rather than a `[UInt8]`: a document is a few hundred small
/// appends, and each array append checks uniqueness and capacity and is not inlined across
/// modules (writing a profile this way took twice as long as decoding it).
public final class JSONText {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int
    /// Whether the next member or element is the first of its container (no comma before it).
    private var first = true

    public init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The text written so far.
    public var bytes: [UInt8] { withBytes { Array($0) } }

    /// The text written so far, without a copy (valid inside `body` only).
    public func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    // MARK: Bytes

    @inline(__always) private func reserve(_ n: Int) {
        if count + n > capacity { grow(n) }
    }

    private func grow(_ n: Int) {
        let wanted = max(capacity * 2, count + n)
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: wanted)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity = wanted
    }

    @inline(__always) private func put(_ b: UInt8) {
        reserve(1)
        base[count] = b
        count += 1
    }

    private func put(_ b: UnsafeBufferPointer<UInt8>) {
        guard let from = b.baseAddress, b.count > 0 else { return }
        reserve(b.count)
        (base + count).update(from: from, count: b.count)
        count += b.count
    }

    private func put(_ s: StaticString) {
        put(UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    private func separate() {
        if !first { put(UInt8(ascii: ",")) }
        first = false
    }

    // MARK: Structure

    public func beginObject() { separate(); put(UInt8(ascii: "{")); first = true }
    public func endObject() { put(UInt8(ascii: "}")); first = false }
    public func beginArray() { separate(); put(UInt8(ascii: "[")); first = true }
    public func endArray() { put(UInt8(ascii: "]")); first = false }

    /// An object member's key made at run time; the next call writes its value.
    public func key(string k: String) {
        var k = k
        k.withUTF8 { key(utf8: $0) }
    }

    /// An object member's key given as valid UTF-8 bytes; the next call writes its value.
    public func key(utf8 k: UnsafeBufferPointer<UInt8>) {
        separate()
        escaped(k)
        put(UInt8(ascii: ":"))
        first = true
    }

    /// An object member's key known when the code was written; it must need no escape (ASCII
    /// letters, digits, `_`). The next call writes its value.
    public func key(_ k: StaticString) {
        separate()
        put(UInt8(ascii: "\""))
        put(k)
        put(UInt8(ascii: "\""))
        put(UInt8(ascii: ":"))
        first = true
    }

    // MARK: Values

    public func null() { separate(); put("null") }
    public func bool(_ v: Bool) { separate(); put(v ? "true" : "false") }
    public func string(_ s: String) {
        var s = s
        s.withUTF8 { string(utf8: $0) }
    }
    /// A string given as valid UTF-8 bytes.
    public func string(utf8: UnsafeBufferPointer<UInt8>) { separate(); escaped(utf8) }
    public func int(_ v: Int64) { separate(); digits(v) }
    public func int(_ v: UInt64) { separate(); digits(v) }
    /// `JSON.formatDouble(d)`'s text; integral values without making a string.
    public func double(_ d: Double) {
        separate()
        if d.isFinite, d == d.rounded(), abs(d) < 1e15 { digits(Int64(d)) } else { var s = JSON.formatDouble(d); s.withUTF8 { put($0) } }
    }

    /// A string of bytes that need no escape (timestamps, ASCII ids), quoted.
    public func plainString(_ text: UnsafeBufferPointer<UInt8>) {
        separate()
        put(UInt8(ascii: "\""))
        put(text)
        put(UInt8(ascii: "\""))
    }

    /// The string `prefix` followed by `n` in decimal, quoted (ids such as `p12`).
    public func plainString(_ prefix: StaticString, _ n: UInt64) {
        separate()
        put(UInt8(ascii: "\""))
        put(prefix)
        digits(n)
        put(UInt8(ascii: "\""))
    }

    /// A value given as text the caller made (written as it is; it must be one JSON value).
    public func raw(_ text: some Sequence<UInt8>) {
        separate()
        for b in text { put(b) }
    }

    /// A value given as a tree; with `sortedKeys`, object members by their keys' UTF-8 bytes.
    public func value(_ v: JSON, sortedKeys: Bool = false) {
        switch v {
        case .null: null()
        case .bool(let b): bool(b)
        case .int(let i): int(i)
        case .double(let d): double(d)
        case .string(let s): string(s)
        case .array(let a):
            beginArray()
            for e in a { value(e, sortedKeys: sortedKeys) }
            endArray()
        case .object(let o):
            beginObject()
            for (k, e) in sortedKeys ? o.sorted(by: { $0.0.utf8.lexicographicallyPrecedes($1.0.utf8) }) : o {
                key(string: k)
                value(e, sortedKeys: sortedKeys)
            }
            endObject()
        }
    }

    /// The value in binary form at the front of `r` (either form: sized containers or not),
    /// written as text without decoding it into a tree; `r` moves past it.
    public func binary(_ r: inout BinaryReader) throws(BinaryJSONError) {
        let tag = try r.byte()
        switch tag {
        case 0: null()
        case 1: bool(false)
        case 2: bool(true)
        case 3: int(try r.signedVarint())
        case 4: double(Double(bitPattern: try r.uint64LE()))
        case 5: string(utf8: try r.bytes(try r.count()))
        case 6, 7, 8, 9:
            let (n, end) = try r.containerHeader(tag)
            if BinaryTag.isArray(tag) {
                beginArray()
                for _ in 0..<n { try binary(&r) }
                endArray()
            } else {
                beginObject()
                for _ in 0..<n {
                    key(utf8: try r.bytes(try r.count()))
                    try binary(&r)
                }
                endObject()
            }
            try r.containerEnded(end)
        default: throw BinaryJSONError(message: "unknown tag \(tag)")
        }
    }

    // MARK: Text

    private static let hexDigits: StaticString = "0123456789abcdef"

    /// `s` quoted, with `"`, `\` and control characters escaped; runs that need no escape
    /// are copied whole (most strings are one run).
    private func escaped(_ u: UnsafeBufferPointer<UInt8>) {
        put(UInt8(ascii: "\""))
        var start = 0
        for i in 0..<u.count {
            let c = u[i]
            guard c < 0x20 || c == 0x22 || c == 0x5C else { continue }
            put(UnsafeBufferPointer(rebasing: u[start..<i]))
            start = i + 1
            switch c {
            case 0x22: put(#"\""#)
            case 0x5C: put(#"\\"#)
            case 0x0A: put(#"\n"#)
            case 0x0D: put(#"\r"#)
            case 0x09: put(#"\t"#)
            default:
                put(#"\u00"#)
                put(Self.hexDigits.utf8Start[Int(c >> 4)])
                put(Self.hexDigits.utf8Start[Int(c & 0xF)])
            }
        }
        put(UnsafeBufferPointer(rebasing: u[start..<u.count]))
        put(UInt8(ascii: "\""))
    }

    /// `v` in decimal, as `String(v)` spells it.
    private func digits(_ v: Int64) {
        if v < 0 {
            put(UInt8(ascii: "-"))
            digits(UInt64(bitPattern: 0 &- v))  // the magnitude: `-Int64.min` does not fit an Int64
        } else {
            digits(UInt64(v))
        }
    }

    private func digits(_ v: UInt64) {
        if v < 10 { put(UInt8(ascii: "0") + UInt8(v)); return }
        var n = v, width = 0
        while n > 0 { width += 1; n /= 10 }
        reserve(width)
        n = v
        for i in stride(from: count + width - 1, through: count, by: -1) { base[i] = UInt8(ascii: "0") + UInt8(n % 10); n /= 10 }
        count += width
    }
}
