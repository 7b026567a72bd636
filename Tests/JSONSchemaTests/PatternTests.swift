import Foundation
import JSONCore
@testable import JSONSchema
import Testing

@Suite struct Patterns {
    static let patterns = [
        "^[A-Za-z]{3}$", "^-?[0-9]+(\\.[0-9]+)?$", "[0-9]+", "^SKU-\\d{2,4}$", "^(web|pos|ads)$", "a|b|", "^a*$", "^(?:ab)+c?$",
        "x.z", "^[^0-9\\s]+$", "\\w+@\\w+\\.com", "^$", "", "^[-a-c]{0,2}$", "^\\(\\d\\)[.]\\\\$", "ab{2,}c", "^(a|ab)(c|bcd)$",
    ]
    static let subjects = [
        "", "a", "ab", "abc", "USD", "usd", "US1", "USDX", "19.99", "-3", "19.", ".5", "1e3", "SKU-12", "SKU-12345", "sku-12",
        "web", "webb", "pos", "aaaa", "ababc", "abab", "xyz", "x\nz", "hello world", "jane@shop.com", "jane@shop.org", "(1).\\",
        "abbc", "abbbbc", "abc", "abcd", "ac", "-", "b-", "abx", "  ",
    ]

    @Test func theFastMatcherAgreesWithNSRegularExpression() throws {
        for source in Patterns.patterns {
            let pattern = try Pattern(source)
            #expect(pattern.isFast, "\(source) should take the fast path")
            let regex = try NSRegularExpression(pattern: source.isEmpty ? "(?:)" : source)
            for s in Patterns.subjects {
                let expected = regex.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
                #expect(pattern.matches(s) == expected, "\(source) on \(s.debugDescription)")
            }
        }
    }

    @Test(arguments: ["(a)\\1", "(?=a)b", "\\bword", "(?i)abc", "[[a-z]]", "\\p{L}+", "é+", "a*+", "\\x41"])
    func patternsOutsideTheSubsetUseNSRegularExpression(_ source: String) throws {
        let pattern = try Pattern(source)
        #expect(!pattern.isFast)
    }

    @Test func nonASCIISubjectsFallBackToNSRegularExpression() throws {
        let pattern = try Pattern("^.{3}$")
        #expect(pattern.isFast)
        #expect(pattern.matches("abc"))
        #expect(pattern.matches("éèê"))
        #expect(!pattern.matches("éè"))
    }
}

@Suite struct DateTimes {
    @Test(arguments: [
        "2025-03-01T12:00:00Z", "2025-03-01T12:00:00.123Z", "2025-03-01T12:00:00.123456Z", "2025-03-01T12:00:00.561+00:00",
        "2025-03-01T14:00:00+02:00", "2025-03-01T07:00:00.000-05:00", "2025-03-01T07:00:00-0500", "2024-02-29T23:59:60Z",
        "2025-03-01t12:00:00z", "2025-03-01 12:00:00Z", "2025-03-01T12:00:00.123456789Z",
    ])
    func acceptsWhatClientsSend(_ text: String) {
        #expect(Format.dateTime.matches(text))
    }

    @Test(arguments: [
        "2025-03-01", "2025-03-01T12:00:00", "2025-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2025-13-01T00:00:00Z",
        "2025-03-01T24:00:00Z", "2025-03-01T12:60:00Z", "2025-03-01T12:00:00.Z", "2025-03-01T12:00:00.1234567890Z",
        "2025-03-01T12:00:00+2:00", "2025-03-01T12:00:00+02:0", "2025-03-01T12:00:00Z ", "yesterday", "",
        "２０２５-03-01T12:00:00Z", "2025-03-01T12:00Z",
    ])
    func rejectsWhatIsNotADateTime(_ text: String) {
        #expect(!Format.dateTime.matches(text))
    }
}
