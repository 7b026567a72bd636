// touchstone-replay: rebuild, verify and time-travel projections from the log (issue 6).

import ArgumentParser
import EventLog
import Foundation
import Projections

@main
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "touchstone-replay",
        abstract: "Rebuild, verify and time-travel the views (projections) from the event log.",
        discussion: """
        Rebuilds into a new views generation while the live one keeps serving, then switches
        (a running `touchstone serve` adopts the new generation after folding what arrived
        meanwhile). A rebuild killed midway continues from its checkpoints when run again.

          touchstone-replay --data DIR                        rebuild all, switch, keep 3 old generations
          touchstone-replay --data DIR --projection profiles  rebuild one; copy the others from the live views
          touchstone-replay --data DIR --until-seq 5000       the views of the log truncated at seq 5000
          touchstone-replay --data DIR --until 2025-03-01     the views of the events dated up to that day
          touchstone-replay --data DIR --dry-run              build without switching
          touchstone-replay --data DIR --verify               rebuild aside and compare with the live views (exit 1 if they differ)
          touchstone-replay --data DIR --list                 the generations and what they hold
        """)

    @Option(help: "The data directory (holds log/ and views/).") var data: String = "./data"
    @Option(name: .customLong("projection"), help: "Rebuild only this projection (repeatable); the others are copied from the live views.")
    var projections: [String] = []
    @Option(name: .customLong("until-seq"), help: "Time travel: build the views of the log up to and including this seq.")
    var untilSeq: UInt64?
    @Option(help: "Time travel: fold only events whose event time is at or before TIME (RFC 3339; a bare date means the end of that day, UTC).")
    var until: String?
    @Option(help: "The target generation's name (default: the next g…, or until-… when time travelling).") var name: String?
    @Flag(name: .customLong("dry-run"), help: "Build, but do not make the result live.") var dryRun = false
    @Flag(help: "Rebuild into a scratch generation and compare it with the live views; exit 1 when they differ.") var verify = false
    @Flag(help: "List the views generations and exit.") var list = false
    @Option(help: "How many older numbered generations to keep after a switch.") var keep: Int = 3
    @Flag(help: "Replace an existing generation named by --name.") var replace = false
    @Option(name: .customLong("batch-size"), help: "Events per fold transaction.") var batchSize: Int = 32768
    @Option(help: "Progress display: auto (a bar on a terminal, lines otherwise), bar, lines or none.") var progress: String = "auto"

    func validate() throws {
        if verify && (untilSeq != nil || until != nil || dryRun || name != nil) {
            throw ValidationError("--verify compares with the live views: no --until, --until-seq, --dry-run or --name")
        }
        if keep < 0 { throw ValidationError("--keep must be ≥ 0") }
        if batchSize < 1 { throw ValidationError("--batch-size must be ≥ 1") }
        if !["auto", "bar", "lines", "none"].contains(progress) { throw ValidationError("--progress is auto, bar, lines or none") }
        if let until, Self.parseTime(until) == nil { throw ValidationError("--until \(until) is not a date-time (e.g. 2025-03-01T12:00:00Z or 2025-03-01)") }
    }

    static func parseTime(_ s: String) -> Int64? {
        if let t = Timestamp.parse(s) { return t }
        if s.count == 10, let t = Timestamp.parse(s + "T23:59:59.999999Z") { return t }
        return nil
    }

    func run() throws {
        let logPath = data + "/log"
        guard FileManager.default.fileExists(atPath: logPath + "/data.mdb") else {
            throw ValidationError("no event log at \(logPath)")
        }
        let log = try EventLog(directory: logPath)
        let rebuilder = Rebuilder(dataDirectory: data, log: log)
        if list { return try printList(rebuilder) }
        let display = ProgressDisplay(mode: progress)
        if verify {
            let report: ReplayVerifyReport
            do {
                report = try rebuilder.verify(projections: projections.isEmpty ? nil : projections, batchSize: batchSize,
                                              progress: display.update)
            } catch let e as RebuildBusy { throw fail("\(e)") } catch let e as ViewsError { throw fail("\(e)") }
            display.finish()
            print("verify: live generation \(report.live)")
            for e in report.entries {
                print("\(e.projection): \(e.equal ? "equal" : "DIFFERENT") at seq \(e.checkpoint)")
                print("  live     \(e.liveDigest)")
                print("  rebuilt  \(e.rebuiltDigest)")
                if e.liveIsStale { print("  (the live views were built by another version or configuration of \(e.projection))") }
                for d in e.differences { print("  - \(d)") }
            }
            if !report.equal { throw ExitCode(1) }
            return
        }
        var plan = RebuildPlan(projections: projections.isEmpty ? nil : projections, untilSeq: untilSeq,
                               untilTime: until.flatMap(Self.parseTime), target: name, switchLive: !dryRun,
                               keep: keep, replace: replace, batchSize: batchSize)
        if plan.isTimeTravel { plan.switchLive = false }
        if let (g, p) = rebuilder.interrupted() { printErr("replay: found an interrupted rebuild into \(g) (\(p))") }
        let result: RebuildResult
        do {
            result = try rebuilder.run(plan, progress: display.update)
        } catch let e as RebuildBusy { throw fail("\(e)") } catch let e as ViewsError { throw fail("\(e)") }
        display.finish()
        let who = "cli:" + (ProcessInfo.processInfo.environment["USER"] ?? String(getuid()))
        try? log.recordAudit(actor: who, action: "replay",
                             detail: "\(result.generation): \(result.events) events through seq \(result.appliedSeq)\(result.switched ? ", switched live" : "")",
                             time: nowMicros())
        if result.alreadyBuilt {
            print("\(result.generation): already built (through seq \(result.appliedSeq)); query it with touchstone profile --generation \(result.generation)")
            return
        }
        var line = "rebuilt \(result.generation)\(result.resumed ? " (resumed)" : ""): \(result.events) events in "
            + String(format: "%.2f s (%.0f events/s), through seq %llu", result.seconds, result.eventsPerSecond, result.appliedSeq)
        if result.failures > 0 { line += ", \(result.failures) events recorded as failures" }
        print(line)
        if result.switched {
            print("live: switched to \(result.generation)" + (result.pruned.isEmpty ? "" : "; pruned \(result.pruned.joined(separator: ", "))"))
        } else if plan.isTimeTravel {
            print("query it with: touchstone profile --data \(data) --generation \(result.generation) TYPE:VALUE")
        } else {
            print("not switched (--dry-run); the live views are still \(rebuilder.store.current() ?? "none")")
        }
    }

    func fail(_ message: String) -> Error {
        printErr("touchstone-replay: \(message)")
        return ExitCode(2)
    }

    func printList(_ rebuilder: Rebuilder) throws {
        let store = rebuilder.store
        let live = store.current()
        for name in store.generations() where store.exists(name) {
            let g = try store.open(name, set: rebuilder.projectionSet(), readOnly: false)
            var parts = [name + (name == live ? " (live)" : "")]
            parts.append("seq \(try g.appliedSeq())")
            if let s = try g.metaValue("replay/until-seq") { parts.append("until-seq \(s)") }
            if let t = try g.metaValue("replay/until-time") { parts.append("until \(t)") }
            if try g.metaValue("replay/complete") == nil && (try g.metaValue("replay/plan")) != nil { parts.append("incomplete") }
            print(parts.joined(separator: "  "))
        }
        if let (g, p) = rebuilder.interrupted() { print("interrupted rebuild: \(g) \(p)") }
    }
}

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// A progress bar on a terminal, plain lines otherwise (at most one a second), on stderr.
final class ProgressDisplay {
    let bar: Bool
    let silent: Bool
    private var lastDraw = ContinuousClock.now - .seconds(10)
    private var lastPhase: RebuildProgress.Phase?
    private var drew = false

