import JSONCore

/// The compiled form the hot path runs: every node of a compilation flattened into tables of
/// plain structs that refer to each other by index, `$ref`s already bound. Evaluating it
/// touches no reference counts on the schema side (the tables are raw buffers of trivial
/// values), so threads sharing one registry do not contend, and it never allocates.
///
/// `Node` keeps the readable tree for explanations; `Program` only answers yes or no.
final class Program: @unchecked Sendable {
    /// The nodes by id, kept for explanations (and alive for as long as the program).
    let nodes: [Node]
    private let patternObjects: [Pattern]

    let info: UnsafeMutableBufferPointer<NodeInfo>
    let stringOps: UnsafeMutableBufferPointer<StringOp>
    let numberOps: UnsafeMutableBufferPointer<NumberOp>
    let objects: UnsafeMutableBufferPointer<ObjectInfo>
    let arrays: UnsafeMutableBufferPointer<ArrayInfo>
    let checks: UnsafeMutableBufferPointer<CheckOp>
    let properties: UnsafeMutableBufferPointer<PropertyEntry>
    let patternProperties: UnsafeMutableBufferPointer<PatternEntry>
    let lists: UnsafeMutableBufferPointer<Int32>
    let strings: UnsafeMutableBufferPointer<String>
    /// `strings` as UTF-8, for the binary evaluation: (offset into `stringPool`, length).
    let stringSpans: UnsafeMutableBufferPointer<(Int, Int)>
    let stringPool: UnsafeMutableBufferPointer<UInt8>
    let values: UnsafeMutableBufferPointer<JSON>
    let patterns: UnsafeMutableBufferPointer<Unmanaged<Pattern>>

    struct NodeInfo {
        var types = TypeSet.all
        var never = false
        var stringFirst: Int32 = 0, stringCount: Int32 = 0
        var numberFirst: Int32 = 0, numberCount: Int32 = 0
        var object: Int32 = -1
        var array: Int32 = -1
        var checkFirst: Int32 = 0, checkCount: Int32 = 0
    }

    struct StringOp {
        enum Kind: UInt8 { case minLength, maxLength, pattern, dateTime, date }
        var kind: Kind
        var n: Int  // a length or a pattern index
    }

    struct NumberOp {
        enum Kind: UInt8 { case minimum, maximum, exclusiveMinimum, exclusiveMaximum }
        var kind: Kind
        var bound: Double
    }

    struct ObjectInfo {
        var requiredFirst: Int32, requiredCount: Int32  // into strings
        var propertyFirst: Int32, propertyCount: Int32
        var patternFirst: Int32, patternCount: Int32
        var additional: Int32  // a node, or -1: anything goes
        var minProperties: Int, maxProperties: Int  // -1: none
        var inspectsMembers: Bool
    }

    struct PropertyEntry {
        var length: Int  // UTF-8 length: a cheap filter before comparing names
        var name: Int32  // into strings
        var node: Int32
    }

    struct PatternEntry { var pattern: Int32, node: Int32 }

    struct ArrayInfo { var items: Int32, minItems: Int, maxItems: Int }

    struct CheckOp {
        enum Kind: UInt8 { case enumStrings, enumValues, const, allOf, anyOf, oneOf, not, condition, ref }
        var kind: Kind
        var a: Int32, b: Int32 = -1, c: Int32 = -1
    }

