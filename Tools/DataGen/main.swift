// touchstone-datagen: deterministic, realistic omnichannel e-commerce history as NDJSON
// Segment messages, plus the truth (customers, orders, revenue) for tests and benchmarks.
// See Tools/DataGen/README.md. Foundation only; never the wall clock or system randomness.

import Foundation

struct Options {
    var customers = 1000
    var seed: UInt64 = 1
    var out = "-"
    var truth: String?
    var days = 365
    var start = "2025-01-01"

    static func parse(_ args: [String]) -> Options {
        var o = Options()
        var i = 0
        func value() -> String {
            guard i + 1 < args.count else { usage("\(args[i]) needs a value") }
            i += 1
            return args[i]
        }
        while i < args.count {
            switch args[i] {
            case "--customers": guard let n = Int(value()), n > 0 else { usage("--customers takes a positive number") }; o.customers = n
            case "--seed": guard let n = UInt64(value()) else { usage("--seed takes a number") }; o.seed = n
            case "--out": o.out = value()
            case "--truth": o.truth = value()
            case "--days": guard let n = Int(value()), n > 0 else { usage("--days takes a positive number") }; o.days = n
            case "--start":
                let s = value()
                guard s.count == 10, civil(s) != nil else { usage("--start takes a date YYYY-MM-DD") }
                o.start = s
            case "-h", "--help": usage(nil)
            default: usage("unknown flag \(args[i])")
            }
            i += 1
        }
        if o.truth == nil, o.out != "-" { o.truth = o.out + ".truth.json" }
        return o
    }
}

func usage(_ error: String?) -> Never {
    let text = """
    usage: touchstone-datagen --customers N [--seed S] [--out FILE] [--truth FILE] [--days D] [--start YYYY-MM-DD]
    Writes NDJSON Segment messages (to stdout by default) and, beside FILE, FILE.truth.json.
    """
    if let error { FileHandle.standardError.write(Data("touchstone-datagen: \(error)\n\(text)\n".utf8)); exit(2) }
    print(text)
    exit(0)
}

/// Days since 1970-01-01 of YYYY-MM-DD.
func civil(_ s: String) -> Int? {
    let p = s.split(separator: "-").compactMap { Int($0) }
    guard p.count == 3, (1...12).contains(p[1]), (1...31).contains(p[2]) else { return nil }
    let (y0, m, d) = (p[0], p[1], p[2])
    let y = m <= 2 ? y0 - 1 : y0
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468
}

/// SplitMix64: small, fast, and the same sequence on every machine.
struct Rng {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ a: [T]) -> T { a[int(a.count)] }
    mutating func uuid() -> String {
        let a = next(), b = next()
        let h = String(a, radix: 16).leftPad(16) + String(b, radix: 16).leftPad(16)
        let c = Array(h)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-4" + String(c[13..<16]) + "-a" + String(c[17..<20]) + "-" + String(c[20..<32])
    }
}

