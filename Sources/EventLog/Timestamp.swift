/// Event and receive times: microseconds since the Unix epoch, UTC. Integers, so folds and
/// comparisons are exact and replay is deterministic.
public typealias Micros = Int64

public enum Timestamp {
    /// Parses ISO-8601 / RFC 3339 date-times as clients send them: `2025-03-01T12:00:00Z`,
    /// `…12:00:00.123+00:00`, `…12:00:00.123456Z`, offsets `±hh:mm` or `±hhmm`, a space instead
    /// of `T`. Digits beyond microseconds are truncated. Returns nil when not a date-time.
    public static func parse(_ s: String) -> Micros? {
        var s = s
        return s.withUTF8 { parse(bytes: $0) }
    }

    public static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> Micros? {
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
              let day = digits(2) else { return nil }
        guard i < b.count, b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2), expect(UInt8(ascii: ":")),
              let second = digits(2) else { return nil }
        guard (1...12).contains(month), (1...daysIn(month: month, year: year)).contains(day),
              hour < 24, minute < 60, second < 61 else { return nil }
        var micros = 0
        if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
            i += 1
            var n = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if n < 6 { micros = micros * 10 + Int(b[i] - 48) }
                n += 1
                i += 1
            }
            guard n > 0 else { return nil }
            for _ in n..<max(n, 6) { micros *= 10 }
        }
        var offset = 0
        guard i < b.count else { return nil }  // a zone is required: a bare local time is ambiguous
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = digits(2) else { return nil }
            _ = expect(UInt8(ascii: ":"))
            guard let om = digits(2), oh < 24, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let secs = days * 86400 + hour * 3600 + minute * 60 + min(second, 59) - offset
        return Micros(secs) * 1_000_000 + Micros(micros)
    }

    /// `2025-03-01T12:00:00.123Z` — milliseconds when the value has no finer part, else microseconds.
    public static func format(_ t: Micros) -> String {
        formatted(t) { String(decoding: $0, as: UTF8.self) }
    }

    /// `format(t)`'s UTF-8 bytes, valid inside `body` only; no string made for years 0–9999.
    /// (Not generic: a generic function called from another module runs unspecialised, which
    /// made this a third of a profile's rendering.)
    public static func withText(_ t: Micros, _ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        formatted(t, body)
    }

    /// The text in a stack buffer, written byte by byte by `write(_:to:)` (string interpolation
    /// and padding were most of a profile render); years outside 0–9999 by `slowFormat`.
    private static func formatted<R>(_ t: Micros, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxTextCount) { b in
            let n = write(t, to: b.baseAddress!)
            if n > 0 { return body(UnsafeBufferPointer(rebasing: b[0..<n])) }
            let (secs, frac) = split(t)
            let (y, m, d) = civilFromDays(Int(secs.days))
            var text = slowFormat(y, m, d, Int(secs.rem), Int(frac))
            return text.withUTF8(body)
        }
    }

    /// The most bytes `write(_:to:)` writes.
    public static let maxTextCount = 27

    /// Writes `format(t)`'s bytes at `out` (room for `maxTextCount`) and returns how many;
    /// 0, writing nothing, when the year is outside 0–9999 (`format` handles those).
    /// What a renderer writing into its own buffer calls: no closure, no copy.
    public static func write(_ t: Micros, to out: UnsafeMutablePointer<UInt8>) -> Int {
        // 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in microseconds.
        guard t >= -62_167_219_200_000_000, t < 253_402_300_800_000_000 else { return 0 }
        let (secs, frac) = split(t)
        let (y, m, d) = civilFromDays(Int(secs.days))
        let rem = Int(secs.rem)
        let b = UnsafeMutableBufferPointer(start: out, count: maxTextCount)
        putDate(y, m, d, into: b)
        b[10] = 84  // T
        putDigits(rem / 3600, into: b, at: 11, width: 2); b[13] = 58
        putDigits(rem % 3600 / 60, into: b, at: 14, width: 2); b[16] = 58
        putDigits(rem % 60, into: b, at: 17, width: 2); b[19] = 46
        if frac % 1000 == 0 {
            putDigits(Int(frac / 1000), into: b, at: 20, width: 3); b[23] = 90
            return 24
        }
        putDigits(Int(frac), into: b, at: 20, width: 6); b[26] = 90
        return 27
    }

    /// `t` as whole days since the epoch, the seconds into that day, and the microseconds
    /// into that second (each rounded towards the past).
    @inline(__always)
    private static func split(_ t: Micros) -> (secs: (days: Int64, rem: Int64), frac: Int64) {
        var secs = t / 1_000_000
        var frac = t % 1_000_000
        if frac < 0 { frac += 1_000_000; secs -= 1 }
        var days = secs / 86400
        var rem = secs % 86400
        if rem < 0 { rem += 86400; days -= 1 }
        return ((days, rem), frac)
    }

    /// `v` as `width` decimal digits (zero-padded) at `at`.
    private static func putDigits(_ v: Int, into b: UnsafeMutableBufferPointer<UInt8>, at: Int, width: Int) {
        var v = v
        for i in stride(from: at + width - 1, through: at, by: -1) { b[i] = UInt8(48 + v % 10); v /= 10 }
    }

    /// `YYYY-MM-DD` in the first 10 bytes.
    private static func putDate(_ y: Int, _ m: Int, _ d: Int, into b: UnsafeMutableBufferPointer<UInt8>) {
        putDigits(y, into: b, at: 0, width: 4); b[4] = 45
        putDigits(m, into: b, at: 5, width: 2); b[7] = 45
        putDigits(d, into: b, at: 8, width: 2)
    }

    /// Years outside 0…9999 (a negative or five-digit year).
    private static func slowFormat(_ y: Int, _ m: Int, _ d: Int, _ rem: Int, _ frac: Int) -> String {
        func pad(_ v: Int, _ w: Int) -> String {
            let s = String(v)
            return s.count >= w ? s : String(repeating: "0", count: w - s.count) + s
        }
        let time = "\(pad(rem / 3600, 2)):\(pad(rem % 3600 / 60, 2)):\(pad(rem % 60, 2))"
        let fraction = frac % 1000 == 0 ? pad(frac / 1000, 3) : pad(frac, 6)
        let year = y < 0 ? "-" + pad(-y, 4) : pad(y, 4)  // ISO 8601's expanded form: -0001
        return "\(year)-\(pad(m, 2))-\(pad(d, 2))T\(time).\(fraction)Z"
    }

    /// The UTC day of `t` as days since 1970-01-01.
    public static func day(_ t: Micros) -> Int {
        let secs = t >= 0 ? t / 1_000_000 : (t - 999_999) / 1_000_000
        return Int(secs >= 0 ? secs / 86400 : (secs - 86399) / 86400)
    }

    /// `YYYY-MM-DD` of a day number.
    public static func formatDay(_ day: Int) -> String {
        let (y, m, d) = civilFromDays(day)
        guard (0...9999).contains(y) else { return String(format(Micros(day) * 86_400_000_000).prefix(10)) }
        return String(unsafeUninitializedCapacity: 10) { b in
            putDate(y, m, d, into: b)
            return 10
        }
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    public static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
