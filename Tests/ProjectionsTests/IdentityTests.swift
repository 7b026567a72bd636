import EventLog
import Foundation
import JSONCore
import Projections
import Testing

@Suite struct IdentityTests {
    @Test func anonymousBrowsingThenSignUpStitchesIntoOneProfile() throws {
        let s = try Scratch()
        try s.append([
            #"{"type":"page","anonymousId":"a1","name":"Home"}"#,
            #"{"type":"track","anonymousId":"a1","event":"Product Viewed","properties":{"product_id":"p1","category":"shoes"}}"#,
            #"{"type":"identify","anonymousId":"a1","userId":"u1","traits":{"email":" Jane@Example.com ","first_name":"Jane"}}"#,
            #"{"type":"track","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":50.5}}"#,
        ])
        let v = try s.views()
        let p = try #require(try v.profile("anonymous_id:a1"))
        #expect(try v.pid("user_id:u1") == p["profile_id"]?.stringValue)
        #expect(try v.pid("email:jane@example.com") == p["profile_id"]?.stringValue)
        #expect(p["computed"]?["event_count"]?.intValue == 4)
        #expect(p["computed"]?["order_count"]?.intValue == 1)
        #expect(p["computed"]?["total_revenue"]?.doubleValue == 50.5)
        #expect(p["computed"]?["favorite_category"]?.stringValue == "shoes")
        #expect(p["traits"]?["first_name"]?.stringValue == "Jane")
        #expect(p["identifiers"]?["email"]?[0]?.stringValue == "jane@example.com")
        #expect(try v.profiles.count() == 1)
    }

