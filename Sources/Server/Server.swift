// Server owns Touchstone's HTTP face: the Segment-compatible tracking API, keys and their
// checks, limits, metrics, health, and the server's lifecycle. It turns requests into calls
// on EventLog (through the single-writer Ingestor) and never writes the log any other way;
// it holds no state a restart would miss but rate-limit buckets.
//
// Each concern adds its routes with its own builder (`TrackingRoutes`, `OperationsRoutes`,
// `AdminRoutes`, …) in `buildRouter`; query routes (profiles, segments, KPIs) plug in the
// same way, behind `APIKeyMiddleware`.

import EventLog
import Foundation
import Hummingbird
import JSONCore
import LMDB
import Logging
import Metrics
import Projections
import ServiceLifecycle

/// The opened resources of one server: the event log with its ingestor, the admin store with
/// its key ring, the envelope builder and the metrics.
public struct TouchstoneServer: Sendable {
    public let configuration: ServerConfiguration
    public let log: EventLog
    public let ingestor: Ingestor
    public let keys: KeyRing
    public let builder: EnvelopeBuilder
    public let metrics: ServerMetrics
    /// The live views (profiles, …), kept current with the log by `ProjectionService`.
    public let views: LiveViews
    /// `<data>/serve.lock`, held while serving: maintenance (compact) refuses to run beside it.
    let lock: ServeLock

    /// Opens (creating when absent) `<data>/log`, `<data>/admin` and `<data>/views`, and loads the schemas.
    public init(configuration: ServerConfiguration) throws {
        self.configuration = configuration
        let data = configuration.dataDirectory
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        lock = try ServeLock(data)
        var logOptions = LogOptions(durability: .full)
        logOptions.trainInBackground = true  // no stall of every acknowledgement while a dictionary trains
        log = try EventLog(directory: data + "/log", options: logOptions)
        keys = try KeyRing(store: AdminStore(directory: data + "/admin"))
        builder = EnvelopeBuilder(schemas: try SchemaSet.load(builtIn: configuration.schemasDirectory, dataDirectory: data),
                                  maxMessageBytes: configuration.limits.maxMessageBytes)
        let metrics = ServerMetrics()
        self.metrics = metrics
        ingestor = Ingestor(log: log, maxBatch: configuration.maxCommitEvents) { report in metrics.commit(report) }
        views = try LiveViews(dataDirectory: data, log: log, set: ProjectionSet(rules: configuration.identity),
                              tailScheduling: configuration.tailScheduling,
                              tailLinger: configuration.tailLingerMillis > 0 ? .milliseconds(configuration.tailLingerMillis) : nil)
    }
}

/// Every route of the server on one router, and the list of them (method and OpenAPI path).
public func buildRouter(_ server: TouchstoneServer) -> (router: Router<TouchstoneRequestContext>, routes: [RouteRecorder<TouchstoneRequestContext>.Route]) {
    let router = Router(context: TouchstoneRequestContext.self)
    let routes = RouteRecorder(router)
    routes.add(middleware: ObservationMiddleware(metrics: server.metrics))
    OperationsRoutes(log: server.log, metrics: server.metrics, views: server.views).add(to: routes)
    TrackingRoutes(builder: server.builder, ingestor: server.ingestor, keys: server.keys, metrics: server.metrics,
                   limits: server.configuration.limits, defaultEventsPerSecond: server.configuration.defaultEventsPerSecond)
        .add(to: routes)
    AdminRoutes(log: server.log, keys: server.keys).add(to: routes)
    ReplayRoutes(views: server.views, keys: server.keys).add(to: routes)
    ProfileRoutes(log: server.log, views: server.views, keys: server.keys,
                  maxWait: .milliseconds(server.configuration.queryMaxWaitMillis)).add(to: routes)
    PrivacyRoutes(log: server.log, views: server.views, keys: server.keys,
                  maxWait: .milliseconds(server.configuration.queryMaxWaitMillis)).add(to: routes)
    SegmentRoutes(views: server.views, ingestor: server.ingestor, keys: server.keys, maxWait: .milliseconds(server.configuration.queryMaxWaitMillis)).add(to: routes)
    KPIRoutes(views: server.views, keys: server.keys, maxWait: .milliseconds(server.configuration.queryMaxWaitMillis)).add(to: routes)
    return (router, routes.routes)
}

