import EventLog
import Foundation
import JSONCore
import Projections
import Testing

@Suite struct PrivacyTests {
    static let customerA = [
        #"{"type":"page","anonymousId":"anon-a","name":"Home"}"#,
        #"{"type":"identify","anonymousId":"anon-a","userId":"ua","traits":{"email":"ana@example.com","phone":"+1 415 555 0101"}}"#,
        #"{"type":"track","userId":"ua","event":"Order Completed","properties":{"order_id":"oa1","revenue":40}}"#,
        #"{"type":"track","anonymousId":"phone-a","event":"Product Viewed","context":{"traits":{"email":"ANA@example.com"},"device":{"id":"dev-a"}}}"#,
    ]
    static let customerB = [
        #"{"type":"identify","userId":"ub","traits":{"email":"bo@example.com"}}"#,
        #"{"type":"track","userId":"ub","event":"Order Completed","properties":{"order_id":"ob1","revenue":15}}"#,
    ]

    @Test func consentFoldsByEventTimeFromEventsAndContext() throws {
        let s = try Scratch()
        try s.append([
            #"{"type":"track","userId":"u1","event":"Consent Updated","properties":{"purposes":{"email_marketing":true,"analytics":true}},"timestamp":"2025-05-01T00:00:00Z"}"#,
            // Late: an older decision arrives after the newer one and must not win.
            #"{"type":"track","userId":"u1","event":"Consent Updated","properties":{"purposes":{"email_marketing":false}},"timestamp":"2025-04-01T00:00:00Z"}"#,
            // Segment's consent object on any call.
            #"{"type":"page","userId":"u1","name":"Home","context":{"consent":{"categoryPreferences":{"analytics":false,"personalization":true}}},"timestamp":"2025-06-01T00:00:00Z"}"#,
        ])
        let v = try s.views()
        let consent = try #require(try v.profile("user_id:u1")?["computed"]?["consent"])
        #expect(consent["email_marketing"]?["granted"]?.boolValue == true)
        #expect(consent["analytics"]?["granted"]?.boolValue == false)
        #expect(consent["personalization"]?["granted"]?.boolValue == true)
        #expect(consent["analytics"]?["time"]?.stringValue?.hasPrefix("2025-06-01") == true)
    }

    @Test func erasureHidesTheProfileAtOnceAndReplayDoesNotResurrectIt() throws {
        let s = try Scratch()
        try s.append(Self.customerA + Self.customerB)
        let v = try s.views()
        let pa = try #require(try v.pid("user_id:ua"))
        let before = try #require(try v.profiles.timeline(id("user_id:ua"), limit: 100))
        #expect(before.count == 4)
        let paID = try #require(UInt64(pa.dropFirst()))
        #expect(try v.segments.segments(ofProfile: paID).contains("new_customers"))
        let r = try #require(try v.erase(id("email:ana@example.com"), actor: "test"))
        #expect(r.profileID == pa)
        #expect(r.identifiers == 6)  // user_id, 2 anonymous ids, email, phone, device
        try v.catchUp()
        for ident in ["user_id:ua", "email:ana@example.com", "anonymous_id:phone-a", "device_id:dev-a", "phone:+14155550101", "profile_id:" + pa] {
            #expect(try v.profile(ident) == nil, "\(ident) still resolves")
        }
        #expect(try v.profiles.timeline(id("user_id:ua"), limit: 10) == nil)
        #expect(try v.profiles.explain(id("user_id:ua")) == nil)
        #expect(try v.profile("user_id:ub")?["computed"]?["order_count"]?.intValue == 1)
        #expect(try v.profiles.count() == 1)
        #expect(try v.segments.segments(ofProfile: paID).isEmpty)
        #expect(try !v.segments.allMembers("new_customers").contains(paID))
        // The erasure event holds hashes only.
        let erasure = try #require(try s.log.event(seq: r.seq))
        #expect(erasure.type == .system)
        let text = String(decoding: erasure.body.jsonBytes(), as: UTF8.self)
        for secret in ["ana@", "ua\"", "anon-a", "phone-a", "dev-a", "4155550101"] { #expect(!text.contains(secret), "\(secret) in the erasure event") }
        // A rebuild from the log meets the erasure again: same views, byte for byte.
        let store = ViewStore(dataDirectory: s.dir)
        let g = try store.open("rebuilt", set: ProjectionSet())
        try ProjectionRunner(log: s.log, generation: g).catchUp()
        #expect(try g.digest(ProfileProjection.projectionName) == (try v.generation.digest(ProfileProjection.projectionName)))
        #expect(try ProfileReader(g).profile(id("email:ana@example.com")) == nil)
    }

    @Test func anErasedCustomersNewEventsAreSuppressedUntilLifted() throws {
        let s = try Scratch()
        try s.append(Self.customerA + Self.customerB)
        let v = try s.views()
        _ = try #require(try v.erase(id("user_id:ua"), actor: "test"))
        let file = s.dir + "/later.ndjson"
        try """
        {"type":"track","userId":"ub","event":"Product Viewed"}
        {"type":"track","anonymousId":"new-device","event":"Product Viewed","context":{"traits":{"email":" Ana@Example.com "}}}
        {"type":"alias","userId":"someone-new","previousId":"anon-a"}
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let summary = try Importer(log: s.log, builder: s.builder, source: SourceContext(name: "import", channel: "server")).run(try LineReader(path: file))
        #expect(summary.appended == 1)
        #expect(summary.rejected == 2)
        let letters = try s.log.deadLetters()
        #expect(letters.map(\.code) == ["suppressed", "suppressed"])
        try v.catchUp()
        #expect(try v.profile("email:ana@example.com") == nil)
        // Lifted: the customer may come back.
        #expect(try s.log.liftSuppression(id("email:ana@example.com"), actor: "test", time: 1))
        #expect(try !s.log.liftSuppression(id("email:ana@example.com"), actor: "test", time: 2))
        #expect(try s.log.suppressionSnapshot().contains(id("user_id:ua")))
        #expect(try !s.log.suppressionSnapshot().contains(id("email:ana@example.com")))
        #expect(try s.log.auditEntries().map(\.action) == ["erase", "suppression-lift"])
    }

    @Test func theSubjectExportHoldsExactlyThatCustomersEventsAndConsent() throws {
        let s = try Scratch()
        try s.append(Self.customerA + Self.customerB + [
            #"{"type":"track","userId":"ua","event":"Consent Updated","properties":{"purposes":{"email_marketing":false}}}"#,
        ])
        let v = try s.views()
        let doc = try #require(try v.subjectExport(id("phone:+1 (415) 555-0101"), actor: "key:ops"))
        let seqs = doc["events"]?.arrayValue?.compactMap { $0["seq"]?.intValue } ?? []
        #expect(seqs == [1, 2, 3, 4, 7])
        #expect(doc["consent_history"]?.arrayValue?.count == 1)
        #expect(doc["consent_history"]?[0]?["purposes"]?["email_marketing"] == .bool(false))
        #expect(doc["profile"]?["computed"]?["consent"]?["email_marketing"]?["granted"] == .bool(false))
        #expect(!String(decoding: doc.jsonBytes(), as: UTF8.self).contains("bo@example.com"))
        let audit = try s.log.auditEntries()
        #expect(audit.count == 1)
        #expect(audit.first?.action == "export-subject")
        #expect(audit.first?.actor == "key:ops")
        #expect(try v.subjectExport(id("email:nobody@example.com"), actor: "x") == nil)
    }
}
