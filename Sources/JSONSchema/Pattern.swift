import Foundation

/// A compiled `pattern` (ECMA-262 syntax, unanchored search as JSON Schema says).
///
/// Most tracking-plan patterns are small and ASCII (`^[A-Z]{3}$`, `^-?[0-9]+(\.[0-9]+)?$`);
/// those run on a bit-parallel position automaton over the string's UTF-8 bytes — linear
/// time, no allocation, about 20× faster than NSRegularExpression on Linux. A pattern
/// outside that subset, or a subject string with non-ASCII characters, goes to
/// NSRegularExpression (compiled once).
public final class Pattern: @unchecked Sendable {
    public let source: String
    private let regex: NSRegularExpression
    private let automaton: Automaton?

    public init(_ source: String) throws {
        self.source = source
        regex = try NSRegularExpression(pattern: source.isEmpty ? "(?:)" : source)  // ICU refuses ""
        automaton = Automaton(source)
    }

    /// Whether the automaton handles this pattern (for tests).
    var isFast: Bool { automaton != nil }

    @inline(__always)
    public func matches(_ s: String) -> Bool {
        if let automaton {
            var s = s
            switch s.withUTF8({ automaton.search($0) }) {
            case .match: return true
            case .noMatch: return false
            case .notASCII: break
            }
        }
        return regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    /// `matches` on a string's UTF-8 bytes (valid UTF-8), making a `String` only when the
    /// automaton cannot answer.
    @inline(__always)
    public func matches(utf8 s: UnsafeBufferPointer<UInt8>) -> Bool {
        if let automaton {
            switch automaton.search(s) {
            case .match: return true
            case .noMatch: return false
            case .notASCII: break
            }
        }
        let string = String(decoding: s, as: UTF8.self)
        return regex.firstMatch(in: string, range: NSRange(string.startIndex..., in: string)) != nil
    }
}

/// A Glushkov automaton of at most 64 positions, simulated with one `UInt64` of states.
struct Automaton {
    enum Result { case match, noMatch, notASCII }

    private let anchoredStart: Bool
    private let anchoredEnd: Bool
    private let nullable: Bool
    private let first: UInt64
    private let last: UInt64
    private let follow: [UInt64]
    /// For each ASCII byte, the positions whose character set holds it.
    private let accepts: [UInt64]

    /// nil when the pattern uses syntax outside the handled subset.
    init?(_ pattern: String) {
        var bytes = Array(pattern.utf8)
        guard bytes.allSatisfy({ $0 < 0x80 }) else { return nil }
        var anchoredStart = false, anchoredEnd = false
        if bytes.first == UInt8(ascii: "^") { anchoredStart = true; bytes.removeFirst() }
        if bytes.last == UInt8(ascii: "$") {
            var backslashes = 0
            var k = bytes.count - 2
            while k >= 0, bytes[k] == UInt8(ascii: "\\") { backslashes += 1; k -= 1 }
            if backslashes % 2 == 0 { anchoredEnd = true; bytes.removeLast() }
        }
        var parser = RegexParser(bytes: bytes)
        guard let tree = parser.parse() else { return nil }
        // `^a|b$` anchors only its first and last alternative: not handled here.
        if case .alternation = tree, anchoredStart || anchoredEnd { return nil }
        var builder = GlushkovBuilder()
        guard let root = builder.build(tree), builder.sets.count <= 64 else { return nil }
        var accepts = [UInt64](repeating: 0, count: 128)
        for (p, set) in builder.sets.enumerated() {
            for c in 0..<128 where set.contains(UInt8(c)) { accepts[c] |= 1 << UInt64(p) }
        }
        self.anchoredStart = anchoredStart
        self.anchoredEnd = anchoredEnd
        nullable = root.nullable
        first = root.first
        last = root.last
        follow = builder.follow
        self.accepts = accepts
    }