extension String {
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// ISO-8601 in the three styles real clients use.
func iso(_ micros: Int64, style: Int) -> String {
    let secs = Int(micros / 1_000_000), frac = Int(micros % 1_000_000)
    let days = secs / 86400, rem = secs % 86400
    let z = days + 719468
    let era = (z >= 0 ? z : z - 146096) / 146097
    let doe = z - era * 146097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
    let base = "\(y)-\(String(m).leftPad(2))-\(String(d).leftPad(2))T\(String(rem / 3600).leftPad(2)):\(String(rem % 3600 / 60).leftPad(2)):\(String(rem % 60).leftPad(2))"
    switch style {
    case 0: return base + "." + String(frac / 1000).leftPad(3) + "Z"                 // JS / most SDKs
    case 1: return base + "." + String(frac / 1000).leftPad(3) + "+00:00"            // analytics-python
    default: return base + "." + String(frac).leftPad(6) + "Z"                       // RudderStack
    }
}

/// A JSON object written by hand, keys in a fixed order.
struct Obj {
    var parts: [String] = []
    mutating func s(_ k: String, _ v: String?) { parts.append("\"\(k)\":" + (v.map(quote) ?? "null")) }
    mutating func n(_ k: String, _ v: Double) { parts.append("\"\(k)\":" + money(v)) }
    mutating func i(_ k: String, _ v: Int) { parts.append("\"\(k)\":\(v)") }
    mutating func b(_ k: String, _ v: Bool) { parts.append("\"\(k)\":\(v)") }
    mutating func raw(_ k: String, _ v: String) { parts.append("\"\(k)\":" + v) }
    var text: String { "{" + parts.joined(separator: ",") + "}" }
}

func quote(_ s: String) -> String {
    var out = "\""
    for c in s.unicodeScalars {
        switch c {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default: out.unicodeScalars.append(c)
        }
    }
    return out + "\""
}

func money(_ v: Double) -> String {
    let cents = Int((v * 100).rounded())
    let sign = cents < 0 ? "-" : ""
    return sign + "\(abs(cents) / 100)." + String(abs(cents) % 100).leftPad(2)
}

let catalog: [(id: String, name: String, category: String, price: Double)] = {
    let cats = ["shoes", "apparel", "bags", "accessories", "home", "beauty", "outdoor", "kids"]
    let nouns = ["Runner", "Trail Boot", "Linen Shirt", "Denim Jacket", "Tote", "Backpack", "Scarf", "Candle", "Mug",
                 "Serum", "Tent", "Rain Jacket", "Sneaker", "Beanie", "Wallet", "Lamp"]
    var out: [(String, String, String, Double)] = []
    var rng = Rng(state: 7)
    for n in 0..<240 {
        let noun = nouns[n % nouns.count]
        out.append(("p\(1000 + n)", "\(noun) \(["Classic", "Pro", "Lite", "Eco", "Max"][n % 5])",
                    cats[n % cats.count], Double(rng.int(18_000) + 900) / 100))
    }
    return out
}()

let agents = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
              "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
              "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
              "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"]
let firstNames = ["Jane", "Omar", "Mei", "Lucas", "Amara", "Noah", "Sofia", "Ravi", "Elena", "Kwame", "Yuki", "Liam", "Zoe", "Mateo"]
let lastNames = ["Doe", "Haddad", "Chen", "Silva", "Okafor", "Smith", "Rossi", "Patel", "Novak", "Mensah", "Sato", "Murphy"]

/// One message in the making: its time, its text, and what it means for the truth.
struct Line {
    var time: Int64
    var text: String
    var order: (id: String, total: Double, channel: String)?
    var refund: Double?
    var type: String

    init(time: Int64, text: String, order: (id: String, total: Double, channel: String)? = nil, type: String) {
        self.time = time
        self.text = text
        self.order = order
        self.refund = nil
        self.type = type
    }
}

struct CustomerTruth {
    var userID: String?
    var email: String?
    var phone: String?
    var anonymousID: String
    var orders = 0, revenue = 0.0, refunds = 0, refundTotal = 0.0
}

final class Generator {
    let o: Options
    var rng: Rng
    let startMicros: Int64
    var truth: [CustomerTruth] = []
    var lines = 0, valid = 0, duplicates = 0
    var malformed: [String: Int] = [:]
    var orders = 0, revenue = 0.0, refunds = 0, refundTotal = 0.0
    var revenueByDay: [Int: Double] = [:]
    var ordersByChannel: [String: Int] = [:]
    var eventsByType: [String: Int] = [:]
    var spendByChannel: [String: Double] = [:]
    var out: UnsafeMutablePointer<FILE>

    init(_ o: Options) {
        self.o = o
        rng = Rng(state: o.seed &* 0x2545_F491_4F6C_DD1D &+ 1)
        startMicros = Int64(civil(o.start)!) * 86_400_000_000
        guard let f = o.out == "-" ? fdopen(dup(1), "w") : fopen(o.out, "w") else { usage("cannot write \(o.out)") }
        out = f
        setvbuf(out, nil, _IOFBF, 1 << 20)
    }

