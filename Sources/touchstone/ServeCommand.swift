import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import EventLog
import Server

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the Segment-compatible tracking API, /metrics and /healthz over the data directory.",
        discussion: """
        Settings come from flags, then TOUCHSTONE_* environment variables (TOUCHSTONE_HTTP_PORT, \
        TOUCHSTONE_LIMITS_MAX_BODY_BYTES, …), then the --config JSON file (Schemas/config.schema.json), \
        then defaults. SIGTERM or SIGINT stops accepting, answers in-flight requests and syncs the log.
        """)

    // Options without defaults, so that an absent flag lets the environment and the file decide.
    @Option(help: "The data directory (holds log/ and admin/). Default ./data.") var data: String?
    @Option(help: "A directory of event JSON Schemas (default: the installed Schemas/events).") var schemas: String?
    @Option(help: "The port to listen on (0: any free port). Default 8080.") var port: Int?
    @Option(help: "The address to bind. Default 127.0.0.1.") var host: String?
    @Option(help: "A JSON configuration file.") var config: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. Default info.") var logLevel: String?
    @Option(help: "Log format: text or json. Default text.") var logFormat: String?

    func run() async throws {
        // One pool of threads for I/O and handlers: Swift Concurrency's jobs run on NIO's event
        // loops, so a request is not handed from an event loop to the concurrency pool and back.
        // Blocking work (the views' tail fold, log commits) runs on threads of its own.
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let settings: ServerConfiguration
        do {
            settings = try ServerConfiguration.load(
                file: config,
                flags: .init(data: data, schemas: schemas, host: host, port: port, logLevel: logLevel, logFormat: logFormat))
        } catch let e as ConfigurationError {
            throw ValidationError(e.message)
        }
        try await serve(settings) { address in
            // A line scripts and tests can wait for (unbuffered: stdout may be a file).
            FileHandle.standardOutput.write(Data("touchstone: listening on \(address)\n".utf8))
        }
    }
}
