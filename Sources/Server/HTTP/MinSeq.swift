import Hummingbird
import Projections

/// `min_seq=N`: waits (bounded) until the views have applied seq N; 504 when they have not.
enum MinSeq {
    static func wait(_ request: Request, views: LiveViews, maxWait: Duration) async throws {
        guard let raw = request.uri.queryParameters.get("min_seq") else { return }
        guard let seq = UInt64(raw) else {
            throw APIError(.badRequest, code: "invalid_parameter", message: "min_seq must be a seq (a non-negative integer)")
        }
        if await !views.waitForApplied(seq, timeout: maxWait) {
            throw APIError(.gatewayTimeout, code: "views_behind",
                           message: "the views have applied seq \(views.runner.appliedSeq), not yet \(seq); retry")
        }
    }
}
