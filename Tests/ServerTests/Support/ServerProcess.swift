import EventLog
import Foundation
import Testing

/// The repository's root, found from this file's path.
let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The `touchstone` binary the end-to-end tests run (`swift build --product touchstone`).
let touchstoneBinary = repoRoot.appendingPathComponent(".build/debug/touchstone").path

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct Scratch {
    let path: String
    init(_ label: String) {
        path = NSTemporaryDirectory() + "touchstone-\(label)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Runs `touchstone ARGS…` to completion; returns its exit status and standard output.
@discardableResult
func touchstone(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: touchstoneBinary)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Creates a key with `touchstone keys create` and returns it (the last line of the output).
func createKey(data: String, _ arguments: [String]) throws -> String {
    let r = try touchstone(["keys", "create", "--data", data] + arguments)
    #expect(r.status == 0, "keys create failed: \(r.output)")
    return r.output.split(separator: "\n").last.map(String.init) ?? ""
}

/// A `touchstone serve` process on a free loopback port, with its output in files.
final class ServerProcess: @unchecked Sendable {
    let data: String
    let process = Process()
    let outPath: String, errPath: String
    private(set) var port = 0

    /// Starts the server on `data` and returns once `/healthz` answers.
    init(data: String, arguments: [String] = [], environment: [String: String] = [:]) async throws {
        precondition(FileManager.default.isExecutableFile(atPath: touchstoneBinary),
                     "build the binary first: swift build --product touchstone")
        self.data = data
        let n = UUID().uuidString.prefix(6)
        outPath = data + "/serve-\(n).out"
        errPath = data + "/serve-\(n).err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: touchstoneBinary)
        process.arguments = ["serve", "--data", data, "--port", "0"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardOutput = FileHandle(forWritingAtPath: outPath)
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
        port = try await waitForPort()
        try await waitUntilHealthy()
    }

    var pid: Int32 { process.processIdentifier }

    private func waitForPort() async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            let out = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
            if let line = out.split(separator: "\n").first(where: { $0.contains("listening on http://") }),
               let p = line.split(separator: ":").last.flatMap({ Int($0) }) {
                return p
            }
            if !process.isRunning {
                throw ServerFailure(message: "touchstone serve exited (\(process.terminationStatus)): \(log)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ServerFailure(message: "touchstone serve did not start listening: \(log)")
    }

    private func waitUntilHealthy() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let r = try? await HTTP.request(port: port, .get, "/healthz"), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ServerFailure(message: "/healthz did not answer: \(log)")
    }

    /// What the server wrote to standard error.
    var log: String { (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(30)) async throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw ServerFailure(message: "touchstone serve did not exit within \(timeout) of signal \(signal)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

struct ServerFailure: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Every event in the log at `data` (opened after the server stopped, or read-only beside it).
func storedEvents(data: String) throws -> [Event] {
    let log = try EventLog(directory: data + "/log", options: LogOptions())
    var out: [Event] = []
    try log.forEach { out.append($0); return true }
    return out
}

/// How many times each messageId is in the log at `data`.
func messageIdCounts(data: String) throws -> [String: Int] {
    var counts: [String: Int] = [:]
    for e in try storedEvents(data: data) { counts[e.messageId, default: 0] += 1 }
    return counts
}
