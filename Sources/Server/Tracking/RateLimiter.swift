import Foundation

/// Per-source token buckets of events per second. A bucket holds up to one second's worth;
/// a request is admitted while the bucket is not in debt and then charged its message count
/// (so one large batch may overdraw it), and a source in debt is refused with the time until
/// it is out of debt — the `Retry-After` Segment's and RudderStack's clients honour.
final class RateLimiter: @unchecked Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }
    private let lock = NSLock()
    private var buckets: [String: Bucket] = [:]

    /// Nil when `source` may send now; else how long it must wait.
    func check(source: String, eventsPerSecond rate: Double, now: ContinuousClock.Instant = .now) -> Duration? {
        lock.withLock {
            let b = refill(source, rate, now)
            if b.tokens > 0 { return nil }
            return .milliseconds(Int64(((1 - b.tokens) / rate * 1000).rounded(.up)))
        }
    }

    /// Charges `events` to `source`'s bucket.
    func charge(source: String, eventsPerSecond rate: Double, events: Int, now: ContinuousClock.Instant = .now) {
        lock.withLock {
            var b = refill(source, rate, now)
            b.tokens -= Double(events)
            buckets[source] = b
        }
    }

    private func refill(_ source: String, _ rate: Double, _ now: ContinuousClock.Instant) -> Bucket {
        var b = buckets[source] ?? Bucket(tokens: rate, updated: now)
        let elapsed = now - b.updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        b.tokens = min(rate, b.tokens + seconds * rate)
        b.updated = now
        buckets[source] = b
        return b
    }
}
