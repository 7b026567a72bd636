import Foundation
import Hummingbird
import Logging

/// Outermost middleware: gives every answer an `X-Request-Id` (the id in the request's log
/// metadata), counts and times requests by route template (never by raw path, so series
/// stay bounded), and logs each answer — at debug for successes, info for client errors,
/// error for server errors. Logs carry method, route, status and time; never keys or bodies.
public struct ObservationMiddleware: RouterMiddleware {
    public typealias Context = TouchstoneRequestContext
    public let metrics: ServerMetrics

    public init(metrics: ServerMetrics) { self.metrics = metrics }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        metrics.inFlight(1)
        defer { metrics.inFlight(-1) }
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = APIError.answering(error, logger: context.logger).response
        }
        let elapsed = ContinuousClock.now - started
        response.headers[.init("X-Request-Id")!] = context.id
        let route = context.endpointPath ?? "unmatched"
        let status = response.status.code
        metrics.request(method: request.method.rawValue, route: route, status: status, duration: elapsed)
        let level: Logger.Level = status >= 500 ? .error : status >= 400 ? .info : .debug
        context.logger.log(level: level, "request", metadata: [
            "method": .string(request.method.rawValue), "route": .string(route), "status": .stringConvertible(status),
            "ms": .string(String(format: "%.2f", Double(elapsed.nanoseconds) / 1e6)),
        ])
        return response
    }
}