    func message(type: String, time: Int64, user: String?, anon: String?, nullAnon: Bool = false, context: String,
                 fields: [(String, String)]) -> String {
        var m = Obj()
        m.s("type", type)
        m.s("messageId", rng.uuid())
        if let user { m.s("userId", user) }
        if let anon { m.s("anonymousId", anon) } else if nullAnon { m.raw("anonymousId", "null") }
        let style = rng.int(3)
        m.s("timestamp", iso(time, style: style))
        if rng.chance(0.3) { m.s("sentAt", iso(time + Int64(rng.int(2_000_000)), style: style)) }
        for (k, v) in fields { m.raw(k, v) }
        m.raw("context", context)
        return m.text
    }

    func context(channel: String, device: String? = nil, page: String? = nil, traits: Obj? = nil, externalID: String? = nil) -> String {
        var c = Obj()
        c.s("channel", channel)
        var lib = Obj()
        switch channel {
        case "web": lib.s("name", "analytics.js"); lib.s("version", "4.1.0")
        case "mobile": lib.s("name", "analytics-ios"); lib.s("version", "4.1.8")
        case "pos": lib.s("name", "rudder-sdk-python"); lib.s("version", "2.1.0")
        default: lib.s("name", "analytics-python"); lib.s("version", "2.3.3")
        }
        c.raw("library", lib.text)
        c.s("ip", "\(rng.int(200) + 20).\(rng.int(256)).\(rng.int(256)).\(rng.int(254) + 1)")
        if channel == "web" {
            c.s("userAgent", rng.pick(agents))
            if let page {
                var p = Obj()
                p.s("path", page); p.s("url", "https://shop.example.com" + page)
                p.s("title", "Shop – " + (page.split(separator: "/").last.map(String.init) ?? "Home"))
                p.s("referrer", rng.pick(["https://www.google.com/", "", "https://www.instagram.com/", "https://shop.example.com/"]))
                c.raw("page", p.text)
            }
        }
        if let device {
            var d = Obj()
            d.s("id", device)
            d.s("type", device.hasPrefix("pos-") ? "tablet" : rng.pick(["ios", "android"]))
            d.s("manufacturer", device.hasPrefix("pos-") ? "Samsung" : rng.pick(["Apple", "Google", "Samsung"]))
            c.raw("device", d.text)
        }
        if let traits { c.raw("traits", traits.text) }
        if let externalID {
            c.raw("externalIds", "[{\"id\":\(quote(externalID)),\"type\":\"loyalty_id\",\"collection\":\"users\",\"encoding\":\"none\"}]")
        }
        return c.text
    }

    func props(_ f: (inout Obj) -> Void) -> String {
        var p = Obj()
        f(&p)
        return p.text
    }

