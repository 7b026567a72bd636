import ArgumentParser
import EventLog
import Foundation
import Projections
import JSONCore
import LMDB

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Append NDJSON events (files, .zst files, or - for stdin) to the log.")

    @OptionGroup var options: DataOptions
    @Argument(help: "NDJSON files; .zst is decompressed; - reads standard input.") var files: [String]
    @Option(help: "The source name recorded on each event.") var source = "import"
    @Option(help: "The channel of events that name none in context.channel.") var channel = "server"
    @Flag(help: "Skip fsync per commit (bulk load); the log is synced once at the end.") var relaxed = false
    @Flag(help: "Print a line after every durable commit: `committed <lines> <lastSeq>`.") var reportCommits = false
    @Option(help: "Most events per commit: larger commits write the messageId index less often.") var commitEvents = 32_768

    func validate() throws {
        guard commitEvents >= 1 else { throw ValidationError("--commit-events must be at least 1") }
    }

    func run() throws {
        let log = try options.openLog(LogOptions(durability: relaxed ? .relaxed : .full))
        let builder = EnvelopeBuilder(schemas: try options.schemaRegistry())
        let importer = Importer(log: log, builder: builder, source: SourceContext(name: source, channel: channel))
        importer.commitEvents = commitEvents
        importer.chunkLines = min(importer.chunkLines, commitEvents)
        let progress = ProgressLine(label: "import")
        var summary = ImportSummary()
        for file in files {
            let reader = try LineReader(path: file)
            summary = try importer.run(reader, summary: summary) { s in
                if reportCommits { FileHandle.standardOutput.write(Data("committed \(s.lines) \(s.lastSeq)\n".utf8)) }
                progress.update(done: s.lines, unit: "events", rate: s.eventsPerSecond)
            }
        }
        if relaxed { try log.sync() }
        progress.finish()
        print("appended \(summary.appended), duplicates \(summary.duplicates), rejected \(summary.rejected) "
              + "(\(summary.lines) lines in \(String(format: "%.2f", summary.seconds)) s, "
              + "\(Int(summary.eventsPerSecond)) events/s; last seq \(log.lastSeq))")
        for (code, n) in summary.rejectedByCode.sorted(by: { $0.key < $1.key }) {
            print("  rejected \(code): \(n)")
            for e in summary.examples[code] ?? [] { print("    e.g. \(e)") }
        }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Write stored events as NDJSON to stdout.")
    @OptionGroup var options: DataOptions
    @Option(help: "First seq to export.") var from: UInt64 = 1
    @Option(help: "Last seq to export.") var to: UInt64 = .max

    func run() throws {
        let log = try options.openExistingLog()
        let out = StdoutWriter()
        try log.forEach(from: from, through: to) { e in
            var line = e.exportJSON.jsonBytes()
            line.append(0x0A)
            out.write(line)
            return true
        }
        out.flush()
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Show the log's size and efficiency.")
    @OptionGroup var options: DataOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let s = try options.openExistingLog().stats()
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys, .prettyPrinted]
            print(String(decoding: try enc.encode(s), as: UTF8.self))
            return
        }
        print("""
        events              \(s.events) (last seq \(s.last_seq))
        rejected            \(s.rejected)
        dictionaries        \(s.dictionaries)
        bytes_on_disk       \(s.bytes_on_disk)
        bytes_per_event     \(String(format: "%.1f", s.bytes_per_event))
        compression_ratio   \(String(format: "%.2f", s.compression_ratio))
        map_used            \(String(format: "%.1f%%", s.map_used * 100)) of \(s.map_size)
        """)
        // The views, as they are (not caught up): where they are and what they could not apply.
        let store = ViewStore(dataDirectory: options.data)
        guard let live = store.current(), store.exists(live) else { print("views               none yet"); return }
        let g = try store.open(live, set: ProjectionSet())
        print("views               \(live) (applied seq \(try g.appliedSeq()); generations: \(store.generations().joined(separator: ", ")))")
        let failures = try g.failures(limit: 20)
        print("projection_failures \(try g.failureCount())")
        for f in failures { print("  \(f.projection) seq \(f.seq): \(f.error)") }
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check every record, checksum, seq and index entry of the log.")
    @OptionGroup var options: DataOptions

    func run() throws {
        let r = try options.openExistingLog().verify()
        print("events \(r.events), last seq \(r.lastSeq), index entries \(r.indexEntries), dead letters \(r.deadLetters)")
        if r.ok {
            print("ok")
        } else {
            for p in r.problems { print("problem: \(p)") }
            throw ExitCode(1)
        }
    }
}

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup", abstract: "Write a compacted hot copy of the data directory to DEST.")
    @OptionGroup var options: DataOptions
    @Argument(help: "Destination directory (must not hold a log yet).") var destination: String

    func run() throws {
        if FileManager.default.fileExists(atPath: destination + "/log/data.mdb") {
            throw ValidationError("\(destination)/log already holds a log; choose an empty destination")
        }
        let log = try options.openExistingLog()
        try log.backup(to: destination + "/log")
        print("backed up \(log.lastSeq) events to \(destination)/log")
    }
}

struct DeadLettersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dead-letters", abstract: "List rejected inputs with their reasons.")
    @OptionGroup var options: DataOptions
    @Option(help: "Show letters after this id.") var after: UInt64 = 0
    @Option(help: "How many.") var limit = 50

    func run() throws {
        for d in try options.openExistingLog().deadLetters(after: after, limit: limit) {
            let raw = String(decoding: d.raw.prefix(200), as: UTF8.self)
            let line: JSON = ["id": .int(Int64(d.id)), "time": .string(Timestamp.format(d.time)), "source": .string(d.source),
                              "code": .string(d.code), "reason": .string(d.reason), "raw": .string(raw)]
            print(line.jsonString)
        }
    }
}

/// A progress line on a terminal (rewritten in place), plain lines every few seconds otherwise.
final class ProgressLine {
    let label: String
    let tty = isatty(2) != 0
    var last = ContinuousClock.now
    var printed = false

    init(label: String) { self.label = label }

    func update(done: Int, total: Int? = nil, unit: String, rate: Double) {
        let now = ContinuousClock.now
        guard now - last >= (tty ? .milliseconds(200) : .seconds(5)) else { return }
        last = now
        var text = "\(label): \(done) \(unit), \(Int(rate)) \(unit)/s"
        if let total, total > 0, rate > 0 {
            let pct = Double(done) / Double(total)
            let width = 30, filled = Int(pct * Double(width))
            let eta = Double(total - done) / rate
            text = "\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] "
                + "\(Int(pct * 100))% \(done)/\(total) \(Int(rate)) \(unit)/s ETA \(Int(eta)) s"
        }
        if tty { FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8)) } else { printError(text) }
        printed = true
    }

    func finish() {
        if tty && printed { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