    func search(_ b: UnsafeBufferPointer<UInt8>) -> Result {
        if nullable && !anchoredEnd { return .match }  // the empty match
        var d: UInt64 = 0
        var i = 0
        while i < b.count {
            let c = b[i]
            if c >= 0x80 { return .notASCII }
            var f: UInt64 = 0
            var x = d
            while x != 0 {
                f |= follow[x.trailingZeroBitCount]
                x &= x &- 1
            }
            if !anchoredStart || i == 0 { f |= first }
            d = f & accepts[Int(c)]
            if !anchoredEnd && d & last != 0 { return .match }
            if anchoredStart && d == 0 { return .noMatch }
            i += 1
        }
        if anchoredEnd {
            if d & last != 0 { return .match }
            if nullable && (!anchoredStart || b.isEmpty) { return .match }
        }
        return .noMatch
    }
}

/// A set of ASCII bytes.
struct ByteSet {
    var lo: UInt64 = 0, hi: UInt64 = 0
    static let all = ByteSet(lo: ~0, hi: ~0)

    init(lo: UInt64 = 0, hi: UInt64 = 0) { self.lo = lo; self.hi = hi }
    init(_ chars: String) { for c in chars.utf8 { insert(c) } }
    init(range: ClosedRange<UInt8>) { for c in range { insert(c) } }

    mutating func insert(_ c: UInt8) { if c < 64 { lo |= 1 << UInt64(c) } else { hi |= 1 << UInt64(c - 64) } }
    func contains(_ c: UInt8) -> Bool { c < 64 ? lo & (1 << UInt64(c)) != 0 : c < 128 && hi & (1 << UInt64(c - 64)) != 0 }
    func union(_ o: ByteSet) -> ByteSet { ByteSet(lo: lo | o.lo, hi: hi | o.hi) }
    var inverted: ByteSet { ByteSet(lo: ~lo, hi: ~hi) }