    @Test func webAppEmailAndPOSOfOnePersonBecomeOneProfile() throws {
        let s = try Scratch()
        try s.append([#"{"type":"identify","anonymousId":"web-1","userId":"u7","traits":{"email":"sam@example.com","phone":"+1 (415) 555-0100"}}"#], channel: "web")
        try s.append([#"{"type":"screen","userId":"u7","name":"Home","context":{"device":{"id":"iphone-7"}}}"#], channel: "mobile")
        try s.append([#"{"type":"track","anonymousId":"esp-9","event":"Email Opened","context":{"traits":{"email":"SAM@example.com"}}}"#], channel: "email")
        try s.append([#"{"type":"track","anonymousId":"pos-x","event":"Order Completed","properties":{"order_id":"o9","total":20},"context":{"traits":{"phone":"+14155550100"},"externalIds":[{"id":"L1","type":"loyalty_id","collection":"users","encoding":"none"}]}}"#], channel: "pos")
        try s.append([#"{"type":"track","anonymousId":"pos-y","event":"Loyalty Points Earned","properties":{"points":20},"context":{"externalIds":[{"id":"L1","type":"loyalty_id","collection":"users","encoding":"none"}]}}"#], channel: "pos")
        let v = try s.views()
        #expect(try v.profiles.count() == 1)
        let p = try #require(try v.profile("loyalty_id:L1"))
        #expect(p["computed"]?["channels"] == ["email": 1, "mobile": 1, "pos": 2, "web": 1])
        #expect(p["computed"]?["loyalty_points"]?.intValue == 20)
        #expect(p["identifiers"]?["phone"] == ["+14155550100"])
        #expect(p["identifiers"]?["anonymous_id"]?.arrayValue?.count == 4)
        #expect(try v.pid("device_id:iphone-7") == p["profile_id"]?.stringValue)
    }

    @Test func theSharedTabletsCustomersStayApart() throws {
        let s = try Scratch()
        var events: [String] = []
        for i in 1...5 {
            events.append(#"{"type":"track","userId":"shopper\#(i)","event":"Order Completed","properties":{"order_id":"t\#(i)","total":10},"context":{"device":{"id":"pos-tablet-01"}}}"#)
        }
        try s.append(events, channel: "pos")
        let v = try s.views()
        #expect(try v.profiles.count() == 5)
        for i in 1...5 {
            let p = try #require(try v.profile("user_id:shopper\(i)"))
            #expect(p["computed"]?["order_count"]?.intValue == 1)
            #expect(p["identifiers"]?["user_id"] == [.string("shopper\(i)")])
        }
        // The tablet stays with its first customer; the drops are explained.
        #expect(try v.pid("device_id:pos-tablet-01") == (try v.pid("user_id:shopper1")))
        let explain = try #require(try v.profiles.explain(id("user_id:shopper2")))
        let dropped = explain["steps"]?.arrayValue?.flatMap { $0["dropped"]?.arrayValue ?? [] } ?? []
        #expect(dropped.contains { $0["identifier"]?.stringValue == "device_id:pos-tablet-01" && ($0["reason"]?.stringValue ?? "").contains("user_id") })
    }

    @Test func junkIdentifiersAreIgnored() throws {
        let s = try Scratch()
        try s.append([
            #"{"type":"track","userId":"null","anonymousId":"a1","event":"Product Viewed"}"#,
            #"{"type":"track","userId":"undefined","anonymousId":"a2","event":"Product Viewed"}"#,
            #"{"type":"track","userId":"0000","anonymousId":"a3","event":"Product Viewed"}"#,
            #"{"type":"identify","userId":"u1","traits":{"email":"test@test.com"}}"#,
            #"{"type":"identify","userId":"u2","traits":{"email":"TEST@test.com"}}"#,
            #"{"type":"track","userId":"-1","anonymousId":"NaN","event":"Product Viewed"}"#,
        ])
        let v = try s.views()
        #expect(try v.profiles.count() == 5)
        #expect(try v.pid("user_id:null") == nil)
        #expect(try v.pid("email:test@test.com") == nil)
        #expect(try v.pid("user_id:u1") != (try v.pid("user_id:u2")))
        // An event with nothing usable is recorded as a failure, not folded into anyone.
        let failures = try v.generation.failures()
        #expect(failures.count == 1)
        #expect(failures.first?.error.contains("no usable identifier") == true)
    }

    @Test func aliasLinksPreviousIdToTheUser() throws {
        let s = try Scratch()
        try s.append([
            #"{"type":"page","anonymousId":"anon-5","name":"Home"}"#,
            #"{"type":"identify","userId":"u5","traits":{"plan":"pro"}}"#,
            #"{"type":"alias","userId":"u5","previousId":"anon-5"}"#,
            #"{"type":"alias","userId":"u5-new","previousId":"u5"}"#,
        ])
        let v = try s.views()
        // The second alias would give one profile two user ids (limit 1): u5-new is dropped.
        #expect(try v.pid("anonymous_id:anon-5") == (try v.pid("user_id:u5")))
        #expect(try v.profiles.count() == 1)
        #expect(try v.pid("user_id:u5-new") == nil)
        #expect(try v.profile("user_id:u5")?["computed"]?["event_count"]?.intValue == 4)
    }

    @Test func twoProfilesMergeWithTheirHistoryAndTheOldIdResolves() throws {
        let s = try Scratch()
        try s.append([
            #"{"type":"page","anonymousId":"laptop","name":"Home"}"#,
            #"{"type":"track","anonymousId":"phone","event":"Order Completed","properties":{"order_id":"o1","revenue":10}}"#,
            #"{"type":"identify","anonymousId":"laptop","userId":"u1","traits":{"email":"kim@example.com"}}"#,
        ])
        let v = try s.views()
        let phoneProfile = try #require(try v.pid("anonymous_id:phone"))
        #expect(try v.profiles.count() == 2)
        try s.append([#"{"type":"track","anonymousId":"phone","userId":"u1","event":"Product Viewed"}"#])
        try v.catchUp()
        #expect(try v.profiles.count() == 1)
        let merged = try #require(try v.profile("anonymous_id:phone"))
        #expect(merged["computed"]?["event_count"]?.intValue == 4)
        #expect(merged["computed"]?["order_count"]?.intValue == 1)
        #expect(merged["merged_ids"] == [.string(phoneProfile)])
        // The merged-away id resolves to the survivor; the timeline holds both histories.
        #expect(try v.profile("profile_id:" + phoneProfile)?["profile_id"] == merged["profile_id"])
        #expect(try v.profiles.timeline(id("user_id:u1"), limit: 10) == [4, 3, 2, 1])
        #expect(try v.profiles.timeline(id("user_id:u1"), before: 3, limit: 1) == [2])
    }

    @Test func lateEventsDoNotOverwriteNewerTraits() throws {
        let s = try Scratch()
        try s.append([
            #"{"type":"identify","userId":"u1","traits":{"plan":"pro","city":"Oslo"},"timestamp":"2025-05-01T00:00:00Z"}"#,
            #"{"type":"identify","userId":"u1","traits":{"plan":"trial"},"timestamp":"2025-04-01T00:00:00Z"}"#,
            #"{"type":"identify","userId":"u1","traits":{"city":"Bergen"},"timestamp":"2025-06-01T00:00:00.123456Z"}"#,
            #"{"type":"track","userId":"u1","event":"Survey Responded","properties":{"survey":"nps","score":9},"timestamp":"2025-06-02T00:00:00Z"}"#,
            #"{"type":"track","userId":"u1","event":"Survey Responded","properties":{"survey":"nps","score":3},"timestamp":"2025-01-02T00:00:00Z"}"#,
            #"{"type":"track","userId":"u1","event":"Consent Updated","properties":{"purposes":{"email_marketing":false}},"timestamp":"2025-06-03T00:00:00Z"}"#,
            #"{"type":"track","userId":"u1","event":"Consent Updated","properties":{"purposes":{"email_marketing":true,"analytics":true}},"timestamp":"2025-02-03T00:00:00Z"}"#,
        ])
        let v = try s.views()
        let p = try #require(try v.profile("user_id:u1"))
        #expect(p["traits"]?["plan"]?.stringValue == "pro")
        #expect(p["traits"]?["city"]?.stringValue == "Bergen")
        #expect(p["trait_sources"]?["city"]?["time"]?.stringValue == "2025-06-01T00:00:00.123456Z")
        #expect(p["computed"]?["nps"]?.intValue == 9)
        #expect(p["computed"]?["consent"]?["email_marketing"]?["granted"]?.boolValue == false)
        #expect(p["computed"]?["consent"]?["analytics"]?["granted"]?.boolValue == true)
        #expect(p["computed"]?["first_seen"]?.stringValue == "2025-01-02T00:00:00.000Z" || p["computed"]?["first_seen"]?.stringValue == "2025-01-02T00:00:00Z")
    }

    @Test func duplicatesNeverCountTwice() throws {
        let s = try Scratch()
        let order = #"{"type":"track","messageId":"m-1","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":30}}"#
        try s.append([order, order])
        // The same order again under another messageId (a client re-sending it) counts once too.
        try s.append([#"{"type":"track","messageId":"m-2","userId":"u1","event":"Order Completed","properties":{"order_id":"o1","revenue":30}}"#,
                      #"{"type":"track","userId":"u1","event":"Checkout Started","properties":{}}"#])
        let v = try s.views()
        let p = try #require(try v.profile("user_id:u1"))
        #expect(p["computed"]?["order_count"]?.intValue == 1)
        #expect(p["computed"]?["total_revenue"]?.doubleValue == 30)
        #expect(p["computed"]?["event_count"]?.intValue == 3)
        #expect(p["computed"]?["open_checkout"]?.boolValue == true)
    }

    @Test func rulesComeFromConfigurationAndAreChecked() throws {
        let rules = try IdentityRules(json: try JSON.parse(Array(#"{"types":{"email":{"limit":1,"blocked":["info@shop.com"]}},"blockedPatterns":["^guest-"]}"#.utf8)))
        #expect(rules.types["email"]?.limit == 1)
        #expect(throws: RulesError.self) { try IdentityRules(json: try JSON.parse(Array(#"{"limits":{}}"#.utf8))) }
        #expect(throws: RulesError.self) { try IdentityRules(json: try JSON.parse(Array(#"{"blockedPatterns":["("]}"#.utf8))) }
        let s = try Scratch()
        try s.append([
            #"{"type":"identify","anonymousId":"guest-17","userId":"u1","traits":{"email":"a@x.com"}}"#,
            #"{"type":"identify","userId":"u1","traits":{"email":"b@x.com"}}"#,
            #"{"type":"identify","userId":"u2","traits":{"email":"info@shop.com"}}"#,
        ])
        let v = try s.views(ProjectionSet(rules: rules))
        #expect(try v.pid("anonymous_id:guest-17") == nil)
        #expect(try v.pid("email:b@x.com") == nil)          // a second email breaks the limit of 1
        #expect(try v.pid("email:info@shop.com") == nil)
        #expect(try v.profile("user_id:u1")?["computed"]?["event_count"]?.intValue == 2)
    }
}
