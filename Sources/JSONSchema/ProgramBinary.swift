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

    private func valid(_ id: Int32, _ b: UnsafeBufferPointer<UInt8>, _ at: Int) -> Bool {
        let n = info[Int(id)]
        guard !n.never, at < b.count else { return false }
        let tag = b[at]
        let t = n.types
        switch tag {
        case 0: if !t.contains(.null) { return false }
        case 1, 2: if !t.contains(.boolean) { return false }
        case 3:
            if t.rawValue & (TypeSet.integer.rawValue | TypeSet.number.rawValue) == 0 { return false }
            if n.numberCount > 0 {
                var r = BinaryReader(b)
                r.offset = at + 1
                guard let v = try? r.signedVarint() else { return false }
                if !numberValid(Double(v), n) { return false }
            }
        case 4:
            guard at + 9 <= b.count else { return false }
            var bits: UInt64 = 0
            for k in 0..<8 { bits |= UInt64(b[at + 1 + k]) << (8 * UInt64(k)) }
            let d = Double(bitPattern: bits)
            if !(t.contains(.number) || (t.contains(.integer) && d.isFinite && d.rounded(.towardZero) == d)) { return false }
            if n.numberCount > 0 && !numberValid(d, n) { return false }
        case 5:
            if !t.contains(.string) { return false }
            if n.stringCount > 0 {
                var i = at + 1
                guard let len = JSONView.varint(b, &i), i + len <= b.count else { return false }
                if !stringValid(UnsafeBufferPointer(rebasing: b[i..<i + len]), n) { return false }
            }
        case 6:
            if !t.contains(.array) { return false }
            if n.array >= 0 && !arrayValid(b, at, arrays[Int(n.array)]) { return false }
        case 7:
            if !t.contains(.object) { return false }
            if n.object >= 0 && !objectValid(b, at, objects[Int(n.object)]) { return false }
        default: return false
        }
        var i = Int(n.checkFirst)
        let end = i + Int(n.checkCount)
        while i < end {
            if !check(checks[i], b, at) { return false }
            i += 1
        }
        return true
    }

    @inline(__always)
    private func numberValid(_ d: Double, _ n: NodeInfo) -> Bool {
        var i = Int(n.numberFirst)
        let end = i + Int(n.numberCount)
        while i < end {
            let op = numberOps[i]
            switch op.kind {
            case .minimum: if !(d >= op.bound) { return false }
            case .maximum: if !(d <= op.bound) { return false }
            case .exclusiveMinimum: if !(d > op.bound) { return false }
            case .exclusiveMaximum: if !(d < op.bound) { return false }
            }
            i += 1
        }
        return true
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

    private func objectValid(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, _ o: ObjectInfo) -> Bool {
        var i = at + 1
        guard let count = JSONView.varint(b, &i) else { return false }
        if o.minProperties >= 0 && count < o.minProperties { return false }
        if o.maxProperties >= 0 && count > o.maxProperties { return false }
        if o.requiredCount == 0 && !o.inspectsMembers { return true }
        guard count <= b.count - i else { return false }
        // One pass to find the members: (key offset, key length, value offset).
        return withUnsafeTemporaryAllocation(of: (Int, Int, Int).self, capacity: max(count, 1)) { members -> Bool in
            for m in 0..<count {
                guard let len = JSONView.varint(b, &i), i + len <= b.count else { return false }
                members[m] = (i, len, i + len)
                guard let next = JSONView.skip(b, i + len) else { return false }
                i = next
            }
            @inline(__always) func key(_ m: Int) -> UnsafeBufferPointer<UInt8> {
                UnsafeBufferPointer(rebasing: b[members[m].0..<members[m].0 + members[m].1])
            }
            var r = Int(o.requiredFirst)
            let requiredEnd = r + Int(o.requiredCount)
            while r < requiredEnd {
                var found = false
                for m in 0..<count where same(r, key(m)) { found = true; break }
                if !found { return false }
                r += 1
            }
            guard o.inspectsMembers else { return true }
            let propertyEnd = Int(o.propertyFirst + o.propertyCount)
            for m in 0..<count {
                let k = key(m)
                let value = members[m].2
                var declared = false
                var p = Int(o.propertyFirst)
                while p < propertyEnd {
                    let e = properties[p]
                    if e.length == k.count && same(Int(e.name), k) {
                        declared = true
                        if !valid(e.node, b, value) { return false }
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
                            if !valid(e.node, b, value) { return false }
                        }
                        q += 1
                    }
                }
                if !declared && o.additional >= 0 && !valid(o.additional, b, value) { return false }
            }
            return true
        }
    }

    private func arrayValid(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, _ a: ArrayInfo) -> Bool {
        var i = at + 1
        guard let count = JSONView.varint(b, &i) else { return false }
        if a.minItems >= 0 && count < a.minItems { return false }
        if a.maxItems >= 0 && count > a.maxItems { return false }
        if a.items >= 0 {
            for _ in 0..<count {
                if !valid(a.items, b, i) { return false }
                guard let next = JSONView.skip(b, i) else { return false }
                i = next
            }
        }
        return true
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
        case .enumValues:
            guard let v = Program.tree(b, at) else { return false }
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if values[i] == v { return true }
                i += 1
            }
            return false
        case .const:
            guard let v = Program.tree(b, at) else { return false }
            return values[Int(op.a)] == v
        case .allOf:
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if !valid(lists[i], b, at) { return false }
                i += 1
            }
            return true
        case .anyOf:
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if valid(lists[i], b, at) { return true }
                i += 1
            }
            return false
        case .oneOf:
            var n = 0
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if valid(lists[i], b, at) {
                    n += 1
                    if n >= 2 { break }
                }
                i += 1
            }
            return n == 1
        case .not:
            return !valid(op.a, b, at)
        case .condition:
            if valid(op.a, b, at) { return op.b < 0 || valid(op.b, b, at) }
            return op.c < 0 || valid(op.c, b, at)
        case .ref:
            return valid(op.a, b, at)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