    /// Flattens `nodes` (each one's `id` is its index); every `$ref` must be bound.
    init(_ nodes: [Node]) {
        self.nodes = nodes
        var info: [NodeInfo] = [], stringOps: [StringOp] = [], numberOps: [NumberOp] = []
        var objects: [ObjectInfo] = [], arrays: [ArrayInfo] = [], checks: [CheckOp] = []
        var properties: [PropertyEntry] = [], patternProperties: [PatternEntry] = [], lists: [Int32] = []
        var strings: [String] = [], values: [JSON] = [], patterns: [Pattern] = []
        func string(_ s: String) -> Int32 { strings.append(s); return Int32(strings.count - 1) }
        func pattern(_ p: Pattern) -> Int32 { patterns.append(p); return Int32(patterns.count - 1) }
        func list(_ ns: [Node]) -> (Int32, Int32) {
            lists += ns.map { Int32($0.id) }
            return (Int32(lists.count - ns.count), Int32(ns.count))
        }
        for (id, node) in nodes.enumerated() {
            precondition(node.id == id)
            var n = NodeInfo(types: node.types, never: node.never)
            n.stringFirst = Int32(stringOps.count)
            for op in node.strings {
                switch op {
                case .minLength(let len): stringOps.append(StringOp(kind: .minLength, n: len))
                case .maxLength(let len): stringOps.append(StringOp(kind: .maxLength, n: len))
                case .pattern(let p): stringOps.append(StringOp(kind: .pattern, n: Int(pattern(p))))
                case .format(let f): stringOps.append(StringOp(kind: f == .dateTime ? .dateTime : .date, n: 0))
                }
            }
            n.stringCount = Int32(node.strings.count)
            n.numberFirst = Int32(numberOps.count)
            for op in node.numbers {
                switch op {
                case .minimum(let b): numberOps.append(NumberOp(kind: .minimum, bound: b))
                case .maximum(let b): numberOps.append(NumberOp(kind: .maximum, bound: b))
                case .exclusiveMinimum(let b): numberOps.append(NumberOp(kind: .exclusiveMinimum, bound: b))
                case .exclusiveMaximum(let b): numberOps.append(NumberOp(kind: .exclusiveMaximum, bound: b))
                }
            }
            n.numberCount = Int32(node.numbers.count)
            if let o = node.object {
                let requiredFirst = Int32(strings.count)
                for r in o.required { _ = string(r) }
                let propertyFirst = Int32(properties.count)
                for (name, child) in o.properties {
                    properties.append(PropertyEntry(length: name.utf8.count, name: string(name), node: Int32(child.id)))
                }
                let patternFirst = Int32(patternProperties.count)
                for (p, child) in o.patternProperties {
                    patternProperties.append(PatternEntry(pattern: pattern(p), node: Int32(child.id)))
                }
                objects.append(ObjectInfo(
                    requiredFirst: requiredFirst, requiredCount: Int32(o.required.count),
                    propertyFirst: propertyFirst, propertyCount: Int32(o.properties.count),
                    patternFirst: patternFirst, patternCount: Int32(o.patternProperties.count),
                    additional: o.additionalProperties.map { Int32($0.id) } ?? -1,
                    minProperties: o.minProperties ?? -1, maxProperties: o.maxProperties ?? -1,
                    inspectsMembers: !o.properties.isEmpty || !o.patternProperties.isEmpty || o.additionalProperties != nil))
                n.object = Int32(objects.count - 1)
            }
            if let a = node.array {
                arrays.append(ArrayInfo(items: a.items.map { Int32($0.id) } ?? -1, minItems: a.minItems ?? -1, maxItems: a.maxItems ?? -1))
                n.array = Int32(arrays.count - 1)
            }
            n.checkFirst = Int32(checks.count)
            for check in node.checks {
                switch check {
                case .enumStrings(let all):
                    let first = Int32(strings.count)
                    for s in all { _ = string(s) }
                    checks.append(CheckOp(kind: .enumStrings, a: first, b: Int32(all.count)))
                case .enumValues(let all):
                    values += all
                    checks.append(CheckOp(kind: .enumValues, a: Int32(values.count - all.count), b: Int32(all.count)))
                case .const(let c):
                    values.append(c)
                    checks.append(CheckOp(kind: .const, a: Int32(values.count - 1)))
                case .allOf(let ns): let (f, c) = list(ns); checks.append(CheckOp(kind: .allOf, a: f, b: c))
                case .anyOf(let ns): let (f, c) = list(ns); checks.append(CheckOp(kind: .anyOf, a: f, b: c))
                case .oneOf(let ns): let (f, c) = list(ns); checks.append(CheckOp(kind: .oneOf, a: f, b: c))
                case .not(let x): checks.append(CheckOp(kind: .not, a: Int32(x.id)))
                case .condition(let i, let t, let e):
                    checks.append(CheckOp(kind: .condition, a: Int32(i.id), b: t.map { Int32($0.id) } ?? -1, c: e.map { Int32($0.id) } ?? -1))
                case .ref(let r): checks.append(CheckOp(kind: .ref, a: Int32(r.target!.id)))
                }
            }
            n.checkCount = Int32(node.checks.count)
            info.append(n)
        }
        patternObjects = patterns
        self.info = Program.buffer(info)
        self.stringOps = Program.buffer(stringOps)
        self.numberOps = Program.buffer(numberOps)
        self.objects = Program.buffer(objects)
        self.arrays = Program.buffer(arrays)
        self.checks = Program.buffer(checks)
        self.properties = Program.buffer(properties)
        self.patternProperties = Program.buffer(patternProperties)
        self.lists = Program.buffer(lists)
        self.strings = Program.buffer(strings)
        var pool: [UInt8] = [], spans: [(Int, Int)] = []
        for str in strings {
            spans.append((pool.count, str.utf8.count))
            pool += Array(str.utf8)
        }
        self.stringSpans = Program.buffer(spans)
        self.stringPool = Program.buffer(pool)
        self.values = Program.buffer(values)
        self.patterns = Program.buffer(patterns.map { Unmanaged.passUnretained($0) })
    }

