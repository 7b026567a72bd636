import JSONCore

// The same evaluation as `Program.valid`, over a value in binary JSON form (see
// `JSON.encodeBinary`) instead of a `JSON` tree: the ingest path validates the bytes it is
// about to store, with no tree built. Every keyword answers exactly as on the tree (a test
// compares the two on generated messages); where that needs a `String` (a `pattern` on
// non-ASCII text, a length in characters) one is made for that value only.

extension Program {
    /// Whether the value whose tag is at `at` in `b` satisfies node `id`.
    func isValid(_ id: Int, binary b: UnsafeBufferPointer<UInt8>, at: Int) -> Bool {
        valid(Int32(id), b, at)
    }

    @inline(__always)
    private func valid(_ id: Int32, _ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> Bool {
        validEnd(id, b, at) != nil
    }

    /// Whether the value at `at` satisfies node `id`: nil when not, else the offset just past
    /// the value — found on the way (a container's members are walked once, by the checks
    /// of their own nodes, not walked again to find where the next one starts).
    private func validEnd(_ id: Int32, _ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> Int? {
        let n = info[Int(id)]
        guard !n.never, at < b.count else { return nil }
        let tag = b[at]
        let t = n.types
        var end: Int?
        switch tag {
        case 0:
            if !t.contains(.null) { return nil }
            end = at + 1
        case 1, 2:
            if !t.contains(.boolean) { return nil }
            end = at + 1
        case 3:
            if t.rawValue & (TypeSet.integer.rawValue | TypeSet.number.rawValue) == 0 { return nil }
            var r = BinaryReader(b)
            r.offset = at + 1
            guard let v = try? r.signedVarint() else { return nil }
            if n.numberCount > 0 && !numberValid(Double(v), n) { return nil }
            end = r.offset
        case 4:
            guard at + 9 <= b.count else { return nil }
            var bits: UInt64 = 0
            for k in 0..<8 { bits |= UInt64(b[at + 1 + k]) << (8 * UInt64(k)) }
            let d = Double(bitPattern: bits)
            if !t.admits(double: d) { return nil }
            if n.numberCount > 0 && !numberValid(d, n) { return nil }
            end = at + 9
        case 5:
            if !t.contains(.string) { return nil }
            var i = at + 1
            guard let len = JSONView.varint(b, &i), i + len <= b.count else { return nil }
            if n.stringCount > 0 && !stringValid(UnsafeBufferPointer(rebasing: b[i..<i + len]), n) { return nil }
            end = i + len
        case 6, 8:
            if !t.contains(.array) { return nil }
            if n.array >= 0 {
                guard let e = arrayValid(b, at, arrays[Int(n.array)]) else { return nil }
                end = e
            }
        case 7, 9:
            if !t.contains(.object) { return nil }
            if n.object >= 0 {
                guard let e = objectValid(b, at, objects[Int(n.object)]) else { return nil }
                end = e
            }
        default: return nil
        }
        var i = Int(n.checkFirst)
        let checksEnd = i + Int(n.checkCount)
        while i < checksEnd {
            if !check(checks[i], b, at) { return nil }
            i += 1
        }
        return end ?? JSONView.skip(b, at)
    }

    /// The string's length in `Character`s equals its UTF-8 length: ASCII without `\r`
    /// (which with a following `\n` makes one character).
    @inline(__always)
    private static func countsAsBytes(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        for c in s where c >= 0x80 || c == 0x0D { return false }
        return true
    }

    private func stringValid(_ s: UnsafeBufferPointer<UInt8>, _ n: NodeInfo) -> Bool {
        var i = Int(n.stringFirst)
        let end = i + Int(n.stringCount)
        while i < end {
            let op = stringOps[i]
            switch op.kind {
            case .minLength:
                if op.n > 1 && s.count >= op.n && !Program.countsAsBytes(s) {
                    if !Length.atLeast(String(decoding: s, as: UTF8.self), op.n) { return false }
                } else if op.n > 0 && s.count < op.n {
                    return false
                }
            case .maxLength:
                if s.count > op.n {
                    if Program.countsAsBytes(s) || !Length.atMost(String(decoding: s, as: UTF8.self), op.n) { return false }
                }
            case .pattern:
                if !patterns[op.n]._withUnsafeGuaranteedRef({ $0.matches(utf8: s) }) { return false }
            case .dateTime: if !Format.isDateTime(s) { return false }
            case .date: if !(s.count == 10 && Format.date(s) == 10) { return false }
            }
            i += 1
        }
        return true
    }

    /// Whether `s` is the UTF-8 of `strings[index]`.
    @inline(__always)
    private func same(_ index: Int, _ s: UnsafeBufferPointer<UInt8>) -> Bool {
        let (offset, length) = stringSpans[index]
        guard length == s.count else { return false }
        return length == 0 || memcmp(stringPool.baseAddress! + offset, s.baseAddress!, length) == 0
    }

    /// nil when the object at `at` fails `o`; else the offset past it. One pass: required
    /// names are ticked off in a bit set while each member is checked.
    private func objectValid(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, _ o: ObjectInfo) -> Int? {
        guard let (count, first) = JSONView.header(b, at, object: true) else { return nil }
        var i = first
        if o.minProperties >= 0 && count < o.minProperties { return nil }
        if o.maxProperties >= 0 && count > o.maxProperties { return nil }
        if o.requiredCount == 0 && !o.inspectsMembers { return JSONView.skip(b, at) }
        let requiredFirst = Int(o.requiredFirst), requiredCount = Int(o.requiredCount)
        guard requiredCount <= 64 else { return objectValidManyRequired(b, at, o) }
        var found: UInt64 = 0
        let propertyEnd = Int(o.propertyFirst + o.propertyCount)
        for _ in 0..<count {
            guard let len = JSONView.varint(b, &i), i + len <= b.count else { return nil }
            let k = UnsafeBufferPointer(rebasing: b[i..<i + len])
            let value = i + len
            var r = 0
            while r < requiredCount {
                if found & (1 << UInt64(r)) == 0 && same(requiredFirst + r, k) { found |= 1 << UInt64(r) }
                r += 1
            }
            var end: Int?
            if o.inspectsMembers {
                var declared = false
                var p = Int(o.propertyFirst)
                while p < propertyEnd {
                    let e = properties[p]
                    if e.length == k.count && same(Int(e.name), k) {
                        declared = true
                        guard let x = validEnd(e.node, b, value) else { return nil }
                        end = x
                        break
                    }
                    p += 1
                }
                if o.patternCount > 0 {
                    var q = Int(o.patternFirst)
                    let patternEnd = q + Int(o.patternCount)
                    while q < patternEnd {
                        let e = patternProperties[q]
                        if patterns[Int(e.pattern)]._withUnsafeGuaranteedRef({ $0.matches(utf8: k) }) {
                            declared = true
                            guard let x = validEnd(e.node, b, value) else { return nil }
                            end = x
                        }
                        q += 1
                    }
                }
                if !declared && o.additional >= 0 {
                    guard let x = validEnd(o.additional, b, value) else { return nil }
                    end = x
                }
            }
            guard let next = end ?? JSONView.skip(b, value) else { return nil }
            i = next
        }
        let all: UInt64 = requiredCount == 64 ? .max : (1 << UInt64(requiredCount)) - 1
        return found == all ? i : nil
    }

    /// `objectValid` for an object schema requiring more than 64 names (rare): two passes.
    private func objectValidManyRequired(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, _ o: ObjectInfo) -> Int? {
        guard let (count, i) = JSONView.header(b, at, object: true), count <= b.count - i else { return nil }
        var keys: [(Int, Int)] = []
        keys.reserveCapacity(count)
        var j = i
        for _ in 0..<count {
            guard let len = JSONView.varint(b, &j), j + len <= b.count, let next = JSONView.skip(b, j + len) else { return nil }
            keys.append((j, len))
            j = next
        }
        var r = Int(o.requiredFirst)
        let requiredEnd = r + Int(o.requiredCount)
        while r < requiredEnd {
            if !keys.contains(where: { same(r, UnsafeBufferPointer(rebasing: b[$0.0..<$0.0 + $0.1])) }) { return nil }
            r += 1
        }
        var only = o
        only.requiredCount = 0
        return objectValid(b, at, only)
    }

    /// nil when the array at `at` fails `a`; else the offset past it.
    private func arrayValid(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, _ a: ArrayInfo) -> Int? {
        guard let (count, first) = JSONView.header(b, at, object: false) else { return nil }
        var i = first
        if a.minItems >= 0 && count < a.minItems { return nil }
        if a.maxItems >= 0 && count > a.maxItems { return nil }
        guard a.items >= 0 else { return JSONView.skip(b, at) }
        for _ in 0..<count {
            guard let next = validEnd(a.items, b, i) else { return nil }
            i = next
        }
        return i
    }

    /// The value at `at` as a tree, for the keywords that compare whole values.
    private static func tree(_ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> JSON? {
        var r = BinaryReader(b)
        r.offset = at
        return try? JSON.decodeBinary(&r)
    }

    private func check(_ op: CheckOp, _ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> Bool {
        switch op.kind {
        case .enumStrings:
            guard b[at] == 5 else { return false }
            var j = at + 1
            guard let len = JSONView.varint(b, &j), j + len <= b.count else { return false }
            let s = UnsafeBufferPointer(rebasing: b[j..<j + len])
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if same(i, s) { return true }
                i += 1
            }
            return false
        case .enumValues, .const:  // whole values compared: on the tree, as the tree evaluation does
            return Program.tree(b, at).map { check(op, $0) } ?? false
        case .allOf, .anyOf, .oneOf, .not, .condition, .ref:
            return combine(op) { valid($0, b, at) }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