    static let digits = ByteSet(range: 48...57)
    static let word = ByteSet(range: 48...57).union(ByteSet(range: 65...90)).union(ByteSet(range: 97...122)).union(ByteSet("_"))
    static let space = ByteSet("\t\n\u{0B}\u{0C}\r ")
    static let anyButNewline = ByteSet.all.subtracting(ByteSet("\n\r"))
    func subtracting(_ o: ByteSet) -> ByteSet { ByteSet(lo: lo & ~o.lo, hi: hi & ~o.hi) }
}

indirect enum RegexTree {
    case empty
    case set(ByteSet)
    case sequence([RegexTree])
    case alternation([RegexTree])
    /// `min` to `max` (nil: unbounded) repetitions.
    case repeated(RegexTree, min: Int, max: Int?)
}

/// Parses the handled subset: literals, `.`, classes with ranges and negation, `\d \w \s`
/// and their negations, escaped punctuation, groups `( )` and `(?: )`, `|`, and the
/// quantifiers `? * + {n} {n,} {n,m}` (greedy or lazy — the same for a yes/no answer).
/// Anything else (backreferences, lookaround, `\b`, inline flags, nested classes) is nil.
struct RegexParser {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func parse() -> RegexTree? {
        guard let tree = alternation(), i == bytes.count else { return nil }
        return tree
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    private mutating func alternation() -> RegexTree? {
        var branches: [RegexTree] = []
        guard let first = sequence() else { return nil }
        branches.append(first)
        while peek == UInt8(ascii: "|") {
            i += 1
            guard let next = sequence() else { return nil }
            branches.append(next)
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    private mutating func sequence() -> RegexTree? {
        var items: [RegexTree] = []
        while let c = peek, c != UInt8(ascii: "|"), c != UInt8(ascii: ")") {
            guard var atom = atom() else { return nil }
            if let q = quantifier() {
                guard q.max.map({ $0 >= q.min }) ?? true, q.min <= 64 else { return nil }
                atom = .repeated(atom, min: q.min, max: q.max)
            } else if peek == UInt8(ascii: "{") {
                return nil  // a literal brace: ambiguous between dialects
            }
            items.append(atom)
        }
        return items.isEmpty ? .empty : items.count == 1 ? items[0] : .sequence(items)
    }

    private mutating func quantifier() -> (min: Int, max: Int?)? {
        guard let c = peek else { return nil }
        var q: (min: Int, max: Int?)
        switch c {
        case UInt8(ascii: "?"): q = (0, 1); i += 1
        case UInt8(ascii: "*"): q = (0, nil); i += 1
        case UInt8(ascii: "+"): q = (1, nil); i += 1
        case UInt8(ascii: "{"):
            let save = i
            i += 1
            guard let lo = number() else { i = save; return nil }
            if peek == UInt8(ascii: "}") {
                q = (lo, lo)
            } else if peek == UInt8(ascii: ",") {
                i += 1
                if peek == UInt8(ascii: "}") { q = (lo, nil) } else {
                    guard let hi = number() else { i = save; return nil }
                    q = (lo, hi)
                }
                guard peek == UInt8(ascii: "}") else { i = save; return nil }
            } else {
                i = save
                return nil
            }
            i += 1
        default: return nil
        }
        if peek == UInt8(ascii: "?") { i += 1 }  // lazy: same set of matching strings
        return q
    }

    private mutating func number() -> Int? {
        var v = 0, n = 0
        while let c = peek, c >= 48, c <= 57, n < 4 { v = v * 10 + Int(c - 48); i += 1; n += 1 }
        return n == 0 ? nil : v
    }

    private mutating func atom() -> RegexTree? {
        guard let c = peek else { return nil }
        i += 1
        switch c {
        case UInt8(ascii: "("):
            if peek == UInt8(ascii: "?") {
                guard i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: ":") else { return nil }
                i += 2
            }
            guard let inner = alternation(), peek == UInt8(ascii: ")") else { return nil }
            i += 1
            return .sequence([inner])  // so that only a top-level `|` is an alternation
        case UInt8(ascii: "["): return charClass().map { .set($0) }
        case UInt8(ascii: "."): return .set(.anyButNewline)
        case UInt8(ascii: "\\"): return escape(inClass: false).map { .set($0) }
        case UInt8(ascii: "^"), UInt8(ascii: "$"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"),
             UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "]"), UInt8(ascii: ")"):
            return nil
        default:
            var s = ByteSet()
            s.insert(c)
            return .set(s)
        }
    }

    private mutating func escape(inClass: Bool) -> ByteSet? {
        guard let c = peek else { return nil }
        i += 1
        switch c {
        case UInt8(ascii: "d"): return .digits
        case UInt8(ascii: "D"): return ByteSet.digits.inverted
        case UInt8(ascii: "w"): return .word
        case UInt8(ascii: "W"): return ByteSet.word.inverted
        case UInt8(ascii: "s"): return .space
        case UInt8(ascii: "S"): return ByteSet.space.inverted
        case UInt8(ascii: "t"): return ByteSet("\t")
        case UInt8(ascii: "n"): return ByteSet("\n")
        case UInt8(ascii: "r"): return ByteSet("\r")
        case UInt8(ascii: "f"): return ByteSet("\u{0C}")
        case UInt8(ascii: "v"): return ByteSet("\u{0B}")
        default:
            // Escaped punctuation is itself; letters and digits are classes, anchors,
            // backreferences or code points this subset does not take.
            let isPunctuation = (33...47).contains(c) || (58...64).contains(c) || (91...96).contains(c) || (123...126).contains(c)
            guard isPunctuation else { return nil }
            var s = ByteSet()
            s.insert(c)
            return s
        }
    }

    private mutating func charClass() -> ByteSet? {
        var negated = false
        if peek == UInt8(ascii: "^") { negated = true; i += 1 }
        var set = ByteSet()
        var firstItem = true
        while let c = peek {
            if c == UInt8(ascii: "]") && !firstItem { break }
            if c == UInt8(ascii: "]") { return nil }  // `[]` and `[]a]` differ between dialects
            if c == UInt8(ascii: "[") { return nil }  // ICU nests sets; ECMA does not
            firstItem = false
            guard let lo = classAtom() else { return nil }
            if peek == UInt8(ascii: "-"), i + 1 < bytes.count, bytes[i + 1] != UInt8(ascii: "]") {
                i += 1
                guard case .char(let from) = lo, let hi = classAtom(), case .char(let to) = hi, from <= to else { return nil }
                set = set.union(ByteSet(range: from...to))
            } else {
                switch lo {
                case .char(let ch): set.insert(ch)
                case .set(let s): set = set.union(s)
                }
            }
        }
        guard peek == UInt8(ascii: "]") else { return nil }
        i += 1
        return negated ? set.inverted : set
    }

    private enum ClassAtom { case char(UInt8), set(ByteSet) }

    private mutating func classAtom() -> ClassAtom? {
        guard let c = peek else { return nil }
        i += 1
        if c == UInt8(ascii: "&") || c == UInt8(ascii: "-") && peek == UInt8(ascii: "-") { return nil }  // ICU set operators
        guard c == UInt8(ascii: "\\") else { return .char(c) }
        guard let s = escape(inClass: true) else { return nil }
        // A single-character escape can bound a range.
        var single: UInt8?
        for ch in UInt8(0)..<128 where s.contains(ch) {
            if single != nil { return .set(s) }
            single = ch
        }
        return single.map { .char($0) } ?? .set(s)
    }
}

/// Glushkov construction: one position per character-set occurrence; `first`, `last` and
/// `follow` as bit sets over the positions.
struct GlushkovBuilder {
    struct Part { var nullable: Bool; var first: UInt64; var last: UInt64 }
    var sets: [ByteSet] = []
    var follow: [UInt64] = []

