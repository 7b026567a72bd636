/// The `format` values that are asserted (every other value is refused at load, so a
/// tracking plan never believes an unchecked format is checked).
enum Format: String, CaseIterable {
    /// RFC 3339 / ISO-8601 as clients send it: `2025-03-01T12:00:00Z`, `…:00.123+00:00`,
    /// `…:00.123456Z`. `T`, `t` or a space between date and time; a zone is required (`Z`,
    /// `±hh:mm` or `±hhmm`); fractional seconds of 1–9 digits (analytics-go sends
    /// nanoseconds, .NET seven digits; the log keeps microseconds).
    case dateTime = "date-time"
    /// `2025-03-01`.
    case date = "date"

    var example: String {
        switch self {
        case .dateTime: return "an ISO-8601 date-time such as 2025-03-01T12:00:00.000Z"
        case .date: return "a date such as 2025-03-01"
        }
    }

    @inline(__always)
    func matches(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { b in
            switch self {
            case .dateTime: return Format.isDateTime(b)
            case .date: return b.count == 10 && Format.date(b) == 10
            }
        }
    }

    /// The length of a valid `YYYY-MM-DD` at the start of `b` (10), or 0.
    @inline(__always)
    static func date(_ b: UnsafeBufferPointer<UInt8>) -> Int {
        guard b.count >= 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
              let year = digits(b, 0, 4), let month = digits(b, 5, 2), let day = digits(b, 8, 2),
              month >= 1, month <= 12, day >= 1, day <= daysIn(month: month, year: year)
        else { return 0 }
        return 10
    }

    static func isDateTime(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard date(b) == 10, b.count >= 20 else { return false }
        let sep = b[10]
        guard sep == UInt8(ascii: "T") || sep == UInt8(ascii: "t") || sep == UInt8(ascii: " "),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let hour = digits(b, 11, 2), let minute = digits(b, 14, 2), let second = digits(b, 17, 2),
              hour < 24, minute < 60, second <= 60
        else { return false }
        var i = 19
        if b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
            i += 1
            let start = i
            while i < b.count, b[i] &- 48 < 10 { i += 1 }
            guard i > start, i - start <= 9 else { return false }
        }
        guard i < b.count else { return false }
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            return i + 1 == b.count
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            i += 1
            guard let oh = digits(b, i, 2), oh < 24 else { return false }
            i += 2
            if i < b.count, b[i] == UInt8(ascii: ":") { i += 1 }
            guard let om = digits(b, i, 2), om < 60 else { return false }
            return i + 2 == b.count
        default:
            return false
        }
    }

    @inline(__always)
    private static func digits(_ b: UnsafeBufferPointer<UInt8>, _ at: Int, _ n: Int) -> Int? {
        guard at + n <= b.count else { return nil }
        var v = 0
        for k in at..<(at + n) {
            let d = b[k] &- 48
            guard d < 10 else { return nil }
            v = v * 10 + Int(d)
        }
        return v
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