/// The HTTP application of `server`: Hummingbird 2 on HTTP/1.1 with keep-alive, plus the
/// service that closes the log after the last request. Run it with `runService()` for
/// graceful shutdown on SIGTERM/SIGINT: stop accepting, answer in-flight requests (each
/// answer waits for its commit), then sync and release the log.
/// `onListening` gets the bound port (useful with port 0).
public func buildApplication(_ server: TouchstoneServer, logger: Logger,
                             onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
    let config = server.configuration
    return Application(
        router: buildRouter(server).router,
        server: .http1(configuration: .init(idleTimeout: .seconds(Int64(config.idleTimeoutSeconds)))),
        configuration: ApplicationConfiguration(address: .hostname(config.host, port: config.port), serverName: "touchstone"),
        services: [EventLogService(log: server.log, logger: logger),
                   ProjectionService(views: server.views, metrics: server.metrics, logger: logger)],
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? config.port
            logger.info("listening", metadata: ["host": .string(config.host), "port": .stringConvertible(port),
                                                "lastSeq": .stringConvertible(server.log.lastSeq), "allocator": .string(Allocator.name)])
            await onListening(port)
        },
        logger: logger)
}

/// Runs the server in the foreground until SIGTERM or SIGINT: installs the log format and
/// level of `configuration` for the process, exports libraries' swift-metrics too, opens the
/// data directory and serves. `announce` gets the bound address once listening.
public func serve(_ configuration: ServerConfiguration, announce: @escaping @Sendable (String) -> Void) async throws {
    LineLogHandler.bootstrap(format: LineLogHandler.Format(rawValue: configuration.logFormat) ?? .text,
                             level: Logger.Level(rawValue: configuration.logLevel) ?? .info)
    let logger = Logger(label: "touchstone")
    let server = try TouchstoneServer(configuration: configuration)
    MetricsSystem.bootstrap(server.metrics.factory)
    let host = configuration.host
    let app = buildApplication(server, logger: logger) { port in announce("http://\(host):\(port)") }
    try await app.runService()
}

/// Keeps the log until shutdown. Services stop in reverse order, so by the time this one is
/// told to stop, the HTTP server has stopped accepting and answered every in-flight request.
struct EventLogService: Service {
    let log: EventLog
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        do {
            try log.sync()
            logger.info("event log synced; shutting down", metadata: ["lastSeq": .stringConvertible(log.lastSeq)])
        } catch {
            logger.error("event log sync failed at shutdown", metadata: ["error": "\(error)"])
        }
    }
}

/// Folds the log into the live views for the server's life: catches up at start (while
/// requests are already served), then tails every commit. A failure of the fold itself (not
/// of one event, which is recorded and skipped) is logged and retried after a pause.
struct ProjectionService: Service {
    let views: LiveViews
    let metrics: ServerMetrics
    let logger: Logger

    func run() async throws {
        let metrics = self.metrics
        // Graceful shutdown cancels the fold between batches; each batch is one transaction.
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await views.run { report in
                        var failures: [String: Int] = [:]
                        for f in report.failures { failures[f.projection, default: 0] += 1 }
                        metrics.projected(events: report.perProjection, failures: failures, lastSeq: report.lastSeq,
                                          eventLagsMicros: report.eventLagsMicros)
                    }
                } catch is CancellationError {
                    return
                } catch {
                    if Task.isCancelled { return }
                    logger.error("projection fold failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        logger.info("views stopped", metadata: ["appliedSeq": .stringConvertible(views.runner.appliedSeq)])
    }
}

/// An exclusive `flock` on `<data>/serve.lock` for the server's life.
final class ServeLock: @unchecked Sendable {
    let fd: Int32
    init(_ data: String) throws {
        fd = open(data + "/serve.lock", O_CREAT | O_RDWR, 0o644)
        guard fd >= 0 else { throw ConfigurationError(message: "cannot open \(data)/serve.lock") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ConfigurationError(message: "another process (touchstone serve or compact) holds \(data); stop it first")
        }
    }
    deinit { close(fd) }
}