    deinit {
        info.deallocate(); stringOps.deallocate(); numberOps.deallocate(); objects.deallocate()
        arrays.deallocate(); checks.deallocate(); properties.deallocate(); patternProperties.deallocate()
        lists.deallocate(); patterns.deallocate(); stringSpans.deallocate(); stringPool.deallocate()
        strings.deinitialize().deallocate()
        values.deinitialize().deallocate()
    }

    private static func buffer<T>(_ a: [T]) -> UnsafeMutableBufferPointer<T> {
        let b = UnsafeMutableBufferPointer<T>.allocate(capacity: a.count)
        _ = b.initialize(from: a)
        return b
    }

    /// String equality, skipping the out-of-line comparison when the UTF-8 lengths differ.
    @inline(__always)
    private static func same(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && a == b
    }

    // MARK: Evaluation

    /// Whether `v` satisfies node `id`.
    func isValid(_ id: Int, _ v: JSON) -> Bool { valid(Int32(id), v) }

    /// Whether `v` satisfies check `index` (in `Node.checks` order) of node `id`.
    func checkIsValid(_ id: Int, _ index: Int, _ v: JSON) -> Bool {
        check(checks[Int(info[id].checkFirst) + index], v)
    }

    private func valid(_ id: Int32, _ v: JSON) -> Bool {
        let n = info[Int(id)]
        if n.never || !n.types.admits(v) { return false }
        switch v {
        case .string(let s):
            if n.stringCount > 0 && !stringValid(s, n) { return false }
        case .int(let i):
            if n.numberCount > 0 && !numberValid(Double(i), n) { return false }
        case .double(let d):
            if n.numberCount > 0 && !numberValid(d, n) { return false }
        case .object(let members):
            if n.object >= 0 && !objectValid(members, objects[Int(n.object)]) { return false }
        case .array(let items):
            if n.array >= 0 && !arrayValid(items, arrays[Int(n.array)]) { return false }
        default: break
        }
        var i = Int(n.checkFirst)
        let end = i + Int(n.checkCount)
        while i < end {
            if !check(checks[i], v) { return false }
            i += 1
        }
        return true
    }

    @inline(__always)
    private func stringValid(_ s: String, _ n: NodeInfo) -> Bool {
        var i = Int(n.stringFirst)
        let end = i + Int(n.stringCount)
        while i < end {
            let op = stringOps[i]
            switch op.kind {
            case .minLength: if !Length.atLeast(s, op.n) { return false }
            case .maxLength: if !Length.atMost(s, op.n) { return false }
            case .pattern: if !patterns[op.n]._withUnsafeGuaranteedRef({ $0.matches(s) }) { return false }
            case .dateTime: if !Format.dateTime.matches(s) { return false }
            case .date: if !Format.date.matches(s) { return false }
            }
            i += 1
        }
        return true
    }

