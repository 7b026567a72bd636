import EventLog
import Foundation
import JSONCore

/// A fresh temporary directory, removed when the value is dropped.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "touchstone-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository root, from this file's path.
let repoRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url.path }
    }
    fatalError("repository root not found")
}()

let schemaRegistry: SchemaRegistry = try! SchemaSet.load(builtIn: repoRoot + "/Schemas/events", dataDirectory: nil)
let builder = EnvelopeBuilder(schemas: schemaRegistry)
let web = SourceContext(name: "web", channel: "web")

/// A valid track message.
func track(_ id: String, user: String = "u1", event: String = "Product Viewed", at time: String = "2025-03-01T12:00:00.000Z",
           properties: JSON = ["product_id": "p1", "price": 19.99]) -> JSON {
    ["type": "track", "messageId": .string(id), "userId": .string(user), "event": .string(event),
     "timestamp": .string(time), "properties": properties, "context": ["channel": "web", "ip": "10.0.0.1"]]
}

func prepared(_ message: JSON, receivedAt: Micros = 1_740_830_400_000_000) throws -> PreparedEvent {
    try builder.prepare(message: message, encodedSize: nil, source: web, receivedAt: receivedAt).get()
}

/// Appends `messages` to the log in `dir`/data (source `web`) the way another process would:
/// the real `touchstone import`, while this process may hold the log open.
func appendFromAnotherProcess(_ messages: [JSON], dir: TempDir) throws {
    let file = dir.path + "/theirs-\(UUID().uuidString).ndjson"
    try messages.map(\.jsonString).joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: touchstoneBinary())
    p.arguments = ["import", "--data", dir.path + "/data", "--schemas", repoRoot + "/Schemas/events", "--source", "web", file]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw CocoaError(.executableLoad) }
}
