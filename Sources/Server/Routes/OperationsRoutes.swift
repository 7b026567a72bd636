import EventLog
import Hummingbird
import JSONCore
import NIOCore
import Projections

/// `GET /healthz` (liveness, with the log's last seq) and `GET /metrics` (Prometheus text
/// format). Neither needs a key: bind the server to a private address, or put the scrape
/// behind the network's own controls.
public struct OperationsRoutes: Sendable {
    public let log: EventLog
    public let metrics: ServerMetrics
    public let views: LiveViews

    public init(log: EventLog, metrics: ServerMetrics, views: LiveViews) {
        self.log = log
        self.metrics = metrics
        self.views = views
    }

    public func add(to router: some RouterMethods<TouchstoneRequestContext>) {
        router.get("/healthz") { _, _ in
            Response.json(["status": "ok", "lastSeq": .int(Int64(log.lastSeq)), "appliedSeq": .int(Int64(views.runner.appliedSeq)),
                           "views": .string(views.generation.name)])
        }
        router.get("/metrics") { _, context in
            do {
                metrics.log(try log.stats())
                metrics.views(appliedSeq: views.runner.appliedSeq, failures: try views.generation.failureCount(),
                              tailScheduling: views.tailSchedulingNow)
                metrics.heap()
            } catch {
                context.logger.warning("log stats unavailable", metadata: ["error": "\(error)"])
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
    }
}