    /// The history of customer `i`.
    func customer(_ i: Int) -> [Line] {
        var lines: [Line] = []
        let anon = rng.uuid()
        let signsUp = rng.chance(0.7)
        let first = rng.pick(firstNames), last = rng.pick(lastNames)
        let email = "\(first.lowercased()).\(last.lowercased())\(i)@example.com"
        let phoneDigits = String(2_000_000_000 + i * 7 % 7_999_999_999)
        let phoneShown: String = {
            let a = phoneDigits.prefix(3), b = phoneDigits.dropFirst(3).prefix(3), c = phoneDigits.suffix(4)
            return rng.pick(["+1 \(a)-\(b)-\(c)", "+1 (\(a)) \(b)-\(c)", "+1\(phoneDigits)"])
        }()
        let userID = "u\(i)"
        var t = startMicros + Int64(rng.int(o.days * 2 / 3)) * 86_400_000_000 + Int64(rng.int(86_400)) * 1_000_000
        let end = startMicros + Int64(o.days) * 86_400_000_000
        var truth = CustomerTruth(userID: signsUp ? userID : nil, email: signsUp ? email : nil,
                                  phone: signsUp ? "+1" + phoneDigits : nil, anonymousID: anon)
        var signedUp = false
        let hasApp = signsUp && rng.chance(0.4)
        let device = rng.uuid()
        let loyalty = signsUp && rng.chance(0.3) ? "L\(100_000 + i)" : nil
        let esp = "esp-" + String(UInt64(i) &* 0x9E37_79B9 & 0xFFFF_FFFF, radix: 16)
        let sessions = 3 + rng.int(10)
        var orderN = 0
        func add(_ type: String, _ text: String, _ time: Int64) { lines.append(Line(time: time, text: text, type: type)) }
        func ids() -> (String?, String?, Bool) {
            if signedUp {
                let junk = rng.chance(0.01)
                return (userID, junk ? nil : (rng.chance(0.5) ? anon : nil), !junk && rng.chance(0.2))
            }
            // Junk user ids that real clients send before login; the resolver must ignore them.
            if rng.chance(0.01) { return (rng.pick(["null", "undefined", "0", "anonymous"]), anon, false) }
            return (nil, anon, false)
        }
        func order(_ channel: String, _ time: Int64) {
            orderN += 1
            let orderID = "o\(i)-\(orderN)"
            var items: [String] = []
            var subtotal = 0.0
            for _ in 0..<(1 + rng.int(3)) {
                let p = rng.pick(catalog)
                let q = 1 + (rng.chance(0.2) ? 1 : 0)
                subtotal += p.price * Double(q)
                items.append(props { o in
                    o.s("product_id", p.id); o.s("sku", "SKU-" + p.id); o.s("name", p.name); o.s("category", p.category)
                    o.n("price", p.price); o.i("quantity", q)
                })
            }
            let shipping = channel == "pos" ? 0 : 4.95, tax = (subtotal * 0.08 * 100).rounded() / 100
            let total = ((subtotal + shipping + tax) * 100).rounded() / 100
            let properties = props { o in
                o.s("order_id", orderID); o.n("total", total); o.n("revenue", total); o.n("subtotal", subtotal)
                o.n("tax", tax); o.n("shipping", shipping); o.s("currency", "USD"); o.raw("products", "[" + items.joined(separator: ",") + "]")
            }
            let text: String
            if channel == "pos" {
                var traits = Obj()
                traits.s("phone", phoneShown)
                let tablet = rng.chance(0.15)
                text = message(type: "track", time: time, user: tablet ? userID : nil, anon: "pos-" + rng.uuid().prefix(13),
                               context: context(channel: "pos", device: tablet ? "pos-tablet-01" : nil, traits: traits, externalID: loyalty),
                               fields: [("event", quote("Order Completed")), ("properties", properties)])
            } else {
                let (u, a, nullAnon) = ids()
                text = message(type: "track", time: time, user: u, anon: a, nullAnon: nullAnon,
                               context: context(channel: channel, device: channel == "mobile" ? device : nil, page: channel == "web" ? "/checkout/complete" : nil),
                               fields: [("event", quote("Order Completed")), ("properties", properties)])
            }
            lines.append(Line(time: time, text: text, order: (orderID, total, channel), type: "track"))
            if channel == "pos", loyalty != nil || rng.chance(0.5) {
                var traits = Obj()
                traits.s("phone", phoneShown)
                add("track", message(type: "track", time: time + 1000, user: nil, anon: "pos-" + rng.uuid().prefix(13),
                                     context: context(channel: "pos", traits: traits, externalID: loyalty),
                                     fields: [("event", quote("Loyalty Points Earned")), ("properties", props { $0.i("points", Int(total)) })]), time + 1000)
            }
            if rng.chance(0.05) {
                let rt = time + Int64(1 + rng.int(20)) * 86_400_000_000
                let (u, a, _) = (signedUp ? userID : nil, signedUp ? nil : anon, false)
                var l = Line(time: rt, text: message(type: "track", time: rt, user: u, anon: a, context: context(channel: "server"),
                                                     fields: [("event", quote("Order Refunded")),
                                                              ("properties", props { $0.s("order_id", orderID); $0.n("total", total); $0.s("currency", "USD") })]),
                             type: "track")
                l.refund = total
                lines.append(l)
            }
        }

        for s in 0..<sessions {
            if t > end { break }
            // A web session: pages, product views, maybe a cart.
            let (u, a, nullAnon) = ids()
            for pg in 0..<(1 + rng.int(4)) {
                let path = rng.pick(["/", "/new", "/sale", "/c/shoes", "/c/bags", "/p/\(rng.pick(catalog).id)"])
                add("page", message(type: "page", time: t + Int64(pg) * 40_000_000, user: u, anon: a, nullAnon: nullAnon,
                                    context: context(channel: "web", page: path), fields: [("name", quote(path == "/" ? "Home" : path)), ("properties", props { $0.s("path", path) })]),
                    t + Int64(pg) * 40_000_000)
            }
            let p = rng.pick(catalog)
            let pp = props { o in o.s("product_id", p.id); o.s("sku", "SKU-" + p.id); o.s("name", p.name); o.s("category", p.category); o.n("price", p.price); o.s("currency", "USD") }
            add("track", message(type: "track", time: t + 200_000_000, user: u, anon: a, context: context(channel: "web", page: "/p/" + p.id),
                                 fields: [("event", quote("Product Viewed")), ("properties", pp)]), t + 200_000_000)
            if rng.chance(0.45) {
                add("track", message(type: "track", time: t + 260_000_000, user: u, anon: a, context: context(channel: "web", page: "/p/" + p.id),
                                     fields: [("event", quote("Product Added")), ("properties", props { o in o.s("product_id", p.id); o.s("name", p.name); o.s("category", p.category); o.n("price", p.price); o.i("quantity", 1) })]),
                    t + 260_000_000)
                add("track", message(type: "track", time: t + 300_000_000, user: u, anon: a, context: context(channel: "web", page: "/checkout"),
                                     fields: [("event", quote("Checkout Started")), ("properties", props { o in o.s("order_id", "c\(i)-\(s)"); o.n("value", p.price); o.s("currency", "USD") })]),
                    t + 300_000_000)
                if rng.chance(0.6) { order("web", t + 420_000_000) }
            }
            // Sign-up on the first or second session.
            if signsUp && !signedUp && s >= rng.int(2) {
                signedUp = true
                var traits = Obj()
                traits.s("email", rng.chance(0.1) ? "  " + email.capitalized + " " : email)
                traits.s("phone", phoneShown); traits.s("first_name", first); traits.s("last_name", last)
                traits.s("plan", rng.pick(["free", "free", "trial", "pro"])); traits.s("created_at", iso(t + 500_000_000, style: 0))
                let rudderStyle = rng.chance(0.3)
                let ctxTraits: Obj? = rudderStyle ? traits : nil
                add("identify", message(type: "identify", time: t + 500_000_000, user: userID, anon: anon,
                                        context: context(channel: "web", traits: ctxTraits), fields: rudderStyle ? [] : [("traits", traits.text)]),
                    t + 500_000_000)
                add("track", message(type: "track", time: t + 510_000_000, user: userID, anon: anon, context: context(channel: "web"),
                                     fields: [("event", quote("Consent Updated")), ("properties", props { o in
                                         o.raw("purposes", "{\"email_marketing\":\(rng.chance(0.6)),\"analytics\":true,\"personalization\":\(rng.chance(0.5))}") })]),
                    t + 510_000_000)
                if rng.chance(0.05) {
                    add("alias", message(type: "alias", time: t + 520_000_000, user: userID, anon: nil, context: context(channel: "server"),
                                         fields: [("previousId", quote(anon))]), t + 520_000_000)
                }
                if rng.chance(0.03) {
                    add("group", message(type: "group", time: t + 530_000_000, user: userID, anon: nil, context: context(channel: "server"),
                                         fields: [("groupId", quote("g\(i % 97)")), ("traits", props { $0.s("name", "Company \(i % 97)"); $0.s("industry", rng.pick(["retail", "media", "health"])) })]),
                        t + 530_000_000)
                }
            }
            if signedUp {
                if hasApp {
                    for sc in 0..<(1 + rng.int(3)) {
                        let st = t + 3_600_000_000 + Int64(sc) * 30_000_000
                        add("screen", message(type: "screen", time: st, user: userID, anon: nil, context: context(channel: "mobile", device: device),
                                              fields: [("name", quote(rng.pick(["Home", "Product", "Cart", "Orders"]))), ("properties", "{}")]), st)
                    }
                    if rng.chance(0.15) { order("mobile", t + 3_700_000_000) }
                }
                if rng.chance(0.5) {
                    var traits = Obj()
                    let junk = rng.chance(0.01)
                    traits.s("email", junk ? "test@test.com" : email)
                    let et = t + 86_400_000_000
                    add("track", message(type: "track", time: et, user: junk ? userID : nil, anon: esp, context: context(channel: "email", traits: traits),
                                         fields: [("event", quote(rng.pick(["Email Opened", "Email Link Clicked"]))),
                                                  ("properties", props { $0.s("campaign_id", "cmp-\(rng.int(40))"); $0.s("subject", "Our \(rng.pick(["spring", "summer", "autumn", "winter"])) picks") })]), et)
                }
                if loyalty != nil || rng.chance(0.08) { if rng.chance(0.35) { order("pos", t + 2 * 86_400_000_000) } }
                if rng.chance(0.06) {
                    add("track", message(type: "track", time: t + 5_000_000_000, user: userID, anon: nil, context: context(channel: "support"),
                                         fields: [("event", quote("Ticket Created")), ("properties", props { $0.s("ticket_id", "T\(i)-\(s)"); $0.s("subject", rng.pick(["Where is my order", "Refund", "Sizing"])) })]),
                        t + 5_000_000_000)
                }
                if rng.chance(0.08) {
                    let nps = rng.chance(0.5)
                    add("track", message(type: "track", time: t + 6_000_000_000, user: userID, anon: nil, context: context(channel: "email"),
                                         fields: [("event", quote("Survey Responded")), ("properties", props { $0.s("survey", nps ? "nps" : "csat"); $0.i("score", nps ? rng.int(11) : 1 + rng.int(5)) })]),
                        t + 6_000_000_000)
                }
            }
            t += Int64(1 + rng.int(30)) * 86_400_000_000 + Int64(rng.int(86_400)) * 1_000_000
        }
        // The truth of this customer (refund only counts when the order is in the data).
        for l in lines {
            if let o = l.order { truth.orders += 1; truth.revenue += o.total }
            if let r = l.refund { truth.refunds += 1; truth.refundTotal += r }
        }
        self.truth.append(truth)
        return lines
    }

