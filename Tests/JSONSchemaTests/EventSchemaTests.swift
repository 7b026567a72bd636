import JSONCore
import JSONSchema
import Testing

/// The real schemas in Schemas/events against messages as real clients send them.
@Suite struct EventSchemas {
    /// The tree's failures, checked against the binary evaluation's yes or no.
    func failures(_ text: String) throws -> [ValidationFailure] {
        let message = try JSON.parse(text)
        let found = eventSchemas.validate(message)
        #expect(eventSchemas.isValid(binary: message.binary) == found.isEmpty, "binary and tree validation disagree on \(text)")
        #expect(eventSchemas.isValid(binary: message.unsizedBinary) == found.isEmpty, "validation of containers without their size disagrees on \(text)")
        #expect(eventSchemas.isValid(message) == found.isEmpty)
        return found
    }
    func messages(_ text: String) throws -> [String] { try failures(text).map(\.message) }

    @Test func theShippedFilesLoadAndLibrariesApplyToNothing() throws {
        #expect(eventSchemas.names.contains("message.schema.json"))
        #expect(eventSchemas.names.contains("ecommerce/product.schema.json"))
        #expect(eventSchemas.names.count >= 31)
        let product = try JSON.parse(#"{"type": "track", "event": "product", "userId": "u"}"#)
        #expect(eventSchemas.applicableSchemas(for: product).map(\.name) == ["message.schema.json", "track.schema.json"])
    }

    @Test func anOrderRunsTheCommonTheTrackAndTheOrderSchemas() throws {
        let m = try JSON.parse(#"{"type": "track", "event": "Order Completed"}"#)
        #expect(eventSchemas.applicableSchemas(for: m).map(\.name)
            == ["message.schema.json", "track.schema.json", "ecommerce/order_completed.schema.json"])
        let page = try JSON.parse(#"{"type": "page", "event": "Order Completed"}"#)
        #expect(eventSchemas.applicableSchemas(for: page).map(\.name) == ["message.schema.json", "page.schema.json"])
    }

    // MARK: What clients send

    @Test func acceptsAnalyticsPythonWithANullAnonymousIdAndOffsetTimestamps() throws {
        #expect(try messages(#"""
            {"type": "track", "event": "Order Completed", "userId": "u1", "anonymousId": null,
             "messageId": "4f6a5b1e-8c3d-4e0a-9b1f-2d7c6e5a4b3c",
             "timestamp": "2025-03-01T23:49:38.561324+00:00", "sentAt": "2025-03-01T23:49:39.002+00:00",
             "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
             "properties": {"order_id": "50314b8e", "total": 27.5, "revenue": 25, "currency": "USD",
                            "products": [{"product_id": "507f1f77", "sku": "45790-32", "name": "Monopoly", "price": 19, "quantity": 1}]},
             "integrations": {}}
            """#) == [])
    }

    @Test func acceptsRudderStackWithMicrosecondsTopLevelChannelAndContextTraits() throws {
        #expect(try messages(#"""
            {"type": "identify", "userId": "u1", "anonymousId": "8d872292-709c-4ce6-aa3b-4d1a5b2f7d39", "channel": "server",
             "rudderId": "b4b6f8d4", "messageId": "e5a3c6b0-4a7e-4b56-9c0e-7f0b2c0d1e9f",
             "originalTimestamp": "2025-03-01T23:49:38.561123Z", "sentAt": "2025-03-01T23:49:38.562456Z",
             "receivedAt": "2025-03-01T23:49:39.100000Z", "timestamp": "2025-03-01T23:49:38.598667Z",
             "context": {"traits": {"email": "jane@example.com", "plan": "pro"}, "library": {"name": "rudder-sdk-python", "version": "1.0.5"},
                         "externalIds": [{"id": "cus_123", "type": "stripe_customer_id"}]},
             "traits": {"email": "jane@example.com"}, "integrations": {"All": true}}
            """#) == [])
    }

    @Test func acceptsAnalyticsJsPagesAndNumericIds() throws {
        #expect(try messages(#"""
            {"type": "page", "name": "Home", "category": null, "anonymousId": "ajs-anon-1", "userId": 42,
             "properties": {"path": "/", "url": "https://shop.example/"}, "context": {"channel": "web", "page": {"path": "/"}},
             "messageId": "ajs-next-1740872978561-5e4b", "timestamp": "2025-03-01T23:49:38.561Z"}
            """#) == [])
    }

    @Test func acceptsNanosecondTimestampsAsAnalyticsGoSendsThem() throws {
        #expect(try messages(#"{"type": "screen", "name": "Cart", "userId": "u", "timestamp": "2025-03-01T23:49:38.561324123Z"}"#) == [])
    }

    @Test func acceptsEveryCallType() throws {
        for m in [
            #"{"type": "group", "userId": "u", "groupId": "g1", "traits": {"name": "Acme"}}"#,
            #"{"type": "alias", "userId": "u", "previousId": "anon-1"}"#,
            #"{"type": "screen", "anonymousId": "a", "name": "Home"}"#,
        ] {
            #expect(try messages(m) == [], "\(m)")
        }
    }

    // MARK: What is rejected

    @Test func aTrackWithoutEventIsRejectedNamingEvent() throws {
        let f = try failures(#"{"type": "track", "userId": "u1", "properties": {}}"#)
        #expect(f == [ValidationFailure(path: "event", message: #"event is required (track requires "event")"#,
                                        schema: "https://touchstone.dev/schemas/events/track.schema.json")])
        #expect(try messages(#"{"type": "track", "userId": "u1", "event": ""}"#) == ["event must not be empty"])
    }

    @Test func aMessageWithoutIdsIsRejected() throws {
        let expected = ["userId or anonymousId is required (a non-empty string or a number; alias needs userId and previousId instead)"]
        #expect(try messages(#"{"type": "page"}"#) == expected)
        #expect(try messages(#"{"type": "page", "userId": null, "anonymousId": ""}"#) == expected)
    }

    @Test func anAliasWithoutPreviousIdIsRejected() throws {
        let f = try failures(#"{"type": "alias", "userId": "u1"}"#)
        #expect(f.map(\.path) == ["previousId"])
        #expect(f.map(\.message) == [#"previousId is required (alias requires "previousId")"#])
    }

    @Test func aMessageIdOf101CharactersIsRejected() throws {
        let id = String(repeating: "x", count: 101)
        #expect(try messages(#"{"type": "page", "userId": "u", "messageId": "\#(id)"}"#) == ["messageId must be at most 100 characters, got 101"])
        #expect(try messages(#"{"type": "page", "userId": "u", "messageId": "\#(id.dropLast())"}"#) == [])
    }

    @Test func anOrderWithABadProductPriceNamesItsPath() throws {
        let f = try failures(#"""
            {"type": "track", "event": "Order Completed", "userId": "u",
             "properties": {"order_id": "o1", "total": "19.99", "products": [{"price": 1, "quantity": 1}, {"price": "abc"}]}}
            """#)
        #expect(f.map(\.path) == ["properties.products[1].price"])
        #expect(f.map(\.schema) == ["https://touchstone.dev/schemas/events/ecommerce/order_completed.schema.json"])
        #expect(f.map(\.message) == [#"properties.products[1].price must be a number of at least 0 or a non-negative numeric string such as "19.99", got "abc""#])
    }

    @Test func moneyFieldsAcceptNumericStringsButNotWords() throws {
        let base = #"{"type": "track", "event": "Order Completed", "userId": "u", "properties": {"order_id": "o1", "revenue": REVENUE}}"#
        #expect(try messages(base.replacingOccurrences(of: "REVENUE", with: #""25.00""#)) == [])
        #expect(try messages(base.replacingOccurrences(of: "REVENUE", with: "-5")) == [])
        #expect(try messages(base.replacingOccurrences(of: "REVENUE", with: #""25 USD""#))
            == [#"properties.revenue must be a number or a numeric string such as "19.99", got "25 USD""#])
        #expect(try messages(base.replacingOccurrences(of: "REVENUE", with: "true")).count == 1)
    }

    @Test func orderEventsNeedAnOrderId() throws {
        for event in ["Order Completed", "Order Refunded"] {
            #expect(try messages(#"{"type": "track", "event": "\#(event)", "userId": "u", "properties": {"total": 1}}"#)
                == [#"properties.order_id is required (\#(event) requires "order_id")"#])
            #expect(try messages(#"{"type": "track", "event": "\#(event)", "userId": "u"}"#)
                == [#"properties is required (\#(event) requires "properties")"#])
        }
    }

    @Test func commonFieldsAreChecked() throws {
        #expect(try messages(#"{"type": "pageview", "userId": "u"}"#)
            == [#"type must be one of "identify", "track", "page", "screen", "group", "alias", got "pageview""#])
        #expect(try messages(#"{"type": "page", "userId": "u", "timestamp": "01/03/2025"}"#)
            == [#"timestamp must be an ISO-8601 date-time such as 2025-03-01T12:00:00.000Z, got "01/03/2025""#])
        #expect(try messages(#"{"type": "page", "userId": "u", "context": {"channel": "tv"}}"#).first?.hasPrefix("context.channel must be one of") == true)
        #expect(try failures(#"{"type": "page", "userId": "u", "context": {"externalIds": [{"id": "1", "type": "x"}, {"id": "2"}]}}"#).map(\.path)
            == ["context.externalIds[1].type"])
        #expect(try messages(#"{"type": "page", "userId": "u", "properties": []}"#) == ["properties must be an object, got array"])
        #expect(try messages(#"{"userId": "u"}"#) == [#"type is required (every message requires "type")"#])
    }

    @Test func unknownTopLevelFieldsAreAllowed() throws {
        #expect(try messages(#"{"type": "track", "event": "X", "userId": "u", "myAppVersion": 3, "rudderId": "r"}"#) == [])
    }

    // MARK: E-commerce and lifecycle events

    @Test(arguments: [
        #"{"event": "Products Searched", "properties": {"query": "blue roses"}}"#,
        #"{"event": "Product List Viewed", "properties": {"list_id": "hot_deals_1", "category": "Deals", "products": [{"product_id": "507f", "sku": "45790-32", "name": "Monopoly", "price": 19, "position": 1, "category": "Games"}]}}"#,
        #"{"event": "Product Clicked", "properties": {"product_id": "507f", "sku": "G-32", "category": "Games", "name": "Monopoly", "brand": "Hasbro", "variant": "200 pieces", "price": 18.99, "quantity": 1, "coupon": "MAYDEALS", "position": 3, "url": "https://x/p", "image_url": "https://x/p.jpg"}}"#,
        #"{"event": "Product Viewed", "properties": {"product_id": "507f", "price": "18.99", "currency": "usd", "value": 18.99}}"#,
        #"{"event": "Product Added", "properties": {"cart_id": "skdjsidjsdkdj29j", "product_id": 507, "price": 18.99, "quantity": 2}}"#,
        #"{"event": "Product Removed", "properties": {"cart_id": "ksjdj92dj29dj92d2j", "product_id": "507f", "quantity": 1}}"#,
        #"{"event": "Cart Viewed", "properties": {"cart_id": "d92jd29jd92jd29j92d92jd", "products": [{"product_id": "507f", "price": 19, "quantity": 1}]}}"#,
        #"{"event": "Checkout Started", "properties": {"order_id": "50314b8e", "affiliation": "Google Store", "value": 30, "revenue": 25, "shipping": 3, "tax": 2, "discount": 2.5, "coupon": "hasbros", "currency": "USD", "products": []}}"#,
        #"{"event": "Checkout Step Completed", "properties": {"checkout_id": "50314b8e", "step": 2, "shipping_method": "Fedex", "payment_method": "Visa"}}"#,
        #"{"event": "Payment Info Entered", "properties": {"checkout_id": "39f39fj39f3jf93fj9fj39fj3f", "order_id": "dkfsjidfjsdifsdfksdjfkdsfjsdfkdsf", "step": 4}}"#,
        #"{"event": "Order Completed", "properties": {"checkout_id": "fksdjfsdjfisjf9sdfjsd9f", "order_id": "50314b8e", "affiliation": "Google Store", "total": 27.5, "subtotal": 22.5, "revenue": 25, "shipping": 3, "tax": 2, "discount": 2.5, "coupon": "hasbros", "currency": "USD", "products": [{"product_id": "507f", "sku": "45790-32", "name": "Monopoly", "price": 19, "quantity": 1, "category": "Games"}, {"product_id": "505b", "sku": "46493-32", "name": "Uno", "price": "3", "quantity": 2}]}}"#,
        #"{"event": "Order Updated", "properties": {"order_id": "50314b8e", "total": 27.5}}"#,
        #"{"event": "Order Refunded", "properties": {"order_id": "50314b8e", "total": 30, "currency": "USD", "products": [{"product_id": "507f", "price": 19, "quantity": 1}]}}"#,
        #"{"event": "Order Cancelled", "properties": {"order_id": "50314b8e", "total": 30}}"#,
        #"{"event": "Coupon Applied", "properties": {"order_id": "50314b8e", "cart_id": "923923929jd29jd92dj9j93fj3", "coupon_id": "may_deals_2016", "coupon_name": "May Deals 2016", "discount": 23.32}}"#,
        #"{"event": "Promotion Viewed", "properties": {"promotion_id": "promo_1", "creative": "top_banner_2", "name": "75% store-wide shoe sale", "position": "home_banner_top"}}"#,
        #"{"event": "Promotion Clicked", "properties": {"promotion_id": "promo_1", "position": 1}}"#,
        #"{"event": "Product Added to Wishlist", "properties": {"wishlist_id": "skdjsidjsdkdj29j", "wishlist_name": "Loved Games", "product_id": "507f", "price": 18.99}}"#,
        #"{"event": "Consent Updated", "properties": {"purposes": {"email_marketing": true, "analytics": false}}}"#,
        #"{"event": "Survey Responded", "properties": {"survey": "nps", "score": 9}}"#,
        #"{"event": "Survey Responded", "properties": {"survey": "csat", "score": 4.5}}"#,
        #"{"event": "Loyalty Points Earned", "properties": {"points": 120}}"#,
        #"{"event": "Loyalty Points Redeemed", "properties": {"points": 50}}"#,
        #"{"event": "Marketing Spend", "properties": {"channel": "ads", "amount": "1200.50", "currency": "EUR"}}"#,
    ])
    func acceptsTheSpecExamples(_ event: String) throws {
        var m = try JSON.parse(event)
        m["type"] = "track"
        m["userId"] = "u1"
        #expect(eventSchemas.validate(m).map(\.message) == [])
        #expect(eventSchemas.applicableSchemas(for: m).count == 3)
    }

    @Test(arguments: [
        (#"{"event": "Product Added", "properties": {"quantity": 0}}"#, "properties.quantity must be at least 1, got 0"),
        (#"{"event": "Product Added", "properties": {"quantity": 1.5}}"#, "properties.quantity must be an integer, got 1.5"),
        (#"{"event": "Product Viewed", "properties": {"currency": "dollars"}}"#, #"properties.currency must match ^[A-Za-z]{3}$, got "dollars""#),
        (#"{"event": "Cart Viewed", "properties": {"products": {"product_id": "1"}}}"#, "properties.products must be an array, got object"),
        (#"{"event": "Consent Updated", "properties": {"purposes": {"email_marketing": "yes"}}}"#, "properties.purposes.email_marketing must be a boolean, got string"),
        (#"{"event": "Survey Responded", "properties": {"survey": "nps", "score": 11}}"#, "properties.score must be at most 10, got 11"),
        (#"{"event": "Survey Responded", "properties": {"survey": "csat", "score": 0}}"#, "properties.score must be at least 1, got 0"),
        (#"{"event": "Survey Responded", "properties": {"survey": "ces", "score": 3}}"#, #"properties.survey must be one of "nps", "csat", got "ces""#),
        (#"{"event": "Loyalty Points Earned", "properties": {}}"#, #"properties.points is required (Loyalty Points Earned requires "points")"#),
        (#"{"event": "Marketing Spend", "properties": {"channel": "ads", "amount": -3}}"#, #"properties.amount must be a number of at least 0 or a non-negative numeric string such as "19.99", got -3"#),
    ])
    func rejectsWhatTheSpecForbids(_ event: String, _ expected: String) throws {
        var m = try JSON.parse(event)
        m["type"] = "track"
        m["userId"] = "u1"
        #expect(eventSchemas.validate(m).map(\.message) == [expected])
    }
}

@Suite struct Sharing {
    @Test func oneRegistryValidatesFromManyThreadsAlike() async throws {
        let messages = try [
            #"{"type": "track", "event": "Order Completed", "userId": "u", "properties": {"order_id": "o", "products": [{"price": "abc"}]}}"#,
            #"{"type": "page", "anonymousId": "a", "name": "Home"}"#,
            #"{"type": "alias", "userId": "u"}"#,
        ].map { try JSON.parse($0) }
        let expected = messages.map { eventSchemas.validate($0) }
        let results = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    (0..<500).allSatisfy { i in eventSchemas.validate(messages[i % 3]) == expected[i % 3] }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == [true, true, true, true])
    }
}