    @inline(__always)
    func numberValid(_ d: Double, _ n: NodeInfo) -> Bool {
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

    @inline(__always)
    private func objectValid(_ members: [(String, JSON)], _ o: ObjectInfo) -> Bool {
        var r = Int(o.requiredFirst)
        let requiredEnd = r + Int(o.requiredCount)
        while r < requiredEnd {
            let name = strings[r]
            var found = false
            var m = 0
            while m < members.count {
                if Program.same(members[m].0, name) { found = true; break }
                m += 1
            }
            if !found { return false }
            r += 1
        }
        if o.minProperties >= 0 && members.count < o.minProperties { return false }
        if o.maxProperties >= 0 && members.count > o.maxProperties { return false }
        guard o.inspectsMembers else { return true }
        let propertyEnd = Int(o.propertyFirst + o.propertyCount)
        var m = 0
        while m < members.count {
            var declared = false
            let length = members[m].0.utf8.count
            var p = Int(o.propertyFirst)
            while p < propertyEnd {
                let e = properties[p]
                if e.length == length && strings[Int(e.name)] == members[m].0 {
                    declared = true
                    if !valid(e.node, members[m].1) { return false }
                    break
                }
                p += 1
            }
            if o.patternCount > 0 {
                var q = Int(o.patternFirst)
                let patternEnd = q + Int(o.patternCount)
                while q < patternEnd {
                    let e = patternProperties[q]
                    if patterns[Int(e.pattern)]._withUnsafeGuaranteedRef({ $0.matches(members[m].0) }) {
                        declared = true
                        if !valid(e.node, members[m].1) { return false }
                    }
                    q += 1
                }
            }
            if !declared && o.additional >= 0 && !valid(o.additional, members[m].1) { return false }
            m += 1
        }
        return true
    }

    @inline(__always)
    private func arrayValid(_ items: [JSON], _ a: ArrayInfo) -> Bool {
        if a.minItems >= 0 && items.count < a.minItems { return false }
        if a.maxItems >= 0 && items.count > a.maxItems { return false }
        if a.items >= 0 {
            var i = 0
            while i < items.count {
                if !valid(a.items, items[i]) { return false }
                i += 1
            }
        }
        return true
    }

    @inline(__always)
    func check(_ op: CheckOp, _ v: JSON) -> Bool {
        switch op.kind {
        case .enumStrings:
            guard case .string(let s) = v else { return false }
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if Program.same(strings[i], s) { return true }
                i += 1
            }
            return false
        case .enumValues:
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if values[i] == v { return true }
                i += 1
            }
            return false
        case .const:
            return values[Int(op.a)] == v
        case .allOf, .anyOf, .oneOf, .not, .condition, .ref:
            return combine(op) { valid($0, v) }
        }
    }

    /// The keywords that combine other nodes' answers on the same value, whichever form the
    /// value is in (`valid` answers for a node): shared by the tree and binary evaluations.
    @inline(__always)
    func combine(_ op: CheckOp, _ valid: (Int32) -> Bool) -> Bool {
        switch op.kind {
        case .allOf:
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if !valid(lists[i]) { return false }
                i += 1
            }
            return true
        case .anyOf:
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if valid(lists[i]) { return true }
                i += 1
            }
            return false
        case .oneOf:
            var n = 0
            var i = Int(op.a)
            let end = i + Int(op.b)
            while i < end {
                if valid(lists[i]) {
                    n += 1
                    if n >= 2 { break }
                }
                i += 1
            }
            return n == 1
        case .not:
            return !valid(op.a)
        case .condition:
            if valid(op.a) { return op.b < 0 || valid(op.b) }
            return op.c < 0 || valid(op.c)
        case .ref:
            return valid(op.a)
        case .enumStrings, .enumValues, .const:
            preconditionFailure("not a combination: \(op.kind)")
        }
    }
}
