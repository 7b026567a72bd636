import ArgumentParser
import EventLog
import Foundation
import JSONCore
import Projections

/// `touchstone segments list|show|members|changes`: the segment views (brought up to date first).
struct SegmentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segments", abstract: "Segments: definitions, sizes, members and the enter/exit feed.",
        subcommands: [List.self, Show.self, Members.self, Changes.self], defaultSubcommand: List.self)

    static func reader(_ options: DataOptions, _ views: ViewOptions) throws -> SegmentReader {
        try SegmentReader(try views.open(options).generation)
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "Every segment with its size.")
        @OptionGroup var options: DataOptions
        @OptionGroup var views: ViewOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let list = try SegmentsCommand.reader(options, views).list()
            if json { print(JSON.array(list).prettyJSON); return }
            let rows = list.map { s in
                [s["key"]?.stringValue ?? "", String(s["size"]?.intValue ?? 0), s["builtin"]?.boolValue == true ? "built-in" : "v\(s["version"]?.intValue ?? 1)",
                 s["updated"]?.stringValue ?? "—", s["name"]?.stringValue ?? ""]
            }
            printTable(["key", "size", "kind", "updated", "name"], rows, rightAligned: [1])
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "A segment's definition, size and last change, as JSON.")
        @OptionGroup var options: DataOptions
        @OptionGroup var views: ViewOptions
        @Argument(help: "The segment key.") var key: String

        func run() throws {
            guard let s = try SegmentsCommand.reader(options, views).segment(key) else {
                printError("no segment \(key)")
                throw ExitCode(1)
            }
            print(s.prettyJSON)
        }
    }

    struct Members: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "members", abstract: "A segment's members (profile id, entered at).")
        @OptionGroup var options: DataOptions
        @OptionGroup var views: ViewOptions
        @Option(help: "At most this many.") var limit = 100
        @Option(help: "Start after this profile id (p123).") var after: String?
        @Argument(help: "The segment key.") var key: String

        func run() throws {
            let reader = try SegmentsCommand.reader(options, views)
            guard try reader.segment(key) != nil else { printError("no segment \(key)"); throw ExitCode(1) }
            let start = after.flatMap { UInt64($0.hasPrefix("p") ? String($0.dropFirst()) : $0) }
            for m in try reader.members(key, after: start, limit: limit) { print("p\(m.profile)\t\(Timestamp.format(m.entered))") }
        }
    }

    struct Changes: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "changes", abstract: "A segment's enter/exit feed, oldest first.")
        @OptionGroup var options: DataOptions
        @OptionGroup var views: ViewOptions
        @Option(help: "After this change id.") var after: UInt64 = 0
        @Option(help: "At most this many.") var limit = 100
        @Argument(help: "The segment key.") var key: String

        func run() throws {
            let reader = try SegmentsCommand.reader(options, views)
            guard try reader.segment(key) != nil else { printError("no segment \(key)"); throw ExitCode(1) }
            for c in try reader.changes(key, after: after, limit: limit) {
                print("\(c.id)\t\(c.enter ? "enter" : "exit ")\tp\(c.profile)\t\(Timestamp.format(c.time))")
            }
        }
    }
}

/// `touchstone kpis`: the KPI table by day, week or month.
struct KPIsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kpis", abstract: "Print the KPIs as a table (default: the last 30 days with data, every channel).")
    @OptionGroup var options: DataOptions
    @OptionGroup var views: ViewOptions
    @Option(help: "First day (YYYY-MM-DD).") var from: String?
    @Option(help: "Last day (YYYY-MM-DD).") var to: String?
    @Option(help: "day, week or month.") var granularity = "day"
    @Option(help: "A channel (web, mobile, pos, …; default all).") var channel: String?
    @Flag(help: "Print the JSON series.") var json = false
    @Flag(help: "Print retention by monthly cohort instead.") var cohorts = false

    func run() throws {
        let reader = try KPIReader(try views.open(options).generation)
        if cohorts {
            let c = try reader.cohorts()
            if json { print(c.prettyJSON); return }
            let rows = (c["cohorts"]?.arrayValue ?? []).map { r in
                [r["cohort"]?.stringValue ?? "", String(r["size"]?.intValue ?? 0)]
                    + (r["retention"]?.arrayValue ?? []).prefix(12).map { String(format: "%.0f%%", ($0.doubleValue ?? 0) * 100) }
            }
            let width = rows.map(\.count).max() ?? 2
            printTable(["cohort", "size"] + (0..<max(0, width - 2)).map { "m\($0)" }, rows.map { $0 + Array(repeating: "", count: width - $0.count) },
                       rightAligned: Array(1..<max(width, 2)))
            return
        }
        guard let gran = Granularity(name: granularity) else { throw ValidationError("granularity must be day, week or month") }
        func day(_ s: String?) throws -> Int? {
            guard let s else { return nil }
            guard let t = Timestamp.parse(s.count == 10 ? s + "T00:00:00Z" : s) else { throw ValidationError("\(s) is not a date (YYYY-MM-DD)") }
            return Timestamp.day(t)
        }
        guard let range = try reader.range() else { printError("no KPI data yet"); return }
        let last = try day(to) ?? range.1
        let first = try day(from) ?? max(range.0, last - 29)
        let series = try reader.series(from: first, to: last, granularity: gran, channel: channel)
        if json { print(JSON.array(series).prettyJSON); return }
        func num(_ j: JSON?, _ digits: Int = 2) -> String {
            guard let j, !j.isNull else { return "—" }
            if let i = j.intValue, case .int = j { return String(i) }
            return String(format: "%.\(digits)f", j.doubleValue ?? 0)
        }
        func pct(_ j: JSON?) -> String { j?.doubleValue.map { String(format: "%.1f%%", $0 * 100) } ?? "—" }
        let rows = series.map { s in
            [s["period"]?.stringValue ?? "", num(s["active_customers"]), num(s["new_customers"]), num(s["orders"]), num(s["revenue"]),
             num(s["aov"]), pct(s["conversion_rate"]), pct(s["repeat_purchase_rate"]), pct(s["refund_rate"]), num(s["cac"]),
             num(s["nps"], 1), num(s["csat"], 1), num(s["clv_historic"]), num(s["clv_predicted"]), pct(s["churn_rate"])]
        }
        printTable(["period", "active", "new", "orders", "revenue", "aov", "conv", "repeat", "refund", "cac", "nps", "csat", "clv", "clv pred", "churn"],
                   rows, rightAligned: Array(1..<15))
    }
}

/// A plain text table with padded columns.
func printTable(_ header: [String], _ rows: [[String]], rightAligned: [Int] = []) {
    let all = [header] + rows
    var widths = [Int](repeating: 0, count: header.count)
    for r in all { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    let out = StdoutWriter()
    for r in all {
        var line = ""
        for (i, c) in r.enumerated() where i < widths.count {
            let pad = String(repeating: " ", count: widths[i] - c.count)
            line += (i > 0 ? "  " : "") + (rightAligned.contains(i) ? pad + c : c + (i == r.count - 1 ? "" : pad))
        }
        out.write(line + "\n")
    }
    out.flush()
}
