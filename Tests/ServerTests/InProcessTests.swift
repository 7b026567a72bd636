import EventLog
import Foundation
import Hummingbird
import HummingbirdTesting
import JSONCore
@testable import Server
import Testing

/// Server behaviour tested in process, through Hummingbird's router test client.
struct InProcessTests {
    static func withServer(_ label: String, _ body: (TouchstoneServer) async throws -> Void) async throws {
        let scratch = Scratch(label)
        defer { scratch.remove() }
        var config = ServerConfiguration()
        config.dataDirectory = scratch.path
        try await body(TouchstoneServer(configuration: config))
    }

    @Test func apiKeyMiddlewareChecksKeyAndScope() async throws {
        try await Self.withServer("scopes") { server in
            let (_, reader) = try server.keys.store.createAPIKey(name: "dash", scope: .read)
            let (_, admin) = try server.keys.store.createAPIKey(name: "ops", scope: .admin)
            let (_, write) = try server.keys.store.createWriteKey(source: "web", channel: "web")
            let (_, gone) = try server.keys.store.createAPIKey(name: "old", scope: .admin)
            try server.keys.store.revoke(name: "old")
            let app = buildApplication(server, logger: .init(label: "test"))
            try await app.test(.router) { client in
                try await client.execute(uri: "/v1/stats", method: .get) { r in #expect(r.status == .unauthorized) }
                try await client.execute(uri: "/v1/stats", method: .get, headers: HTTP.bearer(reader)) { r in
                    #expect(r.status == .ok)
                    #expect((try? JSON.parse(Array(r.body.readableBytesView)))?["events"] == 0)
                }
                try await client.execute(uri: "/v1/admin/sources", method: .get, headers: HTTP.bearer(reader)) { r in
                    #expect(r.status == .forbidden)
                }
                try await client.execute(uri: "/v1/admin/sources", method: .get, headers: HTTP.bearer(admin)) { r in
                    #expect(r.status == .ok)
                    let json = (try? JSON.parse(Array(r.body.readableBytesView))) ?? .null
                    #expect(json["sources"]?[0]?["name"] == "web")
                    #expect(json["sources"]?[0]?["keys"]?[0]?["hint"] == .string("…" + write.suffix(4)))
                    #expect(!String(buffer: r.body).contains(write), "keys are never shown again")
                }
                try await client.execute(uri: "/v1/stats", method: .get, headers: HTTP.bearer(write)) { r in
                    #expect(r.status == .unauthorized, "a write key cannot read")
                }
                try await client.execute(uri: "/v1/stats", method: .get, headers: HTTP.bearer(gone)) { r in
                    #expect(r.status == .unauthorized)
                }
                try await client.execute(uri: "/v1/stats", method: .get, headers: HTTP.basic(reader)) { r in
                    #expect(r.status == .unauthorized, "API keys go in a Bearer header")
                }
            }
        }
    }

    @Test func deadLettersAreListedForAdmins() async throws {
        try await Self.withServer("dead") { server in
            let (_, admin) = try server.keys.store.createAPIKey(name: "ops", scope: .admin)
            let (_, write) = try server.keys.store.createWriteKey(source: "web", channel: "web")
            let app = buildApplication(server, logger: .init(label: "test"))
            try await app.test(.router) { client in
                try await client.execute(uri: "/v1/track", method: .post, headers: HTTP.basic(write),
                                         body: ByteBuffer(string: #"{"userId":"u1"}"#)) { r in #expect(r.status == .badRequest) }
                try await client.execute(uri: "/v1/admin/dead-letters?limit=10", method: .get, headers: HTTP.bearer(admin)) { r in
                    let json = (try? JSON.parse(Array(r.body.readableBytesView))) ?? .null
                    #expect(json["deadLetters"]?[0]?["code"] == "invalid")
                    #expect(json["deadLetters"]?[0]?["source"] == "web")
                    #expect(json["deadLetters"]?[0]?["raw"]?.stringValue?.contains("u1") == true)
                }
            }
        }
    }

    @Test func openAPISpecDescribesExactlyTheServedRoutes() async throws {
        try await Self.withServer("openapi") { server in
            let served = Set(buildRouter(server).routes.map { "\($0.method) \($0.path)" })
            let spec = try String(contentsOf: repoRoot.appendingPathComponent("Schemas/openapi.yaml"), encoding: .utf8)
            var documented: Set<String> = []
            var inPaths = false, path = ""
            for line in spec.split(separator: "\n", omittingEmptySubsequences: false) {
                if !line.hasPrefix(" ") && !line.isEmpty { inPaths = line == "paths:" ; continue }
                guard inPaths else { continue }
                if line.hasPrefix("  /"), !line.hasPrefix("   ") {
                    path = String(line.dropFirst(2).dropLast())
                } else if line.hasPrefix("    "), !line.hasPrefix("     "),
                          let m = ["get", "put", "post", "delete", "patch", "head"].first(where: { line == "    \($0):" }) {
                    documented.insert("\(m.uppercased()) \(path)")
                }
            }
            #expect(!served.isEmpty)
            #expect(served.subtracting(documented).isEmpty, "routes missing from Schemas/openapi.yaml: \(served.subtracting(documented).sorted())")
            #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
        }
    }
}

struct ConfigurationTests {
    @Test func flagsBeatEnvironmentWhichBeatsTheFile() throws {
        let scratch = Scratch("config")
        defer { scratch.remove() }
        let file = scratch.path + "/c.json"
        try Data(#"{"http":{"port":7000,"host":"0.0.0.0"},"limits":{"maxBodyBytes":1048576,"eventsPerSecond":250},"log":{"format":"json"}}"#.utf8)
            .write(to: URL(fileURLWithPath: file))
        let env = ["TOUCHSTONE_HTTP_PORT": "7100", "TOUCHSTONE_LIMITS_MAX_MESSAGE_BYTES": "16384", "TOUCHSTONE_LOG_LEVEL": "debug"]
        let c = try ServerConfiguration.load(file: file, flags: .init(port: 7200), environment: env)
        #expect(c.port == 7200, "flag")
        #expect(c.host == "0.0.0.0", "file")
        #expect(c.limits.maxMessageBytes == 16384, "environment")
        #expect(c.limits.maxBodyBytes == 1 << 20, "file")
        #expect(c.defaultEventsPerSecond == 250)
        #expect(c.logLevel == "debug" && c.logFormat == "json")
        #expect(c.limits.maxInflatedBytes == 4 << 20, "default")
        let fromEnv = try ServerConfiguration.load(environment: env)
        #expect(fromEnv.port == 7100)
        #expect(c.tailScheduling == .realtime, "default")
        #expect(try ServerConfiguration.load(environment: ["TOUCHSTONE_VIEWS_TAIL_SCHEDULING": "raised"]).tailScheduling == .raised)
        #expect(c.tailLingerMillis == 5, "default")
        #expect(try ServerConfiguration.load(environment: ["TOUCHSTONE_VIEWS_TAIL_LINGER_MILLIS": "0"]).tailLingerMillis == 0)
    }

    @Test func misspeltOrOutOfRangeSettingsAreErrorsNamingTheKey() throws {
        let scratch = Scratch("config-bad")
        defer { scratch.remove() }
        let file = scratch.path + "/c.json"
        try Data(#"{"http":{"prot":7000}}"#.utf8).write(to: URL(fileURLWithPath: file))
        #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: file, environment: [:]) }
        do {
            _ = try ServerConfiguration.load(environment: ["TOUCHSTONE_HTTP_PORT": "70000"])
            Issue.record("an out-of-range port was accepted")
        } catch let e as ConfigurationError {
            #expect(e.message.contains("http.port"))
        }
        do {
            _ = try ServerConfiguration.load(environment: ["TOUCHSTONE_VIEWS_TAIL_SCHEDULING": "fast"])
            Issue.record("an unknown tail scheduling was accepted")
        } catch let e as ConfigurationError {
            #expect(e.message.contains("views.tailScheduling") && e.message.contains("realtime"), "\(e.message)")
        }
        do {
            _ = try ServerConfiguration.load(environment: ["TOUCHSTONE_VIEWS_TAIL_LINGER_MILLIS": "5000"])
            Issue.record("a linger above a second was accepted")
        } catch let e as ConfigurationError {
            #expect(e.message.contains("views.tailLingerMillis"), "\(e.message)")
        }
    }

    @Test func exampleConfigMatchesTheSchemaAndTheSchemaNamesEveryKey() throws {
        let schema = try #require(try ServerConfiguration.configSchema(), "Schemas/config.schema.json not found")
        let example = try JSON.parse([UInt8](Data(contentsOf: repoRoot.appendingPathComponent("Deploy/touchstone.example.json"))))
        #expect(schema.validate(example).isEmpty, "\(schema.validate(example))")
        _ = try ServerConfiguration.load(file: repoRoot.appendingPathComponent("Deploy/touchstone.example.json").path, environment: [:])
        // The schema's leaves are exactly the keys the server reads.
        let doc = try JSON.parse([UInt8](Data(contentsOf: repoRoot.appendingPathComponent("Schemas/config.schema.json"))))
        var leaves: [String] = []
        func walk(_ node: JSON, _ prefix: String) {
            guard let props = node["properties"]?.objectValue else { leaves.append(prefix); return }
            for (k, v) in props { walk(v, prefix.isEmpty ? k : prefix + "." + k) }
        }
        walk(doc, "")
        #expect(Set(leaves) == Set(ServerConfiguration.keys))
    }
}

struct KeyTests {
    @Test func onlyDigestsAreStoredAndComparisonIsExact() throws {
        let scratch = Scratch("keys")
        defer { scratch.remove() }
        let store = try AdminStore(directory: scratch.path)
        let (record, key) = try store.createWriteKey(source: "web", channel: "web")
        #expect(key.hasPrefix("tsw_") && key.count == 36)
        #expect(record.digest == KeyMaterial.digest(key))
        let file = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/data.mdb"))
        #expect(file.range(of: Data(key.utf8)) == nil, "the key itself is never stored")
        let ring = try KeyRing(store: store)
        #expect((try? ring.authenticateWriteKey(key).get()) != nil)
        // One character changed (never to itself: the key's last character may already be "x").
        let altered = String(key.dropLast()) + (key.hasSuffix("x") ? "y" : "x")
        #expect(altered != key)
        #expect(ring.authenticateWriteKey(altered) == .failure(.unknown))
        #expect(KeyMaterial.constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!KeyMaterial.constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(throws: AdminError.self) { try store.createWriteKey(source: "web", channel: "pos") }
        let (second, _) = try store.createWriteKey(source: "web", channel: nil)
        #expect(second.name == "web-2", "a source may have several keys (rotation)")
    }
}

struct BatchSizeTests {
    @Test func aMessagesCountedSizeIsTheLengthOfItsCompactEncoding() throws {
        let samples: [JSON] = [
            ["type": "track", "event": "Order Completed", "properties": ["total": 19.99, "items": [1, 2, 3], "ok": true, "none": nil]],
            ["text": "quote \" backslash \\ newline \n tab \t bell \u{07} é 😀", "n": -42, "big": 1e300],
            [], [:], "plain",
        ]
        for s in samples {
            #expect(JSONView(bytes: s.binary).compactByteCount == s.jsonBytes().count, "\(s.jsonString)")
        }
    }
}

struct CredentialsTests {
    @Test func basicDecodingAgreesWithFoundation() {
        var rng = SystemRandomNumberGenerator()
        for length in 0..<40 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let text = Data(bytes).base64EncodedString()
            #expect(Base64.decode(text) == bytes, "\(text)")
        }
        // Not base64 — what Foundation refuses, refused alike.
        for bad in ["abc", "a===", "ab c", "YWJj\n", "Y*Jj", "YQ==YQ=="] {
            #expect(Base64.decode(bad) == nil, "\(bad)")
            #expect(Data(base64Encoded: bad) == nil, "Foundation accepts \(bad)")
        }
        // Padding anywhere but the end, which Foundation on Linux lets through, is refused too.
        for bad in ["ab=c", "===="] { #expect(Base64.decode(bad) == nil, "\(bad)") }
    }

    @Test func theWriteKeyIsTheBasicUsername() {
        let header = "Basic " + Data("wk_abc:".utf8).base64EncodedString()
        #expect(Credentials(header: header) == .basic(username: "wk_abc", password: ""))
        #expect(Credentials(header: "basic " + Data("k:p:q".utf8).base64EncodedString()) == .basic(username: "k", password: "p:q"))
        #expect(Credentials(header: "Basic " + Data("nocolon".utf8).base64EncodedString()) == .basic(username: "nocolon", password: ""))
        #expect(Credentials(header: "Basic !!!!") == .malformed)
        #expect(Credentials(header: "Basic " + Data([0xFF, 0xFE]).base64EncodedString()) == .malformed)  // not UTF-8
        #expect(Credentials(header: "Bearer  ak_1 ") == .bearer("ak_1"))
        #expect(Credentials(header: "Token x") == .malformed)
        // The scheme in any case; spaces and tabs around the value (HTTP's optional whitespace).
        let key = Data("wk_tab:".utf8).base64EncodedString()
        #expect(Credentials(header: "BASIC \t" + key + " \t") == .basic(username: "wk_tab", password: ""))
        #expect(Credentials(header: " bEaReR\tak_2\t") == .bearer("ak_2"))
        #expect(Credentials(header: "Bearer ak 3") == .bearer("ak 3"))
        // No value, or a scheme only like one: refused.
        for bad in ["Basic", "Basic ", "Bearer \t ", "", "   ", "Basics " + key, "Bear x", "Bearers x"] {
            #expect(Credentials(header: bad) == .malformed, "\(bad)")
        }
    }
}
