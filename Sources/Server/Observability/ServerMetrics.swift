import EventLog
import Foundation
import Metrics
import Projections
import Prometheus

/// Touchstone's metrics, exported at `GET /metrics` in Prometheus text format. Recorded
/// through swift-metrics with an injected factory (nothing global, so several servers can
/// live in one test process); series handles are cached per label set.
///
/// Label values are bounded: sources come from the admin store, types and reasons are
/// fixed sets, and a channel the spec does not name is counted as `other` — a client cannot
/// blow up the series count by sending odd values.
public final class ServerMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: HelpfulMetricsFactory
    private let lock = NSLock()
    /// Series handles by kind, name and labels.
    private var handles: [String: AnyObject] = [:]
    private let inFlightMeter: Metrics.Meter

    public static let help: [String: String] = [
        "touchstone_events_appended_total": "Events appended to the log, by source, channel and type.",
        "touchstone_events_duplicate_total": "Messages acknowledged as retries of one already in the log (same source and messageId), by source and type.",
        "touchstone_events_rejected_total": "Messages and request bodies rejected and kept in the dead letters, by source, channel, type and reason.",
        "touchstone_batch_messages": "Messages per tracking request (1 for single calls), by route.",
        "touchstone_commit_duration_seconds": "Time of one durable group commit of the event log (write transaction and fsync).",
        "touchstone_commit_events": "Events written per group commit.",
        "touchstone_commit_requests": "Requests sharing one group commit.",
        "touchstone_log_events": "Events in the log.",
        "touchstone_log_last_seq": "The highest seq in the log.",
        "touchstone_log_dead_letters": "Dead letters kept in the log.",
        "touchstone_log_bytes": "Bytes the log's LMDB environment uses.",
        "touchstone_log_map_size_bytes": "Size of the log's LMDB memory map (grows on demand).",
        "touchstone_log_map_used_ratio": "Share of the log's memory map in use (0–1).",
        "touchstone_heap_allocated_bytes": "Bytes the process has allocated on the heap and not freed (jemalloc).",
        "touchstone_heap_resident_bytes": "Bytes of memory the allocator holds resident (jemalloc).",
        "touchstone_http_requests_total": "HTTP requests answered, by method, route and status.",
        "touchstone_http_request_duration_seconds": "Time to answer an HTTP request, by method and route.",
        "touchstone_http_requests_in_flight": "HTTP requests being answered now.",
        "touchstone_rate_limited_total": "Tracking requests refused with 429 by a source's rate limit, by source.",
        "touchstone_auth_failures_total": "Requests refused for a missing, unknown, revoked or wrong kind of key, by reason.",
        "touchstone_projection_lag_seconds": "Time from an event's durable commit to its being visible in the views, per event.",
        "touchstone_projection_events_total": "Events folded into the live views, by projection.",
        "touchstone_projection_failures_total": "Events a projection could not apply (recorded and skipped), by projection.",
        "touchstone_projection_applied_seq": "The highest seq every projection of the live views has applied.",
        "touchstone_projection_failures": "Events recorded as failed in the live views, all projections.",
        "touchstone_views_tail_scheduling": "How the views' tail threads are scheduled now (1 for the current level): realtime while they keep up, raised while behind or where real time is not permitted.",
    ]

    public init() {
        registry = PrometheusCollectorRegistry()
        factory = HelpfulMetricsFactory(
            registry: registry, help: Self.help,
            // Finer around the 20 ms the views aim to stay within under load.
            durationBuckets: ["touchstone_projection_lag_seconds": [
                .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(15), .milliseconds(20),
                .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                .seconds(5), .seconds(30)]],
            valueBuckets: ["touchstone_batch_messages": [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500],
                           "touchstone_commit_events": [1, 10, 50, 100, 500, 1000, 2500, 5000, 10000],
                           "touchstone_commit_requests": [1, 2, 5, 10, 25, 50, 100, 250, 500]])
        inFlightMeter = Metrics.Meter(label: "touchstone_http_requests_in_flight", factory: factory)
        // Declare the always-present series so a fresh server exports them at zero.
        _ = timer("touchstone_commit_duration_seconds", [])
    }

    // MARK: Events

    /// The channel label: one of the spec's channels, else `other`.
    static func channelLabel(_ channel: String) -> String {
        AdminStore.channels.contains(channel) ? channel : "other"
    }

    public func appended(source: String, channel: String, type: String, count: Int = 1) {
        counter("touchstone_events_appended_total",
                [("source", source), ("channel", Self.channelLabel(channel)), ("type", type)]).increment(by: count)
    }

    public func duplicates(source: String, type: String, count: Int = 1) {
        counter("touchstone_events_duplicate_total", [("source", source), ("type", type)]).increment(by: count)
    }

    public func rejected(source: String, channel: String, type: String, reason: String, count: Int = 1) {
        counter("touchstone_events_rejected_total",
                [("source", source), ("channel", Self.channelLabel(channel)), ("type", type), ("reason", reason)])
            .increment(by: count)
    }

    public func batch(route: String, messages: Int) {
        recorder("touchstone_batch_messages", [("route", route)]).record(messages)
    }

    public func commit(_ report: CommitReport) {
        timer("touchstone_commit_duration_seconds", []).recordNanoseconds(Int64(report.seconds * 1e9))
        recorder("touchstone_commit_events", []).record(report.appended + report.duplicates)
        recorder("touchstone_commit_requests", []).record(report.callers)
    }

    /// One batch folded into the live views.
    public func projected(events: [String: Int], failures: [String: Int], lastSeq: UInt64, eventLagsMicros: [Int64]) {
        let lag = timer("touchstone_projection_lag_seconds", [])
        for l in eventLagsMicros { lag.recordNanoseconds(l * 1000) }
        for (p, n) in events.sorted(by: { $0.key < $1.key }) { counter("touchstone_projection_events_total", [("projection", p)]).increment(by: n) }
        for (p, n) in failures.sorted(by: { $0.key < $1.key }) { counter("touchstone_projection_failures_total", [("projection", p)]).increment(by: n) }
        gauge("touchstone_projection_applied_seq", []).record(Double(lastSeq))
    }

    /// Sets the views gauges (called when `/metrics` is scraped).
    public func views(appliedSeq: UInt64, failures: Int, tailScheduling: TailScheduling?) {
        gauge("touchstone_projection_applied_seq", []).record(Double(appliedSeq))
        gauge("touchstone_projection_failures", []).record(failures)
        if let tailScheduling {
            for level in TailScheduling.allCases {
                gauge("touchstone_views_tail_scheduling", [("level", level.rawValue)]).record(level == tailScheduling ? 1 : 0)
            }
        }
    }

    /// Sets the log gauges from `stats` (called when `/metrics` is scraped).
    public func log(_ stats: LogStats) {
        gauge("touchstone_log_events", []).record(stats.events)
        gauge("touchstone_log_last_seq", []).record(Double(stats.last_seq))
        gauge("touchstone_log_dead_letters", []).record(stats.rejected)
        gauge("touchstone_log_bytes", []).record(stats.bytes_on_disk)
        gauge("touchstone_log_map_size_bytes", []).record(stats.map_size)
        gauge("touchstone_log_map_used_ratio", []).record(stats.map_used)
    }

    /// Sets the heap gauges from the allocator's statistics (called when `/metrics` is scraped).
    public func heap() {
        guard let s = Allocator.stats() else { return }
        gauge("touchstone_heap_allocated_bytes", []).record(s.allocated)
        gauge("touchstone_heap_resident_bytes", []).record(s.resident)
    }

    // MARK: HTTP

    public func request(method: String, route: String, status: Int, duration: Duration) {
        counter("touchstone_http_requests_total", [("method", method), ("route", route), ("status", String(status))]).increment()
        timer("touchstone_http_request_duration_seconds", [("method", method), ("route", route)])
            .recordNanoseconds(duration.nanoseconds)
    }

    public func inFlight(_ delta: Int) {
        if delta >= 0 { inFlightMeter.increment(by: Double(delta)) } else { inFlightMeter.decrement(by: Double(-delta)) }
    }

    public func rateLimited(source: String) {
        counter("touchstone_rate_limited_total", [("source", source)]).increment()
    }

    public func authFailure(reason: String) {
        counter("touchstone_auth_failures_total", [("reason", reason)]).increment()
    }

    /// The Prometheus text exposition of every metric.
    public func exposition() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16 * 1024)
        registry.emit(into: &out)
        return out
    }

    // MARK: Series cache

    private static func key(_ name: String, _ labels: [(String, String)]) -> String {
        var k = name
        for (n, v) in labels { k += "\u{1}\(n)=\(v)" }
        return k
    }

    /// The cached handle of one series, made on first use.
    private func handle<H: AnyObject>(_ name: String, _ labels: [(String, String)], _ make: () -> H) -> H {
        let k = "\(H.self)\u{2}" + Self.key(name, labels)
        return lock.withLock {
            if let h = handles[k] as? H { return h }
            let h = make()
            handles[k] = h
            return h
        }
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> Metrics.Counter {
        handle(name, labels) { Metrics.Counter(label: name, dimensions: labels, factory: factory) }
    }

    private func timer(_ name: String, _ labels: [(String, String)]) -> Metrics.Timer {
        handle(name, labels) { Metrics.Timer(label: name, dimensions: labels, factory: factory) }
    }

    private func recorder(_ name: String, _ labels: [(String, String)]) -> Metrics.Recorder {
        handle(name, labels) { Metrics.Recorder(label: name, dimensions: labels, aggregate: true, factory: factory) }
    }

    private func gauge(_ name: String, _ labels: [(String, String)]) -> Metrics.Gauge {
        handle(name, labels) { Metrics.Gauge(label: name, dimensions: labels, factory: factory) }
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let c = components
        return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
    }
}