    init(mode: String) {
        silent = mode == "none"
        bar = mode == "bar" || (mode == "auto" && isatty(STDERR_FILENO) == 1)
    }

    func update(_ p: RebuildProgress) {
        if silent { return }
        let now = ContinuousClock.now
        let phaseChanged = p.phase != lastPhase
        lastPhase = p.phase
        guard phaseChanged || now - lastDraw >= (bar ? .milliseconds(100) : .seconds(1)) else { return }
        lastDraw = now
        let eta = p.eta.map(Self.duration) ?? "--"
        let per = p.perProjection.sorted { $0.key < $1.key }.map { "\($0.key) \(Self.grouped($0.value))" }.joined(separator: ", ")
        let pct = String(format: "%5.1f%%", p.fraction * 100)
        if bar {
            let width = 28, filled = Int(p.fraction * Double(width))
            let b = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let text = "\(p.generation) \(p.phase.rawValue) [\(b)] \(pct) \(Self.grouped(Int(p.eventsDone)))/\(Self.grouped(Int(p.eventsTotal))) "
                + "\(Self.grouped(Int(p.eventsPerSecond))) ev/s ETA \(eta)" + (per.isEmpty ? "" : " | \(per)")
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + text).utf8))
            drew = true
        } else {
            printErr("replay: \(p.generation) \(p.phase.rawValue) \(pct) (\(p.eventsDone)/\(p.eventsTotal) events) "
                + "\(Int(p.eventsPerSecond)) ev/s ETA \(eta)\(p.resumed ? " resumed" : "")" + (per.isEmpty ? "" : "; \(per)"))
        }
    }

    func finish() {
        if bar && drew { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }

    static func grouped(_ n: Int) -> String {
        let s = String(n)
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }
}
