import ArgumentParser
import EventLog
import Foundation
import JSONCore
import Projections

/// Options for commands that read the views.
struct ViewOptions: ParsableArguments {
    @Option(help: "Query this views generation (e.g. one built by touchstone-replay --until-seq) instead of the live one; it is not updated.")
    var generation: String?

    @Option(help: "A configuration file whose identity rules to use (default: the rules the live views were built with).")
    var config: String?

    /// The live views brought up to date with the log, or the named generation as it is.
    func open(_ data: DataOptions, quiet: Bool = false) throws -> (log: EventLog, reader: ProfileReader, generation: ViewGeneration) {
        let log = try data.openExistingLog()
        var set: ProjectionSet?
        if let config {
            guard let bytes = FileManager.default.contents(atPath: config) else { throw ValidationError("cannot read \(config)") }
            let json = try JSON.parse([UInt8](bytes))
            do { set = ProjectionSet(rules: try json["identity"].map(IdentityRules.init(json:)) ?? .default) } catch {
                throw ValidationError("\(config): \(error)")
            }
        }
        if let generation {
            let store = ViewStore(dataDirectory: data.data)
            guard store.exists(generation) else {
                throw ValidationError("no views generation \(generation) in \(store.directory) (have: \(store.generations().joined(separator: ", ")))")
            }
            let g = try store.open(generation, set: set ?? ProjectionSet())
            return (log, try ProfileReader(g), g)
        }
        let views = try LiveViews(dataDirectory: data.data, log: log, set: set)
        let behind = log.lastSeq - min(log.lastSeq, views.runner.appliedSeq)
        if behind > 10_000 && !quiet { printError("views: folding \(behind) events first …") }
        try views.catchUp()
        return (log, views.profiles, views.generation)
    }
}

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Print a customer's unified profile as JSON.",
        discussion: """
        ID is {type}:{value}: user_id:u1, email:jane@example.com, phone:+14155550100, anonymous_id:…, \
        device_id:…, an external id type (loyalty_id:L1), or profile_id:p12. The live views are first \
        brought up to date with the log.
        """)
    @OptionGroup var options: DataOptions
    @OptionGroup var views: ViewOptions
    @Flag(help: "Also print the newest events of the timeline.") var events = false
    @Option(help: "How many timeline events with --events.") var limit = 20
    @Argument(help: "The identifier: {type}:{value}.") var id: String

    func run() throws {
        guard let identifier = Identifier.parse(id) else {
            throw ValidationError("\(id) is not {type}:{value} (e.g. email:jane@example.com)")
        }
        let (log, reader, _) = try views.open(options)
        guard var profile = try reader.profile(identifier) else {
            printError("no profile has \(identifier)")
            throw ExitCode(1)
        }
        if events {
            let seqs = try reader.timeline(identifier, limit: limit) ?? []
            var found: [JSON] = []
            try log.forEach(seqs: seqs) { found.append($0.exportJSON) }
            profile["events"] = .array(found)
        }
        print(profile.prettyJSON)
    }
}

struct IdentityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity", abstract: "Identity resolution tools.", subcommands: [Explain.self])

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "explain",
            abstract: "Show which events linked which identifiers into the profile, what was dropped and why.")
        @OptionGroup var options: DataOptions
        @OptionGroup var views: ViewOptions
        @Flag(help: "Print JSON instead of text.") var json = false
        @Argument(help: "The identifier: {type}:{value}.") var id: String

        func run() throws {
            guard let identifier = Identifier.parse(id) else {
                throw ValidationError("\(id) is not {type}:{value} (e.g. email:jane@example.com)")
            }
            let (_, reader, _) = try views.open(options)
            guard let explain = try reader.explain(identifier) else {
                printError("no profile has \(identifier)")
                throw ExitCode(1)
            }
            if json { print(explain.prettyJSON); return }
            print("profile \(explain["profile_id"]?.stringValue ?? "?")")
            for (type, values) in explain["identifiers"]?.objectValue ?? [] {
                print("  \(type): \((values.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", "))")
            }
            let merged = (explain["merged_ids"]?.arrayValue ?? []).compactMap(\.stringValue)
            if !merged.isEmpty { print("  merged: \(merged.joined(separator: ", "))") }
            for step in explain["steps"]?.arrayValue ?? [] {
                let seq = step["seq"]?.intValue ?? 0
                for l in step["linked"]?.arrayValue ?? [] { print("seq \(seq)  \(l.stringValue ?? "")") }
                for d in step["dropped"]?.arrayValue ?? [] {
                    print("seq \(seq)  dropped \(d["identifier"]?.stringValue ?? "") from \(d["from"]?.stringValue ?? ""): \(d["reason"]?.stringValue ?? "")")
                }
            }
        }
    }
}

extension JSON {
    /// Indented JSON for people (two spaces, keys in stored order).
    var prettyJSON: String {
        var out = ""
        func write(_ v: JSON, _ indent: String) {
            switch v {
            case .object(let m) where !m.isEmpty:
                out += "{\n"
                for (i, (k, x)) in m.enumerated() {
                    out += indent + "  " + String(decoding: JSON.string(k).jsonBytes(), as: UTF8.self) + ": "
                    write(x, indent + "  ")
                    out += i == m.count - 1 ? "\n" : ",\n"
                }
                out += indent + "}"
            case .array(let a) where !a.isEmpty:
                out += "[\n"
                for (i, x) in a.enumerated() {
                    out += indent + "  "
                    write(x, indent + "  ")
                    out += i == a.count - 1 ? "\n" : ",\n"
                }
                out += indent + "]"
            default:
                out += String(decoding: v.jsonBytes(), as: UTF8.self)
            }
        }
        write(self, "")
        return out
    }
}
