import ArgumentParser
import EventLog
import Foundation
import JSONCore
import Projections

/// Who runs a CLI command, for the audit log.
func cliActor() -> String { "cli:" + (ProcessInfo.processInfo.environment["USER"] ?? String(getuid())) }


struct EraseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Erase a customer (GDPR Art. 17, CCPA): suppress their identifiers and remove their profile from every view.",
        discussion: """
        Appends a `Profile Erased` event (salted hashes only) and folds it: the profile, its timeline and \
        identity history leave the views at once, and new events naming any of its identifiers are refused \
        into the dead letters (reason `suppressed`). Run `touchstone compact` to remove the customer's events \
        from the log files themselves.
        """)
    @OptionGroup var options: DataOptions
    @Argument(help: "The identifier: {type}:{value}.") var id: String

    func run() throws {
        guard let identifier = Identifier.parse(id) else { throw ValidationError("\(id) is not {type}:{value}") }
        let (_, live) = try options.openLiveViews()
        guard let r = try live.erase(identifier, actor: cliActor()) else {
            printError("no profile has \(identifier)")
            throw ExitCode(1)
        }
        try live.catchUp()
        print("erased profile \(r.profileID): \(r.identifiers) identifiers suppressed (event seq \(r.seq)); run touchstone compact to remove its events from the log files")
    }
}

struct ExportSubjectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-subject",
        abstract: "Subject access export: the profile, its consent history and every event of the customer, as one JSON document.")
    @OptionGroup var options: DataOptions
    @Option(help: "Write to this file instead of standard output.") var out: String?
    @Argument(help: "The identifier: {type}:{value}.") var id: String

    func run() throws {
        guard let identifier = Identifier.parse(id) else { throw ValidationError("\(id) is not {type}:{value}") }
        let (_, live) = try options.openLiveViews()
        guard let doc = try live.subjectExport(identifier, actor: cliActor()) else {
            printError("no profile has \(identifier)")
            throw ExitCode(1)
        }
        let text = doc.prettyJSON + "\n"
        if let out { try text.write(toFile: out, atomically: true, encoding: .utf8) } else { print(text, terminator: "") }
    }
}

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "List admin actions (erasures, exports, keys, replays, segment definitions): who, what, when.")
    @OptionGroup var options: DataOptions
    @Option(help: "Only entries after this id.") var after: UInt64 = 0
    @Flag(help: "Print JSON lines.") var json = false

    func run() throws {
        let log = try options.openExistingLog()
        for e in try log.auditEntries(after: after, limit: .max) {
            if json { print(String(decoding: e.json.jsonBytes(), as: UTF8.self)) } else {
                print("\(e.id)\t\(Timestamp.format(e.time))\t\(e.actor)\t\(e.action)\t\(e.detail)")
            }
        }
    }
}

struct SuppressionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suppression", abstract: "The suppression list of erased customers' identifiers.",
        subcommands: [List.self, Lift.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Suppressed identifier hashes, oldest first.")
        @OptionGroup var options: DataOptions
        func run() throws {
            for e in try options.openExistingLog().suppressionList() { print("\(e.hash)\t\(Timestamp.format(e.time))\t\(e.profileID)") }
        }
    }

    struct Lift: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lift", abstract: "Accept events for one identifier again (the customer came back and agreed).")
        @OptionGroup var options: DataOptions
        @Argument(help: "The identifier: {type}:{value}.") var id: String
        func run() throws {
            guard let identifier = Identifier.parse(id) else { throw ValidationError("\(id) is not {type}:{value}") }
            guard try options.openExistingLog().liftSuppression(identifier, actor: cliActor(), time: nowMicros()) else {
                printError("\(identifier.type):… is not suppressed")
                throw ExitCode(1)
            }
            print("lifted")
        }
    }
}

