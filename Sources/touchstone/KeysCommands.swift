import ArgumentParser
import EventLog
import JSONCore
import Foundation
import Server

/// `touchstone keys …`: sources' write keys and scoped API keys in `<data>/admin`. A running
/// server sees every change at its next request.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list and revoke write keys and API keys.",
        subcommands: [KeysCreateCommand.self, KeysListCommand.self, KeysRevokeCommand.self])
}

struct KeysCreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a write key (--source, --channel) or an API key (--scope, --name); prints the key once, alone on the last line.",
        discussion: """
        touchstone keys create --data DIR --source web --channel web     a write key for source "web"
        touchstone keys create --data DIR --scope read --name dashboards  an API key
        Only the key's SHA-256 digest is stored: it cannot be shown again.
        """)
    @OptionGroup var options: DataOptions
    @Option(help: "The source a write key writes as (created when new).") var source: String?
    @Option(help: "The source's channel: web, mobile, email, pos, support, social, ads, server (needed when the source is new).")
    var channel: String?
    @Option(help: "The API key's scope: read or admin.") var scope: String?
    @Option(help: "The key's name (required for an API key; a write key defaults to the source's name).") var name: String?
    @Option(help: "The source's rate limit in events per second (a write key's source only).") var rateLimit: Double?

    func validate() throws {
        if source != nil && scope != nil { throw ValidationError("give --source (a write key) or --scope (an API key), not both") }
        if source == nil && scope == nil { throw ValidationError("give --source NAME --channel CH (a write key) or --scope read|admin --name NAME (an API key)") }
        if scope != nil && name == nil { throw ValidationError("an API key needs --name") }
        if scope != nil && (channel != nil || rateLimit != nil) { throw ValidationError("--channel and --rate-limit belong to a write key's source") }
    }

    func run() throws {
        let admin = try AdminStore(directory: options.data + "/admin")
        do {
            let record: KeyRecord, key: String
            if let source {
                (record, key) = try admin.createWriteKey(source: source, channel: channel, name: name, eventsPerSecond: rateLimit)
                print("created write key \"\(record.name)\" for source \"\(source)\" (shown once; only its SHA-256 digest is stored):")
            } else {
                guard let s = scope.flatMap(Scope.init(rawValue:)) else { throw ValidationError("--scope must be read or admin") }
                (record, key) = try admin.createAPIKey(name: name!, scope: s)
                print("created \(s.rawValue) API key \"\(record.name)\" (shown once; only its SHA-256 digest is stored):")
            }
            try? options.openLog().recordAudit(actor: cliActor(), action: "key-create",
                                              detail: "\(record.kind == .write ? "write" : "API") key \(record.name)" + (scope.map { " scope \($0)" } ?? "") + (source.map { " source \($0)" } ?? ""),
                                              time: nowMicros())
            print(key)
        } catch let e as AdminError {
            throw ValidationError(e.message)
        }
    }
}

struct KeysListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List keys and sources (never the keys themselves).")
    @OptionGroup var options: DataOptions

    func run() throws {
        let admin = try AdminStore(directory: options.data + "/admin")
        let sources = Dictionary(try admin.listSources().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let rows: [[String]] = try admin.listKeys().map { r in
            let what: String
            if r.kind == .write, let s = r.source {
                let src = sources[s]
                what = "write  source=\(s) channel=\(src?.channel ?? "?")" + (src?.eventsPerSecond.map { " limit=\(JSON.formatDouble($0))/s" } ?? "")
            } else {
                what = "api    scope=\(r.scope?.rawValue ?? "?")"
            }
            return [r.name, "…" + r.hint, what, Timestamp.format(r.created),
                    r.revoked.map { "revoked " + Timestamp.format($0) } ?? "active"]
        }
        if rows.isEmpty {
            print("no keys yet: touchstone keys create --data \(options.data) --source NAME --channel CH")
            return
        }
        let header = ["NAME", "KEY", "KIND", "CREATED", "STATUS"]
        let widths = (0..<header.count).map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
        for row in [header] + rows {
            print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
    }
}

struct KeysRevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a key by name; a running server refuses it from its next request.")
    @OptionGroup var options: DataOptions
    @Argument(help: "The key's name (see `touchstone keys list`).") var name: String

    func run() throws {
        do {
            let r = try AdminStore(directory: options.data + "/admin").revoke(name: name)
            try? options.openLog().recordAudit(actor: cliActor(), action: "key-revoke", detail: "key \(r.name)", time: nowMicros())
            print("revoked \(r.kind == .write ? "write" : "API") key \"\(r.name)\"")
        } catch let e as AdminError {
            throw ValidationError(e.message)
        }
    }
}
