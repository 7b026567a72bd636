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