    func write(_ s: String) {
        lines += 1
        fputs(s, out)
        fputc(0x0A, out)
    }

    func run() {
        // Marketing spend: one event per day and paid channel.
        var spend: [Line] = []
        for d in 0..<o.days {
            for ch in ["ads", "social", "email"] {
                let t = startMicros + Int64(d) * 86_400_000_000 + 82_800_000_000
                let amount = Double(5_000 + rng.int(60_000)) / 100
                spendByChannel[ch, default: 0] += amount
                spend.append(Line(time: t, text: message(type: "track", time: t, user: nil, anon: "system:marketing", context: context(channel: "server"),
                                                          fields: [("event", quote("Marketing Spend")), ("properties", props { $0.s("channel", ch); $0.n("amount", amount); $0.s("currency", "USD") })]),
                                  type: "track"))
            }
        }
        // Customers in cohorts of 1000: time-ordered within a cohort (like one backfill per
        // cohort), so memory stays flat whatever the number of customers.
        var cohort = 0
        while cohort * 1000 < o.customers {
            var batch: [Line] = cohort == 0 ? spend : []
            for i in cohort * 1000..<min(o.customers, (cohort + 1) * 1000) { batch += customer(i) }
            batch.sort { $0.time < $1.time }
            var retries: [String] = []
            for (n, l) in batch.enumerated() {
                var text = l.text
                // Late: the event happened hours to days before its neighbours.
                if rng.chance(0.02), let r = text.range(of: "\"timestamp\":\"") {
                    let late = l.time - Int64(1 + rng.int(72)) * 3_600_000_000
                    let endQuote = text[r.upperBound...].firstIndex(of: "\"")!
                    text.replaceSubrange(r.upperBound..<endQuote, with: iso(late, style: 0))
                    account(l, time: late)
                } else {
                    account(l, time: l.time)
                }
                write(text)
                valid += 1
                eventsByType[l.type, default: 0] += 1
                if rng.chance(0.01) { retries.append(text) }
                if n % 997 == 0, !retries.isEmpty { for r in retries { write(r); duplicates += 1 }; retries = [] }
                if rng.chance(0.001) { writeMalformed() }
            }
            for r in retries { write(r); duplicates += 1 }
            cohort += 1
        }
        fclose(out)
    }