    /// nil when more than 64 positions are needed.
    mutating func build(_ tree: RegexTree) -> Part? {
        switch tree {
        case .empty:
            return Part(nullable: true, first: 0, last: 0)
        case .set(let s):
            guard sets.count < 64 else { return nil }
            let bit = UInt64(1) << UInt64(sets.count)
            sets.append(s)
            follow.append(0)
            return Part(nullable: false, first: bit, last: bit)
        case .sequence(let items):
            var acc = Part(nullable: true, first: 0, last: 0)
            for item in items {
                guard let p = build(item) else { return nil }
                acc = concat(acc, p)
            }
            return acc
        case .alternation(let branches):
            var acc = Part(nullable: false, first: 0, last: 0)
            for b in branches {
                guard let p = build(b) else { return nil }
                acc = Part(nullable: acc.nullable || p.nullable, first: acc.first | p.first, last: acc.last | p.last)
            }
            return acc
        case .repeated(let inner, let min, let max):
            var acc = Part(nullable: true, first: 0, last: 0)
            for _ in 0..<min {
                guard let p = build(inner) else { return nil }
                acc = concat(acc, p)
            }
            if let max {
                // a{2,4} = aa(a(a)?)? — each optional copy hangs off the previous one.
                var optional: [Part] = []
                for _ in min..<max {
                    guard let p = build(inner) else { return nil }
                    optional.append(p)
                }
                var tail = Part(nullable: true, first: 0, last: 0)
                for p in optional.reversed() {
                    tail = concat(p, tail)
                    tail.nullable = true
                }
                return concat(acc, tail)
            }
            guard var loop = build(inner) else { return nil }
            link(loop.last, to: loop.first)
            loop.nullable = true
            return concat(acc, loop)
        }
    }

    private mutating func concat(_ a: Part, _ b: Part) -> Part {
        link(a.last, to: b.first)
        return Part(nullable: a.nullable && b.nullable,
                    first: a.nullable ? a.first | b.first : a.first,
                    last: b.nullable ? a.last | b.last : b.last)
    }

    private mutating func link(_ from: UInt64, to: UInt64) {
        var x = from
        while x != 0 {
            follow[x.trailingZeroBitCount] |= to
            x &= x &- 1
        }
    }
}
