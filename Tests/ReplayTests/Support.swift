import EventLog
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JSONCore
@testable import Projections
import Testing

let root: String = {
    var url = URL(fileURLWithPath: #filePath)
    while !FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { url.deleteLastPathComponent() }
    return url.path
}()

/// Where the binaries are: `TOUCHSTONE_BIN_DIR`, else the repository's `.build/debug`.
let binDir: String = ProcessInfo.processInfo.environment["TOUCHSTONE_BIN_DIR"] ?? root + "/.build/debug"
func binary(_ name: String) -> String { binDir + "/" + name }

let schemas: SchemaRegistry = try! SchemaSet.load(builtIn: root + "/Schemas/events", dataDirectory: nil)
let profiles = ProfileProjection.projectionName

/// A scratch data directory with a log, removed at deinit.
final class Scratch {
    let dir = NSTemporaryDirectory() + "touchstone-replay-" + UUID().uuidString.prefix(8)
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

    var store: ViewStore { ViewStore(dataDirectory: dir) }

    /// Appends messages (JSON text); a missing timestamp gets one a second after the previous.
    @discardableResult
    func append(_ texts: [String]) throws -> [AppendOutcome] {
        var prepared: [PreparedEvent] = []
        for t in texts {
            counter += 1
            var message = try JSON.parse(Array(t.utf8))
            if message["timestamp"] == nil {
                message["timestamp"] = .string(Timestamp.format(Scratch.epoch + Int64(counter) * 1_000_000))
            }
            if message["messageId"] == nil { message["messageId"] = .string("m-\(counter)") }
            switch builder.prepare(message: message, encodedSize: nil, source: SourceContext(name: "test", channel: "web"),
                                   receivedAt: 1_750_000_000_000_000) {
            case .success(let p): prepared.append(p)
            case .failure(let r): throw ViewsError("rejected \(t): \(r.message)")
            }
        }
        return try log.append(prepared)
    }

    static let epoch = Timestamp.parse("2025-03-01T00:00:00Z")!

    /// Live views over the log, folded.
    @discardableResult
    func liveViews() throws -> LiveViews {
        let v = try LiveViews(dataDirectory: dir, log: log)
        try v.catchUp()
        return v
    }

    func rebuilder() -> Rebuilder { Rebuilder(dataDirectory: dir, log: log) }

    func generation(_ name: String) throws -> ViewGeneration { try store.open(name, set: ProjectionSet()) }

    func digest(_ name: String) throws -> String { try generation(name).digest(profiles) }
}

/// A varied history: customers with pages, identifies, orders, merges.
func messages(_ n: Int, prefix: String = "c") -> [String] {
    (0..<n).map { i in
        let c = i % 37
        switch i % 5 {
        case 0: return #"{"type":"page","anonymousId":"\#(prefix)-anon-\#(c)","name":"Home"}"#
        case 1: return #"{"type":"identify","anonymousId":"\#(prefix)-anon-\#(c)","userId":"\#(prefix)-user-\#(c)","traits":{"email":"\#(prefix)\#(c)@example.com","plan":"p\#(i % 3)"}}"#
        case 2: return #"{"type":"track","userId":"\#(prefix)-user-\#(c)","event":"Order Completed","properties":{"order_id":"o-\#(i)","revenue":\#(i % 50 + 1).5}}"#
        case 3: return #"{"type":"screen","userId":"\#(prefix)-user-\#(c)","name":"Cart","context":{"device":{"id":"dev-\#(c)"}}}"#
        default: return #"{"type":"track","anonymousId":"\#(prefix)-anon-\#(c)","event":"Product Viewed","properties":{"product_id":"sku-\#(i % 11)"}}"#
        }
    }
}

/// Generates a datagen data set and imports it into `s`'s log.
func importDatagen(_ s: Scratch, customers: Int, seed: Int) throws {
    let file = s.dir + "/d.ndjson"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary("touchstone-datagen"))
    p.arguments = ["--customers", String(customers), "--seed", String(seed), "--out", file]
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    _ = try Importer(log: s.log, builder: s.builder, source: SourceContext(name: "import", channel: "server")).run(try LineReader(path: file))
}

/// Runs a binary to completion; returns its status, stdout and stderr.
@discardableResult
func run(_ name: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: binary(name))
    p.arguments = arguments
    let base = NSTemporaryDirectory() + "replay-run-" + UUID().uuidString.prefix(8)
    FileManager.default.createFile(atPath: base + ".out", contents: nil)
    FileManager.default.createFile(atPath: base + ".err", contents: nil)
    defer { try? FileManager.default.removeItem(atPath: base + ".out"); try? FileManager.default.removeItem(atPath: base + ".err") }
    p.standardOutput = FileHandle(forWritingAtPath: base + ".out")
    p.standardError = FileHandle(forWritingAtPath: base + ".err")
    try p.run()
    p.waitUntilExit()
    return (p.terminationStatus, (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
            (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
}

/// Polls `condition` until it holds or `timeout` passes.
func eventually(_ timeout: Duration = .seconds(30), _ condition: () throws -> Bool) throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}

// MARK: A touchstone serve process and a small HTTP client

final class Server: @unchecked Sendable {
    let process = Process()
    let outPath: String, errPath: String
    private(set) var port = 0

    init(data: String) throws {
        outPath = data + "/serve.out"
        errPath = data + "/serve.err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: binary("touchstone"))
        process.arguments = ["serve", "--data", data, "--port", "0", "--schemas", root + "/Schemas/events"]
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
        let found = try eventually(.seconds(30)) {
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = out.split(separator: "\n").first(where: { $0.contains("listening on http://") }),
               let p = line.split(separator: ":").last.flatMap({ Int($0) }) {
                port = p
                return true
            }
            if !process.isRunning { throw ViewsError("touchstone serve exited: \(log)") }
            return false
        }
        if !found { throw ViewsError("touchstone serve did not start: \(log)") }
    }

    var log: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        _ = try? eventually(.seconds(30)) { !process.isRunning }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    func request(_ method: String, _ path: String, auth: String? = nil, body: String? = nil) async throws -> (status: Int, json: JSON) {
        var r = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        r.httpMethod = method
        r.timeoutInterval = 30
        if let auth { r.setValue(auth, forHTTPHeaderField: "Authorization") }
        if let body {
            r.httpBody = Data(body.utf8)
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: r)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSON.parse([UInt8](data))) ?? .null)
    }
}

func basic(_ key: String) -> String { "Basic " + Data((key + ":").utf8).base64EncodedString() }

func createKey(data: String, _ arguments: [String]) throws -> String {
    let r = try run("touchstone", ["keys", "create", "--data", data] + arguments)
    #expect(r.status == 0, "keys create failed: \(r.out) \(r.err)")
    return r.out.split(separator: "\n").last.map(String.init) ?? ""
}

final class Locked2<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func get() -> T { lock.withLock { value } }
    func set(_ v: T) { lock.withLock { value = v } }
}