    func account(_ l: Line, time: Int64) {
        if let o = l.order {
            orders += 1
            revenue += o.total
            revenueByDay[Int(time / 86_400_000_000), default: 0] += o.total
            ordersByChannel[o.channel, default: 0] += 1
        }
        if let r = l.refund { refunds += 1; refundTotal += r }
    }

    func writeMalformed() {
        let kind = rng.int(4)
        switch kind {
        case 0:
            write("{\"type\":\"track\",\"event\":\"Product Viewed\",\"userId\":\"u1\",\"properties\":{\"price\":")
            malformed["truncated_json", default: 0] += 1
        case 1:
            write("{\"type\":\"track\",\"userId\":\"u\(rng.int(1000))\",\"messageId\":\"\(rng.uuid())\",\"properties\":{}}")
            malformed["track_without_event", default: 0] += 1
        case 2:
            write("{\"type\":\"page\",\"messageId\":\"\(rng.uuid())\",\"name\":\"Home\",\"userId\":null,\"anonymousId\":null}")
            malformed["no_identifier", default: 0] += 1
        default:
            write("{\"type\":\"track\",\"event\":\"Product Viewed\",\"anonymousId\":\"\(rng.uuid())\",\"messageId\":\"\(rng.uuid())\",\"properties\":{\"blob\":\"" + String(repeating: "x", count: 40_000) + "\"}}")
            malformed["over_32kb", default: 0] += 1
        }
    }