struct CompactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compact",
        abstract: "Rewrite the log without erased customers' events and expired events, then rebuild the views.",
        discussion: """
        Physical deletion: events naming a suppressed identifier (and dead letters mentioning one) are left out, \
        zstd dictionaries holding an erased identifier are replaced, every other event keeps its seq. Events \
        older than their retention period are dropped too (--retention TYPE=DURATION, repeatable, or the \
        `retention` object of --config: {"page": "365d", "Product Viewed": "90d"}). The views first fold \
        everything, then are copied live pages only into a fresh generation (they keep the aggregates of \
        what expired; a later replay will not have them) and the old files are removed, so no file keeps a \
        trace of an erased customer. Stop `touchstone serve` first.
        """)
    @OptionGroup var options: DataOptions
    @Option(help: "A configuration file with a `retention` object (and the identity rules).") var config: String?
    @Option(help: "TYPE=DURATION: drop events of a call type (page, track, …) or track event name older than this (e.g. page=365d, Product Viewed=90d).")
    var retention: [String] = []

    func run() throws {
        let lock = try DataDirectoryLock(options.data)
        defer { lock.release() }
        var rules: [String: Micros] = [:]
        if let config {
            guard let bytes = FileManager.default.contents(atPath: config), let json = try? JSON.parse([UInt8](bytes)) else {
                throw ValidationError("cannot read \(config) as JSON")
            }
            for (k, v) in json["retention"]?.objectValue ?? [] {
                guard let d = v.stringValue.flatMap(Self.duration) else { throw ValidationError("\(config): retention.\(k) must be like \"90d\" or \"12h\"") }
                rules[k] = d
            }
        }
        for r in retention {
            guard let eq = r.firstIndex(of: "="), let d = Self.duration(String(r[r.index(after: eq)...])) else {
                throw ValidationError("--retention \(r): expected TYPE=DURATION, e.g. page=365d")
            }
            rules[String(r[..<eq])] = d
        }
        // The views fold everything first, so what retention drops from the log stays in their
        // aggregates (KPIs, profiles' counts).
        let (log, _) = try options.openLiveViews()
        let before = log.lastSeq
        let suppression = try log.suppressionSnapshot()
        var plan = CompactionPlan()
        plan.retention = rules
        plan.now = nowMicros()
        var forbidden: Set<String> = []
        var types: Set<String> = ["user_id", "anonymous_id", "email", "phone", "device_id"]
        if !suppression.isEmpty {
            try log.forEach { e in
                let found = suppression.suppressedValues(e.view)
                if !found.isEmpty {
                    plan.dropSeqs.insert(e.seq)
                    for f in found { forbidden.insert(f.text); types.insert(f.type) }
                }
                return true
            }
        }
        plan.forbidden = forbidden.sorted()
        let typeList = types.sorted()
        plan.dropDeadLetter = { d in suppression.mentionsSuppressed(d.raw, types: typeList) }
        let staging = options.data + "/log.compacting"
        let report = try log.compact(into: staging, plan: plan)
        try EventLog.replace(options.logPath, with: staging)

        // The views keep their aggregates: the live generation is copied with LMDB's compacting
        // copy (live pages only — nothing an erasure freed), made live, and the old files removed.
        let compacted = try options.openExistingLog()
        let check = try compacted.verify()
        let store = ViewStore(dataDirectory: options.data)
        var name = "none"
        if let live = store.current(), store.exists(live) {
            name = store.nextName()
            let source = try store.open(live, set: ProjectionSet())
            try FileManager.default.createDirectory(atPath: store.path(name), withIntermediateDirectories: true)
            try source.environment.backup(to: store.path(name), compact: true)
            try store.setCurrent(name)
            for old in store.generations() where old != name { try? FileManager.default.removeItem(atPath: store.path(old)) }
        }
        try compacted.recordAudit(actor: cliActor(), action: "compact", detail: "kept \(report.kept), erased \(report.droppedErased), expired \(report.droppedExpired), dead letters \(report.droppedDeadLetters)", time: nowMicros())
        print("""
        compacted: kept \(report.kept) events (seqs unchanged, last \(before)), removed \(report.droppedErased) of erased customers and \(report.droppedExpired) expired, \(report.droppedDeadLetters) dead letters; \(report.replacedDictionaries.count) dictionaries replaced, \(report.recompressed) records recompressed
        bytes: \(report.bytesBefore) → \(report.bytesAfter)
        verify: \(check.ok ? "ok" : "FAILED: " + check.problems.joined(separator: "; "))
        views: copied into \(name) (live pages only; aggregates kept)
        """)
        if !check.ok { throw ExitCode(1) }
    }

    /// "90d", "12h", "30m", "45s" → microseconds.
    static func duration(_ s: String) -> Micros? {
        let t = s.trimmingCharacters(in: .whitespaces)
        guard let unit = t.last, let n = Int64(t.dropLast()), n >= 0 else { return nil }
        let scale: Int64
        switch unit {
        case "d": scale = 86_400_000_000
        case "h": scale = 3_600_000_000
        case "m": scale = 60_000_000
        case "s": scale = 1_000_000
        default: return nil
        }
        return n * scale
    }
}

/// An exclusive lock on a data directory (`<data>/serve.lock`), held by `touchstone serve`
/// and by maintenance that must not run beside it.
final class DataDirectoryLock {
    let fd: Int32
    init(_ data: String) throws {
        fd = open(data + "/serve.lock", O_CREAT | O_RDWR, 0o644)
        guard fd >= 0 else { throw ValidationError("cannot open \(data)/serve.lock") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ValidationError("touchstone serve is running on \(data): stop it first")
        }
    }
    func release() { flock(fd, LOCK_UN); close(fd) }
}
