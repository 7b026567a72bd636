import EventLog
import Foundation
import JSONCore
import Projections

let root: String = {
    var url = URL(fileURLWithPath: #filePath)
    while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { url.deleteLastPathComponent() }
    return url.path
}()

let schemas: SchemaRegistry = try! SchemaSet.load(builtIn: root + "/Schemas/events", dataDirectory: nil)

/// A scratch data directory with a log, removed at deinit.
final class Scratch {
    let dir = NSTemporaryDirectory() + "touchstone-projections-" + UUID().uuidString
    let log: EventLog
    var builder: EnvelopeBuilder
    private var counter = 0

    init() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        log = try EventLog(directory: dir + "/log", options: LogOptions(durability: .relaxed))
        builder = EnvelopeBuilder(schemas: schemas)
        builder.correctClockSkew = false
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    /// Appends messages (parsed from JSON text); a missing timestamp gets a growing one.
    @discardableResult
    func append(_ texts: [String], source: String = "test", channel: String = "web") throws -> [AppendOutcome] {
        var prepared: [PreparedEvent] = []
        for t in texts {
            counter += 1
            var message = try JSON.parse(Array(t.utf8))
            if message["timestamp"] == nil {
                message["timestamp"] = .string(Timestamp.format(Timestamp.parse("2025-03-01T00:00:00Z")! + Int64(counter) * 1_000_000))
            }
            switch builder.prepare(message: message, encodedSize: nil, source: SourceContext(name: source, channel: channel), receivedAt: 1_750_000_000_000_000) {
            case .success(let p): prepared.append(p)
            case .failure(let r): throw ViewsError("rejected \(t): \(r.message)")
            }
        }
        return try log.append(prepared)
    }

    /// Opens (or reuses) live views over the log and folds everything.
    func views(_ set: ProjectionSet = .init()) throws -> LiveViews {
        let v = try LiveViews(dataDirectory: dir, log: log, set: set)
        try v.catchUp()
        return v
    }
}

func id(_ s: String) -> Identifier { Identifier.parse(s)! }

extension LiveViews {
    func profile(_ s: String) throws -> JSON? { try profiles.profile(id(s)) }
    func pid(_ s: String) throws -> String? { try profiles.profileID(id(s)) }
}
