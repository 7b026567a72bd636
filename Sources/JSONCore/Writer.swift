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
    // The hot writes are `@inlinable`: a renderer in another module (a profile is ~80 keys,
    // ~100 values) otherwise pays a call and a capacity check for every byte run.
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var count = 0
    @usableFromInline var capacity: Int
    /// Whether the next member or element is the first of its container (no comma before it).
    @usableFromInline var first = true

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

    /// Room for `n` more bytes at `base + count`.
    @inlinable @inline(__always) func reserve(_ n: Int) {
        if count + n > capacity { grow(n) }
    }

    @usableFromInline func grow(_ n: Int) {
        let wanted = max(capacity * 2, count + n)
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: wanted)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity = wanted
    }

    @inlinable @inline(__always) func put(_ b: UInt8) {
        reserve(1)
        base[count] = b
        count += 1
    }

    @usableFromInline func put(_ b: UnsafeBufferPointer<UInt8>) {
        guard let from = b.baseAddress, b.count > 0 else { return }
        reserve(b.count)
        (base + count).update(from: from, count: b.count)
        count += b.count
    }

    @usableFromInline func put(_ s: StaticString) {
        put(UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    @inlinable @inline(__always) func separate() {
        if !first { put(UInt8(ascii: ",")) }
        first = false
    }

    // MARK: Structure

    @inlinable @inline(__always) public func beginObject() { separate(); put(UInt8(ascii: "{")); first = true }
    @inlinable @inline(__always) public func endObject() { put(UInt8(ascii: "}")); first = false }
    @inlinable @inline(__always) public func beginArray() { separate(); put(UInt8(ascii: "[")); first = true }
    @inlinable @inline(__always) public func endArray() { put(UInt8(ascii: "]")); first = false }

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
    @inlinable @inline(__always) public func key(_ k: StaticString) {
        let n = k.utf8CodeUnitCount
        reserve(n + 4)
        var at = count
        if !first { base[at] = UInt8(ascii: ","); at += 1 }
        base[at] = UInt8(ascii: "\"")
        let from = k.utf8Start
        for i in 0..<n { base[at + 1 + i] = from[i] }  // a few bytes: no call to memmove
        at += n + 1
        base[at] = UInt8(ascii: "\"")
        base[at + 1] = UInt8(ascii: ":")
        count = at + 2
        first = true
    }

    // MARK: Values

    @inlinable @inline(__always) public func null() { separate(); put("null") }
    @inlinable @inline(__always) public func bool(_ v: Bool) { separate(); put(v ? "true" : "false") }
    public func string(_ s: String) {
        var s = s
        s.withUTF8 { string(utf8: $0) }
    }
    /// A string given as valid UTF-8 bytes.
    public func string(utf8: UnsafeBufferPointer<UInt8>) { separate(); escaped(utf8) }
    @inlinable @inline(__always) public func int(_ v: Int64) { separate(); digits(v) }
    @inlinable @inline(__always) public func int(_ v: UInt64) { separate(); digits(v) }
    /// `JSON.formatDouble(d)`'s text; integral values without making a string.
    public func double(_ d: Double) {
        separate()
        if d.isFinite, d == d.rounded(), abs(d) < 1e15 { digits(Int64(d)) } else { var s = JSON.formatDouble(d); s.withUTF8 { put($0) } }
    }

    /// `double(Double(units) / 10_000)`'s text (an amount kept in ten-thousandths), written
    /// from the integer without making a string: below 10¹⁵ units the decimal `units / 10⁴`
    /// with its trailing zeros dropped has at most 15 significant digits, so it is the
    /// shortest text that reads back as that double, the one `Double.description` gives.
    public func tenThousandths(_ units: Int64) {
        guard units > -1_000_000_000_000_000, units < 1_000_000_000_000_000 else { return double(Double(units) / 10_000) }
        separate()
        let magnitude = UInt64(units.magnitude)
        var fraction = magnitude % 10_000
        if units < 0 { put(UInt8(ascii: "-")) }
        digits(magnitude / 10_000)
        guard fraction > 0 else { return }
        var width = 4
        while fraction % 10 == 0 { fraction /= 10; width -= 1 }
        reserve(width + 1)
        base[count] = UInt8(ascii: ".")
        for i in stride(from: width, through: 1, by: -1) { base[count + i] = UInt8(ascii: "0") + UInt8(fraction % 10); fraction /= 10 }
        count += width + 1
    }

    /// A string of bytes that need no escape (timestamps, ASCII ids), quoted.
    public func plainString(_ text: UnsafeBufferPointer<UInt8>) {
        separate()
        put(UInt8(ascii: "\""))
        put(text)
        put(UInt8(ascii: "\""))
    }

    /// A string of at most `maxCount` bytes that need no escape, written by `body` straight
    /// into the buffer (it gets where to write and returns how many bytes it wrote), quoted.
    /// Returns where the string's bytes start in the text (for `plainString(copyOf:count:)`);
    /// when `body` writes nothing, neither does this, and it returns nil.
    @inlinable @inline(__always) @discardableResult
    public func plainString(maxCount: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) -> Int? {
        reserve(maxCount + 3)
        let open = first ? count : count + 1
        let n = body(base + open + 1)
        guard n > 0 else { return nil }
        if !first { base[count] = UInt8(ascii: ",") }
        base[open] = UInt8(ascii: "\"")
        base[open + 1 + n] = UInt8(ascii: "\"")
        count = open + n + 2
        first = false
        return open + 1
    }

    /// The `n` bytes at `offset` of the text written so far (a string written before, such as
    /// one `plainString(maxCount:_:)` wrote), written again as a quoted string.
    public func plainString(copyOf offset: Int, count n: Int) {
        precondition(offset >= 0 && n >= 0 && offset + n <= count, "not in the text written so far")
        separate()
        reserve(n + 2)
        base[count] = UInt8(ascii: "\"")
        (base + count + 1).update(from: base + offset, count: n)
        base[count + 1 + n] = UInt8(ascii: "\"")
        count += n + 2
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

    /// `s` quoted, with `"`, `\` and control characters escaped. Bytes are copied one by
    /// one while none needs an escape (most strings are short and need none: no call to
    /// memmove); from the first that does, runs between escapes are copied whole.
    @usableFromInline func escaped(_ u: UnsafeBufferPointer<UInt8>) {
        reserve(u.count + 2)
        let out = base + count
        out[0] = UInt8(ascii: "\"")
        var i = 0
        while i < u.count {
            let c = u[i]
            if c < 0x20 || c == 0x22 || c == 0x5C { break }
            out[1 + i] = c
            i += 1
        }
        count += 1 + i
        if i < u.count { escapedRest(u, from: i) }
        base[count] = UInt8(ascii: "\"")  // room reserved above, or by `escapedRest`
        count += 1
    }

    /// `escaped` from `start`, the first byte that needs an escape, to the end (no quotes).
    private func escapedRest(_ u: UnsafeBufferPointer<UInt8>, from start: Int) {
        var start = start
        for i in start..<u.count {
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
        reserve(1)
    }

    /// `v` in decimal, as `String(v)` spells it.
    @usableFromInline func digits(_ v: Int64) {
        if v < 0 {
            put(UInt8(ascii: "-"))
            digits(UInt64(bitPattern: 0 &- v))  // the magnitude: `-Int64.min` does not fit an Int64
        } else {
            digits(UInt64(v))
        }
    }

    @usableFromInline func digits(_ v: UInt64) {
        if v < 10 { put(UInt8(ascii: "0") + UInt8(v)); return }
        var n = v, width = 0
        while n > 0 { width += 1; n /= 10 }
        reserve(width)
        n = v
        for i in stride(from: count + width - 1, through: count, by: -1) { base[i] = UInt8(ascii: "0") + UInt8(n % 10); n /= 10 }
        count += width
    }
}