    func truthJSON() -> String {
        func dict(_ d: [String: Double]) -> String {
            "{" + d.keys.sorted().map { "\(quote($0)):\(money(d[$0]!))" }.joined(separator: ",") + "}"
        }
        func counts(_ d: [String: Int]) -> String {
            "{" + d.keys.sorted().map { "\(quote($0)):\(d[$0]!)" }.joined(separator: ",") + "}"
        }
        var byDay: [String: Double] = [:]
        for (d, v) in revenueByDay { byDay[iso(Int64(d) * 86_400_000_000, style: 0).prefix(10).description] = v }
        var o = Obj()
        o.i("customers", truth.count)
        o.i("lines", lines)
        o.i("valid_events", valid)
        o.i("duplicates", duplicates)
        o.raw("malformed", counts(malformed))
        o.i("orders", orders)
        o.raw("revenue", money(revenue))
        o.i("refunds", refunds)
        o.raw("refund_total", money(refundTotal))
        o.raw("revenue_by_day", dict(byDay))
        o.raw("orders_by_channel", counts(ordersByChannel))
        o.raw("events_by_type", counts(eventsByType))
        o.raw("marketing_spend_by_channel", dict(spendByChannel))
        let per = truth.map { c -> String in
            var p = Obj()
            p.s("user_id", c.userID); p.s("email", c.email); p.s("phone", c.phone); p.s("anonymous_id", c.anonymousID)
            p.i("orders", c.orders); p.raw("revenue", money(c.revenue)); p.i("refunds", c.refunds)
            return p.text
        }
        o.raw("per_customer", "[\n" + per.joined(separator: ",\n") + "\n]")
        return o.text + "\n"
    }
}

let options = Options.parse(Array(CommandLine.arguments.dropFirst()))
let generator = Generator(options)
generator.run()
if let truthPath = options.truth {
    do {
        try generator.truthJSON().write(toFile: truthPath, atomically: true, encoding: .utf8)
    } catch {
        usage("cannot write \(truthPath): \(error)")
    }
}
