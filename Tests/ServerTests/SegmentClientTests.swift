import Foundation
import JSONCore
import Testing

/// Segment's own Python client (segment-analytics-python, installed by Tools/setup.sh),
/// pointed at the server with `host=`, unchanged.
@Suite(.serialized)
struct SegmentClientTests {
    static let script = repoRoot.appendingPathComponent("Tests/ServerTests/Fixtures/segment_client.py").path

    static var clientInstalled: Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import segment.analytics"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    @Test(.enabled(if: clientInstalled, "segment-analytics-python is not importable (Tools/setup.sh installs it)"))
    func officialClientSendsEveryCallTypeAndEachArrivesExactlyOnce() async throws {
        let scratch = Scratch("segment-python")
        defer { scratch.remove() }
        // A tight rate limit makes the client meet a 429 with Retry-After and retry, as it would in production.
        // At 2 events/s the first seven messages leave the bucket 2.5 s in debt, so the retry sent
        // right after them meets the 429 even when the suite's load slows the client (at 4/s the
        // debt lasted 0.75 s, and a slow flush sometimes outlasted it).
        let key = try createKey(data: scratch.path, ["--source", "backend", "--channel", "server", "--rate-limit", "2"])
        let server = try await ServerProcess(data: scratch.path)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", Self.script, "http://127.0.0.1:\(server.port)", key]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "the client failed: \(errors)")
        let summary = (try? JSON.parse([UInt8](output))) ?? .null
        #expect(summary["errors"]?.arrayValue?.isEmpty == true, "the client reported errors: \(summary)")

        let metrics = try await HTTP.request(port: server.port, .get, "/metrics").text
        #expect(metrics.contains(#"touchstone_rate_limited_total{source="backend"}"#), "the client met a 429 and retried")
        #expect(metrics.contains(#"touchstone_events_duplicate_total{source="backend",type="track"} 1"#))
        try await server.stop()

        let events = try storedEvents(data: scratch.path)
        let sent = summary["sent"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(sent.count == 7)
        #expect(events.map(\.messageId).sorted() == sent.sorted(), "each message arrived exactly once")
        #expect(Set(events.map(\.type.name)) == ["identify", "track", "page", "screen", "group", "alias"])
        #expect(events.allSatisfy { $0.source == "backend" && $0.channel == "server" })
        let identify = events.first { $0.type == .identify }
        #expect(identify?.traits?["email"] == "py@example.com")
        #expect(identify?.context?["library"]?["name"] == "analytics-python")
    }
}
