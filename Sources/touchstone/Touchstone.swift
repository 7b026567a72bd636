// The touchstone executable: the server and the everyday CLI over one data directory.

import ArgumentParser
import EventLog
import Foundation
import Projections

@main
struct Touchstone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "touchstone",
        abstract: "Touchstone: an event-sourced customer data platform.",
        subcommands: [ImportCommand.self, ExportCommand.self, StatsCommand.self, VerifyCommand.self, BackupCommand.self,
                      DeadLettersCommand.self, ServeCommand.self, KeysCommand.self, ProfileCommand.self, IdentityCommand.self,
                      EraseCommand.self, ExportSubjectCommand.self, AuditCommand.self, SuppressionCommand.self, CompactCommand.self,
                      SegmentsCommand.self, KPIsCommand.self])
}

/// `--data DIR`, shared by every subcommand.
struct DataOptions: ParsableArguments {
    @Option(name: .long, help: "The data directory (holds log/, views/ and admin/).")
    var data: String = "./data"

    @Option(name: .long, help: "A directory of event JSON Schemas (default: the installed Schemas/events).")
    var schemas: String?

    var logPath: String { data + "/log" }

    func openLog(_ options: LogOptions = .init()) throws -> EventLog {
        try EventLog(directory: logPath, options: options)
    }

    func openExistingLog() throws -> EventLog {
        guard FileManager.default.fileExists(atPath: logPath + "/data.mdb") else {
            throw ValidationError("no event log at \(logPath) (import or serve first)")
        }
        return try EventLog(directory: logPath)
    }

    /// The log and the live views (with the rules they were built with), folded up to the log's end.
    func openLiveViews() throws -> (log: EventLog, live: LiveViews) {
        let log = try openExistingLog()
        let live = try LiveViews(dataDirectory: data, log: log, set: nil)
        try live.catchUp()
        return (log, live)
    }

    func schemaRegistry() throws -> SchemaRegistry {
        try SchemaSet.load(builtIn: schemas, dataDirectory: data)
    }
}

/// Writes to standard error, unbuffered.
func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// A fast buffered writer to standard output.
final class StdoutWriter {
    private var buffer: [UInt8] = []
    init() { buffer.reserveCapacity(1 << 20) }
    func write(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 20 { flush() }
    }
    func write(_ s: String) { write(Array(s.utf8)) }
    func flush() {
        var offset = 0
        while offset < buffer.count {
            let n = buffer[offset...].withUnsafeBytes { Foundation.write(1, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
    deinit { flush() }
}
